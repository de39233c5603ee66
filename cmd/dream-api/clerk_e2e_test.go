package main

// End-to-end tests of the Clerk integration: the real program, the real
// clerk-sdk-go, and a fake of Clerk's Backend API (engine/identity/clerkfake)
// that also signs the session JWTs of its end users.

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine/billing/billingtest"
	"github.com/dream-api/dream-api/engine/identity/clerkfake"
)

// clerkServer starts a fake Clerk and the server configured with it.
func clerkServer(t *testing.T) (*testServer, *clerkfake.Server, map[string]string) {
	t.Helper()
	fake := clerkfake.New()
	t.Cleanup(fake.Close)
	env := map[string]string{"CLERK_SECRET_KEY": clerkfake.SecretKey, "CLERK_API_URL": fake.URL}
	return startServer(t, env), fake, env
}

// clerkGate is a proxy in front of a fake Clerk that can hold every call
// until released: a call that waits for Clerk then cannot finish.
type clerkGate struct {
	URL string // the Backend API base, like the fake's
	mu  sync.Mutex
	up  chan struct{} // closed while calls pass
	// abandoned counts held calls whose caller gave up waiting.
	abandoned int
}

func newClerkGate(t *testing.T, fake *clerkfake.Server) *clerkGate {
	t.Helper()
	target, err := url.Parse(fake.URL)
	if err != nil {
		t.Fatal(err)
	}
	g := &clerkGate{up: make(chan struct{})}
	close(g.up)
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})
	proxy.ErrorLog = log.New(io.Discard, "", 0) // the fake's outages are the test's
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		up := g.up
		g.mu.Unlock()
		select {
		case <-up:
		case <-r.Context().Done():
			g.mu.Lock()
			g.abandoned++
			g.mu.Unlock()
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { g.release(); srv.Close() })
	g.URL = srv.URL + target.Path
	return g
}

// hold makes calls wait until release.
func (g *clerkGate) hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.up:
		g.up = make(chan struct{})
	default:
	}
}

// gaveUp returns how many held calls their caller gave up on.
func (g *clerkGate) gaveUp() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.abandoned
}

// release lets calls through again, held ones first.
func (g *clerkGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.up:
	default:
		close(g.up)
	}
}

// clerkCustomer creates a customer, which must be a Clerk user.
func (ts *testServer) clerkCustomer(t *testing.T, sk string, body map[string]any) map[string]any {
	t.Helper()
	res := ts.expect(t, req{Method: "POST", Path: "/api/customers", Key: sk, Body: body}, 201, "")
	c, _ := res.Body["customer"].(map[string]any)
	if !strings.HasPrefix(str(c, "id"), "user_") {
		t.Fatalf("customer id %q, want a Clerk user id", str(c, "id"))
	}
	return c
}

