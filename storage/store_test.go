package storage

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/dream-api/dream-api/engine"
)

var ctx = context.Background()

// openStore opens a store in dir and closes it when the test ends.
func openStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// reopen closes s and opens its directory again.
func reopen(t *testing.T, s *Store, dir string) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return openStore(t, dir)
}

// commit runs fn on a new batch and commits it.
func commit(t *testing.T, s *Store, fn func(b engine.Batch)) {
	t.Helper()
	b := s.NewBatch()
	defer b.Close()
	fn(b)
	if err := b.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

func wantNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if got := engine.ErrorCode(err); got != engine.ENOTFOUND {
		t.Errorf("%s: error %v (code %q), want %s", what, err, got, engine.ENOTFOUND)
	}
}

func wantEqual[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func ptr[T any](v T) *T { return &v }

func hash(s string) [32]byte {
	var h [32]byte
	copy(h[:], s)
	h[31] = 0xff // not text
	return h
}

func samplePlatform(id string) *engine.Platform {
	return &engine.Platform{ID: id, Name: "Acme " + id, Email: "dev@acme.test", CreatedAt: day("2024-01-02")}
}

func sampleKey(platformID, id, pk string, created time.Time) *engine.Key {
	return &engine.Key{
		ID: id, PlatformID: platformID, Mode: engine.Test, PublishableKey: pk,
		SecretHash: hash("secret of " + id), SecretHint: "sk_test_…" + id,
		CreatedAt: created, LastUsedAt: ptr(created.Add(time.Hour)), ExpiresAt: ptr(created.AddDate(1, 0, 0)),
	}
}

func sampleCustomer(id, email string) *engine.Customer {
	return &engine.Customer{
		ID: id, Email: email, FirstName: "Ann", LastName: "Lee", Plan: "pro", PublishableKey: "pk_test_1",
		Metadata:         map[string]any{"team": "blue", "seats": 3.0, "flags": map[string]any{"beta": true}},
		StripeCustomerID: ptr("cus_Stripe1"),
		CreatedAt:        time.Date(2024, 1, 2, 3, 4, 5, 678901234, time.UTC),
		PeriodStart:      day("2024-01-15"),
		PeriodEnd:        day("2024-02-15"),
	}
}

func TestPutGetRoundTrip(t *testing.T) {
	s := openStore(t, t.TempDir())
	admin := hash("admin")
	plat := samplePlatform("plt_a")
	key := sampleKey("plt_a", "key_1", "pk_test_1", day("2024-01-02"))
	key.RevokedAt = ptr(day("2024-03-01"))
	tiers := engine.DefaultTiers()
	tiers.Tiers[1].PriceID, tiers.Tiers[1].ProductID = ptr("price_1"), ptr("prod_1")
	cus := sampleCustomer("cus_a", "ann@example.com")
	ck := engine.CounterKey{Tenant: tenantLive, CustomerID: "cus_a", Feature: "requests", PeriodStart: day("2024-01-15")}
	cnt := engine.Counter{Count: 1<<40 + 7, PeriodEnd: day("2024-02-15")}
	state := []byte{0, 1, 2, 0xff}
	body := make([]byte, 256)
	for i := range body {
		body[i] = byte(i)
	}
	idem := &engine.IdemRecord{RequestHash: hash("request"), Status: 201, Body: body, CreatedAt: time.UnixMilli(1717171717171).UTC()}

	commit(t, s, func(b engine.Batch) {
		b.PutAdminTokenHash(admin)
		b.PutPlatform(plat)
		b.PutKey(key)
		b.PutTiers(engine.Tenant{PlatformID: "plt_a"}, tiers)
		b.PutCustomer(tenantLive, cus, "")
		b.PutCounter(ck, cnt)
		b.PutPolicyState(tenantLive, "cus_a", "requests", state)
		b.PutIdempotency(tenantLive, "order 17/retry ✓", idem)
	})

	if got, err := s.AdminTokenHash(ctx); err != nil || got != admin {
		t.Errorf("AdminTokenHash = %x, %v; want %x", got, err, admin)
	}
	gotPlat, err := s.Platform(ctx, "plt_a")
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "Platform", gotPlat, plat)

	gotKey, err := s.Key(ctx, "plt_a", "key_1")
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "Key", gotKey, key)
	gotKey, err = s.KeyBySecretHash(ctx, key.SecretHash)
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "KeyBySecretHash", gotKey, key)
	gotKeys, err := s.KeysByPublishable(ctx, "pk_test_1")
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "KeysByPublishable", gotKeys, []*engine.Key{key})

	gotTiers, err := s.Tiers(ctx, engine.Tenant{PlatformID: "plt_a"})
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "Tiers", gotTiers, tiers)

	gotCus, err := s.Customer(ctx, tenantLive, "cus_a")
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "Customer", gotCus, cus)
	if id, err := s.CustomerIDByEmail(ctx, tenantLive, "ann@example.com"); err != nil || id != "cus_a" {
		t.Errorf("CustomerIDByEmail = %q, %v; want cus_a", id, err)
	}

	gotCnt, err := s.Counter(ctx, ck)
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "Counter", gotCnt, cnt)

	gotState, err := s.PolicyState(ctx, tenantLive, "cus_a", "requests")
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "PolicyState", gotState, state)

	gotIdem, err := s.Idempotency(ctx, tenantLive, "order 17/retry ✓")
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "Idempotency", gotIdem, idem)
}

