package main

// The dashboard in a real browser: Debian's Chromium driven by chromedp,
// against the real program. Screenshots of every page are saved under
// $DREAM_ARTIFACTS (or a temporary directory, logged).

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/dream-api/dream-api/engine/billing/billingtest"
)

// chromiumPath is Debian's Chromium. Without it the browser tests skip,
// unless CI or DREAM_REQUIRE_CHROMIUM=1 is set: then they fail.
const chromiumPath = "/usr/bin/chromium"

// browserCtx starts a headless Chromium of its own and returns a tab.
func browserCtx(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		msg := chromiumPath + " not found (apt-get install -y chromium)"
		if os.Getenv("CI") != "" || os.Getenv("DREAM_REQUIRE_CHROMIUM") == "1" {
			t.Fatal(msg + " (CI or DREAM_REQUIRE_CHROMIUM=1)")
		}
		t.Skip(msg + "; set DREAM_REQUIRE_CHROMIUM=1 to fail instead of skipping")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("no-default-browser-check", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// artifacts is where screenshots go.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("DREAM_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	dir = filepath.Join(dir, "dashboard")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

// page drives one tab against one server.
type page struct {
	t    *testing.T
	ctx  context.Context
	base string
	dir  string
	n    int
}

func (p *page) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	// One step may wait a minute (a busy CI machine), not the whole test.
	ctx, cancel := context.WithTimeout(p.ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		loc, _ := chromedp.Run(p.ctx, chromedp.Location())
		p.shot("failed")
		p.t.Fatalf("%s (at %s): %v", what, loc, err)
	}
}

func (p *page) open(path string) {
	p.t.Helper()
	p.run("open "+path, chromedp.Navigate(p.base+path), chromedp.WaitReady(chromedp.CSS("body")))
}

func (p *page) text(sel string) string {
	p.t.Helper()
	p.run("wait for "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
	s, err := chromedp.Run(p.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		p.t.Fatalf("read %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// shot saves a full-page PNG named after the step.
func (p *page) shot(name string) {
	p.t.Helper()
	png, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Logf("screenshot %s: %v", name, err)
		return
	}
	p.n++
	file := filepath.Join(p.dir, strings.ReplaceAll(strings.TrimSpace(
		strings.Join([]string{twoDigits(p.n), name}, "-")), " ", "-")+".png")
	if err := os.WriteFile(file, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

func twoDigits(n int) string { return string([]byte{byte('0' + n/10), byte('0' + n%10)}) }

// submit fills fields (selector → value) and clicks button.
func (p *page) submit(what string, fields map[string]string, button string) {
	p.t.Helper()
	var acts []chromedp.Action[chromedp.Void]
	for sel, v := range fields {
		acts = append(acts, chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.SetValue(chromedp.CSS(sel), v))
	}
	if _, err := chromedp.RunResponse(p.ctx, append(acts, chromedp.Click(chromedp.CSS(button)))...); err != nil {
		p.shot("failed")
		p.t.Fatalf("%s: %v", what, err)
	}
}

// TestDashboardInBrowser is the onboarding flow of the product's success
// test, in Chromium: signup → credentials with pk/sk → Stripe and tiers
// (price ids shown) → a customer made through the API with the secret key
// read from the page → tracks → the customer and its usage in the
// dashboard → a signed webhook upgrades the plan → the overview's MRR.
func TestDashboardInBrowser(t *testing.T) {
	ctx := browserCtx(t)
	withStripe := billingtest.Binary() != "" || os.Getenv("DREAM_REQUIRE_STRIPE_MOCK") == "1"
	var ts *testServer
	if withStripe {
		// The browser reaches the server over plain http: the public URL
		// stays the server's own (a Secure cookie would not come back).
		ts, _ = stripeServer(t, map[string]string{"DREAM_PUBLIC_URL": "", "DREAM_WEBHOOK_ALLOW_PRIVATE": "1"})
	} else {
		t.Log("stripe-mock not found: the flow runs without Stripe (no price ids, no webhook)")
		ts = startServer(t, map[string]string{"DREAM_WEBHOOK_ALLOW_PRIVATE": "1"})
	}
	p := &page{t: t, ctx: ctx, base: ts.URL, dir: artifacts(t)}

	p.open("/dashboard/signup")
	p.shot("signup")
	p.submit("sign up", map[string]string{"#email": "ada@example.com", "#password": "correct horse battery", "#name": "Acme AI"}, `[data-testid="signup-submit"]`)
	sk := p.text(`[data-testid="sk-test"]`)
	pk := p.text(`[data-testid="pk-test"]`)
	pid := p.text(`[data-testid="platform-id"]`)
	if !strings.HasPrefix(sk, "sk_test_") || !strings.HasPrefix(pk, "pk_test_") || !strings.HasPrefix(pid, "plt_") ||
		!strings.HasPrefix(p.text(`[data-testid="sk-live"]`), "sk_live_") || !strings.HasPrefix(p.text(`[data-testid="pk-live"]`), "pk_live_") {
		t.Fatalf("credentials page: sk %q pk %q platform %q", sk, pk, pid)
	}
	p.shot("credentials-after-signup")

	if withStripe {
		p.open("/dashboard/stripe")
		// The operator has a test key: onboarding through Stripe Connect is
		// offered next to the key form (http/dashboard's
		// TestStripeConnectOnboarding follows it on stripe-mock).
		if got := p.text(`[data-testid="connect-with-stripe"]`); got != "Connect with Stripe" {
			t.Fatalf("stripe page offers no Connect onboarding: %q", got)
		}
		p.shot("stripe-not-connected")
		p.submit("connect stripe", map[string]string{"#secretKey": stripePlatformKey, "#webhookSecret": stripePlatformSecret}, `form[action="/dashboard/stripe/connect"] button`)
		if got := p.text(`[data-testid="stripe-connected"]`); got != "connected" {
			t.Fatalf("stripe page: %q", got)
		}
		p.shot("stripe")
	}

	// Tiers: a bad price is shown next to its field, then a good config.
	p.open("/dashboard/tiers")
	p.submit("bad tiers", map[string]string{`[name="tiers.1.price"]`: "fifteen"}, `[data-testid="tiers-save"]`)
	if got := p.text(`[data-testid="error-price"]`); !strings.Contains(got, "amount") {
		t.Fatalf("price error: %q", got)
	}
	p.shot("tiers-validation")
	p.submit("save tiers", map[string]string{`[name="tiers.0.limits"]`: "requests=5\nexports=2", `[name="tiers.1.price"]`: "15",
		`[name="tiers.1.limits"]`: "requests=1000\nexports=-1"}, `[data-testid="tiers-save"]`)
	if got := p.text(`[data-testid="notice"]`); got != "Tiers saved." {
		t.Fatalf("after saving tiers: %q", got)
	}
	if withStripe {
		if id := p.text(`[data-testid="tier-price-id"]`); !strings.HasPrefix(id, "price_") {
			t.Fatalf("tier price id %q", id)
		}
	}
	p.shot("tiers")
	p.open("/dashboard/credentials")
	if withStripe && !strings.HasPrefix(p.text(`[data-testid="tiers-test"] [data-testid="price-id"]`), "price_") {
		t.Fatal("the credentials page lists no Stripe price id")
	}
	p.shot("credentials")

	// The developer's backend, with the secret key read from the page.
	cus := ts.createCustomer(t, sk, map[string]any{"email": "grace@example.com", "firstName": "Grace", "lastName": "Hopper"})
	id := str(cus, "id")
	for i := 0; i < 3; i++ {
		ts.expect(t, req{Method: "POST", Path: "/api/track", Key: sk, Body: track(id)}, 200, "")
	}
	ts.expect(t, req{Method: "POST", Path: "/api/track", Key: sk, Body: map[string]any{"customerId": id, "feature": "exports"}}, 200, "")

	p.open("/dashboard/customers")
	if got := p.text(`[data-testid="customers"] tbody a`); got != "grace@example.com" {
		t.Fatalf("customers page: %q", got)
	}
	p.shot("customers")
	p.run("open the customer", chromedp.Click(chromedp.CSS(`[data-testid="customers"] tbody a`)), chromedp.WaitVisible(chromedp.CSS(`[data-testid="customer-email"]`)))
	if got := p.text(`[data-testid="usage-requests"] .row span`); got != "3 / 5" {
		t.Fatalf("customer usage: %q", got)
	}
	// The first period has not ended: no past periods yet (the real
	// program's clock does not move; http/dashboard's
	// TestCustomerPagePastPeriods lists them on a fake clock).
	if got := p.text(`[data-testid="past-periods-empty"]`); !strings.HasPrefix(got, "No past periods yet") {
		t.Fatalf("past periods of a new customer: %q", got)
	}
	p.shot("customer")

	if withStripe {
		ts.expect(t, req{Method: "POST", Path: "/api/create-checkout", Key: sk, Body: map[string]any{"customerId": id, "tier": "pro"}}, 200, "")
		stripeCus := str(ts.stripeCustomer(t, sk, id), "stripeCustomerId")
		completed := stripeEvent("evt_dash_1", "checkout.session.completed", time.Now().Add(-time.Minute), false, "", map[string]any{
			"id": "cs_dash", "object": "checkout.session", "mode": "subscription", "payment_status": "paid", "status": "complete",
			"client_reference_id": id, "customer": stripeCus, "subscription": "sub_dash", "metadata": map[string]string{"tier": "pro"},
		})
		ts.stripeApply(t, "/webhook/stripe/"+pid, completed, stripePlatformSecret, "applied")
		p.open("/dashboard/customers/" + id)
		if got := p.text(`[data-testid="customer-plan"]`); got != "pro" {
			t.Fatalf("plan after the webhook: %q", got)
		}
		p.shot("customer-upgraded")
	}

	p.open("/dashboard")
	if got := p.text(`[data-testid="tracks-today"] strong`); got != "4" {
		t.Errorf("tracks today: %q, want 4", got)
	}
	if withStripe {
		if got := p.text(`[data-testid="mrr"] strong`); got != "$15.00" {
			t.Errorf("MRR %q, want $15.00", got)
		}
	}
	p.run("chart", chromedp.WaitVisible(chromedp.CSS(`[data-testid="usage-chart"] rect`)))
	p.shot("overview")
	p.run("phone width", chromedp.EmulateViewport(390, 844))
	p.open("/dashboard/customers/" + id)
	p.shot("customer-phone")
	p.run("desktop width", chromedp.EmulateViewport(1280, 900))

	// A limit plugin: upload, dry-run, remove.
	wasm, err := filepath.Abs("../../testdata/plugins/builtin.wasm")
	if err != nil {
		t.Fatal(err)
	}
	p.open("/dashboard/plugin")
	p.run("choose the module", chromedp.SetUploadFiles(chromedp.CSS("#module"), []string{wasm}))
	p.submit("upload the plugin", nil, `form[action="/dashboard/plugin"] button`)
	if got := p.text(`[data-testid="notice"]`); !strings.Contains(got, "uploaded and active") {
		t.Fatalf("after the upload: %q", got)
	}
	p.submit("dry run", map[string]string{"#dplan": "free", "#dusage": "5"}, `form[action="/dashboard/plugin/dry-run"] button`)
	if got := p.text(`[data-testid="dry-run"] .pill`); got != "denied" {
		t.Errorf("dry run at the limit: %q", got)
	}
	p.shot("plugin")
	p.open("/dashboard/plugin/remove")
	p.submit("remove the plugin", nil, `[data-testid="confirm"]`)
	if got := p.text(`[data-testid="notice"]`); !strings.Contains(got, "removed") {
		t.Fatalf("after removing: %q", got)
	}

	// An outgoing webhook endpoint: added (its secret shown once), pinged,
	// the delivery in its log.
	var pinged atomic.Int32
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { pinged.Add(1) }))
	defer hook.Close()
	p.open("/dashboard/webhooks")
	p.run("check customer.created", chromedp.Click(chromedp.CSS(`input[name="events"][value="customer.created"]`)))
	p.submit("add a webhook endpoint", map[string]string{"#wurl": hook.URL + "/dream", "#wdesc": "Acme backend"}, `[data-testid="webhook-add"] button.primary`)
	if got := p.text(`[data-testid="new-whsec"]`); !strings.HasPrefix(got, "whsec_") {
		t.Fatalf("webhook secret %q", got)
	}
	p.submit("send a test ping", nil, `[data-testid="endpoint-test"]`)
	// The worker is woken at once; the page is read again until the
	// delivery is recorded (generous on a busy machine).
	var row string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		p.open("/dashboard/webhooks")
		if row = p.text(`[data-testid="delivery"]`); strings.Contains(row, "delivered") || time.Now().After(deadline) {
			break
		}
	}
	if !strings.Contains(row, "ping") || !strings.Contains(row, "delivered") || !strings.Contains(row, "200") || pinged.Load() != 1 {
		t.Errorf("delivery row %q (the receiver got %d requests)", row, pinged.Load())
	}
	p.shot("webhooks")

	p.open("/dashboard/keys")
	p.shot("keys")
	p.open("/dashboard/settings")
	p.shot("settings")
	// The operator's view, behind the admin token.
	p.open("/dashboard/admin")
	p.submit("operator sign-in", map[string]string{"#token": ts.AdminToken}, `form[action="/dashboard/admin"] button`)
	if got := p.text(`[data-testid="admin-platforms"] tbody td`); !strings.Contains(got, "Acme AI") {
		t.Errorf("operator view: %q", got)
	}
	p.shot("admin")

	p.open("/dashboard")
	p.run("log out", chromedp.Click(chromedp.CSS(`[data-testid="logout"]`)), chromedp.WaitVisible(chromedp.CSS(`[data-testid="login-submit"]`)))
	p.shot("login")
	p.open("/dashboard/customers")
	if got := p.text("h1"); got != "Sign in" {
		t.Errorf("after logout /dashboard/customers shows %q", got)
	}
}

// TestPlatformStatsDays: GET /api/platform/stats lists tracks per day and
// feature (API.md v1.1), accepted and denied, in the key's mode only.
func TestPlatformStatsDays(t *testing.T) {
	ts := startServer(t, nil)
	p := ts.createPlatform(t, "Days Co")
	ts.putTiers(t, p.TestSK, map[string]any{"name": "free", "limit": 2})
	id := str(ts.createCustomer(t, p.TestSK, map[string]any{"email": "ada@example.com"}), "id")
	ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.TestSK, Body: track(id)}, 200, "")
	ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.TestSK, Body: track(id)}, 200, "")
	ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.TestSK, Body: track(id)}, 429, "tier_limit_reached")
	ts.expect(t, req{Method: "POST", Path: "/api/check", Key: p.TestSK, Body: track(id)}, 200, "") // counts nothing
	today := time.Now().UTC().Format(time.DateOnly)
	res := ts.expect(t, req{Method: "GET", Path: "/api/platform/stats", Key: p.TestSK}, 200, "")
	days, _ := res.Body["days"].([]any)
	if len(days) != 1 {
		t.Fatalf("days %s", res.Raw)
	}
	d := days[0].(map[string]any)
	if str(d, "date") != today || str(d, "feature") != "requests" || num(d, "count") != 2 || num(d, "denied") != 1 {
		t.Errorf("day %v, want %s requests count 2 denied 1", d, today)
	}
	res = ts.expect(t, req{Method: "GET", Path: "/api/platform/stats?from=2020-01-01&to=2020-01-31", Key: p.TestSK}, 200, "")
	if days, _ := res.Body["days"].([]any); days == nil || len(days) != 0 {
		t.Errorf("an empty range: %s", res.Raw)
	}
	if res := ts.expect(t, req{Method: "GET", Path: "/api/platform/stats", Key: p.SK}, 200, ""); len(res.Body["days"].([]any)) != 0 {
		t.Errorf("live mode sees test tracks: %s", res.Raw)
	}
	ts.expect(t, req{Method: "GET", Path: "/api/platform/stats?from=yesterday", Key: p.TestSK}, 422, "validation_failed")
	ts.expect(t, req{Method: "GET", Path: "/api/platform/stats?from=2026-02-01&to=2026-01-01", Key: p.TestSK}, 422, "validation_failed")
}
