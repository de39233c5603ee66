// Package identity implements engine.Identity on Clerk's Backend API with
// clerk-sdk-go v2: the customers of every platform are users of one shared
// Clerk application, and their session JWTs are verified against its JWKS.
//
// Everything goes through per-client configuration (clerk.ClientConfig);
// the SDK's package-level key and backend are never used, so that several
// Clerk adapters (and tests) live in one process.
package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/clerk/clerk-sdk-go/v2"
	"github.com/clerk/clerk-sdk-go/v2/jwks"
	"github.com/clerk/clerk-sdk-go/v2/jwt"
	"github.com/clerk/clerk-sdk-go/v2/user"

	"github.com/dream-api/dream-api/engine"
)

// Config configures a Clerk adapter. SecretKey is required.
type Config struct {
	// SecretKey is the end-user Clerk application's secret key (sk_…).
	SecretKey string
	// APIURL is Clerk's Backend API. Defaults to https://api.clerk.com/v1.
	APIURL string
	// Issuer, when set, is the only `iss` a session token may carry (the
	// application's Frontend API URL, e.g. https://clerk.example.com).
	// Defaults to Clerk's own check: an issuer on https://clerk.… or
	// ….clerk.accounts.dev.
	Issuer string
	// HTTPClient defaults to a client with a 10 s timeout.
	HTTPClient *http.Client
	// Now defaults to time.Now.
	Now func() time.Time
	// Leeway is the clock skew allowed on exp, nbf and iat. Defaults to
	// 5 s; a negative value means none.
	Leeway time.Duration
	// JWKSMaxAge is how long fetched signing keys are used before they are
	// fetched again. Defaults to 1 h.
	JWKSMaxAge time.Duration
	// JWKSMinRefresh is the least time between two fetches of the JWKS
	// caused by tokens with an unknown key id. Defaults to 10 s.
	JWKSMinRefresh time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Clerk is the Clerk adapter. Safe for concurrent use.
type Clerk struct {
	users  *user.Client
	jwks   *jwks.Client
	issuer string
	now    func() time.Time
	leeway time.Duration
	log    *slog.Logger

	maxAge, minRefresh time.Duration

	mu        sync.Mutex // guards the fields below
	keys      map[string]*clerk.JSONWebKey
	fetchedAt time.Time     // of keys
	triedAt   time.Time     // the last fetch, successful or not
	fetchErr  error         // of the last fetch
	fetching  chan struct{} // closed when the fetch in progress ends
}

// New returns a Clerk adapter for cfg.
func New(cfg Config) (*Clerk, error) {
	if cfg.SecretKey == "" {
		return nil, errors.New("identity: a Clerk secret key is required")
	}
	if cfg.APIURL == "" {
		cfg.APIURL = clerk.APIURL
	}
	if !strings.HasPrefix(cfg.APIURL, "https://") && !strings.HasPrefix(cfg.APIURL, "http://") {
		return nil, fmt.Errorf("identity: Clerk API URL %q is not an http(s) URL", cfg.APIURL)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = 5 * time.Second
	} else if cfg.Leeway < 0 {
		cfg.Leeway = 0
	}
	if cfg.JWKSMaxAge <= 0 {
		cfg.JWKSMaxAge = time.Hour
	}
	if cfg.JWKSMinRefresh <= 0 {
		cfg.JWKSMinRefresh = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	key, url := cfg.SecretKey, strings.TrimRight(cfg.APIURL, "/")
	// One ClientConfig per client: NewBackend keeps pointers into it.
	newConfig := func() *clerk.ClientConfig {
		return &clerk.ClientConfig{BackendConfig: clerk.BackendConfig{Key: &key, URL: &url, HTTPClient: cfg.HTTPClient}}
	}
	return &Clerk{
		users: user.NewClient(newConfig()), jwks: jwks.NewClient(newConfig()),
		issuer: cfg.Issuer, now: cfg.Now, leeway: cfg.Leeway, log: cfg.Logger,
		maxAge: cfg.JWKSMaxAge, minRefresh: cfg.JWKSMinRefresh,
	}, nil
}

// CreateUser implements engine.Identity. Without a password the user is
// created with Clerk's password requirement skipped: it signs in another
// way (email code, OAuth) or sets one later.
func (c *Clerk) CreateUser(ctx context.Context, in engine.NewIdentityUser) (*engine.IdentityUser, error) {
	md, err := rawJSON(in.PublicMetadata)
	if err != nil {
		return nil, err
	}
	p := &user.CreateParams{
		EmailAddresses: &[]string{in.Email},
		FirstName:      nonEmpty(in.FirstName),
		LastName:       nonEmpty(in.LastName),
		PublicMetadata: md,
	}
	if in.Password != "" {
		p.Password = &in.Password
	} else {
		p.SkipPasswordRequirement = clerk.Bool(true)
	}
	u, err := c.users.Create(ctx, p)
	if err != nil {
		return nil, c.apiError("create user", err)
	}
	return identityUser(u), nil
}

// User implements engine.Identity.
func (c *Clerk) User(ctx context.Context, id string) (*engine.IdentityUser, error) {
	u, err := c.users.Get(ctx, id)
	if err != nil {
		return nil, c.apiError("get user", err)
	}
	return identityUser(u), nil
}

// UpdateMetadata implements engine.Identity with Clerk's metadata merge
// (PATCH /users/{id}/metadata), in which null removes a key.
func (c *Clerk) UpdateMetadata(ctx context.Context, id string, md map[string]any) error {
	raw, err := rawJSON(md)
	if err != nil {
		return err
	}
	if _, err := c.users.UpdateMetadata(ctx, id, &user.UpdateMetadataParams{PublicMetadata: raw}); err != nil {
		return c.apiError("update user metadata", err)
	}
	return nil
}

// DeleteUser implements engine.Identity.
func (c *Clerk) DeleteUser(ctx context.Context, id string) error {
	if _, err := c.users.Delete(ctx, id); err != nil {
		return c.apiError("delete user", err)
	}
	return nil
}

// sessionClaims are the custom claims read from a session token. The
// end-user application's session token template adds
// {"publishableKey": "{{user.public_metadata.publishableKey}}"}; a template
// that puts the whole public metadata under "metadata" works too.
type sessionClaims struct {
	PublishableKey string `json:"publishableKey"`
	// Metadata is read leniently: a template that puts something else
	// under "metadata" must not make every token fail.
	Metadata json.RawMessage `json:"metadata"`
}

// publishableKey returns the claim, or metadata.publishableKey.
func (c *sessionClaims) publishableKey() string {
	if c.PublishableKey != "" {
		return c.PublishableKey
	}
	var md struct {
		PublishableKey string `json:"publishableKey"`
	}
	if json.Unmarshal(c.Metadata, &md) != nil {
		return ""
	}
	return md.PublishableKey
}

// VerifySession implements engine.Identity with clerk-sdk-go's jwt
// package: the signature against the application's JWKS (cached, fetched
// again for an unknown key id), exp, nbf and iat with the leeway, and the
// issuer. A token without exp or sub is refused too.
func (c *Clerk) VerifySession(ctx context.Context, token string) (*engine.EndUserSession, error) {
	unverified, err := jwt.Decode(ctx, &jwt.DecodeParams{Token: token})
	if err != nil {
		return nil, invalidToken("it is not a JWT")
	}
	jwk, err := c.signingKey(ctx, unverified.KeyID)
	if err != nil {
		return nil, err
	}
	p := &jwt.VerifyParams{
		Token: token, JWK: jwk, Clock: clock(c.now), Leeway: c.leeway,
		CustomClaimsConstructor: func(context.Context) any { return &sessionClaims{} },
	}
	if c.issuer != "" {
		// The SDK's exact-issuer check (meant for a proxied Frontend API).
		p.ProxyURL = &c.issuer
	}
	claims, err := jwt.Verify(ctx, p)
	if err != nil {
		return nil, invalidToken(tokenProblem(err))
	}
	if claims.Expiry == nil {
		return nil, invalidToken("it has no exp claim")
	}
	if claims.Subject == "" {
		return nil, invalidToken("it has no sub claim")
	}
	custom, _ := claims.Custom.(*sessionClaims)
	s := &engine.EndUserSession{
		UserID: claims.Subject, SessionID: claims.SessionID, ExpiresAt: time.Unix(*claims.Expiry, 0).UTC(),
	}
	if custom != nil {
		s.PublishableKey = custom.publishableKey()
	}
	return s, nil
}

// signingKey returns the JWKS key kid. The JWKS is fetched when the cache
// is older than maxAge or does not have kid, but at most once per
// minRefresh, so that forged key ids cannot make us hammer Clerk; while
// Clerk cannot be reached, cached keys keep working.
func (c *Clerk) signingKey(ctx context.Context, kid string) (*clerk.JSONWebKey, error) {
	if kid == "" {
		return nil, invalidToken("it has no kid header")
	}
	for {
		c.mu.Lock()
		k, known := c.keys[kid]
		now := c.now()
		stale := now.Sub(c.fetchedAt) >= c.maxAge
		tried := !c.triedAt.IsZero() && now.Sub(c.triedAt) < c.minRefresh
		switch {
		case known && (!stale || tried):
			c.mu.Unlock()
			return k, nil
		case !known && tried:
			err := c.fetchErr
			c.mu.Unlock()
			if err != nil {
				return nil, err
			}
			return nil, invalidToken("its signing key is unknown")
		case c.fetching != nil:
			wait := c.fetching
			c.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		done := make(chan struct{})
		c.fetching, c.triedAt = done, now
		c.mu.Unlock()

		// One request going away must not fail the fetch others wait for.
		set, err := c.jwks.Get(context.WithoutCancel(ctx), &jwks.GetParams{})
		c.mu.Lock()
		if err != nil {
			c.fetchErr = c.apiError("fetch JWKS", err)
		} else {
			keys := make(map[string]*clerk.JSONWebKey, len(set.Keys))
			for _, k := range set.Keys {
				if k != nil && k.KeyID != "" {
					keys[k.KeyID] = k
				}
			}
			c.keys, c.fetchedAt, c.fetchErr = keys, now, nil
		}
		c.fetching = nil
		close(done)
		c.mu.Unlock()
	}
}

// apiError turns what the SDK returned into an engine error: Clerk's 400
// and 422 are EVALIDATION with Clerk's own message, 404 is ENOTFOUND, and
// everything else (unreachable, 5xx, 401/403 of a wrong secret key, 429)
// is EUPSTREAM, logged with its cause.
func (c *Clerk) apiError(op string, err error) error {
	var apiErr *clerk.APIErrorResponse
	if errors.As(err, &apiErr) {
		switch apiErr.HTTPStatusCode {
		case http.StatusBadRequest, http.StatusUnprocessableEntity:
			return validation(apiErr)
		case http.StatusNotFound:
			return engine.Errorf(engine.ENOTFOUND, "No such Clerk user.")
		}
		c.log.Warn("Clerk call failed", "op", op, "status", apiErr.HTTPStatusCode, "traceId", apiErr.TraceID, "err", summary(apiErr))
	} else {
		c.log.Warn("Clerk call failed", "op", op, "err", err)
	}
	return engine.Errorf(engine.EUPSTREAM, "Clerk failed (%s); nothing was changed. Try again.", op)
}

// validation is Clerk's 400/422 as EVALIDATION: the message is Clerk's
// own, each error names its field when Clerk says which.
func validation(apiErr *clerk.APIErrorResponse) error {
	e := &engine.Error{Code: engine.EVALIDATION}
	for _, ce := range apiErr.Errors {
		msg := ce.LongMessage
		if msg == "" {
			msg = ce.Message
		}
		e.Fields = append(e.Fields, engine.FieldError{Field: fieldOf(ce.Meta), Message: msg})
	}
	if len(e.Fields) == 0 {
		e.Fields = []engine.FieldError{{Field: "clerk", Message: "Clerk refused the request."}}
	}
	e.Message = e.Fields[0].Message
	if n := len(e.Fields) - 1; n > 0 {
		e.Message += fmt.Sprintf(" (and %d more)", n)
	}
	return e
}

// fieldOf maps Clerk's meta.param_name to the name of our input field.
func fieldOf(meta json.RawMessage) string {
	var m struct {
		ParamName string `json:"param_name"`
	}
	_ = json.Unmarshal(meta, &m)
	switch m.ParamName {
	case "email_address", "identifier":
		return "email"
	case "first_name":
		return "firstName"
	case "last_name":
		return "lastName"
	case "":
		return "clerk"
	}
	return m.ParamName
}

func summary(apiErr *clerk.APIErrorResponse) string {
	var parts []string
	for _, e := range apiErr.Errors {
		parts = append(parts, e.Code+": "+e.Message)
	}
	return strings.Join(parts, "; ")
}

// invalidToken is the error of a session token that does not verify.
func invalidToken(why string) error {
	return engine.Errorf(engine.EINVALIDAPIKEY, "Invalid session token: %s.", why)
}

// tokenProblem says, without echoing the token, why jwt.Verify refused it.
func tokenProblem(err error) string {
	s := err.Error()
	switch {
	case strings.Contains(s, "expired"):
		return "it has expired"
	case strings.Contains(s, "not valid yet"):
		return "it is not valid yet (nbf)"
	case strings.Contains(s, "issued in the future"):
		return "it is issued in the future (iat)"
	case strings.Contains(s, "issuer"):
		return "its issuer is not the Clerk application's"
	case strings.Contains(s, "signing algorithm"):
		return "its signing algorithm does not match the key's"
	case strings.Contains(s, "cryptographic"), strings.Contains(s, "verify"), strings.Contains(s, "signature"):
		return "its signature does not verify"
	}
	return "it does not verify"
}

func identityUser(u *clerk.User) *engine.IdentityUser {
	out := &engine.IdentityUser{ID: u.ID, PublicMetadata: map[string]any{}}
	if u.FirstName != nil {
		out.FirstName = *u.FirstName
	}
	if u.LastName != nil {
		out.LastName = *u.LastName
	}
	for _, e := range u.EmailAddresses {
		if e == nil {
			continue
		}
		if out.Email == "" || u.PrimaryEmailAddressID != nil && e.ID == *u.PrimaryEmailAddressID {
			out.Email = strings.ToLower(e.EmailAddress)
		}
	}
	if len(u.PublicMetadata) > 0 {
		_ = json.Unmarshal(u.PublicMetadata, &out.PublicMetadata)
		if out.PublicMetadata == nil {
			out.PublicMetadata = map[string]any{}
		}
	}
	return out
}

func rawJSON(v map[string]any) (*json.RawMessage, error) {
	if v == nil {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("identity: encode metadata: %w", err)
	}
	raw := json.RawMessage(b)
	return &raw, nil
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// clock adapts a time function to clerk.Clock.
type clock func() time.Time

func (c clock) Now() time.Time { return c().UTC() }

var _ engine.Identity = (*Clerk)(nil)
