package engine_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/plugins"
	"github.com/dream-api/dream-api/storage"
	"github.com/dream-api/dream-api/storage/postgres"
	"github.com/dream-api/dream-api/storage/postgres/pgtest"
)

// batchFixture is an engine with one platform on a given store.
type batchFixture struct {
	eng  *engine.Engine
	live engine.Tenant
	pk   string
}

func newBatchFixture(tb testing.TB, st engine.Store, cfg engine.Config) *batchFixture {
	tb.Helper()
	cfg.Store = st
	eng := engine.New(cfg)
	np, err := eng.Platforms.Create(context.Background(), engine.CreatePlatformInput{Name: "Batch"}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return &batchFixture{eng: eng, live: engine.Tenant{PlatformID: np.Platform.ID, Mode: engine.Live}, pk: np.PublishableKey}
}

func (f *batchFixture) tiers(tb testing.TB, tiers ...engine.TierInput) {
	tb.Helper()
	if _, err := f.eng.Tiers.Put(context.Background(), f.live, engine.TierConfigInput{Tiers: tiers}, nil); err != nil {
		tb.Fatal(err)
	}
}

func (f *batchFixture) customer(tb testing.TB, email string) string {
	tb.Helper()
	c, err := f.eng.Customers.Create(context.Background(), f.live, f.pk, engine.CreateCustomerInput{Email: email}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return c.ID
}

func (f *batchFixture) count(tb testing.TB, customerID, feature string) int64 {
	tb.Helper()
	u, err := f.eng.Meter.Usage(context.Background(), f.live, customerID)
	if err != nil {
		tb.Fatal(err)
	}
	for _, x := range u.Usage {
		if x.Feature == feature {
			return x.Count
		}
	}
	tb.Fatalf("no usage of %s: %+v", feature, u.Usage)
	return 0
}

// renderCount renders a decided event as its status and count, enough to
// tell a replay from a new decision.
func renderCount(r *engine.TrackResult) (int, []byte) {
	status := 200
	if !r.Allowed {
		status = 429
	}
	return status, []byte(fmt.Sprint(r.Usage.Count))
}

func ev(customerID string, opts ...func(*engine.BatchEvent)) engine.BatchEvent {
	e := engine.BatchEvent{TrackInput: engine.TrackInput{CustomerID: customerID}}
	for _, o := range opts {
		o(&e)
	}
	return e
}

func qty(n int64) func(*engine.BatchEvent) {
	return func(e *engine.BatchEvent) { e.Quantity = &n }
}

func feature(f string) func(*engine.BatchEvent) {
	return func(e *engine.BatchEvent) { e.Feature = f }
}

func key(k string) func(*engine.BatchEvent) {
	return func(e *engine.BatchEvent) { e.IdempotencyKey = &k }
}

// outcome is a result in a word: "allowed 3", "denied 5", "replay 200 3",
// or the error code.
func outcome(r engine.BatchResult) string {
	switch {
	case r.Replay != nil:
		return fmt.Sprintf("replay %d %s", r.Replay.Status, r.Replay.Body)
	case r.Err != nil:
		return engine.ErrorCode(r.Err)
	case r.Result.Allowed:
		return fmt.Sprintf("allowed %d", r.Result.Usage.Count)
	}
	return fmt.Sprintf("denied %d", r.Result.Usage.Count)
}

func outcomes(rs []engine.BatchResult) string {
	var out []string
	for _, r := range rs {
		out = append(out, outcome(r))
	}
	return strings.Join(out, ", ")
}

// TestTrackBatch runs the batch's semantics on both stores: Pebble, and
// PostgreSQL (one server for the test, a database per case) when it is
// installed.
func TestTrackBatch(t *testing.T) {
	cases := []struct {
		name string
		fn   func(t *testing.T, st engine.Store)
	}{
		{"InOrder", testBatchInOrder},
		{"ExactUnderConcurrency", testBatchExact},
		{"EventIdempotency", testBatchEventIdempotency},
		{"RequestIdempotency", testBatchRequestIdempotency},
	}
	t.Run("pebble", func(t *testing.T) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				st, err := storage.Open(t.TempDir(), nil)
				if err != nil {
					t.Fatal(err)
				}
				defer st.Close()
				tc.fn(t, st)
			})
		}
	})
	t.Run("postgres", func(t *testing.T) {
		srv := pgtest.Own(t)
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				st, err := postgres.Open(context.Background(), srv.Database(t), &postgres.Options{PollInterval: 50 * time.Millisecond})
				if err != nil {
					t.Fatal(err)
				}
				defer st.Close()
				tc.fn(t, st)
			})
		}
	})
}

