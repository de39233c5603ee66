package main

// End-to-end tests of Stripe billing: the real program against Stripe's
// official stripe-mock (engine/billing/billingtest starts it behind a proxy
// that records every request). stripe-mock is stateless, so the tests assert
// on the requests made to it and on our own stored state; webhook events are
// built here and signed with stripe-go's webhook package, as Stripe signs
// them.

import (
	"bytes"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/dream-api/dream-api/engine/billing/billingtest"
)

const (
	stripeOperatorKey    = "sk_test_operator0001"
	stripeConnectSecret  = "whsec_connect0001"
	stripePlatformKey    = "sk_test_platform0001"
	stripePlatformSecret = "whsec_platform0001"
	stripePublicURL      = "https://dream.test"
)

// stripeServer runs the program with Stripe pointed at a fresh stripe-mock;
// extra adds to (or, with "", removes from) the environment.
func stripeServer(t *testing.T, extra map[string]string) (*testServer, *billingtest.Mock) {
	t.Helper()
	mock := billingtest.Start(t)
	env := map[string]string{
		"STRIPE_API_BASE":       mock.URL,
		"STRIPE_SECRET_KEY":     stripeOperatorKey,
		"STRIPE_WEBHOOK_SECRET": stripeConnectSecret,
		"DREAM_PUBLIC_URL":      stripePublicURL,
	}
	for k, v := range extra {
		if v == "" {
			delete(env, k)
		} else {
			env[k] = v
		}
	}
	return startServer(t, env), mock
}

// stripeConnectByKey connects p's test mode with the platform keys.
func (ts *testServer) stripeConnectByKey(t *testing.T, p platform) map[string]any {
	t.Helper()
	res := ts.expect(t, req{Method: "POST", Path: "/api/platform/stripe/connect", Key: p.TestSK,
		Body: map[string]any{"secretKey": stripePlatformKey, "webhookSecret": stripePlatformSecret}}, 200, "")
	return res.Body
}

// stripeTiers puts free (0) and pro (1500 usd a month) and returns the
// tiers by name.
func (ts *testServer) stripeTiers(t *testing.T, sk string, proPrice int) map[string]map[string]any {
	t.Helper()
	res := ts.putTiers(t, sk,
		map[string]any{"name": "free", "limit": 3},
		map[string]any{"name": "pro", "price": proPrice, "limit": 1000})
	return stripeTiersByName(res.Body)
}

func stripeTiersByName(body map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	list, _ := body["tiers"].([]any)
	for _, v := range list {
		m, _ := v.(map[string]any)
		out[str(m, "name")] = m
	}
	return out
}

// stripeOnly returns the one request of method and path.
func stripeOnly(t *testing.T, m *billingtest.Mock, method, path string) billingtest.Request {
	t.Helper()
	rs := m.Find(method, path)
	if len(rs) != 1 {
		t.Fatalf("%s %s: %d requests to Stripe, want 1:\n%+v", method, path, len(rs), m.Requests())
	}
	return rs[0]
}

// stripeForm checks fields of a request made to Stripe.
func stripeForm(t *testing.T, r billingtest.Request, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got := r.Form.Get(k); got != v {
			t.Errorf("%s %s: %s = %q, want %q", r.Method, r.Path, k, got, v)
		}
	}
}

// stripeEvent is a Stripe event around obj, of an API version stripe-go
// does not know.
func stripeEvent(id, typ string, created time.Time, live bool, account string, obj map[string]any) []byte {
	ev := map[string]any{
		"id": id, "object": "event", "api_version": "2099-01-01.future", "created": created.Unix(),
		"livemode": live, "type": typ, "pending_webhooks": 1, "data": map[string]any{"object": obj},
	}
	if account != "" {
		ev["account"] = account
	}
	b, _ := json.Marshal(ev)
	return b
}

func stripeSubscription(id, customer, status, price string, amount int64, start, end time.Time, md map[string]string) map[string]any {
	return map[string]any{
		"id": id, "object": "subscription", "status": status, "customer": customer, "metadata": md,
		"cancel_at_period_end": false, "current_period_start": start.Unix(), "current_period_end": end.Unix(),
		"items": map[string]any{"object": "list", "data": []any{map[string]any{
			"id": "si_" + id, "quantity": 1,
			"price": map[string]any{"id": price, "object": "price", "unit_amount": amount, "currency": "usd",
				"recurring": map[string]any{"interval": "month", "interval_count": 1}},
		}}},
	}
}

// stripeDeliver posts a payload signed with secret at signedAt and returns
// the answer.
func (ts *testServer) stripeDeliver(t *testing.T, path string, payload []byte, secret string, signedAt time.Time) *response {
	t.Helper()
	sig := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: signedAt}).Header
	return ts.do(t, req{Method: "POST", Path: path, Body: payload, Header: map[string]string{"Stripe-Signature": sig}})
}

// stripeApply delivers a validly signed event and checks the outcome.
func (ts *testServer) stripeApply(t *testing.T, path string, payload []byte, secret, outcome string) {
	t.Helper()
	res := ts.stripeDeliver(t, path, payload, secret, time.Now())
	if res.Status != 200 || str(res.Body, "outcome") != outcome {
		t.Fatalf("POST %s: %d %s, want 200 with outcome %s", path, res.Status, truncate(res.Raw), outcome)
	}
}

func (ts *testServer) stripeCustomer(t *testing.T, sk, id string) map[string]any {
	t.Helper()
	res := ts.expect(t, req{Method: "GET", Path: "/api/customers/" + id, Key: sk}, 200, "")
	c, _ := res.Body["customer"].(map[string]any)
	return c
}

