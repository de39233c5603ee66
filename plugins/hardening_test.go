package plugins

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/dream-api/dream-api/engine"
)

// manyFunctions is a valid module of n empty functions () -> (): the compile
// bomb of issue 10 at n = 2 000 000 (8 MiB, a GiB and tens of seconds to
// compile without the limits).
func manyFunctions(n int) []byte {
	funcs := make([]byte, 0, n)
	code := make([]byte, 0, 3*n)
	for range n {
		funcs = append(funcs, 0)        // type 0
		code = append(code, 2, 0, 0x0b) // size 2: no locals, end
	}
	return module(typeVoid,
		section(3, leb(uint64(n)), funcs),
		section(10, leb(uint64(n)), code))
}

// TestPrepareDeclarationLimits: each declaration limit refuses a module
// over it, naming the limit, before anything is decoded.
func TestPrepareDeclarationLimits(t *testing.T) {
	small := declLimits{tableElements: 10, functions: 2, functionSize: 5, codeSize: 30,
		types: 2, imports: 2, exports: 2, globals: 2, dataSegments: 2, elemSegments: 2}
	body := func(n int) []byte { // a body of n bytes: no locals, nops, end
		b := append(leb(uint64(n)), 0)
		for range n - 2 {
			b = append(b, 0x01)
		}
		return append(b, 0x0b)
	}
	pad := make([]byte, 16) // the count is read first; the elements need not parse
	tests := []struct {
		name string
		wasm []byte
		want string
	}{
		{"functions", module(typeVoid, section(3, leb(3), []byte{0, 0, 0})), "module declares 3 functions; the limit is 2"},
		{"bodies", module(section(10, leb(3), body(2), body(2), body(2))), "module declares 3 function bodies; the limit is 2"},
		{"function size", module(section(10, leb(2), body(2), body(6))), "function 1 is 6 bytes; the limit is 5"},
		{"code size", module(section(10, leb(1), make([]byte, 40))), "the code section is 41 bytes; the limit is 30"},
		{"types", module(section(1, leb(3), pad)), "module declares 3 types; the limit is 2"},
		{"imports", module(section(2, leb(3), pad)), "module declares 3 imports; the limit is 2"},
		{"exports", module(section(7, leb(3), pad)), "module declares 3 exports; the limit is 2"},
		{"globals", module(section(6, leb(3), pad)), "module declares 3 globals; the limit is 2"},
		{"data", module(section(11, leb(3), pad)), "module declares 3 data segments; the limit is 2"},
		{"elements", module(section(9, leb(3), pad)), "module declares 3 element segments; the limit is 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := prepare(tc.wasm, small)
			if !errors.Is(err, errLimit) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("prepare: got %v, want %q", err, tc.want)
			}
		})
	}
}

// TestExamplesWithinLimitsWithMargin: every example, the Go PDK ones
// included, declares at most half of each default limit.
func TestExamplesWithinLimitsWithMargin(t *testing.T) {
	lim := tableLimits(DefaultMaxTableElements)
	for _, name := range []string{"go/weekend", "go/bucket", "go/overrides", "go/hostile", "as/weighted_as", "weighted", "log", "builtin"} {
		sc, err := prepare(wasmFile(t, name), lim)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		d := sc.declared
		for _, c := range []struct {
			what       string
			got, limit int
		}{
			{"functions", d.functions, lim.functions}, {"function size", d.maxFunctionSize, lim.functionSize},
			{"code size", d.codeSize, lim.codeSize}, {"types", d.types, lim.types},
			{"imports", d.imports, lim.imports}, {"exports", d.exports, lim.exports},
			{"globals", d.globals, lim.globals}, {"data segments", d.dataSegments, lim.dataSegments},
			{"element segments", d.elemSegments, lim.elemSegments},
		} {
			if c.got > c.limit/2 {
				t.Errorf("%s declares %d %s: over half the limit %d", name, c.got, c.what, c.limit)
			}
		}
	}
}

