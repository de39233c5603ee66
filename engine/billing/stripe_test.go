package billing_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/engine/billing"
	"github.com/dream-api/dream-api/engine/billing/billingtest"
)

const (
	operatorKey = "sk_test_operator123"
	account     = "acct_1TestConnected"
)

func adapter(t *testing.T) (*billing.Stripe, *billingtest.Mock) {
	t.Helper()
	m := billingtest.Start(t)
	return billing.New(&billing.Options{APIBase: m.URL}), m
}

// last returns the only request of method and path.
func last(t *testing.T, m *billingtest.Mock, method, path string) billingtest.Request {
	t.Helper()
	rs := m.Find(method, path)
	if len(rs) != 1 {
		t.Fatalf("%s %s: %d requests, want 1 (all: %+v)", method, path, len(rs), m.Requests())
	}
	return rs[0]
}

func TestCallsCarryKeyAccountAndIdempotencyKey(t *testing.T) {
	s, m := adapter(t)
	ctx := context.Background()
	call := engine.BillingCall{Key: operatorKey, Account: account, IdempotencyKey: "order-1/product"}

	prod, err := s.CreateProduct(ctx, call, engine.ProductInput{Name: "Pro", Metadata: map[string]string{"dreamTier": "pro"}})
	if err != nil || !strings.HasPrefix(prod, "prod_") {
		t.Fatalf("CreateProduct = %q, %v", prod, err)
	}
	r := last(t, m, "POST", "/v1/products")
	if r.Key != operatorKey || r.Account != account || r.IdempotencyKey != "order-1/product" {
		t.Errorf("headers: key %q, account %q, idempotency key %q", r.Key, r.Account, r.IdempotencyKey)
	}
	if r.Form.Get("name") != "Pro" || r.Form.Get("metadata[dreamTier]") != "pro" || r.ID != prod {
		t.Errorf("product request %v → %s", r.Form, r.ID)
	}

	// A call without an idempotency key still gets one (stripe-go's own,
	// so that its retries are safe), and no Stripe-Account without one.
	m.Reset()
	own := engine.BillingCall{Key: "sk_test_own456"}
	price, err := s.CreatePrice(ctx, own, engine.PriceInput{Product: prod, Amount: 0, Currency: "usd", Interval: "month"})
	if err != nil || !strings.HasPrefix(price, "price_") {
		t.Fatalf("CreatePrice = %q, %v", price, err)
	}
	r = last(t, m, "POST", "/v1/prices")
	if r.Account != "" || r.Key != "sk_test_own456" || r.IdempotencyKey == "" {
		t.Errorf("headers: key %q, account %q, idempotency key %q", r.Key, r.Account, r.IdempotencyKey)
	}
	for k, want := range map[string]string{"unit_amount": "0", "currency": "usd", "recurring[interval]": "month", "product": prod} {
		if got := r.Form.Get(k); got != want {
			t.Errorf("price %s = %q, want %q", k, got, want)
		}
	}
}