func TestStripeConnectOnboarding(t *testing.T) {
	ts, mock := stripeServer(t, nil)
	p := ts.createPlatform(t, "Connect Co")

	st := ts.expect(t, req{Method: "GET", Path: "/api/platform/stripe", Key: p.TestSK}, 200, "")
	if st.Body["connected"] != false || st.Body["connectAvailable"] != true || str(st.Body, "mode") != "test" {
		t.Fatalf("before connecting: %s", st.Raw)
	}
	// The operator's key is a test key: no Connect in live mode.
	st = ts.expect(t, req{Method: "GET", Path: "/api/platform/stripe", Key: p.SK}, 200, "")
	if st.Body["connectAvailable"] != false {
		t.Errorf("live mode offers Connect without a live operator key: %s", st.Raw)
	}
	ts.expect(t, req{Method: "POST", Path: "/api/platform/stripe/connect", Key: p.SK}, 424, "stripe_not_connected")

	res := ts.expect(t, req{Method: "POST", Path: "/api/platform/stripe/connect", Key: p.TestSK,
		Body: map[string]any{"returnUrl": "https://app.acme.test/billing"}}, 200, "")
	acct := str(res.Body, "accountId")
	if !strings.HasPrefix(acct, "acct_") || !strings.HasPrefix(str(res.Body, "url"), "https://") || str(res.Body, "method") != "connect" {
		t.Fatalf("connect: %s", res.Raw)
	}
	a := stripeOnly(t, mock, "POST", "/v1/accounts")
	if a.Key != stripeOperatorKey || a.Account != "" || a.ID != acct {
		t.Errorf("POST /v1/accounts with key %q, Stripe-Account %q → %s", a.Key, a.Account, a.ID)
	}
	stripeForm(t, a, map[string]string{"type": "standard", "email": "dev@connectco.test", "metadata[dreamPlatformId]": p.ID})
	l := stripeOnly(t, mock, "POST", "/v1/account_links")
	stripeForm(t, l, map[string]string{"account": acct, "type": "account_onboarding",
		"return_url": "https://app.acme.test/billing", "refresh_url": stripePublicURL + "/stripe/refresh"})

	// Again: a fresh link for the same account.
	mock.Reset()
	res = ts.expect(t, req{Method: "POST", Path: "/api/platform/stripe/connect", Key: p.TestSK, Body: map[string]any{}}, 200, "")
	if str(res.Body, "accountId") != acct || len(mock.Find("POST", "/v1/accounts")) != 0 || len(mock.Find("POST", "/v1/account_links")) != 1 {
		t.Errorf("second connect: %s, Stripe saw %+v", res.Raw, mock.Requests())
	}
	// Connected through Connect: not by key as well.
	ts.expect(t, req{Method: "POST", Path: "/api/platform/stripe/connect", Key: p.TestSK,
		Body: map[string]any{"secretKey": stripePlatformKey, "webhookSecret": stripePlatformSecret}}, 409, "conflict")

	st = ts.expect(t, req{Method: "GET", Path: "/api/platform/stripe", Key: p.TestSK}, 200, "")
	if st.Body["connected"] != true || str(st.Body, "accountId") != acct || st.Body["secretKeyHint"] != nil ||
		str(st.Body, "webhookUrl") != stripePublicURL+"/webhook/stripe" {
		t.Errorf("status: %s", st.Raw)
	}

	// Every call for the platform runs with the operator's key on its account.
	mock.Reset()
	tiers := ts.stripeTiers(t, p.TestSK, 1500)
	if len(mock.Requests()) != 4 {
		t.Fatalf("tiers made %d Stripe calls, want 2 products and 2 prices: %+v", len(mock.Requests()), mock.Requests())
	}
	for _, r := range mock.Requests() {
		if r.Key != stripeOperatorKey || r.Account != acct {
			t.Errorf("%s %s with key %q, Stripe-Account %q; want the operator's key on %s", r.Method, r.Path, r.Key, r.Account, acct)
		}
	}
	if !strings.HasPrefix(str(tiers["pro"], "priceId"), "price_") {
		t.Errorf("pro tier: %v", tiers["pro"])
	}

	// account.updated follows onboarding.
	upd := stripeEvent("evt_acct_1", "account.updated", time.Now(), false, acct,
		map[string]any{"id": acct, "object": "account", "charges_enabled": true, "details_submitted": true})
	ts.stripeApply(t, "/webhook/stripe", upd, stripeConnectSecret, "applied")
	st = ts.expect(t, req{Method: "GET", Path: "/api/platform/stripe", Key: p.TestSK}, 200, "")
	if st.Body["chargesEnabled"] != true || st.Body["detailsSubmitted"] != true {
		t.Errorf("after account.updated: %s", st.Raw)
	}

	// Disconnected: its events are no longer the platform's.
	res = ts.expect(t, req{Method: "DELETE", Path: "/api/platform/stripe", Key: p.TestSK}, 200, "")
	if res.Body["connected"] != false {
		t.Errorf("after DELETE: %s", res.Raw)
	}
	upd = stripeEvent("evt_acct_2", "account.updated", time.Now(), false, acct, map[string]any{"id": acct, "object": "account"})
	ts.stripeApply(t, "/webhook/stripe", upd, stripeConnectSecret, "ignored")
	ts.expect(t, req{Method: "POST", Path: "/api/create-checkout", Key: p.TestSK, Body: map[string]any{"customerId": "cus_x", "tier": "pro"}}, 424, "stripe_not_connected")
}

// TestStripeConnectIdempotencyKeysPerPlatform: two platforms that start
// Connect onboarding with the same Idempotency-Key and body send Stripe two
// different keys. Both accounts are made on the operator's one Stripe
// account, where Stripe would answer the second with the first one's
// account (stripe-mock does not keep keys, so the test looks at the keys).
func TestStripeConnectIdempotencyKeysPerPlatform(t *testing.T) {
	ts, mock := stripeServer(t, nil)
	a, b := ts.createPlatform(t, "First Co"), ts.createPlatform(t, "Second Co")
	idem := map[string]string{"Idempotency-Key": "connect-stripe"}
	for _, p := range []platform{a, b} {
		ts.expect(t, req{Method: "POST", Path: "/api/platform/stripe/connect", Key: p.TestSK, Header: idem, Body: map[string]any{}}, 200, "")
	}
	for _, path := range []string{"/v1/accounts", "/v1/account_links"} {
		rs := mock.Find("POST", path)
		if len(rs) != 2 {
			t.Fatalf("POST %s: %d requests, want 2: %+v", path, len(rs), mock.Requests())
		}
		if rs[0].IdempotencyKey == "" || rs[0].IdempotencyKey == rs[1].IdempotencyKey {
			t.Errorf("POST %s: both platforms sent Idempotency-Key %q", path, rs[0].IdempotencyKey)
		}
		for i, p := range []platform{a, b} {
			if !strings.HasPrefix(rs[i].IdempotencyKey, p.ID+"/test/connect-stripe/") {
				t.Errorf("POST %s for %s: Idempotency-Key %q", path, p.ID, rs[i].IdempotencyKey)
			}
		}
	}
}

