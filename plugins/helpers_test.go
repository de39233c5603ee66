package plugins

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
)

// cacheDir is a compilation cache shared by the package's tests, so the Go
// examples (megabytes of wasm, seconds to compile under -race) are compiled
// once. It lives in the user cache directory, like Go's build cache, so
// that it also serves the next `go test`; wazero keys it by its version and
// the module's hash.
var cacheDir string

func TestMain(m *testing.M) {
	dir, err := os.UserCacheDir()
	if err == nil {
		dir = filepath.Join(dir, "dream-api", "plugins-test-wazero")
		err = os.MkdirAll(dir, 0o755)
	}
	temp := err != nil
	if temp {
		if dir, err = os.MkdirTemp("", "plugins-cache-"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	cacheDir = dir
	code := m.Run()
	if temp {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// wasmFile reads a built example from testdata/plugins: "builtin" is
// builtin.wasm, "go/weekend" is go/weekend/weekend.wasm, "as/weighted_as"
// is as/weighted_as.wasm.
func wasmFile(tb testing.TB, name string) []byte {
	tb.Helper()
	path := filepath.Join("..", "testdata", "plugins", name+".wasm")
	if dir, base, ok := strings.Cut(name, "/"); ok && dir == "go" {
		path = filepath.Join("..", "testdata", "plugins", "go", base, base+".wasm")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// newRuntime returns a Runtime closed at the end of the test. opts may be
// nil; Deadline defaults to 1s here.
func newRuntime(tb testing.TB, opts *Options) *Runtime {
	tb.Helper()
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Deadline == 0 {
		// Wall-clock deadlines trip when the machine is starved of CPU
		// (other tests, fuzzers): tests that are not about the deadline
		// get a generous one.
		o.Deadline = time.Second
	}
	if o.CacheDir == "" {
		o.CacheDir = cacheDir
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	ctx := context.Background()
	r, err := New(ctx, &o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.Close(ctx) })
	return r
}

// load loads an example, closed at the end of the test.
func load(tb testing.TB, r *Runtime, name string) *Module {
	tb.Helper()
	ctx := context.Background()
	m, err := r.Load(ctx, wasmFile(tb, name))
	if err != nil {
		tb.Fatalf("Load(%s): %v", name, err)
	}
	tb.Cleanup(func() { m.Close(ctx) })
	return m
}

// monday and saturday are UTC noons.
var (
	monday   = time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	saturday = time.Date(2026, 3, 7, 12, 0, 0, 0, time.UTC)
)

// call is a PolicyInput with the usual fields set.
func call(feature string, used, limit, qty int64) *engine.PolicyInput {
	return &engine.PolicyInput{
		Now:         monday,
		Used:        used,
		Limit:       limit,
		Quantity:    qty,
		PeriodStart: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
		PeriodEnd:   time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC),
		Mode:        engine.Live,
		CustomerID:  "cus_123",
		Plan:        "free",
		Feature:     feature,
	}
}

func decide(tb testing.TB, m *Module, in *engine.PolicyInput) engine.Decision {
	tb.Helper()
	var out engine.Decision
	if err := m.Decide(context.Background(), in, &out); err != nil {
		tb.Fatalf("Decide(%s, used %d, limit %d, qty %d): %v", in.Feature, in.Used, in.Limit, in.Quantity, err)
	}
	return out
}

// lockedLog is a slog handler's writer that tests can read.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
