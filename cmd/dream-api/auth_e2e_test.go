package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// End-user sign-in without Clerk, against the real program: sign-in →
// token → /api/me; isolation between platforms and modes; refresh
// rotation and reuse; one-time resets; CORS; /metrics; a restart that
// keeps keys and sessions; and no password or token in clear in the data
// dir or the log.
func TestEndUserSignInE2E(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"DREAM_PUBLIC_URL": "https://dream.test", "DREAM_ACCESS_LOG": "1", "DREAM_LOG_LEVEL": "debug"}
	ts := startServerAt(t, dir, env)
	a := ts.createPlatform(t, "Alpha")
	b := ts.createPlatform(t, "Beta")
	secrets := map[string]string{}
	const pw = "violet staple engine"
	secrets["password"] = pw

	// Passwords are checked when the customer is made.
	res := ts.expect(t, req{Method: "POST", Path: "/api/customers", Key: a.SK, Body: map[string]any{"email": "weak@example.com", "password": "password123"}}, 422, "validation_failed")
	if !strings.Contains(string(res.Raw), "common") {
		t.Errorf("common password: %s", res.Raw)
	}
	ts.expect(t, req{Method: "POST", Path: "/api/customers", Key: a.SK, Body: map[string]any{"email": "weak@example.com", "password": "short"}}, 422, "validation_failed")
	cus := ts.createCustomer(t, a.SK, map[string]any{"email": "ann@example.com", "password": pw})
	id := str(cus, "id")

	signIn := func(path, key string, body map[string]any) *response {
		return ts.do(t, req{Method: "POST", Path: path, Key: key, Body: body})
	}
	creds := map[string]any{"email": "ann@example.com", "password": pw}

	// The publishable key, three ways; never a secret key.
	res = signIn("/api/auth/sign-in?pk="+a.PK, "", creds)
	if res.Status != 200 {
		t.Fatalf("sign-in: %d %s", res.Status, res.Raw)
	}
	tok, refresh := str(res.Body, "token"), str(res.Body, "refreshToken")
	secrets["access token"], secrets["refresh token"] = tok, refresh
	if got := res.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("sign-in Cache-Control %q", got)
	}
	ts.expect(t, req{Method: "POST", Path: "/api/auth/sign-in", Key: a.PK, Body: creds}, 200, "")
	ts.expect(t, req{Method: "POST", Path: "/api/auth/sign-in", Body: map[string]any{"email": "ann@example.com", "password": pw, "publishableKey": a.PK}}, 200, "")
	ts.expect(t, req{Method: "POST", Path: "/api/auth/sign-in", Key: a.SK, Body: creds}, 403, "forbidden")
	ts.expect(t, req{Method: "POST", Path: "/api/auth/sign-in?pk=" + a.SK, Body: creds}, 403, "forbidden")
	ts.expect(t, req{Method: "POST", Path: "/api/auth/sign-in?pk=" + b.PK, Key: a.PK, Body: creds}, 401, "invalid_api_key")
	ts.expect(t, req{Method: "POST", Path: "/api/auth/sign-in", Body: creds}, 401, "invalid_api_key")
	ts.expect(t, req{Method: "POST", Path: "/api/auth/sign-in?pk=" + a.PK, Body: map[string]any{"email": "ann@example.com", "password": pw, "remember": true}}, 422, "validation_failed")

	// The token signs in to /api/me…; a key does not.
	me := ts.expect(t, req{Method: "GET", Path: "/api/me", Key: tok}, 200, "")
	if str(me.Body, "customer", "id") != id {
		t.Errorf("/api/me: %s", me.Raw)
	}
	ts.expect(t, req{Method: "GET", Path: "/api/me/usage", Key: tok}, 200, "")
	ts.expect(t, req{Method: "GET", Path: "/api/me", Key: a.PK}, 403, "forbidden")
	ts.expect(t, req{Method: "GET", Path: "/api/me", Key: refresh}, 403, "forbidden")
	ts.expect(t, req{Method: "GET", Path: "/api/customers", Key: tok}, 401, "invalid_api_key")

	// The developer's backend verifies the token with the JWKS.
	jwks := ts.expect(t, req{Method: "GET", Path: "/.well-known/jwks.json"}, 200, "")
	var set struct {
		Keys []struct{ Kid, X, Alg, Kty string }
	}
	if err := json.Unmarshal(jwks.Raw, &set); err != nil || len(set.Keys) != 1 || set.Keys[0].Alg != "EdDSA" {
		t.Fatalf("JWKS %s", jwks.Raw)
	}
	parts := strings.Split(tok, ".")
	pub, _ := base64.RawURLEncoding.DecodeString(set.Keys[0].X)
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	if !ed25519.Verify(pub, []byte(parts[0]+"."+parts[1]), sig) {
		t.Error("the access token does not verify with the JWKS key")
	}
	claims, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if !bytes.Contains(claims, []byte(`"iss":"https://dream.test"`)) || !bytes.Contains(claims, []byte(`"publishableKey":"`+a.PK+`"`)) {
		t.Errorf("claims %s", claims)
	}

	// Another platform's or mode's publishable key refuses A's
	// credentials and refresh tokens.
	for _, pk := range []string{b.PK, a.TestPK} {
		ts.expect(t, req{Method: "POST", Path: "/api/auth/sign-in?pk=" + pk, Body: creds}, 401, "invalid_api_key")
		ts.expect(t, req{Method: "POST", Path: "/api/auth/refresh?pk=" + pk, Body: map[string]any{"refreshToken": refresh}}, 401, "invalid_api_key")
	}

	// Refresh rotates; a used refresh token ends its session.
	res = ts.expect(t, req{Method: "POST", Path: "/api/auth/refresh?pk=" + a.PK, Body: map[string]any{"refreshToken": refresh}}, 200, "")
	refresh2, tok2 := str(res.Body, "refreshToken"), str(res.Body, "token")
	secrets["refresh token 2"], secrets["access token 2"] = refresh2, tok2
	ts.expect(t, req{Method: "GET", Path: "/api/me", Key: tok2}, 200, "")
	ts.expect(t, req{Method: "POST", Path: "/api/auth/refresh?pk=" + a.PK, Body: map[string]any{"refreshToken": refresh}}, 401, "invalid_api_key")
	ts.expect(t, req{Method: "POST", Path: "/api/auth/refresh?pk=" + a.PK, Body: map[string]any{"refreshToken": refresh2}}, 401, "invalid_api_key")
	ts.expect(t, req{Method: "GET", Path: "/api/me", Key: tok2}, 401, "invalid_api_key")

	// Sign-out ends a session.
	res = ts.expect(t, req{Method: "POST", Path: "/api/auth/sign-in?pk=" + a.PK, Body: creds}, 200, "")
	out := str(res.Body, "refreshToken")
	secrets["refresh token 3"] = out
	ts.expect(t, req{Method: "POST", Path: "/api/auth/sign-out?pk=" + a.PK, Body: map[string]any{"refreshToken": out}}, 200, "")
	ts.expect(t, req{Method: "GET", Path: "/api/me", Key: str(res.Body, "token")}, 401, "invalid_api_key")

	// A reset token works once.
	res = ts.expect(t, req{Method: "POST", Path: "/api/customers/" + id + "/password-reset", Key: a.SK}, 201, "")
	reset := str(res.Body, "token")
	secrets["reset token"] = reset
	ts.expect(t, req{Method: "POST", Path: "/api/customers/" + id + "/password-reset", Key: b.SK}, 404, "not_found")
	const pw2 = "quartz lantern meadow"
	secrets["new password"] = pw2
	ts.expect(t, req{Method: "POST", Path: "/api/auth/password-reset?pk=" + a.PK, Body: map[string]any{"token": reset, "password": pw2}}, 200, "")
	ts.expect(t, req{Method: "POST", Path: "/api/auth/password-reset?pk=" + a.PK, Body: map[string]any{"token": reset, "password": "another new passphrase"}}, 401, "invalid_api_key")
	ts.expect(t, req{Method: "POST", Path: "/api/auth/sign-in?pk=" + a.PK, Body: creds}, 401, "invalid_api_key")
	creds["password"] = pw2

	// PATCH sets a password.
	const pw3 = "harbor cinnamon velvet"
	secrets["patched password"] = pw3
	ts.expect(t, req{Method: "PATCH", Path: "/api/customers/" + id, Key: a.SK, Body: map[string]any{"password": pw3}}, 200, "")
	ts.expect(t, req{Method: "PATCH", Path: "/api/customers/" + id, Key: a.SK, Body: map[string]any{"password": "qwerty123"}}, 422, "validation_failed")
	creds["password"] = pw3

	// CORS: the platform's origin may call sign-in from a browser.
	ts.expect(t, req{Method: "PUT", Path: "/api/platform/cors", Key: a.SK, Body: map[string]any{"allowedOrigins": []string{"https://app.alpha.test"}}}, 200, "")
	res = ts.do(t, req{Method: "OPTIONS", Path: "/api/auth/sign-in?pk=" + a.PK, Header: map[string]string{"Origin": "https://app.alpha.test", "Access-Control-Request-Method": "POST"}})
	if res.Status != 204 || res.Header.Get("Access-Control-Allow-Origin") != "https://app.alpha.test" {
		t.Errorf("preflight: %d %v", res.Status, res.Header)
	}
	res = ts.do(t, req{Method: "POST", Path: "/api/auth/sign-in?pk=" + a.PK, Body: creds, Header: map[string]string{"Origin": "https://app.alpha.test"}})
	if res.Status != 200 || res.Header.Get("Access-Control-Allow-Origin") != "https://app.alpha.test" {
		t.Errorf("sign-in from the platform's origin: %d %v", res.Status, res.Header)
	}
	keep := str(res.Body, "refreshToken")
	keepTok := str(res.Body, "token")
	secrets["refresh token 4"], secrets["access token 4"] = keep, keepTok
	res = ts.do(t, req{Method: "POST", Path: "/api/auth/sign-in?pk=" + b.PK, Body: map[string]any{"email": "x@example.com", "password": "whatever it is"}, Header: map[string]string{"Origin": "https://app.alpha.test"}})
	if got := res.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("platform B answered A's origin: %q", got)
	}

	if got := ts.metric(t, `dream_auth_events_total{event="sign_in",outcome="ok"}`); got < 4 {
		t.Errorf("sign-ins counted %v", got)
	}
	if got := ts.metric(t, `dream_auth_events_total{event="refresh",outcome="reused"}`); got != 1 {
		t.Errorf("reused refresh tokens counted %v, want 1", got)
	}

	// A restart keeps the signing key and the sessions.
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	logs := ts.logs.String()
	ts = startServerAt(t, dir, env)
	jwks2 := ts.expect(t, req{Method: "GET", Path: "/.well-known/jwks.json"}, 200, "")
	if !bytes.Equal(jwks.Raw, jwks2.Raw) {
		t.Errorf("JWKS after restart %s, before %s", jwks2.Raw, jwks.Raw)
	}
	ts.expect(t, req{Method: "GET", Path: "/api/me", Key: keepTok}, 200, "")
	sess := ts.expect(t, req{Method: "GET", Path: "/api/customers/" + id + "/sessions", Key: a.SK}, 200, "")
	if n := len(sess.Body["data"].([]any)); n != 1 {
		t.Errorf("sessions after restart: %s", sess.Raw)
	}
	ts.expect(t, req{Method: "GET", Path: "/api/customers/" + id + "/sessions", Key: b.SK}, 404, "not_found")
	res = ts.expect(t, req{Method: "POST", Path: "/api/auth/refresh?pk=" + a.PK, Body: map[string]any{"refreshToken": keep}}, 200, "")
	secrets["refresh token 5"], secrets["access token 5"] = str(res.Body, "refreshToken"), str(res.Body, "token")

	// Repeated failures are throttled (429 with Retry-After), for a known
	// and an unknown email alike, with the same answers until then.
	for _, email := range []string{"ann@example.com", "nobody@example.com"} {
		var got []string
		for range 10 { // the delays grow: a slow machine meets one too
			r := ts.do(t, req{Method: "POST", Path: "/api/auth/sign-in?pk=" + a.PK, Body: map[string]any{"email": email, "password": "not the password"}})
			got = append(got, str(r.Body, "code")+": "+str(r.Body, "message"))
			if r.Status == 429 {
				if r.Header.Get("Retry-After") == "" {
					t.Errorf("429 without Retry-After: %s", r.Raw)
				}
				break
			}
		}
		if len(got) < 6 || !strings.HasPrefix(got[len(got)-1], "rate_limited") {
			t.Errorf("%s: %q, want 5 failures then rate_limited", email, got)
		}
		for _, g := range got[:5] {
			if g != "invalid_api_key: The email or password is incorrect." {
				t.Errorf("%s: %q", email, g)
			}
		}
	}
	if got := ts.metric(t, `dream_auth_events_total{event="sign_in",outcome="throttled"}`); got != 2 {
		t.Errorf("throttled sign-ins counted %v, want 2", got)
	}
	// The developer signs the customer out everywhere.
	res = ts.expect(t, req{Method: "DELETE", Path: "/api/customers/" + id + "/sessions", Key: a.SK}, 200, "")
	if res.Body["revoked"] != float64(1) {
		t.Errorf("revoked: %s", res.Raw)
	}
	ts.expect(t, req{Method: "GET", Path: "/api/me", Key: secrets["access token 5"]}, 401, "invalid_api_key")
	ts.expect(t, req{Method: "POST", Path: "/api/auth/refresh?pk=" + a.PK, Body: map[string]any{"refreshToken": secrets["refresh token 5"]}}, 401, "invalid_api_key")

	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	logs += ts.logs.String()

	for name, secret := range secrets {
		if len(secret) < 15 {
			t.Fatalf("%s %q too short to search for", name, secret)
		}
		if strings.Contains(logs, secret) {
			t.Errorf("the %s is in the log", name)
		}
		err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			// Tokens are searched whole and by their secret part.
			needles := [][]byte{[]byte(secret)}
			for _, prefix := range []string{"rt_ses_", "prt_prs_"} {
				if strings.HasPrefix(secret, prefix) { // prefix, 26-character id, _, secret
					needles = append(needles, []byte(secret[len(prefix)+27:]))
				}
			}
			for _, n := range needles {
				if bytes.Contains(b, n) {
					rel, _ := filepath.Rel(dir, path)
					t.Errorf("the %s is stored in clear in %s", name, rel)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestEndUserSignInWithClerk: with Clerk, Clerk signs end users in:
// dream-api's own sign-in answers 403, its JWKS is empty, a password
// cannot be set by PATCH, and Clerk's session tokens still work.
func TestEndUserSignInWithClerk(t *testing.T) {
	ts, fake, _ := clerkServer(t)
	p := ts.createPlatform(t, "Acme")
	c := ts.clerkCustomer(t, p.SK, map[string]any{"email": "clerk@example.com"})
	id := str(c, "id")
	ts.expect(t, req{Method: "POST", Path: "/api/auth/sign-in?pk=" + p.PK, Body: map[string]any{"email": "clerk@example.com", "password": "a long passphrase"}}, 403, "forbidden")
	ts.expect(t, req{Method: "POST", Path: "/api/customers/" + id + "/password-reset", Key: p.SK}, 403, "forbidden")
	ts.expect(t, req{Method: "PATCH", Path: "/api/customers/" + id, Key: p.SK, Body: map[string]any{"password": "a long passphrase"}}, 422, "validation_failed")
	res := ts.expect(t, req{Method: "GET", Path: "/.well-known/jwks.json"}, 200, "")
	if strings.TrimSpace(string(res.Raw)) != `{"keys":[]}` {
		t.Errorf("JWKS with Clerk: %s", res.Raw)
	}
	ts.expect(t, req{Method: "GET", Path: "/api/me", Key: fake.SessionToken(id, p.PK)}, 200, "")
}
