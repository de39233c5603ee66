package engine_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/storage"
)

// received is one request a receiver got.
type received struct {
	EventID   string
	Signature string
	UserAgent string
	Body      []byte
	Event     struct {
		ID        string          `json:"id"`
		Type      string          `json:"type"`
		CreatedAt time.Time       `json:"createdAt"`
		Mode      string          `json:"mode"`
		Data      json.RawMessage `json:"data"`
	}
}

// receiver is a real HTTP endpoint on loopback that records what it gets
// and answers status(n) to the n-th request (n from 1).
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []received
	status func(n int) int
}

func newReceiver(t *testing.T, status func(n int) int) *receiver {
	t.Helper()
	r := &receiver{status: status}
	if r.status == nil {
		r.status = func(int) int { return 200 }
	}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		rec := received{EventID: req.Header.Get("Dream-Event-Id"), Signature: req.Header.Get("Dream-Signature"),
			UserAgent: req.Header.Get("User-Agent"), Body: body}
		if err := json.Unmarshal(body, &rec.Event); err != nil {
			t.Errorf("receiver: body is not an event: %v: %s", err, body)
		}
		r.mu.Lock()
		r.got = append(r.got, rec)
		n, status := len(r.got), r.status
		r.mu.Unlock()
		w.WriteHeader(status(n))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) received() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

// ofType returns what the receiver got of one event type.
func (r *receiver) ofType(typ string) []received {
	var out []received
	for _, g := range r.received() {
		if g.Event.Type == typ {
			out = append(out, g)
		}
	}
	return out
}

// verify checks a Dream-Signature header the way the README tells
// developers to: some v1 is HMAC-SHA256(secret, "<t>.<body>").
func verify(header string, body []byte, secret string) bool {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	if _, err := strconv.ParseInt(ts, 10, 64); err != nil {
		return false
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "." + string(body)))
	want := hex.EncodeToString(mac.Sum(nil))
	for _, s := range sigs {
		if hmac.Equal([]byte(s), []byte(want)) {
			return true
		}
	}
	return false
}

type hookFixture struct {
	dir   string
	store *storage.Store
	eng   *engine.Engine
	clock *fakeClock
	opts  engine.WebhookOptions
	// realClock runs the engine on time.Now (for the worker's own retries).
	realClock bool
	loader    engine.PolicyLoader
	live      engine.Tenant
	test      engine.Tenant
	pk        string
}

func newHookFixture(t *testing.T, opts engine.WebhookOptions) *hookFixture {
	t.Helper()
	return newHookFixtureClock(t, opts, false)
}