func TestEveryCall(t *testing.T) {
	s, m := adapter(t)
	ctx := context.Background()
	call := engine.BillingCall{Key: operatorKey, Account: account}

	acct, err := s.Account(ctx, engine.BillingCall{Key: "sk_test_own456"})
	if err != nil || !strings.HasPrefix(acct.ID, "acct_") {
		t.Fatalf("Account = %+v, %v", acct, err)
	}
	if r := last(t, m, "GET", "/v1/account"); r.Key != "sk_test_own456" {
		t.Errorf("GET /v1/account with key %q", r.Key)
	}

	id, err := s.CreateAccount(ctx, engine.BillingCall{Key: operatorKey}, engine.AccountInput{Email: "dev@acme.test", Metadata: map[string]string{"dreamPlatformId": "plt_1"}})
	if err != nil || !strings.HasPrefix(id, "acct_") {
		t.Fatalf("CreateAccount = %q, %v", id, err)
	}
	if r := last(t, m, "POST", "/v1/accounts"); r.Form.Get("type") != "standard" || r.Form.Get("email") != "dev@acme.test" || r.Account != "" {
		t.Errorf("POST /v1/accounts %v (account header %q)", r.Form, r.Account)
	}

	link, err := s.CreateAccountLink(ctx, engine.BillingCall{Key: operatorKey}, engine.AccountLinkInput{Account: id, ReturnURL: "https://app.test/r", RefreshURL: "https://app.test/f"})
	if err != nil || !strings.HasPrefix(link, "https://") {
		t.Fatalf("CreateAccountLink = %q, %v", link, err)
	}
	if r := last(t, m, "POST", "/v1/account_links"); r.Form.Get("account") != id || r.Form.Get("type") != "account_onboarding" ||
		r.Form.Get("return_url") != "https://app.test/r" || r.Form.Get("refresh_url") != "https://app.test/f" {
		t.Errorf("POST /v1/account_links %v", r.Form)
	}

	if err := s.UpdateProduct(ctx, call, "prod_1", engine.ProductInput{Name: "Pro+"}); err != nil {
		t.Fatal(err)
	}
	if err := s.ArchiveProduct(ctx, call, "prod_2"); err != nil {
		t.Fatal(err)
	}
	if rs := m.Find("POST", "/v1/products/"); len(rs) != 2 || rs[0].Form.Get("name") != "Pro+" || rs[1].Form.Get("active") != "false" || rs[1].Path != "/v1/products/prod_2" {
		t.Errorf("product updates %+v", rs)
	}
	if err := s.ArchivePrice(ctx, call, "price_old"); err != nil {
		t.Fatal(err)
	}
	if r := last(t, m, "POST", "/v1/prices/price_old"); r.Form.Get("active") != "false" || r.Account != account {
		t.Errorf("archive price %v", r.Form)
	}

	cus, err := s.CreateCustomer(ctx, call, engine.BillingCustomerInput{Email: "ada@example.com", Name: "Ada L", Metadata: map[string]string{"dreamCustomerId": "cus_1"}})
	if err != nil || !strings.HasPrefix(cus, "cus_") {
		t.Fatalf("CreateCustomer = %q, %v", cus, err)
	}
	if r := last(t, m, "POST", "/v1/customers"); r.Form.Get("email") != "ada@example.com" || r.Form.Get("metadata[dreamCustomerId]") != "cus_1" {
		t.Errorf("POST /v1/customers %v", r.Form)
	}

	sess, err := s.CreateCheckoutSession(ctx, call, engine.CheckoutSessionInput{
		Customer: cus, Price: "price_pro", ClientReferenceID: "cus_1", Metadata: map[string]string{"tier": "pro"},
		SuccessURL: "https://app.test/ok", CancelURL: "https://app.test/no",
	})
	if err != nil || !strings.HasPrefix(sess.ID, "cs_") || sess.URL == "" {
		t.Fatalf("CreateCheckoutSession = %+v, %v", sess, err)
	}
	r := last(t, m, "POST", "/v1/checkout/sessions")
	for k, want := range map[string]string{
		"mode": "subscription", "customer": cus, "client_reference_id": "cus_1",
		"line_items[0][price]": "price_pro", "line_items[0][quantity]": "1",
		"metadata[tier]": "pro", "subscription_data[metadata][tier]": "pro",
		"success_url": "https://app.test/ok", "cancel_url": "https://app.test/no",
	} {
		if got := r.Form.Get(k); got != want {
			t.Errorf("checkout %s = %q, want %q", k, got, want)
		}
	}

	url, err := s.CreatePortalSession(ctx, call, engine.PortalSessionInput{Customer: cus, ReturnURL: "https://app.test/account"})
	if err != nil || url == "" {
		t.Fatalf("CreatePortalSession = %q, %v", url, err)
	}
	if r := last(t, m, "POST", "/v1/billing_portal/sessions"); r.Form.Get("customer") != cus || r.Form.Get("return_url") != "https://app.test/account" {
		t.Errorf("portal %v", r.Form)
	}
}

func TestErrors(t *testing.T) {
	s, m := adapter(t)
	ctx := context.Background()

	// stripe-mock refuses a request its spec does not allow: a Stripe error.
	_, err := s.CreatePrice(ctx, engine.BillingCall{Key: operatorKey}, engine.PriceInput{Product: "prod_1", Amount: 100, Currency: "usd", Interval: "fortnight"})
	var be *engine.BillingError
	if !errors.As(err, &be) || be.Status != 400 || be.Message == "" {
		t.Fatalf("bad interval: %v", err)
	}

	// Stripe down: no status, and it took the retries.
	m.Stop()
	s = billing.New(&billing.Options{APIBase: m.URL, MaxNetworkRetries: -1})
	_, err = s.CreateProduct(ctx, engine.BillingCall{Key: operatorKey}, engine.ProductInput{Name: "x"})
	if !errors.As(err, &be) || be.Status != 0 {
		t.Fatalf("Stripe down: %v", err)
	}
}