// TestLoadRefusesCompileBomb: the 8 MiB module of two million functions is
// refused by Load with a ValidationError naming the limit, without
// compiling (the hook fails the test if wazero is asked to).
func TestLoadRefusesCompileBomb(t *testing.T) {
	r := newRuntime(t, nil)
	r.compileModule = func(context.Context, []byte) (wazero.CompiledModule, error) {
		t.Error("the bomb reached the compiler")
		return nil, errors.New("no")
	}
	bomb := manyFunctions(2_000_000)
	if len(bomb) > DefaultMaxModuleSize {
		t.Fatalf("the bomb is %d bytes, over the module size limit", len(bomb))
	}
	_, err := r.Load(context.Background(), bomb)
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Reason != "module declares 2000000 functions; the limit is 10000" {
		t.Fatalf("Load: got %v", err)
	}
	if code := engine.ErrorCode(err); code != engine.EVALIDATION {
		t.Errorf("code %q", code)
	}
}

// TestCompileDeadline: a compile that overruns CompileDeadline makes Load
// refuse the module at the deadline while the compile runs on; until it
// ends, it keeps its owner's turn and its load slot.
func TestCompileDeadline(t *testing.T) {
	// The first compile is held until unblock, so it overruns any deadline;
	// the compile after it is honest and must meet it on a busy machine.
	r := newRuntime(t, &Options{CompileDeadline: time.Second, MaxLoads: 1, LoadWait: time.Millisecond})
	unblock, ended := make(chan struct{}), make(chan struct{})
	real := r.compileModule
	var calls atomic.Int32
	r.compileModule = func(ctx context.Context, b []byte) (wazero.CompiledModule, error) {
		if calls.Add(1) > 1 {
			return real(ctx, b)
		}
		<-unblock // the first compile overruns
		defer close(ended)
		return real(ctx, b)
	}
	ctx := context.Background()
	_, err := r.LoadFor(ctx, "plt_a", wasmFile(t, "builtin"))
	var ve *ValidationError
	if !errors.As(err, &ve) || !strings.Contains(ve.Reason, "compiling took over 1s") {
		t.Fatalf("LoadFor: got %v", err)
	}
	// The compile still runs: the owner and the one slot are taken.
	var be *BusyError
	if _, err := r.LoadFor(ctx, "plt_a", wasmFile(t, "weighted")); !errors.As(err, &be) || !strings.Contains(be.Reason, "this platform") {
		t.Errorf("same owner: got %v", err)
	}
	_, err = r.LoadFor(ctx, "plt_b", wasmFile(t, "weighted"))
	if !errors.As(err, &be) || !strings.Contains(be.Reason, "other plugin modules") {
		t.Errorf("other owner: got %v", err)
	}
	var ee *engine.Error
	if !errors.As(err, &ee) || ee.Code != engine.ERATELIMITED || ee.RetryAfter < 1 {
		t.Errorf("as engine error: %+v", ee)
	}
	close(unblock)
	<-ended
	// The slot comes back once the abandoned compile has been closed.
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, err := r.LoadFor(ctx, "plt_a", wasmFile(t, "weighted"))
		if err == nil {
			m.Close(ctx)
			break
		}
		if !errors.As(err, &be) || time.Now().After(deadline) {
			t.Fatalf("after the compile ended: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
	if n := len(r.loads); n != 0 {
		t.Errorf("%d load slots still taken", n)
	}
}

// TestCloseWaitsForAbandonedCompile: a compile abandoned at its deadline
// still runs inside wazero; Close must not close the runtime under it
// (wazero panics), and no compile starts once Close has begun.
func TestCloseWaitsForAbandonedCompile(t *testing.T) {
	r, err := New(context.Background(), &Options{CompileDeadline: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	unblock := make(chan struct{})
	real := r.compileModule
	var closedUnder atomic.Bool
	r.compileModule = func(ctx context.Context, b []byte) (wazero.CompiledModule, error) {
		<-unblock
		cm, err := real(ctx, b)
		closedUnder.Store(r.closed.Load() && err != nil)
		return cm, err
	}
	ctx := context.Background()
	var ve *ValidationError
	if _, err := r.LoadFor(ctx, "plt_a", wasmFile(t, "builtin")); !errors.As(err, &ve) {
		t.Fatalf("LoadFor: got %v, want the compile deadline", err)
	}
	closed := make(chan error, 1)
	go func() { closed <- r.Close(ctx) }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a compile was still running", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(unblock)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if closedUnder.Load() {
		t.Fatal("the runtime was closed under the compile")
	}
	if _, err := r.LoadFor(ctx, "plt_a", wasmFile(t, "weighted")); !errors.Is(err, ErrClosed) {
		t.Fatalf("LoadFor after Close: %v, want ErrClosed", err)
	}
}
