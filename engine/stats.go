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

// Aggregates are what stats, the tier-removal check and the customers
// quota need of a tenant's customers, kept so that none of them reads every
// customer. They are changed in the unit of work of every change to a
// customer's existence, plan or subscription (adjustAggregates), which
// holds the platform's tier lock: that lock serializes their
// read-modify-write.
type Aggregates struct {
	// Plans counts customers per plan (entries that fall to 0 go).
	Plans map[string]int64 `json:"plans"`
	// Subscription statuses, as PlatformStats counts them.
	Active   int64 `json:"active"`
	Trialing int64 `json:"trialing"`
	PastDue  int64 `json:"pastDue"`
	Canceled int64 `json:"canceled"`
	// Recurring sums the amounts of the active subscriptions whose amount
	// or price is known, by currency, interval and interval count.
	Recurring []RecurringSum `json:"recurring,omitempty"`
	// TierPriced counts the active subscriptions known from checkout only
	// (no price, no amount), by plan, then by the subscription's currency:
	// their MRR is their tier's price at the time stats are asked for.
	TierPriced map[string]map[string]int64 `json:"tierPriced,omitempty"`
}

// RecurringSum is the sum of Count subscriptions' amounts per interval.
type RecurringSum struct {
	Currency      string `json:"currency"`
	Interval      string `json:"interval"`
	IntervalCount int64  `json:"intervalCount"`
	Count         int64  `json:"count"`
	Amount        int64  `json:"amount"`
}

// Customers is the number of customers.
func (a *Aggregates) Customers() int64 {
	var n int64
	for _, c := range a.Plans {
		n += c
	}
	return n
}

// aggShare is what one customer adds to its tenant's aggregates. It is
// comparable: a change that leaves it as it was leaves them alone.
type aggShare struct {
	exists bool
	plan   string
	status string // of the subscription; "" without one
	// tierPriced: active and known from checkout only (subCurrency is its
	// currency); else recurring, when active with a currency.
	tierPriced    bool
	recurring     bool
	currency      string
	interval      string
	intervalCount int64
	amount        int64
}

// shareOf is what c adds to its tenant's aggregates; nil adds nothing.
func shareOf(c *Customer) aggShare {
	if c == nil {
		return aggShare{}
	}
	s := aggShare{exists: true, plan: c.Plan}
	sub := c.Subscription
	if sub == nil {
		return s
	}
	s.status = sub.Status
	if sub.Status != "active" {
		return s
	}
	if sub.PriceID == nil && sub.Amount == 0 {
		s.tierPriced, s.currency = true, sub.Currency
		return s
	}
	if sub.Currency != "" {
		s.recurring, s.currency, s.interval, s.amount = true, sub.Currency, sub.Interval, sub.Amount
		s.intervalCount = max(sub.IntervalCount, 1)
	}
	return s
}

// add adds (sign 1) or removes (sign -1) a customer's share.
func (a *Aggregates) add(s aggShare, sign int64) {
	if !s.exists {
		return
	}
	if a.Plans == nil {
		a.Plans = map[string]int64{}
	}
	if a.Plans[s.plan] += sign; a.Plans[s.plan] == 0 {
		delete(a.Plans, s.plan)
	}
	switch s.status {
	case "active":
		a.Active += sign
	case "trialing":
		a.Trialing += sign
	case "past_due":
		a.PastDue += sign
	case "canceled":
		a.Canceled += sign
	}
	switch {
	case s.tierPriced:
		if a.TierPriced == nil {
			a.TierPriced = map[string]map[string]int64{}
		}
		m := a.TierPriced[s.plan]
		if m == nil {
			m = map[string]int64{}
			a.TierPriced[s.plan] = m
		}
		if m[s.currency] += sign; m[s.currency] == 0 {
			delete(m, s.currency)
		}
		if len(m) == 0 {
			delete(a.TierPriced, s.plan)
		}
	case s.recurring:
		i := 0
		for i < len(a.Recurring) {
			r := &a.Recurring[i]
			if r.Currency == s.currency && r.Interval == s.interval && r.IntervalCount == s.intervalCount {
				break
			}
			i++
		}
		if i == len(a.Recurring) {
			a.Recurring = append(a.Recurring, RecurringSum{Currency: s.currency, Interval: s.interval, IntervalCount: s.intervalCount})
		}
		r := &a.Recurring[i]
		r.Count += sign
		r.Amount += sign * s.amount
		if r.Count == 0 {
			a.Recurring = append(a.Recurring[:i], a.Recurring[i+1:]...)
		}
	}
}

