package engine

import (
	"context"
	"sort"
	"strconv"
	"strings"
	"time"
)

// History limits: ?limit= of GET /api/usage/history.
const (
	DefaultHistoryLimit = 20
	MaxHistoryLimit     = 100
)

// HistoryInput is the query of GET /api/usage/history. From and To are
// RFC 3339 times or YYYY-MM-DD dates (UTC); Limit is a decimal string.
// Empty fields are absent.
type HistoryInput struct {
	CustomerID string
	// Feature keeps only the periods of one feature.
	Feature string
	// From keeps only periods that end after it (they were running at From
	// or later); a date means its start, 00:00 UTC.
	From string
	// To keeps only periods that start at or before it; a date means the
	// whole day (periods that start before the next day's 00:00 UTC).
	To string
	// Limit caps the rows answered: 1 to MaxHistoryLimit, default
	// DefaultHistoryLimit.
	Limit string
}

// historyQuery is a validated HistoryInput.
type historyQuery struct {
	customerID, feature string
	from, to            time.Time // zero: unbounded; to is exclusive
	limit               int
}

// validate reports every problem of in, naming its field.
func (in HistoryInput) validate() (historyQuery, error) {
	var v Validation
	q := historyQuery{customerID: in.CustomerID, feature: in.Feature, limit: DefaultHistoryLimit}
	if in.CustomerID == "" {
		v.Add("customerId", "is required")
	} else if len(in.CustomerID) > 100 {
		v.Add("customerId", "must be at most 100 characters")
	}
	if in.Feature != "" && !slug.MatchString(in.Feature) {
		v.Add("feature", "must be a lowercase slug (a-z, 0-9, - and _)")
	}
	var err error
	if in.From != "" {
		if q.from, _, err = historyTime(in.From); err != nil {
			v.Add("from", "must be an RFC 3339 time (2026-12-01T00:00:00Z) or a date (2026-12-01)")
		}
	}
	if in.To != "" {
		var date bool
		if q.to, date, err = historyTime(in.To); err != nil {
			v.Add("to", "must be an RFC 3339 time (2026-12-01T00:00:00Z) or a date (2026-12-01)")
		} else if date {
			q.to = q.to.AddDate(0, 0, 1) // through the whole day
		} else {
			q.to = q.to.Add(time.Nanosecond) // at or before
		}
	}
	if !q.from.IsZero() && !q.to.IsZero() && !q.to.After(q.from) {
		v.Add("to", "must not be before from")
	}
	if in.Limit != "" {
		n, err := strconv.Atoi(in.Limit)
		if err != nil || n < 1 || n > MaxHistoryLimit {
			v.Add("limit", "must be an integer from 1 to %d", MaxHistoryLimit)
		}
		q.limit = n
	}
	return q, v.Err()
}

// historyTime parses an RFC 3339 time or a YYYY-MM-DD date (UTC); date
// says which it was.
func historyTime(s string) (t time.Time, date bool, err error) {
	if t, err = time.Parse(time.DateOnly, s); err == nil {
		return t, true, nil
	}
	t, err = time.Parse(time.RFC3339Nano, s)
	if err != nil && strings.Count(s, " ") == 1 {
		// An offset's "+" sent unencoded in a query string arrives as a
		// space: 2026-04-01T00:00:00 02:00.
		if t2, err2 := time.Parse(time.RFC3339Nano, strings.Replace(s, " ", "+", 1)); err2 == nil {
			t, err = t2, nil
		}
	}
	return t.UTC(), false, err
}

// PastUsage is one past period of one feature of a customer: Usage as
// GET /api/usage/history answers it.
//
// Limit is the limit of the customer's plan as it is now (the tier config
// of its mode, at the time of the call), not necessarily the one in force
// during the period: a plan change or a tier edit since then is not
// reflected. It is nil, with Remaining, when the current plan does not
// meter the feature.
type PastUsage struct {
	Feature     string    `json:"feature"`
	Count       int64     `json:"count"`
	Limit       *int64    `json:"limit"`
	Remaining   *int64    `json:"remaining"`
	PeriodStart time.Time `json:"periodStart"`
	PeriodEnd   time.Time `json:"periodEnd"`
}

// UsageHistory is the answer of GET /api/usage/history.
type UsageHistory struct {
	Data []PastUsage `json:"data"`
	// HasMore says more periods matched than Limit; narrow From/To (or
	// Feature) to see the older ones.
	HasMore bool `json:"hasMore"`
}

// History returns a customer's past usage periods, newest first (then by
// feature): every stored counter whose period is over at the engine's
// clock, the current period excluded. A period is over when the customer's
// current period started after it (it ended, or a plan change started a
// new one) or when its end has passed. The counts are the stored ones,
// which a customer's deletion keeps; the customer itself must exist.
//
// It reads without locks: a track racing with it may or may not be seen,
// but only the current period is tracked, and it is not answered.
//
// Returns EVALIDATION (naming customerId, feature, from, to or limit) or
// ENOTFOUND (no such customer in t: another platform's or the other mode's
// customer is not found).
func (m *Meter) History(ctx context.Context, t Tenant, in HistoryInput) (*UsageHistory, error) {
	q, err := in.validate()
	if err != nil {
		return nil, err
	}
	c := m.c
	cus, err := c.store.Customer(ctx, t, q.customerID)
	if ErrorCode(err) == ENOTFOUND {
		return nil, Errorf(ENOTFOUND, "No customer %q.", q.customerID)
	} else if err != nil {
		return nil, err
	}
	tc, err := c.tierConfig(ctx, t)
	if err != nil {
		return nil, err
	}
	tier := tc.Tier(cus.Plan)
	if tier == nil {
		tier = &Tier{Name: cus.Plan} // as Track counts it: calendar months
	}
	now := c.now()
	curStart, _ := CurrentPeriod(cus, tier.Interval, now)
	periods, err := c.store.Periods(ctx, t, cus.ID)
	if err != nil {
		return nil, err
	}
	out := &UsageHistory{Data: []PastUsage{}}
	for _, p := range periods {
		start, end := p.PeriodStart.UTC(), p.PeriodEnd.UTC()
		past := !start.Equal(curStart) && (start.Before(curStart) || (!end.IsZero() && !end.After(now)))
		if !past || (q.feature != "" && p.Feature != q.feature) ||
			(!q.from.IsZero() && !end.IsZero() && !end.After(q.from)) ||
			(!q.to.IsZero() && !start.Before(q.to)) {
			continue
		}
		u := PastUsage{Feature: p.Feature, Count: p.Count, PeriodStart: start, PeriodEnd: end}
		if limit, ok := tier.Limit(p.Feature); ok {
			rem := remaining(p.Count, limit)
			u.Limit, u.Remaining = &limit, &rem
		}
		out.Data = append(out.Data, u)
	}
	sort.Slice(out.Data, func(i, j int) bool {
		a, b := out.Data[i], out.Data[j]
		if !a.PeriodStart.Equal(b.PeriodStart) {
			return a.PeriodStart.After(b.PeriodStart)
		}
		return a.Feature < b.Feature
	})
	if len(out.Data) > q.limit {
		out.Data, out.HasMore = out.Data[:q.limit], true
	}
	return out, nil
}