// waitUntil polls cond for up to 15 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The seed's Test 2 and Test 3: the customer is a user of the shared
// end-user Clerk app, with {publishableKey, plan} in its public metadata.
func TestClerkCreateCustomer(t *testing.T) {
	ts, fake, _ := clerkServer(t)
	p := ts.createPlatform(t, "Acme")

	c := ts.clerkCustomer(t, p.SK, map[string]any{
		"email": "test@example.com", "firstName": "Test", "lastName": "User", "plan": "free",
		"password": "UniquePassword123xyz",
	})
	if str(c, "publishableKey") != p.PK || str(c, "email") != "test@example.com" || str(c, "plan") != "free" {
		t.Fatalf("customer %v", c)
	}
	u, ok := fake.User(str(c, "id"))
	if !ok {
		t.Fatal("no Clerk user with the customer's id")
	}
	if u.Email != "test@example.com" || u.FirstName != "Test" || u.LastName != "User" || !u.HasPassword {
		t.Errorf("Clerk user %+v", u)
	}
	if len(u.PublicMetadata) != 2 || u.PublicMetadata["publishableKey"] != p.PK || u.PublicMetadata["plan"] != "free" {
		t.Errorf("Clerk public metadata %v, want {publishableKey: %s, plan: free}", u.PublicMetadata, p.PK)
	}
	res := ts.expect(t, req{Method: "GET", Path: "/api/customers/" + str(c, "id"), Key: p.SK}, 200, "")
	if str(res.Body, "customer", "email") != "test@example.com" {
		t.Errorf("GET customer: %s", res.Raw)
	}

	// A test-mode customer carries the test publishable key.
	tc := ts.clerkCustomer(t, p.TestSK, map[string]any{"email": "t@example.com"})
	if u, _ := fake.User(str(tc, "id")); u.PublicMetadata["publishableKey"] != p.TestPK {
		t.Errorf("test customer's metadata %v", u.PublicMetadata)
	}

	// An Idempotency-Key replay answers the first response and makes no
	// second Clerk user.
	body := map[string]any{"email": "idem@example.com"}
	hdr := map[string]string{"Idempotency-Key": "create-idem-1"}
	first := ts.expect(t, req{Method: "POST", Path: "/api/customers", Key: p.SK, Body: body, Header: hdr}, 201, "")
	again := ts.expect(t, req{Method: "POST", Path: "/api/customers", Key: p.SK, Body: body, Header: hdr}, 201, "")
	if string(first.Raw) != string(again.Raw) || fake.Calls("POST /v1/users") != 3 {
		t.Errorf("replay: %s vs %s, %d Clerk creates", first.Raw, again.Raw, fake.Calls("POST /v1/users"))
	}
}

// Nothing is half-written on either side when Clerk refuses or fails.
func TestClerkCreateFailures(t *testing.T) {
	ts, fake, _ := clerkServer(t)
	p := ts.createPlatform(t, "Acme")
	ts.clerkCustomer(t, p.SK, map[string]any{"email": "taken@example.com"})

	res := ts.expect(t, req{Method: "POST", Path: "/api/customers", Key: p.SK,
		Body: map[string]any{"email": "b@example.com", "password": clerkfake.BreachedPassword}}, 422, "validation_failed")
	if !strings.Contains(str(res.Body, "message"), "Password has been found in an online data breach") {
		t.Errorf("breached password: %s", res.Raw)
	}
	if f, _ := get(res.Body, "fields").([]any); len(f) != 1 || str(f[0].(map[string]any), "field") != "password" {
		t.Errorf("fields of the breached password: %s", res.Raw)
	}

	creates := fake.Calls("POST /v1/users")
	ts.expect(t, req{Method: "POST", Path: "/api/customers", Key: p.SK, Body: map[string]any{"email": "TAKEN@example.com"}}, 409, "conflict")
	if fake.Calls("POST /v1/users") != creates {
		t.Error("Clerk was called for an email taken within the platform")
	}
	// Taken in the shared Clerk app (here: by the live customer) is Clerk's 422.
	res = ts.expect(t, req{Method: "POST", Path: "/api/customers", Key: p.TestSK, Body: map[string]any{"email": "taken@example.com"}}, 422, "validation_failed")
	if !strings.Contains(str(res.Body, "message"), "taken") {
		t.Errorf("email taken in Clerk: %s", res.Raw)
	}

	for _, f := range []clerkfake.Failure{clerkfake.Down, clerkfake.Unreachable} {
		fake.SetFailure(f)
		ts.expect(t, req{Method: "POST", Path: "/api/customers", Key: p.SK, Body: map[string]any{"email": "down@example.com"}}, 502, "upstream_error")
		fake.SetFailure(clerkfake.Up)
	}
	res = ts.expect(t, req{Method: "GET", Path: "/api/customers", Key: p.SK}, 200, "")
	if list, _ := res.Body["data"].([]any); len(list) != 1 {
		t.Errorf("%d customers, want 1: %s", len(list), res.Raw)
	}
	if n := fake.UserCount(); n != 1 {
		t.Errorf("%d Clerk users, want 1", n)
	}
}