func TestMissingRecords(t *testing.T) {
	s := openStore(t, t.TempDir())
	// Data of another tenant and mode must not be found either.
	commit(t, s, func(b engine.Batch) {
		b.PutCustomer(tenantTest, sampleCustomer("cus_a", "ann@example.com"), "")
		b.PutIdempotency(tenantTest, "k", &engine.IdemRecord{Status: 200})
		b.PutPolicyState(tenantTest, "cus_a", "requests", []byte("x"))
		b.PutCounter(engine.CounterKey{Tenant: tenantTest, CustomerID: "cus_a", Feature: "requests"}, engine.Counter{Count: 1})
	})
	_, err := s.AdminTokenHash(ctx)
	wantNotFound(t, "AdminTokenHash", err)
	_, err = s.Platform(ctx, "plt_a")
	wantNotFound(t, "Platform", err)
	_, err = s.KeyBySecretHash(ctx, hash("x"))
	wantNotFound(t, "KeyBySecretHash", err)
	_, err = s.KeysByPublishable(ctx, "pk_x")
	wantNotFound(t, "KeysByPublishable", err)
	_, err = s.Key(ctx, "plt_a", "key_1")
	wantNotFound(t, "Key", err)
	_, err = s.Tiers(ctx, engine.Tenant{PlatformID: "plt_a"})
	wantNotFound(t, "Tiers", err)
	_, err = s.Customer(ctx, tenantLive, "cus_a")
	wantNotFound(t, "Customer", err)
	_, err = s.CustomerIDByEmail(ctx, tenantLive, "ann@example.com")
	wantNotFound(t, "CustomerIDByEmail", err)
	_, err = s.Idempotency(ctx, tenantLive, "k")
	wantNotFound(t, "Idempotency", err)

	if c, err := s.Counter(ctx, engine.CounterKey{Tenant: tenantLive, CustomerID: "cus_a", Feature: "requests"}); err != nil || c != (engine.Counter{}) {
		t.Errorf("Counter = %+v, %v; want zero, nil", c, err)
	}
	if st, err := s.PolicyState(ctx, tenantLive, "cus_a", "requests"); err != nil || st != nil {
		t.Errorf("PolicyState = %q, %v; want nil, nil", st, err)
	}
	if ps, err := s.Periods(ctx, tenantLive, "cus_a"); err != nil || len(ps) != 0 {
		t.Errorf("Periods = %+v, %v; want none", ps, err)
	}
	if ks, err := s.Keys(ctx, "plt_a"); err != nil || len(ks) != 0 {
		t.Errorf("Keys = %+v, %v; want none", ks, err)
	}
	if cs, more, err := s.Customers(ctx, tenantLive, engine.Page{}); err != nil || len(cs) != 0 || more {
		t.Errorf("Customers = %d items, %v, %v; want none", len(cs), more, err)
	}
}

// A rotation keeps the publishable key: both records are found by it,
// oldest first, whatever their ids.
func TestKeysByPublishableAfterRotation(t *testing.T) {
	s := openStore(t, t.TempDir())
	old := sampleKey("plt_a", "key_2", "pk_test_1", day("2024-01-01"))
	rotated := sampleKey("plt_a", "key_1", "pk_test_1", day("2024-02-01"))
	other := sampleKey("plt_a", "key_3", "pk_test_10", day("2024-01-15"))
	commit(t, s, func(b engine.Batch) { b.PutKey(old); b.PutKey(other) })
	old.RevokedAt = ptr(day("2024-02-01"))
	commit(t, s, func(b engine.Batch) { b.PutKey(old); b.PutKey(rotated) })

	got, err := s.KeysByPublishable(ctx, "pk_test_1")
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "KeysByPublishable", got, []*engine.Key{old, rotated})
	for _, k := range []*engine.Key{old, rotated, other} {
		got, err := s.KeyBySecretHash(ctx, k.SecretHash)
		if err != nil {
			t.Fatal(err)
		}
		wantEqual(t, "KeyBySecretHash "+k.ID, got, k)
	}
}

