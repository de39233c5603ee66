package engine

import (
	"context"
	"math"
	"sort"
	"time"
)

// PlatformStats is the answer of GET /api/platform/stats for one mode.
type PlatformStats struct {
	Mode      Mode `json:"mode"`
	Customers int  `json:"customers"`
	// CustomersPerPlan has every tier of the config, and any plan a
	// customer is still on that the config no longer has.
	CustomersPerPlan map[string]int    `json:"customersPerPlan"`
	Subscriptions    SubscriptionStats `json:"subscriptions"`
	// MRR is the monthly recurring revenue of the active subscriptions,
	// per currency, in minor units: each subscription's amount per
	// interval brought to a month (a year is 12 months, a week 52/12 of a
	// month, a day 365/12 of one).
	MRR         []Money   `json:"mrr"`
	GeneratedAt time.Time `json:"generatedAt"`
}

// SubscriptionStats counts customers' Stripe subscriptions by status.
type SubscriptionStats struct {
	Active   int `json:"active"`
	Trialing int `json:"trialing"`
	PastDue  int `json:"pastDue"`
	Canceled int `json:"canceled"`
}

// Money is an amount in minor units of a currency.
type Money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// Stats counts t's customers, per plan, their subscriptions, and the MRR of
// the active ones. It reads every customer of t: meant for dashboards, not
// for hot paths.
func (s *Customers) Stats(ctx context.Context, t Tenant) (*PlatformStats, error) {
	tc, err := s.c.tierConfig(ctx, t)
	if err != nil {
		return nil, err
	}
	st := &PlatformStats{Mode: t.Mode, CustomersPerPlan: map[string]int{}, MRR: []Money{}, GeneratedAt: s.c.now().UTC()}
	for _, tier := range tc.Tiers {
		st.CustomersPerPlan[tier.Name] = 0
	}
	mrr := map[string]float64{}
	p := Page{Limit: 100}
	for {
		cs, more, err := s.c.store.Customers(ctx, t, p)
		if err != nil {
			return nil, err
		}
		for _, cus := range cs {
			st.Customers++
			st.CustomersPerPlan[cus.Plan]++
			sub := cus.Subscription
			if sub == nil {
				continue
			}
			switch sub.Status {
			case "active":
				st.Subscriptions.Active++
				amount, currency, interval, count := sub.Amount, sub.Currency, sub.Interval, sub.IntervalCount
				if sub.PriceID == nil && amount == 0 {
					// Known from checkout only so far: the tier's price.
					if tier := tc.Tier(cus.Plan); tier != nil {
						amount, currency, interval, count = tier.Price, tier.Currency, tier.Interval, 1
					}
				}
				if currency != "" {
					mrr[currency] += monthly(amount, interval, count)
				}
			case "trialing":
				st.Subscriptions.Trialing++
			case "past_due":
				st.Subscriptions.PastDue++
			case "canceled":
				st.Subscriptions.Canceled++
			}
		}
		if !more || len(cs) == 0 {
			break
		}
		p.StartingAfter = cs[len(cs)-1].ID
	}
	for cur, v := range mrr {
		st.MRR = append(st.MRR, Money{Amount: int64(math.Round(v)), Currency: cur})
	}
	sort.Slice(st.MRR, func(i, j int) bool { return st.MRR[i].Currency < st.MRR[j].Currency })
	return st, nil
}

// monthly brings an amount per count intervals to a month.
func monthly(amount int64, interval string, count int64) float64 {
	if count < 1 {
		count = 1
	}
	a := float64(amount) / float64(count)
	switch interval {
	case IntervalDay:
		return a * 365 / 12
	case IntervalWeek:
		return a * 52 / 12
	case IntervalYear:
		return a / 12
	}
	return a
}