func TestParseEvent(t *testing.T) {
	s := billing.New(nil) // no Stripe call is made
	const secret = "whsec_test_secret"
	sub := `{"id":"evt_1","object":"event","api_version":"2099-01-01","created":1700000000,"livemode":true,"account":"acct_9",
	  "type":"customer.subscription.updated","data":{"object":{"id":"sub_1","object":"subscription","status":"active",
	  "customer":"cus_S1","metadata":{"dreamCustomerId":"cus_1"},"cancel_at_period_end":false,
	  "items":{"data":[{"quantity":2,"current_period_start":1700000000,"current_period_end":1702592000,
	    "price":{"id":"price_pro","unit_amount":1500,"currency":"usd","recurring":{"interval":"month","interval_count":1}}}]}}}}`
	sign := func(payload string, at time.Time, secret string) string {
		return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: []byte(payload), Secret: secret, Timestamp: at}).Header
	}

	ev, err := s.ParseEvent([]byte(sub), sign(sub, time.Now(), secret), secret)
	if err != nil {
		t.Fatal(err)
	}
	got := ev.Subscription
	if ev.ID != "evt_1" || ev.Account != "acct_9" || ev.Mode() != engine.Live || !ev.Created.Equal(time.Unix(1700000000, 0)) || got == nil {
		t.Fatalf("event %+v", ev)
	}
	// Periods on the item (newer API versions), quantity applied.
	if got.Price != "price_pro" || got.Amount != 3000 || got.Interval != "month" || got.Customer != "cus_S1" ||
		!got.CurrentPeriodEnd.Equal(time.Unix(1702592000, 0)) || got.Metadata["dreamCustomerId"] != "cus_1" {
		t.Errorf("subscription %+v", got)
	}

	for _, tc := range []struct {
		name   string
		header string
		want   error
	}{
		{"forged", sign(sub, time.Now(), "whsec_other"), engine.ErrEventSignature},
		{"stale", sign(sub, time.Now().Add(-6*time.Minute), secret), engine.ErrEventTooOld},
		{"from the future", sign(sub, time.Now().Add(6*time.Minute), secret), engine.ErrEventTooOld},
		{"from the far future", sign(sub, time.Now().Add(365*24*time.Hour), secret), engine.ErrEventTooOld},
		{"unsigned", "", engine.ErrEventSignature},
		{"garbage header", "t=abc,v1", engine.ErrEventSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.ParseEvent([]byte(sub), tc.header, secret); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
	// Within the tolerance either way (a clock a little off) verifies.
	for _, off := range []time.Duration{-4 * time.Minute, 4 * time.Minute} {
		if _, err := s.ParseEvent([]byte(sub), sign(sub, time.Now().Add(off), secret), secret); err != nil {
			t.Errorf("signed %v from now: %v", off, err)
		}
	}
	bad := `{"id":"evt_2","type":"invoice.paid","data":{"object":{"customer":17}}}`
	if _, err := s.ParseEvent([]byte(bad), sign(bad, time.Now(), secret), secret); !errors.Is(err, engine.ErrEventPayload) {
		t.Errorf("bad object: %v", err)
	}

	// An invoice of a newer API version: the subscription under parent, the
	// period of its line.
	inv := `{"id":"evt_3","type":"invoice.paid","created":1700000000,"data":{"object":{"id":"in_1","customer":{"id":"cus_S1"},
	  "parent":{"subscription_details":{"subscription":"sub_1","metadata":{"dreamPlatformId":"plt_1"}}},
	  "period_start":1697000000,"period_end":1700000000,
	  "lines":{"data":[{"type":"subscription","period":{"start":1700000000,"end":1702592000}}]}}}}`
	ev, err = s.ParseEvent([]byte(inv), sign(inv, time.Now(), secret), secret)
	if err != nil {
		t.Fatal(err)
	}
	if i := ev.Invoice; i == nil || i.Subscription != "sub_1" || i.Customer != "cus_S1" || i.SubscriptionMetadata["dreamPlatformId"] != "plt_1" ||
		!i.PeriodStart.Equal(time.Unix(1700000000, 0)) || ev.Mode() != engine.Test {
		t.Errorf("invoice %+v", ev.Invoice)
	}
}
