package storage

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
)

func TestCustomerCacheCoherent(t *testing.T) {
	s := openStore(t, t.TempDir())
	put := func(c *engine.Customer, prev string) {
		t.Helper()
		b := s.NewBatch()
		defer b.Close()
		b.PutCustomer(tenantLive, c, prev)
		if err := b.Apply(); err != nil {
			t.Fatal(err)
		}
		if err := b.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	c := &engine.Customer{ID: "cus_cache", Email: "a@example.com", Plan: "free", Metadata: map[string]any{"k": "v"}, CreatedAt: time.Now()}
	put(c, "")
	got, err := s.Customer(ctx, tenantLive, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	// A caller changing its copy changes nothing for the next one.
	got.Plan = "changed"
	got.Metadata["k"] = "changed"
	again, _ := s.Customer(ctx, tenantLive, c.ID)
	if again.Plan != "free" || again.Metadata["k"] != "v" {
		t.Fatalf("cached customer was changed through a copy: %+v", again)
	}
	// A write is seen by the next read.
	c.Plan = "pro"
	put(c, c.Email)
	if again, _ = s.Customer(ctx, tenantLive, c.ID); again.Plan != "pro" {
		t.Fatalf("after a write the cache answered plan %q", again.Plan)
	}
	// A delete too.
	b := s.NewBatch()
	b.DeleteCustomer(tenantLive, c)
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if _, err := s.Customer(ctx, tenantLive, c.ID); engine.ErrorCode(err) != engine.ENOTFOUND {
		t.Fatalf("deleted customer: %v", err)
	}
}

// TestCustomerCacheRace races readers against a writer: once the writer is
// done, every read answers its last write.
func TestCustomerCacheRace(t *testing.T) {
	s := openStore(t, t.TempDir())
	const n = 200
	c := &engine.Customer{ID: "cus_race", Email: "r@example.com", Plan: "p0", CreatedAt: time.Now()}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					s.Customer(ctx, tenantLive, c.ID)
				}
			}
		})
	}
	for i := range n {
		c.Plan = fmt.Sprint("p", i)
		b := s.NewBatch()
		b.PutCustomer(tenantLive, c, c.Email)
		if err := b.Apply(); err != nil {
			t.Fatal(err)
		}
		b.Wait()
		b.Close()
		if got, err := s.Customer(ctx, tenantLive, c.ID); err != nil || got.Plan != c.Plan {
			t.Fatalf("write %d: read %+v, %v", i, got, err)
		}
	}
	close(stop)
	wg.Wait()
	if got, _ := s.Customer(ctx, tenantLive, c.ID); got.Plan != fmt.Sprint("p", n-1) {
		t.Fatalf("final read %q", got.Plan)
	}
}

// TestCacheStoreOrder holds the rules of cache.store: the later sequence
// number wins whatever order stores arrive in, a fill never lands after a
// write it did not see, and a store older than a forgotten one invalidates.
func TestCacheStoreOrder(t *testing.T) {
	c := newCache[int](1) // one entry per shard: every second key evicts
	k := []byte("k")
	c.store(k, 2, 11)
	c.store(k, 1, 10)
	if v, ok, _ := c.get(k); !ok || v != 2 {
		t.Fatalf("after stores 11 then 10: %d, %v; want 2", v, ok)
	}

	// A reader missed, a write came, the reader's fill is dropped.
	c.invalidate(k)
	_, ok, gen := c.get(k)
	if ok {
		t.Fatal("hit after invalidate")
	}
	c.store(k, 3, 12)
	c.fill(k, 0, gen)
	if v, _, _ := c.get(k); v != 3 {
		t.Fatalf("a stale fill replaced a store: %d", v)
	}

	// Another key of the same shard evicts k (seq 12): a store of k with
	// an older sequence number must not come back as the value.
	var other []byte
	ks, _ := c.shard(k)
	for i := 0; ; i++ {
		other = fmt.Appendf(nil, "o%d", i)
		if os, _ := c.shard(other); os == ks {
			break
		}
	}
	c.store(other, 9, 13)
	if _, ok, _ := c.get(k); ok {
		t.Fatal("k survived in a full shard")
	}
	c.store(k, 1, 10)
	if v, ok, _ := c.get(k); ok {
		t.Fatalf("a store older than an evicted one is cached: %d", v)
	}
	c.store(k, 4, 14)
	if v, ok, _ := c.get(k); !ok || v != 4 {
		t.Fatalf("a newer store after the eviction: %d, %v", v, ok)
	}
}