// Events are decided one after the other: the second event of a customer
// sees what the first counted (the store's counter cache is not read
// again within the unit), and each event has its own error.
func testBatchInOrder(t *testing.T, st engine.Store) {
	f := newBatchFixture(t, st, engine.Config{})
	f.tiers(t, engine.TierInput{Name: "free", Limits: map[string]int64{"requests": 5, "exports": 2}}, engine.TierInput{Name: "pro", Limits: map[string]int64{"seats": 3}})
	a, b := f.customer(t, "a@example.com"), f.customer(t, "b@example.com")
	ctx := context.Background()
	// A track before the batch: the counter is in the store's cache.
	if _, err := f.eng.Meter.Track(ctx, f.live, engine.TrackInput{CustomerID: a}, nil); err != nil {
		t.Fatal(err)
	}
	events := []engine.BatchEvent{
		ev(a), ev(a, qty(2)), ev(b), ev("cus_nobody"), ev(a), ev(a, qty(1)),
		ev(a, feature("exports"), qty(2)), ev(a, feature("exports")), ev(a, feature("typo")),
		ev(a, feature("seats")), ev(a, qty(0)), ev(b, qty(4)), ev(b, qty(2)),
	}
	rs, err := f.eng.Meter.TrackBatch(ctx, f.live, events, nil, renderCount)
	if err != nil {
		t.Fatal(err)
	}
	want := "allowed 2, allowed 4, allowed 1, not_found, allowed 5, denied 5, " +
		"allowed 2, denied 2, unknown_feature, tier_limit_reached?, validation_failed, allowed 5, denied 5"
	// seats is metered by another tier only: denied with limit 0, as Track.
	want = strings.Replace(want, "tier_limit_reached?", "denied 0", 1)
	if got := outcomes(rs); got != want {
		t.Errorf("results\n got  %s\n want %s", got, want)
	}
	if got := f.count(t, a, "requests"); got != 5 {
		t.Errorf("stored count of a: %d, want 5", got)
	}
	if got := f.count(t, b, "requests"); got != 5 {
		t.Errorf("stored count of b: %d, want 5", got)
	}
	if got := f.count(t, a, "exports"); got != 2 {
		t.Errorf("stored exports of a: %d, want 2", got)
	}
	// A track after the batch reads the batch's count (cache and store).
	r, err := f.eng.Meter.Track(ctx, f.live, engine.TrackInput{CustomerID: a}, nil)
	if err != nil || r.Allowed || r.Usage.Count != 5 {
		t.Errorf("track after the batch: %+v, %v; want denied at 5", r, err)
	}
	for _, n := range []int{0, engine.MaxBatchEvents + 1} {
		_, err := f.eng.Meter.TrackBatch(ctx, f.live, make([]engine.BatchEvent, n), nil, renderCount)
		if e, ok := err.(*engine.Error); !ok || e.Code != engine.EVALIDATION || len(e.Fields) != 1 || e.Fields[0].Field != "events" {
			t.Errorf("%d events: %v, want validation_failed naming events", n, err)
		}
	}
}

