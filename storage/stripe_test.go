package storage

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
)

func TestStripeRecordsRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s := openStore(t, dir)
	live := engine.Tenant{PlatformID: "plt_a", Mode: engine.Live}
	test := engine.Tenant{PlatformID: "plt_a", Mode: engine.Test}
	at := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

	conn := &engine.StripeConnection{Mode: engine.Test, Method: engine.StripeViaKey, AccountID: "acct_1",
		SecretKey: []byte{1, 2, 3}, WebhookSecret: []byte{4, 5}, KeyHint: "sk_test_…abcd", CreatedAt: at, UpdatedAt: at}
	cat := &engine.StripeCatalog{AccountID: "acct_1",
		Tiers:  map[string]*engine.StripeTier{"pro": {ProductID: "prod_1", PriceID: "price_2", Name: "Pro", Amount: 1500, Currency: "usd", Interval: "month"}},
		Prices: map[string]string{"price_1": "pro", "price_2": "pro"}}
	sub := &engine.StripeSubscription{ID: "sub_1", CustomerID: "cus_1", Status: "active", SubscriptionEventAt: at}
	pb := &engine.PlatformBilling{PlatformID: "plt_a", SubscriptionID: "sub_p", Status: "active", EventAt: at, UpdatedAt: at}
	commit(t, s, func(b engine.Batch) {
		b.PutStripeConnection(test, conn)
		b.PutStripeAccount("acct_1", "plt_a")
		b.PutStripeCatalog(test, cat)
		b.PutStripeCustomer(test, "cus_S1", "cus_1")
		b.PutStripeSubscription(test, sub)
		b.PutStripeEvent(test, "evt_1", at)
		b.PutPlatformBilling(pb)
	})
	s = reopen(t, s, dir)

	gotConn, err := s.StripeConnection(ctx, test)
	if err != nil || !bytes.Equal(gotConn.SecretKey, conn.SecretKey) || gotConn.AccountID != "acct_1" || gotConn.Method != engine.StripeViaKey {
		t.Errorf("connection %+v, %v", gotConn, err)
	}
	_, err = s.StripeConnection(ctx, live)
	wantNotFound(t, "live connection", err)
	if pid, err := s.StripeAccountPlatform(ctx, "acct_1"); pid != "plt_a" || err != nil {
		t.Errorf("account index %q, %v", pid, err)
	}
	gotCat, err := s.StripeCatalog(ctx, test)
	if err != nil || gotCat.Tiers["pro"].PriceID != "price_2" || gotCat.Prices["price_1"] != "pro" {
		t.Errorf("catalog %+v, %v", gotCat, err)
	}
	_, err = s.StripeCatalog(ctx, live)
	wantNotFound(t, "live catalog", err)
	if id, err := s.CustomerIDByStripeID(ctx, test, "cus_S1"); id != "cus_1" || err != nil {
		t.Errorf("customer index %q, %v", id, err)
	}
	_, err = s.CustomerIDByStripeID(ctx, live, "cus_S1")
	wantNotFound(t, "customer index in live mode", err)
	if got, err := s.StripeSubscription(ctx, test, "sub_1"); err != nil || got.CustomerID != "cus_1" || !got.SubscriptionEventAt.Equal(at) {
		t.Errorf("subscription %+v, %v", got, err)
	}
	for tn, want := range map[engine.Tenant]bool{test: true, live: false} {
		if got, err := s.StripeEventApplied(ctx, tn, "evt_1"); got != want || err != nil {
			t.Errorf("event applied in %s = %v, %v; want %v", tn.Mode, got, err, want)
		}
	}
	if got, err := s.PlatformBilling(ctx, "plt_a"); err != nil || got.Status != "active" || got.SubscriptionID != "sub_p" {
		t.Errorf("platform billing %+v, %v", got, err)
	}

	commit(t, s, func(b engine.Batch) {
		b.DeleteStripeConnection(test)
		b.DeleteStripeAccount("acct_1")
	})
	_, err = s.StripeConnection(ctx, test)
	wantNotFound(t, "deleted connection", err)
	_, err = s.StripeAccountPlatform(ctx, "acct_1")
	wantNotFound(t, "deleted account index", err)
}

func TestStripeKeysStayInTheirRanges(t *testing.T) {
	tn := engine.Tenant{PlatformID: "plt_a", Mode: engine.Test}
	other := engine.Tenant{PlatformID: "plt_ab", Mode: engine.Test}
	for _, tc := range []struct {
		name   string
		prefix []byte
		key    []byte
	}{
		{"customers vs stripe customer index", customersPrefix(tn), stripeCustomerKey(tn, "cus_S1")},
		{"customers vs stripe connection", customersPrefix(tn), stripeConnectionKey(tn)},
		{"stripe events of plt_a vs plt_ab", prefixOf(tenantKey(prefixStripeEvent, tn)), stripeEventKey(other, "evt_1")},
		{"idempotency vs stripe events", idempotencyPrefix(), stripeEventKey(tn, "evt_1")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if bytes.Compare(tc.key, tc.prefix) >= 0 && bytes.Compare(tc.key, prefixEnd(tc.prefix)) < 0 {
				t.Errorf("key %q falls in the range of %q", tc.key, tc.prefix)
			}
		})
	}
}
