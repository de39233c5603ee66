package postgres_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/storage/postgres/pgtest"
)

// A database restart: while it is down, tracks and reads fail with
// EUNAVAILABLE (they do not hang, and nothing is counted); once it is back both nodes serve
// again on their own, exact, and B follows A's changes again.
func TestDatabaseRestart(t *testing.T) {
	srv := pgtest.Own(t)
	if srv.External() {
		t.Skip("restarts the database: not a server of DREAM_TEST_POSTGRES_URL")
	}
	url := srv.Database(t)
	a, b := newNode(t, "A", url, nil), newNode(t, "B", url, nil)
	np, err := a.eng.Platforms.Create(ctx, engine.CreatePlatformInput{Name: "Restart"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tenant := engine.Tenant{PlatformID: np.Platform.ID, Mode: engine.Live}
	if _, err := a.eng.Tiers.Put(ctx, tenant, limitTiers(1000), nil); err != nil {
		t.Fatal(err)
	}
	cus, err := a.eng.Customers.Create(ctx, tenant, np.PublishableKey, engine.CreateCustomerInput{Email: "r@example.com"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	one := int64(1)
	in := engine.TrackInput{CustomerID: cus.ID, Feature: "requests", Quantity: &one}
	track := func(n *node, timeout time.Duration) error {
		c, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		_, err := n.eng.Meter.Track(c, tenant, in, nil)
		return err
	}
	for _, n := range []*node{a, b} {
		if err := track(n, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	kp, err := a.eng.Keys.Create(ctx, tenant, engine.CreateKeyInput{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "B authenticates A's new key", func() bool {
		_, err := b.eng.Keys.Authenticate(ctx, kp.SecretKey)
		return err == nil
	})

	err = srv.Restart(func() {
		for _, n := range []*node{a, b} {
			// Twice: the first call may find a pooled connection the
			// shutdown ended, the second has to connect anew.
			for range 2 {
				err := track(n, 20*time.Second)
				var e *engine.Error
				if !errors.As(err, &e) || e.Code != engine.EUNAVAILABLE || e.RetryAfter != 1 {
					t.Errorf("node %s: a track with the database down: %v, want EUNAVAILABLE with RetryAfter 1", n.name, err)
				} else if !strings.Contains(e.Message, "nothing was changed") {
					t.Errorf("node %s: message %q", n.name, e.Message)
				}
			}
			if _, err := n.store.Customer(ctx, tenant, cus.ID); engine.ErrorCode(err) != engine.EUNAVAILABLE {
				t.Errorf("node %s: a read with the database down: %v, want EUNAVAILABLE", n.name, err)
			}
			if err := n.store.Healthy(); err == nil {
				t.Errorf("node %s: Healthy with the database down", n.name)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}

	for _, n := range []*node{a, b} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := track(n, 5*time.Second)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %s does not serve after the restart: %v", n.name, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err := n.store.Healthy(); err != nil {
			t.Errorf("node %s: not Healthy after the restart: %v", n.name, err)
		}
	}
	u, err := b.eng.Meter.Usage(ctx, tenant, cus.ID)
	if err != nil || len(u.Usage) != 1 || u.Usage[0].Count != 4 {
		t.Errorf("usage after 2 tracks, a restart and 2 tracks: %+v, %v; want a count of 4", u, err)
	}
	if _, err := a.eng.Keys.Revoke(ctx, tenant, kp.Key.ID, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B refuses the key revoked on A after the restart", func() bool {
		_, err := b.eng.Keys.Authenticate(ctx, kp.SecretKey)
		return engine.ErrorCode(err) == engine.EINVALIDAPIKEY
	})
}