// aggregatesIn reads t's aggregates through r; when none are stored (a
// store from before they were kept) it computes them from a scan of t's
// customers, once: the caller of a unit of work then writes them. The
// result is the caller's to change.
func aggregatesIn(ctx context.Context, r Reader, t Tenant) (a *Aggregates, stored bool, err error) {
	a, err = r.Aggregates(ctx, t)
	if err == nil {
		if a.Plans == nil {
			a.Plans = map[string]int64{}
		}
		return a, true, nil
	} else if ErrorCode(err) != ENOTFOUND {
		return nil, false, err
	}
	a = &Aggregates{Plans: map[string]int64{}}
	p := Page{Limit: 100}
	for {
		cs, more, err := r.Customers(ctx, t, p)
		if err != nil {
			return nil, false, err
		}
		for _, c := range cs {
			a.add(shareOf(c), 1)
		}
		if !more || len(cs) == 0 {
			break
		}
		p.StartingAfter = cs[len(cs)-1].ID
	}
	return a, false, nil
}

// adjustAggregates changes t's aggregates, in the unit of work tx that
// changes one customer whose share goes from before to after (shareOf; the
// zero share: absent). The unit MUST hold tiersLock(t), which
// serializes this read-modify-write. A change that leaves the share as it
// was writes nothing.
func adjustAggregates(ctx context.Context, tx Tx, t Tenant, before, after aggShare) error {
	if before == after {
		return nil
	}
	a, _, err := aggregatesIn(ctx, tx, t)
	if err != nil {
		return err
	}
	a.add(before, -1)
	a.add(after, 1)
	tx.PutAggregates(t, a)
	return nil
}

// planCounts counts t's customers per plan, from the aggregates (a scan
// when none are stored yet). For the tier-removal check, under the tier
// lock.
func planCounts(ctx context.Context, r Reader, t Tenant) (map[string]int64, error) {
	a, _, err := aggregatesIn(ctx, r, t)
	if err != nil {
		return nil, err
	}
	return a.Plans, nil
}

// Stats counts t's customers, per plan, their subscriptions, and the MRR of
// the active ones, from t's aggregates: it reads no customer (but for once,
// on a store from before the aggregates were kept, when it computes and
// stores them under the tier lock).
func (s *Customers) Stats(ctx context.Context, t Tenant) (*PlatformStats, error) {
	tc, err := s.c.tierConfig(ctx, t)
	if err != nil {
		return nil, err
	}
	a, err := s.c.store.Aggregates(ctx, t)
	if ErrorCode(err) == ENOTFOUND {
		res, uerr := s.c.store.Update(ctx, []Lock{tiersLock(t)}, func(tx Tx) (any, error) {
			a, stored, err := aggregatesIn(ctx, tx, t)
			if err == nil && !stored {
				tx.PutAggregates(t, a)
			}
			return a, err
		})
		if uerr != nil {
			return nil, uerr
		}
		a, err = res.(*Aggregates), nil
	}
	if err != nil {
		return nil, err
	}
	st := &PlatformStats{Mode: t.Mode, CustomersPerPlan: map[string]int{}, MRR: []Money{}, GeneratedAt: s.c.now().UTC()}
	for _, tier := range tc.Tiers {
		st.CustomersPerPlan[tier.Name] = 0
	}
	for plan, n := range a.Plans {
		st.Customers += int(n)
		st.CustomersPerPlan[plan] = int(n)
	}
	st.Subscriptions = SubscriptionStats{Active: int(a.Active), Trialing: int(a.Trialing), PastDue: int(a.PastDue), Canceled: int(a.Canceled)}
	mrr := map[string]float64{}
	for _, r := range a.Recurring {
		mrr[r.Currency] += monthly(r.Amount, r.Interval, r.IntervalCount)
	}
	for plan, byCurrency := range a.TierPriced {
		tier := tc.Tier(plan)
		for cur, n := range byCurrency {
			// Known from checkout only so far: the tier's price.
			if tier != nil {
				if tier.Currency != "" {
					mrr[tier.Currency] += float64(n) * monthly(tier.Price, tier.Interval, 1)
				}
			} else if cur != "" {
				mrr[cur] += 0
			}
		}
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
