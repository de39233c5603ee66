package storage

import (
	"context"
	"fmt"

	"github.com/dream-api/dream-api/engine"
)

// Aggregates returns t's customer aggregates, or ENOTFOUND when none are
// stored: the engine then computes them once from a scan (engine/stats.go).
func (s *Store) Aggregates(ctx context.Context, t engine.Tenant) (*engine.Aggregates, error) {
	var a *engine.Aggregates
	found, err := s.get(aggregatesKey(t), func(val []byte) error {
		a = new(engine.Aggregates)
		return decodeJSON("aggregates", val, a)
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, engine.Errorf(engine.ENOTFOUND, "No aggregates for %s.", t.PlatformID)
	}
	return a, nil
}

// PutAggregates writes t's customer aggregates.
func (b *batch) PutAggregates(t engine.Tenant, a *engine.Aggregates) {
	if b.check(t.PlatformID) {
		val, err := encodeJSON(a)
		b.setEncoded(aggregatesKey(t), val, err)
	}
}

// PlatformQuotas returns a platform's own quotas, or ENOTFOUND when the
// operator set none.
func (s *Store) PlatformQuotas(ctx context.Context, platformID string) (*engine.PlatformQuotas, error) {
	var q *engine.PlatformQuotas
	found, err := s.get(platformQuotasKey(platformID), func(val []byte) error {
		q = new(engine.PlatformQuotas)
		return decodeJSON("platform quotas", val, q)
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, engine.Errorf(engine.ENOTFOUND, "No quotas for %s.", platformID)
	}
	return q, nil
}

// PutPlatformQuotas writes a platform's own quotas; the Watch listener is
// told.
func (b *batch) PutPlatformQuotas(platformID string, q *engine.PlatformQuotas) {
	if b.check(platformID) {
		val, err := encodeJSON(q)
		b.setEncoded(platformQuotasKey(platformID), val, err)
		b.changed(engine.Change{PlatformID: platformID, Quotas: q})
	}
}

// platformPrefixes are the key prefixes whose next component is the
// platform id: every record a platform owns, in either mode.
var platformPrefixes = []string{
	prefixPlatform, prefixKey, prefixTiers, prefixCustomer, prefixEmail, prefixAggregates, prefixQuotas,
	prefixCounter, prefixPolicyState, prefixIdempotency, prefixPluginSet, prefixPluginVer,
	prefixPluginMod, prefixCORS, prefixStripeConn, prefixStripeCatalog, prefixStripeCus,
	prefixStripeSub, prefixStripeEvent, prefixStripeLog, prefixPlatformBill,
}

// PlatformBytes estimates the bytes a platform's records take on disk (in
// sstables: what is still only in the memtable and the WAL is not counted)
// from Pebble's EstimateDiskUsage over each of its key ranges, each to
// within about a data block (a few KiB) of the sstables it touches. Index
// entries keyed by something else (secret hashes, publishable keys, CORS
// origins, Stripe accounts) are small and not counted. Cheap: it reads
// sstable metadata, not data.
func (s *Store) PlatformBytes(ctx context.Context, platformID string) (int64, error) {
	if err := checkComponents(platformID); err != nil {
		return 0, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return 0, ErrClosed
	}
	var total uint64
	for _, p := range platformPrefixes {
		// [prefix sep id, prefix sep id 0x01): the record named by the id
		// and every key extending it, not those of an id it is a prefix of.
		lo := makeKey(p, platformID)
		hi := append(append([]byte(nil), lo...), sep+1)
		n, err := s.db.EstimateDiskUsage(lo, hi)
		if err != nil {
			return 0, fmt.Errorf("storage: estimate disk usage: %w", err)
		}
		total += n
	}
	return int64(total), nil
}
