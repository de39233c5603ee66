package storage

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dream-api/dream-api/engine"
)

// idleCustomers is how many customers BenchmarkIdleCustomerMemory makes.
const idleCustomers = 100_000

// BenchmarkIdleCustomerMemory is the Go heap an idle customer costs the
// engine and the store together: 100 000 customers are created and tracked
// once each, then left alone; the metric B/customer is the growth of
// HeapInuse (after GC) over that, divided by their number. The target is
// 300 B.
//
// Pebble's block cache and memtables are allocated outside the Go heap
// (C malloc) when cgo is on, so they are not in the number; with cgo off
// they are, and their growth is subtracted. Each iteration takes seconds:
// `-benchtime=1x` runs it once.
func BenchmarkIdleCustomerMemory(b *testing.B) {
	var perCustomer float64
	var heapMB, cacheMB float64
	for range b.N {
		perCustomer, heapMB, cacheMB = measureIdleCustomers(b, idleCustomers)
	}
	b.ReportMetric(perCustomer, "B/customer")
	b.ReportMetric(heapMB, "heap-MB")
	b.ReportMetric(cacheMB, "pebble-cache+memtables-MB")
}

// The timer runs throughout, so that one iteration (seconds) is over
// -benchtime and the benchmark stops after it.
func measureIdleCustomers(b *testing.B, n int) (perCustomer, heapMB, cacheMB float64) {
	ctx := context.Background()
	st, err := Open(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	eng := engine.New(engine.Config{Store: st, Logger: slog.New(slog.DiscardHandler)})
	np, err := eng.Platforms.Create(ctx, engine.CreatePlatformInput{Name: "Memory"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	t := engine.Tenant{PlatformID: np.Platform.ID, Mode: engine.Live}
	if _, err := eng.Tiers.Put(ctx, t, engine.TierConfigInput{Tiers: []engine.TierInput{
		{Name: "free", Limits: map[string]int64{"requests": 1_000_000}},
	}}, nil); err != nil {
		b.Fatal(err)
	}
	// A first thousand warms every fixed cost (caches, pools, the first
	// memtable) before the reference is taken.
	populate(b, eng, t, np.PublishableKey, 0, 1000)
	h0, m0 := heapInuse(), st.manualBytes()
	populate(b, eng, t, np.PublishableKey, 1000, 1000+n)
	h1, m1 := heapInuse(), st.manualBytes()
	grown := float64(h1) - float64(h0)
	if !cgoInUse() {
		grown -= float64(m1) - float64(m0)
	}
	runtime.KeepAlive(eng)
	return grown / float64(n), float64(h1) / (1 << 20), float64(m1) / (1 << 20)
}

// populate creates customers from..to-1 and tracks each once, 64 at a time.
func populate(b *testing.B, eng *engine.Engine, t engine.Tenant, pk string, from, to int) {
	ctx := context.Background()
	parallelFor(b, 64, from, to, func(i int) error {
		c, err := eng.Customers.Create(ctx, t, pk, engine.CreateCustomerInput{Email: fmt.Sprintf("idle%d@memory.example", i)}, nil)
		if err == nil {
			_, err = eng.Meter.Track(ctx, t, engine.TrackInput{CustomerID: c.ID}, nil)
		}
		return err
	})
}

// parallelFor calls fn(i) for every i in [from, to) from goroutines
// goroutines, and fails b (after all have stopped) at the first error.
func parallelFor(b *testing.B, goroutines, from, to int, fn func(i int) error) {
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	var failed atomic.Bool
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= to {
					return
				}
				if err := fn(i); err != nil {
					failed.Store(true)
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if failed.Load() {
		b.FailNow()
	}
}

func heapInuse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// manualBytes is what Pebble holds in its block cache and memtables.
func (s *Store) manualBytes() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m := s.db.Metrics()
	return uint64(m.BlockCache.Size) + m.MemTable.Size
}

// cgoInUse tells whether this binary has called C (Pebble allocates its
// cache with C malloc when it can).
func cgoInUse() bool {
	s := []metrics.Sample{{Name: "/cgo/go-to-c-calls:calls"}}
	metrics.Read(s)
	return s[0].Value.Kind() == metrics.KindUint64 && s[0].Value.Uint64() > 0
}
