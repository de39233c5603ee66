package main

import (
	"strings"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine/billing/billingtest"
)

// The operator suspends a platform: every key of it (secret and
// publishable, live and test) and its end users' tokens are refused with 403 forbidden at once, with
// no restart, while another platform is untouched; a Stripe webhook of the
// platform is still applied; the suspension survives a restart; a resume
// lets every key in again, and the webhook's effect is there. Only the
// admin token suspends.
func TestSuspendPlatform(t *testing.T) {
	mock := billingtest.Start(t)
	dir := t.TempDir()
	env := map[string]string{
		"STRIPE_API_BASE": mock.URL, "STRIPE_SECRET_KEY": stripeOperatorKey, "STRIPE_WEBHOOK_SECRET": stripeConnectSecret,
		"DREAM_PUBLIC_URL": stripePublicURL, "DREAM_ADMIN_TOKEN": "dat_test_" + randHex(16),
	}
	ts := startServerAt(t, dir, env)
	p, other := ts.createPlatform(t, "Suspended Co"), ts.createPlatform(t, "Other Co")
	ts.stripeConnectByKey(t, p)
	ts.stripeTiers(t, p.TestSK, 1500)
	id := str(ts.createCustomer(t, p.TestSK, map[string]any{"email": "ada@example.com"}), "id")
	liveID := str(ts.createCustomer(t, p.SK, map[string]any{"email": "bob@example.com", "password": "violet staple engine"}), "id")
	signedIn := ts.expect(t, req{Method: "POST", Path: "/api/auth/sign-in?pk=" + p.PK,
		Body: map[string]any{"email": "bob@example.com", "password": "violet staple engine"}}, 200, "")
	endUserToken := str(signedIn.Body, "token")
	ts.expect(t, req{Method: "POST", Path: "/api/create-checkout", Key: p.TestSK, Body: map[string]any{"customerId": id, "tier": "pro"}}, 200, "")
	stripeCus := str(ts.stripeCustomer(t, p.TestSK, id), "stripeCustomerId")

	// Every key of p, in the kinds of call it is allowed to make.
	calls := []struct {
		name string
		r    req
	}{
		{"live secret", req{Method: "POST", Path: "/api/track", Key: p.SK, Body: track(liveID)}},
		{"test secret", req{Method: "POST", Path: "/api/track", Key: p.TestSK, Body: track(id)}},
		{"test secret, customer", req{Method: "GET", Path: "/api/customers/" + id, Key: p.TestSK}},
		{"live publishable", req{Method: "GET", Path: "/api/tiers", Key: p.PK}},
		{"test publishable in the query", req{Method: "GET", Path: "/api/tiers?pk=" + p.TestPK}},
		{"end-user token", req{Method: "GET", Path: "/api/me", Key: endUserToken}},
	}
	allWork := func(ts *testServer, when string) {
		t.Helper()
		for _, c := range calls {
			if res := ts.do(t, c.r); res.Status != 200 {
				t.Errorf("%s: %s: %d %s", when, c.name, res.Status, truncate(res.Raw))
			}
		}
	}
	allRefused := func(ts *testServer, when string) {
		t.Helper()
		for _, c := range calls {
			res := ts.do(t, c.r)
			if res.Status != 403 || str(res.Body, "code") != "forbidden" || !strings.Contains(str(res.Body, "message"), "suspended by the operator") {
				t.Errorf("%s: %s: %d %s, want 403 forbidden saying the platform is suspended", when, c.name, res.Status, truncate(res.Raw))
			}
		}
	}
	allWork(ts, "before the suspension") // the keys are in the cache now

	// Only the operator suspends.
	for _, key := range []string{"", p.SK, p.TestSK, other.SK} {
		ts.expect(t, req{Method: "POST", Path: "/admin/platforms/" + p.ID + "/suspend", Key: key}, 401, "invalid_api_key")
	}
	ts.expect(t, req{Method: "POST", Path: "/admin/platforms/plt_nobody/suspend", Key: ts.AdminToken}, 404, "not_found")
	ts.expect(t, req{Method: "POST", Path: "/admin/platforms/" + p.ID + "/suspend", Key: ts.AdminToken,
		Body: map[string]any{"reason": strings.Repeat("x", 501)}}, 422, "validation_failed")
	ts.expect(t, req{Method: "POST", Path: "/admin/platforms/" + p.ID + "/suspend", Key: ts.AdminToken,
		Body: map[string]any{"reson": "typo"}}, 422, "validation_failed")
	allWork(ts, "after refused suspensions")

	res := ts.expect(t, req{Method: "POST", Path: "/admin/platforms/" + p.ID + "/suspend", Key: ts.AdminToken,
		Body: map[string]any{"reason": "unpaid invoices"}}, 200, "")
	at := str(res.Body, "platform", "suspendedAt")
	if at == "" || str(res.Body, "platform", "id") != p.ID || str(res.Body, "platform", "suspendedReason") != "unpaid invoices" {
		t.Fatalf("suspend: %s", res.Raw)
	}
	allRefused(ts, "suspended")
	ts.expect(t, req{Method: "GET", Path: "/api/tiers", Key: other.SK}, 200, "")
	ts.expect(t, req{Method: "POST", Path: "/api/track", Key: other.TestSK, Body: track("cus_nobody")}, 404, "not_found")
	// Suspending again keeps the first time.
	res = ts.expect(t, req{Method: "POST", Path: "/admin/platforms/" + p.ID + "/suspend", Key: ts.AdminToken}, 200, "")
	if str(res.Body, "platform", "suspendedAt") != at {
		t.Errorf("a second suspend moved suspendedAt from %s: %s", at, res.Raw)
	}
	list := ts.expect(t, req{Method: "GET", Path: "/admin/platforms", Key: ts.AdminToken}, 200, "")
	for _, v := range list.Body["data"].([]any) {
		pl := v.(map[string]any)
		if want := map[string]string{p.ID: at, other.ID: ""}[str(pl, "id")]; str(pl, "suspendedAt") != want {
			t.Errorf("GET /admin/platforms: %v, want suspendedAt %q", pl, want)
		}
	}

	// Billing is not lost: the webhook applies while suspended.
	completed := stripeEvent("evt_susp_1", "checkout.session.completed", time.Now().Add(-time.Minute), false, "", map[string]any{
		"id": "cs_1", "object": "checkout.session", "mode": "subscription", "payment_status": "paid", "status": "complete",
		"client_reference_id": id, "customer": stripeCus, "subscription": "sub_1", "metadata": map[string]string{"tier": "pro"},
	})
	ts.stripeApply(t, "/webhook/stripe/"+p.ID, completed, stripePlatformSecret, "applied")

	// A restart keeps the suspension.
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	ts = startServerAt(t, dir, env)
	allRefused(ts, "suspended, after a restart")

	res = ts.expect(t, req{Method: "POST", Path: "/admin/platforms/" + p.ID + "/resume", Key: ts.AdminToken}, 200, "")
	if v, ok := res.Body["platform"].(map[string]any)["suspendedAt"]; !ok || v != nil {
		t.Errorf("resume: %s", res.Raw)
	}
	allWork(ts, "resumed")
	if plan := str(ts.stripeCustomer(t, p.TestSK, id), "plan"); plan != "pro" {
		t.Errorf("the webhook applied while suspended left plan %q, want pro", plan)
	}
	ts.expect(t, req{Method: "POST", Path: "/admin/platforms/" + p.ID + "/resume", Key: ts.AdminToken}, 200, "")
}
