package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestNewIDSortsByTime(t *testing.T) {
	t0 := date("2026-11-27T09:00:00Z")
	var ids []string
	for i := 0; i < 100; i++ {
		ids = append(ids, NewID("cus_", t0.Add(time.Duration(i)*time.Millisecond)))
	}
	if !sort.StringsAreSorted(ids) {
		t.Fatalf("ids made later do not sort later: %v", ids[:3])
	}
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := NewID("cus_", t0)
		if seen[id] {
			t.Fatalf("duplicate id %s", id)
		}
		seen[id] = true
		if len(id) != len("cus_")+26 || strings.Trim(id[4:], crockford) != "" {
			t.Fatalf("malformed id %q", id)
		}
	}
}

func TestErrorCode(t *testing.T) {
	tests := []struct {
		err       error
		code, msg string
	}{
		{nil, "", ""},
		{Errorf(ENOTFOUND, "No customer %q.", "x"), ENOTFOUND, `No customer "x".`},
		{fmt.Errorf("wrapped: %w", Errorf(ECONFLICT, "taken")), ECONFLICT, "taken"},
		{errors.New("disk on fire"), EINTERNAL, "Internal error."},
	}
	for _, tc := range tests {
		if got := ErrorCode(tc.err); got != tc.code {
			t.Errorf("ErrorCode(%v) = %q, want %q", tc.err, got, tc.code)
		}
		if tc.err != nil {
			if got := ErrorMessage(tc.err); got != tc.msg {
				t.Errorf("ErrorMessage(%v) = %q, want %q", tc.err, got, tc.msg)
			}
		}
	}
}

func TestValidationListsEveryField(t *testing.T) {
	in := CreateCustomerInput{Email: "not-an-email", FirstName: strings.Repeat("x", 101), Metadata: map[string]any{}}
	for i := 0; i < 51; i++ {
		in.Metadata[fmt.Sprint("k", i)] = i
	}
	err := in.Validate()
	var e *Error
	if !errors.As(err, &e) || e.Code != EVALIDATION {
		t.Fatalf("err = %v, want validation", err)
	}
	var fields []string
	for _, f := range e.Fields {
		fields = append(fields, f.Field)
	}
	if got, want := strings.Join(fields, ","), "email,firstName,metadata"; got != want {
		t.Errorf("fields = %s, want %s", got, want)
	}
}

func TestNormalizeEmail(t *testing.T) {
	good := map[string]string{
		"a@b.co":                   "a@b.co",
		"Test.User@Example.COM":    "test.user@example.com",
		" x+tag@mail.example.org ": "x+tag@mail.example.org",
	}
	for in, want := range good {
		got, err := normalizeEmail(in)
		if err != nil || got != want {
			t.Errorf("normalizeEmail(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "a", "a@", "@b.co", "a@b", "A <a@b.co>", "a b@c.co", strings.Repeat("a", 250) + "@b.co"} {
		if got, err := normalizeEmail(in); err == nil {
			t.Errorf("normalizeEmail(%q) = %q, want an error", in, got)
		}
	}
}

func TestBuiltinLimits(t *testing.T) {
	tests := []struct {
		name             string
		used, limit, qty int64
		allowed          bool
	}{
		{"under", 0, 100, 1, true},
		{"reaches the limit", 99, 100, 1, true},
		{"at the limit", 100, 100, 1, false},
		{"quantity would pass it", 95, 100, 10, false},
		{"unlimited", 1 << 40, Unlimited, 1000, true},
		{"unmetered feature", 0, 0, 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var d Decision
			if err := (BuiltinLimits{}).Decide(context.Background(), &PolicyInput{Used: tc.used, Limit: tc.limit, Quantity: tc.qty, Feature: "requests"}, &d); err != nil {
				t.Fatal(err)
			}
			if d.Allowed != tc.allowed {
				t.Errorf("allowed = %v, want %v", d.Allowed, tc.allowed)
			}
			if d.Cost != tc.qty {
				t.Errorf("cost = %d, want %d", d.Cost, tc.qty)
			}
			if !d.Allowed && !strings.Contains(d.Message, "upgrade") {
				t.Errorf("deny message %q", d.Message)
			}
		})
	}
}

func TestTierConfigValidate(t *testing.T) {
	i := func(v int64) *int64 { return &v }
	ok := TierConfigInput{Tiers: []TierInput{{Name: "free", Limit: i(3)}, {Name: "pro", Price: 1500, Interval: "year", Limits: map[string]int64{"requests": 10, "exports": -1}}}}
	tc, err := ok.Validate()
	if err != nil {
		t.Fatal(err)
	}
	if got := tc.Tiers[0]; got.Limits["requests"] != 3 || got.Interval != "month" || got.Currency != "usd" || got.DisplayName != "Free" {
		t.Errorf("defaults not filled: %+v", got)
	}
	bad := []struct {
		name  string
		in    TierConfigInput
		field string
	}{
		{"none", TierConfigInput{}, "tiers"},
		{"uppercase", TierConfigInput{Tiers: []TierInput{{Name: "Pro"}}}, "tiers[0].name"},
		{"duplicate", TierConfigInput{Tiers: []TierInput{{Name: "a"}, {Name: "a"}}}, "tiers[1].name"},
		{"interval", TierConfigInput{Tiers: []TierInput{{Name: "a", Interval: "hour"}}}, "tiers[0].interval"},
		{"negative price", TierConfigInput{Tiers: []TierInput{{Name: "a", Price: -1}}}, "tiers[0].price"},
		{"limit below -1", TierConfigInput{Tiers: []TierInput{{Name: "a", Limits: map[string]int64{"requests": -2}}}}, "tiers[0].limits.requests"},
		{"limit disagrees", TierConfigInput{Tiers: []TierInput{{Name: "a", Limit: i(1), Limits: map[string]int64{"requests": 2}}}}, "tiers[0].limit"},
		{"currency", TierConfigInput{Tiers: []TierInput{{Name: "a", Currency: "dollars"}}}, "tiers[0].currency"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.in.Validate()
			var e *Error
			if !errors.As(err, &e) || e.Code != EVALIDATION {
				t.Fatalf("err = %v, want validation", err)
			}
			found := false
			for _, f := range e.Fields {
				found = found || f.Field == tc.field
			}
			if !found {
				t.Errorf("fields %+v lack %s", e.Fields, tc.field)
			}
		})
	}
}

func TestTrackInputValidate(t *testing.T) {
	in := TrackInput{CustomerID: "cus_1"}
	if err := in.Validate(); err != nil || in.Feature != "requests" || *in.Quantity != 1 {
		t.Fatalf("defaults: %v %+v", err, in)
	}
	zero := int64(0)
	for name, in := range map[string]TrackInput{
		"no customer":    {},
		"zero quantity":  {CustomerID: "c", Quantity: &zero},
		"bad feature":    {CustomerID: "c", Feature: "Req uests"},
		"array metadata": {CustomerID: "c", Metadata: []byte(`[1]`)},
	} {
		if err := in.Validate(); ErrorCode(err) != EVALIDATION {
			t.Errorf("%s: err = %v, want validation", name, err)
		}
	}
}

func TestWellFormedSecret(t *testing.T) {
	s := newSecret(prefixSecretTest)
	if !wellFormedSecret(s) {
		t.Fatalf("%s not well formed", s)
	}
	for _, bad := range []string{"", "sk_live_", s + "0", s[:len(s)-1] + "G", "pk_live_" + s[8:], "sk_prod_" + s[8:]} {
		if wellFormedSecret(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
}