func TestClerkLinkAndDelete(t *testing.T) {
	ts, fake, _ := clerkServer(t)
	p := ts.createPlatform(t, "Acme")
	id := fake.AddUser("signed.up@example.com", nil)
	c := ts.clerkCustomer(t, p.SK, map[string]any{"clerkUserId": id, "plan": "pro"})
	if str(c, "id") != id || str(c, "email") != "signed.up@example.com" {
		t.Fatalf("linked customer %v", c)
	}
	if u, _ := fake.User(id); u.PublicMetadata["publishableKey"] != p.PK || u.PublicMetadata["plan"] != "pro" {
		t.Errorf("linked user's metadata %v", u.PublicMetadata)
	}
	ts.expect(t, req{Method: "POST", Path: "/api/customers", Key: p.SK, Body: map[string]any{"clerkUserId": "user_nobody"}}, 422, "validation_failed")

	ts.expect(t, req{Method: "DELETE", Path: "/api/customers/" + id, Key: p.SK}, 200, "")
	if _, ok := fake.User(id); ok {
		t.Error("the Clerk user outlived its customer")
	}
	ts.expect(t, req{Method: "GET", Path: "/api/customers/" + id, Key: p.SK}, 404, "not_found")
}

// A plan change never waits for Clerk; the outbox brings it to Clerk after
// an outage, and after a restart.
func TestClerkPlanSyncThroughOutageAndRestart(t *testing.T) {
	fake := clerkfake.New()
	t.Cleanup(fake.Close)
	gate := newClerkGate(t, fake)
	env := map[string]string{"CLERK_SECRET_KEY": clerkfake.SecretKey, "CLERK_API_URL": gate.URL}
	ts := startServer(t, env)
	p := ts.createPlatform(t, "Acme")
	c := ts.clerkCustomer(t, p.SK, map[string]any{"email": "p@example.com"})
	id := str(c, "id")
	plan := func() any { u, _ := fake.User(id); return u.PublicMetadata["plan"] }

	// Normal: synced at once.
	ts.expect(t, req{Method: "PATCH", Path: "/api/customers/" + id, Key: p.SK, Body: map[string]any{"plan": "pro"}}, 200, "")
	waitUntil(t, "plan pro in Clerk", func() bool { return plan() == "pro" })

	// Outage: the PATCH answers while every call to Clerk hangs, so it
	// cannot have waited for one; Clerk has the plan once it is back.
	fake.SetFailure(clerkfake.Unreachable)
	gate.hold()
	ts.expect(t, req{Method: "PATCH", Path: "/api/customers/" + id, Key: p.SK, Body: map[string]any{"plan": "free"}}, 200, "")
	if gate.gaveUp() != 0 {
		t.Error("a call to Clerk was given up on during the plan change: it waited for Clerk")
	}
	gate.release()
	waitUntil(t, "a failed delivery", func() bool { return fake.Calls("PATCH /v1/users/{id}/metadata") >= 2 })
	fake.SetFailure(clerkfake.Up)
	waitUntil(t, "plan free in Clerk after the outage", func() bool { return plan() == "free" })

	// Outage, then a restart: the change waits in the store.
	fake.SetFailure(clerkfake.Down)
	ts.expect(t, req{Method: "PATCH", Path: "/api/customers/" + id, Key: p.SK, Body: map[string]any{"plan": "pro"}}, 200, "")
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	if plan() != "free" {
		t.Fatal("Clerk changed during the outage")
	}
	fake.SetFailure(clerkfake.Up)
	ts2 := startServerAt(t, ts.DataDir, env)
	waitUntil(t, "plan pro in Clerk after the restart", func() bool { return plan() == "pro" })
	res := ts2.expect(t, req{Method: "GET", Path: "/api/customers/" + id, Key: p.SK}, 200, "")
	if str(res.Body, "customer", "plan") != "pro" {
		t.Errorf("stored plan: %s", res.Raw)
	}
}

