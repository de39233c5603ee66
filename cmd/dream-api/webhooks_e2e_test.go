package main

// Outgoing webhooks end to end: the API (every answer held to the spec), a
// plan change by Stripe, and a SIGKILL between the commit of an event and
// its delivery.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// hookEvent is one request a hookReceiver got.
type hookEvent struct {
	ID, Signature string
	Body          []byte
	Type, Mode    string
	Data          map[string]any
}

// hookReceiver is a webhook endpoint on loopback. hold, when set, is
// called before answering (and may block); status answers the n-th request.
type hookReceiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []hookEvent
	status func(n int) int
	hold   func(n int)
}

func newHookReceiver(t *testing.T) *hookReceiver {
	t.Helper()
	h := &hookReceiver{status: func(int) int { return 200 }, hold: func(int) {}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev struct {
			ID, Type, Mode string
			Data           map[string]any
		}
		json.Unmarshal(body, &ev)
		h.mu.Lock()
		h.got = append(h.got, hookEvent{ID: r.Header.Get("Dream-Event-Id"), Signature: r.Header.Get("Dream-Signature"),
			Body: body, Type: ev.Type, Mode: ev.Mode, Data: ev.Data})
		n, status, hold := len(h.got), h.status, h.hold
		h.mu.Unlock()
		hold(n)
		w.WriteHeader(status(n))
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) events(typ string) []hookEvent {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []hookEvent
	for _, e := range h.got {
		if typ == "" || e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// verifyHook checks a Dream-Signature as the README shows.
func verifyHook(header string, body []byte, secret string) bool {
	ts := ""
	for _, part := range strings.Split(header, ",") {
		if v, ok := strings.CutPrefix(part, "t="); ok {
			ts = v
		}
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "." + string(body)))
	want := "v1=" + hex.EncodeToString(mac.Sum(nil))
	for _, part := range strings.Split(header, ",") {
		if hmac.Equal([]byte(part), []byte(want)) {
			return true
		}
	}
	return false
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWebhookEndpointsAPI(t *testing.T) {
	ts := startServer(t, map[string]string{"DREAM_WEBHOOK_ALLOW_PRIVATE": "1"})
	p := ts.createPlatform(t, "Hooks")
	other := ts.createPlatform(t, "Other")
	rcv := newHookReceiver(t)

	created := ts.expect(t, req{Method: "POST", Path: "/api/platform/webhooks", Key: p.SK,
		Body: map[string]any{"url": rcv.srv.URL, "events": []string{"customer.created", "customer.plan_changed"}, "description": "crm"}}, 201, "")
	id, secret := str(created.Body, "endpoint", "id"), str(created.Body, "secret")
	if !strings.HasPrefix(id, "whe_") || !strings.HasPrefix(secret, "whsec_") || get(created.Body, "endpoint", "enabled") != true {
		t.Fatalf("created: %s", created.Raw)
	}
	for _, bad := range []map[string]any{
		{"url": "http://169.254.169.254/latest/meta-data"},
		{"url": "ftp://example.com"},
		{"url": rcv.srv.URL, "events": []string{"customer.exploded"}},
		{"url": rcv.srv.URL, "evnts": []string{"ping"}},
	} {
		ts.expect(t, req{Method: "POST", Path: "/api/platform/webhooks", Key: p.SK, Body: bad}, 422, "validation_failed")
	}
	list := ts.expect(t, req{Method: "GET", Path: "/api/platform/webhooks", Key: p.SK}, 200, "")
	if strings.Contains(string(list.Raw), secret) || len(get(list.Body, "data").([]any)) != 1 {
		t.Errorf("list: %s", list.Raw)
	}
	// Another platform, or the other mode, does not see it.
	ts.expect(t, req{Method: "GET", Path: "/api/platform/webhooks/" + id, Key: other.SK}, 404, "not_found")
	ts.expect(t, req{Method: "GET", Path: "/api/platform/webhooks/" + id, Key: p.TestSK}, 404, "not_found")
	ts.expect(t, req{Method: "GET", Path: "/api/platform/webhooks/" + id, Key: p.SK}, 200, "")

	cus := str(ts.createCustomer(t, p.SK, map[string]any{"email": "ada@example.com"}), "id")
	ts.expect(t, req{Method: "PATCH", Path: "/api/customers/" + cus, Key: p.SK, Body: map[string]any{"plan": "pro"}}, 200, "")
	ts.createCustomer(t, p.TestSK, map[string]any{"email": "test@example.com"}) // test mode: not this endpoint's
	eventually(t, "customer.created and customer.plan_changed", func() bool {
		return len(rcv.events("customer.created")) == 1 && len(rcv.events("customer.plan_changed")) == 1
	})
	for _, e := range rcv.events("") {
		if !verifyHook(e.Signature, e.Body, secret) || e.Mode != "live" {
			t.Errorf("%s: signature %q does not verify (mode %s)", e.Type, e.Signature, e.Mode)
		}
	}
	if d := rcv.events("customer.plan_changed")[0].Data; d["from"] != "free" || d["to"] != "pro" || d["source"] != "api" || d["customerId"] != cus {
		t.Errorf("plan_changed data: %v", d)
	}

	// The log, a ping, a manual retry, a rotation.
	eventually(t, "two deliveries logged", func() bool {
		res := ts.expect(t, req{Method: "GET", Path: "/api/platform/webhooks/" + id + "/deliveries", Key: p.SK}, 200, "")
		data, _ := res.Body["data"].([]any)
		return len(data) == 2 && str(data[0].(map[string]any), "state") == "delivered" && str(data[1].(map[string]any), "state") == "delivered"
	})
	ts.expect(t, req{Method: "POST", Path: "/api/platform/webhooks/" + id + "/test", Key: p.SK}, 202, "")
	eventually(t, "ping", func() bool { return len(rcv.events("ping")) == 1 })
	first := rcv.events("customer.created")[0].ID
	ts.expect(t, req{Method: "POST", Path: "/api/platform/webhooks/" + id + "/deliveries/" + first + "/retry", Key: p.SK}, 202, "")
	eventually(t, "the retried event", func() bool { return len(rcv.events("customer.created")) == 2 })
	if again := rcv.events("customer.created")[1]; again.ID != first {
		t.Errorf("retry sent %s, want the same event %s", again.ID, first)
	}
	ts.expect(t, req{Method: "POST", Path: "/api/platform/webhooks/" + id + "/deliveries/evt_nope/retry", Key: p.SK}, 404, "not_found")
	rot := ts.expect(t, req{Method: "POST", Path: "/api/platform/webhooks/" + id + "/rotate-secret", Key: p.SK}, 200, "")
	newSecret := str(rot.Body, "secret")
	ts.expect(t, req{Method: "POST", Path: "/api/platform/webhooks/" + id + "/test", Key: p.SK}, 202, "")
	eventually(t, "second ping", func() bool { return len(rcv.events("ping")) == 2 })
	if e := rcv.events("ping")[1]; !verifyHook(e.Signature, e.Body, secret) || !verifyHook(e.Signature, e.Body, newSecret) {
		t.Errorf("during the grace period both secrets must verify: %s", e.Signature)
	}

	upd := ts.expect(t, req{Method: "PATCH", Path: "/api/platform/webhooks/" + id, Key: p.SK, Body: map[string]any{"enabled": false}}, 200, "")
	if get(upd.Body, "endpoint", "enabled") != false {
		t.Errorf("patch: %s", upd.Raw)
	}
	ts.expect(t, req{Method: "POST", Path: "/api/platform/webhooks/" + id + "/test", Key: p.SK}, 422, "validation_failed")
	ts.expect(t, req{Method: "DELETE", Path: "/api/platform/webhooks/" + id, Key: p.SK}, 200, "")
	ts.expect(t, req{Method: "GET", Path: "/api/platform/webhooks/" + id, Key: p.SK}, 404, "not_found")
}

func TestWebhookURLsNeedTheOperatorForPrivateAddresses(t *testing.T) {
	ts := startServer(t, nil)
	p := ts.createPlatform(t, "Hooks")
	for _, u := range []string{"http://127.0.0.1:9/x", "https://127.0.0.1:9/x", "https://10.0.0.1/x", "http://example.com/x"} {
		ts.expect(t, req{Method: "POST", Path: "/api/platform/webhooks", Key: p.SK, Body: map[string]any{"url": u}}, 422, "validation_failed")
	}
	ts.expect(t, req{Method: "POST", Path: "/api/platform/webhooks", Key: p.SK, Body: map[string]any{"url": "https://example.com/x"}}, 201, "")
}

func TestWebhookPlanChangedByStripeOnce(t *testing.T) {
	ts, _ := stripeServer(t, map[string]string{"DREAM_WEBHOOK_ALLOW_PRIVATE": "1"})
	p := ts.createPlatform(t, "Hook Co")
	ts.stripeConnectByKey(t, p)
	tiers := ts.stripeTiers(t, p.TestSK, 1500)
	rcv := newHookReceiver(t)
	ep := ts.expect(t, req{Method: "POST", Path: "/api/platform/webhooks", Key: p.TestSK,
		Body: map[string]any{"url": rcv.srv.URL, "events": []string{"customer.plan_changed", "subscription.updated"}}}, 201, "")
	logged := func(typ string) int { // deliveries are written with their cause
		res := ts.expect(t, req{Method: "GET", Path: "/api/platform/webhooks/" + str(ep.Body, "endpoint", "id") + "/deliveries", Key: p.TestSK}, 200, "")
		n := 0
		for _, d := range res.Body["data"].([]any) {
			if str(d.(map[string]any), "type") == typ {
				n++
			}
		}
		return n
	}
	id := str(ts.createCustomer(t, p.TestSK, map[string]any{"email": "ada@example.com"}), "id")
	completed := stripeEvent("evt_s1", "checkout.session.completed", time.Now().Add(-time.Minute), false, "", map[string]any{
		"id": "cs_1", "object": "checkout.session", "mode": "subscription", "payment_status": "paid", "status": "complete",
		"client_reference_id": id, "subscription": "sub_1", "metadata": map[string]string{"tier": "pro"},
	})
	hook := "/webhook/stripe/" + p.ID
	ts.stripeApply(t, hook, completed, stripePlatformSecret, "applied")
	ts.stripeApply(t, hook, completed, stripePlatformSecret, "duplicate") // Stripe redelivers
	ts.stripeApply(t, hook, completed, stripePlatformSecret, "duplicate")
	if n := logged("customer.plan_changed"); n != 1 {
		t.Errorf("%d customer.plan_changed deliveries logged, want 1", n)
	}
	eventually(t, "customer.plan_changed", func() bool { return len(rcv.events("customer.plan_changed")) >= 1 })
	// A second event would be queued by now: the redeliveries' answers
	// came after their (absent) commits. Let the worker run a while.
	time.Sleep(300 * time.Millisecond)
	got := rcv.events("customer.plan_changed")
	if len(got) != 1 {
		t.Fatalf("got %d customer.plan_changed, want 1", len(got))
	}
	if d := got[0].Data; d["customerId"] != id || d["from"] != "free" || d["to"] != "pro" || d["source"] != "stripe" || got[0].Mode != "test" {
		t.Errorf("event: %s", got[0].Body)
	}

	// The subscription's own event: subscription.updated, no plan change.
	start, end := time.Now().Add(-24*time.Hour).Truncate(time.Second), time.Now().Add(29*24*time.Hour).Truncate(time.Second)
	upd := stripeEvent("evt_s2", "customer.subscription.updated", time.Now().Add(-30*time.Second), false, "",
		stripeSubscription("sub_1", "", "active", str(tiers["pro"], "priceId"), 1500, start, end, map[string]string{"dreamCustomerId": id}))
	ts.stripeApply(t, hook, upd, stripePlatformSecret, "applied")
	ts.stripeApply(t, hook, upd, stripePlatformSecret, "duplicate")
	if n, m := logged("subscription.updated"), logged("customer.plan_changed"); n != 1 || m != 1 {
		t.Errorf("logged %d subscription.updated and %d customer.plan_changed, want 1 and 1", n, m)
	}
	eventually(t, "subscription.updated", func() bool { return len(rcv.events("subscription.updated")) >= 1 })
	time.Sleep(300 * time.Millisecond)
	if n, m := len(rcv.events("subscription.updated")), len(rcv.events("customer.plan_changed")); n != 1 || m != 1 {
		t.Errorf("got %d subscription.updated and %d customer.plan_changed, want 1 and 1", n, m)
	}
	if d := rcv.events("subscription.updated")[0].Data; d["customerId"] != id || d["plan"] != "pro" || str(d, "subscription", "id") != "sub_1" {
		t.Errorf("subscription.updated: %v", d)
	}
}

func TestWebhookDeliveredAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	t.Setenv("DREAM_WEBHOOK_ALLOW_PRIVATE", "1") // the children's environment
	rcv := newHookReceiver(t)
	inFlight, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	rcv.hold = func(n int) {
		if n == 1 { // the first attempt is held until the server is dead
			close(inFlight)
			<-release
		}
	}
	dataDir := t.TempDir()
	token := "dat_hooks_" + randHex(8)
	child := startCrashChild(t, dataDir, token)
	ts := &testServer{URL: "http://" + child.addr, AdminToken: token, client: &http.Client{Timeout: 10 * time.Second}}
	p := ts.createPlatform(t, "Crash")
	ts.expect(t, req{Method: "POST", Path: "/api/platform/webhooks", Key: p.SK, Body: map[string]any{"url": rcv.srv.URL}}, 201, "")
	id := str(ts.createCustomer(t, p.SK, map[string]any{"email": "crash@example.com"}), "id")
	select {
	case <-inFlight:
	case <-time.After(60 * time.Second):
		t.Fatal("the event was not sent")
	}
	// Committed, sent, not answered: kill -9.
	killChild(t, child)
	child.cmd.Wait()
	ts.client.CloseIdleConnections()

	startCrashChild(t, dataDir, token)
	// The retry is due about 10 s after the attempt that died.
	eventually(t, "the event delivered after the restart", func() bool { return len(rcv.events("customer.created")) >= 2 })
	got := rcv.events("customer.created")
	if got[0].ID != got[1].ID || got[1].Data["id"] != id {
		t.Errorf("after the restart: %s, want the same event %s about %s", got[1].Body, got[0].ID, id)
	}
}
