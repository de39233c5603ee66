package engine

import (
	"context"
	"hash/maphash"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// DayUsage is one feature's tracks of one UTC day in a tenant: Count
// accepted, Denied refused. GET /api/platform/stats lists them as `days`.
type DayUsage struct {
	Date    string `json:"date"` // YYYY-MM-DD, UTC
	Feature string `json:"feature"`
	Count   int64  `json:"count"`
	Denied  int64  `json:"denied"`
}

// DayCount is a stored shard of a daily rollup.
type DayCount struct {
	Count  int64
	Denied int64
}

// DayKey names a tenant's daily rollup of a feature. Shard is part of the
// stored key (rollups were once written in 32 shards); the flusher writes
// shard 0.
type DayKey struct {
	Tenant
	Date    string // YYYY-MM-DD
	Feature string
	Shard   uint8
}

// UsageDayStore is the part of Store that keeps daily rollups.
type UsageDayStore interface {
	// UsageDay returns a shard of a rollup; zero when absent.
	UsageDay(ctx context.Context, k DayKey) (DayCount, error)
	// UsageDays calls fn with every stored shard of t's rollups from the
	// day from to the day to (YYYY-MM-DD, both included), by date, then
	// feature.
	UsageDays(ctx context.Context, t Tenant, from, to string, fn func(k DayKey, c DayCount) error) error
}

// UsageDayBatch writes daily rollups.
type UsageDayBatch interface {
	PutUsageDay(k DayKey, c DayCount)
}

// dayRollups counts tracks per tenant, UTC day and feature in memory, and
// a flusher (RunUsageDays) adds what it counted to the stored rollups every
// few seconds, in one unit of work. A track pays a map increment under a
// shard's mutex: no read, no write and no lock of the store, and a denial
// writes nothing at all. Rollups are statistics for the dashboard and
// GET /api/platform/stats; usage and limits live in the counters, which
// every track writes durably. A crash loses at most the last interval of
// the chart, never of usage. Readers (UsageDays) add what is not flushed
// yet, so a process always sees its own tracks at once.
type dayRollups struct {
	seed maphash.Seed
	// flush is held for writing by a flush, for reading by readers: a
	// reader never sees counts both stored and pending, or neither.
	flush  sync.RWMutex
	shards [16]dayShard
}

type dayShard struct {
	mu sync.Mutex
	m  map[DayKey]*DayCount
	_  [40]byte // apart from the next shard's mutex
}

func newDayRollups() *dayRollups {
	r := &dayRollups{seed: maphash.MakeSeed()}
	for i := range r.shards {
		r.shards[i].m = make(map[DayKey]*DayCount)
	}
	return r
}

// dayNames is one UTC day's date, made once a day instead of on every
// track.
type dayNames struct {
	day  int64 // days since 1970
	date string
}

var today atomic.Pointer[dayNames]

func dateOf(now time.Time) string {
	d := now.Unix() / 86400
	if now.Unix() < 0 {
		d = (now.Unix() - 86399) / 86400
	}
	if n := today.Load(); n != nil && n.day == d {
		return n.date
	}
	n := &dayNames{day: d, date: now.UTC().Format(time.DateOnly)}
	today.Store(n)
	return n.date
}

// add counts one track of feature in t at now, accepted or denied.
func (r *dayRollups) add(t Tenant, feature string, now time.Time, denied bool) {
	if denied {
		r.addN(t, feature, now, 0, 1)
	} else {
		r.addN(t, feature, now, 1, 0)
	}
}

// addN counts n accepted and d denied tracks of feature in t at now (the
// events of a batch).
func (r *dayRollups) addN(t Tenant, feature string, now time.Time, n, d int64) {
	k := DayKey{Tenant: t, Date: dateOf(now), Feature: feature}
	var h maphash.Hash
	h.SetSeed(r.seed)
	h.WriteString(t.PlatformID)
	h.WriteString(feature)
	s := &r.shards[h.Sum64()%uint64(len(r.shards))]
	s.mu.Lock()
	c := s.m[k]
	if c == nil {
		c = new(DayCount)
		s.m[k] = c
	}
	c.Count += n
	c.Denied += d
	s.mu.Unlock()
}

// take returns what was counted since the last take and forgets it.
func (r *dayRollups) take() map[DayKey]DayCount {
	out := map[DayKey]DayCount{}
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		for k, c := range s.m {
			sum := out[k] // a key may stand in two shards after a failed flush
			out[k] = DayCount{Count: sum.Count + c.Count, Denied: sum.Denied + c.Denied}
		}
		clear(s.m)
		s.mu.Unlock()
	}
	return out
}