func TestKeysListsOnePlatformOldestFirst(t *testing.T) {
	s := openStore(t, t.TempDir())
	a1 := sampleKey("plt_a", "key_b", "pk_1", day("2024-01-01"))
	a2 := sampleKey("plt_a", "key_a", "pk_2", day("2024-03-01"))
	a3 := sampleKey("plt_a", "key_c", "pk_3", day("2024-03-01"))
	commit(t, s, func(b engine.Batch) {
		b.PutKey(a3)
		b.PutKey(a2)
		b.PutKey(a1)
		b.PutKey(sampleKey("plt_ab", "key_z", "pk_4", day("2023-01-01")))
	})
	got, err := s.Keys(ctx, "plt_a")
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "Keys", got, []*engine.Key{a1, a2, a3})
}

// An index entry whose record moved on does not authenticate.
func TestKeyBySecretHashIgnoresStaleIndex(t *testing.T) {
	s := openStore(t, t.TempDir())
	k := sampleKey("plt_a", "key_1", "pk_1", day("2024-01-01"))
	oldHash := k.SecretHash
	commit(t, s, func(b engine.Batch) { b.PutKey(k) })
	k.SecretHash = hash("new secret")
	commit(t, s, func(b engine.Batch) { b.PutKey(k) })

	_, err := s.KeyBySecretHash(ctx, oldHash)
	wantNotFound(t, "KeyBySecretHash(old hash)", err)
	if got, err := s.KeyBySecretHash(ctx, k.SecretHash); err != nil || got.ID != "key_1" {
		t.Errorf("KeyBySecretHash(new hash) = %v, %v", got, err)
	}
}

func TestCustomerEmailIndex(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	lookup := func(tn engine.Tenant, email string) (string, error) {
		t.Helper()
		return s.CustomerIDByEmail(ctx, tn, email)
	}
	wantID := func(tn engine.Tenant, email, want string) {
		t.Helper()
		if got, err := lookup(tn, email); err != nil || got != want {
			t.Errorf("CustomerIDByEmail(%v, %q) = %q, %v; want %q", tn.Mode, email, got, err, want)
		}
	}
	wantNone := func(tn engine.Tenant, email string) {
		t.Helper()
		_, err := lookup(tn, email)
		wantNotFound(t, "CustomerIDByEmail "+email, err)
	}

	c := sampleCustomer("cus_a", "ann@example.com")
	commit(t, s, func(b engine.Batch) {
		b.PutCustomer(tenantLive, c, "")
		b.PutCustomer(tenantTest, sampleCustomer("cus_t", "ann@example.com"), "")
	})
	wantID(tenantLive, "ANN@example.com", "cus_a")
	wantID(tenantTest, "ann@example.com", "cus_t")

	// The email changes: the index follows.
	c.Email = "Ann.Lee@Example.com"
	commit(t, s, func(b engine.Batch) { b.PutCustomer(tenantLive, c, "ann@example.com") })
	wantNone(tenantLive, "ann@example.com")
	wantID(tenantLive, "ann.lee@example.com", "cus_a")
	wantID(tenantTest, "ann@example.com", "cus_t")

	// A change of case only keeps the entry.
	prev := c.Email
	c.Email = "ann.lee@example.com"
	commit(t, s, func(b engine.Batch) { b.PutCustomer(tenantLive, c, prev) })
	wantID(tenantLive, "ann.lee@example.com", "cus_a")

	// Clearing the email removes the entry.
	c.Email = ""
	commit(t, s, func(b engine.Batch) { b.PutCustomer(tenantLive, c, "ann.lee@example.com") })
	wantNone(tenantLive, "ann.lee@example.com")

	// Deleting removes the record and its entry; usage history stays.
	c.Email = "ann@example.com"
	ck := engine.CounterKey{Tenant: tenantLive, CustomerID: "cus_a", Feature: "requests", PeriodStart: day("2024-01-01")}
	commit(t, s, func(b engine.Batch) {
		b.PutCustomer(tenantLive, c, "")
		b.PutCounter(ck, engine.Counter{Count: 5, PeriodEnd: day("2024-02-01")})
	})
	wantID(tenantLive, "ann@example.com", "cus_a")
	commit(t, s, func(b engine.Batch) { b.DeleteCustomer(tenantLive, c) })

	s = reopen(t, s, dir)
	_, err := s.Customer(ctx, tenantLive, "cus_a")
	wantNotFound(t, "Customer after delete", err)
	wantNone(tenantLive, "ann@example.com")
	wantID(tenantTest, "ann@example.com", "cus_t")
	if got, err := s.Counter(ctx, ck); err != nil || got.Count != 5 {
		t.Errorf("Counter after delete = %+v, %v; want count 5", got, err)
	}
	if ps, err := s.Periods(ctx, tenantLive, "cus_a"); err != nil || len(ps) != 1 {
		t.Errorf("Periods after delete = %+v, %v; want one", ps, err)
	}
}

