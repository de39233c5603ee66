package postgres_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/storage/postgres"
	"github.com/dream-api/dream-api/storage/postgres/pgtest"
)

// countingIdentity is an identity provider that counts metadata updates
// by user, each taking a moment, so that two nodes' deliveries overlap.
type countingIdentity struct {
	engine.Identity // nil: only the outbox's methods are called
	mu              sync.Mutex
	updates         map[string]int
}

func (c *countingIdentity) UpdateMetadata(ctx context.Context, id string, md map[string]any) error {
	time.Sleep(5 * time.Millisecond)
	c.mu.Lock()
	c.updates[id]++
	c.mu.Unlock()
	return nil
}

func (c *countingIdentity) DeleteUser(ctx context.Context, id string) error { return nil }

// Two nodes delivering the outbox at once deliver each entry once: an
// entry is delivered by the node that leased it.
func TestTwoNodesOutboxDeliveredOnce(t *testing.T) {
	url := pgtest.Database(t)
	idp := &countingIdentity{updates: map[string]int{}}
	var stores []*postgres.Store
	var engines []*engine.Engine
	for range 2 {
		s, err := postgres.Open(ctx, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stores = append(stores, s)
		engines = append(engines, engine.New(engine.Config{Store: s, Identity: idp, Logger: slog.New(slog.DiscardHandler)}))
	}
	tenant := engine.Tenant{PlatformID: "plt_a", Mode: engine.Live}
	const users = 30
	b := stores[0].NewBatch()
	now := time.Now().UTC()
	for i := range users {
		id := fmt.Sprintf("user_%02d", i)
		b.PutCustomer(tenant, &engine.Customer{ID: id, Plan: "pro", CreatedAt: now}, "")
		b.PutOutbox(&engine.OutboxEntry{ID: fmt.Sprintf("obx_%02d", i), Kind: engine.OutboxSyncPlan,
			PlatformID: tenant.PlatformID, Mode: tenant.Mode, CustomerID: id, CreatedAt: now})
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	b.Close()

	var wg sync.WaitGroup
	for _, e := range engines {
		for range 3 { // passes of one node overlap too
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, _, err := e.DeliverOutbox(ctx); err != nil {
					t.Error(err)
				}
			}()
		}
	}
	wg.Wait()
	// Whatever a pass skipped (leased by another that then finished) is
	// gone or due again: a last pass settles it.
	if _, _, err := engines[0].DeliverOutbox(ctx); err != nil {
		t.Fatal(err)
	}
	left, _, err := stores[1].Outbox(ctx, engine.Page{})
	if err != nil || len(left) != 0 {
		t.Fatalf("outbox after delivery: %d entries, %v", len(left), err)
	}
	idp.mu.Lock()
	defer idp.mu.Unlock()
	for i := range users {
		if n := idp.updates[fmt.Sprintf("user_%02d", i)]; n != 1 {
			t.Errorf("user_%02d updated %d times, want once", i, n)
		}
	}
}
