package storage

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
)

// Values written by earlier builds must keep decoding to the same records.
// These are format 1 values as stored; if a field of engine's types is
// renamed or its JSON tag changes, this test fails instead of a store
// silently losing the field.
func TestDecodesFormat1Values(t *testing.T) {
	t.Run("key", func(t *testing.T) {
		val := []byte("\x01" + `{"id":"key_1","platformId":"plt_a","mode":"test","publishableKey":"pk_test_1",` +
			`"secretKeyHint":"sk_test_…abcd","createdAt":"2024-01-02T00:00:00Z","lastUsedAt":null,` +
			`"revokedAt":"2024-03-01T00:00:00Z","expiresAt":null,` +
			`"secretHash":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}`)
		got, err := decodeKey(val)
		if err != nil {
			t.Fatal(err)
		}
		want := &engine.Key{
			ID: "key_1", PlatformID: "plt_a", Mode: engine.Test, PublishableKey: "pk_test_1",
			SecretHint: "sk_test_…abcd", CreatedAt: day("2024-01-02"), RevokedAt: ptr(day("2024-03-01")),
		}
		for i := range want.SecretHash {
			want.SecretHash[i] = byte(i)
		}
		wantEqual(t, "key", got, want)
	})
	t.Run("customer", func(t *testing.T) {
		val := []byte("\x01" + `{"id":"cus_a","email":"ann@example.com","firstName":"Ann","lastName":"Lee",` +
			`"plan":"pro","publishableKey":"pk_test_1","metadata":{"team":"blue"},"stripeCustomerId":"cus_S",` +
			`"createdAt":"2024-01-02T00:00:00Z","periodStart":"2024-01-15T00:00:00Z","periodEnd":"2024-02-15T00:00:00Z"}`)
		got, err := decodeCustomer(val)
		if err != nil {
			t.Fatal(err)
		}
		want := &engine.Customer{
			ID: "cus_a", Email: "ann@example.com", FirstName: "Ann", LastName: "Lee", Plan: "pro",
			PublishableKey: "pk_test_1", Metadata: map[string]any{"team": "blue"}, StripeCustomerID: ptr("cus_S"),
			CreatedAt: day("2024-01-02"), PeriodStart: day("2024-01-15"), PeriodEnd: day("2024-02-15"),
		}
		wantEqual(t, "customer", got, want)
	})
	t.Run("counter", func(t *testing.T) {
		// count 7, period end 2024-02-01T00:00:00Z = 1706745600000 ms
		val := []byte{1, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0x01, 0x8d, 0x61, 0xf7, 0x18, 0x00}
		got, err := decodeCounter(val)
		if err != nil {
			t.Fatal(err)
		}
		wantEqual(t, "counter", got, engine.Counter{Count: 7, PeriodEnd: day("2024-02-01")})
		if enc := encodeCounter(got); !bytes.Equal(enc, val) {
			t.Errorf("encodeCounter = %x, want %x", enc, val)
		}
	})
}

// A customer without a subscription period stays without one.
func TestCustomerZeroPeriodRoundTrip(t *testing.T) {
	c := &engine.Customer{ID: "cus_a", CreatedAt: time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC)}
	val, err := encodeCustomer(c)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(val, []byte("periodStart")) {
		t.Errorf("a zero period is stored: %s", val)
	}
	got, err := decodeCustomer(val)
	if err != nil {
		t.Fatal(err)
	}
	if !got.PeriodStart.IsZero() || !got.PeriodEnd.IsZero() {
		t.Errorf("period = %v – %v, want zero", got.PeriodStart, got.PeriodEnd)
	}
	wantEqual(t, "customer", got, c)
}

func TestIdempotencyBodyByteForByte(t *testing.T) {
	for _, body := range [][]byte{
		nil,
		[]byte(`{"allowed":true}` + "\n"),
		{0x00, 0xff, 0x01, '\n', 0x00},
	} {
		r := &engine.IdemRecord{RequestHash: hash("r"), Status: 429, Body: body, CreatedAt: time.UnixMilli(1).UTC()}
		got, err := decodeIdempotency(encodeIdempotency(r))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Body, body) || got.Status != r.Status || got.RequestHash != r.RequestHash || !got.CreatedAt.Equal(r.CreatedAt) {
			t.Errorf("round trip of body %q = %+v", body, got)
		}
	}
}

