package plugins

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/plugins/pdk"
)

// TestBuiltinMatchesEngine runs the WAT builtin policy against
// engine.BuiltinLimits on a grid of inputs.
func TestBuiltinMatchesEngine(t *testing.T) {
	r := newRuntime(t, nil)
	m := load(t, r, "builtin")
	for _, feature := range []string{"requests", "exports", strings.Repeat("f", 600)} {
		for _, limit := range []int64{-1, 0, 1, 10, 1 << 40} {
			for _, used := range []int64{0, 1, 9, 10, 11} {
				for _, qty := range []int64{1, 2, 10} {
					in := call(feature, used, limit, qty)
					got := decide(t, m, in)
					var want engine.Decision
					_ = engine.BuiltinLimits{}.Decide(context.Background(), in, &want)
					if len(want.Message) > 512 {
						want.Message = want.Message[:512]
					}
					if got.Allowed != want.Allowed || got.Cost != want.Cost || got.Limit != want.Limit ||
						got.LimitSet || got.ReplaceState || got.Message != want.Message {
						t.Errorf("%.10s used %d limit %d qty %d: got %+v, want %+v", feature, used, limit, qty, got, want)
					}
				}
			}
		}
	}
}

func TestExamples(t *testing.T) {
	r := newRuntime(t, nil)
	type step struct {
		in          *engine.PolicyInput
		allowed     bool
		cost        int64
		limit       int64 // checked when limitSet
		limitSet    bool
		message     string // a substring; "" checks nothing
		feedsState  bool   // pass the returned state to the next step
		wantStateLn int    // when ReplaceState
	}
	weighted := []step{
		{in: call("exports", 0, 15, 2), allowed: false, cost: 20, message: "Please upgrade to unlock more exports"},
		{in: call("exports", 0, 20, 2), allowed: true, cost: 20},
		{in: call("requests", 0, 15, 2), allowed: true, cost: 2},
		{in: call("exportsX", 0, 15, 2), allowed: true, cost: 2},
		{in: call("exports", 5, -1, 3), allowed: true, cost: 30},
	}
	sat := call("requests", 120, 100, 1)
	sat.Now = saturday
	overridden := call("requests", 200, 100, 1)
	overridden.Metadata = []byte(`{"limits":{"requests":500,"exports":-1}}`)
	unlimited := call("exports", 1e9, 10, 5)
	unlimited.Metadata = overridden.Metadata
	otherFeature := call("seats", 10, 10, 1)
	otherFeature.Metadata = overridden.Metadata
	badJSON := call("requests", 0, 10, 1)
	badJSON.Metadata = []byte(`{not json`)

	bucket := []step{}
	for i := range 10 { // a burst of 10 at the same instant
		bucket = append(bucket, step{in: call("requests", int64(i), 1000, 1), allowed: true, cost: 1, feedsState: true, wantStateLn: 16})
	}
	bucket = append(bucket, step{in: call("requests", 10, 1000, 1), allowed: false, message: "refills at 1 per second", feedsState: true, wantStateLn: 16})
	later := call("requests", 10, 1000, 2)
	later.Now = monday.Add(2 * time.Second)
	bucket = append(bucket,
		step{in: later, allowed: true, cost: 2, feedsState: true, wantStateLn: 16},
		step{in: later, allowed: false, feedsState: true, wantStateLn: 16},
		step{in: call("requests", 1000, 1000, 1), allowed: false, message: "Please upgrade"}, // quota first
	)

	tests := []struct {
		name   string
		module string
		steps  []step
	}{
		{"allow_all", "allow_all", []step{
			{in: call("requests", 1e6, 0, 7), allowed: true, cost: 7},
		}},
		{"weighted WAT", "weighted", weighted},
		{"weighted AssemblyScript", "as/weighted_as", weighted},
		{"counter", "counter", []step{
			{in: call("requests", 0, 1, 1), allowed: true, cost: 1, limit: 42, limitSet: true, feedsState: true, wantStateLn: 8},
			{in: call("requests", 0, 1, 1), allowed: true, cost: 1, limit: 42, limitSet: true, feedsState: true, wantStateLn: 8},
			{in: call("requests", 0, 1, 1), allowed: true, cost: 1, limit: 42, limitSet: true, feedsState: true, wantStateLn: 8},
		}},
		{"weekend", "go/weekend", []step{
			{in: call("requests", 120, 100, 1), allowed: false, limit: 100, limitSet: true, message: "Weekend bonus used up"},
			{in: sat, allowed: true, cost: 1, limit: 150, limitSet: true},
			{in: call("requests", 5, -1, 1), allowed: true, cost: 1, limit: -1, limitSet: true},
		}},
		{"bucket", "go/bucket", bucket},
		{"overrides", "go/overrides", []step{
			{in: call("requests", 200, 100, 1), allowed: false, message: "Please upgrade to unlock more requests"},
			{in: overridden, allowed: true, cost: 1, limit: 500, limitSet: true},
			{in: unlimited, allowed: true, cost: 5, limit: -1, limitSet: true},
			{in: otherFeature, allowed: false},
			{in: badJSON, allowed: true, cost: 1},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := load(t, r, tc.module)
			var state []byte
			for i, s := range tc.steps {
				in := *s.in
				if s.feedsState {
					in.State = state
				}
				got := decide(t, m, &in)
				if got.Allowed != s.allowed || (s.allowed && got.Cost != s.cost) ||
					got.LimitSet != s.limitSet || (s.limitSet && got.Limit != s.limit) ||
					(!s.limitSet && got.Limit != in.Limit) ||
					!strings.Contains(got.Message, s.message) {
					t.Errorf("step %d: got %+v, want %+v", i, got, s)
				}
				if got.ReplaceState {
					if len(got.State) != s.wantStateLn {
						t.Errorf("step %d: state %d bytes, want %d", i, len(got.State), s.wantStateLn)
					}
					state = append([]byte(nil), got.State...)
				}
			}
			if tc.name == "counter" {
				if n := binary.LittleEndian.Uint64(state); n != 3 {
					t.Errorf("counter state: got %d, want 3", n)
				}
			}
		})
	}
}

