package storage

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
)

// largeFeatures are the features every customer of the large store has a
// counter of (as dream-bench scale's).
var largeFeatures = [3]string{"requests", "exports", "storage"}

// BenchmarkLargeStoreTrack is issue 16's spread case in process: Meter.Track
// at 32 goroutines on a store of DREAM_BENCH_LARGE customers (each with a
// counter of three features), on a random feature of a random customer
// among the first 1 000 (few) or among all of them (spread), reporting the
// process's CPU per track. It is skipped unless DREAM_BENCH_LARGE is set
// (1000000 takes about two minutes to build); DREAM_BENCH_LARGE_DIR keeps
// the store there between runs. Each case first runs as many tracks
// unmeasured, so that caches are as warm as they get.
func BenchmarkLargeStoreTrack(b *testing.B) {
	n, _ := strconv.Atoi(os.Getenv("DREAM_BENCH_LARGE"))
	if n < 1000 {
		b.Skip("set DREAM_BENCH_LARGE to a number of customers (≥ 1000)")
	}
	dir := os.Getenv("DREAM_BENCH_LARGE_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	dir = filepath.Join(dir, strconv.Itoa(n))
	_, err := os.Stat(dir)
	built := err == nil
	var opts Options
	// Knobs to try other sizes than the defaults.
	opts.CustomerCacheSize, _ = strconv.Atoi(os.Getenv("DREAM_BENCH_LARGE_CUSTOMER_CACHE"))
	opts.CounterCacheSize, _ = strconv.Atoi(os.Getenv("DREAM_BENCH_LARGE_COUNTER_CACHE"))
	if mb, err := strconv.Atoi(os.Getenv("DREAM_BENCH_LARGE_CACHE_MB")); err == nil {
		opts.CacheSize = int64(mb) << 20
	}
	if mb, err := strconv.Atoi(os.Getenv("DREAM_BENCH_LARGE_MEMTABLE_MB")); err == nil {
		opts.MemTableSize = uint64(mb) << 20
	}
	st, err := Open(dir, &opts)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	eng := engine.New(engine.Config{Store: st, Logger: slog.New(slog.DiscardHandler)})
	ids := largeStore(b, eng, st, n, built)
	t := largeTenant(b, eng)
	if built {
		// As after building it: every customer and counter read once
		// (dream-bench scale tracks each counter once before measuring).
		now := time.Now().UTC()
		start := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
		ctx := context.Background()
		for _, id := range ids {
			if _, err := st.CustomerShared(ctx, t, id); err != nil {
				b.Fatal(err)
			}
			for _, f := range largeFeatures {
				if _, err := st.Counter(ctx, engine.CounterKey{Tenant: t, CustomerID: id, Feature: f, PeriodStart: start}); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	for _, c := range []struct {
		name string
		over int
	}{{"customers=1000", 1000}, {"customers=all", n}} {
		b.Run(c.name, func(b *testing.B) {
			track := func(count int) {
				parallelFor(b, 32, 0, count, func(int) error {
					i := rand.IntN(c.over * len(largeFeatures))
					in := engine.TrackInput{CustomerID: ids[i/len(largeFeatures)], Feature: largeFeatures[i%len(largeFeatures)]}
					_, err := eng.Meter.Track(context.Background(), t, in, nil)
					return err
				})
			}
			track(b.N) // warm-up
			b.ResetTimer()
			start := processCPU()
			track(b.N)
			b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
			if os.Getenv("DREAM_BENCH_LARGE_METRICS") != "" {
				m := st.db.Metrics()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				b.Logf("heap in use %d MB", ms.HeapInuse>>20)
				b.Logf("block cache %d MB, hits %d misses %d; flushes %d, compactions %d; L0 %d files; total written %d MB",
					m.BlockCache.Size>>20, m.BlockCache.Hits, m.BlockCache.Misses, m.Flush.Count, m.Compact.Count,
					m.Levels[0].TablesCount, m.Total().TableBytesCompacted>>20)
			}
		})
	}
}

// largeTenant is the one platform of a large store.
func largeTenant(b *testing.B, eng *engine.Engine) engine.Tenant {
	ps, _, err := eng.Platforms.List(context.Background(), engine.Page{Limit: 10})
	if err != nil || len(ps) != 1 {
		b.Fatalf("platforms %v, %v", ps, err)
	}
	return engine.Tenant{PlatformID: ps[0].ID, Mode: engine.Live}
}

// largeStore builds a store of n customers, each tracked once on each
// feature, unless built, and returns their ids in order.
func largeStore(b *testing.B, eng *engine.Engine, st *Store, n int, built bool) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("cus_large%08d", i)
	}
	if built {
		return ids
	}
	ctx := context.Background()
	np, err := eng.Platforms.Create(ctx, engine.CreatePlatformInput{Name: "Large"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	t := engine.Tenant{PlatformID: np.Platform.ID, Mode: engine.Live}
	limits := map[string]int64{}
	for _, f := range largeFeatures {
		limits[f] = 1_000_000_000
	}
	if _, err := eng.Tiers.Put(ctx, t, engine.TierConfigInput{Tiers: []engine.TierInput{{Name: "free", Limits: limits}}}, nil); err != nil {
		b.Fatal(err)
	}
	// Customers written directly, 10 000 a batch (the track path reads
	// only their records); then every counter through the engine.
	now := time.Now().UTC()
	for from := 0; from < n; from += 10_000 {
		bt := st.NewBatch()
		for i := from; i < min(n, from+10_000); i++ {
			bt.PutCustomer(t, &engine.Customer{ID: ids[i], Email: ids[i] + "@large.example", Plan: "free",
				PublishableKey: np.PublishableKey, CreatedAt: now}, "")
		}
		if err := bt.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	parallelFor(b, 64, 0, n*len(largeFeatures), func(i int) error {
		in := engine.TrackInput{CustomerID: ids[i/len(largeFeatures)], Feature: largeFeatures[i%len(largeFeatures)]}
		_, err := eng.Meter.Track(ctx, t, in, nil)
		return err
	})
	return ids
}

// processCPU is the process's user and system CPU time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
