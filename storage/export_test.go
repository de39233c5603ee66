package storage

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
)

// dump returns every key and value of s.
func dump(t *testing.T, s *Store) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := s.scan(ctx, nil, nil, func(key, val []byte) error {
		out[string(key)] = bytes.Clone(val)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sameDump fails t unless copy holds the very keys and values of src.
func sameDump(t *testing.T, src, copy *Store) {
	t.Helper()
	want, got := dump(t, src), dump(t, copy)
	for k, v := range want {
		if !bytes.Equal(got[k], v) {
			t.Errorf("key %q: copied %x, want %x", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("key %q: in the copy only", k)
		}
	}
}

// everyRecord writes every kind of record (44 of them, indexes aside).
func everyRecord(b engine.Batch) {
	key := sampleKey("plt_a", "key_1", "pk_test_1", day("2024-01-02"))
	b.PutAdminTokenHash(hash("admin"))
	b.PutPlatform(samplePlatform("plt_a"))
	b.PutKey(key)
	b.PutTiers(tenantLive, engine.DefaultTiers())
	for i := range 7 {
		b.PutCustomer(tenantLive, sampleCustomer(fmt.Sprintf("cus_%d", i), fmt.Sprintf("u%d@Example.com", i)), "")
	}
	b.PutCustomer(tenantTest, sampleCustomer("cus_t", ""), "")
	for _, d := range []string{"2023-12-31", "2024-01-01", "1969-07-20"} {
		b.PutCounter(engine.CounterKey{Tenant: tenantLive, CustomerID: "cus_1", Feature: "api-calls", PeriodStart: day(d)}, engine.Counter{Count: 42, PeriodEnd: day(d).AddDate(0, 1, 0)})
	}
	// A period start whose encoding holds a 0x00 byte.
	b.PutCounter(engine.CounterKey{Tenant: tenantLive, CustomerID: "cus_1", Feature: "f", PeriodStart: time.UnixMilli(0x0100)}, engine.Counter{Count: 1})
	b.PutPolicyState(tenantLive, "cus_1", "api-calls", []byte{0, 1, 2})
	b.PutIdempotency(tenantLive, "key with spaces / ✓", &engine.IdemRecord{RequestHash: hash("r"), RequestID: "req_1", Status: 201, Body: []byte("{}"), CreatedAt: day("2024-01-01")})
	b.PutOutbox(&engine.OutboxEntry{ID: "obx_1", Kind: "clerk.update", PlatformID: "plt_a"})
	b.PutAllowedOrigins("plt_a", []string{"https://a.example.com", engine.AnyOrigin}, nil)
	b.PutPluginVersion(tenantTest, &engine.PluginVersion{Version: "v_1", Size: 3}, []byte{0, 'a', 's'})
	b.PutPluginVersion(tenantTest, &engine.PluginVersion{Version: "v_2", Size: 1}, []byte{1})
	b.PutPluginSettings(tenantTest, &engine.PluginSettings{Active: "v_2", OnError: "deny"})
	b.PutStripeConnection(tenantLive, &engine.StripeConnection{AccountID: "acct_1", SecretKey: []byte{9}})
	b.PutStripeAccount("acct_1", "plt_a")
	b.PutStripeCatalog(tenantLive, &engine.StripeCatalog{AccountID: "acct_1"})
	b.PutStripeCustomer(tenantLive, "cus_S1", "cus_1")
	b.PutStripeSubscription(tenantLive, &engine.StripeSubscription{ID: "sub_1", CustomerID: "cus_1", Status: "active"})
	b.PutStripeEvent(tenantLive, "evt_1", day("2024-01-03"))
	b.PutStripeEventLog(tenantLive, 7, &engine.StripeEventRecord{Seq: 57, EventID: "evt_1", Type: "invoice.paid", Outcome: "applied", CustomerID: "cus_1", PlanFrom: "free", PlanTo: "pro"})
	b.PutStripeEventLog(tenantTest, 0, &engine.StripeEventRecord{Seq: 50, EventID: "evt_2", Outcome: "failed", Reason: "unknown customer"})
	b.PutPlatformBilling(&engine.PlatformBilling{PlatformID: "plt_a", Status: "active"})
	b.PutPlatformQuotas("plt_a", &engine.PlatformQuotas{Customers: ptr(int64(3))})
	b.PutWebhookEndpoint(tenantLive, &engine.WebhookEndpoint{ID: "we_1", URL: "https://h.example.com", Secret: []byte{1}})
	b.PutWebhookEvent(tenantLive, &engine.WebhookEvent{ID: "evt_w", Type: "customer.created", Body: []byte(`{"a":1}`)})
	b.PutWebhookDelivery(tenantLive, &engine.WebhookDelivery{EndpointID: "we_1", EventID: "evt_w", State: engine.DeliveryPending})
	b.PutDeveloper(&engine.Developer{ID: "dev_1", Email: "D@example.com"}, "")
	b.PutSession(&engine.Session{TokenHash: hash("s"), DeveloperID: "dev_1"})
	b.PutCustomerPassword(tenantLive, "cus_1", &engine.CustomerPassword{Salt: []byte{1}, Hash: []byte{2}})
	b.PutSignInSession(&engine.SignInSession{ID: "ses_1", PlatformID: "plt_a", CustomerID: "cus_1", TokenHash: []byte{3}})
	b.PutPasswordReset(&engine.PasswordReset{ID: "rst_1", PlatformID: "plt_a", CustomerID: "cus_1"})
	b.PutSigningKey(&engine.SigningKey{ID: "sgk_1", Public: []byte{4}})
	b.PutUsageDay(engine.DayKey{Tenant: tenantLive, Date: "2024-01-02", Feature: "requests", Shard: 3}, engine.DayCount{Count: 5})
	b.PutAggregates(tenantLive, &engine.Aggregates{Plans: map[string]int64{"pro": 7}, Active: 1})
}

// CopyTo copies every kind of record: a Pebble copy of a Pebble store holds
// the very same keys and values, indexes included.
func TestCopyToCopiesEverything(t *testing.T) {
	src := openStore(t, t.TempDir())
	commit(t, src, everyRecord)
	dst := openStore(t, t.TempDir())
	n, err := src.CopyTo(ctx, dst, 4) // several batches
	if err != nil {
		t.Fatal(err)
	}
	sameDump(t, src, dst)
	if n != 44 { // every key but the schema version and the indexes; a version and its module are one
		t.Errorf("CopyTo copied %d records, want 44", n)
	}
}
