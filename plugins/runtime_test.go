package plugins

import (
	"context"
	"errors"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
)

func TestOptionsDefaults(t *testing.T) {
	o := (*Options)(nil).EnsureDefaults()
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	got := []any{o.Deadline, o.InitDeadline, o.MemoryPages, o.MaxModuleSize, o.MaxTableElements, o.MaxState, o.MaxMessage, o.MaxInput, o.PoolSize, o.LogLinesPerSecond}
	want := []any{10 * time.Millisecond, time.Second, uint32(256), 8 << 20, uint32(1 << 17), 1024, 512, 2 << 20, 2 * runtime.GOMAXPROCS(0), 20}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("default %d: got %v, want %v", i, got[i], want[i])
		}
	}
	if o.Logger == nil {
		t.Error("Logger: got nil")
	}
}

func TestOptionsValidateReportsEveryProblem(t *testing.T) {
	o := &Options{Deadline: -1, MaxState: 2000, MaxMessage: -3, PoolSize: -1, MaxModuleSize: -5, LogLinesPerSecond: -1}
	_, err := New(context.Background(), o)
	if err == nil {
		t.Fatal("New: got nil error")
	}
	for _, want := range []string{"Deadline", "MaxState", "MaxMessage", "PoolSize", "MaxModuleSize", "LogLinesPerSecond"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	o = &Options{MemoryPages: 1, MaxInput: 1 << 20}
	if err := o.EnsureDefaults().Validate(); err == nil || !strings.Contains(err.Error(), "does not fit") {
		t.Errorf("MaxInput over memory: got %v", err)
	}
}

// TestLoadRefuses covers every way Load refuses a module. After each, the
// same Runtime still loads and runs a good module.
func TestLoadRefuses(t *testing.T) {
	// Deadlines that the good module's calls after each case meet on a busy
	// machine; the looping modules run into them. (within is not checked:
	// no test asserts on wall-clock speed.)
	r := newRuntime(t, &Options{Deadline: time.Second, InitDeadline: 2 * time.Second})
	tests := []struct {
		name   string
		wasm   []byte
		reason string // a substring of ValidationError.Reason
		within time.Duration
	}{
		{"loop", wasmFile(t, "loop"), "self-test call: decide_v1 exceeded its deadline of 1s", 0},
		{"init_loop", wasmFile(t, "init_loop"), "instantiate: _initialize exceeded its deadline of 2s", 0},
		{"grow", wasmFile(t, "grow"), "self-test call: decide_v1 trapped: wasm error: unreachable", 0},
		{"huge_memory", wasmFile(t, "huge_memory"), "min 512 pages (32 Mi) over limit of 256 pages", 0},
		{"big_table", wasmFile(t, "big_table"), "does not compile: table 0 has 100000000 elements; the limit is 131072", 0},
		{"bad_import", wasmFile(t, "bad_import"), "import env.abort is not allowed", 0},
		{"import_global", wasmFile(t, "import_global"), "import env.seed is not allowed", 0},
		{"bad_wasi", wasmFile(t, "bad_wasi"), "import wasi_snapshot_preview1.fd_write has type (i32) -> (i32); want (i32, i32, i32, i32) -> (i32)", 0},
		{"no_decide", wasmFile(t, "no_decide"), "export decide_v1 is missing", 0},
		{"bad_signature", wasmFile(t, "bad_signature"), "export decide_v1 has type (i32, i32) -> (i32); want (i32, i32, i32, i32) -> (i32)", 0},
		{"oob", wasmFile(t, "oob"), "self-test call: decide_v1 returned 1569; want 32..1568 bytes", 0},
		{"big_message", wasmFile(t, "big_message"), "self-test call: message of 600 bytes; the limit is 512", 0},
		{"negative", wasmFile(t, "negative"), "self-test call: decide_v1 returned -1", 0},
		{"garbage bytes", []byte("this is not a wasm module at all"), "does not compile: not a WebAssembly 1.0 binary", 0},
		{"garbage after header", []byte("\x00asm\x01\x00\x00\x00garbage!"), "does not compile", 0},
		{"truncated", wasmFile(t, "builtin")[:100], "does not compile", 0},
		{"empty", nil, "module is empty", 0},
		{"wasm header only", []byte("\x00asm\x01\x00\x00\x00"), "export memory is missing; export alloc is missing; export decide_v1 is missing", 0},
	}
	ctx := context.Background()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := r.Load(ctx, tc.wasm)
			if err == nil {
				m.Close(ctx)
				t.Fatal("Load: got nil error")
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Load: got %T %v, want *ValidationError", err, err)
			}
			if !strings.Contains(ve.Reason, tc.reason) {
				t.Errorf("Reason: got %q, want it to contain %q", ve.Reason, tc.reason)
			}
			if got := engine.ErrorCode(err); got != engine.EVALIDATION {
				t.Errorf("ErrorCode: got %q, want %q", got, engine.EVALIDATION)
			}
			// The runtime still serves a good module.
			good := load(t, r, "builtin")
			if d := decide(t, good, call("requests", 0, 10, 1)); !d.Allowed {
				t.Errorf("good module after %s: got %+v", tc.name, d)
			}
		})
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for sum, c := range r.compiled {
		t.Errorf("compiled module %x still held (%d refs) after every Module closed", sum[:4], c.refs)
	}
}

