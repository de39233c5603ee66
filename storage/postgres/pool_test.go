package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/storage/postgres"
	"github.com/dream-api/dream-api/storage/postgres/pgtest"
)

// Units of work that read through the store itself (not their
// transaction) while they run never starve each other of connections:
// 16 such units on a pool of 4 all finish.
func TestUnitsLeaveConnectionsForReads(t *testing.T) {
	s, err := postgres.Open(ctx, pgtest.Database(t), &postgres.Options{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lock := engine.Lock{Kind: engine.LockCustomer, Platform: "plt_a", ID: string(rune('a' + i))}
			_, err := s.Update(c, []engine.Lock{lock}, func(tx engine.Tx) (any, error) {
				time.Sleep(10 * time.Millisecond) // all units hold their transaction at once
				_, err := s.Tiers(c, engine.Tenant{PlatformID: "plt_a"})
				if engine.ErrorCode(err) == engine.ENOTFOUND {
					err = nil
				}
				return nil, err
			})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a unit failed (a starved pool ends at the 30 s context): %v", err)
		}
	}
}
