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
