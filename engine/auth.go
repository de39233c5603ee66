package engine

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// End-user sign-in without Clerk: when the server has no Clerk application,
// dream-api itself signs a platform's customers in. A customer made with a
// password keeps an argon2id hash of it (auth_password.go); sign-in with
// the platform's publishable key answers a short-lived JWT signed by
// dream-api (auth_token.go) that /api/me… accept exactly like a Clerk
// session, and a refresh token that is rotated on each use.
//
// Refresh tokens are `rt_<session id>_<secret>`: the session (one sign-in,
// a "family" of refresh tokens) stores the SHA-256 of its current secret
// and of its last used ones. A used token that comes back ends the
// session, so that a stolen refresh token works at most until its owner
// (or the thief) uses the other copy. A secret the session never had is
// refused and changes nothing: the session id alone (it is in the access
// tokens' `sid`) cannot end a session. Password reset tokens are `prt_<id>_<secret>`, stored hashed,
// one-time, and refused once the password changed after they were made.

// AuthConfig configures dream-api's own end-user sign-in. The zero value
// leaves it off (Clerk, or no sign-in at all).
type AuthConfig struct {
	// Enabled turns sign-in on: passwords of customers are kept (hashed)
	// and /api/auth/… answer. Off, a customer's password is ignored, as
	// it was before.
	Enabled bool
	// Issuer is the `iss` claim of the tokens (the server's public URL).
	// Tokens of another issuer are refused.
	Issuer string
	// AccessTTL is the life of an access token. Defaults to 15 minutes.
	AccessTTL time.Duration
	// RefreshTTL is how long a session lasts without being refreshed.
	// Defaults to 30 days.
	RefreshTTL time.Duration
	// ResetTTL is the life of a password reset token. Defaults to 30 minutes.
	ResetTTL time.Duration
	// KeyRotation is the age at which the signing key is replaced by a new
	// one; the old one keeps verifying (and stays in the JWKS) for
	// KeyOverlap. Defaults to 30 days and 24 hours.
	KeyRotation time.Duration
	KeyOverlap  time.Duration
	// Argon2 are the parameters of new password hashes. A hash made with
	// other parameters is re-made with these at the next sign-in.
	// Defaults to DefaultPasswordParams.
	Argon2 PasswordParams
	// MinPasswordLength defaults to 8 (characters).
	MinPasswordLength int
}

func (c *AuthConfig) ensureDefaults() {
	if c.AccessTTL == 0 {
		c.AccessTTL = 15 * time.Minute
	}
	if c.RefreshTTL == 0 {
		c.RefreshTTL = 30 * 24 * time.Hour
	}
	if c.ResetTTL == 0 {
		c.ResetTTL = 30 * time.Minute
	}
	if c.KeyRotation == 0 {
		c.KeyRotation = 30 * 24 * time.Hour
	}
	if c.KeyOverlap == 0 {
		c.KeyOverlap = 24 * time.Hour
	}
	if c.Argon2 == (PasswordParams{}) {
		c.Argon2 = DefaultPasswordParams
	}
	if c.MinPasswordLength == 0 {
		c.MinPasswordLength = 8
	}
}

// CustomerPassword is a customer's password as stored: an argon2id hash
// and the parameters it was made with.
type CustomerPassword struct {
	PasswordParams
	Salt      []byte    `json:"salt"`
	Hash      []byte    `json:"hash"`
	ChangedAt time.Time `json:"changedAt"`
}

// SignInSession is one sign-in of a customer: the family of refresh tokens
// that follow from it. Only the hash of the current token is stored.
type SignInSession struct {
	ID         string `json:"id"`
	PlatformID string `json:"platformId"`
	Mode       Mode   `json:"mode"`
	CustomerID string `json:"customerId"`
	TokenHash  []byte `json:"tokenHash"`
	// Used are the hashes of the session's last used tokens, newest first
	// (at most maxUsedTokens): one of them coming back is a reuse.
	Used        [][]byte  `json:"used,omitempty"`
	CreatedAt   time.Time `json:"createdAt"`
	RefreshedAt time.Time `json:"refreshedAt"`
	ExpiresAt   time.Time `json:"expiresAt"`
}