// 8 goroutines send batches of 50 on one customer (and one more tracks
// alone) against a limit of 1000: exactly 1000 allowed, each count
// answered once, the stored count what was allowed.
func testBatchExact(t *testing.T, st engine.Store) {
	f := newBatchFixture(t, st, engine.Config{})
	f.tiers(t, engine.TierInput{Name: "free", Limits: map[string]int64{"requests": 1000}})
	id := f.customer(t, "hot@example.com")
	other := f.customer(t, "other@example.com")
	ctx := context.Background()
	var mu sync.Mutex
	counts := map[int64]int{}
	var allowed, denied int
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 3 {
				events := make([]engine.BatchEvent, 50)
				for i := range events {
					events[i] = ev(id)
					if i%10 == 9 {
						events[i] = ev(other)
					}
				}
				rs, err := f.eng.Meter.TrackBatch(ctx, f.live, events, nil, nil)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for i, r := range rs {
					if r.Result == nil {
						t.Errorf("event %d: %s", i, outcome(r))
						continue
					}
					if events[i].CustomerID != id {
						continue
					}
					if r.Result.Allowed {
						allowed++
						counts[r.Result.Usage.Count]++
					} else {
						denied++
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 100 {
			r, err := f.eng.Meter.Track(ctx, f.live, engine.TrackInput{CustomerID: id}, nil)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			if r.Allowed {
				allowed++
				counts[r.Usage.Count]++
			} else {
				denied++
			}
			mu.Unlock()
		}
	}()
	wg.Wait()
	if allowed != 1000 || denied != 8*3*45+100-1000 {
		t.Errorf("allowed %d, denied %d; want 1000 allowed of %d", allowed, denied, 8*3*45+100)
	}
	for n := int64(1); n <= 1000; n++ {
		if counts[n] != 1 {
			t.Fatalf("count %d answered %d times, want once", n, counts[n])
		}
	}
	if got := f.count(t, id, "requests"); got != 1000 {
		t.Errorf("stored %d, want 1000", got)
	}
	if got := f.count(t, other, "requests"); got != 8*3*5 {
		t.Errorf("other customer stored %d, want %d", got, 8*3*5)
	}
}

// An event's key counts it once: a later event with the key (in a later
// batch, or later in the same one) answers the first answer and counts
// nothing; with another event behind it, it is a conflict; an event that
// failed stored nothing under its key.
func testBatchEventIdempotency(t *testing.T, st engine.Store) {
	f := newBatchFixture(t, st, engine.Config{})
	f.tiers(t, engine.TierInput{Name: "free", Limits: map[string]int64{"requests": 100}})
	a := f.customer(t, "a@example.com")
	ctx := context.Background()
	rs, err := f.eng.Meter.TrackBatch(ctx, f.live, []engine.BatchEvent{
		ev(a, key("k1")), ev(a, key("k1")), ev(a, key("k2"), qty(3)), ev(a, key("k1"), qty(2)),
		ev("cus_gone", key("k3")), ev(a), ev(a, key("")),
	}, nil, renderCount)
	if err != nil {
		t.Fatal(err)
	}
	want := "allowed 1, replay 200 1, allowed 4, idempotency_conflict, not_found, allowed 5, validation_failed"
	if got := outcomes(rs); got != want {
		t.Errorf("first batch\n got  %s\n want %s", got, want)
	}
	// Concurrent repeats of the same keyed events count them once.
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rs, err := f.eng.Meter.TrackBatch(ctx, f.live, []engine.BatchEvent{
				ev(a, key("k2"), qty(3)), ev(a, key("k4")), ev(a, key("k1")),
			}, nil, renderCount)
			if err != nil {
				t.Error(err)
				return
			}
			if got := outcome(rs[0]) + ", " + outcome(rs[2]); got != "replay 200 4, replay 200 1" {
				t.Errorf("repeat: %s", outcomes(rs))
			}
		}()
	}
	wg.Wait()
	if got := f.count(t, a, "requests"); got != 6 {
		t.Errorf("stored %d, want 6 (1+3+1, and k4 once)", got)
	}
	// k3 failed (no such customer) and stored nothing: it decides anew.
	rs, err = f.eng.Meter.TrackBatch(ctx, f.live, []engine.BatchEvent{ev(a, key("k3"))}, nil, renderCount)
	if err != nil || outcome(rs[0]) != "allowed 7" {
		t.Errorf("k3 after a failure: %s, %v; want allowed 7", outcomes(rs), err)
	}
}