func TestClerkSessionEndpoints(t *testing.T) {
	ts, fake, _ := clerkServer(t)
	p := ts.createPlatform(t, "Acme")
	other := ts.createPlatform(t, "Other")
	c := ts.clerkCustomer(t, p.SK, map[string]any{"email": "me@example.com", "firstName": "Me"})
	id := str(c, "id")
	ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: track(id)}, 200, "")

	tok := fake.SessionToken(id, p.PK)
	res := ts.expect(t, req{Method: "GET", Path: "/api/me", Key: tok}, 200, "")
	if str(res.Body, "customer", "id") != id || str(res.Body, "customer", "firstName") != "Me" {
		t.Fatalf("GET /api/me: %s", res.Raw)
	}
	res = ts.expect(t, req{Method: "GET", Path: "/api/me/usage", Key: tok}, 200, "")
	if str(res.Body, "customerId") != id || str(res.Body, "plan") != "free" {
		t.Fatalf("GET /api/me/usage: %s", res.Raw)
	}
	if u, _ := get(res.Body, "usage").([]any); len(u) != 1 || num(u[0].(map[string]any), "count") != 1 {
		t.Errorf("usage %s", res.Raw)
	}
	// Checkout needs Stripe: 424 until the platform has it.
	ts.expect(t, req{Method: "POST", Path: "/api/me/checkout", Key: tok, Body: map[string]any{"tier": "pro"}}, 424, "stripe_not_connected")

	now := time.Now()
	bad := func(change func(m map[string]any)) string {
		m := fake.SessionClaims(id, p.PK)
		change(m)
		return fake.Token(m)
	}
	tests := []struct {
		name, token string
		status      int
		code        string
	}{
		{"expired", bad(func(m map[string]any) {
			m["exp"], m["iat"], m["nbf"] = now.Add(-time.Minute).Unix(), now.Add(-2*time.Minute).Unix(), now.Add(-2*time.Minute).Unix()
		}), 401, "invalid_api_key"},
		{"not yet valid", bad(func(m map[string]any) { m["nbf"] = now.Add(time.Minute).Unix() }), 401, "invalid_api_key"},
		{"foreign signature", clerkfake.Sign(clerkfake.NewRSAKey(), fake.KeyID(), fake.SessionClaims(id, p.PK)), 401, "invalid_api_key"},
		{"wrong issuer", bad(func(m map[string]any) { m["iss"] = "https://evil.example.com" }), 401, "invalid_api_key"},
		{"garbage", "not-a-jwt", 401, "invalid_api_key"},
		{"missing", "", 401, "invalid_api_key"},
		{"another platform's publishableKey", fake.SessionToken(id, other.PK), 403, "forbidden"},
		{"wrong mode", fake.SessionToken(id, p.TestPK), 403, "forbidden"},
		{"a secret key", p.SK, 403, "forbidden"},
		{"a publishable key", p.PK, 403, "forbidden"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{"/api/me", "/api/me/usage"} {
				ts.expect(t, req{Method: "GET", Path: path, Key: tc.token}, tc.status, tc.code)
			}
		})
	}

	// A session JWT is never accepted where a secret key is required.
	for _, r := range []req{
		{Method: "GET", Path: "/api/customers/" + id},
		{Method: "POST", Path: "/api/track", Body: track(id)},
		{Method: "GET", Path: "/api/platform/cors"},
	} {
		r.Key = tok
		ts.expect(t, r, 401, "invalid_api_key")
	}
}