func TestStripeConnectByKey(t *testing.T) {
	ts, mock := stripeServer(t, map[string]string{"STRIPE_SECRET_KEY": ""})
	p := ts.createPlatform(t, "Key Co")

	for _, tc := range []struct {
		name string
		key  string
		body map[string]any
		code string
	}{
		{"live key for test mode", p.TestSK, map[string]any{"secretKey": "sk_live_abc123", "webhookSecret": stripePlatformSecret}, "validation_failed"},
		{"test key for live mode", p.SK, map[string]any{"secretKey": stripePlatformKey, "webhookSecret": stripePlatformSecret}, "validation_failed"},
		{"no webhook secret", p.TestSK, map[string]any{"secretKey": stripePlatformKey}, "validation_failed"},
		{"a key Stripe rejects", p.TestSK, map[string]any{"secretKey": "sk_test_not_a_key", "webhookSecret": stripePlatformSecret}, "validation_failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts.expect(t, req{Method: "POST", Path: "/api/platform/stripe/connect", Key: tc.key, Body: tc.body}, 422, tc.code)
		})
	}
	// Without an operator key, no Connect onboarding.
	ts.expect(t, req{Method: "POST", Path: "/api/platform/stripe/connect", Key: p.TestSK}, 424, "stripe_not_connected")

	mock.Reset()
	body := map[string]any{"secretKey": stripePlatformKey, "webhookSecret": stripePlatformSecret}
	idem := map[string]string{"Idempotency-Key": "connect-1"}
	res := ts.expect(t, req{Method: "POST", Path: "/api/platform/stripe/connect", Key: p.TestSK, Body: body, Header: idem}, 200, "")
	if str(res.Body, "method") != "key" || res.Body["url"] != nil || !strings.HasPrefix(str(res.Body, "accountId"), "acct_") ||
		str(res.Body, "secretKeyHint") != "sk_test_…0001" || str(res.Body, "webhookUrl") != stripePublicURL+"/webhook/stripe/"+p.ID {
		t.Fatalf("connect by key: %s", res.Raw)
	}
	r := stripeOnly(t, mock, "GET", "/v1/account")
	if r.Key != stripePlatformKey || r.Account != "" {
		t.Errorf("GET /v1/account with key %q, Stripe-Account %q", r.Key, r.Account)
	}
	// A replay answers the first answer and asks Stripe nothing.
	again := ts.expect(t, req{Method: "POST", Path: "/api/platform/stripe/connect", Key: p.TestSK, Body: body, Header: idem}, 200, "")
	if !bytes.Equal(again.Raw, res.Raw) || len(mock.Find("GET", "/v1/account")) != 1 {
		t.Errorf("replay: %s (Stripe saw %d account checks)", again.Raw, len(mock.Find("GET", "/v1/account")))
	}
	st := ts.expect(t, req{Method: "GET", Path: "/api/platform/stripe", Key: p.TestSK}, 200, "")
	live := ts.expect(t, req{Method: "GET", Path: "/api/platform/stripe", Key: p.SK}, 200, "")
	if st.Body["connected"] != true || live.Body["connected"] != false {
		t.Errorf("test mode %s, live mode %s", st.Raw, live.Raw)
	}
	for _, raw := range [][]byte{res.Raw, st.Raw} {
		if bytes.Contains(raw, []byte(stripePlatformKey)) || bytes.Contains(raw, []byte(stripePlatformSecret)) {
			t.Errorf("a secret is in an answer: %s", raw)
		}
	}

	// Calls for a key-connected platform run with its own key, no Stripe-Account.
	mock.Reset()
	ts.stripeTiers(t, p.TestSK, 1500)
	for _, r := range mock.Requests() {
		if r.Key != stripePlatformKey || r.Account != "" {
			t.Errorf("%s %s with key %q, Stripe-Account %q", r.Method, r.Path, r.Key, r.Account)
		}
	}

	// Sealed at rest: neither secret is anywhere in the data dir.
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir(ts.DataDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, secret := range []string{stripePlatformKey, stripePlatformSecret} {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("%s is stored in plaintext in %s", secret, path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestStripeTiersBecomeProductsAndPrices(t *testing.T) {
	ts, mock := stripeServer(t, nil)
	p := ts.createPlatform(t, "Tier Co")
	ts.stripeConnectByKey(t, p)

	mock.Reset()
	res := ts.expect(t, req{Method: "PUT", Path: "/api/platform/tiers", Key: p.TestSK, Header: map[string]string{"Idempotency-Key": "tiers-1"},
		Body: map[string]any{"tiers": []any{
			map[string]any{"name": "free", "limit": 3},
			map[string]any{"name": "pro", "displayName": "Pro", "price": 1500, "limit": 1000},
		}}}, 200, "")
	tiers := stripeTiersByName(res.Body)
	products, prices := mock.Find("POST", "/v1/products"), mock.Find("POST", "/v1/prices")
	if len(products) != 2 || len(prices) != 2 {
		t.Fatalf("%d products and %d prices made, want 2 and 2: %+v", len(products), len(prices), mock.Requests())
	}
	for i, name := range []string{"free", "pro"} {
		want := []string{"0", "1500"}[i]
		stripeForm(t, products[i], map[string]string{"name": map[string]string{"free": "Free", "pro": "Pro"}[name], "metadata[dreamTier]": name})
		stripeForm(t, prices[i], map[string]string{"unit_amount": want, "currency": "usd", "recurring[interval]": "month",
			"product": products[i].ID, "metadata[dreamTier]": name})
		if str(tiers[name], "productId") != products[i].ID || str(tiers[name], "priceId") != prices[i].ID {
			t.Errorf("tier %s: %v; Stripe made %s and %s", name, tiers[name], products[i].ID, prices[i].ID)
		}
		// Our Idempotency-Key goes on to Stripe, scoped by platform and mode.
		if pre := p.ID + "/test/tiers-1/"; !strings.HasPrefix(prices[i].IdempotencyKey, pre) || !strings.HasPrefix(products[i].IdempotencyKey, pre) {
			t.Errorf("Stripe idempotency keys %q, %q", products[i].IdempotencyKey, prices[i].IdempotencyKey)
		}
	}
	// The ids are the test mode's: GET /api/tiers shows them to test keys only.
	got := stripeTiersByName(ts.expect(t, req{Method: "GET", Path: "/api/tiers?pk=" + p.TestPK}, 200, "").Body)
	if str(got["pro"], "priceId") != str(tiers["pro"], "priceId") {
		t.Errorf("GET /api/tiers (test): %v", got["pro"])
	}
	if got := stripeTiersByName(ts.expect(t, req{Method: "GET", Path: "/api/tiers?pk=" + p.PK}, 200, "").Body); got["pro"]["priceId"] != nil {
		t.Errorf("GET /api/tiers (live) shows test-mode ids: %v", got["pro"])
	}

	// The same config again: nothing to do in Stripe.
	mock.Reset()
	ts.stripeTiers(t, p.TestSK, 1500)
	if n := len(mock.Requests()); n != 0 {
		t.Errorf("an unchanged config made %d Stripe calls: %+v", n, mock.Requests())
	}

	// A new price: a new Price on the same product, the old one archived.
	mock.Reset()
	res = ts.putTiers(t, p.TestSK, map[string]any{"name": "free", "limit": 3},
		map[string]any{"name": "pro", "displayName": "Pro Plus", "price": 2000, "limit": 1000})
	next := stripeTiersByName(res.Body)
	np := stripeOnly(t, mock, "POST", "/v1/prices")
	stripeForm(t, np, map[string]string{"unit_amount": "2000", "product": str(tiers["pro"], "productId")})
	if str(next["pro"], "priceId") != np.ID || str(next["pro"], "productId") != str(tiers["pro"], "productId") {
		t.Errorf("pro after the price change: %v", next["pro"])
	}
	old := stripeOnly(t, mock, "POST", "/v1/prices/"+str(tiers["pro"], "priceId"))
	stripeForm(t, old, map[string]string{"active": "false"})
	rename := stripeOnly(t, mock, "POST", "/v1/products/"+str(tiers["pro"], "productId"))
	stripeForm(t, rename, map[string]string{"name": "Pro Plus"})
	if str(next["free"], "priceId") != str(tiers["free"], "priceId") {
		t.Errorf("free changed: %v", next["free"])
	}

	// A removed tier: its price and product are archived.
	mock.Reset()
	ts.putTiers(t, p.TestSK, map[string]any{"name": "pro", "displayName": "Pro Plus", "price": 2000, "limit": 1000})
	stripeForm(t, stripeOnly(t, mock, "POST", "/v1/prices/"+str(tiers["free"], "priceId")), map[string]string{"active": "false"})
	stripeForm(t, stripeOnly(t, mock, "POST", "/v1/products/"+str(tiers["free"], "productId")), map[string]string{"active": "false"})

	// A config the server refuses makes nothing in Stripe.
	ts.createCustomer(t, p.TestSK, map[string]any{"email": "on-pro@example.com", "plan": "pro"})
	mock.Reset()
	ts.expect(t, req{Method: "PUT", Path: "/api/platform/tiers", Key: p.TestSK,
		Body: map[string]any{"tiers": []any{map[string]any{"name": "team", "price": 9900}}}}, 422, "validation_failed")
	if n := len(mock.Requests()); n != 0 {
		t.Errorf("a refused config made %d Stripe calls", n)
	}
}

func TestStripeDownChangesNothing(t *testing.T) {
	ts, mock := stripeServer(t, nil)
	p := ts.createPlatform(t, "Outage Co")
	ts.stripeConnectByKey(t, p)
	before := ts.stripeTiers(t, p.TestSK, 1500)
	cus := ts.createCustomer(t, p.TestSK, map[string]any{"email": "ada@example.com", "firstName": "Ada"})
	id := str(cus, "id")

	mock.Stop()

	ts.expect(t, req{Method: "PUT", Path: "/api/platform/tiers", Key: p.TestSK, Body: map[string]any{"tiers": []any{
		map[string]any{"name": "free", "limit": 3}, map[string]any{"name": "pro", "price": 2500, "limit": 1000},
	}}}, 502, "upstream_error")
	after := stripeTiersByName(ts.expect(t, req{Method: "GET", Path: "/api/platform/tiers", Key: p.TestSK}, 200, "").Body)
	if num(after["pro"], "price") != 1500 || str(after["pro"], "priceId") != str(before["pro"], "priceId") {
		t.Errorf("the tier config changed although Stripe failed: %v", after["pro"])
	}

	ts.expect(t, req{Method: "POST", Path: "/api/create-checkout", Key: p.TestSK, Header: map[string]string{"Idempotency-Key": "co-down"},
		Body: map[string]any{"customerId": id, "tier": "pro"}}, 502, "upstream_error")
	if c := ts.stripeCustomer(t, p.TestSK, id); c["stripeCustomerId"] != nil || c["subscription"] != nil {
		t.Errorf("the customer got Stripe state although Stripe failed: %v", c)
	}
	ts.expect(t, req{Method: "POST", Path: "/api/platform/stripe/connect", Key: p.TestSK,
		Body: map[string]any{"secretKey": "sk_test_platform0002", "webhookSecret": "whsec_other"}}, 502, "upstream_error")
	st := ts.expect(t, req{Method: "GET", Path: "/api/platform/stripe", Key: p.TestSK}, 200, "")
	if str(st.Body, "secretKeyHint") != "sk_test_…0001" {
		t.Errorf("the connection changed although Stripe failed: %s", st.Raw)
	}
	// The failed request's Idempotency-Key was not used up: it works once
	// Stripe is back (here: the same answer as any 502, nothing recorded).
	ts.expect(t, req{Method: "POST", Path: "/api/create-checkout", Key: p.TestSK, Header: map[string]string{"Idempotency-Key": "co-down"},
		Body: map[string]any{"customerId": id, "tier": "pro"}}, 502, "upstream_error")
}

func TestStripeCheckoutAndPortal(t *testing.T) {
	ts, mock := stripeServer(t, nil)
	p := ts.createPlatform(t, "Shop Co")
	ts.stripeConnectByKey(t, p)
	cus := ts.createCustomer(t, p.TestSK, map[string]any{"email": "ada@example.com", "firstName": "Ada", "lastName": "L"})
	id := str(cus, "id")

	// No tier config synced yet: checkout makes the products and prices first.
	mock.Reset()
	idem := map[string]string{"Idempotency-Key": "co-1"}
	body := map[string]any{"customerId": id, "tier": "pro"}
	res := ts.expect(t, req{Method: "POST", Path: "/api/create-checkout", Key: p.TestSK, Body: body, Header: idem}, 200, "")
	if !strings.HasPrefix(str(res.Body, "sessionId"), "cs_") || str(res.Body, "url") == "" {
		t.Fatalf("checkout: %s", res.Raw)
	}
	if len(mock.Find("POST", "/v1/products")) != 2 || len(mock.Find("POST", "/v1/prices")) != 2 {
		t.Errorf("checkout did not make the catalog first: %+v", mock.Requests())
	}
	tiers := stripeTiersByName(ts.expect(t, req{Method: "GET", Path: "/api/platform/tiers", Key: p.TestSK}, 200, "").Body)
	sc := stripeOnly(t, mock, "POST", "/v1/customers")
	stripeForm(t, sc, map[string]string{"email": "ada@example.com", "name": "Ada L", "metadata[dreamCustomerId]": id, "metadata[dreamPlatformId]": p.ID})
	sess := stripeOnly(t, mock, "POST", "/v1/checkout/sessions")
	stripeForm(t, sess, map[string]string{
		"mode": "subscription", "customer": sc.ID, "client_reference_id": id,
		"line_items[0][price]": str(tiers["pro"], "priceId"), "line_items[0][quantity]": "1",
		"metadata[tier]": "pro", "subscription_data[metadata][tier]": "pro", "subscription_data[metadata][dreamCustomerId]": id,
		"success_url": stripePublicURL + "/billing/success?session_id={CHECKOUT_SESSION_ID}", "cancel_url": stripePublicURL + "/billing/cancel",
	})
	if sess.ID != str(res.Body, "sessionId") {
		t.Errorf("sessionId %s, Stripe made %s", str(res.Body, "sessionId"), sess.ID)
	}
	for _, r := range []billingtest.Request{sc, sess} {
		if !strings.HasPrefix(r.IdempotencyKey, p.ID+"/test/co-1/") || r.Key != stripePlatformKey {
			t.Errorf("%s with Idempotency-Key %q, key %q", r.Path, r.IdempotencyKey, r.Key)
		}
	}
	c := ts.stripeCustomer(t, p.TestSK, id)
	if str(c, "stripeCustomerId") != sc.ID || !strings.HasPrefix(str(c, "stripeAccountId"), "acct_") {
		t.Errorf("customer after checkout: %v", c)
	}

	// A replay: the first answer, nothing asked of Stripe.
	mock.Reset()
	again := ts.expect(t, req{Method: "POST", Path: "/api/create-checkout", Key: p.TestSK, Body: body, Header: idem}, 200, "")
	if !bytes.Equal(again.Raw, res.Raw) || len(mock.Requests()) != 0 {
		t.Errorf("replay: %s; Stripe saw %+v", again.Raw, mock.Requests())
	}
	// The seed's form: the customer in X-User-Id; the Stripe customer is reused.
	res = ts.expect(t, req{Method: "POST", Path: "/api/create-checkout", Key: p.TestSK, Header: map[string]string{"X-User-Id": id},
		Body: map[string]any{"tier": "free", "successUrl": "https://app.shop.test/ok", "cancelUrl": "https://app.shop.test/no"}}, 200, "")
	if len(mock.Find("POST", "/v1/customers")) != 0 {
		t.Errorf("a second Stripe customer was made")
	}
	stripeForm(t, stripeOnly(t, mock, "POST", "/v1/checkout/sessions"), map[string]string{
		"customer": sc.ID, "line_items[0][price]": str(tiers["free"], "priceId"), "success_url": "https://app.shop.test/ok",
	})

	ts.expect(t, req{Method: "POST", Path: "/api/create-checkout", Key: p.TestSK, Body: map[string]any{"customerId": id, "tier": "gold"}}, 422, "validation_failed")
	ts.expect(t, req{Method: "POST", Path: "/api/create-checkout", Key: p.TestSK, Body: map[string]any{"customerId": id}}, 422, "validation_failed")
	ts.expect(t, req{Method: "POST", Path: "/api/create-checkout", Key: p.TestSK, Body: map[string]any{"customerId": "cus_nobody", "tier": "pro"}}, 404, "not_found")
	ts.expect(t, req{Method: "POST", Path: "/api/create-checkout", Key: p.TestSK, Body: map[string]any{"customerId": id, "tier": "pro", "successUrl": "javascript:alert(1)"}}, 422, "validation_failed")
	ts.expect(t, req{Method: "POST", Path: "/api/create-checkout", Key: p.SK, Body: map[string]any{"customerId": id, "tier": "pro"}}, 424, "stripe_not_connected")

	// The portal.
	mock.Reset()
	res = ts.expect(t, req{Method: "POST", Path: "/api/customer-portal", Key: p.TestSK, Body: map[string]any{"customerId": id, "returnUrl": "https://app.shop.test/account"}}, 200, "")
	if str(res.Body, "url") == "" {
		t.Errorf("portal: %s", res.Raw)
	}
	stripeForm(t, stripeOnly(t, mock, "POST", "/v1/billing_portal/sessions"), map[string]string{"customer": sc.ID, "return_url": "https://app.shop.test/account"})
	ts.expect(t, req{Method: "POST", Path: "/api/customer-portal", Key: p.TestSK, Header: map[string]string{"X-User-Id": id}}, 200, "")
	other := ts.createCustomer(t, p.TestSK, map[string]any{"email": "bob@example.com"})
	ts.expect(t, req{Method: "POST", Path: "/api/customer-portal", Key: p.TestSK, Body: map[string]any{"customerId": str(other, "id")}}, 422, "validation_failed")
	ts.expect(t, req{Method: "POST", Path: "/api/customer-portal", Key: p.SK, Body: map[string]any{"customerId": id}}, 424, "stripe_not_connected")
}

func TestStripeWebhooks(t *testing.T) {
	ts, _ := stripeServer(t, nil)
	p := ts.createPlatform(t, "Hook Co")
	ts.stripeConnectByKey(t, p)
	tiers := ts.stripeTiers(t, p.TestSK, 1500)
	proPrice, freePrice := str(tiers["pro"], "priceId"), str(tiers["free"], "priceId")
	id := str(ts.createCustomer(t, p.TestSK, map[string]any{"email": "ada@example.com"}), "id")
	ts.expect(t, req{Method: "POST", Path: "/api/create-checkout", Key: p.TestSK, Body: map[string]any{"customerId": id, "tier": "pro"}}, 200, "")
	stripeCus := str(ts.stripeCustomer(t, p.TestSK, id), "stripeCustomerId")
	hook := "/webhook/stripe/" + p.ID
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	plan := func() string { return str(ts.stripeCustomer(t, p.TestSK, id), "plan") }

	completed := stripeEvent("evt_1", "checkout.session.completed", t0, false, "", map[string]any{
		"id": "cs_1", "object": "checkout.session", "mode": "subscription", "payment_status": "paid", "status": "complete",
		"client_reference_id": id, "customer": stripeCus, "subscription": "sub_1", "metadata": map[string]string{"tier": "pro"},
	})
	t.Run("forged", func(t *testing.T) {
		res := ts.stripeDeliver(t, hook, completed, "whsec_forged", time.Now())
		if res.Status != 400 || str(res.Body, "code") != "invalid_json" || plan() != "free" {
			t.Errorf("forged: %d %s, plan %s", res.Status, res.Raw, plan())
		}
	})
	t.Run("stale signature", func(t *testing.T) {
		res := ts.stripeDeliver(t, hook, completed, stripePlatformSecret, time.Now().Add(-6*time.Minute))
		if res.Status != 400 || plan() != "free" {
			t.Errorf("stale: %d %s, plan %s", res.Status, res.Raw, plan())
		}
	})
	t.Run("signature from the future", func(t *testing.T) {
		for _, path := range []string{hook, "/webhook/stripe"} {
			secret := map[string]string{hook: stripePlatformSecret, "/webhook/stripe": stripeConnectSecret}[path]
			res := ts.stripeDeliver(t, path, completed, secret, time.Now().Add(6*time.Minute))
			if res.Status != 400 || !strings.Contains(str(res.Body, "message"), "5 minutes") || plan() != "free" {
				t.Errorf("%s signed 6 minutes ahead: %d %s, plan %s", path, res.Status, res.Raw, plan())
			}
		}
	})
	t.Run("unsigned", func(t *testing.T) {
		res := ts.do(t, req{Method: "POST", Path: hook, Body: completed})
		if res.Status != 400 {
			t.Errorf("unsigned: %d %s", res.Status, res.Raw)
		}
	})
	t.Run("live event signed with the test secret", func(t *testing.T) {
		live := stripeEvent("evt_live", "checkout.session.completed", t0, true, "", map[string]any{"id": "cs_2", "mode": "subscription"})
		if res := ts.stripeDeliver(t, hook, live, stripePlatformSecret, time.Now()); res.Status != 400 {
			t.Errorf("mode mismatch: %d %s", res.Status, res.Raw)
		}
	})
	t.Run("unknown platform", func(t *testing.T) {
		if res := ts.stripeDeliver(t, "/webhook/stripe/plt_nobody", completed, stripePlatformSecret, time.Now()); res.Status != 404 {
			t.Errorf("unknown platform: %d", res.Status)
		}
	})

	// checkout.session.completed: the plan from metadata.tier.
	ts.stripeApply(t, hook, completed, stripePlatformSecret, "applied")
	if c := ts.stripeCustomer(t, p.TestSK, id); str(c, "plan") != "pro" || str(c, "subscription", "id") != "sub_1" || str(c, "subscription", "status") != "active" {
		t.Fatalf("after checkout.session.completed: %v", c)
	}
	// Replayed (a redelivery, freshly signed): applied once.
	ts.stripeApply(t, hook, completed, stripePlatformSecret, "duplicate")

	// The subscription's period becomes the usage period.
	start, end := time.Now().Add(-10*24*time.Hour).Truncate(time.Second).UTC(), time.Now().Add(20*24*time.Hour).Truncate(time.Second).UTC()
	upd := stripeEvent("evt_2", "customer.subscription.updated", t0.Add(10*time.Second), false, "",
		stripeSubscription("sub_1", stripeCus, "active", proPrice, 1500, start, end, map[string]string{"dreamCustomerId": id}))
	ts.stripeApply(t, hook, upd, stripePlatformSecret, "applied")
	ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.TestSK, Body: track(id)}, 200, "")
	u := ts.usage(t, p.TestSK, id, "requests")
	if str(u, "periodStart") != start.Format(time.RFC3339) || str(u, "periodEnd") != end.Format(time.RFC3339) || num(u, "count") != 1 || num(u, "limit") != 1000 {
		t.Errorf("usage in the subscription period: %v (want %s – %s)", u, start.Format(time.RFC3339), end.Format(time.RFC3339))
	}

	// Out of order: an older update (to free) does not override the newer one.
	older := stripeEvent("evt_3", "customer.subscription.updated", t0.Add(5*time.Second), false, "",
		stripeSubscription("sub_1", stripeCus, "active", freePrice, 0, start, end, nil))
	ts.stripeApply(t, hook, older, stripePlatformSecret, "stale")
	if plan() != "pro" {
		t.Errorf("an older event changed the plan to %s", plan())
	}

	// A plan change by price (no metadata: the customer through its Stripe id).
	switched := stripeEvent("evt_4", "customer.subscription.updated", t0.Add(15*time.Second), false, "",
		stripeSubscription("sub_1", stripeCus, "active", freePrice, 0, start, end, nil))
	ts.stripeApply(t, hook, switched, stripePlatformSecret, "applied")
	if plan() != "free" {
		t.Errorf("plan from the price: %s, want free", plan())
	}
	back := stripeEvent("evt_5", "customer.subscription.updated", t0.Add(16*time.Second), false, "",
		stripeSubscription("sub_1", stripeCus, "active", proPrice, 1500, start, end, nil))
	ts.stripeApply(t, hook, back, stripePlatformSecret, "applied")

	// Payment failed: past_due, the plan kept; paid: cleared, period renewed.
	failed := stripeEvent("evt_6", "invoice.payment_failed", t0.Add(20*time.Second), false, "",
		map[string]any{"id": "in_1", "object": "invoice", "customer": stripeCus, "subscription": "sub_1"})
	ts.stripeApply(t, hook, failed, stripePlatformSecret, "applied")
	c := ts.stripeCustomer(t, p.TestSK, id)
	if str(c, "plan") != "pro" || get(c, "subscription", "pastDue") != true || str(c, "subscription", "status") != "past_due" {
		t.Errorf("after invoice.payment_failed: %v", c)
	}
	stats := ts.expect(t, req{Method: "GET", Path: "/api/platform/stats", Key: p.TestSK}, 200, "")
	if num(stats.Body, "subscriptions", "pastDue") != 1 {
		t.Errorf("stats while past_due: %s", stats.Raw)
	}
	newStart, newEnd := time.Now().Add(-24*time.Hour).Truncate(time.Second).UTC(), time.Now().Add(29*24*time.Hour).Truncate(time.Second).UTC()
	paid := stripeEvent("evt_7", "invoice.paid", t0.Add(30*time.Second), false, "", map[string]any{
		"id": "in_2", "object": "invoice", "customer": stripeCus, "subscription": "sub_1",
		"lines": map[string]any{"data": []any{map[string]any{"type": "subscription", "period": map[string]any{"start": newStart.Unix(), "end": newEnd.Unix()}}}},
	})
	ts.stripeApply(t, hook, paid, stripePlatformSecret, "applied")
	// The failure again (a redelivery): applied once, so past_due stays cleared.
	ts.stripeApply(t, hook, failed, stripePlatformSecret, "duplicate")
	c = ts.stripeCustomer(t, p.TestSK, id)
	if get(c, "subscription", "pastDue") != false || str(c, "subscription", "status") != "active" {
		t.Errorf("after invoice.paid: %v", c)
	}
	if u := ts.usage(t, p.TestSK, id, "requests"); str(u, "periodStart") != newStart.Format(time.RFC3339) || num(u, "count") != 0 {
		t.Errorf("the renewed period: %v", u)
	}

	// Stats: customers per plan and MRR of the active subscriptions.
	ts.createCustomer(t, p.TestSK, map[string]any{"email": "bob@example.com"})
	stats = ts.expect(t, req{Method: "GET", Path: "/api/platform/stats", Key: p.TestSK}, 200, "")
	if num(stats.Body, "customers") != 2 || num(stats.Body, "customersPerPlan", "pro") != 1 || num(stats.Body, "customersPerPlan", "free") != 1 ||
		num(stats.Body, "subscriptions", "active") != 1 {
		t.Errorf("stats: %s", stats.Raw)
	}
	if mrr, _ := stats.Body["mrr"].([]any); len(mrr) != 1 || num(mrr[0].(map[string]any), "amount") != 1500 || str(mrr[0].(map[string]any), "currency") != "usd" {
		t.Errorf("MRR: %s", stats.Raw)
	}
	if live := ts.expect(t, req{Method: "GET", Path: "/api/platform/stats", Key: p.SK}, 200, ""); num(live.Body, "customers") != 0 {
		t.Errorf("live stats see test customers: %s", live.Raw)
	}

	// Unknown types: 200, ignored.
	ts.stripeApply(t, hook, stripeEvent("evt_8", "customer.created", t0, false, "", map[string]any{"id": stripeCus, "object": "customer"}), stripePlatformSecret, "ignored")

	// Deleted: back to free and calendar periods; a late update changes nothing.
	del := stripeEvent("evt_9", "customer.subscription.deleted", t0.Add(40*time.Second), false, "",
		stripeSubscription("sub_1", stripeCus, "canceled", proPrice, 1500, start, end, nil))
	ts.stripeApply(t, hook, del, stripePlatformSecret, "applied")
	late := stripeEvent("evt_10", "customer.subscription.updated", t0.Add(35*time.Second), false, "",
		stripeSubscription("sub_1", stripeCus, "active", proPrice, 1500, start, end, nil))
	ts.stripeApply(t, hook, late, stripePlatformSecret, "stale")
	c = ts.stripeCustomer(t, p.TestSK, id)
	if str(c, "plan") != "free" || str(c, "subscription", "status") != "canceled" {
		t.Errorf("after customer.subscription.deleted: %v", c)
	}
	month := time.Date(time.Now().UTC().Year(), time.Now().UTC().Month(), 1, 0, 0, 0, 0, time.UTC)
	if u := ts.usage(t, p.TestSK, id, "requests"); str(u, "periodStart") != month.Format(time.RFC3339) {
		t.Errorf("after the subscription: period %v, want the calendar month", u)
	}
	stats = ts.expect(t, req{Method: "GET", Path: "/api/platform/stats", Key: p.TestSK}, 200, "")
	if mrr, _ := stats.Body["mrr"].([]any); len(mrr) != 0 || num(stats.Body, "subscriptions", "canceled") != 1 {
		t.Errorf("stats after the cancellation: %s", stats.Raw)
	}

	// A new subscription, delivered eight times at once: applied once.
	created := stripeEvent("evt_11", "customer.subscription.created", t0.Add(50*time.Second), false, "",
		stripeSubscription("sub_2", stripeCus, "active", proPrice, 1500, newStart, newEnd, nil))
	sig := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: created, Secret: stripePlatformSecret}).Header
	outcomes := make(chan string, 8)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := ts.try(t.Context(), req{Method: "POST", Path: hook, Body: created, Header: map[string]string{"Stripe-Signature": sig}})
			if err != nil {
				t.Error(err)
				outcomes <- "error"
				return
			}
			outcomes <- str(res.Body, "outcome")
		}()
	}
	wg.Wait()
	close(outcomes)
	count := map[string]int{}
	for o := range outcomes {
		count[o]++
	}
	if count["applied"] != 1 || count["duplicate"] != 7 {
		t.Errorf("eight concurrent deliveries: %v, want 1 applied and 7 duplicates", count)
	}
	if c := ts.stripeCustomer(t, p.TestSK, id); str(c, "plan") != "pro" || str(c, "subscription", "id") != "sub_2" {
		t.Errorf("after the new subscription: %v", c)
	}
}