func TestPeriods(t *testing.T) {
	s := openStore(t, t.TempDir())
	want := []engine.Period{
		{Feature: "api-calls", Count: 1, PeriodStart: day("2024-01-01"), PeriodEnd: day("2024-02-01")},
		{Feature: "api-calls", Count: 2, PeriodStart: day("2024-02-01"), PeriodEnd: day("2024-03-01")},
		{Feature: "api_calls", Count: 3, PeriodStart: day("2023-12-01"), PeriodEnd: day("2024-01-01")},
		{Feature: "requests", Count: 4, PeriodStart: day("2023-11-15"), PeriodEnd: day("2023-12-15")},
		{Feature: "requests", Count: 5, PeriodStart: day("2024-01-15"), PeriodEnd: day("2024-02-15")},
		{Feature: "requests", Count: 6, PeriodStart: day("2024-10-15"), PeriodEnd: day("2024-11-15")},
	}
	noise := []engine.CounterKey{
		{Tenant: tenantLive, CustomerID: "cus_ab", Feature: "requests", PeriodStart: day("2024-01-15")},
		{Tenant: tenantLive, CustomerID: "cus_", Feature: "requests", PeriodStart: day("2024-01-15")},
		{Tenant: tenantTest, CustomerID: "cus_a", Feature: "requests", PeriodStart: day("2024-01-15")},
		{Tenant: engine.Tenant{PlatformID: "plt_ab"}, CustomerID: "cus_a", Feature: "requests", PeriodStart: day("2024-01-15")},
	}
	commit(t, s, func(b engine.Batch) {
		for _, p := range slices.Backward(want) {
			ck := engine.CounterKey{Tenant: tenantLive, CustomerID: "cus_a", Feature: p.Feature, PeriodStart: p.PeriodStart}
			b.PutCounter(ck, engine.Counter{Count: p.Count, PeriodEnd: p.PeriodEnd})
		}
		for _, ck := range noise {
			b.PutCounter(ck, engine.Counter{Count: 99})
		}
	})
	got, err := s.Periods(ctx, tenantLive, "cus_a")
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "Periods", got, want)
}

func customerIDs(cs []*engine.Customer) []string {
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.ID)
	}
	return ids
}

func TestCustomersPagination(t *testing.T) {
	s := openStore(t, t.TempDir())
	var all []string
	commit(t, s, func(b engine.Batch) {
		for i := range 45 {
			id := fmt.Sprintf("cus_%02d", 44-i)
			b.PutCustomer(tenantLive, sampleCustomer(id, id+"@example.com"), "")
			all = append(all, id)
		}
		// Other worlds: never listed.
		b.PutCustomer(tenantTest, sampleCustomer("cus_05x", ""), "")
		b.PutCustomer(engine.Tenant{PlatformID: "plt_ab"}, sampleCustomer("cus_05y", ""), "")
		b.PutCustomer(engine.Tenant{PlatformID: "plt_"}, sampleCustomer("cus_05z", ""), "")
	})
	slices.Sort(all)

	for _, tc := range []struct {
		name     string
		page     engine.Page
		want     []string
		wantMore bool
	}{
		{"default limit", engine.Page{}, all[:20], true},
		{"second page", engine.Page{Limit: 20, StartingAfter: all[19]}, all[20:40], true},
		{"last page", engine.Page{Limit: 20, StartingAfter: all[39]}, all[40:], false},
		{"exactly the rest", engine.Page{Limit: 5, StartingAfter: all[39]}, all[40:], false},
		{"one", engine.Page{Limit: 1}, all[:1], true},
		{"all", engine.Page{Limit: 100}, all, false},
		{"after a missing id", engine.Page{Limit: 3, StartingAfter: "cus_10a"}, all[11:14], true},
		{"after a prefix of ids", engine.Page{Limit: 3, StartingAfter: "cus_1"}, all[10:13], true},
		{"after the last", engine.Page{Limit: 3, StartingAfter: all[44]}, nil, false},
		{"after everything", engine.Page{Limit: 3, StartingAfter: "zzz"}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs, more, err := s.Customers(ctx, tenantLive, tc.page)
			if err != nil {
				t.Fatal(err)
			}
			wantEqual(t, "ids", customerIDs(cs), tc.want)
			if more != tc.wantMore {
				t.Errorf("hasMore = %v, want %v", more, tc.wantMore)
			}
		})
	}

	// Walking the pages yields every customer once.
	var walked []string
	page := engine.Page{Limit: 7}
	for {
		cs, more, err := s.Customers(ctx, tenantLive, page)
		if err != nil {
			t.Fatal(err)
		}
		walked = append(walked, customerIDs(cs)...)
		if !more {
			break
		}
		page.StartingAfter = cs[len(cs)-1].ID
	}
	wantEqual(t, "walked", walked, all)
}