func TestClerkCORS(t *testing.T) {
	ts, fake, _ := clerkServer(t)
	p := ts.createPlatform(t, "Acme")
	other := ts.createPlatform(t, "Other")
	const app, otherApp = "https://app.example.com", "https://other.example.com"

	res := ts.expect(t, req{Method: "GET", Path: "/api/platform/cors", Key: p.SK}, 200, "")
	if list, _ := res.Body["allowedOrigins"].([]any); list == nil || len(list) != 0 {
		t.Fatalf("CORS of a new platform: %s", res.Raw)
	}
	ts.expect(t, req{Method: "PUT", Path: "/api/platform/cors", Key: p.SK, Body: map[string]any{"allowedOrigins": []string{"not an origin"}}}, 422, "validation_failed")
	res = ts.expect(t, req{Method: "PUT", Path: "/api/platform/cors", Key: p.SK,
		Body: map[string]any{"allowedOrigins": []string{"HTTPS://App.Example.com", "http://localhost:5173"}}}, 200, "")
	if list, _ := res.Body["allowedOrigins"].([]any); len(list) != 2 || list[0] != app {
		t.Fatalf("PUT cors: %s", res.Raw)
	}
	ts.expect(t, req{Method: "PUT", Path: "/api/platform/cors", Key: other.SK, Body: map[string]any{"allowedOrigins": []string{otherApp}}}, 200, "")

	preflight := func(path, origin, method string) *response {
		t.Helper()
		h := map[string]string{"Access-Control-Request-Method": method, "Access-Control-Request-Headers": "authorization, content-type"}
		if origin != "" {
			h["Origin"] = origin
		}
		return ts.do(t, req{Method: "OPTIONS", Path: path, Header: h})
	}
	for _, tc := range []struct{ path, method string }{
		{"/api/me", "GET"}, {"/api/me/usage", "GET"}, {"/api/me/checkout", "POST"}, {"/api/tiers?pk=" + url.QueryEscape(p.PK), "GET"},
	} {
		res := preflight(tc.path, app, tc.method)
		if res.Status != 204 || res.Header.Get("Access-Control-Allow-Origin") != app ||
			!strings.Contains(res.Header.Get("Access-Control-Allow-Headers"), "Authorization") ||
			!strings.Contains(res.Header.Get("Access-Control-Allow-Methods"), tc.method) ||
			res.Header.Get("Access-Control-Max-Age") == "" {
			t.Errorf("preflight %s: %d %v", tc.path, res.Status, res.Header)
		}
	}
	if res := preflight("/api/me", "https://evil.example.com", "GET"); res.Status != 403 || res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight of an unknown origin: %d %v", res.Status, res.Header)
	}
	// With ?pk=, only that platform's origins pass.
	if res := preflight("/api/tiers?pk="+url.QueryEscape(p.PK), otherApp, "GET"); res.Status != 403 {
		t.Errorf("preflight of another platform's origin: %d", res.Status)
	}
	if res := preflight("/api/me", "", "GET"); res.Status != 204 || res.Header.Get("Allow") == "" {
		t.Errorf("OPTIONS without Origin: %d %v", res.Status, res.Header)
	}

	// The responses themselves are held to the platform's own origins.
	c := ts.clerkCustomer(t, p.SK, map[string]any{"email": "cors@example.com"})
	tok := fake.SessionToken(str(c, "id"), p.PK)
	for _, tc := range []struct {
		r    req
		want string
	}{
		{req{Method: "GET", Path: "/api/me", Key: tok, Header: map[string]string{"Origin": app}}, app},
		{req{Method: "GET", Path: "/api/me", Key: tok, Header: map[string]string{"Origin": otherApp}}, ""},
		{req{Method: "GET", Path: "/api/tiers?pk=" + url.QueryEscape(p.PK), Header: map[string]string{"Origin": app}}, app},
		{req{Method: "GET", Path: "/api/tiers", Key: other.PK, Header: map[string]string{"Origin": app}}, ""},
		{req{Method: "GET", Path: "/api/tiers", Key: other.PK, Header: map[string]string{"Origin": otherApp}}, otherApp},
		// Before the platform is known, a known origin may read the error.
		{req{Method: "GET", Path: "/api/me", Key: "expired.or.bad", Header: map[string]string{"Origin": app}}, app},
		// Secret endpoints never answer browsers.
		{req{Method: "GET", Path: "/api/customers", Key: p.SK, Header: map[string]string{"Origin": app}}, ""},
	} {
		res := ts.do(t, tc.r)
		if got := res.Header.Get("Access-Control-Allow-Origin"); got != tc.want {
			t.Errorf("%s %s from %s: Access-Control-Allow-Origin %q, want %q", tc.r.Method, tc.r.Path, tc.r.Header["Origin"], got, tc.want)
		}
		if tc.want != "" && !strings.Contains(strings.Join(res.Header.Values("Vary"), ","), "Origin") {
			t.Errorf("%s: no Vary: Origin", tc.r.Path)
		}
	}
}

