// Package storetest is the conformance suite of engine.Store: what the
// engine relies on of any store, run against each implementation (the
// Pebble store in storage, the PostgreSQL store in storage/postgres).
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
)

// Open returns a new, empty store for one test; it is closed by the
// test's cleanup (the opener registers it).
type Open func(t *testing.T) engine.Store

// Run runs every conformance test against stores made by open.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open Open)
	}{
		{"RoundTrip", testRoundTrip},
		{"NotFound", testNotFound},
		{"TenantsAreSeparate", testTenantsAreSeparate},
		{"OverwriteAndDelete", testOverwriteAndDelete},
		{"Keys", testKeys},
		{"Paging", testPaging},
		{"Ordering", testOrdering},
		{"IdempotencyExpiry", testIdempotencyExpiry},
		{"UpdateSerializesOnALock", testUpdateSerializes},
		{"UpdateManyLocks", testUpdateManyLocks},
		{"UpdateFailureWritesNothing", testUpdateFailure},
		{"UpdateResult", testUpdateResult},
		{"Watch", testWatch},
		{"BatchLifecycle", testBatchLifecycle},
		{"BadIDWritesNothing", testBadID},
		{"DashboardAndWebhooks", testDashboardAndWebhooks},
		{"Auth", testAuth},
		{"StripeEventLog", testStripeEventLog},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

var (
	ctx  = context.Background()
	live = engine.Tenant{PlatformID: "plt_a", Mode: engine.Live}
	test = engine.Tenant{PlatformID: "plt_a", Mode: engine.Test}
)

func day(s string) time.Time {
	d, err := time.Parse("2006-01-02", s)
	if err != nil {
		panic(err)
	}
	return d
}

func ptr[T any](v T) *T { return &v }

func hash(s string) [32]byte {
	var h [32]byte
	copy(h[:], s)
	h[31] = 0xff
	return h
}

// commit writes one batch and fails t if it does not commit.
func commit(t *testing.T, s engine.Store, fn func(b engine.Batch)) {
	t.Helper()
	b := s.NewBatch()
	defer b.Close()
	fn(b)
	if err := b.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

// update runs fn as a unit of work holding lock and fails t on an error.
func update(t *testing.T, s engine.Store, lock engine.Lock, fn func(tx engine.Tx)) {
	t.Helper()
	_, err := s.Update(ctx, []engine.Lock{lock}, func(tx engine.Tx) (any, error) {
		fn(tx)
		return nil, nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func wantNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if engine.ErrorCode(err) != engine.ENOTFOUND {
		t.Errorf("%s: error %v, want %s", what, err, engine.ENOTFOUND)
	}
}

func wantEqual[T any](t *testing.T, what string, got T, err error, want T) {
	t.Helper()
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

func samplePlatform(id string) *engine.Platform {
	return &engine.Platform{ID: id, Name: "Acme " + id, Email: "dev@acme.test", CreatedAt: time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.UTC)}
}

func sampleKey(platformID, id, pk string, created time.Time) *engine.Key {
	return &engine.Key{
		ID: id, PlatformID: platformID, Mode: engine.Test, PublishableKey: pk,
		SecretHash: hash("secret of " + platformID + id), SecretHint: "sk_test_…" + id,
		CreatedAt: created, LastUsedAt: ptr(created.Add(time.Hour)), ExpiresAt: ptr(created.AddDate(1, 0, 0)),
	}
}

func sampleCustomer(id, email string) *engine.Customer {
	return &engine.Customer{
		ID: id, Email: email, FirstName: "Ann", LastName: "Lee", Plan: "pro", PublishableKey: "pk_test_1",
		Metadata:         map[string]any{"team": "blue", "seats": 3.0, "flags": map[string]any{"beta": true}},
		StripeCustomerID: ptr("cus_Stripe1"),
		CreatedAt:        time.Date(2024, 1, 2, 3, 4, 5, 678901234, time.UTC),
		StripeAccountID:  "acct_1",
		Subscription:     &engine.Subscription{ID: "sub_1", Status: "active", CurrentPeriodEnd: ptr(day("2024-02-15"))},
		PeriodStart:      day("2024-01-15"),
		PeriodEnd:        day("2024-02-15"),
	}
}

// idemEqual compares idempotency records; an empty body may read back as
// nil or empty.
func idemEqual(a, b *engine.IdemRecord) bool {
	return a.RequestHash == b.RequestHash && a.RequestID == b.RequestID && a.Sealed == b.Sealed &&
		a.Status == b.Status && bytes.Equal(a.Body, b.Body) && a.CreatedAt.Equal(b.CreatedAt)
}

func testRoundTrip(t *testing.T, open Open) {
	s := open(t)
	admin := hash("admin")
	plat := samplePlatform("plt_a")
	key := sampleKey("plt_a", "key_1", "pk_test_1", day("2024-01-02"))
	key.RevokedAt = ptr(day("2024-03-01"))
	tiers := engine.DefaultTiers()
	tiers.Tiers[1].PriceID, tiers.Tiers[1].ProductID = ptr("price_1"), ptr("prod_1")
	cus := sampleCustomer("cus_a", "Ann@Example.com")
	ck := engine.CounterKey{Tenant: live, CustomerID: "cus_a", Feature: "requests", PeriodStart: day("2024-01-15")}
	cnt := engine.Counter{Count: 1<<40 + 7, PeriodEnd: day("2024-02-15")}
	state := []byte{0, 1, 2, 0xff}
	body := make([]byte, 256)
	for i := range body {
		body[i] = byte(i)
	}
	idem := &engine.IdemRecord{RequestHash: hash("request"), RequestID: "req_1", Status: 201, Body: body, CreatedAt: time.UnixMilli(1717171717171).UTC()}
	sealed := &engine.IdemRecord{RequestHash: hash("r2"), Sealed: true, Status: 200, Body: []byte("sealed"), CreatedAt: time.UnixMilli(1717171717000).UTC()}
	obx := &engine.OutboxEntry{ID: "obx_1", Kind: "clerk.update", PlatformID: "plt_a", Mode: engine.Live, CustomerID: "cus_a", CreatedAt: day("2024-01-03"), Attempts: 2, LastError: "503"}
	ps := &engine.PluginSettings{Active: "v_2", OnError: engine.OnErrorDeny}
	pv := &engine.PluginVersion{Version: "v_2", SHA256: "abc", Size: 4, UploadedAt: day("2024-01-04")}
	wasm := []byte{0, 'a', 's', 'm'}
	conn := &engine.StripeConnection{Mode: engine.Live, Method: "key", AccountID: "acct_1", SecretKey: []byte{1, 2, 3}, KeyHint: "sk_…1", ChargesEnabled: true}
	cat := &engine.StripeCatalog{AccountID: "acct_1", Tiers: map[string]*engine.StripeTier{}, Prices: map[string]string{"price_1": "pro"}}
	sub := &engine.StripeSubscription{ID: "sub_1", CustomerID: "cus_a", Status: "active", SubscriptionEventAt: day("2024-01-05")}
	quotas := &engine.PlatformQuotas{Customers: ptr(int64(5)), RPS: ptr(2.5)}
	aggs := &engine.Aggregates{Plans: map[string]int64{"free": 3, "pro": 1}, Active: 1}
	bill := &engine.PlatformBilling{PlatformID: "plt_a", CustomerID: "cus_op", Status: "active", CurrentPeriodEnd: ptr(day("2024-02-01")), EventAt: day("2024-01-01"), UpdatedAt: day("2024-01-01")}

	commit(t, s, func(b engine.Batch) {
		b.PutAdminTokenHash(admin)
		b.PutPlatform(plat)
		b.PutKey(key)
		b.PutTiers(live, tiers)
		b.PutCustomer(live, cus, "")
		b.PutCounter(ck, cnt)
		b.PutPolicyState(live, "cus_a", "requests", state)
		b.PutIdempotency(live, "order 17/retry ✓", idem)
		b.PutIdempotency(live, "sealed", sealed)
		b.PutOutbox(obx)
		b.PutAllowedOrigins("plt_a", []string{"https://app.example.com"}, nil)
		b.PutPluginSettings(live, ps)
		b.PutPluginVersion(live, pv, wasm)
		b.PutStripeConnection(live, conn)
		b.PutStripeAccount("acct_1", "plt_a")
		b.PutStripeCatalog(live, cat)
		b.PutStripeCustomer(live, "cus_Stripe1", "cus_a")
		b.PutStripeSubscription(live, sub)
		b.PutStripeEvent(live, "evt_1", day("2024-01-06"))
		b.PutPlatformBilling(bill)
		b.PutPlatformQuotas("plt_a", quotas)
		b.PutAggregates(live, aggs)
	})

	gotAdmin, err := s.AdminTokenHash(ctx)
	wantEqual(t, "AdminTokenHash", gotAdmin, err, admin)
	gotPlat, err := s.Platform(ctx, "plt_a")
	wantEqual(t, "Platform", gotPlat, err, plat)
	gotPlats, more, err := s.Platforms(ctx, engine.Page{})
	wantEqual(t, "Platforms", gotPlats, err, []*engine.Platform{plat})
	if more {
		t.Error("Platforms: more = true with one platform")
	}
	gotKey, err := s.Key(ctx, "plt_a", "key_1")
	wantEqual(t, "Key", gotKey, err, key)
	gotKey, err = s.KeyBySecretHash(ctx, key.SecretHash)
	wantEqual(t, "KeyBySecretHash", gotKey, err, key)
	gotKeys, err := s.KeysByPublishable(ctx, "pk_test_1")
	wantEqual(t, "KeysByPublishable", gotKeys, err, []*engine.Key{key})
	gotKeys, err = s.Keys(ctx, "plt_a")
	wantEqual(t, "Keys", gotKeys, err, []*engine.Key{key})
	gotTiers, err := s.Tiers(ctx, live)
	wantEqual(t, "Tiers", gotTiers, err, tiers)
	gotCus, err := s.Customer(ctx, live, "cus_a")
	wantEqual(t, "Customer", gotCus, err, cus)
	gotCus, err = s.CustomerShared(ctx, live, "cus_a")
	wantEqual(t, "CustomerShared", gotCus, err, cus)
	for _, email := range []string{"Ann@Example.com", "ann@example.com", "ANN@EXAMPLE.COM"} {
		id, err := s.CustomerIDByEmail(ctx, live, email)
		wantEqual(t, "CustomerIDByEmail "+email, id, err, "cus_a")
	}
	gotCustomers, _, err := s.Customers(ctx, live, engine.Page{})
	wantEqual(t, "Customers", gotCustomers, err, []*engine.Customer{cus})
	gotCnt, err := s.Counter(ctx, ck)
	wantEqual(t, "Counter", gotCnt, err, cnt)
	gotPeriods, err := s.Periods(ctx, live, "cus_a")
	wantEqual(t, "Periods", gotPeriods, err, []engine.Period{{Feature: "requests", Count: cnt.Count, PeriodStart: ck.PeriodStart, PeriodEnd: cnt.PeriodEnd}})
	has, err := s.HasPolicyState(ctx, "plt_a")
	wantEqual(t, "HasPolicyState", has, err, true)
	has, err = s.HasPolicyState(ctx, "plt_b")
	wantEqual(t, "HasPolicyState of another platform", has, err, false)
	gotState, err := s.PolicyState(ctx, live, "cus_a", "requests")
	wantEqual(t, "PolicyState", gotState, err, state)
	for key, want := range map[string]*engine.IdemRecord{"order 17/retry ✓": idem, "sealed": sealed} {
		got, err := s.Idempotency(ctx, live, key)
		if err != nil || !idemEqual(got, want) {
			t.Errorf("Idempotency %q = %+v, %v; want %+v", key, got, err, want)
		}
	}
	gotObx, more, err := s.Outbox(ctx, engine.Page{})
	wantEqual(t, "Outbox", gotObx, err, []*engine.OutboxEntry{obx})
	if more {
		t.Error("Outbox: more = true with one entry")
	}
	gotOrigins, err := s.AllowedOrigins(ctx, "plt_a")
	wantEqual(t, "AllowedOrigins", gotOrigins, err, []string{"https://app.example.com"})
	anywhere, err := s.OriginAllowedAnywhere(ctx, "https://app.example.com")
	wantEqual(t, "OriginAllowedAnywhere", anywhere, err, true)
	anywhere, err = s.OriginAllowedAnywhere(ctx, "https://other.example.com")
	wantEqual(t, "OriginAllowedAnywhere of another origin", anywhere, err, false)
	gotPS, err := s.PluginSettings(ctx, live)
	wantEqual(t, "PluginSettings", gotPS, err, ps)
	gotPV, err := s.PluginVersions(ctx, live)
	wantEqual(t, "PluginVersions", gotPV, err, []*engine.PluginVersion{pv})
	gotWasm, err := s.PluginModule(ctx, live, "v_2")
	wantEqual(t, "PluginModule", gotWasm, err, wasm)
	gotConn, err := s.StripeConnection(ctx, live)
	wantEqual(t, "StripeConnection", gotConn, err, conn)
	gotAcct, err := s.StripeAccountPlatform(ctx, "acct_1")
	wantEqual(t, "StripeAccountPlatform", gotAcct, err, "plt_a")
	gotCat, err := s.StripeCatalog(ctx, live)
	wantEqual(t, "StripeCatalog", gotCat, err, cat)
	gotSCus, err := s.CustomerIDByStripeID(ctx, live, "cus_Stripe1")
	wantEqual(t, "CustomerIDByStripeID", gotSCus, err, "cus_a")
	gotSub, err := s.StripeSubscription(ctx, live, "sub_1")
	wantEqual(t, "StripeSubscription", gotSub, err, sub)
	applied, err := s.StripeEventApplied(ctx, live, "evt_1")
	wantEqual(t, "StripeEventApplied", applied, err, true)
	applied, err = s.StripeEventApplied(ctx, live, "evt_2")
	wantEqual(t, "StripeEventApplied of another event", applied, err, false)
	gotBill, err := s.PlatformBilling(ctx, "plt_a")
	wantEqual(t, "PlatformBilling", gotBill, err, bill)
	gotQuotas, err := s.PlatformQuotas(ctx, "plt_a")
	wantEqual(t, "PlatformQuotas", gotQuotas, err, quotas)
	gotAggs, err := s.Aggregates(ctx, live)
	wantEqual(t, "Aggregates", gotAggs, err, aggs)
	if err := s.Healthy(); err != nil {
		t.Errorf("Healthy: %v", err)
	}
}

func testNotFound(t *testing.T, open Open) {
	s := open(t)
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
	_, err = s.Tiers(ctx, live)
	wantNotFound(t, "Tiers", err)
	_, err = s.Customer(ctx, live, "cus_a")
	wantNotFound(t, "Customer", err)
	_, err = s.CustomerShared(ctx, live, "cus_a")
	wantNotFound(t, "CustomerShared", err)
	_, err = s.CustomerIDByEmail(ctx, live, "ann@example.com")
	wantNotFound(t, "CustomerIDByEmail", err)
	_, err = s.Idempotency(ctx, live, "k")
	wantNotFound(t, "Idempotency", err)
	_, err = s.PluginSettings(ctx, live)
	wantNotFound(t, "PluginSettings", err)
	_, err = s.PluginModule(ctx, live, "v_1")
	wantNotFound(t, "PluginModule", err)
	_, err = s.StripeConnection(ctx, live)
	wantNotFound(t, "StripeConnection", err)
	_, err = s.StripeAccountPlatform(ctx, "acct_1")
	wantNotFound(t, "StripeAccountPlatform", err)
	_, err = s.StripeCatalog(ctx, live)
	wantNotFound(t, "StripeCatalog", err)
	_, err = s.CustomerIDByStripeID(ctx, live, "cus_S")
	wantNotFound(t, "CustomerIDByStripeID", err)
	_, err = s.StripeSubscription(ctx, live, "sub_1")
	wantNotFound(t, "StripeSubscription", err)
	_, err = s.PlatformBilling(ctx, "plt_a")
	wantNotFound(t, "PlatformBilling", err)
	_, err = s.PlatformQuotas(ctx, "plt_a")
	wantNotFound(t, "PlatformQuotas", err)
	_, err = s.Aggregates(ctx, live)
	wantNotFound(t, "Aggregates", err)

	// The reads that answer "none" without an error.
	c, err := s.Counter(ctx, engine.CounterKey{Tenant: live, CustomerID: "cus_a", Feature: "requests"})
	wantEqual(t, "Counter", c, err, engine.Counter{})
	st, err := s.PolicyState(ctx, live, "cus_a", "requests")
	wantEqual(t, "PolicyState", st, err, nil)
	ps, err := s.Periods(ctx, live, "cus_a")
	wantEqual(t, "Periods", len(ps), err, 0)
	ks, err := s.Keys(ctx, "plt_a")
	wantEqual(t, "Keys", len(ks), err, 0)
	cs, more, err := s.Customers(ctx, live, engine.Page{})
	wantEqual(t, "Customers", len(cs)+boolInt(more), err, 0)
	pl, more, err := s.Platforms(ctx, engine.Page{})
	wantEqual(t, "Platforms", len(pl)+boolInt(more), err, 0)
	ob, more, err := s.Outbox(ctx, engine.Page{})
	wantEqual(t, "Outbox", len(ob)+boolInt(more), err, 0)
	or, err := s.AllowedOrigins(ctx, "plt_a")
	wantEqual(t, "AllowedOrigins", or, err, nil)
	allowed, err := s.OriginAllowedAnywhere(ctx, "https://a.example.com")
	wantEqual(t, "OriginAllowedAnywhere", allowed, err, false)
	pv, err := s.PluginVersions(ctx, live)
	wantEqual(t, "PluginVersions", len(pv), err, 0)
	has, err := s.HasPolicyState(ctx, "plt_a")
	wantEqual(t, "HasPolicyState", has, err, false)
	ev, err := s.StripeEventApplied(ctx, live, "evt_1")
	wantEqual(t, "StripeEventApplied", ev, err, false)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Live and test, and two platforms, never see each other's data.
func testTenantsAreSeparate(t *testing.T, open Open) {
	s := open(t)
	commit(t, s, func(b engine.Batch) {
		b.PutCustomer(test, sampleCustomer("cus_a", "ann@example.com"), "")
		b.PutIdempotency(test, "k", &engine.IdemRecord{Status: 200, CreatedAt: day("2024-01-01")})
		b.PutPolicyState(test, "cus_a", "requests", []byte("x"))
		b.PutCounter(engine.CounterKey{Tenant: test, CustomerID: "cus_a", Feature: "requests"}, engine.Counter{Count: 1})
		b.PutTiers(test, engine.DefaultTiers())
		b.PutPluginSettings(test, &engine.PluginSettings{Active: "v_1"})
		b.PutStripeConnection(test, &engine.StripeConnection{Mode: engine.Test, AccountID: "acct_1"})
	})
	_, err := s.Customer(ctx, live, "cus_a")
	wantNotFound(t, "Customer of live", err)
	_, err = s.Customer(ctx, engine.Tenant{PlatformID: "plt_b", Mode: engine.Test}, "cus_a")
	wantNotFound(t, "Customer of another platform", err)
	_, err = s.CustomerIDByEmail(ctx, live, "ann@example.com")
	wantNotFound(t, "CustomerIDByEmail of live", err)
	_, err = s.Idempotency(ctx, live, "k")
	wantNotFound(t, "Idempotency of live", err)
	_, err = s.Tiers(ctx, live)
	wantNotFound(t, "Tiers of live", err)
	_, err = s.PluginSettings(ctx, live)
	wantNotFound(t, "PluginSettings of live", err)
	_, err = s.StripeConnection(ctx, live)
	wantNotFound(t, "StripeConnection of live", err)
	st, err := s.PolicyState(ctx, live, "cus_a", "requests")
	wantEqual(t, "PolicyState of live", st, err, nil)
	c, err := s.Counter(ctx, engine.CounterKey{Tenant: live, CustomerID: "cus_a", Feature: "requests"})
	wantEqual(t, "Counter of live", c, err, engine.Counter{})
	has, err := s.HasPolicyState(ctx, "plt_a")
	wantEqual(t, "HasPolicyState (either mode)", has, err, true)
}

func testOverwriteAndDelete(t *testing.T, open Open) {
	s := open(t)
	cus := sampleCustomer("cus_a", "ann@example.com")
	commit(t, s, func(b engine.Batch) {
		b.PutCustomer(live, cus, "")
		b.PutOutbox(&engine.OutboxEntry{ID: "obx_1", Kind: "k"})
		b.PutOutbox(&engine.OutboxEntry{ID: "obx_2", Kind: "k"})
		b.PutPluginVersion(live, &engine.PluginVersion{Version: "v_1"}, []byte("one"))
		b.PutStripeConnection(live, &engine.StripeConnection{AccountID: "acct_1"})
		b.PutStripeAccount("acct_1", "plt_a")
		b.PutAllowedOrigins("plt_a", []string{"https://a.example.com", "https://b.example.com"}, nil)
	})
	// A new email moves the index; the old one finds nothing.
	prev := cus.Email
	cus.Email, cus.Plan = "ann@new.example.com", "free"
	commit(t, s, func(b engine.Batch) {
		b.PutCustomer(live, cus, prev)
		b.PutOutbox(&engine.OutboxEntry{ID: "obx_1", Kind: "k", Attempts: 1})
		b.DeleteOutbox("obx_2")
		b.DeleteOutbox("obx_gone")
		b.DeletePluginVersion(live, "v_1")
		b.DeleteStripeConnection(live)
		b.DeleteStripeAccount("acct_1")
		b.PutAllowedOrigins("plt_a", []string{"https://c.example.com"}, []string{"https://a.example.com", "https://b.example.com"})
	})
	got, err := s.Customer(ctx, live, "cus_a")
	wantEqual(t, "Customer after a change", got, err, cus)
	_, err = s.CustomerIDByEmail(ctx, live, prev)
	wantNotFound(t, "CustomerIDByEmail of the old email", err)
	id, err := s.CustomerIDByEmail(ctx, live, "ANN@new.example.com")
	wantEqual(t, "CustomerIDByEmail of the new email", id, err, "cus_a")
	obx, _, err := s.Outbox(ctx, engine.Page{})
	wantEqual(t, "Outbox", obx, err, []*engine.OutboxEntry{{ID: "obx_1", Kind: "k", Attempts: 1}})
	_, err = s.PluginModule(ctx, live, "v_1")
	wantNotFound(t, "PluginModule of a deleted version", err)
	pv, err := s.PluginVersions(ctx, live)
	wantEqual(t, "PluginVersions after delete", len(pv), err, 0)
	_, err = s.StripeConnection(ctx, live)
	wantNotFound(t, "StripeConnection after delete", err)
	_, err = s.StripeAccountPlatform(ctx, "acct_1")
	wantNotFound(t, "StripeAccountPlatform after delete", err)
	or, err := s.AllowedOrigins(ctx, "plt_a")
	wantEqual(t, "AllowedOrigins replaced", or, err, []string{"https://c.example.com"})
	for o, want := range map[string]bool{"https://a.example.com": false, "https://c.example.com": true} {
		got, err := s.OriginAllowedAnywhere(ctx, o)
		wantEqual(t, "OriginAllowedAnywhere "+o, got, err, want)
	}
	commit(t, s, func(b engine.Batch) {
		b.DeleteCustomer(live, cus)
		b.PutAllowedOrigins("plt_b", []string{engine.AnyOrigin}, nil)
	})
	_, err = s.Customer(ctx, live, "cus_a")
	wantNotFound(t, "Customer after delete", err)
	_, err = s.CustomerIDByEmail(ctx, live, cus.Email)
	wantNotFound(t, "CustomerIDByEmail after delete", err)
	anywhere, err := s.OriginAllowedAnywhere(ctx, "https://z.example.com")
	wantEqual(t, "OriginAllowedAnywhere with a platform allowing *", anywhere, err, true)
}

// Keys: a rotation keeps the publishable key, both found oldest first; a
// platform's keys are its own.
func testKeys(t *testing.T, open Open) {
	s := open(t)
	newer := sampleKey("plt_a", "key_0", "pk_test_1", day("2024-02-01"))
	older := sampleKey("plt_a", "key_9", "pk_test_1", day("2024-01-01"))
	other := sampleKey("plt_b", "key_5", "pk_test_2", day("2023-01-01"))
	commit(t, s, func(b engine.Batch) {
		b.PutKey(newer)
		b.PutKey(older)
		b.PutKey(other)
	})
	got, err := s.KeysByPublishable(ctx, "pk_test_1")
	wantEqual(t, "KeysByPublishable", got, err, []*engine.Key{older, newer})
	got, err = s.Keys(ctx, "plt_a")
	wantEqual(t, "Keys", got, err, []*engine.Key{older, newer})
	k, err := s.KeyBySecretHash(ctx, other.SecretHash)
	wantEqual(t, "KeyBySecretHash", k, err, other)
	// A revocation rewrites the record in place.
	older.RevokedAt = ptr(day("2024-03-01"))
	update(t, s, engine.Lock{Kind: engine.LockKeys, Platform: "plt_a"}, func(tx engine.Tx) { tx.PutKey(older) })
	k, err = s.KeyBySecretHash(ctx, older.SecretHash)
	wantEqual(t, "KeyBySecretHash after revoke", k, err, older)
}

func testPaging(t *testing.T, open Open) {
	s := open(t)
	const n = 25
	commit(t, s, func(b engine.Batch) {
		for i := range n {
			b.PutPlatform(samplePlatform(fmt.Sprintf("plt_%02d", i)))
			b.PutCustomer(live, sampleCustomer(fmt.Sprintf("cus_%02d", i), fmt.Sprintf("u%d@example.com", i)), "")
			b.PutOutbox(&engine.OutboxEntry{ID: fmt.Sprintf("obx_%02d", i), Kind: "k"})
		}
		b.PutCustomer(test, sampleCustomer("cus_zz", "zz@example.com"), "")
	})
	type lister func(p engine.Page) ([]string, bool, error)
	listers := map[string]lister{
		"Platforms": func(p engine.Page) ([]string, bool, error) {
			items, more, err := s.Platforms(ctx, p)
			return ids(items, func(x *engine.Platform) string { return x.ID }), more, err
		},
		"Customers": func(p engine.Page) ([]string, bool, error) {
			items, more, err := s.Customers(ctx, live, p)
			return ids(items, func(x *engine.Customer) string { return x.ID }), more, err
		},
		"Outbox": func(p engine.Page) ([]string, bool, error) {
			items, more, err := s.Outbox(ctx, p)
			return ids(items, func(x *engine.OutboxEntry) string { return x.ID }), more, err
		},
	}
	prefixes := map[string]string{"Platforms": "plt", "Customers": "cus", "Outbox": "obx"}
	for name, list := range listers {
		want := func(from, to int) []string {
			var out []string
			for i := from; i < to; i++ {
				out = append(out, fmt.Sprintf("%s_%02d", prefixes[name], i))
			}
			return out
		}
		cases := []struct {
			page engine.Page
			ids  []string
			more bool
		}{
			{engine.Page{}, want(0, 20), true}, // the default limit is 20
			{engine.Page{Limit: 10}, want(0, 10), true},
			{engine.Page{Limit: 10, StartingAfter: fmt.Sprintf("%s_09", prefixes[name])}, want(10, 20), true},
			{engine.Page{Limit: 10, StartingAfter: fmt.Sprintf("%s_19", prefixes[name])}, want(20, 25), false},
			{engine.Page{Limit: 5, StartingAfter: fmt.Sprintf("%s_19", prefixes[name])}, want(20, 25), false},
			{engine.Page{Limit: 1000}, want(0, 25), false}, // capped at 100
			{engine.Page{Limit: 3, StartingAfter: fmt.Sprintf("%s_10x", prefixes[name])}, want(11, 14), true},
			{engine.Page{StartingAfter: fmt.Sprintf("%s_24", prefixes[name])}, nil, false},
		}
		for _, c := range cases {
			got, more, err := list(c.page)
			if err != nil || !reflect.DeepEqual(got, c.ids) || more != c.more {
				t.Errorf("%s(%+v) = %v, more %v, %v; want %v, more %v", name, c.page, got, more, err, c.ids, c.more)
			}
		}
	}
}

func ids[T any](items []T, id func(T) string) []string {
	var out []string
	for _, x := range items {
		out = append(out, id(x))
	}
	return out
}

// Plugin versions oldest first (by id), periods by feature then start,
// customers by id whatever the order they were written in.
func testOrdering(t *testing.T, open Open) {
	s := open(t)
	commit(t, s, func(b engine.Batch) {
		for _, v := range []string{"v_0003", "v_0001", "v_0002"} {
			b.PutPluginVersion(live, &engine.PluginVersion{Version: v}, []byte(v))
		}
		for _, id := range []string{"cus_c", "cus_a", "cus_b"} {
			b.PutCustomer(live, sampleCustomer(id, ""), "")
		}
		for _, f := range []string{"tokens", "api-calls"} {
			for _, d := range []string{"2024-03-01", "2023-12-01", "2024-01-01"} {
				b.PutCounter(engine.CounterKey{Tenant: live, CustomerID: "cus_a", Feature: f, PeriodStart: day(d)},
					engine.Counter{Count: 1, PeriodEnd: day(d).AddDate(0, 1, 0)})
			}
		}
		b.PutCounter(engine.CounterKey{Tenant: live, CustomerID: "cus_b", Feature: "tokens", PeriodStart: day("2024-01-01")}, engine.Counter{Count: 9})
	})
	pv, err := s.PluginVersions(ctx, live)
	wantEqual(t, "PluginVersions", ids(pv, func(v *engine.PluginVersion) string { return v.Version }), err, []string{"v_0001", "v_0002", "v_0003"})
	cs, _, err := s.Customers(ctx, live, engine.Page{})
	wantEqual(t, "Customers", ids(cs, func(c *engine.Customer) string { return c.ID }), err, []string{"cus_a", "cus_b", "cus_c"})
	ps, err := s.Periods(ctx, live, "cus_a")
	var got []string
	for _, p := range ps {
		got = append(got, p.Feature+" "+p.PeriodStart.Format("2006-01-02"))
	}
	wantEqual(t, "Periods", got, err, []string{
		"api-calls 2023-12-01", "api-calls 2024-01-01", "api-calls 2024-03-01",
		"tokens 2023-12-01", "tokens 2024-01-01", "tokens 2024-03-01",
	})
}

func testIdempotencyExpiry(t *testing.T, open Open) {
	s := open(t)
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	commit(t, s, func(b engine.Batch) {
		for i := range 5 {
			b.PutIdempotency(live, fmt.Sprintf("old_%d", i), &engine.IdemRecord{Status: 200, CreatedAt: now.Add(-48 * time.Hour)})
		}
		b.PutIdempotency(test, "old_test", &engine.IdemRecord{Status: 200, CreatedAt: now.Add(-25 * time.Hour)})
		b.PutIdempotency(live, "new", &engine.IdemRecord{Status: 201, CreatedAt: now.Add(-time.Hour)})
	})
	n, err := s.ExpireIdempotency(ctx, now.Add(-engine.IdempotencyTTL))
	wantEqual(t, "ExpireIdempotency", n, err, 6)
	_, err = s.Idempotency(ctx, live, "old_0")
	wantNotFound(t, "an expired record", err)
	_, err = s.Idempotency(ctx, test, "old_test")
	wantNotFound(t, "an expired record of test mode", err)
	if r, err := s.Idempotency(ctx, live, "new"); err != nil || r.Status != 201 {
		t.Errorf("a live record: %+v, %v", r, err)
	}
	n, err = s.ExpireIdempotency(ctx, now.Add(-engine.IdempotencyTTL))
	wantEqual(t, "ExpireIdempotency again", n, err, 0)
}

// Units of work on one lock never overlap, and each reads what the one
// before it wrote: 4×25 read-increment-writes of one counter lose none.
func testUpdateSerializes(t *testing.T, open Open) {
	s := open(t)
	ck := engine.CounterKey{Tenant: live, CustomerID: "cus_a", Feature: "requests", PeriodStart: day("2024-01-01")}
	lock := engine.Lock{Kind: engine.LockCounter, Mode: live.Mode, Platform: live.PlatformID, ID: ck.CustomerID, Feature: ck.Feature}
	var inside, overlaps atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				_, err := s.Update(ctx, []engine.Lock{lock, {Kind: engine.LockCustomer, Platform: "plt_a", ID: "cus_a"}}, func(tx engine.Tx) (any, error) {
					if inside.Add(1) > 1 {
						overlaps.Add(1)
					}
					defer inside.Add(-1)
					c, err := tx.Counter(ctx, ck)
					if err != nil {
						return nil, err
					}
					time.Sleep(100 * time.Microsecond) // widen the window a lost update needs
					c.Count++
					tx.PutCounter(ck, c)
					return nil, nil
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := overlaps.Load(); n > 0 {
		t.Errorf("%d units ran while another held the same lock", n)
	}
	c, err := s.Counter(ctx, ck)
	wantEqual(t, "Counter after 100 units", c.Count, err, 100)
}

func testUpdateFailure(t *testing.T, open Open) {
	s := open(t)
	var told atomic.Int32
	s.Watch(func(engine.Change) { told.Add(1) })
	boom := errors.New("boom")
	_, err := s.Update(ctx, []engine.Lock{{Kind: engine.LockTiers, Platform: "plt_a"}}, func(tx engine.Tx) (any, error) {
		tx.PutCustomer(live, sampleCustomer("cus_a", "ann@example.com"), "")
		tx.PutTiers(live, engine.DefaultTiers())
		tx.PutCounter(engine.CounterKey{Tenant: live, CustomerID: "cus_a", Feature: "requests"}, engine.Counter{Count: 1})
		return nil, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want fn's error", err)
	}
	_, err = s.Customer(ctx, live, "cus_a")
	wantNotFound(t, "Customer written by a failed unit", err)
	_, err = s.Tiers(ctx, live)
	wantNotFound(t, "Tiers written by a failed unit", err)
	c, err := s.Counter(ctx, engine.CounterKey{Tenant: live, CustomerID: "cus_a", Feature: "requests"})
	wantEqual(t, "Counter written by a failed unit", c, err, engine.Counter{})
	if n := told.Load(); n != 0 {
		t.Errorf("Watch told %d times of a failed unit's changes", n)
	}
}

// Update returns fn's result; its reads see units applied before it; a unit
// that writes nothing succeeds.
func testUpdateResult(t *testing.T, open Open) {
	s := open(t)
	update(t, s, engine.Lock{Kind: engine.LockCustomer, Platform: "plt_a", ID: "cus_a"}, func(tx engine.Tx) {
		tx.PutCustomer(live, sampleCustomer("cus_a", "ann@example.com"), "")
	})
	res, err := s.Update(ctx, []engine.Lock{{Kind: engine.LockCustomer, Platform: "plt_a", ID: "cus_a"}}, func(tx engine.Tx) (any, error) {
		c, err := tx.Customer(ctx, live, "cus_a")
		if err != nil {
			return nil, err
		}
		id, err := tx.CustomerIDByEmail(ctx, live, "ann@example.com")
		return c.Email + " " + id, err
	})
	wantEqual(t, "Update result", res, err, any("ann@example.com cus_a"))
	res, err = s.Update(ctx, nil, func(tx engine.Tx) (any, error) { return 7, nil })
	wantEqual(t, "Update without locks or writes", res, err, any(7))
}

// Watch is told of every applied change to cached state, through units and
// through batches, and of nothing else.
func testWatch(t *testing.T, open Open) {
	s := open(t)
	var mu sync.Mutex
	var got []string
	s.Watch(func(ch engine.Change) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case ch.Tiers != nil:
			got = append(got, fmt.Sprintf("tiers %s %s %d", ch.PlatformID, ch.Mode, len(ch.Tiers.Tiers)))
		case ch.Key != nil:
			got = append(got, fmt.Sprintf("key %s %s revoked=%v", ch.Key.PlatformID, ch.Key.ID, ch.Key.RevokedAt != nil))
		case ch.PluginSettings != nil:
			got = append(got, fmt.Sprintf("plugin %s %s %s", ch.PlatformID, ch.Mode, ch.PluginSettings.Active))
		case ch.Billing != nil:
			got = append(got, fmt.Sprintf("billing %s %s", ch.PlatformID, ch.Billing.Status))
		case ch.Quotas != nil:
			got = append(got, fmt.Sprintf("quotas %s %d", ch.PlatformID, *ch.Quotas.Customers))
		case ch.Platform != nil:
			got = append(got, fmt.Sprintf("platform %s suspended=%v %q", ch.PlatformID, ch.Platform.Suspended(), ch.Platform.SuspendedReason))
		default:
			got = append(got, "empty change")
		}
	})
	one := &engine.TierConfig{Tiers: engine.DefaultTiers().Tiers[:1]}
	key := sampleKey("plt_a", "key_1", "pk_test_1", day("2024-01-01"))
	update(t, s, engine.Lock{Kind: engine.LockTiers, Mode: engine.Test, Platform: "plt_a"}, func(tx engine.Tx) { tx.PutTiers(test, one) })
	update(t, s, engine.Lock{Kind: engine.LockKeys, Platform: "plt_a"}, func(tx engine.Tx) { tx.PutKey(key) })
	update(t, s, engine.Lock{Kind: engine.LockPlugin, Platform: "plt_a"}, func(tx engine.Tx) {
		tx.PutPluginSettings(live, &engine.PluginSettings{Active: "v_1"})
	})
	update(t, s, engine.Lock{Kind: engine.LockPlatformBilling, Platform: "plt_a"}, func(tx engine.Tx) {
		tx.PutPlatformBilling(&engine.PlatformBilling{PlatformID: "plt_a", Status: "active"})
	})
	update(t, s, engine.Lock{Kind: engine.LockQuotas, Platform: "plt_a"}, func(tx engine.Tx) {
		tx.PutPlatformQuotas("plt_a", &engine.PlatformQuotas{Customers: ptr(int64(9))})
	})
	// A platform record (its suspension) round-trips and is told.
	suspended := samplePlatform("plt_a")
	suspended.SuspendedAt, suspended.SuspendedReason = ptr(time.Date(2024, 3, 4, 5, 6, 7, 8000, time.UTC)), "unpaid invoices"
	update(t, s, engine.Lock{Kind: engine.LockPlatform, Platform: "plt_a"}, func(tx engine.Tx) { tx.PutPlatform(suspended) })
	gotPlat, err := s.Platform(ctx, "plt_a")
	wantEqual(t, "suspended Platform", gotPlat, err, suspended)
	// Writes of uncached state tell nothing.
	update(t, s, engine.Lock{Kind: engine.LockCustomer, Platform: "plt_a", ID: "cus_a"}, func(tx engine.Tx) {
		tx.PutAggregates(live, &engine.Aggregates{Active: 1})
		tx.PutCustomer(live, sampleCustomer("cus_a", ""), "")
		tx.PutCounter(engine.CounterKey{Tenant: live, CustomerID: "cus_a", Feature: "f"}, engine.Counter{Count: 1})
	})
	key.RevokedAt = ptr(day("2024-02-01"))
	commit(t, s, func(b engine.Batch) {
		b.PutKey(key)
		b.PutTiers(live, engine.DefaultTiers())
	})
	want := []string{
		"tiers plt_a test 1",
		"key plt_a key_1 revoked=false",
		"plugin plt_a live v_1",
		"billing plt_a active",
		"quotas plt_a 9",
		`platform plt_a suspended=true "unpaid invoices"`,
		"key plt_a key_1 revoked=true",
		"tiers plt_a live 2",
	}
	mu.Lock()
	defer mu.Unlock()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Watch told\n %q\nwant\n %q", got, want)
	}
}

func testBatchLifecycle(t *testing.T, open Open) {
	s := open(t)
	b := s.NewBatch()
	if !b.Empty() {
		t.Error("a new batch is not Empty")
	}
	b.PutPlatform(samplePlatform("plt_a"))
	if b.Empty() {
		t.Error("a batch with a write is Empty")
	}
	if err := b.Apply(); err != nil {
		t.Fatal(err)
	}
	if err := b.Wait(); err != nil {
		t.Fatal(err)
	}
	b.Close()
	b.Close() // twice is fine
	if _, err := s.Platform(ctx, "plt_a"); err != nil {
		t.Errorf("Platform after Apply and Wait: %v", err)
	}
	// A batch closed without a commit writes nothing.
	b = s.NewBatch()
	b.PutPlatform(samplePlatform("plt_b"))
	b.Close()
	_, err := s.Platform(ctx, "plt_b")
	wantNotFound(t, "Platform of a closed batch", err)
	// An empty batch commits.
	b = s.NewBatch()
	if err := b.Commit(); err != nil {
		t.Errorf("Commit of an empty batch: %v", err)
	}
	b.Close()
}

// An id that cannot be stored fails the whole batch, which writes nothing.
func testBadID(t *testing.T, open Open) {
	s := open(t)
	b := s.NewBatch()
	defer b.Close()
	b.PutPlatform(samplePlatform("plt_ok"))
	b.PutCustomer(live, sampleCustomer("cus\x00bad", ""), "")
	if err := b.Commit(); err == nil {
		t.Fatal("Commit of a batch with a NUL in an id succeeded")
	}
	_, err := s.Platform(ctx, "plt_ok")
	wantNotFound(t, "Platform of a failed batch", err)
	_, err = s.Update(ctx, nil, func(tx engine.Tx) (any, error) {
		tx.PutPlatform(samplePlatform("plt_ok"))
		tx.PutCounter(engine.CounterKey{Tenant: live, CustomerID: "", Feature: "f"}, engine.Counter{Count: 1})
		return nil, nil
	})
	if err == nil {
		t.Fatal("Update with an empty customer id succeeded")
	}
	_, err = s.Platform(ctx, "plt_ok")
	wantNotFound(t, "Platform of a failed unit", err)
}

// Webhook endpoints, events and deliveries; developers and sessions;
// daily usage rollups.
func testDashboardAndWebhooks(t *testing.T, open Open) {
	s := open(t)
	var mu sync.Mutex
	var woken []string
	s.Watch(func(ch engine.Change) {
		if ch.WebhookDelivery != nil {
			mu.Lock()
			woken = append(woken, ch.WebhookDelivery.EventID)
			mu.Unlock()
		}
	})
	created := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	ep := &engine.WebhookEndpoint{ID: "we_1", URL: "https://hooks.example.com/a", Events: []string{"customer.created"},
		Enabled: true, CreatedAt: created, Secret: []byte{1, 2, 3}, PrevSecret: []byte{4}, PrevSecretUntil: created.Add(time.Hour)}
	ev := &engine.WebhookEvent{ID: "evt_1", Type: "customer.created", CreatedAt: created, Body: []byte(`{"id":"evt_1"}`)}
	dev := &engine.Developer{ID: "dev_1", Email: "Dev@Example.com", Platforms: []string{"plt_a"}, CreatedAt: created, SessionEpoch: 2}
	sess := &engine.Session{TokenHash: hash("session"), DeveloperID: "dev_1", Epoch: 2, CSRFToken: "csrf", PlatformID: "plt_a", CreatedAt: created, LastSeenAt: created}
	day := engine.DayKey{Tenant: live, Date: "2024-01-02", Feature: "requests"}
	commit(t, s, func(b engine.Batch) {
		b.PutWebhookEndpoint(live, ep)
		b.PutWebhookEvent(live, ev)
		for _, id := range []string{"evt_1", "evt_2", "evt_3"} {
			b.PutWebhookDelivery(live, &engine.WebhookDelivery{EndpointID: "we_1", EventID: id, Type: "customer.created", State: engine.DeliveryPending, CreatedAt: created})
		}
		b.PutDeveloper(dev, "")
		b.PutSession(sess)
		b.PutUsageDay(day, engine.DayCount{Count: 7, Denied: 2})
		b.PutUsageDay(engine.DayKey{Tenant: live, Date: "2024-01-05", Feature: "requests"}, engine.DayCount{Count: 1})
		b.PutUsageDay(engine.DayKey{Tenant: live, Date: "2024-01-09", Feature: "requests"}, engine.DayCount{Count: 1})
	})
	got, err := s.WebhookEndpoint(ctx, live, "we_1")
	wantEqual(t, "WebhookEndpoint", got, err, ep)
	eps, err := s.WebhookEndpoints(ctx, live)
	wantEqual(t, "WebhookEndpoints", eps, err, []*engine.WebhookEndpoint{ep})
	gotEv, err := s.WebhookEvent(ctx, live, "evt_1")
	if err != nil || gotEv.ID != ev.ID || gotEv.Type != ev.Type || !gotEv.CreatedAt.Equal(ev.CreatedAt) || string(gotEv.Body) != string(ev.Body) {
		t.Errorf("WebhookEvent = %+v, %v; want %+v", gotEv, err, ev)
	}
	// A finished delivery leaves the queue.
	commit(t, s, func(b engine.Batch) {
		b.PutWebhookDelivery(live, &engine.WebhookDelivery{EndpointID: "we_1", EventID: "evt_2", Type: "customer.created", State: "delivered", CreatedAt: created})
	})
	pending, err := s.WebhookPending(ctx, live, "we_1", 10)
	wantEqual(t, "WebhookPending", ids(pending, func(d *engine.WebhookDelivery) string { return d.EventID }), err, []string{"evt_1", "evt_3"})
	refs, err := s.WebhookPendingEndpoints(ctx)
	wantEqual(t, "WebhookPendingEndpoints", refs, err, []engine.WebhookEndpointRef{{Tenant: live, EndpointID: "we_1"}})
	all, more, err := s.WebhookDeliveries(ctx, live, "we_1", engine.Page{Limit: 2})
	wantEqual(t, "WebhookDeliveries newest first", ids(all, func(d *engine.WebhookDelivery) string { return d.EventID }), err, []string{"evt_3", "evt_2"})
	if !more {
		t.Error("WebhookDeliveries: more = false with a third")
	}
	all, more, err = s.WebhookDeliveries(ctx, live, "we_1", engine.Page{Limit: 2, StartingAfter: "evt_2"})
	wantEqual(t, "WebhookDeliveries after evt_2", ids(all, func(d *engine.WebhookDelivery) string { return d.EventID }), err, []string{"evt_1"})
	if more {
		t.Error("WebhookDeliveries: more = true at the end")
	}
	d, err := s.WebhookDelivery(ctx, live, "we_1", "evt_2")
	if err != nil || d.State != "delivered" {
		t.Errorf("WebhookDelivery = %+v, %v", d, err)
	}
	n, err := s.ExpireWebhooks(ctx, created.Add(time.Second))
	wantEqual(t, "ExpireWebhooks (finished deliveries and events; pending ones stay)", n, err, 2)
	_, err = s.WebhookEvent(ctx, live, "evt_1")
	wantNotFound(t, "an expired WebhookEvent", err)
	pending, err = s.WebhookPending(ctx, live, "we_1", 10)
	wantEqual(t, "WebhookPending after expiry", len(pending), err, 2)
	commit(t, s, func(b engine.Batch) { b.DeleteWebhookEndpoint(live, "we_1") })
	_, err = s.WebhookEndpoint(ctx, live, "we_1")
	wantNotFound(t, "a deleted WebhookEndpoint", err)
	_, err = s.WebhookDelivery(ctx, live, "we_1", "evt_9")
	wantNotFound(t, "WebhookDelivery", err)

	gotDev, err := s.Developer(ctx, "dev_1")
	wantEqual(t, "Developer", gotDev, err, dev)
	id, err := s.DeveloperIDByEmail(ctx, "dev@example.COM")
	wantEqual(t, "DeveloperIDByEmail", id, err, "dev_1")
	_, err = s.Developer(ctx, "dev_2")
	wantNotFound(t, "Developer", err)
	_, err = s.DeveloperIDByEmail(ctx, "x@example.com")
	wantNotFound(t, "DeveloperIDByEmail", err)
	gotSess, err := s.Session(ctx, sess.TokenHash)
	wantEqual(t, "Session", gotSess, err, sess)
	var listed []*engine.Session
	err = s.Sessions(ctx, func(x *engine.Session) error { listed = append(listed, x); return nil })
	wantEqual(t, "Sessions", listed, err, []*engine.Session{sess})
	commit(t, s, func(b engine.Batch) { b.DeleteSession(sess.TokenHash) })
	_, err = s.Session(ctx, sess.TokenHash)
	wantNotFound(t, "a deleted Session", err)

	c, err := s.UsageDay(ctx, day)
	wantEqual(t, "UsageDay", c, err, engine.DayCount{Count: 7, Denied: 2})
	c, err = s.UsageDay(ctx, engine.DayKey{Tenant: test, Date: "2024-01-02", Feature: "requests"})
	wantEqual(t, "UsageDay of test mode", c, err, engine.DayCount{})
	var days []string
	err = s.UsageDays(ctx, live, "2024-01-02", "2024-01-05", func(k engine.DayKey, c engine.DayCount) error {
		days = append(days, fmt.Sprintf("%s %s %d", k.Date, k.Feature, c.Count))
		return nil
	})
	wantEqual(t, "UsageDays (inclusive)", days, err, []string{"2024-01-02 requests 7", "2024-01-05 requests 1"})

	mu.Lock()
	defer mu.Unlock()
	wantEqual(t, "Watch told of pending deliveries", woken, nil, []string{"evt_1", "evt_2", "evt_3"})
}

// End-user sign-in: passwords, sessions, resets, signing keys (Watch is
// told of signing keys).
func testAuth(t *testing.T, open Open) {
	s := open(t)
	var mu sync.Mutex
	var told []string
	s.Watch(func(ch engine.Change) {
		if ch.SigningKey != nil {
			mu.Lock()
			told = append(told, ch.SigningKey.ID)
			mu.Unlock()
		}
	})
	created := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	pw := &engine.CustomerPassword{Salt: []byte{1}, Hash: []byte{2, 3}, ChangedAt: created}
	s1 := &engine.SignInSession{ID: "ses_1", PlatformID: "plt_a", Mode: engine.Live, CustomerID: "cus_a", TokenHash: []byte{9}}
	s2 := &engine.SignInSession{ID: "ses_2", PlatformID: "plt_a", Mode: engine.Live, CustomerID: "cus_a", TokenHash: []byte{8}}
	reset := &engine.PasswordReset{ID: "rst_1", PlatformID: "plt_a", CustomerID: "cus_a", TokenHash: []byte{7}, CreatedAt: created, ExpiresAt: created.Add(time.Hour)}
	k1 := &engine.SigningKey{ID: "sgk_1", CreatedAt: created, Public: []byte{1}, PrivateSealed: []byte{2}}
	k2 := &engine.SigningKey{ID: "sgk_2", CreatedAt: created.Add(time.Hour), Public: []byte{3}, PrivateSealed: []byte{4}}
	commit(t, s, func(b engine.Batch) {
		b.PutCustomerPassword(live, "cus_a", pw)
		b.PutSignInSession(s2)
		b.PutSignInSession(s1)
		b.PutPasswordReset(reset)
	})
	update(t, s, engine.Lock{Kind: engine.LockSigningKeys}, func(tx engine.Tx) {
		tx.PutSigningKey(k2)
		tx.PutSigningKey(k1)
	})
	gotPw, err := s.CustomerPassword(ctx, live, "cus_a")
	wantEqual(t, "CustomerPassword", gotPw, err, pw)
	gotS, err := s.SignInSession(ctx, "ses_1")
	wantEqual(t, "SignInSession", gotS, err, s1)
	list, err := s.SignInSessions(ctx, live, "cus_a")
	wantEqual(t, "SignInSessions", list, err, []*engine.SignInSession{s1, s2})
	gotR, err := s.PasswordReset(ctx, "rst_1")
	wantEqual(t, "PasswordReset", gotR, err, reset)
	keys, err := s.SigningKeys(ctx)
	wantEqual(t, "SigningKeys", keys, err, []*engine.SigningKey{k1, k2})
	commit(t, s, func(b engine.Batch) {
		b.DeleteCustomerPassword(live, "cus_a")
		b.DeleteSignInSession(s1)
		b.DeletePasswordReset("rst_1")
	})
	_, err = s.CustomerPassword(ctx, live, "cus_a")
	wantNotFound(t, "a deleted CustomerPassword", err)
	_, err = s.SignInSession(ctx, "ses_1")
	wantNotFound(t, "a deleted SignInSession", err)
	list, err = s.SignInSessions(ctx, live, "cus_a")
	wantEqual(t, "SignInSessions after a delete", len(list), err, 1)
	list, err = s.SignInSessions(ctx, test, "cus_a")
	wantEqual(t, "SignInSessions of test mode", len(list), err, 0)
	_, err = s.PasswordReset(ctx, "rst_1")
	wantNotFound(t, "a deleted PasswordReset", err)
	mu.Lock()
	defer mu.Unlock()
	wantEqual(t, "Watch told of signing keys", told, nil, []string{"sgk_2", "sgk_1"})
}

// A tenant's log of recent Stripe events: slots written and rewritten,
// listed in any order; tenants and modes apart; a slot out of the ring
// fails the batch.
func testStripeEventLog(t *testing.T, open Open) {
	s := open(t)
	got, err := s.StripeEventLog(ctx, live)
	if err != nil || len(got) != 0 {
		t.Fatalf("empty log: %v, %v", got, err)
	}
	at := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	rec := func(seq int64, outcome string) *engine.StripeEventRecord {
		return &engine.StripeEventRecord{Seq: seq, EventID: fmt.Sprintf("evt_%d", seq), Type: "customer.subscription.updated",
			ReceivedAt: at.Add(time.Duration(seq) * time.Second), Outcome: outcome, Reason: "why", CustomerID: "cus_a", PlanFrom: "free", PlanTo: "pro"}
	}
	lock := engine.Lock{Kind: engine.LockStripeEventLog, Platform: "plt_a"}
	update(t, s, lock, func(tx engine.Tx) {
		tx.PutStripeEventLog(live, 1, rec(1, "applied"))
		tx.PutStripeEventLog(live, 2, rec(2, "failed"))
		tx.PutStripeEventLog(test, 1, rec(1, "ignored"))
	})
	update(t, s, lock, func(tx engine.Tx) {
		tx.PutStripeEventLog(live, 1, rec(51, "duplicate")) // the ring comes round
		tx.PutStripeEventLog(live, engine.StripeEventLogSize-1, rec(49, "stale"))
	})
	got, err = s.StripeEventLog(ctx, live)
	slices.SortFunc(got, func(a, b *engine.StripeEventRecord) int { return int(a.Seq - b.Seq) })
	wantEqual(t, "StripeEventLog live", got, err, []*engine.StripeEventRecord{rec(2, "failed"), rec(49, "stale"), rec(51, "duplicate")})
	got, err = s.StripeEventLog(ctx, test)
	wantEqual(t, "StripeEventLog test", got, err, []*engine.StripeEventRecord{rec(1, "ignored")})
	got, err = s.StripeEventLog(ctx, engine.Tenant{PlatformID: "plt_b"})
	if err != nil || len(got) != 0 {
		t.Errorf("another platform's log: %v, %v", got, err)
	}
	for _, slot := range []int{-1, engine.StripeEventLogSize} {
		b := s.NewBatch()
		b.PutPlatform(samplePlatform("plt_slot"))
		b.PutStripeEventLog(live, slot, rec(99, "applied"))
		if err := b.Commit(); err == nil {
			t.Errorf("slot %d: Commit succeeded", slot)
		}
		b.Close()
	}
	if _, err := s.Platform(ctx, "plt_slot"); engine.ErrorCode(err) != engine.ENOTFOUND {
		t.Errorf("a batch with a bad slot wrote: %v", err)
	}
}
