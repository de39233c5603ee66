package engine_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/plugins"
	"github.com/dream-api/dream-api/storage"
)

// fakeClock is an engine clock that tests move.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// countingLoader counts the modules loaded.
type countingLoader struct {
	engine.PolicyLoader
	loads atomic.Int32
}

func (l *countingLoader) Load(ctx context.Context, platformID string, wasm []byte) (engine.PolicyModule, error) {
	l.loads.Add(1)
	return l.PolicyLoader.Load(ctx, platformID, wasm)
}

// lineCounter is a slog handler that counts records by message.
type lineCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (h *lineCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *lineCounter) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *lineCounter) WithGroup(string) slog.Handler            { return h }
func (h *lineCounter) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n[r.Message]++
	return nil
}

func (h *lineCounter) count(prefix string) (n int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for msg, c := range h.n {
		if strings.HasPrefix(msg, prefix) {
			n += c
		}
	}
	return n
}

func (h *lineCounter) total() int { return h.count("") }

// pluginFixture is an engine with a plugin loader, a fake clock and a
// counted log, and one live platform.
type pluginFixture struct {
	store  *storage.Store
	eng    *engine.Engine
	clock  *fakeClock
	loader *countingLoader
	log    *lineCounter
	live   engine.Tenant
}

func newPluginFixture(tb testing.TB, loader engine.PolicyLoader) *pluginFixture {
	tb.Helper()
	ctx := context.Background()
	if loader == nil {
		rt, err := plugins.New(ctx, &plugins.Options{Deadline: time.Second, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { rt.Close(ctx) })
		loader = rt.Loader()
	}
	st, err := storage.Open(tb.TempDir(), nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	f := &pluginFixture{store: st, clock: &fakeClock{now: time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)},
		loader: &countingLoader{PolicyLoader: loader}, log: &lineCounter{n: map[string]int{}}}
	f.eng = engine.New(engine.Config{Store: st, PolicyLoader: f.loader, Now: f.clock.Now, Logger: slog.New(f.log)})
	np, err := f.eng.Platforms.Create(ctx, engine.CreatePlatformInput{Name: "Plugged"}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	f.live = engine.Tenant{PlatformID: np.Platform.ID, Mode: engine.Live}
	return f
}

func readWasm(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile("../testdata/plugins/" + name + ".wasm")
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func wantErr(tb testing.TB, what string, err error, code string) *engine.Error {
	tb.Helper()
	var e *engine.Error
	if !errors.As(err, &e) || e.Code != code {
		tb.Fatalf("%s: got %v, want code %s", what, err, code)
	}
	return e
}

// TestPluginManagementIsRateLimited: uploads and rollbacks share a bucket of
// 10 a minute per platform, dry-runs one of 60; over it, ERATELIMITED with
// RetryAfter, and the engine's clock refills them. Another platform is not
// affected.
func TestPluginManagementIsRateLimited(t *testing.T) {
	ctx := context.Background()
	f := newPluginFixture(t, nil)
	wasm := readWasm(t, "builtin")
	var first string
	for i := range 10 {
		st, err := f.eng.Plugins.Upload(ctx, f.live, wasm, "", nil)
		if err != nil {
			t.Fatalf("upload %d: %v", i, err)
		}
		if i == 0 {
			first = st.Version
		}
		f.clock.Add(time.Millisecond)
	}
	_, err := f.eng.Plugins.Upload(ctx, f.live, wasm, "", nil)
	if e := wantErr(t, "11th upload", err, engine.ERATELIMITED); e.RetryAfter < 1 || e.RetryAfter > 6 {
		t.Errorf("RetryAfter %d, want 1..6 (a token every 6 s)", e.RetryAfter)
	}
	_, err = f.eng.Plugins.Rollback(ctx, f.live, first, nil)
	wantErr(t, "rollback in the same bucket", err, engine.ERATELIMITED)

	// Dry-runs have their own bucket.
	for i := range 60 {
		if _, err := f.eng.Plugins.DryRun(ctx, f.live, "", engine.DryRunInput{}); err != nil {
			t.Fatalf("dry-run %d: %v", i, err)
		}
	}
	_, err = f.eng.Plugins.DryRun(ctx, f.live, "", engine.DryRunInput{})
	wantErr(t, "61st dry-run", err, engine.ERATELIMITED)

	// Another platform has its own buckets.
	np, err := f.eng.Platforms.Create(ctx, engine.CreatePlatformInput{Name: "Other"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.eng.Plugins.Upload(ctx, engine.Tenant{PlatformID: np.Platform.ID, Mode: engine.Live}, wasm, "", nil); err != nil {
		t.Errorf("other platform: %v", err)
	}

	// Six seconds later one upload token is back, not two.
	f.clock.Add(6 * time.Second)
	if _, err := f.eng.Plugins.Rollback(ctx, f.live, first, nil); err != nil {
		t.Errorf("rollback after 6 s: %v", err)
	}
	_, err = f.eng.Plugins.Upload(ctx, f.live, wasm, "", nil)
	wantErr(t, "upload right after", err, engine.ERATELIMITED)
}

// TestPluginVersionsAreRetained: an upload deletes the versions beyond the
// last 10, records and module bytes, in its own batch; with a byte budget,
// the oldest go until the rest fit; a module over the budget on its own is
// refused with EQUOTAEXCEEDED and changes nothing.
func TestPluginVersionsAreRetained(t *testing.T) {
	ctx := context.Background()
	f := newPluginFixture(t, nil)
	wasm := readWasm(t, "builtin")
	var versions []string
	upload := func() {
		t.Helper()
		st, err := f.eng.Plugins.Upload(ctx, f.live, wasm, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		versions = append(versions, st.Version)
		f.clock.Add(10 * time.Second) // a token back, and a later version
	}
	history := func() []string {
		t.Helper()
		ov, err := f.eng.Plugins.Get(ctx, f.live)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, v := range ov.History {
			out = append(out, v.Version)
		}
		return out
	}
	for range 12 {
		upload()
	}
	if got := history(); strings.Join(got, ",") != strings.Join(versions[2:], ",") {
		t.Fatalf("history after 12 uploads:\n got %v\nwant %v", got, versions[2:])
	}
	for _, v := range versions[:2] {
		if _, err := f.store.PluginModule(ctx, f.live, v); engine.ErrorCode(err) != engine.ENOTFOUND {
			t.Errorf("module of %s: %v, want not found", v, err)
		}
	}
	_, err := f.eng.Plugins.Rollback(ctx, f.live, versions[0], nil)
	wantErr(t, "rollback to a deleted version", err, engine.ENOTFOUND)

	// A budget of 2.5 modules keeps two.
	f.eng.Plugins.SetLimits(engine.PluginLimits{StorageBytes: int64(len(wasm)) * 5 / 2})
	upload()
	if got := history(); len(got) != 2 || got[1] != versions[len(versions)-1] || got[0] != versions[len(versions)-2] {
		t.Fatalf("history with a budget of 2.5 modules: %v", got)
	}

	// Over the budget on its own: refused, nothing changes.
	f.eng.Plugins.SetLimits(engine.PluginLimits{StorageBytes: int64(len(wasm)) - 1})
	before := history()
	_, err = f.eng.Plugins.Upload(ctx, f.live, wasm, "", nil)
	if e := wantErr(t, "upload over the budget", err, engine.EQUOTAEXCEEDED); !strings.Contains(e.Message, "Plugin storage quota") {
		t.Errorf("message %q does not name the quota", e.Message)
	}
	if got := history(); strings.Join(got, ",") != strings.Join(before, ",") {
		t.Errorf("history changed: %v, was %v", got, before)
	}
	ov, _ := f.eng.Plugins.Get(ctx, f.live)
	if ov.Active == nil || ov.Active.Version != versions[len(versions)-1] {
		t.Errorf("active %+v, want %s", ov.Active, versions[len(versions)-1])
	}
}

// TestDryRunOfActiveReusesItsModule: dry-runs of the active version load
// nothing (no compile, no _initialize); a dry-run of another version does.
func TestDryRunOfActiveReusesItsModule(t *testing.T) {
	ctx := context.Background()
	f := newPluginFixture(t, nil)
	old, err := f.eng.Plugins.Upload(ctx, f.live, readWasm(t, "builtin"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Add(time.Second)
	if _, err := f.eng.Plugins.Upload(ctx, f.live, readWasm(t, "weighted"), "", nil); err != nil {
		t.Fatal(err)
	}
	loads := f.loader.loads.Load()
	for range 5 {
		res, err := f.eng.Plugins.DryRun(ctx, f.live, "", engine.DryRunInput{Feature: "exports", Limit: ptr(int64(100))})
		if err != nil || res.Cost != 10 {
			t.Fatalf("dry-run of the active (weighted): %+v, %v", res, err)
		}
	}
	if got := f.loader.loads.Load(); got != loads {
		t.Errorf("5 dry-runs of the active version loaded %d modules", got-loads)
	}
	res, err := f.eng.Plugins.DryRun(ctx, f.live, old.Version, engine.DryRunInput{Feature: "exports", Limit: ptr(int64(100))})
	if err != nil || res.Cost != 1 {
		t.Fatalf("dry-run of the old version (builtin): %+v, %v", res, err)
	}
	if got := f.loader.loads.Load(); got != loads+1 {
		t.Errorf("a dry-run of another version loaded %d modules, want 1", got-loads)
	}
}

func ptr[T any](v T) *T { return &v }

// failingLoader loads modules that fail every call while fail is set.
type failingLoader struct{ fail atomic.Bool }

func (l *failingLoader) Load(context.Context, string, []byte) (engine.PolicyModule, error) {
	return failingModule{l}, nil
}

type failingModule struct{ l *failingLoader }

func (m failingModule) Decide(_ context.Context, in *engine.PolicyInput, out *engine.Decision) error {
	if m.l.fail.Load() {
		return errors.New("plugin trapped")
	}
	engine.BuiltinLimits{}.Decide(context.Background(), in, out)
	return nil
}

func (m failingModule) DryRun(ctx context.Context, in *engine.PolicyInput, out *engine.Decision) ([]string, time.Duration, error) {
	return nil, 0, m.Decide(ctx, in, out)
}

func (failingModule) Close(context.Context) error { return nil }

// TestFailingPluginLogIsBounded: 10 000 failing calls in 10 s (engine
// clock) log the breaker opening and a sample of the errors, not a line per
// call; the breaker closing again is logged once.
func TestFailingPluginLogIsBounded(t *testing.T) {
	ctx := context.Background()
	fl := &failingLoader{}
	f := newPluginFixture(t, fl)
	if _, err := f.eng.Plugins.Upload(ctx, f.live, []byte("\x00asm"), "", nil); err != nil {
		t.Fatal(err)
	}
	in := engine.TrackInput{CustomerID: "cus_nobody"}
	cus, err := f.eng.Customers.Create(ctx, f.live, "pk", engine.CreateCustomerInput{Email: "a@example.com"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	in.CustomerID = cus.ID
	fl.fail.Store(true)
	before := f.log.total()
	for i := range 10_000 {
		res, err := f.eng.Meter.Check(ctx, f.live, in, nil)
		if err != nil || res.Plugin == nil || !res.Plugin.Fallback {
			t.Fatalf("check %d: %+v, %v", i, res, err)
		}
		f.clock.Add(time.Millisecond)
	}
	lines := f.log.total() - before
	if opened := f.log.count("plugin circuit breaker open"); opened != 1 {
		t.Errorf("breaker opened %d times in the log, want 1", opened)
	}
	if errs := f.log.count("plugin error"); errs < 1 || errs > 2 {
		t.Errorf("%d plugin error lines for 10 000 failing calls in 10 s, want 1 or 2", errs)
	}
	if lines > 3 {
		t.Errorf("%d log lines for 10 000 failing calls", lines)
	}

	// After the cool-down, a call that succeeds closes the breaker: once.
	fl.fail.Store(false)
	f.clock.Add(31 * time.Second)
	for range 3 {
		if _, err := f.eng.Meter.Check(ctx, f.live, in, nil); err != nil {
			t.Fatal(err)
		}
	}
	if closed := f.log.count("plugin circuit breaker closed"); closed != 1 {
		t.Errorf("breaker closed %d times in the log, want 1", closed)
	}
}