func TestLoadTooBig(t *testing.T) {
	r := newRuntime(t, &Options{MaxModuleSize: 100})
	_, err := r.Load(context.Background(), wasmFile(t, "builtin"))
	var ve *ValidationError
	if !errors.As(err, &ve) || !strings.Contains(ve.Reason, "bytes; the limit is 100") {
		t.Fatalf("Load: got %v", err)
	}
}

func TestSHA256AndSize(t *testing.T) {
	r := newRuntime(t, nil)
	m := load(t, r, "allow_all")
	b := wasmFile(t, "allow_all")
	if m.Size() != len(b) {
		t.Errorf("Size: got %d, want %d", m.Size(), len(b))
	}
	if len(m.SHA256()) != 64 {
		t.Errorf("SHA256: got %q", m.SHA256())
	}
}

// TestCompiledOncePerHash checks that loading the same bytes twice shares
// the compiled code, released with the last Module.
func TestCompiledOncePerHash(t *testing.T) {
	r := newRuntime(t, nil)
	ctx := context.Background()
	a, err := r.Load(ctx, wasmFile(t, "builtin"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.Load(ctx, wasmFile(t, "builtin"))
	if err != nil {
		t.Fatal(err)
	}
	if a.c != b.c || a.c.refs != 2 {
		t.Fatalf("compiled: shared %v, refs %d; want shared, 2", a.c == b.c, a.c.refs)
	}
	a.Close(ctx)
	if d := decide(t, b, call("requests", 0, 1, 1)); !d.Allowed {
		t.Errorf("after closing the other Module: got %+v", d)
	}
	b.Close(ctx)
	if n := len(r.compiled); n != 0 {
		t.Errorf("compiled modules after closing both: got %d, want 0", n)
	}
}

func TestCacheDir(t *testing.T) {
	dir := t.TempDir()
	r := newRuntime(t, &Options{CacheDir: dir})
	load(t, r, "weighted")
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		t.Fatalf("cache dir: %d entries, %v; want some", len(entries), err)
	}
}

func TestRuntimeClose(t *testing.T) {
	ctx := context.Background()
	r := newRuntime(t, nil)
	m, err := r.Load(ctx, wasmFile(t, "allow_all"))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var out engine.Decision
	if err := m.Decide(ctx, call("requests", 0, 1, 1), &out); !errors.Is(err, ErrClosed) {
		t.Errorf("Decide after Runtime.Close: got %v, want ErrClosed", err)
	}
	if _, err := r.Load(ctx, wasmFile(t, "allow_all")); !errors.Is(err, ErrClosed) {
		t.Errorf("Load after Close: got %v, want ErrClosed", err)
	}
	if err := m.Close(ctx); err != nil {
		t.Errorf("Module.Close after Runtime.Close: %v", err)
	}
	if err := r.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestLoader(t *testing.T) {
	l := newRuntime(t, nil).Loader()
	ctx := context.Background()
	pm, err := l.Load(ctx, "plt_test", wasmFile(t, "no_decide"))
	if pm != nil || engine.ErrorCode(err) != engine.EVALIDATION {
		t.Fatalf("Load(no_decide): got %v, %v", pm, err)
	}
	pm, err = l.Load(ctx, "plt_test", wasmFile(t, "builtin"))
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close(ctx)
	var out engine.Decision
	if err := pm.Decide(ctx, call("requests", 0, 1, 1), &out); err != nil || !out.Allowed {
		t.Errorf("Decide: got %+v, %v", out, err)
	}
}

// TestTableGrowCapped: table.grow on a table without a maximum fails at
// Options.MaxTableElements instead of allocating gigabytes.
func TestTableGrowCapped(t *testing.T) {
	r := newRuntime(t, nil)
	m := load(t, r, "table_grow")
	// Had the grow succeeded, decide_v1 would have returned -1.
	if d := decide(t, m, call("requests", 0, 10, 1)); !d.Allowed {
		t.Errorf("got %+v", d)
	}
}
