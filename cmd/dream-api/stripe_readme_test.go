package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/dream-api/dream-api/engine/billing/billingtest"
)

// TestReadmeBillingWalkthrough runs the README's "Billing with Stripe"
// walkthrough, as written, against the real server and stripe-mock.
func TestReadmeBillingWalkthrough(t *testing.T) {
	for _, tool := range []string{"curl", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	mock := billingtest.Start(t)
	got := walkthrough(t, "README.md", "billing-walkthrough", t.TempDir(), map[string]string{"STRIPE_API_BASE": mock.URL})
	for _, want := range []string{
		`"method":"key"`,                           // connected by key
		`"priceId":"price_`,                        // tiers became prices
		`"sessionId":"cs_`,                         // the Checkout
		`"outcome":"applied"`,                      // the webhook
		`"outcome":"duplicate"`,                    // its retry
		`"plan":"pro"`,                             // the upgrade
		`"limit":10000`,                            // the pro limit applies
		`"mrr":[{"amount":1500,"currency":"usd"}]`, // the stats
	} {
		if !strings.Contains(got, want) {
			t.Errorf("walkthrough output lacks %s:\n%s", want, got)
		}
	}
	if strings.Contains(got, `"code":`) {
		t.Errorf("walkthrough output has an error:\n%s", got)
	}
	if n := len(mock.Find("POST", "/v1/checkout/sessions")); n != 1 {
		t.Errorf("%d Checkout sessions made, want 1", n)
	}
}
