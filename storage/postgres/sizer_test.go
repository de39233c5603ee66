package postgres_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/storage/postgres"
	"github.com/dream-api/dream-api/storage/postgres/pgtest"
)

func randomText(n int) string {
	b := make([]byte, n/2)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// PlatformBytes counts a platform's own records (customers, plugin
// modules, …), about their size as stored, and nothing of a platform
// whose id its id prefixes.
func TestPlatformBytes(t *testing.T) {
	s, err := postgres.Open(ctx, pgtest.Database(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	big, small := engine.Tenant{PlatformID: "plt_10", Mode: engine.Live}, engine.Tenant{PlatformID: "plt_1", Mode: engine.Live}
	b := s.NewBatch()
	b.PutPlatform(&engine.Platform{ID: "plt_10", Name: "Ten", CreatedAt: time.Now()})
	b.PutPlatform(&engine.Platform{ID: "plt_1", Name: "One", CreatedAt: time.Now()})
	const customers = 1500 // beyond the 1 000 rows measured: the rest estimated
	for i := range customers {
		b.PutCustomer(big, &engine.Customer{ID: fmt.Sprintf("cus_%05d", i), Email: fmt.Sprintf("c%d@bytes.example", i), Plan: "free",
			Metadata: map[string]any{"a": randomText(400), "b": randomText(400)}, CreatedAt: time.Now()}, "")
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	b.Close()
	n10, err := s.PlatformBytes(ctx, "plt_10")
	if err != nil {
		t.Fatal(err)
	}
	// 1 500 customers of 800 random characters (and a few hundred bytes
	// more each): 1.2 MB to 2.4 MB.
	if n10 < customers*800 || n10 > customers*1600 {
		t.Errorf("plt_10 stores about %d bytes, want %d to %d", n10, customers*800, customers*1600)
	}
	n1, err := s.PlatformBytes(ctx, "plt_1")
	if err != nil || n1 <= 0 || n1 > 1000 {
		t.Errorf("plt_1 (its platform record only): %d bytes, %v", n1, err)
	}

	// A 200 kB module of random bytes (incompressible) counts in full.
	module := make([]byte, 200_000)
	rand.Read(module)
	b = s.NewBatch()
	b.PutPluginVersion(small, &engine.PluginVersion{Version: "v1", SHA256: "x", Size: len(module), UploadedAt: time.Now()}, module)
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if got, err := s.PlatformBytes(ctx, "plt_1"); err != nil || got < n1+200_000 || got > n1+210_000 {
		t.Errorf("plt_1 with a 200 kB module: %d bytes, %v; want about %d", got, err, n1+200_000)
	}
	if got, err := s.PlatformBytes(ctx, "plt_10"); err != nil || got != n10 {
		t.Errorf("plt_10 after plt_1's module: %d, %v; want %d unchanged", got, err, n10)
	}
}

// The stored-bytes quota holds on PostgreSQL: once the platform's records
// take more than the quota (as estimated at most a minute ago), a new
// customer is refused with EQUOTAEXCEEDED naming the quota and is not
// stored.
func TestStoredBytesQuota(t *testing.T) {
	s, err := postgres.Open(ctx, pgtest.Database(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var mu sync.Mutex
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	eng := engine.New(engine.Config{Store: s, Logger: slog.New(slog.DiscardHandler), Now: clock,
		Quotas: engine.Quotas{StoredBytes: 100_000}})
	np, err := eng.Platforms.Create(ctx, engine.CreatePlatformInput{Name: "Sized"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	live := engine.Tenant{PlatformID: np.Platform.ID, Mode: engine.Live}
	create := func(i int) error {
		_, err := eng.Customers.Create(ctx, live, np.PublishableKey, engine.CreateCustomerInput{
			Email: fmt.Sprintf("c%d@sized.example", i), Metadata: map[string]any{"a": randomText(400), "b": randomText(400)}}, nil)
		return err
	}
	// The first estimate (a platform with no customers) holds for a
	// minute: 150 customers (over 120 kB) are let in meanwhile.
	for i := range 150 {
		if err := create(i); err != nil {
			t.Fatalf("customer %d: %v", i, err)
		}
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	err = create(150)
	if engine.ErrorCode(err) != engine.EQUOTAEXCEEDED || !strings.Contains(engine.ErrorMessage(err), "Stored bytes quota") {
		t.Fatalf("a customer over the stored-bytes quota: %v, want EQUOTAEXCEEDED naming the quota", err)
	}
	if _, err := s.CustomerIDByEmail(ctx, live, "c150@sized.example"); engine.ErrorCode(err) != engine.ENOTFOUND {
		t.Errorf("the refused customer: %v, want not stored", err)
	}
}
