package engine

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Quotas bound what one platform may use of a shared server, so that one
// platform cannot hurt the others. The operator sets them (dream-api serve
// --quota-…, DREAM_QUOTA_…). A zero field is unlimited: the zero Quotas
// (an engine Config without any) limit nothing; DefaultQuotas are the
// server's defaults. Exceeding one answers EQUOTAEXCEEDED (429
// quota_exceeded) with a message naming it.
type Quotas struct {
	// Customers is the most customers a platform may have in each mode,
	// checked in the unit of work that creates one, from the aggregates.
	Customers int64
	// RPS is the most authenticated API calls a platform may make per
	// second (both modes, every route), on average; Burst calls may come
	// at once (0: as many as RPS, at least 1). Beyond, a call is refused
	// with Retry-After.
	RPS   float64
	Burst int64
	// StoredBytes is the most bytes a platform's records may take on disk,
	// as the store estimates them (StoreSizer; refreshed at most once a
	// minute per platform), checked where data grows: customer creation
	// and plugin upload (on top of the plugin byte budget).
	StoredBytes int64
}

// DefaultQuotas are the quotas of `dream-api serve` when the operator sets
// none: 1 000 000 customers per platform and mode, 1 000 calls per second
// with bursts of 2 000, 1 GiB stored.
func DefaultQuotas() Quotas {
	return Quotas{Customers: 1_000_000, RPS: 1000, Burst: 2000, StoredBytes: 1 << 30}
}

// StoreSizer is implemented by a store that can estimate how many bytes a
// platform's records take on disk. Without it the StoredBytes quota is not
// enforced.
type StoreSizer interface {
	PlatformBytes(ctx context.Context, platformID string) (int64, error)
}

// sizeRefresh is how long a platform's estimated stored bytes are reused.
const sizeRefresh = time.Minute

// quotas enforces Quotas. Safe for concurrent use.
type quotas struct {
	q   Quotas
	now Clock
	// interval is the nanoseconds a call costs of the RPS budget and
	// tolerance how far ahead of now a platform's budget may be spent
	// (Burst calls): a GCRA rate limiter, one atomic per call.
	interval, tolerance int64
	mu                  sync.RWMutex
	tat                 map[string]*atomic.Int64 // per platform: when its budget is spent up to, unix ns

	sizer StoreSizer // nil: StoredBytes is not enforced
	sizes sync.Map   // platform id → *storedSize
}

type storedSize struct {
	mu    sync.Mutex
	bytes int64
	at    time.Time // zero: never estimated
}

func newQuotas(q Quotas, now Clock, store Store) *quotas {
	qs := &quotas{q: q, now: now, tat: make(map[string]*atomic.Int64)}
	if q.RPS > 0 {
		// A call costs from a nanosecond to an hour; a burst is at most
		// a year's worth of calls (no overflow).
		qs.interval = min(max(int64(float64(time.Second)/q.RPS), 1), int64(time.Hour))
		burst := q.Burst
		if burst <= 0 {
			burst = int64(min(max(q.RPS, 1), 1e12))
		}
		burst = min(burst, int64(365*24*time.Hour)/qs.interval)
		qs.tolerance = max(burst, 1) * qs.interval
	}
	if s, ok := store.(StoreSizer); ok {
		qs.sizer = s
	}
	return qs
}

// Quotas returns the quotas the engine enforces.
func (e *Engine) Quotas() Quotas { return e.c.quotas.q }

// AllowRequest takes one call of platformID's requests-per-second quota:
// call it for every authenticated API call. Returns EQUOTAEXCEEDED with
// RetryAfter when the platform is over it. Cheap: a read-locked map lookup
// and one atomic compare-and-swap.
func (e *Engine) AllowRequest(platformID string) error {
	q := e.c.quotas
	if q.interval == 0 {
		return nil
	}
	q.mu.RLock()
	tat := q.tat[platformID]
	q.mu.RUnlock()
	if tat == nil {
		q.mu.Lock()
		if tat = q.tat[platformID]; tat == nil {
			tat = new(atomic.Int64)
			q.tat[platformID] = tat
		}
		q.mu.Unlock()
	}
	now := q.now().UnixNano()
	for {
		old := tat.Load()
		next := max(old, now) + q.interval
		if wait := next - now - q.tolerance; wait > 0 {
			return &Error{Code: EQUOTAEXCEEDED, RetryAfter: int((wait + int64(time.Second) - 1) / int64(time.Second)),
				Message: fmt.Sprintf("Requests-per-second quota: a platform may make %g API calls per second (bursts of %d) on this server; retry after the Retry-After seconds.",
					q.q.RPS, q.tolerance/q.interval)}
		}
		if tat.CompareAndSwap(old, next) {
			return nil
		}
	}
}

// customerAdded counts a new customer of t in the unit of work b that
// creates it, which holds the tier lock: it refuses it with EQUOTAEXCEEDED
// when t has as many customers as the Customers quota allows or the
// platform stores as many bytes as StoredBytes allows, and otherwise adds
// it to t's aggregates (stats.go).
func (c *core) customerAdded(ctx context.Context, b Tx, t Tenant, cus *Customer) error {
	a, _, err := aggregatesIn(ctx, b, t)
	if err != nil {
		return err
	}
	if limit := c.quotas.q.Customers; limit > 0 {
		if n := a.Customers(); n >= limit {
			return Errorf(EQUOTAEXCEEDED, "Customers quota: a platform may have %d customers in each mode on this server, and it has %d in %s mode. Delete customers, or ask the server's operator to raise the quota.",
				limit, n, t.Mode)
		}
	}
	if err := c.quotas.storedBytes(ctx, t.PlatformID, 0); err != nil {
		return err
	}
	a.add(shareOf(cus), 1)
	b.PutAggregates(t, a)
	return nil
}

// storedBytes returns EQUOTAEXCEEDED when platformID's stored bytes (as
// last estimated, at most sizeRefresh ago) and adding more would exceed
// the StoredBytes quota.
func (q *quotas) storedBytes(ctx context.Context, platformID string, adding int64) error {
	limit := q.q.StoredBytes
	if limit <= 0 || q.sizer == nil {
		return nil
	}
	v, ok := q.sizes.Load(platformID)
	if !ok {
		v, _ = q.sizes.LoadOrStore(platformID, new(storedSize))
	}
	s := v.(*storedSize)
	s.mu.Lock()
	now := q.now()
	if s.at.IsZero() || now.Sub(s.at) >= sizeRefresh || now.Before(s.at) {
		n, err := q.sizer.PlatformBytes(ctx, platformID)
		if err != nil {
			s.mu.Unlock()
			return err
		}
		s.bytes, s.at = n, now
	}
	stored := s.bytes
	s.mu.Unlock()
	if stored+adding > limit {
		return Errorf(EQUOTAEXCEEDED, "Stored bytes quota: a platform may store %d bytes on this server, and its records take about %d bytes%s. Delete data, or ask the server's operator to raise the quota.",
			limit, stored, addingText(adding))
	}
	return nil
}

func addingText(n int64) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d more asked)", n)
}