// pending calls fn with what t counted from the date from to the date to
// and has not flushed yet.
func (r *dayRollups) pending(t Tenant, from, to string, fn func(k DayKey, c DayCount)) {
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		for k, c := range s.m {
			if k.Tenant == t && k.Date >= from && k.Date <= to {
				fn(k, *c)
			}
		}
		s.mu.Unlock()
	}
}

func dayLock(k DayKey) Lock {
	return Lock{Kind: LockUsageDay, Mode: k.Mode, Platform: k.PlatformID, ID: k.Date, Feature: k.Feature}
}

// DefaultUsageDaysInterval is how often RunUsageDays flushes by default.
const DefaultUsageDaysInterval = 5 * time.Second

// FlushUsageDays adds the tracks counted in memory to the stored daily
// rollups, in one unit of work. On failure they are counted again for the
// next flush.
func (e *Engine) FlushUsageDays(ctx context.Context) error {
	r := e.c.days
	r.flush.Lock()
	defer r.flush.Unlock()
	counted := r.take()
	if len(counted) == 0 {
		return nil
	}
	locks := make([]Lock, 0, len(counted))
	for k := range counted {
		locks = append(locks, dayLock(k))
	}
	_, err := e.c.store.Update(ctx, locks, func(tx Tx) (any, error) {
		for k, add := range counted {
			c, err := tx.UsageDay(ctx, k)
			if err != nil {
				return nil, err
			}
			c.Count += add.Count
			c.Denied += add.Denied
			tx.PutUsageDay(k, c)
		}
		return nil, nil
	})
	if err != nil {
		for k, add := range counted {
			s := &r.shards[0]
			s.mu.Lock()
			c := s.m[k]
			if c == nil {
				c = new(DayCount)
				s.m[k] = c
			}
			c.Count += add.Count
			c.Denied += add.Denied
			s.mu.Unlock()
		}
	}
	return err
}

// RunUsageDays flushes the daily rollups every interval (0:
// DefaultUsageDaysInterval) until ctx is done, then once more.
func (e *Engine) RunUsageDays(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultUsageDaysInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := e.FlushUsageDays(context.WithoutCancel(ctx)); err != nil {
				e.c.log.Warn("flushing usage per day failed", "err", err)
			}
			return
		case <-t.C:
			if err := e.FlushUsageDays(ctx); err != nil && ctx.Err() == nil {
				e.c.log.Warn("flushing usage per day failed; counted again at the next flush", "err", err)
			}
		}
	}
}

// DefaultUsageDays is how many days UsageDays covers without a from.
const DefaultUsageDays = 30

// UsageDays returns t's tracks per UTC day and feature from the day of
// from to the day of to, by date then feature. Days without tracks are
// absent. A zero to is today; a zero from is DefaultUsageDays-1 days before
// to. Returns EVALIDATION for a range that is backwards or longer than
// 400 days.
func (s *Customers) UsageDays(ctx context.Context, t Tenant, from, to time.Time) ([]DayUsage, error) {
	if to.IsZero() {
		to = s.c.now()
	}
	if from.IsZero() {
		from = to.AddDate(0, 0, -(DefaultUsageDays - 1))
	}
	if to.Before(from) {
		return nil, invalid("to", "must not be before from")
	}
	if to.Sub(from) > 400*24*time.Hour {
		return nil, invalid("from", "at most 400 days at once")
	}
	sum := map[[2]string]*DayUsage{}
	add := func(k DayKey, c DayCount) {
		d := sum[[2]string{k.Date, k.Feature}]
		if d == nil {
			d = &DayUsage{Date: k.Date, Feature: k.Feature}
			sum[[2]string{k.Date, k.Feature}] = d
		}
		d.Count += c.Count
		d.Denied += c.Denied
	}
	fromDate, toDate := from.UTC().Format(time.DateOnly), to.UTC().Format(time.DateOnly)
	days := s.c.days
	days.flush.RLock()
	defer days.flush.RUnlock()
	err := s.c.store.UsageDays(ctx, t, fromDate, toDate, func(k DayKey, c DayCount) error {
		add(k, c)
		return nil
	})
	if err != nil {
		return nil, err
	}
	days.pending(t, fromDate, toDate, add)
	out := make([]DayUsage, 0, len(sum))
	for _, d := range sum {
		out = append(out, *d)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Date != out[j].Date {
			return out[i].Date < out[j].Date
		}
		return out[i].Feature < out[j].Feature
	})
	return out, nil
}
