package storage

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
)

// TestAggregatesRoundTrip: aggregates are absent (ENOTFOUND) until put,
// then read back as written, per tenant.
func TestAggregatesRoundTrip(t *testing.T) {
	s := openStore(t, t.TempDir())
	live := engine.Tenant{PlatformID: "plat_a", Mode: engine.Live}
	if _, err := s.Aggregates(ctx, live); engine.ErrorCode(err) != engine.ENOTFOUND {
		t.Fatalf("absent aggregates: %v", err)
	}
	a := &engine.Aggregates{Plans: map[string]int64{"free": 3, "pro": 1}, Active: 1,
		Recurring:  []engine.RecurringSum{{Currency: "usd", Interval: "month", IntervalCount: 1, Count: 1, Amount: 1900}},
		TierPriced: map[string]map[string]int64{"pro": {"": 1}}}
	b := s.NewBatch()
	b.PutAggregates(live, a)
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	b.Close()
	got, err := s.Aggregates(ctx, live)
	if err != nil || !reflect.DeepEqual(got, a) {
		t.Fatalf("aggregates %+v %v, want %+v", got, err, a)
	}
	if _, err := s.Aggregates(ctx, engine.Tenant{PlatformID: "plat_a", Mode: engine.Test}); engine.ErrorCode(err) != engine.ENOTFOUND {
		t.Fatalf("the other mode's aggregates: %v", err)
	}
}

// TestPlatformBytes: a platform's estimated bytes count its own records
// once they are on disk, not those of a platform whose id it prefixes.
func TestPlatformBytes(t *testing.T) {
	s := openStore(t, t.TempDir())
	big := strings.Repeat("x", 400)
	b := s.NewBatch()
	for i := range 2000 {
		c := &engine.Customer{ID: fmt.Sprintf("cus_%05d", i), Email: fmt.Sprintf("c%d@bytes.example", i), Plan: "free",
			Metadata: map[string]any{"note": big}, CreatedAt: time.Now()}
		b.PutCustomer(engine.Tenant{PlatformID: "plat_10", Mode: engine.Live}, c, "")
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	n10, err := s.PlatformBytes(ctx, "plat_10")
	if err != nil {
		t.Fatal(err)
	}
	if n10 < 10_000 { // 800 kB before compression
		t.Fatalf("plat_10 stores about %d bytes, want more", n10)
	}
	// Estimates are made to a data block (~4 KiB) per key range.
	if n1, err := s.PlatformBytes(ctx, "plat_1"); err != nil || n1 > n10/10 {
		t.Fatalf("plat_1 (a prefix of plat_10): %d bytes, %v; want next to nothing", n1, err)
	}
}
