package storage

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
)

var (
	tenantLive = engine.Tenant{PlatformID: "plt_a", Mode: engine.Live}
	tenantTest = engine.Tenant{PlatformID: "plt_a", Mode: engine.Test}
)

func day(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestCounterKeyRoundTrip(t *testing.T) {
	prefix := countersPrefix(tenantLive, "cus_a")
	for _, tc := range []struct {
		feature string
		start   time.Time
	}{
		{"requests", day("2024-03-01")},
		{"a-b_c", time.UnixMilli(1).UTC()},
		{"x", time.UnixMilli(-1).UTC()},
		{"x", time.Time{}},
	} {
		key := counterKey(engine.CounterKey{Tenant: tenantLive, CustomerID: "cus_a", Feature: tc.feature, PeriodStart: tc.start})
		if !bytes.HasPrefix(key, prefix) {
			t.Fatalf("key %q is not under the customer's prefix %q", key, prefix)
		}
		feature, start, err := parseCounterKey(prefix, key)
		if err != nil {
			t.Fatal(err)
		}
		if feature != tc.feature || !start.Equal(tc.start) {
			t.Errorf("parsed (%q, %v), want (%q, %v)", feature, start, tc.feature, tc.start)
		}
	}
}

func TestParseCounterKeyRejectsMalformed(t *testing.T) {
	prefix := countersPrefix(tenantLive, "cus_a")
	for _, key := range [][]byte{
		append(bytes.Clone(prefix), "short"...),
		append(bytes.Clone(prefix), "requests_no_sep_here"...),
		append(append(bytes.Clone(prefix), sep), make([]byte, 8)...), // empty feature
	} {
		if _, _, err := parseCounterKey(prefix, key); err == nil {
			t.Errorf("parseCounterKey(%q) succeeded", key)
		}
	}
}

// Counter keys sort by feature, then period start, like the Periods listing
// promises; features that are prefixes of others and times before 1970
// included.
func TestCounterKeysSortByFeatureThenPeriod(t *testing.T) {
	want := []engine.CounterKey{
		{Feature: "a", PeriodStart: time.Time{}},
		{Feature: "a", PeriodStart: time.UnixMilli(-1)},
		{Feature: "a", PeriodStart: time.UnixMilli(0)},
		{Feature: "a", PeriodStart: day("2024-01-31")},
		{Feature: "a", PeriodStart: day("2024-02-01")},
		{Feature: "a", PeriodStart: day("2124-02-01")},
		{Feature: "a-b", PeriodStart: day("2020-01-01")},
		{Feature: "a_b", PeriodStart: day("2020-01-01")},
		{Feature: "ab", PeriodStart: day("1999-01-01")},
		{Feature: "b", PeriodStart: day("1999-01-01")},
	}
	var keys [][]byte
	for i := range want {
		want[i].Tenant, want[i].CustomerID = tenantLive, "cus_a"
		keys = append(keys, counterKey(want[i]))
	}
	shuffled := slices.Clone(keys)
	slices.Reverse(shuffled)
	slices.SortFunc(shuffled, bytes.Compare)
	for i := range keys {
		if !bytes.Equal(shuffled[i], keys[i]) {
			t.Fatalf("sorted position %d holds %q, want %q", i, shuffled[i], keys[i])
		}
	}
}

// A prefix scan is within [prefix, prefixEnd(prefix)). None of these pairs
// may share a range: different tenants, modes, or ids where one is a prefix
// of the other.
func TestPrefixesDoNotOverlap(t *testing.T) {
	ck := func(tn engine.Tenant, cus string) []byte {
		return counterKey(engine.CounterKey{Tenant: tn, CustomerID: cus, Feature: "requests", PeriodStart: day("2024-01-01")})
	}
	other := engine.Tenant{PlatformID: "plt_ab", Mode: engine.Live}
	for _, tc := range []struct {
		name   string
		prefix []byte
		key    []byte
	}{
		{"counters of cus_a vs cus_ab", countersPrefix(tenantLive, "cus_a"), ck(tenantLive, "cus_ab")},
		{"counters of cus_ab vs cus_a", countersPrefix(tenantLive, "cus_ab"), ck(tenantLive, "cus_a")},
		{"counters live vs test", countersPrefix(tenantLive, "cus_a"), ck(tenantTest, "cus_a")},
		{"counters test vs live", countersPrefix(tenantTest, "cus_a"), ck(tenantLive, "cus_a")},
		{"counters plt_a vs plt_ab", countersPrefix(tenantLive, "cus_a"), ck(other, "cus_a")},
		{"customers live vs test", customersPrefix(tenantLive), customerKey(tenantTest, "cus_a")},
		{"customers plt_a vs plt_ab", customersPrefix(tenantLive), customerKey(other, "cus_a")},
		{"customers vs counters", customersPrefix(tenantLive), ck(tenantLive, "cus_a")},
		{"customers vs email index", customersPrefix(tenantLive), emailIndexKey(tenantLive, "a@example.com")},
		{"platforms vs keys", platformsPrefix(), keyKey("plt_a", "key_1")},
		{"keys of plt_a vs plt_ab", keysPrefix("plt_a"), keyKey("plt_ab", "key_1")},
		{"publishable pk_a vs pk_ab", publishableIndexPrefix("pk_a"), publishableIndexKey("pk_ab", "plt_a", "key_1")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if bytes.Compare(tc.key, tc.prefix) >= 0 && bytes.Compare(tc.key, prefixEnd(tc.prefix)) < 0 {
				t.Errorf("key %q falls in the range of %q", tc.key, tc.prefix)
			}
		})
	}
}