// TestCounterCacheRace writes counters of many keys through a tiny cache
// (constant eviction) while readers read them: every read after a write's
// Apply returns answers that write, and the store agrees with Pebble at
// the end.
func TestCounterCacheRace(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, &Options{CounterCacheSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	const keys, rounds = 150, 20
	key := func(i int) engine.CounterKey {
		return engine.CounterKey{Tenant: tenantLive, CustomerID: fmt.Sprint("cus_", i), Feature: "api", PeriodStart: time.Unix(1700000000, 0)}
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := range 4 {
		wg.Go(func() {
			for i := r; ; i++ {
				select {
				case <-stop:
					return
				default:
					s.Counter(ctx, key(i%keys))
				}
			}
		})
	}
	for round := 1; round <= rounds; round++ {
		for i := range keys {
			b := s.NewBatch()
			b.PutCounter(key(i), engine.Counter{Count: int64(round), PeriodEnd: time.Unix(1800000000, 0)})
			if err := b.Apply(); err != nil {
				t.Fatal(err)
			}
			b.Close()
			if got, err := s.Counter(ctx, key(i)); err != nil || got.Count != int64(round) {
				t.Fatalf("round %d key %d: read %d, %v", round, i, got.Count, err)
			}
		}
	}
	close(stop)
	wg.Wait()
	s.counters = nil // read Pebble itself
	for i := range keys {
		if got, _ := s.Counter(ctx, key(i)); got.Count != rounds {
			t.Fatalf("key %d: Pebble holds %d", i, got.Count)
		}
	}
}

// TestPolicyStateCacheRace: plugin states read through a small cache while
// batches write them; every read after a write sees that write, and the
// cache never keeps the caller's buffer (a policy host reuses it).
func TestPolicyStateCacheRace(t *testing.T) {
	s, err := Open(t.TempDir(), &Options{PolicyStateCacheSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	const keys, rounds = 150, 20
	id := func(i int) string { return fmt.Sprint("cus_", i) }
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := range 4 {
		wg.Go(func() {
			for i := r; ; i++ {
				select {
				case <-stop:
					return
				default:
					s.PolicyState(ctx, tenantLive, id(i%keys), "api")
				}
			}
		})
	}
	buf := make([]byte, 1)
	for round := 1; round <= rounds; round++ {
		for i := range keys {
			buf[0] = byte(round)
			b := s.NewBatch()
			b.PutPolicyState(tenantLive, id(i), "api", buf)
			if err := b.Apply(); err != nil {
				t.Fatal(err)
			}
			b.Close()
			buf[0] = 0 // the caller reuses its buffer
			if got, err := s.PolicyState(ctx, tenantLive, id(i), "api"); err != nil || len(got) != 1 || got[0] != byte(round) {
				t.Fatalf("round %d key %d: read %v, %v", round, i, got, err)
			}
		}
	}
	close(stop)
	wg.Wait()
	s.states = nil // read Pebble itself
	for i := range keys {
		if got, _ := s.PolicyState(ctx, tenantLive, id(i), "api"); len(got) != 1 || got[0] != rounds {
			t.Fatalf("key %d: Pebble holds %v", i, got)
		}
	}
}

// Entries are found by a hash of the key: 200 000 keys that differ in one
// byte or in length each keep their own value.
func TestCacheDistinctKeys(t *testing.T) {
	c := newCache[int](1 << 20)
	var keys [][]byte
	for i := range 100_000 {
		keys = append(keys, fmt.Appendf(nil, "c/plat/l/cus_%08d", i), fmt.Appendf(nil, "c/plat/l/cus_%08d\x00", i))
	}
	for i, k := range keys {
		c.store(k, i, uint64(i+1))
	}
	for i, k := range keys {
		if v, ok, _ := c.get(k); !ok || v != i {
			t.Fatalf("key %q: got %d, %v; want %d", k, v, ok, i)
		}
	}
}
