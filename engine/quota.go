package engine

import (
	"context"
	"fmt"
	"math"
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
	Customers int64 `json:"customers"`
	// RPS is the most authenticated API calls a platform may make per
	// second (both modes, every route), on average; Burst calls may come
	// at once (0: as many as RPS, at least 1). Beyond, a call is refused
	// with Retry-After.
	RPS   float64 `json:"requestsPerSecond"`
	Burst int64   `json:"burst"`
	// StoredBytes is the most bytes a platform's records may take on disk,
	// as the store estimates them (StoreSizer; refreshed at most once a
	// minute per platform), checked where data grows: customer creation
	// and plugin upload (on top of the plugin byte budget).
	StoredBytes int64 `json:"storedBytes"`
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

// PlatformQuotas are one platform's own quotas, set by the operator (PUT
// /admin/platforms/{id}/quotas) over the server's: a nil field is the
// server's, 0 is unlimited. The burst of a platform's RPS is twice it.
type PlatformQuotas struct {
	Customers   *int64   `json:"customers"`
	RPS         *float64 `json:"requestsPerSecond"`
	StoredBytes *int64   `json:"storedBytes"`
}

// Validate refuses negative and infinite quotas.
func (p *PlatformQuotas) Validate() error {
	var v Validation
	if p.Customers != nil && *p.Customers < 0 {
		v.Add("customers", "must be 0 (unlimited) or more, or null (the server's)")
	}
	if p.RPS != nil && (*p.RPS < 0 || math.IsNaN(*p.RPS) || math.IsInf(*p.RPS, 0)) {
		v.Add("requestsPerSecond", "must be 0 (unlimited) or more, or null (the server's)")
	}
	if p.StoredBytes != nil && *p.StoredBytes < 0 {
		v.Add("storedBytes", "must be 0 (unlimited) or more, or null (the server's)")
	}
	return v.Err()
}

// over applies p over the server's quotas q.
func (p *PlatformQuotas) over(q Quotas) Quotas {
	if p == nil {
		return q
	}
	if p.Customers != nil {
		q.Customers = *p.Customers
	}
	if p.RPS != nil {
		q.RPS, q.Burst = *p.RPS, 0
		if q.RPS > 0 {
			q.Burst = max(int64(math.Ceil(min(2*q.RPS, 1e12))), 1)
		}
	}
	if p.StoredBytes != nil {
		q.StoredBytes = *p.StoredBytes
	}
	return q
}

// PlatformQuotaSettings is the answer of GET and PUT
// /admin/platforms/{id}/quotas: the quotas in force and the platform's own.
type PlatformQuotaSettings struct {
	PlatformID string         `json:"platformId"`
	Quotas     Quotas         `json:"quotas"`
	Overrides  PlatformQuotas `json:"overrides"`
}

// quotas enforces Quotas. Safe for concurrent use.
type quotas struct {
	q     Quotas
	now   Clock
	store Store

	platforms sync.Map // platform id → *platformQuota

	sizer StoreSizer // nil: StoredBytes is not enforced
	sizes sync.Map   // platform id → *storedSize
}

// platformQuota is one platform's quotas in force and its request budget.
type platformQuota struct {
	limits atomic.Pointer[quotaLimits]
	// tat is when the platform's request budget is spent up to, unix ns
	// (a GCRA rate limiter: one atomic per call).
	tat atomic.Int64
}

// quotaLimits are a platform's quotas in force: interval is the
// nanoseconds a call costs of the RPS budget (0: unlimited) and
// tolerance how far ahead of now the budget may be spent (Burst calls).
type quotaLimits struct {
	Quotas
	interval, tolerance int64
}

func newLimits(q Quotas) *quotaLimits {
	l := &quotaLimits{Quotas: q}
	if q.RPS > 0 {
		// A call costs from a nanosecond to an hour; a burst is at most
		// a year's worth of calls (no overflow).
		l.interval = min(max(int64(float64(time.Second)/q.RPS), 1), int64(time.Hour))
		burst := q.Burst
		if burst <= 0 {
			burst = int64(min(max(q.RPS, 1), 1e12))
		}
		burst = min(burst, int64(365*24*time.Hour)/l.interval)
		l.tolerance = max(burst, 1) * l.interval
	}
	return l
}

type storedSize struct {
	mu    sync.Mutex
	bytes int64
	at    time.Time // zero: never estimated
}

func newQuotas(q Quotas, now Clock, store Store) *quotas {
	qs := &quotas{q: q, now: now, store: store}
	if s, ok := store.(StoreSizer); ok {
		qs.sizer = s
	}
	return qs
}

// of returns platformID's quotas, reading its own from the store the
// first time (the Watch listener, set, keeps them from then on).
func (q *quotas) of(platformID string) *platformQuota {
	if p, ok := q.platforms.Load(platformID); ok {
		return p.(*platformQuota)
	}
	var own *PlatformQuotas
	if q.store != nil {
		var err error
		own, err = q.store.PlatformQuotas(context.Background(), platformID)
		if err != nil && ErrorCode(err) != ENOTFOUND {
			// Not cached: the next call reads again.
			p := new(platformQuota)
			p.limits.Store(newLimits(q.q))
			return p
		}
	}
	p := new(platformQuota)
	p.limits.Store(newLimits(own.over(q.q)))
	// One set by the Watch listener since is newer than own: it stays.
	cur, _ := q.platforms.LoadOrStore(platformID, p)
	return cur.(*platformQuota)
}

// set is the Watch listener's: a platform's own quotas changed.
func (q *quotas) set(platformID string, own *PlatformQuotas) {
	l := newLimits(own.over(q.q))
	p := new(platformQuota)
	p.limits.Store(l)
	if cur, loaded := q.platforms.LoadOrStore(platformID, p); loaded {
		cur.(*platformQuota).limits.Store(l)
	}
}

// Quotas returns the server's quotas (the platforms' own aside).
func (e *Engine) Quotas() Quotas { return e.c.quotas.q }

// AllowRequest takes one call of platformID's requests-per-second quota:
// call it for every authenticated API call. Returns EQUOTAEXCEEDED with
// RetryAfter when the platform is over it. Cheap: a sync.Map lookup, an
// atomic load and one compare-and-swap.
func (e *Engine) AllowRequest(platformID string) error {
	p := e.c.quotas.of(platformID)
	l := p.limits.Load()
	if l.interval == 0 {
		return nil
	}
	now := e.c.now().UnixNano()
	for {
		old := p.tat.Load()
		next := max(old, now) + l.interval
		if wait := next - now - l.tolerance; wait > 0 {
			return &Error{Code: EQUOTAEXCEEDED, RetryAfter: int((wait + int64(time.Second) - 1) / int64(time.Second)),
				Message: fmt.Sprintf("Requests-per-second quota: a platform may make %g API calls per second (bursts of %d) on this server; retry after the Retry-After seconds.",
					l.RPS, l.tolerance/l.interval)}
		}
		if p.tat.CompareAndSwap(old, next) {
			return nil
		}
	}
}

// PlatformQuotas returns a platform's quotas in force and its own.
// Returns ENOTFOUND for an unknown platform.
func (s *Platforms) Quotas(ctx context.Context, platformID string) (*PlatformQuotaSettings, error) {
	if _, err := s.Get(ctx, platformID); err != nil {
		return nil, err
	}
	own, err := s.c.store.PlatformQuotas(ctx, platformID)
	if ErrorCode(err) == ENOTFOUND {
		own, err = &PlatformQuotas{}, nil
	} else if err != nil {
		return nil, err
	}
	return &PlatformQuotaSettings{PlatformID: platformID, Quotas: own.over(s.c.quotas.q), Overrides: *own}, nil
}

// SetQuotas replaces a platform's own quotas (nil fields: the server's).
// Returns ENOTFOUND for an unknown platform and EVALIDATION.
func (s *Platforms) SetQuotas(ctx context.Context, platformID string, in PlatformQuotas, idem *Idempotency) (*PlatformQuotaSettings, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	res, err := s.c.update(ctx, adminTenant, idem, []Lock{{Kind: LockQuotas, Platform: platformID}}, func(b Tx) (any, error) {
		if _, err := b.Platform(ctx, platformID); ErrorCode(err) == ENOTFOUND {
			return nil, Errorf(ENOTFOUND, "No platform %q.", platformID)
		} else if err != nil {
			return nil, err
		}
		own := in
		b.PutPlatformQuotas(platformID, &own)
		return &PlatformQuotaSettings{PlatformID: platformID, Quotas: own.over(s.c.quotas.q), Overrides: own}, nil
	})
	if err != nil {
		return nil, err
	}
	return res.(*PlatformQuotaSettings), nil
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
	if limit := c.quotas.of(t.PlatformID).limits.Load().Customers; limit > 0 {
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
	if q.sizer == nil {
		return nil
	}
	limit := q.of(platformID).limits.Load().StoredBytes
	if limit <= 0 {
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
