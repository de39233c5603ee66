package engine

import (
	"math"
	"strings"
	"testing"
)

func TestStripeKeyMode(t *testing.T) {
	for _, tc := range []struct {
		key  string
		mode Mode
		ok   bool
	}{
		{"sk_live_abc", Live, true},
		{"rk_live_abc", Live, true},
		{"sk_test_abc", Test, true},
		{"rk_test_abc", Test, true},
		{"pk_test_abc", 0, false},
		{"whsec_abc", 0, false},
		{"sk_testabc", 0, false},
	} {
		mode, ok := StripeKeyMode(tc.key)
		if ok != tc.ok || (ok && mode != tc.mode) {
			t.Errorf("StripeKeyMode(%q) = %v, %v; want %v, %v", tc.key, mode, ok, tc.mode, tc.ok)
		}
	}
}

func TestConnectInputValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		in     ConnectInput
		mode   Mode
		fields []string
	}{
		{"connect", ConnectInput{}, Test, nil},
		{"by key", ConnectInput{SecretKey: "sk_test_1", WebhookSecret: "whsec_1"}, Test, nil},
		{"wrong mode", ConnectInput{SecretKey: "sk_live_1", WebhookSecret: "whsec_1"}, Test, []string{"secretKey"}},
		{"no webhook secret", ConnectInput{SecretKey: "rk_live_1"}, Live, []string{"webhookSecret"}},
		{"secret without key", ConnectInput{WebhookSecret: "whsec_1"}, Live, []string{"secretKey"}},
		{"bad urls", ConnectInput{ReturnURL: "ftp://x", RefreshURL: "/relative"}, Live, []string{"returnUrl", "refreshUrl"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.in.Validate(tc.mode)
			var got []string
			if e, ok := err.(*Error); ok {
				for _, f := range e.Fields {
					got = append(got, f.Field)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.fields, ",") {
				t.Errorf("fields %v, want %v (%v)", got, tc.fields, err)
			}
		})
	}
}

func TestStripeIdem(t *testing.T) {
	acme := Tenant{PlatformID: "plt_acme", Mode: Live}
	if got := stripeIdem(acme, nil, "checkout"); got != "" {
		t.Errorf("no key: %q", got)
	}
	a := &Idempotency{Key: "order-1", RequestHash: [32]byte{1, 2, 3, 4}}
	b := &Idempotency{Key: "order-1", RequestHash: [32]byte{9}}
	if got := stripeIdem(acme, a, "checkout"); got != "plt_acme/live/order-1/checkout/01020304" {
		t.Errorf("stripeIdem = %q", got)
	}
	// Another body with the same key is another Stripe request.
	if stripeIdem(acme, a, "checkout") == stripeIdem(acme, b, "checkout") || stripeIdem(acme, a, "checkout") == stripeIdem(acme, a, "customer") {
		t.Error("idempotency keys collide")
	}
	long := &Idempotency{Key: strings.Repeat("k", 255)}
	if got := stripeIdem(acme, long, "checkout"); len(got) > 255 || !strings.HasPrefix(got, "dream-") {
		t.Errorf("long key: %q", got)
	}
}

// TestStripeIdemScopedByPlatformAndMode: the same request (same key, same
// body) of two platforms, or of one platform's two modes, is two requests to
// Stripe. Connect onboarding of every platform runs on the operator's one
// account: a shared key would hand the second platform the first one's
// connected account.
func TestStripeIdemScopedByPlatformAndMode(t *testing.T) {
	idem := &Idempotency{Key: "connect-stripe", RequestHash: [32]byte{7, 7, 7, 7}}
	long := &Idempotency{Key: strings.Repeat("k", 255), RequestHash: idem.RequestHash}
	tenants := []Tenant{
		{PlatformID: "plt_a", Mode: Live}, {PlatformID: "plt_a", Mode: Test},
		{PlatformID: "plt_b", Mode: Live}, {PlatformID: "plt_b", Mode: Test},
	}
	for _, key := range []*Idempotency{idem, long} {
		seen := map[string]Tenant{}
		for _, tn := range tenants {
			got := stripeIdem(tn, key, "account")
			if other, dup := seen[got]; dup {
				t.Errorf("%v and %v send the same Idempotency-Key %q", other, tn, got)
			}
			seen[got] = tn
		}
	}
}

func TestMonthly(t *testing.T) {
	for _, tc := range []struct {
		amount   int64
		interval string
		count    int64
		want     float64
	}{
		{1500, IntervalMonth, 1, 1500},
		{1500, IntervalMonth, 3, 500},
		{12000, IntervalYear, 1, 1000},
		{100, IntervalWeek, 1, 100 * 52.0 / 12},
		{10, IntervalDay, 1, 10 * 365.0 / 12},
		{900, IntervalMonth, 0, 900},
	} {
		if got := monthly(tc.amount, tc.interval, tc.count); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("monthly(%d, %s, %d) = %v, want %v", tc.amount, tc.interval, tc.count, got, tc.want)
		}
	}
}

func TestWithStripeIDsOnlyWhereInStep(t *testing.T) {
	tc := &TierConfig{Tiers: []Tier{
		{Name: "free", Price: 0, Currency: "usd", Interval: IntervalMonth},
		{Name: "pro", Price: 2000, Currency: "usd", Interval: IntervalMonth},
	}}
	cat := &StripeCatalog{Tiers: map[string]*StripeTier{
		"free": {ProductID: "prod_f", PriceID: "price_f", Amount: 0, Currency: "usd", Interval: IntervalMonth},
		"pro":  {ProductID: "prod_p", PriceID: "price_p", Amount: 1500, Currency: "usd", Interval: IntervalMonth},
	}}
	got := withStripeIDs(tc, cat)
	if got.Tiers[0].PriceID == nil || *got.Tiers[0].PriceID != "price_f" {
		t.Errorf("free: %+v", got.Tiers[0])
	}
	if got.Tiers[1].PriceID != nil {
		t.Errorf("pro's price is for 1500, the tier costs 2000: %+v", got.Tiers[1])
	}
	if tc.Tiers[0].PriceID != nil {
		t.Error("withStripeIDs changed the cached config")
	}
}