func TestStripeConnectWebhooks(t *testing.T) {
	ts, _ := stripeServer(t, map[string]string{"STRIPE_WEBHOOK_SECRET": stripeConnectSecret + ", whsec_account0001"})
	p := ts.createPlatform(t, "Hub Co")
	acct := str(ts.expect(t, req{Method: "POST", Path: "/api/platform/stripe/connect", Key: p.TestSK}, 200, "").Body, "accountId")
	tiers := ts.stripeTiers(t, p.TestSK, 1500)
	id := str(ts.createCustomer(t, p.TestSK, map[string]any{"email": "ada@example.com"}), "id")
	ts.expect(t, req{Method: "POST", Path: "/api/create-checkout", Key: p.TestSK, Body: map[string]any{"customerId": id, "tier": "pro"}}, 200, "")
	stripeCus := str(ts.stripeCustomer(t, p.TestSK, id), "stripeCustomerId")
	now := time.Now().Truncate(time.Second)
	sub := stripeSubscription("sub_c1", stripeCus, "active", str(tiers["pro"], "priceId"), 1500, now.Add(-time.Hour), now.Add(29*24*time.Hour), nil)

	// livemode picks the mode: a live event of the account is not the test customer's.
	ts.stripeApply(t, "/webhook/stripe", stripeEvent("evt_c0", "customer.subscription.created", now, true, acct, sub), stripeConnectSecret, "ignored")
	// Another account's event is nobody's here.
	ts.stripeApply(t, "/webhook/stripe", stripeEvent("evt_c1", "customer.subscription.created", now, false, "acct_other", sub), stripeConnectSecret, "ignored")
	if str(ts.stripeCustomer(t, p.TestSK, id), "plan") != "free" {
		t.Fatal("an event of another mode or account changed the customer")
	}
	// The second secret verifies too.
	ts.stripeApply(t, "/webhook/stripe", stripeEvent("evt_c2", "customer.subscription.created", now, false, acct, sub), "whsec_account0001", "applied")
	if c := ts.stripeCustomer(t, p.TestSK, id); str(c, "plan") != "pro" || str(c, "subscription", "id") != "sub_c1" {
		t.Errorf("after customer.subscription.created: %v", c)
	}
	if res := ts.stripeDeliver(t, "/webhook/stripe", stripeEvent("evt_c3", "customer.subscription.deleted", now, false, acct, sub), stripePlatformSecret, time.Now()); res.Status != 400 {
		t.Errorf("signed with a platform's secret: %d", res.Status)
	}

	// Without STRIPE_WEBHOOK_SECRET the endpoint is not there.
	bare, _ := stripeServer(t, map[string]string{"STRIPE_WEBHOOK_SECRET": ""})
	if res := bare.stripeDeliver(t, "/webhook/stripe", stripeEvent("evt_c4", "customer.created", now, false, acct, map[string]any{}), stripeConnectSecret, time.Now()); res.Status != 404 {
		t.Errorf("no webhook secret: %d", res.Status)
	}
}

