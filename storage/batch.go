package storage

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/dream-api/dream-api/engine"
)

// errBatchUsed is returned by Commit and Apply on a batch that was already
// committed, applied or closed.
var errBatchUsed = errors.New("storage: batch already used")

// batchState is where a batch is in its life: open → committed, or open →
// applied → waited; closed from any of them.
type batchState uint8

const (
	batchOpen batchState = iota
	batchCommitted
	batchApplied
	batchWaited
	batchClosed
)

// batch is the Pebble implementation of engine.Batch: one *pebble.Batch
// holding the writes and the index updates they imply. Writes cannot fail
// one by one; the first error (a value that does not encode, an id that
// would break the key layout) is kept and returned by Commit or Apply,
// which then write nothing.
type batch struct {
	s     *Store
	pb    *pebble.Batch // nil when the store was closed at NewBatch
	err   error
	state batchState
	// waitErr is the result of SyncWait, which may be called only once.
	waitErr error
	// customers are the keys of customers written, to invalidate in the
	// store's cache once the batch is applied.
	customers [][]byte
	// counters are the counters written, to store in the cache with their
	// sequence numbers once the batch is applied.
	counters   []counterWrite
	counterBuf [1]counterWrite // counters' first array: a track writes one
	// states are the plugin states written, stored in the cache likewise.
	states []stateWrite
	// changes are what the batch changes of state the engine caches, for
	// the store's Watch listener once the batch is applied.
	changes []engine.Change
	// tx is the batch as a unit of work sees it (Store.Update).
	tx tx
}

// counterWrite is a counter written to a batch, as its op-th operation,
// by the cache's hash of its key.
type counterWrite struct {
	key cacheKey
	c   engine.Counter
	op  uint32
}

// stateWrite is a plugin state written to a batch, as its op-th operation,
// by the cache's hash of its key.
type stateWrite struct {
	key   cacheKey
	state []byte // a copy: the caller may reuse its buffer
	op    uint32
}

// fail keeps err if it is the first error of b.
func (b *batch) fail(err error) {
	if b.err == nil {
		b.err = err
	}
}

// writable reports whether writes should still go into b. Writing to a batch
// after Commit, Apply or Close is a bug of the caller and panics.
func (b *batch) writable() bool {
	if b.state != batchOpen {
		panic("storage: write to a batch after Commit, Apply or Close")
	}
	return b.err == nil
}

func (b *batch) set(key, val []byte) {
	if b.writable() {
		_ = b.pb.Set(key, val, nil) // cannot fail on a batch without an index
	}
}

func (b *batch) delete(key []byte) {
	if b.writable() {
		_ = b.pb.Delete(key, nil) // cannot fail on a batch without an index
	}
}

// check keeps an error if an id is not fit for a key.
func (b *batch) check(ids ...string) bool {
	if err := checkComponents(ids...); err != nil {
		b.fail(err)
		return false
	}
	return true
}

// setEncoded writes val under key unless encoding it failed.
func (b *batch) setEncoded(key, val []byte, err error) {
	if err != nil {
		b.fail(err)
		return
	}
	b.set(key, val)
}

// Empty reports whether nothing has been written to b.
func (b *batch) Empty() bool { return b.pb == nil || b.pb.Empty() }

// PutAdminTokenHash stores the hash of the admin token.
func (b *batch) PutAdminTokenHash(h [32]byte) {
	b.set(adminTokenKey(), encodeHash(h))
}

// PutPlatform writes p; the Watch listener is told (key authentication
// follows a suspension).
func (b *batch) PutPlatform(p *engine.Platform) {
	if b.check(p.ID) {
		val, err := encodeJSON(p)
		b.setEncoded(platformKey(p.ID), val, err)
		b.changed(engine.Change{PlatformID: p.ID, Platform: p})
	}
}

// PutKey writes k and points its secret hash and, when it has one, its
// publishable key at it.
func (b *batch) PutKey(k *engine.Key) {
	if !b.check(k.PlatformID, k.ID) {
		return
	}
	val, err := encodeKey(k)
	b.setEncoded(keyKey(k.PlatformID, k.ID), val, err)
	b.changed(engine.Change{PlatformID: k.PlatformID, Key: k})
	ref := encodeKeyRef(keyRef{platformID: k.PlatformID, id: k.ID})
	b.set(secretIndexKey(k.SecretHash), ref)
	if k.PublishableKey != "" && b.check(k.PublishableKey) {
		b.set(publishableIndexKey(k.PublishableKey, k.PlatformID, k.ID), ref)
	}
}

// PutTiers writes a tenant's tier config.
func (b *batch) PutTiers(t engine.Tenant, c *engine.TierConfig) {
	if b.check(t.PlatformID) {
		val, err := encodeJSON(c)
		b.setEncoded(tiersKey(t), val, err)
		b.changed(engine.Change{PlatformID: t.PlatformID, Mode: t.Mode, Tiers: c})
	}
}