func TestClerkNotConfigured(t *testing.T) {
	ts := startServer(t, nil)
	p := ts.createPlatform(t, "Acme")
	// Without Clerk, dream-api signs end users in itself (auth_e2e_test.go):
	// a token that is not one of its own is refused.
	ts.expect(t, req{Method: "GET", Path: "/api/me", Key: "eyJhbGciOiJSUzI1NiJ9.e30.sig"}, 401, "invalid_api_key")
	ts.expect(t, req{Method: "POST", Path: "/api/customers", Key: p.SK, Body: map[string]any{"clerkUserId": "user_abc"}}, 424, "clerk_not_configured")
	c := ts.createCustomer(t, p.SK, map[string]any{"email": "local@example.com"})
	if !strings.HasPrefix(str(c, "id"), "cus_") {
		t.Errorf("local customer %v", c)
	}
	ts.expect(t, req{Method: "PATCH", Path: "/api/customers/" + str(c, "id"), Key: p.SK, Body: map[string]any{"plan": "pro"}}, http.StatusOK, "")
}

// The signed-in customer starts its own Checkout on its platform's Stripe
// account (stripe-mock), as POST /api/create-checkout would for it.
func TestClerkMeCheckoutWithStripe(t *testing.T) {
	mock := billingtest.Start(t)
	fake := clerkfake.New()
	t.Cleanup(fake.Close)
	ts := startServer(t, map[string]string{
		"CLERK_SECRET_KEY": clerkfake.SecretKey, "CLERK_API_URL": fake.URL, "STRIPE_API_BASE": mock.URL,
	})
	p := ts.createPlatform(t, "Acme")
	c := ts.clerkCustomer(t, p.TestSK, map[string]any{"email": "buyer@example.com"})
	tok := fake.SessionToken(str(c, "id"), p.TestPK)

	ts.expect(t, req{Method: "POST", Path: "/api/me/checkout", Key: tok, Body: map[string]any{"tier": "pro"}}, 424, "stripe_not_connected")
	ts.expect(t, req{Method: "POST", Path: "/api/platform/stripe/connect", Key: p.TestSK,
		Body: map[string]any{"secretKey": "sk_test_platform123", "webhookSecret": "whsec_platform123"}}, 200, "")

	ts.expect(t, req{Method: "POST", Path: "/api/me/checkout", Key: tok, Body: map[string]any{}}, 422, "validation_failed")
	res := ts.expect(t, req{Method: "POST", Path: "/api/me/checkout", Key: tok,
		Body: map[string]any{"tier": "pro", "successUrl": "https://app.example.com/ok"}}, 200, "")
	if !strings.HasPrefix(str(res.Body, "url"), "https://") || str(res.Body, "sessionId") == "" {
		t.Fatalf("checkout: %s", res.Raw)
	}
	sessions := mock.Find("POST", "/v1/checkout/sessions")
	if len(sessions) != 1 || sessions[0].Form.Get("client_reference_id") != str(c, "id") {
		t.Fatalf("Stripe checkout sessions %+v, want one for %s", sessions, str(c, "id"))
	}
}
