package storage

import (
	"bytes"
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
