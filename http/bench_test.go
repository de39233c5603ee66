package http

// Benchmarks of the HTTP layer of POST /api/track: the response encoding
// alone, and the whole handler (request id, auth, decode, Meter.Track on a
// durable store, encode) without the network. `make bench` runs them.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/plugins"
)

func benchTrackResult() *engine.TrackResult {
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	return &engine.TrackResult{Success: true, Allowed: true, Usage: engine.Usage{
		Feature: "requests", Count: 42, Limit: 1_000_000_000_000, Remaining: 1_000_000_000_000 - 42,
		Plan: "free", PeriodStart: start, PeriodEnd: start.AddDate(0, 1, 0),
	}}
}

// BenchmarkTrackResponseEncode is the body of a 200 (allowed) and of a 429
// (tier_limit_reached) answer to POST /api/track.
func BenchmarkTrackResponseEncode(b *testing.B) {
	for _, allowed := range []bool{true, false} {
		name := "status=200"
		if !allowed {
			name = "status=429"
		}
		b.Run(name, func(b *testing.B) {
			res := benchTrackResult()
			res.Allowed = allowed
			res.Message = "Please upgrade to unlock more requests"
			rsp := trackReply("req_01m8e6m0b5bhcc944h480hcf8r", false)
			b.ReportAllocs()
			var n int
			for b.Loop() {
				_, v := rsp(res)
				n += len(encode(v))
			}
			b.SetBytes(int64(n / max(b.N, 1)))
		})
	}
}

// discardWriter is a ResponseWriter that keeps only the status.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(code int)        { w.status = code }

// BenchmarkServeTrack is POST /api/track through the whole Server on a
// durable store, in process (no sockets), each goroutine on its own
// customer.
func BenchmarkServeTrack(b *testing.B) {
	for _, goroutines := range []int{1, 32} {
		b.Run(fmt.Sprintf("goroutines=%d", goroutines), func(b *testing.B) {
			e := newBenchEnv(b)
			bodies := make([][]byte, goroutines)
			for i := range bodies {
				bodies[i] = []byte(fmt.Sprintf(`{"customerId":%q,"quantity":1}`, e.customer(b, fmt.Sprintf("b%d@bench.example", i))))
			}
			e.serve(b, "/api/track", goroutines, bodies)
		})
	}
}

// BenchmarkServeTrackPolicy is BenchmarkServeTrack at 32 goroutines with
// each limit policy: the built-in limits, counter.wat (8 bytes of plugin
// state read and written per call) and the same written with the Go PDK
// (go/counter). Their cpu-ns/op ratios are issue 16's policy-state
// targets in process (make bench prints them).
func BenchmarkServeTrackPolicy(b *testing.B) {
	for _, policy := range []struct{ name, module string }{
		{"builtin", ""}, {"wasm-state", "counter.wasm"}, {"wasm-go-state", "go/counter/counter.wasm"},
	} {
		b.Run("policy="+policy.name+"/goroutines=32", func(b *testing.B) {
			e := newBenchEnvPolicy(b, policy.module)
			bodies := make([][]byte, 32)
			for i := range bodies {
				bodies[i] = []byte(fmt.Sprintf(`{"customerId":%q,"quantity":1}`, e.customer(b, fmt.Sprintf("b%d@bench.example", i))))
			}
			e.serve(b, "/api/track", 32, bodies)
		})
	}
}

// benchEnv is a Server on a durable store with one platform whose tier
// meters requests without a reachable limit, and no requests-per-second
// quota any benchmark reaches (every call still pays for its check).
type benchEnv struct {
	eng    *engine.Engine
	srv    *Server
	tenant engine.Tenant
	pk, sk string
}

func newBenchEnv(b *testing.B) *benchEnv { return newBenchEnvPolicy(b, "") }

// newBenchEnvPolicy is newBenchEnv with testdata/plugins/module as the
// tenant's limit policy (none when module is empty).
func newBenchEnvPolicy(b *testing.B, module string) *benchEnv {
	b.Helper()
	ctx := context.Background()
	st := tempStore(b)
	log := slog.New(slog.DiscardHandler)
	quotas := engine.DefaultQuotas()
	quotas.RPS, quotas.Burst = 1e9, 1e9
	cfg := engine.Config{Store: st, Logger: log, Quotas: quotas}
	if module != "" {
		// A deadline of a second: 32 goroutines on 2 cores must not turn
		// a slow schedule into a plugin error.
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
	tenant := engine.Tenant{PlatformID: np.Platform.ID, Mode: engine.Live}
	if _, err := eng.Tiers.Put(ctx, tenant, engine.TierConfigInput{Tiers: []engine.TierInput{
		{Name: "free", Limits: map[string]int64{"requests": 1_000_000_000_000}},
	}}, nil); err != nil {
		b.Fatal(err)
	}
	if module != "" {
		mod, err := os.ReadFile(filepath.Join("..", "testdata", "plugins", module))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := eng.Plugins.Upload(ctx, tenant, mod, "", nil); err != nil {
			b.Fatal(err)
		}
	}
	return &benchEnv{eng: eng, srv: NewServer(Config{Engine: eng, Store: st, Version: "bench", Logger: log}),
		tenant: tenant, pk: np.PublishableKey, sk: np.SecretKey}
}

// customer creates a customer and returns its id.
func (e *benchEnv) customer(b *testing.B, email string) string {
	b.Helper()
	c, err := e.eng.Customers.Create(context.Background(), e.tenant, e.pk, engine.CreateCustomerInput{Email: email}, nil)
	if err != nil {
		b.Fatal(err)
	}
	return c.ID
}

// serve times POSTs of bodies to path with the secret key, from
// goroutines goroutines, each sending its own body (bodies[i] for the
// i-th), and reports allocations and cpu-ns/op; any status but 200 fails.
func (e *benchEnv) serve(b *testing.B, path string, goroutines int, bodies [][]byte) {
	auth := "Bearer " + e.sk
	serve := func(body []byte, w *discardWriter, r *http.Request, rd *bytes.Reader) {
		rd.Reset(body)
		r.Body = io.NopCloser(rd)
		r.ContentLength = int64(len(body)) // as net/http's server sets it
		clear(w.h)
		w.status = 0
		e.srv.ServeHTTP(w, r)
		if w.status != 0 && w.status != http.StatusOK {
			b.Errorf("status %d", w.status)
		}
	}
	newReq := func() *http.Request {
		r, _ := http.NewRequest("POST", path, nil)
		r.Header.Set("Authorization", auth)
		r.Header.Set("Content-Type", "application/json")
		return r
	}
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b)()
	if goroutines == 1 {
		w, r, rd := &discardWriter{h: http.Header{}}, newReq(), bytes.NewReader(nil)
		for i := 0; i < b.N; i++ {
			serve(bodies[0], w, r, rd)
		}
		return
	}
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((goroutines + procs - 1) / procs)
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		body := bodies[int(next.Add(1)-1)%len(bodies)]
		w, r, rd := &discardWriter{h: http.Header{}}, newReq(), bytes.NewReader(nil)
		for pb.Next() {
			serve(body, w, r, rd)
		}
	})
}

// reportCPU reports the process's CPU time (user and system, all threads,
// Pebble's included) per operation as cpu-ns/op: on a shared 2-core machine
// a steadier measure of the work per request than wall time, which the
// fsyncs dominate. Call its result when the timed part ends.
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