// maxUsedTokens is how many used refresh tokens of a session are
// remembered: an older one coming back is refused without ending the
// session.
const maxUsedTokens = 32

// Tenant is the world the session's customer lives in.
func (s *SignInSession) Tenant() Tenant { return Tenant{PlatformID: s.PlatformID, Mode: s.Mode} }

// token reports whether hash is the session's current token, and whether
// it is one of its used ones.
func (s *SignInSession) token(hash [32]byte) (current, used bool) {
	if subtle.ConstantTimeCompare(s.TokenHash, hash[:]) == 1 {
		return true, false
	}
	for _, u := range s.Used {
		if subtle.ConstantTimeCompare(u, hash[:]) == 1 {
			return false, true
		}
	}
	return false, false
}

// PasswordReset is an outstanding password reset, stored hashed.
type PasswordReset struct {
	ID         string    `json:"id"`
	PlatformID string    `json:"platformId"`
	Mode       Mode      `json:"mode"`
	CustomerID string    `json:"customerId"`
	TokenHash  []byte    `json:"tokenHash"`
	CreatedAt  time.Time `json:"createdAt"`
	ExpiresAt  time.Time `json:"expiresAt"`
}

// AuthStore reads what end-user sign-in keeps. Methods return ENOTFOUND
// when there is no such record.
type AuthStore interface {
	CustomerPassword(ctx context.Context, t Tenant, customerID string) (*CustomerPassword, error)
	SignInSession(ctx context.Context, id string) (*SignInSession, error)
	// SignInSessions lists a customer's sessions (none is not an error).
	SignInSessions(ctx context.Context, t Tenant, customerID string) ([]*SignInSession, error)
	PasswordReset(ctx context.Context, id string) (*PasswordReset, error)
	// SigningKeys lists every stored signing key, oldest first.
	SigningKeys(ctx context.Context) ([]*SigningKey, error)
}

// AuthBatch writes what end-user sign-in keeps.
type AuthBatch interface {
	PutCustomerPassword(t Tenant, customerID string, p *CustomerPassword)
	DeleteCustomerPassword(t Tenant, customerID string)
	// PutSignInSession writes s and its entry in the customer's list.
	PutSignInSession(s *SignInSession)
	DeleteSignInSession(s *SignInSession)
	PutPasswordReset(r *PasswordReset)
	DeletePasswordReset(id string)
	// PutSigningKey writes k; Watch listeners are told (Change.SigningKey).
	PutSigningKey(k *SigningKey)
}

// signingKeysLock guards the server's signing keys (rotation).
func signingKeysLock() Lock { return Lock{Kind: LockSigningKeys} }

// AuthCounters count what sign-in did, for /metrics. Safe for concurrent use.
type AuthCounters struct {
	SignIns, SignInFailures, Throttled atomic.Int64
	Refreshes, RefreshFailures         atomic.Int64
	RefreshReuses                      atomic.Int64
	SignOuts, Resets, ResetFailures    atomic.Int64
}

// EndUserAuth is dream-api's own end-user sign-in (see AuthConfig). Safe
// for concurrent use.
type EndUserAuth struct {
	c        *core
	cfg      AuthConfig
	keys     signingKeys
	throttle *throttle
	// Counters are read by /metrics.
	Counters AuthCounters
	// dummy is a hash to verify passwords against for unknown emails, so
	// that they cost what a known one does.
	dummyOnce sync.Once
	dummy     *CustomerPassword
}

func newEndUserAuth(c *core, cfg AuthConfig) *EndUserAuth {
	cfg.ensureDefaults()
	return &EndUserAuth{c: c, cfg: cfg, keys: signingKeys{byID: map[string]*verifyKey{}}, throttle: newThrottle()}
}

// Enabled reports whether dream-api signs end users in itself.
func (a *EndUserAuth) Enabled() bool { return a.cfg.Enabled }

