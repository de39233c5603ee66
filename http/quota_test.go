package http

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/storage"
)

// quotaServer is a server on a durable store, with the store (to count
// what is stored) and cfg's quotas and clock.
func quotaServer(t *testing.T, cfg engine.Config) (*Server, *storage.Store, *engine.Engine, *engine.NewPlatform) {
	t.Helper()
	st := tempStore(t)
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
	other := fmt.Sprintf(`{"customerId":%q,"feature":"requests","quantity":2}`, cus.ID)
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

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestRequestsPerSecondQuota: a platform's authenticated calls beyond its
// burst answer 429 quota_exceeded naming the quota, with Retry-After,
// whatever the route and key; another platform is not affected; the
// budget comes back with time.
func TestRequestsPerSecondQuota(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	srv, _, eng, np := quotaServer(t, engine.Config{Now: clock.Now, Quotas: engine.Quotas{RPS: 2, Burst: 3}})
	other, err := eng.Platforms.Create(context.Background(), engine.CreatePlatformInput{Name: "Other"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	calls := []func() *httptest.ResponseRecorder{
		func() *httptest.ResponseRecorder { return call(t, srv, "GET", "/api/customers", np.SecretKey, "") },
		func() *httptest.ResponseRecorder { return call(t, srv, "GET", "/api/tiers", np.PublishableKey, "") },
		func() *httptest.ResponseRecorder { return call(t, srv, "GET", "/api/platform/tiers", np.SecretKey, "") },
	}
	for i, c := range calls {
		if w := c(); w.Code != http.StatusOK {
			t.Fatalf("call %d within the burst: %d %s", i, w.Code, w.Body)
		}
	}
	for _, c := range calls {
		w := c()
		e := errorOf(t, w, http.StatusTooManyRequests, engine.EQUOTAEXCEEDED)
		if !strings.Contains(e.Message, "Requests-per-second quota") || w.Header().Get("Retry-After") != "1" {
			t.Fatalf("beyond the burst: %s, Retry-After %q", w.Body, w.Header().Get("Retry-After"))
		}
	}
	// Unauthenticated calls take nothing (and are not refused by it).
	if w := call(t, srv, "GET", "/api/customers", "sk_test_wrong", ""); w.Code != http.StatusUnauthorized {
		t.Fatalf("a bad key: %d %s", w.Code, w.Body)
	}
	if w := call(t, srv, "GET", "/api/customers", other.SecretKey, ""); w.Code != http.StatusOK {
		t.Fatalf("another platform: %d %s", w.Code, w.Body)
	}
	clock.Add(500 * time.Millisecond) // one call's worth at 2/s
	if w := calls[0](); w.Code != http.StatusOK {
		t.Fatalf("after half a second: %d %s", w.Code, w.Body)
	}
	if w := calls[0](); w.Code != http.StatusTooManyRequests {
		t.Fatalf("the second call after half a second: %d %s", w.Code, w.Body)
	}
}

// TestCustomersQuota: a mode of a platform holds at most the quota's
// customers: one more is 429 quota_exceeded naming it (no Retry-After: it
// does not reset) and creates nothing; the other mode has its own count;
// a deletion makes room.
func TestCustomersQuota(t *testing.T) {
	srv, st, _, np := quotaServer(t, engine.Config{Quotas: engine.Quotas{Customers: 2}})
	ctx := context.Background()
	live := engine.Tenant{PlatformID: np.Platform.ID, Mode: engine.Live}
	var ids []string
	for i := range 2 {
		w := call(t, srv, "POST", "/api/customers", np.SecretKey, fmt.Sprintf(`{"email":"c%d@quota.example"}`, i))
		if w.Code != http.StatusCreated {
			t.Fatalf("customer %d: %d %s", i, w.Code, w.Body)
		}
		var c struct{ Customer struct{ ID string } }
		json.Unmarshal(w.Body.Bytes(), &c)
		ids = append(ids, c.Customer.ID)
	}
	w := call(t, srv, "POST", "/api/customers", np.SecretKey, `{"email":"c2@quota.example"}`)
	e := errorOf(t, w, http.StatusTooManyRequests, engine.EQUOTAEXCEEDED)
	if !strings.Contains(e.Message, "Customers quota") || !strings.Contains(e.Message, "2 customers") || w.Header().Get("Retry-After") != "" {
		t.Fatalf("over the customers quota: %s, Retry-After %q", w.Body, w.Header().Get("Retry-After"))
	}
	if _, err := st.CustomerIDByEmail(ctx, live, "c2@quota.example"); engine.ErrorCode(err) != engine.ENOTFOUND {
		t.Fatalf("the refused customer is stored: %v", err)
	}
	if w := call(t, srv, "POST", "/api/customers", np.Test.SecretKey, `{"email":"c2@quota.example"}`); w.Code != http.StatusCreated {
		t.Fatalf("test mode: %d %s", w.Code, w.Body)
	}
	if w := call(t, srv, "DELETE", "/api/customers/"+ids[0], np.SecretKey, ""); w.Code != http.StatusOK {
		t.Fatalf("delete: %d %s", w.Code, w.Body)
	}
	if w := call(t, srv, "POST", "/api/customers", np.SecretKey, `{"email":"c2@quota.example"}`); w.Code != http.StatusCreated {
		t.Fatalf("after a deletion: %d %s", w.Code, w.Body)
	}
}

// sizedStore is a durable store whose platforms' stored bytes a test sets.
type sizedStore struct {
	*storage.Store
	bytes atomic.Int64
	calls atomic.Int64
}

func (s *sizedStore) PlatformBytes(ctx context.Context, platformID string) (int64, error) {
	s.calls.Add(1)
	return s.bytes.Load(), nil
}

// TestStoredBytesQuota: a platform whose records take more than the quota
// can create no customer (429 quota_exceeded naming the quota); the
// estimate is made at most once a minute per platform.
func TestStoredBytesQuota(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	st := tempStore(t)
	sized := &sizedStore{Store: st}
	log := slog.New(slog.DiscardHandler)
	eng := engine.New(engine.Config{Store: sized, Logger: log, Now: clock.Now, Quotas: engine.Quotas{StoredBytes: 1000}})
	srv := NewServer(Config{Engine: eng, Store: sized, Logger: log})
	np, err := eng.Platforms.Create(context.Background(), engine.CreatePlatformInput{Name: "Sized"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sized.bytes.Store(999)
	if w := call(t, srv, "POST", "/api/customers", np.SecretKey, `{"email":"a@sized.example"}`); w.Code != http.StatusCreated {
		t.Fatalf("under the quota: %d %s", w.Code, w.Body)
	}
	sized.bytes.Store(5000)
	// Within the minute the estimate is not made again.
	if w := call(t, srv, "POST", "/api/customers", np.SecretKey, `{"email":"b@sized.example"}`); w.Code != http.StatusCreated {
		t.Fatalf("the cached estimate: %d %s", w.Code, w.Body)
	}
	if n := sized.calls.Load(); n != 1 {
		t.Fatalf("%d estimates within a minute, want 1", n)
	}
	clock.Add(time.Minute)
	w := call(t, srv, "POST", "/api/customers", np.SecretKey, `{"email":"c@sized.example"}`)
	e := errorOf(t, w, http.StatusTooManyRequests, engine.EQUOTAEXCEEDED)
	if !strings.Contains(e.Message, "Stored bytes quota") || !strings.Contains(e.Message, "5000") {
		t.Fatalf("over the stored bytes quota: %s", w.Body)
	}
	if n := sized.calls.Load(); n != 2 {
		t.Fatalf("%d estimates after a minute, want 2", n)
	}
}

// TestPlatformQuotaOverrides: the operator sets one platform's own quotas
// (PUT /admin/platforms/{id}/quotas) over the server's, in force at once
// for that platform only; null is the server's; bad values are 422 and
// change nothing; an unknown platform is 404.
func TestPlatformQuotaOverrides(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	srv, _, eng, np := quotaServer(t, engine.Config{Now: clock.Now, Quotas: engine.Quotas{Customers: 100, RPS: 1000, Burst: 2000}})
	ctx := context.Background()
	token, err := eng.Platforms.EnsureAdminToken(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	other, err := eng.Platforms.Create(ctx, engine.CreatePlatformInput{Name: "Other"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	path := "/admin/platforms/" + np.Platform.ID + "/quotas"
	w := call(t, srv, "GET", path, token, "")
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"quotas":{"customers":100,"requestsPerSecond":1000,"burst":2000,"storedBytes":0}`) ||
		!strings.Contains(w.Body.String(), `"overrides":{"customers":null,"requestsPerSecond":null,"storedBytes":null}`) {
		t.Fatalf("GET before any override: %d %s", w.Code, w.Body)
	}
	for _, bad := range []string{`{"customers":-1}`, `{"requestsPerSecond":-0.5}`, `{"storedBytes":-3}`, `{"rps":5}`} {
		if w := call(t, srv, "PUT", path, token, bad); w.Code != http.StatusUnprocessableEntity {
			t.Fatalf("PUT %s: %d %s", bad, w.Code, w.Body)
		}
	}
	if w := call(t, srv, "PUT", "/admin/platforms/plt_nope/quotas", token, `{"customers":1}`); w.Code != http.StatusNotFound {
		t.Fatalf("PUT for an unknown platform: %d %s", w.Code, w.Body)
	}
	if w := call(t, srv, "PUT", path, np.SecretKey, `{"customers":1}`); w.Code != http.StatusUnauthorized && w.Code != http.StatusForbidden {
		t.Fatalf("PUT with a platform key: %d %s", w.Code, w.Body)
	}
	w = call(t, srv, "PUT", path, token, `{"customers":1,"requestsPerSecond":1,"storedBytes":null}`)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"quotas":{"customers":1,"requestsPerSecond":1,"burst":2,"storedBytes":0}`) {
		t.Fatalf("PUT: %d %s", w.Code, w.Body)
	}
	// Requests per second: two at once (the burst), then 429.
	for i := range 2 {
		if w := call(t, srv, "GET", "/api/customers", np.SecretKey, ""); w.Code != http.StatusOK {
			t.Fatalf("call %d within the platform's burst: %d %s", i, w.Code, w.Body)
		}
	}
	if w := call(t, srv, "GET", "/api/customers", np.SecretKey, ""); w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Fatalf("beyond the platform's own rate: %d %s", w.Code, w.Body)
	}
	clock.Add(2 * time.Second)
	if w := call(t, srv, "POST", "/api/customers", np.SecretKey, `{"email":"a@own.example"}`); w.Code != http.StatusCreated {
		t.Fatalf("the first customer: %d %s", w.Code, w.Body)
	}
	clock.Add(2 * time.Second)
	w = call(t, srv, "POST", "/api/customers", np.SecretKey, `{"email":"b@own.example"}`)
	if e := errorOf(t, w, http.StatusTooManyRequests, engine.EQUOTAEXCEEDED); !strings.Contains(e.Message, "Customers quota") {
		t.Fatalf("beyond the platform's own customers quota: %s", w.Body)
	}
	// The other platform keeps the server's.
	for i := range 5 {
		if w := call(t, srv, "POST", "/api/customers", other.SecretKey, fmt.Sprintf(`{"email":"c%d@other.example"}`, i)); w.Code != http.StatusCreated {
			t.Fatalf("another platform: %d %s", w.Code, w.Body)
		}
	}
	// Back to the server's.
	if w := call(t, srv, "PUT", path, token, `{}`); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"customers":100`) {
		t.Fatalf("PUT {}: %d %s", w.Code, w.Body)
	}
	if w := call(t, srv, "POST", "/api/customers", np.SecretKey, `{"email":"b@own.example"}`); w.Code != http.StatusCreated {
		t.Fatalf("after the override is gone: %d %s", w.Code, w.Body)
	}
}