func newHookFixtureClock(t *testing.T, opts engine.WebhookOptions, realClock bool) *hookFixture {
	t.Helper()
	f := &hookFixture{dir: t.TempDir(), clock: &fakeClock{now: hookStart}, opts: opts, realClock: realClock}
	f.open(t)
	np, err := f.eng.Platforms.Create(context.Background(), engine.CreatePlatformInput{Name: "Hooks"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.live = engine.Tenant{PlatformID: np.Platform.ID, Mode: engine.Live}
	f.test = engine.Tenant{PlatformID: np.Platform.ID, Mode: engine.Test}
	f.pk = np.PublishableKey
	return f
}

var hookStart = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

var testMasterKey = []byte("0123456789abcdef0123456789abcdef")

func (f *hookFixture) open(t *testing.T) {
	t.Helper()
	st, err := storage.Open(f.dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	sealer, _ := engine.NewSealer(testMasterKey)
	f.store = st
	opts := f.opts
	opts.AllowPrivate = true
	now := f.clock.Now
	if f.realClock {
		now = time.Now
	}
	f.eng = engine.New(engine.Config{Store: st, Now: now, Sealer: sealer, Webhooks: opts, PolicyLoader: f.loader})
	t.Cleanup(func() { st.Close() })
}

// run starts the delivery worker until the test ends.
func (f *hookFixture) run(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.eng.RunWebhooks(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func (f *hookFixture) endpoint(t *testing.T, tn engine.Tenant, url string, events ...string) *engine.CreatedWebhook {
	t.Helper()
	cw, err := f.eng.Webhooks.Create(context.Background(), tn, engine.CreateWebhookInput{URL: url, Events: events}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cw
}

func (f *hookFixture) customer(t *testing.T, tn engine.Tenant, email string) *engine.Customer {
	t.Helper()
	c, err := f.eng.Customers.Create(context.Background(), tn, f.pk, engine.CreateCustomerInput{Email: email}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestWebhookSignedAndDelivered(t *testing.T) {
	f := newHookFixture(t, engine.WebhookOptions{})
	rcv := newReceiver(t, nil)
	cw := f.endpoint(t, f.live, rcv.srv.URL+"/hook")
	if !strings.HasPrefix(cw.Secret, "whsec_") || !strings.HasPrefix(cw.Endpoint.ID, "whe_") || !cw.Endpoint.Enabled {
		t.Fatalf("created = %+v", cw)
	}
	f.run(t)
	cus := f.customer(t, f.live, "a@example.com")
	waitFor(t, "customer.created", func() bool { return len(rcv.ofType(engine.EventCustomerCreated)) == 1 })
	got := rcv.ofType(engine.EventCustomerCreated)[0]
	if !verify(got.Signature, got.Body, cw.Secret) {
		t.Errorf("signature %q does not verify with the endpoint's secret", got.Signature)
	}
	if verify(got.Signature, got.Body, "whsec_other") {
		t.Errorf("signature verifies with another secret")
	}
	if got.EventID != got.Event.ID || !strings.HasPrefix(got.EventID, "evt_") {
		t.Errorf("Dream-Event-Id %q, body id %q", got.EventID, got.Event.ID)
	}
	if got.Event.Mode != "live" || !strings.Contains(string(got.Event.Data), cus.ID) || got.UserAgent == "" {
		t.Errorf("event = %+v, user agent %q", got.Event, got.UserAgent)
	}
	// The log shows it delivered.
	waitFor(t, "the delivery recorded", func() bool {
		ds, _, err := f.eng.Webhooks.Deliveries(context.Background(), f.live, cw.Endpoint.ID, engine.Page{})
		return err == nil && len(ds) == 1 && ds[0].State == engine.DeliveryDelivered && ds[0].Status == 200 && ds[0].Attempt == 1
	})
}

func TestWebhookRetriedUntilDelivered(t *testing.T) {
	// Three failures, then 200: the fourth request carries the same event.
	// The worker waits out each backoff itself: a real clock, short waits.
	f := newHookFixtureClock(t, engine.WebhookOptions{Backoff: func(int) time.Duration { return 20 * time.Millisecond }}, true)
	rcv := newReceiver(t, func(n int) int {
		if n <= 3 {
			return 503
		}
		return 200
	})
	cw := f.endpoint(t, f.live, rcv.srv.URL, engine.EventCustomerCreated)
	f.run(t)
	f.customer(t, f.live, "a@example.com")
	var d *engine.WebhookDelivery
	waitFor(t, "delivery after three failures", func() bool {
		ds, _, err := f.eng.Webhooks.Deliveries(context.Background(), f.live, cw.Endpoint.ID, engine.Page{})
		if err != nil || len(ds) != 1 {
			return false
		}
		d = ds[0]
		return d.State == engine.DeliveryDelivered
	})
	got := rcv.received()
	if len(got) != 4 {
		t.Fatalf("receiver got %d requests, want 4", len(got))
	}
	for i, g := range got {
		if g.EventID != got[0].EventID || string(g.Body) != string(got[0].Body) {
			t.Errorf("request %d: event %s, want the same event %s with the same body", i+1, g.EventID, got[0].EventID)
		}
		if !verify(g.Signature, g.Body, cw.Secret) {
			t.Errorf("request %d: signature does not verify", i+1)
		}
	}
	if d.Attempt != 4 || d.Status != 200 || d.Error != "" || d.NextRetryAt != nil {
		t.Errorf("delivery = %+v, want attempt 4, status 200", d)
	}
	// Nothing more arrives.
	time.Sleep(100 * time.Millisecond)
	if n := len(rcv.received()); n != 4 {
		t.Errorf("receiver got %d requests after the delivery, want 4", n)
	}
}

func TestWebhookDeliveredAfterRestart(t *testing.T) {
	// The event is committed with its cause; the process stops before any
	// worker ran; a new process on the same data delivers it.
	f := newHookFixture(t, engine.WebhookOptions{})
	rcv := newReceiver(t, nil)
	f.endpoint(t, f.live, rcv.srv.URL)
	f.customer(t, f.live, "a@example.com")
	if len(rcv.received()) != 0 {
		t.Fatal("delivered without a worker")
	}
	if err := f.store.Close(); err != nil {
		t.Fatal(err)
	}
	f.open(t)
	f.run(t)
	waitFor(t, "delivery after the restart", func() bool { return len(rcv.ofType(engine.EventCustomerCreated)) == 1 })
}

func TestWebhookThresholdOnceUnderRace(t *testing.T) {
	f := newHookFixture(t, engine.WebhookOptions{})
	in := engine.TierConfigInput{Tiers: []engine.TierInput{{Name: "free", Limits: map[string]int64{"requests": 100}}}}
	if _, err := f.eng.Tiers.Put(context.Background(), f.live, in, nil); err != nil {
		t.Fatal(err)
	}
	rcv := newReceiver(t, nil)
	ep := f.endpoint(t, f.live, rcv.srv.URL, engine.EventUsageThreshold)
	cus := f.customer(t, f.live, "a@example.com")
	f.run(t)
	// 32 goroutines, 5 tracks each: 160 tries at a limit of 100, which
	// cross 80 and 100 once each.
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				if _, err := f.eng.Meter.Track(context.Background(), f.live, engine.TrackInput{CustomerID: cus.ID}, nil); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	// Events are written with their tracks: the log is complete now.
	if ds, _, err := f.eng.Webhooks.Deliveries(context.Background(), f.live, ep.Endpoint.ID, engine.Page{}); err != nil || len(ds) != 2 {
		t.Errorf("%d usage.threshold deliveries queued (%v), want 2", len(ds), err)
	}
	waitFor(t, "two threshold events", func() bool { return len(rcv.ofType(engine.EventUsageThreshold)) >= 2 })
	time.Sleep(100 * time.Millisecond) // a third would arrive now
	got := rcv.ofType(engine.EventUsageThreshold)
	if len(got) != 2 {
		t.Fatalf("got %d usage.threshold events, want 2", len(got))
	}
	seen := map[int]bool{}
	for _, g := range got {
		var d engine.ThresholdData
		if err := json.Unmarshal(g.Event.Data, &d); err != nil {
			t.Fatal(err)
		}
		seen[d.Threshold] = true
		if d.CustomerID != cus.ID || d.Feature != "requests" || d.Limit != 100 || d.Count < int64(d.Threshold) || d.PeriodEnd.IsZero() {
			t.Errorf("threshold data = %+v", d)
		}
	}
	if !seen[80] || !seen[100] {
		t.Errorf("thresholds = %v, want 80 and 100", seen)
	}
}

func TestWebhookOtherPlatformsAndModesNeverReceive(t *testing.T) {
	f := newHookFixture(t, engine.WebhookOptions{})
	other, err := f.eng.Platforms.Create(context.Background(), engine.CreatePlatformInput{Name: "Other"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	otherLive := engine.Tenant{PlatformID: other.Platform.ID, Mode: engine.Live}
	live, test, foreign := newReceiver(t, nil), newReceiver(t, nil), newReceiver(t, nil)
	f.endpoint(t, f.live, live.srv.URL)
	testEP := f.endpoint(t, f.test, test.srv.URL)
	foreignEP := f.endpoint(t, otherLive, foreign.srv.URL)
	queued := func(tn engine.Tenant, id string) int {
		ds, _, err := f.eng.Webhooks.Deliveries(context.Background(), tn, id, engine.Page{})
		if err != nil {
			t.Fatal(err)
		}
		return len(ds)
	}
	f.run(t)
	cus := f.customer(t, f.live, "a@example.com")
	// Deliveries are written with their cause: none queued is none sent.
	if n, m := queued(f.test, testEP.Endpoint.ID), queued(otherLive, foreignEP.Endpoint.ID); n != 0 || m != 0 {
		t.Errorf("queued for the test-mode endpoint %d, for the other platform's %d, want 0 and 0", n, m)
	}
	waitFor(t, "the live endpoint", func() bool { return len(live.received()) == 1 })
	time.Sleep(100 * time.Millisecond)
	if n, m := len(test.received()), len(foreign.received()); n != 0 || m != 0 {
		t.Errorf("test-mode endpoint got %d, other platform's got %d, want 0 and 0", n, m)
	}
	if !strings.Contains(string(live.received()[0].Event.Data), cus.ID) {
		t.Errorf("live endpoint got %s", live.received()[0].Body)
	}
	// And the other way round: a test-mode customer reaches only test.
	f.customer(t, f.test, "b@example.com")
	if m := queued(otherLive, foreignEP.Endpoint.ID); m != 0 {
		t.Errorf("queued for the other platform's endpoint: %d", m)
	}
	waitFor(t, "the test endpoint", func() bool { return len(test.received()) == 1 })
	if got := test.received()[0].Event.Mode; got != "test" {
		t.Errorf("test event mode = %q", got)
	}
	time.Sleep(100 * time.Millisecond)
	if n, m := len(live.received()), len(foreign.received()); n != 1 || m != 0 {
		t.Errorf("live endpoint got %d, other platform's %d, want 1 and 0", n, m)
	}
}

func TestWebhookPlanChangedAndCustomerEvents(t *testing.T) {
	f := newHookFixture(t, engine.WebhookOptions{})
	rcv := newReceiver(t, nil)
	f.endpoint(t, f.live, rcv.srv.URL, engine.EventPlanChanged, engine.EventCustomerDeleted)
	f.run(t)
	cus := f.customer(t, f.live, "a@example.com")
	pro := "pro"
	if _, err := f.eng.Customers.Update(context.Background(), f.live, cus.ID, engine.UpdateCustomerInput{Plan: &pro}, nil); err != nil {
		t.Fatal(err)
	}
	if err := f.eng.Customers.Delete(context.Background(), f.live, cus.ID, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "plan_changed and deleted", func() bool {
		return len(rcv.ofType(engine.EventPlanChanged)) == 1 && len(rcv.ofType(engine.EventCustomerDeleted)) == 1
	})
	var d engine.PlanChangedData
	json.Unmarshal(rcv.ofType(engine.EventPlanChanged)[0].Event.Data, &d)
	if d != (engine.PlanChangedData{CustomerID: cus.ID, From: "free", To: "pro", Source: "api"}) {
		t.Errorf("plan_changed data = %+v", d)
	}
	if n := len(rcv.ofType(engine.EventCustomerCreated)); n != 0 {
		t.Errorf("got %d customer.created, to which the endpoint is not subscribed", n)
	}
}

func TestWebhookRotationSignsWithBothSecrets(t *testing.T) {
	f := newHookFixture(t, engine.WebhookOptions{})
	rcv := newReceiver(t, nil)
	cw := f.endpoint(t, f.live, rcv.srv.URL)
	rot, err := f.eng.Webhooks.RotateSecret(context.Background(), f.live, cw.Endpoint.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rot.Secret == cw.Secret {
		t.Fatal("rotation kept the secret")
	}
	f.run(t)
	if _, err := f.eng.Webhooks.Test(context.Background(), f.live, cw.Endpoint.ID, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ping", func() bool { return len(rcv.ofType(engine.EventPing)) == 1 })
	g := rcv.ofType(engine.EventPing)[0]
	if strings.Count(g.Signature, "v1=") != 2 || !verify(g.Signature, g.Body, cw.Secret) || !verify(g.Signature, g.Body, rot.Secret) {
		t.Errorf("during the grace period the signature %q must verify with both secrets", g.Signature)
	}
	f.clock.Add(24*time.Hour + time.Second)
	if _, err := f.eng.Webhooks.Test(context.Background(), f.live, cw.Endpoint.ID, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "second ping", func() bool { return len(rcv.ofType(engine.EventPing)) == 2 })
	g = rcv.ofType(engine.EventPing)[1]
	if strings.Count(g.Signature, "v1=") != 1 || verify(g.Signature, g.Body, cw.Secret) || !verify(g.Signature, g.Body, rot.Secret) {
		t.Errorf("after the grace period the signature %q must verify with the new secret only", g.Signature)
	}
}

func TestWebhookEndpointDisabledAfterFailingThreeDays(t *testing.T) {
	// No worker: passes are made by hand while the fake clock moves.
	f := newHookFixture(t, engine.WebhookOptions{})
	rcv := newReceiver(t, func(int) int { return 500 })
	cw := f.endpoint(t, f.live, rcv.srv.URL)
	f.customer(t, f.live, "a@example.com")
	ctx := context.Background()
	var last time.Time
	for i := 0; i < 40; i++ {
		next, err := f.eng.DeliverWebhooks(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if next.IsZero() {
			break
		}
		if i == 0 {
			if d := next.Sub(f.clock.Now()); d <= 0 || d > 10*time.Second {
				t.Errorf("first retry in %v, want within 10 s", d)
			}
		}
		if i == 1 {
			if d := next.Sub(f.clock.Now()); d < 30*time.Second || d > time.Minute {
				t.Errorf("second retry in %v, want about a minute", d)
			}
		}
		last = next
		f.clock.Add(next.Sub(f.clock.Now()))
	}
	ep, err := f.eng.Webhooks.Get(ctx, f.live, cw.Endpoint.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ep.Enabled || !strings.Contains(ep.DisabledReason, "500") {
		t.Errorf("endpoint = %+v, want disabled with the reason", ep)
	}
	ds, _, _ := f.eng.Webhooks.Deliveries(ctx, f.live, cw.Endpoint.ID, engine.Page{})
	if len(ds) != 1 || ds[0].State != engine.DeliveryFailed || ds[0].Attempt < 8 {
		t.Errorf("deliveries = %+v, want one failed after many attempts", ds)
	}
	if f.clock.Now().Sub(hookStart) < 72*time.Hour {
		t.Errorf("gave up after %v, before 3 days (last retry %v)", f.clock.Now().Sub(hookStart), last)
	}
	// Re-enabled and retried by hand, it is delivered.
	rcv.mu.Lock()
	rcv.status = func(int) int { return 200 }
	rcv.mu.Unlock()
	on := true
	if _, err := f.eng.Webhooks.Update(ctx, f.live, cw.Endpoint.ID, engine.UpdateWebhookInput{Enabled: &on}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := f.eng.Webhooks.Retry(ctx, f.live, cw.Endpoint.ID, ds[0].EventID, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := f.eng.DeliverWebhooks(ctx); err != nil {
		t.Fatal(err)
	}
	d, err := f.store.WebhookDelivery(ctx, f.live, cw.Endpoint.ID, ds[0].EventID)
	if err != nil || d.State != engine.DeliveryDelivered {
		t.Errorf("after a manual retry: %+v, %v", d, err)
	}
}

func TestWebhookURLs(t *testing.T) {
	tests := []struct {
		url          string
		allowPrivate bool
		ok           bool
	}{
		{"https://hooks.example.com/x", false, true},
		{"http://hooks.example.com/x", false, false},
		{"http://hooks.example.com/x", true, true},
		{"https://127.0.0.1/x", false, false},
		{"https://localhost/x", false, false},
		{"https://10.1.2.3/x", false, false},
		{"http://127.0.0.1:8080/x", true, true},
		{"https://169.254.169.254/latest/meta-data", true, false},
		{"https://[fe80::1]/x", true, false},
		{"https://[::ffff:169.254.169.254]/x", true, false},
		{"ftp://hooks.example.com/x", true, false},
		{"https://user:pw@hooks.example.com/x", false, false},
		{"/relative", true, false},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			err := engine.ValidateWebhookURL(tc.url, tc.allowPrivate)
			if (err == nil) != tc.ok {
				t.Errorf("ValidateWebhookURL(%q, %v) = %v, want ok=%v", tc.url, tc.allowPrivate, err, tc.ok)
			}
			if err != nil && engine.ErrorCode(err) != engine.EVALIDATION {
				t.Errorf("code %s", engine.ErrorCode(err))
			}
		})
	}
}

func TestWebhookRedirectNotFollowed(t *testing.T) {
	f := newHookFixture(t, engine.WebhookOptions{})
	target := newReceiver(t, nil)
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.srv.URL, http.StatusFound)
	}))
	defer redirect.Close()
	cw := f.endpoint(t, f.live, redirect.URL)
	f.customer(t, f.live, "a@example.com")
	if _, err := f.eng.DeliverWebhooks(context.Background()); err != nil {
		t.Fatal(err)
	}
	ds, _, _ := f.eng.Webhooks.Deliveries(context.Background(), f.live, cw.Endpoint.ID, engine.Page{})
	if len(ds) != 1 || ds[0].Status != 302 || ds[0].State != engine.DeliveryPending {
		t.Errorf("deliveries = %+v, want a 302 failure, pending a retry", ds)
	}
	if n := len(target.received()); n != 0 {
		t.Errorf("the redirect was followed (%d requests)", n)
	}
}

// BenchmarkMeterTrackWebhook is BenchmarkMeterTrack with a finite limit
// that no call crosses, with and without a webhook endpoint subscribed to
// every event: the endpoint must cost nothing measurable (a track reads
// endpoints only when it crosses a threshold).
func BenchmarkMeterTrackWebhook(b *testing.B) {
	for _, goroutines := range []int{1, 32} {
		for _, endpoint := range []bool{false, true} {
			b.Run(fmt.Sprintf("goroutines=%d/endpoint=%v", goroutines, endpoint), func(b *testing.B) {
				f := newFixture(b)
				f.tiers(b, map[string]int64{"requests": 1_000_000_000_000})
				if endpoint {
					if _, err := f.eng.Webhooks.Create(context.Background(), f.live, engine.CreateWebhookInput{URL: "https://hooks.example.com/x"}, nil); err != nil {
						b.Fatal(err)
					}
				}
				ids := make(chan string, 64)
				for i := range 64 {
					ids <- f.customer(b, fmt.Sprintf("bench%d@example.com", i)).ID
				}
				ctx := context.Background()
				b.ReportAllocs()
				b.ResetTimer()
				if goroutines == 1 {
					id := <-ids
					for i := 0; i < b.N; i++ {
						if _, err := f.eng.Meter.Track(ctx, f.live, engine.TrackInput{CustomerID: id}, nil); err != nil {
							b.Fatal(err)
						}
					}
					return
				}
				b.SetParallelism((goroutines + 1) / 2)
				b.RunParallel(func(pb *testing.PB) {
					id := <-ids
					for pb.Next() {
						if _, err := f.eng.Meter.Track(ctx, f.live, engine.TrackInput{CustomerID: id}, nil); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

func TestWebhookReadsAtMost4KiBOfTheAnswer(t *testing.T) {
	// The receiver answers 200 with 8 KiB and then holds the rest of its
	// body until the test ends: a worker reading more than 4 KiB would
	// wait out the attempt's timeout and record a failure.
	f := newHookFixture(t, engine.WebhookOptions{Timeout: 5 * time.Second})
	hold := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		w.Write([]byte(strings.Repeat("x", 8<<10)))
		w.(http.Flusher).Flush()
		select {
		case <-hold:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(hold)
	cw := f.endpoint(t, f.live, srv.URL)
	f.customer(t, f.live, "a@example.com")
	if _, err := f.eng.DeliverWebhooks(context.Background()); err != nil {
		t.Fatal(err)
	}
	ds, _, _ := f.eng.Webhooks.Deliveries(context.Background(), f.live, cw.Endpoint.ID, engine.Page{})
	if len(ds) != 1 || ds[0].State != engine.DeliveryDelivered {
		t.Errorf("deliveries = %+v, want delivered", ds)
	}
}

func TestWebhookEventsExpire(t *testing.T) {
	f := newHookFixture(t, engine.WebhookOptions{})
	ok, down := newReceiver(t, nil), newReceiver(t, func(int) int { return 500 })
	good := f.endpoint(t, f.live, ok.srv.URL)
	bad := f.endpoint(t, f.live, down.srv.URL)
	f.customer(t, f.live, "a@example.com")
	ctx := context.Background()
	if _, err := f.eng.DeliverWebhooks(ctx); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(31 * 24 * time.Hour)
	n, err := f.store.ExpireWebhooks(ctx, f.clock.Now().Add(-30*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 { // the delivered delivery and the event
		t.Errorf("expired %d records, want 2", n)
	}
	if ds, _, _ := f.eng.Webhooks.Deliveries(ctx, f.live, good.Endpoint.ID, engine.Page{}); len(ds) != 0 {
		t.Errorf("delivered log entries left: %+v", ds)
	}
	if ds, _, _ := f.eng.Webhooks.Deliveries(ctx, f.live, bad.Endpoint.ID, engine.Page{}); len(ds) != 1 || ds[0].State != engine.DeliveryPending {
		t.Errorf("a pending delivery must stay: %+v", ds)
	}
}

func TestWebhookPluginFallbackWhenTheBreakerOpens(t *testing.T) {
	fl := &failingLoader{}
	f := &hookFixture{dir: t.TempDir(), clock: &fakeClock{now: hookStart}, loader: fl}
	f.open(t)
	ctx := context.Background()
	np, err := f.eng.Platforms.Create(ctx, engine.CreatePlatformInput{Name: "Plugged"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.live = engine.Tenant{PlatformID: np.Platform.ID, Mode: engine.Live}
	rcv := newReceiver(t, nil)
	f.endpoint(t, f.live, rcv.srv.URL, engine.EventPluginFallback)
	up, err := f.eng.Plugins.Upload(ctx, f.live, []byte("\x00asm"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	cus := f.customer(t, f.live, "a@example.com")
	f.run(t)
	fl.fail.Store(true)
	for range 50 { // opens the breaker once; the calls after it are skipped
		if _, err := f.eng.Meter.Track(ctx, f.live, engine.TrackInput{CustomerID: cus.ID}, nil); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "plugin.fallback", func() bool { return len(rcv.ofType(engine.EventPluginFallback)) == 1 })
	time.Sleep(100 * time.Millisecond)
	got := rcv.ofType(engine.EventPluginFallback)
	if len(got) != 1 {
		t.Fatalf("got %d plugin.fallback events, want 1", len(got))
	}
	var d map[string]any
	json.Unmarshal(got[0].Event.Data, &d)
	if d["version"] != up.Version || d["coolDownSeconds"] == nil {
		t.Errorf("plugin.fallback data = %v", d)
	}
}

// endpointReads counts the reads of a tenant's webhook endpoints made in
// units of work.
type endpointReads struct {
	*storage.Store
	n atomic.Int64
}

func (s *endpointReads) Update(ctx context.Context, locks []engine.Lock, fn func(engine.Tx) (any, error)) (any, error) {
	return s.Store.Update(ctx, locks, func(tx engine.Tx) (any, error) { return fn(endpointReadsTx{Tx: tx, s: s}) })
}

type endpointReadsTx struct {
	engine.Tx
	s *endpointReads
}

func (tx endpointReadsTx) WebhookEndpoints(ctx context.Context, t engine.Tenant) ([]*engine.WebhookEndpoint, error) {
	tx.s.n.Add(1)
	return tx.Tx.WebhookEndpoints(ctx, t)
}

// A track that crosses no threshold does not look at webhook endpoints: it
// pays a comparison. Only the tracks reaching 80 and 100 read them.
func TestTrackReadsEndpointsOnlyWhenCrossing(t *testing.T) {
	st, err := storage.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := &endpointReads{Store: st}
	eng := engine.New(engine.Config{Store: s})
	ctx := context.Background()
	np, err := eng.Platforms.Create(ctx, engine.CreatePlatformInput{Name: "Reads"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	live := engine.Tenant{PlatformID: np.Platform.ID, Mode: engine.Live}
	in := engine.TierConfigInput{Tiers: []engine.TierInput{{Name: "free", Limits: map[string]int64{"requests": 100}}}}
	if _, err := eng.Tiers.Put(ctx, live, in, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Webhooks.Create(ctx, live, engine.CreateWebhookInput{URL: "https://hooks.example.com/x"}, nil); err != nil {
		t.Fatal(err)
	}
	cus, err := eng.Customers.Create(ctx, live, "pk", engine.CreateCustomerInput{Email: "a@example.com"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	base := s.n.Load()
	want := map[int64]int64{79: 0, 80: 1, 99: 1, 100: 2, 110: 2}
	for i := int64(1); i <= 110; i++ {
		if _, err := eng.Meter.Track(ctx, live, engine.TrackInput{CustomerID: cus.ID}, nil); err != nil {
			t.Fatal(err)
		}
		if w, ok := want[i]; ok {
			if got := s.n.Load() - base; got != w {
				t.Errorf("after %d tracks: endpoints read %d times, want %d", i, got, w)
			}
		}
	}
}