func (a *EndUserAuth) enabled() error {
	if !a.cfg.Enabled {
		if a.c.identity != nil {
			return Errorf(EFORBIDDEN, "This server signs end users in with Clerk: use Clerk's sign-in and send its session token.")
		}
		return Errorf(EFORBIDDEN, "End-user sign-in is not enabled on this server.")
	}
	return nil
}

// PasswordSignIn is the body of POST /api/auth/sign-in. PublishableKey
// may also come as `?pk=` or `Authorization: Bearer pk_…`.
type PasswordSignIn struct {
	Email          string `json:"email"`
	Password       string `json:"password"`
	PublishableKey string `json:"publishableKey"`
}

// RefreshInput is the body of POST /api/auth/refresh and /api/auth/sign-out.
type RefreshInput struct {
	RefreshToken   string `json:"refreshToken"`
	PublishableKey string `json:"publishableKey"`
}

// ResetPasswordInput is the body of POST /api/auth/password-reset.
type ResetPasswordInput struct {
	Token          string `json:"token"`
	Password       string `json:"password"`
	PublishableKey string `json:"publishableKey"`
}

// AuthTokens answer a sign-in or a refresh.
type AuthTokens struct {
	Token        string    `json:"token"`
	ExpiresAt    time.Time `json:"expiresAt"`
	RefreshToken string    `json:"refreshToken"`
}

// ResetToken answers POST /api/customers/{id}/password-reset: the developer
// sends Token to the customer (dream-api sends no mail).
type ResetToken struct {
	Token      string    `json:"token"`
	ExpiresAt  time.Time `json:"expiresAt"`
	CustomerID string    `json:"customerId"`
}

const (
	prefixRefreshToken = "rt_"
	prefixResetToken   = "prt_"
)

// errBadCredentials is the one answer to a wrong email or password.
func errBadCredentials() error {
	return Errorf(EINVALIDAPIKEY, "The email or password is incorrect.")
}

func errBadRefresh() error {
	return Errorf(EINVALIDAPIKEY, "The refresh token is invalid, expired or revoked: sign in again.")
}

