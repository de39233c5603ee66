package engine_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/plugins"
	"github.com/dream-api/dream-api/storage"
)

// fixture is an engine on a real Pebble store in a temporary directory, with
// one platform.
type fixture struct {
	store *storage.Store
	eng   *engine.Engine
	live  engine.Tenant
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	st, err := storage.Open(tb.TempDir(), nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	eng := engine.New(engine.Config{Store: st})
	np, err := eng.Platforms.Create(context.Background(), engine.CreatePlatformInput{Name: "Acme"}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return &fixture{store: st, eng: eng, live: engine.Tenant{PlatformID: np.Platform.ID, Mode: engine.Live}}
}

func (f *fixture) tiers(tb testing.TB, limits map[string]int64) {
	tb.Helper()
	in := engine.TierConfigInput{Tiers: []engine.TierInput{{Name: "free", Limits: limits}, {Name: "pro"}}}
	if _, err := f.eng.Tiers.Put(context.Background(), f.live, in, nil); err != nil {
		tb.Fatal(err)
	}
}

func (f *fixture) customer(tb testing.TB, email string) *engine.Customer {
	tb.Helper()
	c, err := f.eng.Customers.Create(context.Background(), f.live, "pk", engine.CreateCustomerInput{Email: email}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func TestTrackExactUnderConcurrency(t *testing.T) {
	f := newFixture(t)
	f.tiers(t, map[string]int64{"requests": 100})
	c := f.customer(t, "race@example.com")
	ctx := context.Background()

	var allowed, denied atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				r, err := f.eng.Meter.Track(ctx, f.live, engine.TrackInput{CustomerID: c.ID}, nil)
				if err != nil {
					t.Error(err)
					return
				}
				if r.Allowed {
					allowed.Add(1)
				} else {
					denied.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if got := allowed.Load(); got != 100 {
		t.Errorf("allowed %d tracks on a limit of 100", got)
	}
	if got := denied.Load(); got != 300 {
		t.Errorf("denied %d, want 300", got)
	}
	u, err := f.eng.Meter.Usage(ctx, f.live, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := u.Usage[0].Count; got != 100 {
		t.Errorf("stored count %d, want 100", got)
	}
}

func TestTrackIdempotentReplay(t *testing.T) {
	f := newFixture(t)
	f.tiers(t, map[string]int64{"requests": 100})
	c := f.customer(t, "idem@example.com")
	ctx := context.Background()
	render := func(res any) (int, []byte) {
		return 200, []byte(fmt.Sprint(res.(*engine.TrackResult).Usage.Count))
	}
	idem := &engine.Idempotency{Key: "k1", RequestHash: [32]byte{1}, Render: render}

	var wg sync.WaitGroup
	bodies := make([]string, 20)
	for i := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := f.eng.Meter.Track(ctx, f.live, engine.TrackInput{CustomerID: c.ID}, idem)
			if rec, ok := engine.AsReplayed(err); ok {
				bodies[i] = string(rec.Body)
			} else if err != nil {
				t.Error(err)
			} else {
				bodies[i] = fmt.Sprint(r.Usage.Count)
			}
		}()
	}
	wg.Wait()
	for i, b := range bodies {
		if b != "1" {
			t.Errorf("call %d answered %q, want the first answer %q", i, b, "1")
		}
	}
	other := &engine.Idempotency{Key: "k1", RequestHash: [32]byte{2}, Render: render}
	if _, err := f.eng.Meter.Track(ctx, f.live, engine.TrackInput{CustomerID: c.ID}, other); engine.ErrorCode(err) != engine.EIDEMPOTENCYCONFLICT {
		t.Errorf("same key, other body: err = %v, want idempotency_conflict", err)
	}
	u, _ := f.eng.Meter.Usage(ctx, f.live, c.ID)
	if got := u.Usage[0].Count; got != 1 {
		t.Errorf("count %d after 20 replays of one call, want 1", got)
	}
}

func TestCheckCountsNothing(t *testing.T) {
	f := newFixture(t)
	f.tiers(t, map[string]int64{"requests": 1})
	c := f.customer(t, "check@example.com")
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		r, err := f.eng.Meter.Check(ctx, f.live, engine.TrackInput{CustomerID: c.ID}, nil)
		if err != nil || !r.Allowed || r.Usage.Count != 0 {
			t.Fatalf("check %d: %+v, %v", i, r, err)
		}
	}
	if r, _ := f.eng.Meter.Track(ctx, f.live, engine.TrackInput{CustomerID: c.ID}, nil); !r.Allowed {
		t.Fatal("track after checks denied")
	}
	if r, _ := f.eng.Meter.Check(ctx, f.live, engine.TrackInput{CustomerID: c.ID}, nil); r.Allowed {
		t.Fatal("check at the limit allowed")
	}
}

// BenchmarkMeterTrack measures a durable track (Pebble Sync, group commit)
// in process, each goroutine on its own customer.
func BenchmarkMeterTrack(b *testing.B) {
	for _, goroutines := range []int{1, 32} {
		b.Run(fmt.Sprintf("goroutines=%d", goroutines), func(b *testing.B) {
			f := newFixture(b)
			f.tiers(b, map[string]int64{"requests": engine.Unlimited})
			ids := make(chan string, 1024)
			for i := 0; i < 64; i++ {
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

func TestExpireIdempotency(t *testing.T) {
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	st, err := storage.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	eng := engine.New(engine.Config{Store: st, Now: func() time.Time { return now }})
	ctx := context.Background()
	idem := func(key string) *engine.Idempotency {
		return &engine.Idempotency{Key: key, Render: func(any) (int, []byte) { return 201, []byte("x") }}
	}
	if _, err := eng.Platforms.Create(ctx, engine.CreatePlatformInput{Name: "old"}, idem("a")); err != nil {
		t.Fatal(err)
	}
	now = now.Add(engine.IdempotencyTTL + time.Minute)
	if _, err := eng.Platforms.Create(ctx, engine.CreatePlatformInput{Name: "new"}, idem("b")); err != nil {
		t.Fatal(err)
	}
	n, err := eng.ExpireIdempotency(ctx)
	if err != nil || n != 1 {
		t.Fatalf("expired %d, %v; want 1", n, err)
	}
	// The expired key makes a new platform; the fresh one still replays.
	if _, err := eng.Platforms.Create(ctx, engine.CreatePlatformInput{Name: "old"}, idem("a")); err != nil {
		t.Errorf("expired key: %v", err)
	}
	if _, err := eng.Platforms.Create(ctx, engine.CreatePlatformInput{Name: "new"}, idem("b")); err == nil {
		t.Error("fresh key was not replayed")
	} else if _, ok := engine.AsReplayed(err); !ok {
		t.Errorf("fresh key: %v, want a replay", err)
	}
}

// TestPluginStateCarriesOver: counter.wasm counts its calls in the plugin
// state. The engine skips reading state while a platform has none; once a
// call wrote one, every later call must see it, also after a restart.
func TestPluginStateCarriesOver(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	wasm, err := os.ReadFile("../testdata/plugins/counter.wasm")
	if err != nil {
		t.Fatal(err)
	}
	rt, err := plugins.New(ctx, &plugins.Options{Deadline: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	open := func() (*storage.Store, *engine.Engine) {
		st, err := storage.Open(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		return st, engine.New(engine.Config{Store: st, PolicyLoader: rt.Loader()})
	}
	st, eng := open()
	np, err := eng.Platforms.Create(ctx, engine.CreatePlatformInput{Name: "Counter"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tn := engine.Tenant{PlatformID: np.Platform.ID, Mode: engine.Live}
	cus, err := eng.Customers.Create(ctx, tn, "pk", engine.CreateCustomerInput{Email: "count@example.com"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if has, _ := st.HasPolicyState(ctx, tn.PlatformID); has {
		t.Fatal("state before any call")
	}
	if _, err := eng.Plugins.Upload(ctx, tn, wasm, "", nil); err != nil {
		t.Fatal(err)
	}
	calls := func(n int) {
		for i := 0; i < n; i++ {
			if _, err := eng.Meter.Track(ctx, tn, engine.TrackInput{CustomerID: cus.ID}, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	state := func() uint64 {
		b, err := st.PolicyState(ctx, tn, cus.ID, "requests")
		if err != nil || len(b) != 8 {
			t.Fatalf("state %v, %v", b, err)
		}
		return binary.LittleEndian.Uint64(b)
	}
	calls(3)
	if got := state(); got != 3 {
		t.Fatalf("state after 3 calls = %d", got)
	}
	st.Close()
	st, eng = open()
	defer st.Close()
	calls(2)
	if got := state(); got != 5 {
		t.Fatalf("state after a restart and 2 more calls = %d, want 5", got)
	}
}

// TestCheckWritesNothing: a check with an Idempotency-Key stores no record
// (it changes nothing, and a record per fresh key filled disks).
func TestCheckWritesNothing(t *testing.T) {
	f := newFixture(t)
	c := f.customer(t, "check@example.com")
	ctx := context.Background()
	idem := &engine.Idempotency{Key: "check-1", Render: func(any) (int, []byte) { return 200, []byte("{}") }}
	if _, err := f.eng.Meter.Check(ctx, f.live, engine.TrackInput{CustomerID: c.ID}, idem); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Idempotency(ctx, f.live, "check-1"); engine.ErrorCode(err) != engine.ENOTFOUND {
		t.Fatalf("a check stored an idempotency record (err %v)", err)
	}
}
