package identity_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/engine/identity"
	"github.com/dream-api/dream-api/engine/identity/clerkfake"
)

// newClerk is the adapter, through the real SDK, on a fake Clerk.
func newClerk(t *testing.T, cfg identity.Config) (*identity.Clerk, *clerkfake.Server) {
	t.Helper()
	fake := clerkfake.New()
	t.Cleanup(fake.Close)
	if cfg.SecretKey == "" {
		cfg.SecretKey = clerkfake.SecretKey
	}
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.APIURL = fake.URL
	c, err := identity.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, fake
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := engine.ErrorCode(err); got != code {
		t.Fatalf("%s: error %v (code %q), want %s", what, err, got, code)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	for _, cfg := range []identity.Config{
		{},
		{SecretKey: "sk_test_x", APIURL: "ftp://clerk"},
	} {
		if _, err := identity.New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

func TestCreateUserSetsProfileAndMetadata(t *testing.T) {
	c, fake := newClerk(t, identity.Config{})
	ctx := context.Background()
	u, err := c.CreateUser(ctx, engine.NewIdentityUser{
		Email: "ada@example.com", FirstName: "Ada", LastName: "Lovelace", Password: "xK9mNp2qRs5vWz8a",
		PublicMetadata: map[string]any{"publishableKey": "pk_live_abc", "plan": "free"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(u.ID, "user_") || u.Email != "ada@example.com" || u.FirstName != "Ada" || u.LastName != "Lovelace" {
		t.Fatalf("created %+v", u)
	}
	got, ok := fake.User(u.ID)
	if !ok || !got.HasPassword || got.PublicMetadata["publishableKey"] != "pk_live_abc" || got.PublicMetadata["plan"] != "free" {
		t.Fatalf("in Clerk: %+v", got)
	}

	// Without a password, Clerk's password requirement is skipped.
	u2, err := c.CreateUser(ctx, engine.NewIdentityUser{Email: "grace@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := fake.User(u2.ID); got.HasPassword {
		t.Errorf("user without a password has one")
	}

	back, err := c.User(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if back.Email != "ada@example.com" || back.PublicMetadata["plan"] != "free" {
		t.Errorf("User = %+v", back)
	}
}

func TestClerkRefusalsAreValidationErrorsWithClerksMessage(t *testing.T) {
	c, fake := newClerk(t, identity.Config{})
	ctx := context.Background()
	if _, err := c.CreateUser(ctx, engine.NewIdentityUser{Email: "taken@example.com", Password: "xK9mNp2qRs5vWz8a"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		in    engine.NewIdentityUser
		field string
		msg   string
	}{
		{"breached password", engine.NewIdentityUser{Email: "b@example.com", Password: clerkfake.BreachedPassword},
			"password", "Password has been found in an online data breach"},
		{"short password", engine.NewIdentityUser{Email: "s@example.com", Password: "short"}, "password", "8 characters"},
		{"taken email", engine.NewIdentityUser{Email: "taken@example.com", Password: "xK9mNp2qRs5vWz8a"}, "email", "taken"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.CreateUser(ctx, tc.in)
			wantCode(t, "CreateUser", err, engine.EVALIDATION)
			e := err.(*engine.Error)
			if !strings.Contains(e.Message, tc.msg) || len(e.Fields) != 1 || e.Fields[0].Field != tc.field {
				t.Errorf("error %+v, want field %s and a message with %q", e, tc.field, tc.msg)
			}
		})
	}
	if n := fake.UserCount(); n != 1 {
		t.Errorf("%d users in Clerk, want 1", n)
	}
}

func TestOutagesAreUpstreamErrors(t *testing.T) {
	ctx := context.Background()
	for _, f := range []clerkfake.Failure{clerkfake.Down, clerkfake.Unreachable} {
		c, fake := newClerk(t, identity.Config{})
		id := fake.AddUser("x@example.com", nil)
		fake.SetFailure(f)
		_, err := c.CreateUser(ctx, engine.NewIdentityUser{Email: "a@example.com", Password: "xK9mNp2qRs5vWz8a"})
		wantCode(t, "CreateUser", err, engine.EUPSTREAM)
		wantCode(t, "UpdateMetadata", c.UpdateMetadata(ctx, id, map[string]any{"plan": "pro"}), engine.EUPSTREAM)
		wantCode(t, "DeleteUser", c.DeleteUser(ctx, id), engine.EUPSTREAM)
		_, err = c.User(ctx, id)
		wantCode(t, "User", err, engine.EUPSTREAM)
		fake.SetFailure(clerkfake.Up)
		if fake.UserCount() != 1 {
			t.Errorf("users changed during the outage")
		}
	}
	// A wrong secret key is Clerk's 401: our configuration, an upstream error.
	c, _ := newClerk(t, identity.Config{SecretKey: "sk_test_wrong"})
	_, err := c.CreateUser(ctx, engine.NewIdentityUser{Email: "a@example.com"})
	wantCode(t, "CreateUser with a wrong key", err, engine.EUPSTREAM)
}

func TestUpdateMetadataMergesAndDeleteUser(t *testing.T) {
	c, fake := newClerk(t, identity.Config{})
	ctx := context.Background()
	id := fake.AddUser("a@example.com", map[string]any{"publishableKey": "pk_live_a", "plan": "free", "theirs": "kept"})
	if err := c.UpdateMetadata(ctx, id, map[string]any{"plan": "pro", "publishableKey": nil}); err != nil {
		t.Fatal(err)
	}
	u, _ := fake.User(id)
	if u.PublicMetadata["plan"] != "pro" || u.PublicMetadata["theirs"] != "kept" {
		t.Errorf("metadata %v", u.PublicMetadata)
	}
	if _, ok := u.PublicMetadata["publishableKey"]; ok {
		t.Errorf("a nil value did not remove the key: %v", u.PublicMetadata)
	}
	if err := c.DeleteUser(ctx, id); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "DeleteUser again", c.DeleteUser(ctx, id), engine.ENOTFOUND)
	wantCode(t, "UpdateMetadata of a deleted user", c.UpdateMetadata(ctx, id, map[string]any{"plan": "pro"}), engine.ENOTFOUND)
	_, err := c.User(ctx, id)
	wantCode(t, "User", err, engine.ENOTFOUND)
}

// The session token matrix: the SDK's jwt.Verify against the fake's JWKS.
func TestVerifySession(t *testing.T) {
	c, fake := newClerk(t, identity.Config{})
	ctx := context.Background()
	id := fake.AddUser("a@example.com", nil)
	now := time.Now()
	claims := func(change func(m map[string]any)) map[string]any {
		m := fake.SessionClaims(id, "pk_live_abc")
		change(m)
		return m
	}
	foreign := clerkfake.NewRSAKey()
	tests := []struct {
		name  string
		token string
		why   string // in the message; "" when valid
	}{
		{"valid", fake.SessionToken(id, "pk_live_abc"), ""},
		{"expired", fake.Token(claims(func(m map[string]any) {
			m["exp"] = now.Add(-time.Minute).Unix()
			m["iat"] = now.Add(-2 * time.Minute).Unix()
			m["nbf"] = now.Add(-2 * time.Minute).Unix()
		})), "expired"},
		{"not yet valid", fake.Token(claims(func(m map[string]any) { m["nbf"] = now.Add(time.Minute).Unix() })), "not valid yet"},
		{"issued in the future", fake.Token(claims(func(m map[string]any) { m["iat"] = now.Add(time.Minute).Unix() })), "future"},
		{"foreign signature, known kid", clerkfake.Sign(foreign, fake.KeyID(), claims(func(map[string]any) {})), "signature"},
		{"foreign signature, unknown kid", clerkfake.Sign(foreign, "ins_other", claims(func(map[string]any) {})), "unknown"},
		{"wrong issuer", fake.Token(claims(func(m map[string]any) { m["iss"] = "https://evil.example.com" })), "issuer"},
		{"no exp", fake.Token(claims(func(m map[string]any) { delete(m, "exp") })), "exp"},
		{"no sub", fake.Token(claims(func(m map[string]any) { delete(m, "sub") })), "sub"},
		{"not a JWT", "not.a.jwt", "not a JWT"},
		{"an API key", "sk_live_0123", "not a JWT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := c.VerifySession(ctx, tc.token)
			if tc.why == "" {
				if err != nil {
					t.Fatal(err)
				}
				if s.UserID != id || s.PublishableKey != "pk_live_abc" || !strings.HasPrefix(s.SessionID, "sess_") || s.ExpiresAt.Before(now) {
					t.Errorf("session %+v", s)
				}
				return
			}
			wantCode(t, "VerifySession", err, engine.EINVALIDAPIKEY)
			if !strings.Contains(engine.ErrorMessage(err), tc.why) {
				t.Errorf("message %q does not say %q", engine.ErrorMessage(err), tc.why)
			}
		})
	}
}

func TestVerifySessionIssuerPinAndMetadataClaim(t *testing.T) {
	c, fake := newClerk(t, identity.Config{Issuer: "https://clerk.example.com"})
	ctx := context.Background()
	id := fake.AddUser("a@example.com", nil)
	m := fake.SessionClaims(id, "")
	delete(m, "publishableKey")
	m["metadata"] = map[string]any{"publishableKey": "pk_test_xyz"}
	// The fake's own issuer is a Clerk one, but not the pinned one.
	_, err := c.VerifySession(ctx, fake.Token(m))
	wantCode(t, "VerifySession with another issuer", err, engine.EINVALIDAPIKEY)
	m["iss"] = "https://clerk.example.com"
	s, err := c.VerifySession(ctx, fake.Token(m))
	if err != nil {
		t.Fatal(err)
	}
	if s.PublishableKey != "pk_test_xyz" {
		t.Errorf("publishableKey from metadata = %q", s.PublishableKey)
	}
}

func TestJWKSIsCachedAndRefreshedOnUnknownKid(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	c, fake := newClerk(t, identity.Config{Now: clock, Leeway: 3 * time.Hour}) // the fake signs with wall time
	ctx := context.Background()
	id := fake.AddUser("a@example.com", nil)

	for i := 0; i < 20; i++ {
		if _, err := c.VerifySession(ctx, fake.SessionToken(id, "pk_live_a")); err != nil {
			t.Fatal(err)
		}
	}
	if n := fake.Calls("GET /v1/jwks"); n != 1 {
		t.Fatalf("JWKS fetched %d times for 20 tokens, want 1", n)
	}

	// Clerk rotates its key: the unknown kid fetches the JWKS again.
	fake.RotateKey()
	advance(11 * time.Second)
	if _, err := c.VerifySession(ctx, fake.SessionToken(id, "pk_live_a")); err != nil {
		t.Fatalf("token of the rotated key: %v", err)
	}
	if n := fake.Calls("GET /v1/jwks"); n != 2 {
		t.Fatalf("JWKS fetched %d times, want 2", n)
	}

	// Forged key ids fetch at most once per JWKSMinRefresh.
	foreign := clerkfake.NewRSAKey()
	for i := 0; i < 10; i++ {
		_, err := c.VerifySession(ctx, clerkfake.Sign(foreign, "ins_forged", fake.SessionClaims(id, "pk_live_a")))
		wantCode(t, "forged kid", err, engine.EINVALIDAPIKEY)
	}
	if n := fake.Calls("GET /v1/jwks"); n != 2 {
		t.Fatalf("JWKS fetched %d times after forged kids right after a fetch, want 2", n)
	}

	// Clerk down: cached keys keep verifying, even when stale.
	fake.SetFailure(clerkfake.Down)
	advance(61 * time.Minute) // older than JWKSMaxAge
	if _, err := c.VerifySession(ctx, fake.SessionToken(id, "pk_live_a")); err != nil {
		t.Fatalf("cached key during an outage: %v", err)
	}
	// An unknown kid while Clerk is down is Clerk's failure, not the token's.
	advance(11 * time.Second)
	fake.RotateKey()
	_, err := c.VerifySession(ctx, fake.SessionToken(id, "pk_live_a"))
	wantCode(t, "unknown kid during an outage", err, engine.EUPSTREAM)
}
