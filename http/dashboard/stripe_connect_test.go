package dashboard_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/engine/billing"
	"github.com/dream-api/dream-api/engine/billing/billingtest"
)

const (
	connectOperatorKey = "sk_test_operator123"
	connectSecret      = "whsec_connect_dashboard"
)

// TestStripeConnectOnboarding: "Connect with Stripe" on the Stripe page
// (test mode, where the operator has a key) posts a CSRF-checked form that
// creates the account on the operator's Stripe and sends the browser (303)
// to the Account Link, whose return and refresh URLs lead back to the page.
// Back from Stripe the page says the platform is connected via Stripe
// Connect and shows the onboarding state, which account.updated moves; an
// expired link is replaced by a fresh one for the same account.
func TestStripeConnectOnboarding(t *testing.T) {
	mock := billingtest.Start(t)
	bill := billing.New(&billing.Options{APIBase: mock.URL})
	sealer, err := engine.NewSealer(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	const public = "http://dream.test"
	s := newSiteWith(t, engine.Config{Stripe: engine.StripeConfig{
		Billing: bill, Sealer: sealer, OperatorKeys: map[engine.Mode]string{engine.Test: connectOperatorKey},
		WebhookSecrets: []string{connectSecret}, PublicURL: func() string { return public },
	}}, public)
	b := s.browser(t)
	b.signup("ada@example.com", "Acme")
	ctx := context.Background()

	_, body := b.get("/dashboard/stripe")
	if !strings.Contains(body, `data-testid="connect-with-stripe"`) || !strings.Contains(body, `action="/dashboard/stripe/onboard"`) {
		t.Fatalf("no Connect with Stripe button:\n%s", body)
	}
	// Without the CSRF token nothing happens, at Stripe either.
	if res := b.post("/dashboard/stripe/onboard", url.Values{"csrf": {""}}, nil); res.StatusCode == http.StatusSeeOther {
		t.Fatalf("a form without the CSRF token: %d to %s", res.StatusCode, res.Header.Get("Location"))
	}
	if n := len(mock.Requests()); n != 0 {
		t.Fatalf("a refused form reached Stripe: %+v", mock.Requests())
	}

	res := b.post("/dashboard/stripe/onboard", nil, nil)
	// stripe-mock answers every Account Link with the same fixture URL.
	want, err := bill.CreateAccountLink(ctx, engine.BillingCall{Key: connectOperatorKey},
		engine.AccountLinkInput{Account: "acct_x", ReturnURL: public, RefreshURL: public})
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != want || !strings.HasPrefix(want, "https://") {
		t.Fatalf("Connect with Stripe: %d to %q, want 303 to the Account Link %q", res.StatusCode, res.Header.Get("Location"), want)
	}
	accounts := mock.Find("POST", "/v1/accounts")
	links := mock.Find("POST", "/v1/account_links")
	if len(accounts) != 1 || accounts[0].Key != connectOperatorKey || len(links) != 2 { // ours and the test's own
		t.Fatalf("Stripe saw %+v", mock.Requests())
	}
	acct := accounts[0].ID
	if l := links[0].Form; l.Get("account") != acct || l.Get("return_url") != public+"/dashboard/stripe?onboarding=return" ||
		l.Get("refresh_url") != public+"/dashboard/stripe?onboarding=refresh" {
		t.Errorf("account link %v", l)
	}

	state := func(query string) string {
		t.Helper()
		code, body := b.get("/dashboard/stripe" + query)
		if code != http.StatusOK {
			t.Fatalf("stripe page%s: %d", query, code)
		}
		var out []string
		for _, want := range []string{"Connected via Stripe Connect", acct, `details-submitted">not yet`, `details-submitted">yes`,
			`charges-enabled">not yet`, `charges-enabled">yes`, `data-testid="connect-continue"`, "Back from Stripe", "has expired"} {
			if strings.Contains(body, want) {
				out = append(out, want)
			}
		}
		return strings.Join(out, " | ")
	}
	if got, want := state("?onboarding=return"), "Connected via Stripe Connect | "+acct+` | details-submitted">not yet | charges-enabled">not yet | data-testid="connect-continue" | Back from Stripe`; got != want {
		t.Errorf("back from Stripe, onboarding not finished:\n got %s\nwant %s", got, want)
	}

	// The link expired: Stripe sends the browser to the refresh URL; the
	// page offers a fresh link for the same account.
	if got := state("?onboarding=refresh"); !strings.Contains(got, "has expired") || !strings.Contains(got, "connect-continue") {
		t.Errorf("refresh: %s", got)
	}
	mock.Reset()
	if res := b.post("/dashboard/stripe/onboard", nil, nil); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != want {
		t.Fatalf("continue onboarding: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	if a, l := mock.Find("POST", "/v1/accounts"), mock.Find("POST", "/v1/account_links"); len(a) != 0 || len(l) != 1 || l[0].Form.Get("account") != acct {
		t.Errorf("a fresh link: Stripe saw %+v", mock.Requests())
	}

	// Stripe says onboarding is done.
	payload, _ := json.Marshal(map[string]any{
		"id": "evt_acct_done", "object": "event", "api_version": "2099-01-01.future", "created": time.Now().Unix(),
		"livemode": false, "type": "account.updated", "account": acct, "pending_webhooks": 1,
		"data": map[string]any{"object": map[string]any{"id": acct, "object": "account", "charges_enabled": true, "details_submitted": true}},
	})
	sig := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: connectSecret, Timestamp: time.Now()}).Header
	if r, err := s.eng.Stripe.ConnectWebhook(ctx, payload, sig); err != nil || r.Outcome != "applied" {
		t.Fatalf("account.updated: %+v %v", r, err)
	}
	if got, want := state("?onboarding=return"), "Connected via Stripe Connect | "+acct+` | details-submitted">yes | charges-enabled">yes | Back from Stripe`; got != want {
		t.Errorf("after account.updated:\n got %s\nwant %s", got, want)
	}
}