// The request's own Idempotency-Key replays the whole answer and counts
// nothing again; with another body it is a conflict.
func testBatchRequestIdempotency(t *testing.T, st engine.Store) {
	f := newBatchFixture(t, st, engine.Config{})
	f.tiers(t, engine.TierInput{Name: "free", Limits: map[string]int64{"requests": 100}})
	a := f.customer(t, "a@example.com")
	ctx := context.Background()
	render := func(res any) (int, []byte) { return 200, []byte(outcomes(res.([]engine.BatchResult))) }
	idem := &engine.Idempotency{Key: "req-1", RequestHash: [32]byte{1}, Render: render}
	events := []engine.BatchEvent{ev(a), ev(a, qty(2))}
	rs, err := f.eng.Meter.TrackBatch(ctx, f.live, events, idem, renderCount)
	if err != nil || outcomes(rs) != "allowed 1, allowed 3" {
		t.Fatalf("first: %s, %v", outcomes(rs), err)
	}
	_, err = f.eng.Meter.TrackBatch(ctx, f.live, []engine.BatchEvent{ev(a), ev(a, qty(2))}, idem, renderCount)
	if rec, ok := engine.AsReplayed(err); !ok || string(rec.Body) != "allowed 1, allowed 3" {
		t.Errorf("repeat: %v, want the replay of the first answer", err)
	}
	other := &engine.Idempotency{Key: "req-1", RequestHash: [32]byte{2}, Render: render}
	if _, err := f.eng.Meter.TrackBatch(ctx, f.live, events, other, renderCount); engine.ErrorCode(err) != engine.EIDEMPOTENCYCONFLICT {
		t.Errorf("same key, other body: %v, want idempotency_conflict", err)
	}
	if got := f.count(t, a, "requests"); got != 3 {
		t.Errorf("stored %d, want 3", got)
	}
}

// Each event counts against the tier's per-minute rate limit; a replayed
// event takes none.
func TestTrackBatchRateLimit(t *testing.T) {
	st, err := storage.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 12, 1, 12, 0, 10, 0, time.UTC)
	f := newBatchFixture(t, st, engine.Config{Now: func() time.Time { return now }})
	f.tiers(t, engine.TierInput{Name: "free", Limits: map[string]int64{"requests": 100}, RateLimitPerMinute: 3})
	a := f.customer(t, "a@example.com")
	ctx := context.Background()
	rs, err := f.eng.Meter.TrackBatch(ctx, f.live, []engine.BatchEvent{ev(a, key("x")), ev(a, key("x")), ev(a), ev(a), ev(a)}, nil, renderCount)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := outcomes(rs), "allowed 1, replay 200 1, allowed 2, allowed 3, rate_limited"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if e, ok := rs[4].Err.(*engine.Error); !ok || e.RetryAfter != 50 {
		t.Errorf("rate_limited error %+v, want Retry-After 50", rs[4].Err)
	}
}