// TestRunTimeFailures drives modules that pass Load into failing at run
// time. Each failure is a *PluginError, the failing instance is closed, and
// the next call succeeds.
func TestRunTimeFailures(t *testing.T) {
	// A deadline that the next (honest) call meets on a busy machine; the
	// looping modules run into it.
	r := newRuntime(t, &Options{PoolSize: 1, Deadline: time.Second})
	tests := []struct {
		module  string
		feature string
		qty     int64
		reason  string
	}{
		{"loop_on_big", "requests", 5000, "decide_v1 exceeded its deadline of 1s"},
		{"grow_on_big", "requests", 5000, "decide_v1 trapped: wasm error: unreachable"},
		{"garbage", "requests", 2, "invalid decision 7"},
		{"garbage", "requests", 3, "negative cost -5"},
		{"garbage", "requests", 4, "decide_v1 returned 40 but wrote 32 + 0 + 0 bytes"},
		{"garbage", "requests", 5, "decide_v1 returned 16; want 32..1568 bytes"},
		{"garbage", "requests", 6, "unknown output flags 0x80"},
		{"garbage", "requests", 7, "message is not valid UTF-8"},
		{"garbage", "requests", 8, "decide_v1 trapped: wasm error: unreachable"},
		{"garbage", "requests", 9, "decide_v1 returned -7"},
		{"garbage", "requests", 10, "decide_v1 returned 1569; want 32..1568 bytes"},
		{"garbage", "requests", 11, "message of 600 bytes; the limit is 512"},
		{"garbage", "requests", 12, "state of 1100 bytes; the limit is 1024"},
		{"garbage", "requests", 13, "invalid limit -5"},
		{"garbage", "requests", 14, "decide_v1 trapped: wasm error: out of bounds memory access"},
		{"garbage", "requests", 15, "decide_v1 exited with code 3"},
		{"go/hostile", "panic", 1, "decide_v1 returned -4"},
		{"go/hostile", "loop", 1, "decide_v1 exceeded its deadline of 1s"},
		{"go/hostile", "oom", 1, "decide_v1"},
	}
	ctx := context.Background()
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/%s/%d", tc.module, tc.feature, tc.qty), func(t *testing.T) {
			m := load(t, r, tc.module)
			var out engine.Decision
			err := m.Decide(ctx, call(tc.feature, 0, 100, tc.qty), &out)
			var pe *PluginError
			if !errors.As(err, &pe) {
				t.Fatalf("Decide: got %T %v, want *PluginError", err, err)
			}
			if !strings.Contains(pe.Reason, tc.reason) {
				t.Errorf("Reason: got %q, want it to contain %q", pe.Reason, tc.reason)
			}
			if got := engine.ErrorCode(err); got != engine.EPLUGINERROR {
				t.Errorf("ErrorCode: got %q", got)
			}
			if n := m.live.Load(); n != 0 {
				t.Errorf("instances alive after the failure: got %d, want 0", n)
			}
			if d := decide(t, m, call("requests", 0, 100, 1)); !d.Allowed {
				t.Errorf("next call: got %+v", d)
			}
			if n := m.live.Load(); n != 1 {
				t.Errorf("instances alive after the next call: got %d, want 1", n)
			}
		})
	}
}

