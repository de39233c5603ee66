package engine_test

// Benchmarks of the hot path in process, on a real Pebble store (Sync):
// Meter.Track at 1, 32 and 128 goroutines with the built-in limits and with
// the builtin.wat WASM policy (the same decision), and key authentication.
// `make bench` runs them; docs/performance.md reads them.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/plugins"
	"github.com/dream-api/dream-api/storage"
)

// benchFixture is an engine on a durable store with one platform whose
// tier has a huge limit, customers, and optionally a WASM policy.
type benchFixture struct {
	eng    *engine.Engine
	tenant engine.Tenant
	secret string
	ids    []string
}

// benchModules are the policies of the benchmarks by name: none (built-in
// limits), builtin.wat (stateless), counter.wat (reads and writes 8 bytes
// of state per call, as a burst guard or token bucket does) and the same
// written with the Go PDK (go/counter).
var benchModules = map[string]string{"builtin": "", "wasm": "builtin.wasm", "wasm-state": "counter.wasm",
	"wasm-go-state": "go/counter/counter.wasm"}

func newBenchFixture(b *testing.B, customers int, policy string) *benchFixture {
	b.Helper()
	ctx := context.Background()
	st, err := storage.Open(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	cfg := engine.Config{Store: st}
	module := benchModules[policy]
	if module != "" {
		// A deadline of a second: 128 goroutines on 2 cores must not
		// turn a slow schedule into a plugin error.
		rt, err := plugins.New(ctx, &plugins.Options{Deadline: time.Second})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { rt.Close(ctx) })
		cfg.PolicyLoader = rt.Loader()
	}
	eng := engine.New(cfg)
	np, err := eng.Platforms.Create(ctx, engine.CreatePlatformInput{Name: "Bench"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	f := &benchFixture{eng: eng, tenant: engine.Tenant{PlatformID: np.Platform.ID, Mode: engine.Live}, secret: np.SecretKey}
	in := engine.TierConfigInput{Tiers: []engine.TierInput{{Name: "free", Limits: map[string]int64{"requests": 1_000_000_000_000}}}}
	if _, err := eng.Tiers.Put(ctx, f.tenant, in, nil); err != nil {
		b.Fatal(err)
	}
	for i := range customers {
		c, err := eng.Customers.Create(ctx, f.tenant, np.PublishableKey, engine.CreateCustomerInput{Email: fmt.Sprintf("b%d@bench.example", i)}, nil)
		if err != nil {
			b.Fatal(err)
		}
		f.ids = append(f.ids, c.ID)
	}
	if module != "" {
		mod, err := os.ReadFile(filepath.Join("..", "testdata", "plugins", module))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := eng.Plugins.Upload(ctx, f.tenant, mod, "", nil); err != nil {
			b.Fatal(err)
		}
	}
	return f
}

// runParallel runs body from `goroutines` goroutines (1: the benchmark's
// own), each with its own index.
func runParallel(b *testing.B, goroutines int, body func(g int, pb interface{ Next() bool })) {
	if goroutines == 1 {
		body(0, &loopN{n: b.N})
		return
	}
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((goroutines + procs - 1) / procs)
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		body(int(next.Add(1)-1), pb)
	})
}

type loopN struct{ i, n int }

func (l *loopN) Next() bool { l.i++; return l.i <= l.n }

// BenchmarkMeterTrackPolicy is a durable track in process, each goroutine
// on its own customer (or all on one: hot), with the built-in limits and
// with each WASM policy of benchModules.
func BenchmarkMeterTrackPolicy(b *testing.B) {
	for _, policy := range []string{"builtin", "wasm", "wasm-state", "wasm-go-state"} {
		for _, goroutines := range []int{1, 32, 128} {
			for _, hot := range []bool{false, true} {
				if hot && goroutines == 1 {
					continue
				}
				name := fmt.Sprintf("policy=%s/goroutines=%d", policy, goroutines)
				if hot {
					name += "/hot"
				}
				b.Run(name, func(b *testing.B) {
					f := newBenchFixture(b, goroutines, policy)
					ctx := context.Background()
					b.ReportAllocs()
					b.ResetTimer()
					runParallel(b, goroutines, func(g int, pb interface{ Next() bool }) {
						id := f.ids[g%len(f.ids)]
						if hot {
							id = f.ids[0]
						}
						for pb.Next() {
							r, err := f.eng.Meter.Track(ctx, f.tenant, engine.TrackInput{CustomerID: id}, nil)
							if err != nil {
								b.Error(err)
								return
							}
							if !r.Allowed || (policy != "builtin") != (r.Plugin != nil && !r.Plugin.Fallback) {
								b.Errorf("decision %+v, plugin %+v", r, r.Plugin)
								return
							}
						}
					})
				})
			}
		}
	}
}

// BenchmarkKeysAuthenticate is the secret key check of every API call:
// SHA-256 of the key, the in-memory cache, the constant-time compare.
func BenchmarkKeysAuthenticate(b *testing.B) {
	for _, goroutines := range []int{1, 32} {
		b.Run(fmt.Sprintf("goroutines=%d", goroutines), func(b *testing.B) {
			f := newBenchFixture(b, 0, "builtin")
			ctx := context.Background()
			if _, err := f.eng.Keys.Authenticate(ctx, f.secret); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			runParallel(b, goroutines, func(_ int, pb interface{ Next() bool }) {
				for pb.Next() {
					if _, err := f.eng.Keys.Authenticate(ctx, f.secret); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
