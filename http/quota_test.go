package http

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/storage"
)

// quotaServer is a server on a durable store, with the store (to count
// what is stored) and cfg's quotas and clock.
func quotaServer(t *testing.T, cfg engine.Config) (*Server, *storage.Store, *engine.Engine, *engine.NewPlatform) {
	t.Helper()
	st, err := storage.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.DiscardHandler)
	cfg.Store, cfg.Logger = st, log
	eng := engine.New(cfg)
	np, err := eng.Platforms.Create(context.Background(), engine.CreatePlatformInput{Name: "Quota"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return NewServer(Config{Engine: eng, Store: st, Logger: log}), st, eng, np
}

// idemRecords counts every stored idempotency record (expiring all of
// them: the count is what ExpireIdempotency deleted).
func idemRecords(t *testing.T, st *storage.Store) int {
	t.Helper()
	n, err := st.ExpireIdempotency(context.Background(), time.Now().Add(100*365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCheckStoresNoIdempotencyRecord: /api/check changes nothing, so 1 000
// checks with fresh Idempotency-Keys store no record (each used to store
// one: +493 MiB for 112 000 keys), while a track with a key still does.
func TestCheckStoresNoIdempotencyRecord(t *testing.T) {
	srv, st, eng, np := quotaServer(t, engine.Config{})
	tn := engine.Tenant{PlatformID: np.Platform.ID, Mode: engine.Live}
	cus, err := eng.Customers.Create(context.Background(), tn, np.PublishableKey, engine.CreateCustomerInput{Email: "c@check.example"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := idemRecords(t, st); n != 0 {
		t.Fatalf("%d idempotency records before the checks", n)
	}
	body := fmt.Sprintf(`{"customerId":%q,"feature":"requests"}`, cus.ID)
	for i := range 1000 {
		w := call(t, srv, "POST", "/api/check", np.SecretKey, body, "Idempotency-Key", fmt.Sprintf("check-%d", i))
		if w.Code != http.StatusOK || w.Header().Get("Idempotent-Replayed") != "" {
			t.Fatalf("check %d: %d %s", i, w.Code, w.Body)
		}
	}
	// The same key twice with different bodies: no conflict, each answered.
	other := fmt.Sprintf(`{"customerId":%q,"feature":"exports"}`, cus.ID)
	if w := call(t, srv, "POST", "/api/check", np.SecretKey, other, "Idempotency-Key", "check-0"); w.Code != http.StatusOK {
		t.Fatalf("check with a reused key: %d %s", w.Code, w.Body)
	}
	if n := idemRecords(t, st); n != 0 {
		t.Fatalf("checks stored %d idempotency records, want 0", n)
	}
	if w := call(t, srv, "POST", "/api/track", np.SecretKey, body, "Idempotency-Key", "track-1"); w.Code != http.StatusOK {
		t.Fatalf("track: %d %s", w.Code, w.Body)
	}
	if n := idemRecords(t, st); n != 1 {
		t.Fatalf("a track with a key stored %d idempotency records, want 1", n)
	}
}