func TestDryRunLog(t *testing.T) {
	var logged lockedLog
	r := newRuntime(t, &Options{Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	m := load(t, r, "log")
	ctx := context.Background()
	var out engine.Decision
	lines, dur, err := m.DryRun(ctx, call("requests", 0, 10, 1), &out)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"hello from dream.log", "stdout line", "partial"}
	if fmt.Sprint(lines) != fmt.Sprint(want) {
		t.Errorf("log: got %q, want %q", lines, want)
	}
	if dur <= 0 || !out.Allowed {
		t.Errorf("dur %v, out %+v", dur, out)
	}
	before := logged.String() // the self-test's lines, from Load
	if strings.Count(before, "hello from dream.log") > 1 {
		t.Errorf("DryRun lines reached the Logger: %q", before)
	}

	// Outside DryRun the lines go to the Logger.
	decide(t, m, call("requests", 0, 10, 1))
	if got := logged.String(); strings.Count(got, "hello from dream.log") != strings.Count(before, "hello from dream.log")+1 {
		t.Errorf("Logger after Decide: %q", got)
	}

	// Go guests: a panic's message and stdout/stderr are captured.
	h := load(t, r, "go/hostile")
	lines, _, err = h.DryRun(ctx, call("panic", 0, 10, 1), &out)
	if err == nil || !strings.Contains(strings.Join(lines, "\n"), "pdk: handler panicked: boom") {
		t.Errorf("panic: err %v, log %q", err, lines)
	}
	lines, _, err = h.DryRun(ctx, call("print", 0, 10, 1), &out)
	if err != nil || fmt.Sprint(lines) != fmt.Sprint([]string{"to stdout", "to stderr"}) {
		t.Errorf("print: err %v, log %q", err, lines)
	}
	o := load(t, r, "go/overrides")
	in := call("requests", 0, 10, 1)
	in.Metadata = []byte("nope")
	lines, _, err = o.DryRun(ctx, in, &out)
	if err != nil || len(lines) != 1 || !strings.Contains(lines[0], "overrides: metadata is not JSON") {
		t.Errorf("overrides: err %v, log %q", err, lines)
	}
}

func TestLogRateLimit(t *testing.T) {
	var logged lockedLog
	r := newRuntime(t, &Options{Logger: slog.New(slog.NewTextHandler(&logged, nil)), LogLinesPerSecond: 2})
	start := time.Now()
	m := load(t, r, "log") // the self-test logs 3 lines
	for range 20 {
		decide(t, m, call("requests", 0, 10, 1))
	}
	// 3 lines a call, 2 a second reach the Logger.
	seconds := int(time.Since(start)/time.Second) + 2
	if n := strings.Count(logged.String(), `msg="plugin log"`); n < 2 || n > 2*seconds {
		t.Errorf("lines logged: got %d, want 2..%d", n, 2*seconds)
	}
}

func TestInputSizes(t *testing.T) {
	r := newRuntime(t, &Options{MaxInput: 64 << 10, Deadline: time.Second}) // the Go guest parses 20 KiB of JSON: ms
	m := load(t, r, "go/overrides")
	// Metadata over the initial 8 KiB buffer: a fresh instance with a
	// bigger buffer takes the call, and stays.
	in := call("requests", 200, 100, 1)
	in.Metadata = []byte(`{"pad":"` + strings.Repeat("x", 20<<10) + `","limits":{"requests":500}}`)
	d := decide(t, m, in)
	if !d.Allowed || d.Limit != 500 {
		t.Fatalf("big metadata: got %+v", d)
	}
	if m.live.Load() != 1 {
		t.Errorf("instances: got %d, want 1", m.live.Load())
	}
	d = decide(t, m, in)
	if !d.Allowed || d.Limit != 500 {
		t.Fatalf("big metadata again: got %+v", d)
	}
	// Over MaxInput: refused before the plugin runs.
	in.Metadata = make([]byte, 64<<10)
	var out engine.Decision
	if err := m.Decide(context.Background(), in, &out); !errors.Is(err, ErrInputTooLarge) {
		t.Errorf("over MaxInput: got %v", err)
	}
}

func TestContext(t *testing.T) {
	r := newRuntime(t, nil)
	m := load(t, r, "loop_on_big")
	var out engine.Decision

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := m.Decide(ctx, call("requests", 0, 1, 1), &out); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: got %v", err)
	}

	// A caller's deadline shorter than Options.Deadline cuts the call short:
	// the context's error, not a plugin error (which the call would end in
	// at Options.Deadline).
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Millisecond)
	defer cancel()
	err := m.Decide(ctx, call("requests", 0, 1, 5000), &out)
	var pe *PluginError
	if !errors.Is(err, context.DeadlineExceeded) || errors.As(err, &pe) {
		t.Errorf("short deadline: got %v", err)
	}
	if d := decide(t, m, call("requests", 0, 1, 1)); !d.Allowed {
		t.Errorf("after: got %+v", d)
	}
}

