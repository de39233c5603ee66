package engine

import (
	"context"
	"hash/maphash"
	"sort"
	"strconv"
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

// DayKey names one shard of a tenant's daily rollup of a feature. Tracks
// of different customers add to different shards (by a hash of the
// customer id), so that they rarely wait for each other's lock.
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

// dayShards is how many shards a rollup has.
const dayShards = 32

var daySeed = maphash.MakeSeed()

// dayNames are the strings of one UTC day: its date and the lock ids of
// its shards, made once a day instead of on every track.
type dayNames struct {
	day  int64 // days since 1970
	date string
	ids  [dayShards]string
}

var today atomic.Pointer[dayNames]

func namesOf(now time.Time) *dayNames {
	d := now.Unix() / 86400
	if now.Unix() < 0 {
		d = (now.Unix() - 86399) / 86400
	}
	if n := today.Load(); n != nil && n.day == d {
		return n
	}
	n := &dayNames{day: d, date: now.UTC().Format(time.DateOnly)}
	for i := range n.ids {
		n.ids[i] = n.date + "/" + strconv.Itoa(i)
	}
	today.Store(n)
	return n
}

// dayKey is the shard of customerID's tracks of feature at now.
func dayKey(t Tenant, customerID, feature string, now time.Time) DayKey {
	return DayKey{Tenant: t, Date: namesOf(now).date, Feature: feature,
		Shard: uint8(maphash.String(daySeed, customerID) % dayShards)}
}

func dayLock(k DayKey) Lock {
	id := k.Date + "/" + strconv.Itoa(int(k.Shard))
	if n := today.Load(); n != nil && n.date == k.Date {
		id = n.ids[k.Shard]
	}
	return Lock{Kind: LockUsageDay, Mode: k.Mode, Platform: k.PlatformID, ID: id, Feature: k.Feature}
}

// addDay adds one track (accepted or denied) to its day's rollup inside a
// unit of work that holds dayLock(k).
func addDay(ctx context.Context, tx Tx, k DayKey, denied bool) error {
	c, err := tx.UsageDay(ctx, k)
	if err != nil {
		return err
	}
	if denied {
		c.Denied++
	} else {
		c.Count++
	}
	tx.PutUsageDay(k, c)
	return nil
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
	err := s.c.store.UsageDays(ctx, t, from.UTC().Format(time.DateOnly), to.UTC().Format(time.DateOnly), func(k DayKey, c DayCount) error {
		d := sum[[2]string{k.Date, k.Feature}]
		if d == nil {
			d = &DayUsage{Date: k.Date, Feature: k.Feature}
			sum[[2]string{k.Date, k.Feature}] = d
		}
		d.Count += c.Count
		d.Denied += c.Denied
		return nil
	})
	if err != nil {
		return nil, err
	}
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