// PutCustomer writes c and indexes its email, lowercased; prevEmail is the
// stored email ("" when c is new), whose index entry goes when it differs.
func (b *batch) PutCustomer(t engine.Tenant, c *engine.Customer, prevEmail string) {
	if !b.check(t.PlatformID, c.ID) {
		return
	}
	val, err := encodeCustomer(c)
	key := customerKey(t, c.ID)
	b.setEncoded(key, val, err)
	b.customers = append(b.customers, key)
	newKey := emailIndexKey(t, c.Email)
	if prevEmail != "" {
		if oldKey := emailIndexKey(t, prevEmail); c.Email == "" || string(oldKey) != string(newKey) {
			b.delete(oldKey)
		}
	}
	if c.Email != "" {
		b.set(newKey, encodeBytes([]byte(c.ID)))
	}
}

// DeleteCustomer removes c and its email index entry. Its counters, plugin
// state and idempotency records stay.
func (b *batch) DeleteCustomer(t engine.Tenant, c *engine.Customer) {
	if !b.check(t.PlatformID, c.ID) {
		return
	}
	key := customerKey(t, c.ID)
	b.delete(key)
	b.customers = append(b.customers, key)
	if c.Email != "" {
		b.delete(emailIndexKey(t, c.Email))
	}
}

// changed records a change for the Watch listener.
func (b *batch) changed(c engine.Change) {
	if b.s.watch != nil {
		b.changes = append(b.changes, c)
	}
}

// PutCounter writes a usage counter.
func (b *batch) PutCounter(k engine.CounterKey, c engine.Counter) {
	if b.check(k.PlatformID, k.CustomerID, k.Feature) && b.writable() {
		var buf keyBuf
		key := appendCounterKey(buf[:0], k) // Set copies it
		if b.s.counters != nil {
			b.counters = append(b.counters, counterWrite{key: b.s.counters.hash(key), c: c, op: b.pb.Count()})
		}
		b.set(key, encodeCounter(c))
	}
}

// PutPolicyState writes a customer's plugin state for feature.
func (b *batch) PutPolicyState(t engine.Tenant, customerID, feature string, state []byte) {
	if b.check(t.PlatformID, customerID, feature) && b.writable() {
		var buf keyBuf
		key := appendPolicyStateKey(buf[:0], t, customerID, feature) // Set copies it
		if b.s.states != nil {
			b.states = append(b.states, stateWrite{key: b.s.states.hash(key), state: bytes.Clone(state), op: b.pb.Count()})
		}
		b.set(key, encodeBytes(state))
	}
}

// PutIdempotency writes the record of an idempotency key, which may be any
// printable string.
func (b *batch) PutIdempotency(t engine.Tenant, key string, r *engine.IdemRecord) {
	if b.check(t.PlatformID, key) {
		b.set(idempotencyKey(t, key), encodeIdempotency(r))
	}
}

// Commit writes the batch and returns once it is durable.
func (b *batch) Commit() error {
	return b.apply(batchCommitted, func(db *pebble.DB) error { return db.Apply(b.pb, pebble.Sync) })
}

// Apply makes the batch visible to readers without waiting for it to be
// durable; batches are visible in the order of their Apply calls. Wait
// blocks until it is durable. Pebble syncs the batches applied meanwhile
// with the same fsync.
func (b *batch) Apply() error {
	return b.apply(batchApplied, func(db *pebble.DB) error { return db.ApplyNoSyncWait(b.pb, pebble.Sync) })
}

func (b *batch) apply(next batchState, write func(db *pebble.DB) error) error {
	if b.state != batchOpen {
		return errBatchUsed
	} else if b.err != nil {
		return b.err
	}
	b.s.mu.RLock()
	defer b.s.mu.RUnlock()
	if b.s.db == nil {
		return ErrClosed
	}
	if err := write(b.s.db); err != nil {
		return fmt.Errorf("storage: commit: %w", err)
	}
	b.s.commits.committed()
	b.state = next
	if b.s.customers != nil {
		for _, k := range b.customers {
			b.s.customers.invalidate(k)
		}
	}
	if b.s.watch != nil {
		for _, c := range b.changes {
			b.s.watch(c)
		}
	}
	if b.s.counters != nil && len(b.counters) > 0 {
		// The batch's operations have consecutive sequence numbers.
		seq := uint64(b.pb.SeqNum())
		for _, w := range b.counters {
			b.s.counters.storeHashed(w.key, compactCounter(w.c), seq+uint64(w.op))
		}
	}
	if b.s.states != nil && len(b.states) > 0 {
		seq := uint64(b.pb.SeqNum())
		for _, w := range b.states {
			b.s.states.storeHashed(w.key, w.state, seq+uint64(w.op))
		}
	}
	return nil
}

// Wait blocks until an applied batch is durable. It returns an error when
// the batch was not applied.
func (b *batch) Wait() error {
	switch b.state {
	case batchApplied:
		b.syncWait()
		return b.waitErr
	case batchWaited:
		return b.waitErr
	}
	return errors.New("storage: Wait on a batch that was not applied")
}

func (b *batch) syncWait() {
	if err := b.pb.SyncWait(); err != nil {
		b.waitErr = fmt.Errorf("storage: sync: %w", err)
	}
	b.state = batchWaited
}

// Close releases the batch. An applied batch is waited for first: Pebble
// may still be reading it. Closing twice does nothing.
func (b *batch) Close() {
	if b.state == batchClosed {
		return
	}
	if b.state == batchApplied {
		b.syncWait()
	}
	if b.pb != nil {
		_ = b.pb.Close() // only fails on a batch already closed
	}
	b.state = batchClosed
}

var _ engine.Batch = (*batch)(nil)