// SignIn checks a customer's email and password in t (the tenant of the
// publishable key the front end sent) and starts a session. ip is the
// client's address, for throttling.
//
// Returns EINVALIDAPIKEY for an unknown email or a wrong password (one
// answer for both, after the same work), ERATELIMITED while the account or
// the address is throttled after repeated failures, EFORBIDDEN when the
// server does not sign end users in itself.
func (a *EndUserAuth) SignIn(ctx context.Context, t Tenant, ip string, in PasswordSignIn) (*AuthTokens, error) {
	if err := a.enabled(); err != nil {
		return nil, err
	}
	var v Validation
	if in.Email == "" {
		v.Add("email", "is required")
	}
	if in.Password == "" {
		v.Add("password", "is required")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	// Unparsable emails are throttled and answered like unknown ones.
	email := strings.ToLower(strings.TrimSpace(in.Email))
	if len(email) > maxEmailLen {
		email = email[:maxEmailLen]
	}
	acct := "a\x00" + t.PlatformID + "\x00" + t.Mode.String() + "\x00" + email
	now := a.c.now()
	if wait := a.throttle.attempt(now, acct, ip); wait > 0 {
		a.Counters.Throttled.Add(1)
		return nil, rateLimited(wait)
	}
	// No stored password is longer: a longer one is checked on its first
	// bytes (the same work) and refused.
	tooLong := len(in.Password) > maxPasswordBytes
	if tooLong {
		in.Password = in.Password[:maxPasswordBytes]
	}

	var cus *Customer
	var pw *CustomerPassword
	if e, err := normalizeEmail(in.Email); err == nil {
		id, err := a.c.store.CustomerIDByEmail(ctx, t, e)
		if err == nil {
			if cus, err = a.c.store.Customer(ctx, t, id); err == nil {
				pw, err = a.c.store.CustomerPassword(ctx, t, id)
			}
		}
		if err != nil && ErrorCode(err) != ENOTFOUND {
			return nil, err
		}
	}
	if pw == nil {
		// The same work as a known email: no answer or timing tells
		// whether the account exists.
		a.dummyHash().verify(in.Password)
		a.Counters.SignInFailures.Add(1)
		return nil, errBadCredentials()
	}
	if !pw.verify(in.Password) || tooLong {
		a.Counters.SignInFailures.Add(1)
		return nil, errBadCredentials()
	}
	var upgraded *CustomerPassword
	if pw.PasswordParams != a.cfg.Argon2 {
		upgraded = hashCustomerPassword(a.cfg.Argon2, in.Password, pw.ChangedAt)
	}
	tokens, err := a.startSession(ctx, t, cus, pw, upgraded)
	if err != nil {
		return nil, err
	}
	a.throttle.success(acct, ip)
	a.Counters.SignIns.Add(1)
	return tokens, nil
}

func rateLimited(wait time.Duration) error {
	secs := int((wait + time.Second - 1) / time.Second)
	return &Error{Code: ERATELIMITED, Message: "Too many failed sign-ins: try again later.", RetryAfter: secs}
}

// startSession writes a new session for cus, in a unit of work that checks
// the password is still the one verified (and stores its upgrade).
func (a *EndUserAuth) startSession(ctx context.Context, t Tenant, cus *Customer, verified, upgraded *CustomerPassword) (*AuthTokens, error) {
	now := a.c.now().UTC()
	secret, hash := newTokenSecret()
	sess := &SignInSession{
		ID: NewID("ses_", now), PlatformID: t.PlatformID, Mode: t.Mode, CustomerID: cus.ID,
		TokenHash: hash, CreatedAt: now, RefreshedAt: now, ExpiresAt: now.Add(a.cfg.RefreshTTL),
	}
	res, err := a.c.store.Update(ctx, []Lock{customerLock(t, cus.ID)}, func(tx Tx) (any, error) {
		cur, err := customerIn(ctx, tx, t, cus.ID)
		if err != nil {
			return nil, errBadCredentials()
		}
		pw, err := tx.CustomerPassword(ctx, t, cus.ID)
		if ErrorCode(err) == ENOTFOUND || err == nil && subtle.ConstantTimeCompare(pw.Hash, verified.Hash) != 1 {
			return nil, errBadCredentials() // changed since it was checked
		} else if err != nil {
			return nil, err
		}
		if upgraded != nil {
			tx.PutCustomerPassword(t, cus.ID, upgraded)
		}
		if err := pruneSessions(ctx, tx, t, cus.ID, now); err != nil {
			return nil, err
		}
		tx.PutSignInSession(sess)
		return cur, nil
	})
	if err != nil {
		return nil, err
	}
	return a.issue(ctx, res.(*Customer), sess, secret)
}

// issue signs an access token for cus and returns it with the session's
// refresh token.
func (a *EndUserAuth) issue(ctx context.Context, cus *Customer, sess *SignInSession, secret string) (*AuthTokens, error) {
	tok, exp, err := a.sign(ctx, cus, sess.ID)
	if err != nil {
		return nil, err
	}
	return &AuthTokens{Token: tok, ExpiresAt: exp, RefreshToken: prefixRefreshToken + sess.ID + "_" + secret}, nil
}

// Refresh rotates a refresh token: the session's next token and a new
// access token. A token that was already used ends the session.
//
// Returns EINVALIDAPIKEY for a token that is malformed, unknown, expired,
// revoked or already used, or that belongs to another tenant than t.
func (a *EndUserAuth) Refresh(ctx context.Context, t Tenant, token string) (*AuthTokens, error) {
	if err := a.enabled(); err != nil {
		return nil, err
	}
	id, hash, ok := splitToken(prefixRefreshToken, "ses_", token)
	if !ok {
		a.Counters.RefreshFailures.Add(1)
		return nil, errBadRefresh()
	}
	sess, err := a.c.store.SignInSession(ctx, id)
	if ErrorCode(err) == ENOTFOUND || err == nil && sess.Tenant() != t {
		a.Counters.RefreshFailures.Add(1)
		return nil, errBadRefresh()
	} else if err != nil {
		return nil, err
	}
	secret, next := newTokenSecret()
	reused := false
	now := a.c.now().UTC()
	res, err := a.c.store.Update(ctx, []Lock{customerLock(t, sess.CustomerID)}, func(tx Tx) (any, error) {
		reused = false // this run's finding: a unit may run again (Store.Update)
		s, err := tx.SignInSession(ctx, id)
		if ErrorCode(err) == ENOTFOUND {
			return nil, errBadRefresh()
		} else if err != nil {
			return nil, err
		}
		switch current, used := s.token(hash); {
		case used:
			// An old token of this session: it was used before, by its
			// owner or by someone who copied it. End the session.
			reused = true
			tx.DeleteSignInSession(s)
			return nil, nil
		case !current:
			return nil, errBadRefresh()
		}
		cus, err := customerIn(ctx, tx, t, s.CustomerID)
		if err != nil || !now.Before(s.ExpiresAt) {
			tx.DeleteSignInSession(s)
			return nil, nil
		}
		s.Used = append([][]byte{s.TokenHash}, s.Used[:min(len(s.Used), maxUsedTokens-1)]...)
		s.TokenHash, s.RefreshedAt, s.ExpiresAt = next, now, now.Add(a.cfg.RefreshTTL)
		tx.PutSignInSession(s)
		return &sessionCustomer{s, cus}, nil
	})
	if err != nil {
		a.Counters.RefreshFailures.Add(1)
		return nil, err
	}
	if res == nil || res.(*sessionCustomer) == nil {
		if reused {
			a.Counters.RefreshReuses.Add(1)
			a.c.log.Warn("a refresh token was used twice; its session is revoked", "session", id, "platform", t.PlatformID)
		}
		a.Counters.RefreshFailures.Add(1)
		return nil, errBadRefresh()
	}
	sc := res.(*sessionCustomer)
	a.Counters.Refreshes.Add(1)
	return a.issue(ctx, sc.cus, sc.sess, secret)
}

type sessionCustomer struct {
	sess *SignInSession
	cus  *Customer
}

// SignOut ends the session of a refresh token, its current one or a used
// one (whose reuse would end it anyway). Signing out of a session that has
// already ended succeeds. Returns EINVALIDAPIKEY for a token that is
// malformed, of another tenant than t, or not one of the session's.
func (a *EndUserAuth) SignOut(ctx context.Context, t Tenant, token string) error {
	if err := a.enabled(); err != nil {
		return err
	}
	id, hash, ok := splitToken(prefixRefreshToken, "ses_", token)
	if !ok {
		return errBadRefresh()
	}
	sess, err := a.c.store.SignInSession(ctx, id)
	if ErrorCode(err) == ENOTFOUND {
		return nil
	} else if err != nil {
		return err
	}
	if sess.Tenant() != t {
		return errBadRefresh()
	}
	_, err = a.c.store.Update(ctx, []Lock{customerLock(t, sess.CustomerID)}, func(tx Tx) (any, error) {
		s, err := tx.SignInSession(ctx, id)
		if ErrorCode(err) == ENOTFOUND {
			return nil, nil
		} else if err != nil {
			return nil, err
		}
		if current, used := s.token(hash); !current && !used {
			return nil, errBadRefresh()
		}
		tx.DeleteSignInSession(s)
		return nil, nil
	})
	if err == nil {
		a.Counters.SignOuts.Add(1)
	}
	return err
}

// Sessions lists a customer's sessions (for the dashboard). Returns
// ENOTFOUND when t has no such customer.
func (a *EndUserAuth) Sessions(ctx context.Context, t Tenant, customerID string) ([]*SignInSession, error) {
	if _, err := customerIn(ctx, a.c.store, t, customerID); err != nil {
		return nil, err
	}
	ss, err := a.c.store.SignInSessions(ctx, t, customerID)
	for _, s := range ss {
		s.TokenHash = nil
	}
	return ss, err
}

// RevokeSessions ends every session of a customer and returns how many
// there were. Returns ENOTFOUND when t has no such customer.
func (a *EndUserAuth) RevokeSessions(ctx context.Context, t Tenant, customerID string) (int, error) {
	res, err := a.c.store.Update(ctx, []Lock{customerLock(t, customerID)}, func(tx Tx) (any, error) {
		if _, err := customerIn(ctx, tx, t, customerID); err != nil {
			return nil, err
		}
		return revokeSessions(ctx, tx, t, customerID)
	})
	if err != nil {
		return 0, err
	}
	return res.(int), nil
}

// maxSessions bounds a customer's sessions: a new sign-in ends the oldest
// beyond it.
const maxSessions = 50

// pruneSessions deletes, before a new session of a customer is written,
// its expired sessions and the oldest beyond maxSessions-1, so that
// sessions nobody signs out of do not pile up.
func pruneSessions(ctx context.Context, tx Tx, t Tenant, customerID string, now time.Time) error {
	ss, err := tx.SignInSessions(ctx, t, customerID) // oldest first (ids sort by time)
	if err != nil {
		return err
	}
	live := 0
	for _, s := range ss {
		if !now.Before(s.ExpiresAt) {
			tx.DeleteSignInSession(s)
		} else {
			live++
		}
	}
	for _, s := range ss {
		if live < maxSessions {
			break
		}
		if now.Before(s.ExpiresAt) {
			tx.DeleteSignInSession(s)
			live--
		}
	}
	return nil
}

// revokeSessions deletes a customer's sessions in a unit of work holding
// its customer lock.
func revokeSessions(ctx context.Context, tx Tx, t Tenant, customerID string) (int, error) {
	ss, err := tx.SignInSessions(ctx, t, customerID)
	if err != nil {
		return 0, err
	}
	for _, s := range ss {
		tx.DeleteSignInSession(s)
	}
	return len(ss), nil
}

// CreateReset makes a one-time password reset token for a customer of t,
// valid for AuthConfig.ResetTTL. With an Idempotency-Key, a replay answers
// the same token (its record is sealed). Returns ENOTFOUND.
func (a *EndUserAuth) CreateReset(ctx context.Context, t Tenant, customerID string, idem *Idempotency) (*ResetToken, error) {
	if err := a.enabled(); err != nil {
		return nil, err
	}
	if idem != nil {
		idem.Sensitive = true // the answer holds the token
	}
	res, err := a.c.update(ctx, t, idem, []Lock{customerLock(t, customerID)}, func(tx Tx) (any, error) {
		if _, err := customerIn(ctx, tx, t, customerID); err != nil {
			return nil, err
		}
		now := a.c.now().UTC()
		secret, hash := newTokenSecret()
		r := &PasswordReset{
			ID: NewID("prs_", now), PlatformID: t.PlatformID, Mode: t.Mode, CustomerID: customerID,
			TokenHash: hash, CreatedAt: now, ExpiresAt: now.Add(a.cfg.ResetTTL),
		}
		tx.PutPasswordReset(r)
		return &ResetToken{Token: prefixResetToken + r.ID + "_" + secret, ExpiresAt: r.ExpiresAt, CustomerID: customerID}, nil
	})
	if err != nil {
		return nil, err
	}
	return res.(*ResetToken), nil
}

// ResetPassword sets a customer's password with a reset token, once, and
// ends the customer's sessions. Returns EINVALIDAPIKEY for a token that is
// malformed, unknown, used, expired, older than the password or of another
// tenant than t, EVALIDATION for a password that is refused.
func (a *EndUserAuth) ResetPassword(ctx context.Context, t Tenant, in ResetPasswordInput) error {
	if err := a.enabled(); err != nil {
		return err
	}
	bad := func() error {
		a.Counters.ResetFailures.Add(1)
		return Errorf(EINVALIDAPIKEY, "The reset token is invalid, expired or already used.")
	}
	id, hash, ok := splitToken(prefixResetToken, "prs_", in.Token)
	if !ok {
		return bad()
	}
	r, err := a.c.store.PasswordReset(ctx, id)
	if ErrorCode(err) == ENOTFOUND || err == nil && (r.Tenant() != t || subtle.ConstantTimeCompare(r.TokenHash, hash[:]) != 1) {
		return bad()
	} else if err != nil {
		return err
	}
	pw, err := a.newPassword(in.Password)
	if err != nil {
		return err
	}
	now := a.c.now()
	res, err := a.c.store.Update(ctx, []Lock{customerLock(t, r.CustomerID)}, func(tx Tx) (any, error) {
		r, err := tx.PasswordReset(ctx, id)
		if ErrorCode(err) == ENOTFOUND {
			return nil, bad()
		} else if err != nil {
			return nil, err
		}
		// Used or refused, a token is gone: its deletion is written.
		tx.DeletePasswordReset(id)
		if !now.Before(r.ExpiresAt) {
			return false, nil
		}
		if _, err := customerIn(ctx, tx, t, r.CustomerID); err != nil {
			return false, nil
		}
		if old, err := tx.CustomerPassword(ctx, t, r.CustomerID); err == nil && old.ChangedAt.After(r.CreatedAt) {
			return false, nil // the password changed since: the token is stale
		} else if err != nil && ErrorCode(err) != ENOTFOUND {
			return nil, err
		}
		tx.PutCustomerPassword(t, r.CustomerID, pw)
		if _, err := revokeSessions(ctx, tx, t, r.CustomerID); err != nil {
			return nil, err
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	if res != true {
		return bad()
	}
	a.Counters.Resets.Add(1)
	return nil
}

// Tenant is the world the reset's customer lives in.
func (r *PasswordReset) Tenant() Tenant { return Tenant{PlatformID: r.PlatformID, Mode: r.Mode} }

// passwordForCreate is called by Customers.Create before its unit of work:
// the hash of in's password, or nil when there is none or sign-in is off.
func (a *EndUserAuth) passwordForCreate(password string) (*CustomerPassword, error) {
	if !a.cfg.Enabled || password == "" {
		return nil, nil
	}
	return a.newPassword(password)
}

// passwordForUpdate is passwordForCreate for PATCH: setting a password
// needs sign-in to be on.
func (a *EndUserAuth) passwordForUpdate(password *string) (*CustomerPassword, error) {
	if password == nil {
		return nil, nil
	}
	if err := a.enabled(); err != nil {
		return nil, invalid("password", "cannot be set: %s", ErrorMessage(err))
	}
	return a.newPassword(*password)
}

// customerDeleted deletes what sign-in keeps of a customer, in the batch
// that deletes it.
func (a *EndUserAuth) customerDeleted(ctx context.Context, tx Tx, t Tenant, id string) error {
	tx.DeleteCustomerPassword(t, id)
	_, err := revokeSessions(ctx, tx, t, id)
	return err
}

// newTokenSecret returns a random secret for a token and its SHA-256.
func newTokenSecret() (string, []byte) {
	var b [32]byte
	rand.Read(b[:])
	s := base64.RawURLEncoding.EncodeToString(b[:])
	h := sha256.Sum256([]byte(s))
	return s, h[:]
}

// splitToken parses prefix + id + "_" + secret, where id starts with
// idPrefix, and returns the id and the secret's SHA-256.
func splitToken(prefix, idPrefix, tok string) (string, [32]byte, bool) {
	rest, ok := strings.CutPrefix(tok, prefix)
	if !ok || len(tok) > 200 || !strings.HasPrefix(rest, idPrefix) {
		return "", [32]byte{}, false
	}
	// ids are prefix + 26 base32 characters; the secret may contain '_'.
	n := len(idPrefix) + 26
	if len(rest) < n+2 || rest[n] != '_' {
		return "", [32]byte{}, false
	}
	id := rest[:n]
	for i := len(idPrefix); i < n; i++ {
		if !strings.ContainsRune(crockford, rune(id[i])) {
			return "", [32]byte{}, false
		}
	}
	return id, sha256.Sum256([]byte(rest[n+1:])), true
}
