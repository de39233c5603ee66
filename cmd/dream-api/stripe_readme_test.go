package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
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
	text, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(text), "<!-- billing-walkthrough:begin -->\n```sh\n")
	block, _, ok2 := strings.Cut(block, "```\n<!-- billing-walkthrough:end -->")
	if !ok || !ok2 {
		t.Fatal("README.md has no billing walkthrough block")
	}
	mock := billingtest.Start(t)

	env := map[string]string{"DREAM_ADMIN_TOKEN": "dev-admin-token-change-me", "STRIPE_API_BASE": mock.URL}
	m := NewMain()
	m.Getenv = func(k string) string { return env[k] }
	var logs bytes.Buffer
	m.Stdout, m.Stderr = &bytes.Buffer{}, &logs
	ctx := context.Background()
	if err := m.ParseFlags(ctx, []string{"--addr", "127.0.0.1:0", "--data", t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	script := strings.ReplaceAll(block, "http://127.0.0.1:8787", "http://"+m.Addr())
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("billing walkthrough failed: %v\n%s\nserver log:\n%s", err, out, logs.String())
	}
	got := string(out)
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