// Customers are written in binary (format 2) and read back whole; a
// truncated or damaged record is an ErrFormat, never a panic or a guess.
func TestCustomerBinaryFormat(t *testing.T) {
	east := time.FixedZone("UTC+3", 3*3600)
	full := &engine.Customer{
		ID: "cus_a", Email: "ánn@example.com", FirstName: "Ann", LastName: "Lée", Plan: "pro",
		PublishableKey: "pk_test_1", Metadata: map[string]any{"team": "blue", "n": 3.5, "tags": []any{"a", true, nil}},
		StripeCustomerID: ptr("cus_S"), StripeAccountID: "acct_1",
		CreatedAt:    time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC),
		PeriodStart:  time.Date(2024, 1, 15, 0, 0, 0, 0, east),
		PeriodEnd:    time.Date(2024, 2, 15, 0, 0, 0, 999_999_999, time.UTC),
		Subscription: &engine.Subscription{ID: "sub_1", Status: "active"},
	}
	for name, c := range map[string]*engine.Customer{
		"every field":    full,
		"empty metadata": {ID: "cus_b", Email: "b@example.com", Plan: "free", Metadata: map[string]any{}, CreatedAt: full.CreatedAt},
		"nil metadata":   {ID: "cus_c", CreatedAt: full.CreatedAt},
		"before 1970":    {ID: "cus_d", Metadata: map[string]any{}, CreatedAt: time.Date(1969, 7, 20, 20, 17, 40, 5, time.UTC)},
	} {
		t.Run(name, func(t *testing.T) {
			val, err := encodeCustomer(c)
			if err != nil {
				t.Fatal(err)
			}
			if val[0] != formatCustomerV2 {
				t.Fatalf("format %d, want %d", val[0], formatCustomerV2)
			}
			got, err := decodeCustomer(val)
			if err != nil {
				t.Fatal(err)
			}
			want := c.Clone()
			for _, tp := range []*time.Time{&want.CreatedAt, &want.PeriodStart, &want.PeriodEnd} {
				if !tp.IsZero() {
					*tp = tp.UTC() // the instant is kept, in UTC
				}
			}
			wantEqual(t, "customer", got, want)
			// Every shorter prefix is refused.
			for n := 1; n < len(val); n++ {
				if _, err := decodeCustomer(val[:n]); !errors.Is(err, ErrFormat) {
					t.Fatalf("first %d of %d bytes: %v, want ErrFormat", n, len(val), err)
				}
			}
			if _, err := decodeCustomer(append(val, 0)); !errors.Is(err, ErrFormat) {
				t.Fatalf("a byte after the record: %v, want ErrFormat", err)
			}
		})
	}

	// The binary record is shorter than format 1's JSON of the same customer.
	c := &engine.Customer{ID: "cus_01JD0000000000000000000000", Email: "c123456@scale.example", Plan: "free",
		PublishableKey: "pk_live_01JD00000000000000000000", Metadata: map[string]any{}, CreatedAt: full.CreatedAt}
	v2, _ := encodeCustomer(c)
	v1, _ := encodeJSON(customerRecord{Customer: *c})
	if len(v2) >= len(v1)*2/3 {
		t.Errorf("binary record %d bytes, JSON %d: want at most two thirds", len(v2), len(v1))
	}
	t.Logf("a typical customer: %d bytes in binary, %d in JSON", len(v2), len(v1))
}

func FuzzDecodeCustomer(f *testing.F) {
	c := &engine.Customer{ID: "cus_a", Email: "a@b.co", Metadata: map[string]any{"k": "v"}, StripeCustomerID: ptr("cus_S"),
		CreatedAt: time.Unix(1700000000, 5), Subscription: &engine.Subscription{ID: "sub_1"}}
	val, _ := encodeCustomer(c)
	f.Add(val)
	f.Add([]byte{formatCustomerV2, 0xff})
	f.Fuzz(func(t *testing.T, val []byte) {
		c, err := decodeCustomer(val)
		if err != nil {
			return
		}
		// What decodes encodes again to a record that decodes the same.
		again, err := encodeCustomer(c)
		if err != nil {
			t.Fatal(err)
		}
		c2, err := decodeCustomer(again)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		wantEqual(t, "customer", c2, c)
	})
}

// A platform record written before suspension existed reads as not
// suspended; a suspended one keeps its time and reason.
func TestDecodePlatformOldAndSuspended(t *testing.T) {
	old, err := decodePlatform([]byte("\x01" + `{"id":"plt_a","name":"A","email":"a@example.com","createdAt":"2024-01-02T03:04:05Z"}`))
	if err != nil || old.ID != "plt_a" || old.SuspendedAt != nil || old.Suspended() || old.SuspendedReason != "" {
		t.Fatalf("old record: %+v, %v", old, err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	val, err := encodeJSON(&engine.Platform{ID: "plt_b", Name: "B", SuspendedAt: &at, SuspendedReason: "abuse"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := decodePlatform(val)
	if err != nil || !p.Suspended() || !p.SuspendedAt.Equal(at) || p.SuspendedReason != "abuse" {
		t.Fatalf("suspended record: %+v, %v", p, err)
	}
}
