package storage_test

import (
	"context"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/storage"
)

// A counter is applied under a lock, visible at once, and waited for outside
// the lock.
func Example() {
	s, err := storage.Open("data", &storage.Options{FS: vfs.NewMem()})
	if err != nil {
		panic(err)
	}
	defer s.Close()

	t := engine.Tenant{PlatformID: "plt_1", Mode: engine.Test}
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	key := engine.CounterKey{Tenant: t, CustomerID: "cus_1", Feature: "requests", PeriodStart: start}

	b := s.NewBatch()
	defer b.Close()
	b.PutCounter(key, engine.Counter{Count: 1, PeriodEnd: start.AddDate(0, 1, 0)})
	if err := b.Apply(); err != nil { // under the engine's lock
		panic(err)
	}
	if err := b.Wait(); err != nil { // after unlocking
		panic(err)
	}

	periods, err := s.Periods(context.Background(), t, "cus_1")
	if err != nil {
		panic(err)
	}
	for _, p := range periods {
		fmt.Println(p.Feature, p.Count, p.PeriodStart.Format(time.DateOnly), p.PeriodEnd.Format(time.DateOnly))
	}
	// Output: requests 1 2024-01-01 2024-02-01
}