// Usage per day and usage.threshold events see every event of a batch as
// they see single tracks.
func TestTrackBatchDaysAndThresholds(t *testing.T) {
	f := newHookFixture(t, engine.WebhookOptions{})
	if _, err := f.eng.Tiers.Put(context.Background(), f.live, engine.TierConfigInput{Tiers: []engine.TierInput{{Name: "free", Limits: map[string]int64{"requests": 10}}}}, nil); err != nil {
		t.Fatal(err)
	}
	rcv := newReceiver(t, nil)
	ep := f.endpoint(t, f.live, rcv.srv.URL, engine.EventUsageThreshold)
	cus := f.customer(t, f.live, "a@example.com")
	ctx := context.Background()
	events := make([]engine.BatchEvent, 12)
	for i := range events {
		events[i] = ev(cus.ID)
	}
	if _, err := f.eng.Meter.TrackBatch(ctx, f.live, events, nil, nil); err != nil {
		t.Fatal(err)
	}
	if ds, _, err := f.eng.Webhooks.Deliveries(ctx, f.live, ep.Endpoint.ID, engine.Page{}); err != nil || len(ds) != 2 {
		t.Errorf("%d usage.threshold deliveries queued (%v), want 2 (80 %% and 100 %%)", len(ds), err)
	}
	now := f.clock.Now()
	days, err := f.eng.Customers.UsageDays(ctx, f.live, now, now)
	if err != nil || len(days) != 1 || days[0].Count != 10 || days[0].Denied != 2 {
		t.Errorf("usage days %+v, %v; want 10 counted and 2 denied", days, err)
	}
}

// A stateful policy sees, in each event, the state the event before it
// kept: counter.wasm counts its calls in its state and answers the count
// as the usage it reports.
func TestTrackBatchPolicyState(t *testing.T) {
	ctx := context.Background()
	wasm, err := os.ReadFile("../testdata/plugins/counter.wasm")
	if err != nil {
		t.Fatal(err)
	}
	rt, err := plugins.New(ctx, &plugins.Options{Deadline: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	st, err := storage.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f := newBatchFixture(t, st, engine.Config{PolicyLoader: rt.Loader()})
	a := f.customer(t, "a@example.com")
	if _, err := f.eng.Plugins.Upload(ctx, f.live, wasm, "", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := f.eng.Meter.Track(ctx, f.live, engine.TrackInput{CustomerID: a}, nil); err != nil {
		t.Fatal(err)
	}
	rs, err := f.eng.Meter.TrackBatch(ctx, f.live, []engine.BatchEvent{ev(a), ev(a), ev(a)}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if outcomes(rs) != "allowed 2, allowed 3, allowed 4" {
		t.Errorf("results %s", outcomes(rs))
	}
	state, err := st.PolicyState(ctx, f.live, a, "requests")
	if err != nil || len(state) != 8 || binary.LittleEndian.Uint64(state) != 4 {
		t.Errorf("stored state %x, %v; want 4 calls", state, err)
	}
	if r, err := f.eng.Meter.Track(ctx, f.live, engine.TrackInput{CustomerID: a}, nil); err != nil || r.Usage.Count != 5 {
		t.Errorf("track after the batch: %+v, %v", r, err)
	}
}

// brokenStore fails to read one customer, as a store that cannot be
// reached fails: not "no such customer".
type brokenStore struct {
	engine.Store
	broken string
}

var errUnreachable = errors.New("store unreachable")

func (s *brokenStore) CustomerShared(ctx context.Context, t engine.Tenant, id string) (*engine.Customer, error) {
	if id == s.broken {
		return nil, errUnreachable
	}
	return s.Store.CustomerShared(ctx, t, id)
}

// A customer the store cannot read fails the whole batch, which counts
// nothing: it is not that event's 404, nor a result of status 500.
func TestTrackBatchStoreErrorFailsTheBatch(t *testing.T) {
	st, err := storage.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	bs := &brokenStore{Store: st, broken: "cus_broken"}
	f := newBatchFixture(t, bs, engine.Config{})
	f.tiers(t, engine.TierInput{Name: "free", Limits: map[string]int64{"requests": 10}})
	a := f.customer(t, "a@example.com")
	rs, err := f.eng.Meter.TrackBatch(context.Background(), f.live, []engine.BatchEvent{ev(a), ev("cus_broken"), ev(a)}, nil, nil)
	if !errors.Is(err, errUnreachable) || rs != nil {
		t.Fatalf("TrackBatch = %s, %v; want the store's error", outcomes(rs), err)
	}
	if got := f.count(t, a, "requests"); got != 0 {
		t.Errorf("stored %d after a failed batch, want 0", got)
	}
}
