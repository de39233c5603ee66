package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// slug is the form of tier and feature names.
var slug = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// MaxTiers is the most tiers a platform may define.
const MaxTiers = 50

// Tiers reads and replaces platforms' tier configs.
type Tiers struct {
	c *core
}

// TierInput is one tier as a developer sends it: Tier, plus `limit` as
// shorthand for limits.requests. priceId and productId are ignored.
type TierInput struct {
	Name               string           `json:"name"`
	DisplayName        string           `json:"displayName"`
	Price              int64            `json:"price" want:"an integer (cents)"`
	Currency           string           `json:"currency"`
	Interval           string           `json:"interval"`
	Limit              *int64           `json:"limit" want:"an integer (-1: unlimited)"`
	Limits             map[string]int64 `json:"limits" want:"an integer (-1: unlimited)"`
	Features           map[string]bool  `json:"features"`
	RateLimitPerMinute int64            `json:"rateLimitPerMinute" want:"an integer (0: no per-minute limit)"`
	PriceID            json.RawMessage  `json:"priceId"`
	ProductID          json.RawMessage  `json:"productId"`
}

// TierConfigInput is the body of PUT /api/platform/tiers.
type TierConfigInput struct {
	Tiers []TierInput `json:"tiers" required:"true"`
}

// Validate checks in and returns the config it describes, with defaults
// filled in, or an EVALIDATION error listing every problem.
func (in *TierConfigInput) Validate() (*TierConfig, error) {
	var v Validation
	if len(in.Tiers) == 0 {
		v.Add("tiers", "at least one tier is required")
	}
	if len(in.Tiers) > MaxTiers {
		v.Add("tiers", "at most %d tiers", MaxTiers)
	}
	seen := map[string]bool{}
	out := &TierConfig{Tiers: make([]Tier, 0, len(in.Tiers))}
	for i, ti := range in.Tiers {
		f := func(name string) string { return fmt.Sprintf("tiers[%d].%s", i, name) }
		t := Tier{
			Name: ti.Name, DisplayName: strings.TrimSpace(ti.DisplayName), Price: ti.Price,
			Currency: strings.ToLower(ti.Currency), Interval: ti.Interval,
			Limits: map[string]int64{}, Features: map[string]bool{},
			RateLimitPerMinute: ti.RateLimitPerMinute,
		}
		if !slug.MatchString(t.Name) {
			v.Add(f("name"), "must be a lowercase slug (a-z, 0-9, - and _; at most 63 characters)")
		} else if seen[t.Name] {
			v.Add(f("name"), "%q is used by another tier", t.Name)
		}
		seen[t.Name] = true
		if t.DisplayName == "" && t.Name != "" {
			t.DisplayName = strings.ToUpper(t.Name[:1]) + t.Name[1:]
		}
		if utf8.RuneCountInString(t.DisplayName) > 100 {
			v.Add(f("displayName"), "must be at most 100 characters")
		}
		if t.Price < 0 {
			v.Add(f("price"), "must be ≥ 0 (minor units, e.g. cents)")
		}
		if t.Currency == "" {
			t.Currency = "usd"
		} else if len(t.Currency) != 3 || strings.Trim(t.Currency, "abcdefghijklmnopqrstuvwxyz") != "" {
			v.Add(f("currency"), "must be a three-letter ISO currency code")
		}
		switch t.Interval {
		case "":
			t.Interval = IntervalMonth
		case IntervalDay, IntervalWeek, IntervalMonth, IntervalYear:
		default:
			v.Add(f("interval"), "must be day, week, month or year")
		}
		for k, l := range ti.Limits {
			if !slug.MatchString(k) {
				v.Add(f("limits."+k), "feature names must be lowercase slugs")
			}
			if l < Unlimited {
				v.Add(f("limits."+k), "must be ≥ 0, or -1 for unlimited")
			}
			t.Limits[k] = l
		}
		if ti.Limit != nil {
			if l, ok := ti.Limits["requests"]; ok && l != *ti.Limit {
				v.Add(f("limit"), "disagrees with limits.requests")
			}
			if *ti.Limit < Unlimited {
				v.Add(f("limit"), "must be ≥ 0, or -1 for unlimited")
			}
			t.Limits["requests"] = *ti.Limit
		}
		if len(t.Limits) > 100 {
			v.Add(f("limits"), "at most 100 features")
		}
		for k, on := range ti.Features {
			if !slug.MatchString(k) {
				v.Add(f("features."+k), "feature names must be lowercase slugs")
			}
			t.Features[k] = on
		}
		if t.RateLimitPerMinute < 0 {
			v.Add(f("rateLimitPerMinute"), "must be ≥ 0 (0: no per-minute limit)")
		}
		out.Tiers = append(out.Tiers, t)
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// Get returns a tenant's tier config: each mode has its own, so that test
// keys can change tiers without touching live ones.
func (s *Tiers) Get(ctx context.Context, t Tenant) (*TierConfig, error) {
	return s.c.tierConfig(ctx, t)
}

// Put replaces a tenant's tier config. Usage is kept: counters belong to
// customers and features, not to tiers. A tier that customers are still on
// cannot be removed (EVALIDATION naming it).
func (s *Tiers) Put(ctx context.Context, t Tenant, in TierConfigInput, idem *Idempotency) (*TierConfig, error) {
	tc, err := in.Validate()
	if err != nil {
		return nil, err
	}
	// With Stripe connected in t's mode, the products and prices are made
	// first (no lock held) and written with the config; a Stripe failure
	// leaves the config as it was.
	done, err := s.c.idempotent(ctx, t, idem)
	if err != nil {
		return nil, err
	}
	defer done()
	stripe, err := s.c.stripe.syncTiers(ctx, t, tc, idem)
	if err != nil {
		return nil, err
	}
	defer stripe.release()
	res, err := s.c.updateClaimed(ctx, t, idem, []Lock{tiersLock(t)}, func(b Tx) (any, error) {
		cur, err := storedTiers(ctx, b, t)
		if err != nil {
			return nil, err
		}
		for _, old := range cur.Tiers {
			if tc.Tier(old.Name) != nil {
				continue
			}
			if n, err := customersOnPlan(ctx, b, t, old.Name); err != nil {
				return nil, err
			} else if n > 0 {
				return nil, invalid("tiers", "tier %q still has %d customer(s); move them to another plan first", old.Name, n)
			}
		}
		// Stripe ids stay with the tier of the same name.
		for i := range tc.Tiers {
			if o := cur.Tier(tc.Tiers[i].Name); o != nil {
				tc.Tiers[i].PriceID, tc.Tiers[i].ProductID = o.PriceID, o.ProductID
			}
		}
		b.PutTiers(t, tc)
		stripe.put(b)
		return stripe.view(tc), nil
	})
	if err != nil {
		return nil, err
	}
	stripe.archive(ctx)
	return res.(*TierConfig), nil
}

// storedTiers reads a platform's tier config in a unit of work, not from
// the cache: under the tier lock it is the latest.
func storedTiers(ctx context.Context, tx Reader, t Tenant) (*TierConfig, error) {
	tc, err := tx.Tiers(ctx, t)
	if ErrorCode(err) == ENOTFOUND {
		return DefaultTiers(), nil
	}
	return tc, err
}

// customersOnPlan counts a tenant's customers on plan, from the
// aggregates (planCounts, stats.go).
func customersOnPlan(ctx context.Context, tx Reader, t Tenant, plan string) (int, error) {
	counts, err := planCounts(ctx, tx, t)
	if err != nil {
		return 0, err
	}
	return int(counts[plan]), nil
}