func TestPlatformsPagination(t *testing.T) {
	s := openStore(t, t.TempDir())
	ids := []string{"plt_a", "plt_a0", "plt_ab", "plt_b", "plt_c"}
	commit(t, s, func(b engine.Batch) {
		for _, id := range slices.Backward(ids) {
			b.PutPlatform(samplePlatform(id))
			// Records of a platform's other kinds are not platforms.
			b.PutTiers(engine.Tenant{PlatformID: id}, engine.DefaultTiers())
			b.PutKey(sampleKey(id, "key_1", "pk_"+id, day("2024-01-01")))
		}
	})
	list := func(p engine.Page) ([]string, bool) {
		t.Helper()
		ps, more, err := s.Platforms(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range ps {
			got = append(got, p.ID)
		}
		return got, more
	}
	got, more := list(engine.Page{Limit: 2})
	wantEqual(t, "first page", got, ids[:2])
	if !more {
		t.Error("first page: hasMore = false")
	}
	got, more = list(engine.Page{Limit: 2, StartingAfter: "plt_a0"})
	wantEqual(t, "second page", got, ids[2:4])
	if !more {
		t.Error("second page: hasMore = false")
	}
	got, more = list(engine.Page{Limit: 2, StartingAfter: "plt_b"})
	wantEqual(t, "last page", got, ids[4:])
	if more {
		t.Error("last page: hasMore = true")
	}
	got, _ = list(engine.Page{})
	wantEqual(t, "default limit", got, ids)
}

func TestPersistsAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	c := sampleCustomer("cus_a", "ann@example.com")
	ck := engine.CounterKey{Tenant: tenantLive, CustomerID: "cus_a", Feature: "requests", PeriodStart: day("2024-01-01")}
	commit(t, s, func(b engine.Batch) {
		b.PutPlatform(samplePlatform("plt_a"))
		b.PutCustomer(tenantLive, c, "")
		b.PutCounter(ck, engine.Counter{Count: 42, PeriodEnd: day("2024-02-01")})
	})

	s = reopen(t, s, dir)
	if _, err := s.Platform(ctx, "plt_a"); err != nil {
		t.Errorf("Platform after reopen: %v", err)
	}
	got, err := s.Customer(ctx, tenantLive, "cus_a")
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "Customer after reopen", got, c)
	if cnt, err := s.Counter(ctx, ck); err != nil || cnt.Count != 42 {
		t.Errorf("Counter after reopen = %+v, %v; want 42", cnt, err)
	}
	if err := s.Healthy(); err != nil {
		t.Errorf("Healthy after reopen: %v", err)
	}
}

