package engine_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/storage"
)

// cheapPasswordParams keeps the tests' password hashes quick; the parameters are
// stored with each hash either way.
var cheapPasswordParams = engine.PasswordParams{Algorithm: "argon2id", Time: 1, MemoryKiB: 64, Threads: 1}

// authFixture is an engine with dream-api's own sign-in on a real store,
// with a clock the test moves, and two platforms.
type authFixture struct {
	dir    string
	store  *storage.Store
	eng    *engine.Engine
	params engine.PasswordParams
	a, b   *engine.NewPlatform

	mu  sync.Mutex
	now time.Time
}

func newAuthFixture(t *testing.T) *authFixture {
	t.Helper()
	f := &authFixture{dir: t.TempDir(), now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), params: cheapPasswordParams}
	f.open(t)
	ctx := context.Background()
	var err error
	if f.a, err = f.eng.Platforms.Create(ctx, engine.CreatePlatformInput{Name: "A"}, nil); err != nil {
		t.Fatal(err)
	}
	if f.b, err = f.eng.Platforms.Create(ctx, engine.CreatePlatformInput{Name: "B"}, nil); err != nil {
		t.Fatal(err)
	}
	return f
}

var testSealKey = []byte("0123456789abcdef0123456789abcdef")

func (f *authFixture) open(t *testing.T) {
	t.Helper()
	st, err := storage.Open(f.dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.store = st
	t.Cleanup(func() { st.Close() })
	sealer, err := engine.NewSealer(testSealKey)
	if err != nil {
		t.Fatal(err)
	}
	f.eng = engine.New(engine.Config{Store: st, Now: f.clock, Logger: quiet, Sealer: sealer,
		Auth: engine.AuthConfig{Enabled: true, Issuer: "https://dream.example", Argon2: f.params}})
}

func (f *authFixture) restart(t *testing.T) {
	t.Helper()
	if err := f.store.Close(); err != nil {
		t.Fatal(err)
	}
	f.open(t)
}

func (f *authFixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *authFixture) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func liveOf(np *engine.NewPlatform) engine.Tenant {
	return engine.Tenant{PlatformID: np.Platform.ID, Mode: engine.Live}
}

func testOf(np *engine.NewPlatform) engine.Tenant {
	return engine.Tenant{PlatformID: np.Platform.ID, Mode: engine.Test}
}

const goodPassword = "correct horse battery"

func (f *authFixture) customer(t *testing.T, np *engine.NewPlatform, email, password string) *engine.Customer {
	t.Helper()
	c, err := f.eng.Customers.Create(context.Background(), liveOf(np), np.PublishableKey,
		engine.CreateCustomerInput{Email: email, Password: password}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *authFixture) signIn(t *testing.T, tn engine.Tenant, email, password string) *engine.AuthTokens {
	t.Helper()
	tok, err := f.eng.Auth.SignIn(context.Background(), tn, "192.0.2.1", engine.PasswordSignIn{Email: email, Password: password})
	if err != nil {
		t.Fatalf("SignIn(%s): %v", email, err)
	}
	return tok
}

func claimsOf(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWT", token)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestEndUserSignInToken(t *testing.T) {
	f := newAuthFixture(t)
	ctx := context.Background()
	c := f.customer(t, f.a, "ann@example.com", goodPassword)
	tok := f.signIn(t, liveOf(f.a), "Ann@Example.com", goodPassword)
	if !strings.HasPrefix(tok.RefreshToken, "rt_ses_") || tok.Token == "" {
		t.Fatalf("tokens %+v", tok)
	}
	if want := f.clock().Add(15 * time.Minute); !tok.ExpiresAt.Equal(want) {
		t.Errorf("expiresAt %v, want %v", tok.ExpiresAt, want)
	}
	cl := claimsOf(t, tok.Token)
	for k, want := range map[string]any{"sub": c.ID, "publishableKey": f.a.PublishableKey, "plan": "free", "iss": "https://dream.example",
		"exp": float64(f.clock().Add(15 * time.Minute).Unix())} {
		if cl[k] != want {
			t.Errorf("claim %s = %v, want %v", k, cl[k], want)
		}
	}
	eu, err := f.eng.AuthenticateEndUser(ctx, tok.Token)
	if err != nil {
		t.Fatal(err)
	}
	if eu.Customer.ID != c.ID || eu.Tenant != liveOf(f.a) {
		t.Errorf("signed in %s in %v, want %s in %v", eu.Customer.ID, eu.Tenant, c.ID, liveOf(f.a))
	}
	// A key is not a session token.
	_, err = f.eng.AuthenticateEndUser(ctx, f.a.PublishableKey)
	wantCode(t, "publishable key as token", err, engine.EFORBIDDEN)
	_, err = f.eng.AuthenticateEndUser(ctx, tok.RefreshToken)
	wantCode(t, "refresh token as access token", err, engine.EFORBIDDEN)
}

func TestEndUserPasswordRules(t *testing.T) {
	f := newAuthFixture(t)
	ctx := context.Background()
	for _, tc := range []struct{ name, password, want string }{
		{"short", "abc12", "at least 8"},
		{"common", "Password123", "most common"},
		{"common lowercase", "qwertyuiop", "most common"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.eng.Customers.Create(ctx, liveOf(f.a), f.a.PublishableKey,
				engine.CreateCustomerInput{Email: tc.name[:1] + "@example.com", Password: tc.password}, nil)
			wantCode(t, tc.name, err, engine.EVALIDATION)
			if e := err.(*engine.Error); len(e.Fields) != 1 || e.Fields[0].Field != "password" || !strings.Contains(e.Fields[0].Message, tc.want) {
				t.Errorf("fields %+v, want password: …%s…", e.Fields, tc.want)
			}
			if cs, _, _ := f.eng.Customers.List(ctx, liveOf(f.a), engine.Page{}, tc.name[:1]+"@example.com"); len(cs) != 0 {
				t.Errorf("a refused password made a customer")
			}
		})
	}

	// PATCH sets a new password and ends the sessions.
	c := f.customer(t, f.a, "pat@example.com", goodPassword)
	old := f.signIn(t, liveOf(f.a), "pat@example.com", goodPassword)
	next := "another long passphrase"
	if _, err := f.eng.Customers.Update(ctx, liveOf(f.a), c.ID, engine.UpdateCustomerInput{Password: &next}, nil); err != nil {
		t.Fatal(err)
	}
	_, err := f.eng.Auth.SignIn(ctx, liveOf(f.a), "192.0.2.9", engine.PasswordSignIn{Email: "pat@example.com", Password: goodPassword})
	wantCode(t, "old password", err, engine.EINVALIDAPIKEY)
	f.signIn(t, liveOf(f.a), "pat@example.com", next)
	_, err = f.eng.AuthenticateEndUser(ctx, old.Token)
	wantCode(t, "token of a session ended by the password change", err, engine.EINVALIDAPIKEY)
	_, err = f.eng.Auth.Refresh(ctx, liveOf(f.a), old.RefreshToken)
	wantCode(t, "refresh of a session ended by the password change", err, engine.EINVALIDAPIKEY)
	short := "short"
	_, err = f.eng.Customers.Update(ctx, liveOf(f.a), c.ID, engine.UpdateCustomerInput{Password: &short}, nil)
	wantCode(t, "PATCH short password", err, engine.EVALIDATION)
}

func TestEndUserPasswordHashUpgradedOnSignIn(t *testing.T) {
	f := newAuthFixture(t)
	ctx := context.Background()
	c := f.customer(t, f.a, "up@example.com", goodPassword)
	stored, err := f.store.CustomerPassword(ctx, liveOf(f.a), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.PasswordParams != cheapPasswordParams || len(stored.Salt) != 16 || strings.Contains(string(stored.Hash), goodPassword) {
		t.Fatalf("stored %+v", stored)
	}
	f.params = engine.PasswordParams{Algorithm: "argon2id", Time: 2, MemoryKiB: 128, Threads: 1}
	f.restart(t)
	f.signIn(t, liveOf(f.a), "up@example.com", goodPassword)
	stored, err = f.store.CustomerPassword(ctx, liveOf(f.a), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.PasswordParams != f.params {
		t.Errorf("after sign-in the hash has %+v, want %+v", stored.PasswordParams, f.params)
	}
	f.signIn(t, liveOf(f.a), "up@example.com", goodPassword) // the upgraded hash verifies
}

// TestEndUserTokenIsolation: a token, a refresh token and credentials of
// one platform and mode are refused in every other.
func TestEndUserTokenIsolation(t *testing.T) {
	f := newAuthFixture(t)
	ctx := context.Background()
	c := f.customer(t, f.a, "iso@example.com", goodPassword)
	tok := f.signIn(t, liveOf(f.a), "iso@example.com", goodPassword)

	for _, tn := range []engine.Tenant{liveOf(f.b), testOf(f.a)} {
		_, err := f.eng.Auth.SignIn(ctx, tn, "192.0.2.1", engine.PasswordSignIn{Email: "iso@example.com", Password: goodPassword})
		wantCode(t, "credentials in "+tn.PlatformID+" "+tn.Mode.String(), err, engine.EINVALIDAPIKEY)
		_, err = f.eng.Auth.Refresh(ctx, tn, tok.RefreshToken)
		wantCode(t, "refresh in "+tn.PlatformID+" "+tn.Mode.String(), err, engine.EINVALIDAPIKEY)
	}
	// The refresh token still works where it belongs: refusing it
	// elsewhere did not end its session.
	if _, err := f.eng.Auth.Refresh(ctx, liveOf(f.a), tok.RefreshToken); err != nil {
		t.Fatalf("refresh at home: %v", err)
	}

	// Tokens signed with the server's own key whose publishableKey claim
	// names another platform or mode than the customer's.
	sid := claimsOf(t, tok.Token)["sid"]
	now := f.clock().Unix()
	for name, pk := range map[string]string{"platform B": f.b.PublishableKey, "test mode": f.a.Test.PublishableKey} {
		forged, err := f.eng.Auth.SignForTest(ctx, map[string]any{"alg": "EdDSA", "typ": "JWT"}, map[string]any{
			"iss": "https://dream.example", "sub": c.ID, "sid": sid, "publishableKey": pk, "plan": "free",
			"iat": now, "nbf": now, "exp": now + 600,
		})
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.eng.AuthenticateEndUser(ctx, forged)
		wantCode(t, name, err, engine.EFORBIDDEN)
	}
}

// TestEndUserTokensRefused: every token that is not exactly one the server
// signed, for now, is refused.
func TestEndUserTokensRefused(t *testing.T) {
	f := newAuthFixture(t)
	ctx := context.Background()
	c := f.customer(t, f.a, "bad@example.com", goodPassword)
	tok := f.signIn(t, liveOf(f.a), "bad@example.com", goodPassword)
	jwks, err := f.eng.Auth.JWKS(ctx)
	if err != nil || len(jwks.Keys) != 1 {
		t.Fatalf("JWKS %+v, %v", jwks, err)
	}
	jwk := jwks.Keys[0]
	pub, _ := base64.RawURLEncoding.DecodeString(jwk.X)
	parts := strings.Split(tok.Token, ".")
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	claims := claimsOf(t, tok.Token)
	hs256 := func(secret []byte) string {
		in := enc(map[string]any{"alg": "HS256", "kid": jwk.Kid, "typ": "JWT"}) + "." + parts[1]
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(in))
		return in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	tampered := claims
	tampered["plan"] = "pro"
	sign := func(header, cl map[string]any) string {
		s, err := f.eng.Auth.SignForTest(ctx, header, cl)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	now := f.clock().Unix()
	base := func(mod map[string]any) map[string]any {
		m := map[string]any{"iss": "https://dream.example", "sub": c.ID, "sid": claims["sid"], "publishableKey": f.a.PublishableKey,
			"plan": "free", "iat": now, "nbf": now, "exp": now + 600}
		for k, v := range mod {
			m[k] = v
		}
		return m
	}
	for _, tc := range []struct{ name, token string }{
		{"tampered claims", parts[0] + "." + enc(tampered) + "." + parts[2]},
		{"tampered signature", parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 64))},
		{"alg none", enc(map[string]any{"alg": "none", "kid": jwk.Kid}) + "." + parts[1] + "."},
		{"alg none, our signature", enc(map[string]any{"alg": "none", "kid": jwk.Kid}) + "." + parts[1] + "." + parts[2]},
		{"HS256 with the public key", hs256(pub)},
		{"HS256 with the JWK's x", hs256([]byte(jwk.X))},
		{"unknown kid", sign(map[string]any{"alg": "EdDSA", "kid": "sgk_00000000000000000000000000"}, base(nil))},
		{"other issuer", sign(map[string]any{"alg": "EdDSA"}, base(map[string]any{"iss": "https://evil.example"}))},
		{"no exp", sign(map[string]any{"alg": "EdDSA"}, base(map[string]any{"exp": 0}))},
		{"not yet valid", sign(map[string]any{"alg": "EdDSA"}, base(map[string]any{"nbf": now + 3600}))},
		{"crit header", sign(map[string]any{"alg": "EdDSA", "crit": []string{"b64"}}, base(nil))},
		{"not a JWT", "abc.def"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.eng.AuthenticateEndUser(ctx, tc.token)
			wantCode(t, tc.name, err, engine.EINVALIDAPIKEY)
		})
	}
	// The real one passes, until it expires.
	if _, err := f.eng.AuthenticateEndUser(ctx, tok.Token); err != nil {
		t.Fatal(err)
	}
	f.advance(15 * time.Minute)
	_, err = f.eng.AuthenticateEndUser(ctx, tok.Token)
	wantCode(t, "expired", err, engine.EINVALIDAPIKEY)
}

func TestEndUserRefreshReuseRevokesSession(t *testing.T) {
	f := newAuthFixture(t)
	ctx := context.Background()
	f.customer(t, f.a, "re@example.com", goodPassword)
	first := f.signIn(t, liveOf(f.a), "re@example.com", goodPassword)
	second, err := f.eng.Auth.Refresh(ctx, liveOf(f.a), first.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if second.RefreshToken == first.RefreshToken || second.Token == "" {
		t.Fatalf("refresh did not rotate: %+v", second)
	}
	if _, err := f.eng.AuthenticateEndUser(ctx, second.Token); err != nil {
		t.Fatal(err)
	}
	// A made-up secret for the session's id (it is in the access token's
	// sid claim) is refused and ends nothing.
	forged := first.RefreshToken[:len("rt_ses_")+27] + "forgedforgedforgedforgedforgedforgedforged1"
	_, err = f.eng.Auth.Refresh(ctx, liveOf(f.a), forged)
	wantCode(t, "forged secret", err, engine.EINVALIDAPIKEY)
	err = f.eng.Auth.SignOut(ctx, liveOf(f.a), forged)
	wantCode(t, "sign-out with a forged secret", err, engine.EINVALIDAPIKEY)
	if _, err := f.eng.AuthenticateEndUser(ctx, second.Token); err != nil {
		t.Fatalf("after a forged refresh: %v", err)
	}
	// The first token again: the session ends, for both copies.
	_, err = f.eng.Auth.Refresh(ctx, liveOf(f.a), first.RefreshToken)
	wantCode(t, "reused refresh token", err, engine.EINVALIDAPIKEY)
	_, err = f.eng.Auth.Refresh(ctx, liveOf(f.a), second.RefreshToken)
	wantCode(t, "current token of a revoked session", err, engine.EINVALIDAPIKEY)
	_, err = f.eng.AuthenticateEndUser(ctx, second.Token)
	wantCode(t, "access token of a revoked session", err, engine.EINVALIDAPIKEY)
	if got := f.eng.Auth.Counters.RefreshReuses.Load(); got != 1 {
		t.Errorf("reuses counted %d, want 1", got)
	}

	// Another sign-in is untouched by it, and signs out.
	other := f.signIn(t, liveOf(f.a), "re@example.com", goodPassword)
	if err := f.eng.Auth.SignOut(ctx, liveOf(f.a), other.RefreshToken); err != nil {
		t.Fatal(err)
	}
	_, err = f.eng.Auth.Refresh(ctx, liveOf(f.a), other.RefreshToken)
	wantCode(t, "refresh after sign-out", err, engine.EINVALIDAPIKEY)
	_, err = f.eng.AuthenticateEndUser(ctx, other.Token)
	wantCode(t, "access token after sign-out", err, engine.EINVALIDAPIKEY)
	// Garbage is refused without a lookup.
	for _, bad := range []string{"", "rt_", "rt_ses_x_y", "rt_ses_0000000000000000000000000!_secret"} {
		_, err = f.eng.Auth.Refresh(ctx, liveOf(f.a), bad)
		wantCode(t, "refresh "+bad, err, engine.EINVALIDAPIKEY)
	}
}

func TestEndUserRefreshExpires(t *testing.T) {
	f := newAuthFixture(t)
	ctx := context.Background()
	f.customer(t, f.a, "exp@example.com", goodPassword)
	tok := f.signIn(t, liveOf(f.a), "exp@example.com", goodPassword)
	f.advance(29 * 24 * time.Hour)
	tok, err := f.eng.Auth.Refresh(ctx, liveOf(f.a), tok.RefreshToken) // slides
	if err != nil {
		t.Fatal(err)
	}
	f.advance(30 * 24 * time.Hour)
	_, err = f.eng.Auth.Refresh(ctx, liveOf(f.a), tok.RefreshToken)
	wantCode(t, "refresh after 30 idle days", err, engine.EINVALIDAPIKEY)
}

func TestEndUserResetTokenWorksOnce(t *testing.T) {
	f := newAuthFixture(t)
	ctx := context.Background()
	c := f.customer(t, f.a, "reset@example.com", goodPassword)
	session := f.signIn(t, liveOf(f.a), "reset@example.com", goodPassword)
	rt, err := f.eng.Auth.CreateReset(ctx, liveOf(f.a), c.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(rt.Token, "prt_prs_") || !rt.ExpiresAt.Equal(f.clock().Add(30*time.Minute)) {
		t.Fatalf("reset token %+v", rt)
	}
	_, err = f.eng.Auth.CreateReset(ctx, liveOf(f.b), c.ID, nil)
	wantCode(t, "reset of another platform's customer", err, engine.ENOTFOUND)

	// Refused in another tenant, and for a weak password: still usable.
	err = f.eng.Auth.ResetPassword(ctx, liveOf(f.b), engine.ResetPasswordInput{Token: rt.Token, Password: "a new long passphrase"})
	wantCode(t, "reset in platform B", err, engine.EINVALIDAPIKEY)
	err = f.eng.Auth.ResetPassword(ctx, liveOf(f.a), engine.ResetPasswordInput{Token: rt.Token, Password: "password1"})
	wantCode(t, "common password", err, engine.EVALIDATION)

	if err := f.eng.Auth.ResetPassword(ctx, liveOf(f.a), engine.ResetPasswordInput{Token: rt.Token, Password: "a new long passphrase"}); err != nil {
		t.Fatal(err)
	}
	err = f.eng.Auth.ResetPassword(ctx, liveOf(f.a), engine.ResetPasswordInput{Token: rt.Token, Password: "yet another passphrase"})
	wantCode(t, "second use", err, engine.EINVALIDAPIKEY)
	f.signIn(t, liveOf(f.a), "reset@example.com", "a new long passphrase")
	_, err = f.eng.Auth.Refresh(ctx, liveOf(f.a), session.RefreshToken)
	wantCode(t, "session from before the reset", err, engine.EINVALIDAPIKEY)

	// Expired after 30 minutes.
	rt, _ = f.eng.Auth.CreateReset(ctx, liveOf(f.a), c.ID, nil)
	f.advance(30 * time.Minute)
	err = f.eng.Auth.ResetPassword(ctx, liveOf(f.a), engine.ResetPasswordInput{Token: rt.Token, Password: "expired passphrase"})
	wantCode(t, "expired reset", err, engine.EINVALIDAPIKEY)

	// Stale once the password changed after it was made.
	rt, _ = f.eng.Auth.CreateReset(ctx, liveOf(f.a), c.ID, nil)
	f.advance(time.Second)
	pw := "changed by the developer"
	if _, err := f.eng.Customers.Update(ctx, liveOf(f.a), c.ID, engine.UpdateCustomerInput{Password: &pw}, nil); err != nil {
		t.Fatal(err)
	}
	err = f.eng.Auth.ResetPassword(ctx, liveOf(f.a), engine.ResetPasswordInput{Token: rt.Token, Password: "stale token passphrase"})
	wantCode(t, "reset made before a password change", err, engine.EINVALIDAPIKEY)
	f.signIn(t, liveOf(f.a), "reset@example.com", pw)
}

// TestEndUserSignInThrottled: repeated failures make an account wait,
// longer each time, on the engine's clock; an unknown email gets exactly
// the same answers.
func TestEndUserSignInThrottled(t *testing.T) {
	f := newAuthFixture(t)
	ctx := context.Background()
	f.customer(t, f.a, "known@example.com", goodPassword)
	type answer struct {
		code, msg  string
		retryAfter int
	}
	try := func(email, password, ip string) answer {
		_, err := f.eng.Auth.SignIn(ctx, liveOf(f.a), ip, engine.PasswordSignIn{Email: email, Password: password})
		if err == nil {
			return answer{code: "ok"}
		}
		e := err.(*engine.Error)
		return answer{e.Code, e.Message, e.RetryAfter}
	}
	run := func(email, ip string) []answer {
		var out []answer
		for range 5 {
			out = append(out, try(email, "wrong password!", ip))
		}
		out = append(out, try(email, "wrong password!", ip)) // throttled: 1 s
		f.advance(time.Second)
		out = append(out, try(email, "wrong password!", ip)) // 6th failure
		out = append(out, try(email, "wrong password!", ip)) // throttled: 2 s
		return out
	}
	known := run("known@example.com", "198.51.100.1")
	unknown := run("nobody@example.com", "198.51.100.2")
	for i := range known {
		if known[i] != unknown[i] {
			t.Errorf("attempt %d: known email %+v, unknown %+v", i+1, known[i], unknown[i])
		}
	}
	for i, want := range []answer{{code: engine.EINVALIDAPIKEY}, {code: engine.ERATELIMITED, retryAfter: 1}, {code: engine.EINVALIDAPIKEY}, {code: engine.ERATELIMITED, retryAfter: 2}} {
		got := known[4+i]
		if got.code != want.code || got.retryAfter != want.retryAfter {
			t.Errorf("attempt %d: %+v, want %s retry %d", 5+i, got, want.code, want.retryAfter)
		}
	}
	// While throttled, even the right password waits; after the delay it
	// signs in and the account's count starts over.
	if got := try("known@example.com", goodPassword, "198.51.100.1"); got.code != engine.ERATELIMITED {
		t.Errorf("right password while throttled: %+v", got)
	}
	f.advance(2 * time.Second)
	if got := try("known@example.com", goodPassword, "198.51.100.1"); got.code != "ok" {
		t.Errorf("right password after the delay: %+v", got)
	}
	if got := try("known@example.com", "wrong password!", "198.51.100.3"); got.code != engine.EINVALIDAPIKEY {
		t.Errorf("after a success: %+v", got)
	}

	// One address failing on many accounts is throttled too.
	var last answer
	for i := range 21 {
		last = try("spray"+string(rune('a'+i))+"@example.com", "wrong password!", "203.0.113.7")
	}
	if last.code != engine.ERATELIMITED {
		t.Errorf("21st failure from one address: %+v", last)
	}
	if got := f.eng.Auth.Counters.Throttled.Load(); got < 5 {
		t.Errorf("throttled counted %d", got)
	}
}

// TestEndUserSessionsSurviveRestart: signing keys, sessions and the
// tokens they issued outlive the process.
func TestEndUserSessionsSurviveRestart(t *testing.T) {
	f := newAuthFixture(t)
	ctx := context.Background()
	f.customer(t, f.a, "keep@example.com", goodPassword)
	tok := f.signIn(t, liveOf(f.a), "keep@example.com", goodPassword)
	before, _ := f.eng.Auth.JWKS(ctx)
	f.restart(t)
	after, _ := f.eng.Auth.JWKS(ctx)
	if len(after.Keys) != 1 || after.Keys[0] != before.Keys[0] {
		t.Errorf("JWKS after restart %+v, before %+v", after, before)
	}
	if _, err := f.eng.AuthenticateEndUser(ctx, tok.Token); err != nil {
		t.Errorf("access token after restart: %v", err)
	}
	if _, err := f.eng.Auth.Refresh(ctx, liveOf(f.a), tok.RefreshToken); err != nil {
		t.Errorf("refresh after restart: %v", err)
	}
}

func TestEndUserSigningKeyRotation(t *testing.T) {
	f := newAuthFixture(t)
	ctx := context.Background()
	f.customer(t, f.a, "rot@example.com", goodPassword)
	old := f.signIn(t, liveOf(f.a), "rot@example.com", goodPassword)
	if err := f.eng.Auth.RotateSigningKey(ctx); err != nil {
		t.Fatal(err)
	}
	jwks, _ := f.eng.Auth.JWKS(ctx)
	if len(jwks.Keys) != 2 {
		t.Fatalf("JWKS after rotation has %d keys", len(jwks.Keys))
	}
	fresh := f.signIn(t, liveOf(f.a), "rot@example.com", goodPassword)
	kid := func(tok string) string {
		b, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
		var h map[string]any
		json.Unmarshal(b, &h)
		return h["kid"].(string)
	}
	if kid(fresh.Token) != jwks.Keys[0].Kid || kid(old.Token) != jwks.Keys[1].Kid {
		t.Errorf("kids: fresh %s old %s, JWKS %+v", kid(fresh.Token), kid(old.Token), jwks.Keys)
	}
	if _, err := f.eng.AuthenticateEndUser(ctx, old.Token); err != nil {
		t.Errorf("token of the old key: %v", err)
	}
	// After the overlap only the new key is published; and past
	// KeyRotation the next signature rotates by itself.
	f.advance(25 * time.Hour)
	if jwks, _ = f.eng.Auth.JWKS(ctx); len(jwks.Keys) != 1 || jwks.Keys[0].Kid != kid(fresh.Token) {
		t.Errorf("JWKS after the overlap %+v", jwks.Keys)
	}
	f.advance(30 * 24 * time.Hour)
	later := f.signIn(t, liveOf(f.a), "rot@example.com", goodPassword)
	if kid(later.Token) == kid(fresh.Token) {
		t.Errorf("the key was not rotated after 30 days")
	}
}

func TestEndUserCustomerDeleteEndsSessions(t *testing.T) {
	f := newAuthFixture(t)
	ctx := context.Background()
	c := f.customer(t, f.a, "del@example.com", goodPassword)
	tok := f.signIn(t, liveOf(f.a), "del@example.com", goodPassword)
	if err := f.eng.Customers.Delete(ctx, liveOf(f.a), c.ID, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.CustomerPassword(ctx, liveOf(f.a), c.ID); engine.ErrorCode(err) != engine.ENOTFOUND {
		t.Errorf("password after delete: %v", err)
	}
	if ss, _ := f.store.SignInSessions(ctx, liveOf(f.a), c.ID); len(ss) != 0 {
		t.Errorf("%d sessions after delete", len(ss))
	}
	_, err := f.eng.Auth.Refresh(ctx, liveOf(f.a), tok.RefreshToken)
	wantCode(t, "refresh of a deleted customer", err, engine.EINVALIDAPIKEY)
	// The email is free again, and its new customer is not the old one.
	f.customer(t, f.a, "del@example.com", "a different passphrase")
	_, err = f.eng.AuthenticateEndUser(ctx, tok.Token)
	if engine.ErrorCode(err) == "" {
		t.Errorf("the deleted customer's token still signs in")
	}
}

func TestEndUserSignInOff(t *testing.T) {
	st, err := storage.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	eng := engine.New(engine.Config{Store: st, Logger: quiet})
	_, err = eng.Auth.SignIn(context.Background(), engine.Tenant{PlatformID: "plt_x"}, "", engine.PasswordSignIn{Email: "a@b.co", Password: "x"})
	wantCode(t, "sign-in off", err, engine.EFORBIDDEN)
	_, err = eng.AuthenticateEndUser(context.Background(), "eyJhbGciOiJSUzI1NiJ9.e30.sig")
	wantCode(t, "session without Clerk or sign-in", err, engine.ECLERKNOTCONFIGURED)
	if ks, _ := eng.Auth.JWKS(context.Background()); len(ks.Keys) != 0 {
		t.Errorf("JWKS without sign-in: %+v", ks)
	}
}

// TestEndUserSessionsPruned: a sign-in clears the customer's expired
// sessions and keeps at most 50.
func TestEndUserSessionsPruned(t *testing.T) {
	f := newAuthFixture(t)
	ctx := context.Background()
	c := f.customer(t, f.a, "many@example.com", goodPassword)
	f.signIn(t, liveOf(f.a), "many@example.com", goodPassword)
	f.advance(31 * 24 * time.Hour)
	var first *engine.AuthTokens
	for i := range 51 {
		tok := f.signIn(t, liveOf(f.a), "many@example.com", goodPassword)
		if i == 0 {
			first = tok
		}
		f.advance(time.Millisecond)
	}
	ss, err := f.eng.Auth.Sessions(ctx, liveOf(f.a), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 50 {
		t.Errorf("%d sessions, want 50", len(ss))
	}
	_, err = f.eng.Auth.Refresh(ctx, liveOf(f.a), first.RefreshToken)
	wantCode(t, "the oldest of 51 sessions", err, engine.EINVALIDAPIKEY)
	if n, err := f.eng.Auth.RevokeSessions(ctx, liveOf(f.a), c.ID); err != nil || n != 50 {
		t.Errorf("RevokeSessions: %d, %v", n, err)
	}
}

// TestEndUserSignInBurstThrottled: parallel guesses are throttled like a
// series: an attempt counts before its password is checked.
func TestEndUserSignInBurstThrottled(t *testing.T) {
	f := newAuthFixture(t)
	f.customer(t, f.a, "burst@example.com", goodPassword)
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[string]int{}
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.eng.Auth.SignIn(context.Background(), liveOf(f.a), "198.51.100."+string(rune('1'+i%9)),
				engine.PasswordSignIn{Email: "burst@example.com", Password: "wrong password!"})
			mu.Lock()
			codes[engine.ErrorCode(err)]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[engine.EINVALIDAPIKEY] != 5 || codes[engine.ERATELIMITED] != 7 {
		t.Errorf("12 parallel guesses: %v, want 5 checked and 7 throttled", codes)
	}
}

// TestEndUserPasswordRequestNotHashedPlainly: the Idempotency-Key record of
// a create with a password keeps no plain SHA-256 of the request (which
// holds the password), and replays still work.
func TestEndUserPasswordRequestNotHashedPlainly(t *testing.T) {
	f := newAuthFixture(t)
	ctx := context.Background()
	idem := func(body string) *engine.Idempotency {
		return &engine.Idempotency{Key: "create-1", RequestHash: sha256.Sum256([]byte(body)),
			Render: func(res any) (int, []byte) { b, _ := json.Marshal(res); return 201, b }}
	}
	body := `{"email":"idem@example.com","password":"` + goodPassword + `"}`
	in := engine.CreateCustomerInput{Email: "idem@example.com", Password: goodPassword}
	if _, err := f.eng.Customers.Create(ctx, liveOf(f.a), f.a.PublishableKey, in, idem(body)); err != nil {
		t.Fatal(err)
	}
	rec, err := f.store.Idempotency(ctx, liveOf(f.a), "create-1")
	if err != nil {
		t.Fatal(err)
	}
	if plain := sha256.Sum256([]byte(body)); rec.RequestHash == plain {
		t.Error("the record keeps the plain SHA-256 of a request holding a password")
	}
	if _, err := f.eng.Customers.Create(ctx, liveOf(f.a), f.a.PublishableKey, in, idem(body)); err == nil {
		t.Error("replay made a second customer")
	} else if _, ok := engine.AsReplayed(err); !ok {
		t.Errorf("replay: %v", err)
	}
	other := engine.CreateCustomerInput{Email: "idem@example.com", Password: "another long passphrase"}
	_, err = f.eng.Customers.Create(ctx, liveOf(f.a), f.a.PublishableKey, other, idem(`{"email":"idem@example.com","password":"another long passphrase"}`))
	wantCode(t, "same key, another password", err, engine.EIDEMPOTENCYCONFLICT)
	// After a restart (same master key) the replay still answers.
	f.restart(t)
	if _, err := f.eng.Customers.Create(ctx, liveOf(f.a), f.a.PublishableKey, in, idem(body)); err == nil {
		t.Error("replay after restart made a second customer")
	} else if _, ok := engine.AsReplayed(err); !ok {
		t.Errorf("replay after restart: %v", err)
	}
}