func TestStripeOperatorBilling(t *testing.T) {
	const priceID = "price_dreamPlatform"
	const liveOperator = "sk_live_operator0001"
	ts, mock := stripeServer(t, map[string]string{"STRIPE_SECRET_KEY": liveOperator, "DREAM_PLATFORM_PRICE_ID": priceID})
	p := ts.createPlatform(t, "Paying Co")

	// Live keys wait for the subscription; test keys work.
	ts.expect(t, req{Method: "POST", Path: "/api/customers", Key: p.SK, Body: map[string]any{"email": "a@example.com"}}, 403, "forbidden")
	ts.expect(t, req{Method: "GET", Path: "/api/tiers?pk=" + url.QueryEscape(p.PK)}, 403, "forbidden")
	ts.createCustomer(t, p.TestSK, map[string]any{"email": "a@example.com"})
	st := ts.expect(t, req{Method: "GET", Path: "/api/platform/billing", Key: p.SK}, 200, "")
	if st.Body["required"] != true || st.Body["active"] != false {
		t.Fatalf("billing before paying: %s", st.Raw)
	}

	res := ts.expect(t, req{Method: "POST", Path: "/api/platform/billing/checkout", Key: p.SK, Header: map[string]string{"Idempotency-Key": "sub-1"}}, 200, "")
	if !strings.HasPrefix(str(res.Body, "sessionId"), "cs_") {
		t.Fatalf("platform checkout: %s", res.Raw)
	}
	sess := stripeOnly(t, mock, "POST", "/v1/checkout/sessions")
	if sess.Key != liveOperator || sess.Account != "" || !strings.HasPrefix(sess.IdempotencyKey, p.ID+"/live/sub-1/") {
		t.Errorf("platform checkout with key %q, Stripe-Account %q, Idempotency-Key %q", sess.Key, sess.Account, sess.IdempotencyKey)
	}
	stripeForm(t, sess, map[string]string{"mode": "subscription", "line_items[0][price]": priceID, "client_reference_id": p.ID,
		"metadata[dreamPlatformId]": p.ID, "subscription_data[metadata][dreamPlatformId]": p.ID, "customer_email": "dev@payingco.test"})

	// A test-mode checkout (anyone completes one with a test card) does not
	// turn live keys on: platforms are billed in live mode here.
	now := time.Now().Truncate(time.Second)
	session := func(sub string) map[string]any {
		return map[string]any{
			"id": "cs_" + sub, "object": "checkout.session", "mode": "subscription", "payment_status": "paid", "client_reference_id": p.ID,
			"customer": "cus_platform1", "subscription": sub, "metadata": map[string]string{"dreamPlatformId": p.ID},
		}
	}
	ts.stripeApply(t, "/webhook/stripe", stripeEvent("evt_t1", "checkout.session.completed", now, false, "", session("sub_test1")), stripeConnectSecret, "ignored")
	ts.expect(t, req{Method: "GET", Path: "/api/customers", Key: p.SK}, 403, "forbidden")
	if st := ts.expect(t, req{Method: "GET", Path: "/api/platform/billing", Key: p.SK}, 200, ""); st.Body["active"] != false {
		t.Errorf("billing after a test-mode checkout: %s", st.Raw)
	}

	// The operator's own live events (no account) turn the live keys on …
	ts.stripeApply(t, "/webhook/stripe", stripeEvent("evt_p1", "checkout.session.completed", now, true, "", session("sub_platform1")), stripeConnectSecret, "applied")
	ts.createCustomer(t, p.SK, map[string]any{"email": "live@example.com"})
	ts.expect(t, req{Method: "GET", Path: "/api/tiers?pk=" + url.QueryEscape(p.PK)}, 200, "")
	st = ts.expect(t, req{Method: "GET", Path: "/api/platform/billing", Key: p.SK}, 200, "")
	if st.Body["active"] != true || str(st.Body, "subscriptionId") != "sub_platform1" {
		t.Errorf("billing after paying: %s", st.Raw)
	}
	ts.expect(t, req{Method: "POST", Path: "/api/platform/billing/checkout", Key: p.SK}, 409, "conflict")

	// A test-mode cancellation of the same subscription id changes nothing …
	sub := stripeSubscription("sub_platform1", "cus_platform1", "canceled", priceID, 1500, now.Add(-time.Hour), now, map[string]string{"dreamPlatformId": p.ID})
	ts.stripeApply(t, "/webhook/stripe", stripeEvent("evt_t2", "customer.subscription.deleted", now.Add(time.Second), false, "", sub), stripeConnectSecret, "ignored")
	ts.expect(t, req{Method: "GET", Path: "/api/customers", Key: p.SK}, 200, "")

	// … and the live end turns them off again.
	ts.stripeApply(t, "/webhook/stripe", stripeEvent("evt_p2", "customer.subscription.deleted", now.Add(time.Second), true, "", sub), stripeConnectSecret, "applied")
	ts.expect(t, req{Method: "GET", Path: "/api/customers", Key: p.SK}, 403, "forbidden")
	ts.expect(t, req{Method: "GET", Path: "/api/customers", Key: p.TestSK}, 200, "")

	// With a live operator key, Connect onboarding is offered in live mode.
	st = ts.expect(t, req{Method: "GET", Path: "/api/platform/stripe", Key: p.TestSK}, 200, "")
	if st.Body["connectAvailable"] != false {
		t.Errorf("test mode offers Connect with only a live operator key: %s", st.Raw)
	}
}

