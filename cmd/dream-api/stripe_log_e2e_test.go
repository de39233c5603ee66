package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The Stripe page lists the platform's recent Stripe events with their
// outcome and what they changed: applied (free → pro), duplicate, stale,
// ignored (a type not handled), failed (an unknown customer); an empty
// state before any; the last 50 only. Forged deliveries are not listed.
func TestStripeEventLogOnDashboard(t *testing.T) {
	ts, _ := stripeServer(t, map[string]string{"DREAM_PUBLIC_URL": ""})
	dev := ts.expect(t, req{Method: "POST", Path: "/admin/developers", Key: ts.AdminToken,
		Body: map[string]any{"email": "ada@example.com", "password": "correct horse battery", "platformName": "Logged Co"}}, 201, "")
	pid, sk := str(dev.Body, "platform", "platform", "id"), str(dev.Body, "platform", "test", "secretKey")
	p := platform{ID: pid, TestSK: sk}
	ts.stripeConnectByKey(t, p)
	tiers := ts.stripeTiers(t, sk, 1500)
	id := str(ts.createCustomer(t, sk, map[string]any{"email": "ann@example.com"}), "id")
	ts.expect(t, req{Method: "POST", Path: "/api/create-checkout", Key: sk, Body: map[string]any{"customerId": id, "tier": "pro"}}, 200, "")
	stripeCus := str(ts.stripeCustomer(t, sk, id), "stripeCustomerId")

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	form := url.Values{"email": {"ada@example.com"}, "password": {"correct horse battery"}}
	r, _ := http.NewRequest("POST", ts.URL+"/dashboard/login", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	if res, err := c.Do(r); err != nil || res.StatusCode != http.StatusSeeOther {
		t.Fatalf("dashboard login: %v %v", res, err)
	}
	page := func() string {
		t.Helper()
		res, err := c.Get(ts.URL + "/dashboard/stripe") // a new session is in test mode
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 {
			t.Fatalf("GET /dashboard/stripe: %d", res.StatusCode)
		}
		return string(b)
	}
	if body := page(); !strings.Contains(body, "No Stripe events yet") {
		t.Fatal("no empty state before any event")
	}

	hook := "/webhook/stripe/" + pid
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	completed := stripeEvent("evt_log_1", "checkout.session.completed", t0, false, "", map[string]any{
		"id": "cs_1", "object": "checkout.session", "mode": "subscription", "payment_status": "paid", "status": "complete",
		"client_reference_id": id, "customer": stripeCus, "subscription": "sub_1", "metadata": map[string]string{"tier": "pro"},
	})
	ts.stripeApply(t, hook, completed, stripePlatformSecret, "applied")
	ts.stripeApply(t, hook, completed, stripePlatformSecret, "duplicate")
	start, end := time.Now().Add(-24*time.Hour).Truncate(time.Second), time.Now().Add(29*24*time.Hour).Truncate(time.Second)
	upd := stripeEvent("evt_log_2", "customer.subscription.updated", t0.Add(10*time.Second), false, "",
		stripeSubscription("sub_1", stripeCus, "active", str(tiers["pro"], "priceId"), 1500, start, end, map[string]string{"dreamCustomerId": id}))
	ts.stripeApply(t, hook, upd, stripePlatformSecret, "applied")
	older := stripeEvent("evt_log_3", "customer.subscription.updated", t0.Add(5*time.Second), false, "",
		stripeSubscription("sub_1", stripeCus, "active", str(tiers["free"], "priceId"), 0, start, end, nil))
	ts.stripeApply(t, hook, older, stripePlatformSecret, "stale")
	ts.stripeApply(t, hook, stripeEvent("evt_log_4", "charge.succeeded", t0, false, "", map[string]any{"id": "ch_1", "object": "charge"}), stripePlatformSecret, "ignored")
	nobody := stripeEvent("evt_log_5", "checkout.session.completed", t0, false, "", map[string]any{
		"id": "cs_2", "object": "checkout.session", "mode": "subscription", "payment_status": "paid", "status": "complete",
		"client_reference_id": "cus_nobody", "subscription": "sub_2", "metadata": map[string]string{"tier": "pro"},
	})
	ts.stripeApply(t, hook, nobody, stripePlatformSecret, "ignored")
	if res := ts.stripeDeliver(t, hook, stripeEvent("evt_log_forged", "charge.succeeded", t0, false, "", map[string]any{"id": "ch_2"}), "whsec_forged", time.Now()); res.Status != 400 {
		t.Fatalf("forged: %d", res.Status)
	}

	body := page()
	rows := regexp.MustCompile(`(?s)<tr data-testid="stripe-event">.*?</tr>`).FindAllString(body, -1)
	want := []struct{ id, outcome, detail string }{ // newest first
		{"evt_log_5", ">failed<", "unknown customer"},
		{"evt_log_4", ">ignored<", "event type not handled"},
		{"evt_log_3", ">stale<", "pro <span class=\"muted small\">(unchanged)"},
		{"evt_log_2", ">applied<", "pro <span class=\"muted small\">(unchanged)"},
		{"evt_log_1", ">duplicate<", "applied before"},
		{"evt_log_1", ">applied<", "free → pro"},
	}
	if len(rows) != len(want) {
		t.Fatalf("%d events listed, want %d:\n%s", len(rows), len(want), strings.Join(rows, "\n"))
	}
	for i, w := range want {
		if !strings.Contains(rows[i], w.id) || !strings.Contains(rows[i], w.outcome) || !strings.Contains(rows[i], w.detail) {
			t.Errorf("row %d: %s\nwant %s %s %s", i, rows[i], w.id, w.outcome, w.detail)
		}
	}
	if !strings.Contains(rows[5], id) || strings.Contains(body, "evt_log_forged") {
		t.Error("the applied event does not name its customer, or the forged one is listed")
	}

	// The log keeps the last 50.
	for i := range 50 {
		ts.stripeApply(t, hook, stripeEvent(fmt.Sprintf("evt_many_%02d", i), "charge.succeeded", t0, false, "", map[string]any{"id": "ch_x"}), stripePlatformSecret, "ignored")
	}
	body = page()
	if n := strings.Count(body, `data-testid="stripe-event"`); n != 50 || strings.Contains(body, "evt_log_") || !strings.Contains(body, "evt_many_00") ||
		strings.Index(body, "evt_many_49") > strings.Index(body, "evt_many_00") {
		t.Errorf("after 56 events: %d listed (want the last 50, newest first)", n)
	}
}