// Many batches in flight at once, as the engine runs them: Apply under a
// per-customer lock, Wait outside it. Every waited-for write survives.
func TestConcurrentApplyWaitIsDurable(t *testing.T) {
	const goroutines, rounds = 32, 25
	dir := t.TempDir()
	s := openStore(t, dir)
	key := func(i int) engine.CounterKey {
		return engine.CounterKey{Tenant: tenantLive, CustomerID: fmt.Sprintf("cus_%02d", i), Feature: "requests", PeriodStart: day("2024-01-01")}
	}
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for i := range goroutines {
		wg.Go(func() {
			for range rounds {
				if err := increment(s, key(i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	s = reopen(t, s, dir)
	for i := range goroutines {
		if c, err := s.Counter(ctx, key(i)); err != nil || c.Count != rounds {
			t.Errorf("counter %d = %+v, %v; want %d", i, c, err, rounds)
		}
	}
}

// increment adds one to a counter that only the calling goroutine writes.
func increment(s *Store, k engine.CounterKey) error {
	b := s.NewBatch()
	defer b.Close()
	c, err := s.Counter(ctx, k)
	if err != nil {
		return err
	}
	b.PutCounter(k, engine.Counter{Count: c.Count + 1, PeriodEnd: day("2024-02-01")})
	if err := b.Apply(); err != nil {
		return err
	}
	// Applied means visible, before it is durable.
	if got, err := s.Counter(ctx, k); err != nil {
		return err // ErrClosed when the store closed meanwhile
	} else if got.Count != c.Count+1 {
		return fmt.Errorf("counter %s after Apply = %+v; want %d", k.CustomerID, got, c.Count+1)
	}
	return b.Wait()
}

func TestBatchLifecycle(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)

	// Nothing is visible before Apply, everything after it.
	b := s.NewBatch()
	b.PutPlatform(samplePlatform("plt_a"))
	_, err := s.Platform(ctx, "plt_a")
	wantNotFound(t, "Platform before Apply", err)
	if err := b.Wait(); err == nil {
		t.Error("Wait before Apply succeeded")
	}
	if err := b.Apply(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Platform(ctx, "plt_a"); err != nil {
		t.Errorf("Platform after Apply: %v", err)
	}
	if err := b.Apply(); !errors.Is(err, errBatchUsed) {
		t.Errorf("second Apply = %v, want errBatchUsed", err)
	}
	if err := b.Commit(); !errors.Is(err, errBatchUsed) {
		t.Errorf("Commit after Apply = %v, want errBatchUsed", err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("a write after Apply did not panic")
			}
		}()
		b.PutPlatform(samplePlatform("plt_b"))
	}()
	if err := b.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := b.Wait(); err != nil {
		t.Errorf("second Wait: %v", err)
	}
	b.Close()
	b.Close()

	// Closed without committing: discarded.
	b = s.NewBatch()
	b.PutPlatform(samplePlatform("plt_c"))
	b.Close()
	if err := b.Commit(); !errors.Is(err, errBatchUsed) {
		t.Errorf("Commit after Close = %v, want errBatchUsed", err)
	}

	// Closed after Apply without Wait: Close waits, the write stays.
	b = s.NewBatch()
	b.PutPlatform(samplePlatform("plt_d"))
	if err := b.Apply(); err != nil {
		t.Fatal(err)
	}
	b.Close()

	// An empty batch commits.
	b = s.NewBatch()
	if err := b.Commit(); err != nil {
		t.Errorf("empty Commit: %v", err)
	}
	b.Close()

	s = reopen(t, s, dir)
	_, err = s.Platform(ctx, "plt_c")
	wantNotFound(t, "discarded platform", err)
	for _, id := range []string{"plt_a", "plt_d"} {
		if _, err := s.Platform(ctx, id); err != nil {
			t.Errorf("Platform %s after reopen: %v", id, err)
		}
	}
}

// A batch with a write that cannot be stored writes nothing at all.
func TestBatchErrorWritesNothing(t *testing.T) {
	for _, tc := range []struct {
		name    string
		write   func(b engine.Batch)
		wantErr error
	}{
		{"metadata that is not JSON", func(b engine.Batch) {
			c := sampleCustomer("cus_a", "ann@example.com")
			c.Metadata = map[string]any{"x": math.NaN()}
			b.PutCustomer(tenantLive, c, "")
		}, nil},
		{"NUL in a customer id", func(b engine.Batch) {
			b.PutCustomer(tenantLive, sampleCustomer("cus_a\x00b", ""), "")
		}, errBadComponent},
		{"NUL in a feature", func(b engine.Batch) {
			b.PutCounter(engine.CounterKey{Tenant: tenantLive, CustomerID: "cus_a", Feature: "a\x00b"}, engine.Counter{Count: 1})
		}, errBadComponent},
		{"empty key id", func(b engine.Batch) {
			b.PutKey(sampleKey("plt_a", "", "pk_1", day("2024-01-01")))
		}, errBadComponent},
		{"empty idempotency key", func(b engine.Batch) {
			b.PutIdempotency(tenantLive, "", &engine.IdemRecord{})
		}, errBadComponent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, t.TempDir())
			b := s.NewBatch()
			defer b.Close()
			b.PutPlatform(samplePlatform("plt_a"))
			tc.write(b)
			b.PutPlatform(samplePlatform("plt_b"))
			err := b.Apply()
			if err == nil {
				t.Fatal("Apply succeeded")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("Apply = %v, want %v", err, tc.wantErr)
			}
			for _, id := range []string{"plt_a", "plt_b"} {
				_, err := s.Platform(ctx, id)
				wantNotFound(t, "Platform "+id, err)
			}
		})
	}
}

// A value with a format byte this build does not know is an error, not a
// missing record and not a panic.
func TestUnknownFormatIsAnError(t *testing.T) {
	s := openStore(t, t.TempDir())
	ck := engine.CounterKey{Tenant: tenantLive, CustomerID: "cus_a", Feature: "requests", PeriodStart: day("2024-01-01")}
	keyRef := encodeKeyRef(keyRef{platformID: "plt_a", id: "key_1"})
	reads := []struct {
		name string
		key  []byte
		read func() error
	}{
		{"admin token", adminTokenKey(), func() error { _, err := s.AdminTokenHash(ctx); return err }},
		{"platform", platformKey("plt_a"), func() error { _, err := s.Platform(ctx, "plt_a"); return err }},
		{"platforms", platformKey("plt_a"), func() error { _, _, err := s.Platforms(ctx, engine.Page{}); return err }},
		{"key", keyKey("plt_a", "key_1"), func() error { _, err := s.Key(ctx, "plt_a", "key_1"); return err }},
		{"keys", keyKey("plt_a", "key_1"), func() error { _, err := s.Keys(ctx, "plt_a"); return err }},
		{"secret index", secretIndexKey(hash("s")), func() error { _, err := s.KeyBySecretHash(ctx, hash("s")); return err }},
		{"publishable index", publishableIndexKey("pk_1", "plt_a", "key_1"), func() error { _, err := s.KeysByPublishable(ctx, "pk_1"); return err }},
		{"tiers", tiersKey(engine.Tenant{PlatformID: "plt_a"}), func() error { _, err := s.Tiers(ctx, engine.Tenant{PlatformID: "plt_a"}); return err }},
		{"customer", customerKey(tenantLive, "cus_a"), func() error { _, err := s.Customer(ctx, tenantLive, "cus_a"); return err }},
		{"customers", customerKey(tenantLive, "cus_a"), func() error { _, _, err := s.Customers(ctx, tenantLive, engine.Page{}); return err }},
		{"email index", emailIndexKey(tenantLive, "a@b.c"), func() error { _, err := s.CustomerIDByEmail(ctx, tenantLive, "a@b.c"); return err }},
		{"counter", counterKey(ck), func() error { _, err := s.Counter(ctx, ck); return err }},
		{"periods", counterKey(ck), func() error { _, err := s.Periods(ctx, tenantLive, "cus_a"); return err }},
		{"policy state", policyStateKey(tenantLive, "cus_a", "requests"), func() error { _, err := s.PolicyState(ctx, tenantLive, "cus_a", "requests"); return err }},
		{"idempotency", idempotencyKey(tenantLive, "k"), func() error { _, err := s.Idempotency(ctx, tenantLive, "k"); return err }},
	}
	values := []struct {
		name string
		val  []byte
	}{
		{"format 2", append([]byte{2}, keyRef[1:]...)},
		{"format 0", append([]byte{0}, keyRef[1:]...)},
		{"empty", []byte{}},
	}
	for _, r := range reads {
		for _, v := range values {
			t.Run(r.name+"/"+v.name, func(t *testing.T) {
				if err := s.db.Set(r.key, v.val, nil); err != nil {
					t.Fatal(err)
				}
				defer s.db.Delete(r.key, nil)
				err := r.read()
				if !errors.Is(err, ErrFormat) {
					t.Errorf("error %v, want ErrFormat", err)
				}
				if code := engine.ErrorCode(err); code != engine.EINTERNAL {
					t.Errorf("error code %q, want %q", code, engine.EINTERNAL)
				}
			})
		}
	}
}

// Values of format 1 that are too short or malformed for their kind are
// errors too.
func TestMalformedValuesAreErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		decode func([]byte) error
		val    []byte
	}{
		{"short counter", func(v []byte) error { _, err := decodeCounter(v); return err }, []byte{formatV1, 0, 0, 0}},
		{"long counter", func(v []byte) error { _, err := decodeCounter(v); return err }, make([]byte, counterLen+1)},
		{"short idempotency record", func(v []byte) error { _, err := decodeIdempotency(v); return err }, []byte{formatV1, 1, 2}},
		{"short hash", func(v []byte) error { _, err := decodeHash("h", v); return err }, []byte{formatV1, 1}},
		{"key ref without separator", func(v []byte) error { _, err := decodeKeyRef(v); return err }, []byte{formatV1, 'a'}},
		{"key with short hash", func(v []byte) error { _, err := decodeKey(v); return err }, []byte("\x01{\"secretHash\":\"AAAA\"}")},
		{"truncated JSON", func(v []byte) error { _, err := decodePlatform(v); return err }, []byte("\x01{\"id\":")},
		{"short schema", func(v []byte) error { _, err := decodeSchema(v); return err }, []byte{formatV1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "long counter" {
				tc.val[0] = formatV1
			}
			if err := tc.decode(tc.val); !errors.Is(err, ErrFormat) {
				t.Errorf("error %v, want ErrFormat", err)
			}
		})
	}
}

func TestCheckpoint(t *testing.T) {
	s := openStore(t, t.TempDir())
	cp := filepath.Join(t.TempDir(), "backup")
	c := sampleCustomer("cus_a", "ann@example.com")
	commit(t, s, func(b engine.Batch) {
		b.PutPlatform(samplePlatform("plt_a"))
		b.PutCustomer(tenantLive, c, "")
	})
	// Applied but not yet waited for: the checkpoint syncs the log first.
	applied := s.NewBatch()
	defer applied.Close()
	applied.PutPlatform(samplePlatform("plt_b"))
	if err := applied.Apply(); err != nil {
		t.Fatal(err)
	}

	if err := s.Checkpoint(cp); err != nil {
		t.Fatalf("Checkpoint: %v", err)
	}
	if err := applied.Wait(); err != nil {
		t.Fatal(err)
	}
	commit(t, s, func(b engine.Batch) { b.PutPlatform(samplePlatform("plt_later")) })
	if err := s.Checkpoint(cp); err == nil {
		t.Error("Checkpoint into an existing directory succeeded")
	}

	backup := openStore(t, cp)
	if err := backup.Healthy(); err != nil {
		t.Errorf("backup not healthy: %v", err)
	}
	for _, id := range []string{"plt_a", "plt_b"} {
		if _, err := backup.Platform(ctx, id); err != nil {
			t.Errorf("backup Platform %s: %v", id, err)
		}
	}
	_, err := backup.Platform(ctx, "plt_later")
	wantNotFound(t, "platform written after the checkpoint", err)
	got, err := backup.Customer(ctx, tenantLive, "cus_a")
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "backup Customer", got, c)
	if id, err := backup.CustomerIDByEmail(ctx, tenantLive, "ann@example.com"); err != nil || id != "cus_a" {
		t.Errorf("backup CustomerIDByEmail = %q, %v", id, err)
	}
}