// TestStripeOperatorBillingInTestMode: an operator with only a test key
// bills platforms in test mode (a trial setup): test-mode events of its
// account count, live-mode ones do not.
func TestStripeOperatorBillingInTestMode(t *testing.T) {
	ts, _ := stripeServer(t, map[string]string{"DREAM_PLATFORM_PRICE_ID": "price_dreamPlatform"})
	p := ts.createPlatform(t, "Trial Co")
	ts.expect(t, req{Method: "GET", Path: "/api/customers", Key: p.SK}, 403, "forbidden")
	now := time.Now().Truncate(time.Second)
	session := map[string]any{
		"id": "cs_p", "object": "checkout.session", "mode": "subscription", "payment_status": "paid", "client_reference_id": p.ID,
		"customer": "cus_platform1", "subscription": "sub_platform1", "metadata": map[string]string{"dreamPlatformId": p.ID},
	}
	ts.stripeApply(t, "/webhook/stripe", stripeEvent("evt_l1", "checkout.session.completed", now, true, "", session), stripeConnectSecret, "ignored")
	ts.expect(t, req{Method: "GET", Path: "/api/customers", Key: p.SK}, 403, "forbidden")
	ts.stripeApply(t, "/webhook/stripe", stripeEvent("evt_t1", "checkout.session.completed", now, false, "", session), stripeConnectSecret, "applied")
	ts.expect(t, req{Method: "GET", Path: "/api/customers", Key: p.SK}, 200, "")
}
