package storetest

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
)

// Units of work holding many locks at once (a batch of track events holds
// the counter lock of every customer and feature in it, and the lock of
// every event key), given in any order and overlapping other units' sets,
// never deadlock and lose no update: the store takes them in one global
// order.
func testUpdateManyLocks(t *testing.T, open Open) {
	s := open(t)
	const goroutines, units, perUnit, pool = 4, 8, 100, 150
	key := func(i int) engine.CounterKey {
		return engine.CounterKey{Tenant: live, CustomerID: fmt.Sprintf("cus_%03d", i), Feature: "requests", PeriodStart: day("2024-01-01")}
	}
	lock := func(i int) engine.Lock {
		if i%10 == 9 { // some event keys among the counters
			return engine.Lock{Kind: engine.LockIdempotency, Mode: live.Mode, Platform: live.PlatformID, ID: fmt.Sprintf("key-%03d", i)}
		}
		k := key(i)
		return engine.Lock{Kind: engine.LockCounter, Mode: live.Mode, Platform: live.PlatformID, ID: k.CustomerID, Feature: k.Feature}
	}
	var mu sync.Mutex
	want := make(map[int]int64)
	errs := make(chan error, goroutines)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 7))
			for range units {
				picked := r.Perm(pool)[:perUnit] // a random set, in a random order
				locks := make([]engine.Lock, 0, perUnit+1)
				for _, i := range picked {
					locks = append(locks, lock(i))
				}
				locks = append(locks, locks[0]) // and a repeat
				_, err := s.Update(ctx, locks, func(tx engine.Tx) (any, error) {
					for _, i := range picked {
						if i%10 == 9 {
							continue
						}
						c, err := tx.Counter(ctx, key(i))
						if err != nil {
							return nil, err
						}
						c.Count++
						tx.PutCounter(key(i), c)
					}
					return nil, nil
				})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for _, i := range picked {
					if i%10 != 9 {
						want[i]++
					}
				}
				mu.Unlock()
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("units of work holding many locks did not finish in 2 minutes: a deadlock")
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := range pool {
		if i%10 == 9 {
			continue
		}
		c, err := s.Counter(ctx, key(i))
		if err != nil || c.Count != want[i] {
			t.Errorf("counter %d = %d, %v; want %d", i, c.Count, err, want[i])
		}
	}
}