func TestPrefixesHoldTheirKeys(t *testing.T) {
	for _, tc := range []struct {
		name   string
		prefix []byte
		key    []byte
	}{
		{"platform", platformsPrefix(), platformKey("plt_a")},
		{"key", keysPrefix("plt_a"), keyKey("plt_a", "key_1")},
		{"publishable", publishableIndexPrefix("pk_a"), publishableIndexKey("pk_a", "plt_a", "key_1")},
		{"customer", customersPrefix(tenantLive), customerKey(tenantLive, "cus_a")},
		{"counter", countersPrefix(tenantLive, "cus_a"), counterKey(engine.CounterKey{Tenant: tenantLive, CustomerID: "cus_a", Feature: "f"})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !bytes.HasPrefix(tc.key, tc.prefix) || bytes.Compare(tc.key, prefixEnd(tc.prefix)) >= 0 {
				t.Errorf("key %q is not within [%q, %q)", tc.key, tc.prefix, prefixEnd(tc.prefix))
			}
		})
	}
}

// Customer keys sort like their ids, and after(key) skips exactly that key.
func TestCustomerKeysSortByID(t *testing.T) {
	ids := []string{"cus_a", "cus_a0", "cus_a_", "cus_ab", "cus_b"}
	var keys [][]byte
	for _, id := range ids {
		keys = append(keys, customerKey(tenantLive, id))
	}
	if !slices.IsSortedFunc(keys, bytes.Compare) {
		t.Errorf("customer keys of sorted ids are not sorted: %q", keys)
	}
	for i := 0; i+1 < len(keys); i++ {
		if a := after(bytes.Clone(keys[i])); bytes.Compare(a, keys[i]) <= 0 || bytes.Compare(a, keys[i+1]) > 0 {
			t.Errorf("after(%q) = %q, want in (%q, %q]", keys[i], a, keys[i], keys[i+1])
		}
	}
}

func TestKeysOfDifferentKindsDiffer(t *testing.T) {
	keys := [][]byte{
		schemaKey(), adminTokenKey(), platformKey("x"), keyKey("x", "x"),
		secretIndexKey([32]byte{}), publishableIndexKey("x", "x", "x"), tiersKey(tenantLive), tiersKey(tenantTest),
		customerKey(tenantLive, "x"), customerKey(tenantTest, "x"), emailIndexKey(tenantLive, "x"),
		counterKey(engine.CounterKey{Tenant: tenantLive, CustomerID: "x", Feature: "x"}),
		policyStateKey(tenantLive, "x", "x"), idempotencyKey(tenantLive, "x"),
	}
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[string(k)] {
			t.Errorf("key %q is built twice", k)
		}
		seen[string(k)] = true
	}
}

func TestModesAreDistinctInKeys(t *testing.T) {
	modes := []engine.Mode{engine.Live, engine.Test, 2, 3}
	seen := map[string]engine.Mode{}
	for _, m := range modes {
		k := string(customerKey(engine.Tenant{PlatformID: "p", Mode: m}, "c"))
		if prev, ok := seen[k]; ok {
			t.Errorf("modes %d and %d share key %q", prev, m, k)
		}
		seen[k] = m
	}
}

func TestEmailIndexKeyIgnoresCase(t *testing.T) {
	if a, b := emailIndexKey(tenantLive, "Ann@Example.COM"), emailIndexKey(tenantLive, "ann@example.com"); !bytes.Equal(a, b) {
		t.Errorf("email keys differ by case: %q, %q", a, b)
	}
}

func TestCheckComponents(t *testing.T) {
	if err := checkComponents("plt_a", "cus_1", "a-b"); err != nil {
		t.Errorf("valid ids rejected: %v", err)
	}
	for _, bad := range []string{"", "cus\x00a"} {
		if err := checkComponents("plt_a", bad); !errors.Is(err, errBadComponent) {
			t.Errorf("checkComponents(%q) = %v, want errBadComponent", bad, err)
		}
	}
}

// TestAppendKeysMatch: the keys built on the stack for lookups are the
// bytes of the allocated forms, short or longer than the stack buffer, and
// appended after what dst held.
func TestAppendKeysMatch(t *testing.T) {
	long := strings.Repeat("x", 2*len(keyBuf{}))
	for _, id := range []string{"cus_a", long} {
		ck := engine.CounterKey{Tenant: tenantLive, CustomerID: id, Feature: "requests", PeriodStart: day("2024-01-01")}
		for _, tc := range []struct {
			name     string
			want     []byte
			appendTo func([]byte) []byte
		}{
			{"customer", customerKey(tenantLive, id), func(b []byte) []byte { return appendCustomerKey(b, tenantLive, id) }},
			{"counter", counterKey(ck), func(b []byte) []byte { return appendCounterKey(b, ck) }},
			{"policy state", policyStateKey(tenantLive, id, "requests"), func(b []byte) []byte { return appendPolicyStateKey(b, tenantLive, id, "requests") }},
		} {
			var buf keyBuf
			if got := tc.appendTo(buf[:0]); !bytes.Equal(got, tc.want) {
				t.Errorf("%s (id of %d bytes): %q, want %q", tc.name, len(id), got, tc.want)
			}
			if got := tc.appendTo([]byte("pre")); !bytes.Equal(got, append([]byte("pre"), tc.want...)) {
				t.Errorf("%s appended to bytes: %q", tc.name, got)
			}
		}
	}
}