// TestConcurrency hammers one module from many goroutines, some of whose
// calls overrun, and checks that the pool bound holds.
func TestConcurrency(t *testing.T) {
	const poolSize = 3
	r := newRuntime(t, &Options{PoolSize: poolSize, Deadline: time.Second}) // honest calls meet it on a busy machine
	m := load(t, r, "loop_on_big")
	c := load(t, r, "counter")
	var (
		wg         sync.WaitGroup
		ok, failed atomic.Int64
	)
	for g := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out engine.Decision
			for i := range 60 {
				qty := int64(1)
				if g%8 == 0 && i%20 == 0 {
					qty = 5000 // overruns
				}
				err := m.Decide(context.Background(), call("requests", 0, 10, qty), &out)
				var pe *PluginError
				switch {
				case err == nil && out.Allowed && out.Cost == qty:
					ok.Add(1)
				case qty > 1000 && errors.As(err, &pe):
					failed.Add(1)
				default:
					t.Errorf("qty %d: got %+v, %v", qty, out, err)
				}
				if err := c.Decide(context.Background(), call("requests", 0, 10, 1), &out); err != nil || out.Limit != 42 {
					t.Errorf("counter: got %+v, %v", out, err)
				}
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 24*60-9 || failed.Load() != 9 {
		t.Errorf("ok %d, failed %d; want %d, 9", ok.Load(), failed.Load(), 24*60-9)
	}
	for _, mod := range []*Module{m, c} {
		if p := mod.peak.Load(); p > poolSize || p < 1 {
			t.Errorf("peak instances: got %d, want 1..%d", p, poolSize)
		}
		if n := len(mod.slots); n > poolSize || int(mod.live.Load()) != n {
			t.Errorf("slots %d, live %d", n, mod.live.Load())
		}
	}
}

// TestCloseWaitsForCalls closes a module while a call runs: the call
// finishes, later calls get ErrClosed, and the compiled code is released
// after the call.
func TestCloseWaitsForCalls(t *testing.T) {
	// The call must still run while Close and the checks after it do.
	r := newRuntime(t, &Options{Deadline: time.Second})
	ctx := context.Background()
	m, err := r.Load(ctx, wasmFile(t, "loop_on_big"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		var out engine.Decision
		done <- m.Decide(ctx, call("requests", 0, 1, 5000), &out) // runs for 1s
	}()
	for m.refs.Load() < 2 {
		time.Sleep(10 * time.Microsecond)
	}
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var out engine.Decision
	if err := m.Decide(ctx, call("requests", 0, 1, 1), &out); !errors.Is(err, ErrClosed) {
		t.Errorf("Decide after Close: got %v", err)
	}
	r.mu.Lock()
	held := len(r.compiled)
	r.mu.Unlock()
	if held != 1 {
		t.Errorf("compiled modules during the call: got %d, want 1", held)
	}
	var pe *PluginError
	if err := <-done; !errors.As(err, &pe) {
		t.Errorf("in-flight call: got %v", err)
	}
	r.mu.Lock()
	held = len(r.compiled)
	r.mu.Unlock()
	if held != 0 || m.live.Load() != 0 {
		t.Errorf("after the call: compiled %d, instances %d; want 0, 0", held, m.live.Load())
	}
	if err := m.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestDecideAllocs holds the host side of Decide to zero allocations: what
// remains is wazero's own per-call watcher for the deadline
// (CloseModuleOnCanceledOrTimeout: a channel, a goroutine, a closure).
func TestDecideAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	const wazeroPerCall = 3
	r := newRuntime(t, nil)
	for _, name := range []string{"builtin", "counter"} {
		m := load(t, r, name)
		ctx := context.Background()
		allow := call("requests", 5, 10, 1)
		allow.State = make([]byte, 8)
		deny := call("requests", 50, 10, 1)
		var out engine.Decision
		const calls = 1000
		// The best of a few rounds: on a busy machine the Go runtime
		// allocates some goroutine structs of its own.
		best := 1e9
		for range 5 {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for i := range calls {
				in := allow
				if i%2 == 1 {
					in = deny
				}
				if err := m.Decide(ctx, in, &out); err != nil {
					t.Fatal(err)
				}
			}
			runtime.ReadMemStats(&after)
			best = min(best, float64(after.Mallocs-before.Mallocs)/calls)
		}
		if best > wazeroPerCall+0.2 {
			t.Errorf("%s: %.2f allocs per call, want at most %d (wazero's)", name, best, wazeroPerCall)
		}
	}
}

// TestMemoryCap shows the cap at work: the same call that fails under the
// default 256 pages succeeds with 600.
func TestMemoryCap(t *testing.T) {
	var pe *PluginError
	var out engine.Decision
	m := load(t, newRuntime(t, nil), "grow_on_big") // the trap is quick
	if err := m.Decide(context.Background(), call("requests", 0, 10, 5000), &out); !errors.As(err, &pe) {
		t.Errorf("256 pages: got %v, want a plugin error", err)
	}
	m = load(t, newRuntime(t, &Options{MemoryPages: 600, Deadline: time.Second}), "grow_on_big")
	if d := decide(t, m, call("requests", 0, 10, 5000)); !d.Allowed {
		t.Errorf("600 pages: got %+v", d)
	}
}

// TestLayoutMatchesPDK encodes with the host and decodes with the PDK.
func TestLayoutMatchesPDK(t *testing.T) {
	in := call("exports", 7, 100, 3)
	in.CheckOnly = true
	in.Mode = engine.Test
	in.Metadata = []byte(`{"a":1}`)
	in.State = []byte{1, 2, 3}
	buf := make([]byte, 1024)
	n := encodeInput(buf, in)
	var got pdk.Input
	if err := pdk.DecodeInput(buf[:n], &got); err != nil {
		t.Fatal(err)
	}
	if !got.Now.Equal(in.Now) || got.Usage != 7 || got.Limit != 100 || got.Quantity != 3 ||
		!got.PeriodStart.Equal(in.PeriodStart) || !got.PeriodEnd.Equal(in.PeriodEnd) ||
		got.Mode != pdk.Test || !got.CheckOnly || got.CustomerID != "cus_123" || got.Plan != "free" ||
		got.Feature != "exports" || string(got.Metadata) != `{"a":1}` || string(got.State) != "\x01\x02\x03" {
		t.Errorf("pdk sees %+v", got)
	}
	if n != pdk.HeaderSize+len("cus_123freeexports")+7+3 {
		t.Errorf("length %d", n)
	}
}