func TestClosedStore(t *testing.T) {
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Healthy(); err != nil {
		t.Fatalf("Healthy: %v", err)
	}
	pending := s.NewBatch()
	pending.PutPlatform(samplePlatform("plt_a"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	for name, err := range map[string]error{
		"Healthy":     s.Healthy(),
		"Checkpoint":  s.Checkpoint(filepath.Join(t.TempDir(), "cp")),
		"Apply":       pending.Apply(),
		"Commit":      s.NewBatch().Commit(),
		"Platform":    func() error { _, err := s.Platform(ctx, "plt_a"); return err }(),
		"Customers":   func() error { _, _, err := s.Customers(ctx, tenantLive, engine.Page{}); return err }(),
		"Counter":     func() error { _, err := s.Counter(ctx, engine.CounterKey{}); return err }(),
		"PolicyState": func() error { _, err := s.PolicyState(ctx, tenantLive, "c", "f"); return err }(),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s on a closed store = %v, want ErrClosed", name, err)
		}
	}
	pending.Close()
}

func TestScanStopsOnCancelledContext(t *testing.T) {
	s := openStore(t, t.TempDir())
	commit(t, s, func(b engine.Batch) { b.PutCustomer(tenantLive, sampleCustomer("cus_a", ""), "") })
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := s.Customers(cctx, tenantLive, engine.Page{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Customers with a cancelled context = %v, want context.Canceled", err)
	}
}

// Closing while batches and reads are in flight returns ErrClosed to the
// late ones and never panics or hangs.
func TestCloseWhileServing(t *testing.T) {
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			k := engine.CounterKey{Tenant: tenantLive, CustomerID: fmt.Sprintf("cus_%d", i), Feature: "requests"}
			for {
				err := increment(s, k)
				if errors.Is(err, ErrClosed) {
					return
				} else if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	time.Sleep(20 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestCommitDelay: the log's next sync is held back only after a group of
// commits; a lone writer's commits never wait, and the delay reaches Pebble.
func TestCommitDelay(t *testing.T) {
	c := commitDelay{delay: 100 * time.Microsecond, siblings: 4}
	if d := c.next(); d != 0 {
		t.Fatalf("no commits: next = %v, want 0", d)
	}
	for range 3 {
		c.committed()
		if d := c.next(); d != 0 {
			t.Fatalf("one commit per sync (a lone writer): next = %v, want 0", d)
		}
	}
	for range 4 {
		c.committed()
	}
	if d := c.next(); d != 100*time.Microsecond {
		t.Fatalf("4 commits since the last sync: next = %v, want 100µs", d)
	}
	if d := c.next(); d != 0 {
		t.Fatalf("the count starts again after each sync: next = %v, want 0", d)
	}

	// Open passes the options on; -1 turns the delay off.
	st, err := Open(t.TempDir(), &Options{CommitDelay: time.Millisecond, CommitSiblings: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if st.commits.delay != time.Millisecond || st.commits.siblings != 2 {
		t.Fatalf("options not applied: %+v", &st.commits)
	}
	off, err := Open(t.TempDir(), &Options{CommitDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer off.Close()
	if off.commits.delay != 0 {
		t.Fatalf("CommitDelay -1: delay %v, want none", off.commits.delay)
	}
}

// The memtable follows the store's tables: 4 MiB for a new or small store,
// a quarter of the tables rounded up to a power of two for a larger one, at
// most 64 MiB.
func TestMemTableSize(t *testing.T) {
	for _, c := range []struct {
		tables []int64
		want   uint64
	}{
		{nil, 4 << 20},
		{[]int64{1 << 20}, 4 << 20},
		{[]int64{20 << 20, 20 << 20}, 16 << 20},   // 40 MiB / 4 = 10 → 16
		{[]int64{64 << 20, 36 << 20}, 32 << 20},   // 100 MiB / 4 = 25 → 32
		{[]int64{600 << 20, 600 << 20}, 64 << 20}, // capped
	} {
		dir := t.TempDir()
		for i, n := range c.tables {
			f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%06d.sst", i)))
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Truncate(n); err != nil { // sparse: no bytes written
				t.Fatal(err)
			}
			f.Close()
		}
		// Other files (logs, the manifest) do not count.
		if err := os.WriteFile(filepath.Join(dir, "000001.log"), make([]byte, 1<<20), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := memTableSize(vfs.Default, dir); got != c.want {
			t.Errorf("tables %v: memtable %d MiB, want %d", c.tables, got>>20, c.want>>20)
		}
	}
	if got := memTableSize(vfs.Default, filepath.Join(t.TempDir(), "absent")); got != 4<<20 {
		t.Errorf("a new store: memtable %d MiB, want 4", got>>20)
	}
}
