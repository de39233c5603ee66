package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sync"

	"github.com/dream-api/dream-api/engine"
	"github.com/jackc/pgx/v5"
)

// lockStripes is the number of in-process mutexes units of work lock by a
// hash of their engine.Locks.
const lockStripes = 4096

// LockID is the advisory lock key of l: a 64-bit FNV-1a hash of its
// fields, the same in every node and every build.
func LockID(l engine.Lock) int64 {
	h := fnv.New64a()
	h.Write([]byte{'d', 'r', 'e', 'a', 'm', byte(l.Kind), byte(l.Mode)})
	h.Write([]byte(l.Platform))
	h.Write([]byte{0})
	h.Write([]byte(l.ID))
	h.Write([]byte{0})
	h.Write([]byte(l.Feature))
	return int64(h.Sum64())
}

// lockIDs returns the advisory lock keys of locks, sorted and without
// repeats, so that units always lock in the same order.
func lockIDs(locks []engine.Lock) []int64 {
	ids := make([]int64, 0, len(locks))
	for _, l := range locks {
		ids = append(ids, LockID(l))
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// stripes is a fixed array of mutexes indexed by an advisory lock key.
type stripes struct{ mu []sync.Mutex }

func newStripes(n int) *stripes { return &stripes{mu: make([]sync.Mutex, n)} }

// lock locks the stripes of ids in index order, each once, and returns
// them to unlock.
func (s *stripes) lock(ids []int64) []int {
	idx := make([]int, 0, len(ids))
	for _, id := range ids {
		idx = append(idx, int(uint64(id)%uint64(len(s.mu))))
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	for _, i := range idx {
		s.mu[i].Lock()
	}
	return idx
}

func (s *stripes) unlock(idx []int) {
	for j := len(idx) - 1; j >= 0; j-- {
		s.mu[idx[j]].Unlock()
	}
}

// tx is a unit of work's view: reads through the transaction, writes
// queued in the writer (so, as in the Pebble store, a unit's reads do not
// see its own writes).
type tx struct {
	reader
	*writer
}

var _ engine.Tx = (*tx)(nil)

// Update runs fn as one unit of work (engine.Store) in one transaction:
// the in-process stripes of locks, then their advisory transaction locks
// in key order, fn reading through the transaction, its writes in one
// round trip, COMMIT. This node's Watch listener is told of the unit's
// changes after COMMIT and before the in-process stripes are released;
// other nodes learn them from the change log. Nothing is written when fn
// fails; Update returns once COMMIT has returned, so the writes are
// durable (as durable as the server's synchronous_commit makes them).
// When the database cannot be reached Update returns EUNAVAILABLE: before
// COMMIT, nothing was written; during COMMIT, the outcome is unknown and
// the error's message says so (errors.go).
func (s *Store) Update(ctx context.Context, locks []engine.Lock, fn func(tx engine.Tx) (any, error)) (any, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	if s.opts.GroupCommit {
		return s.updateGrouped(ctx, locks, fn)
	}
	ids := lockIDs(locks)
	idx := s.locks.lock(ids)
	defer s.locks.unlock(idx)
	select {
	case s.units <- struct{}{}:
		defer func() { <-s.units }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.UnitTimeout)
	defer cancel()

	ptx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, classify(fmt.Errorf("postgres: begin: %w", err))
	}
	defer ptx.Rollback(context.Background()) // a no-op after Commit
	if err := advisoryLocks(ctx, ptx, ids); err != nil {
		return nil, classify(err)
	}
	w := newWriter()
	res, err := fn(&tx{reader: reader{q: guarded{ptx}}, writer: w})
	if err != nil {
		return nil, err
	}
	seqs, err := w.flush(ctx, ptx)
	if err != nil {
		return nil, classify(err)
	}
	if err := ptx.Commit(ctx); err != nil {
		// A connection lost during COMMIT leaves the outcome unknown
		// (errors.go): EUNAVAILABLE saying so, never "nothing changed".
		return nil, classifyCommit(fmt.Errorf("postgres: commit: %w", err))
	}
	for i, ch := range w.changes {
		s.deliver(seqs[i], ch)
	}
	s.tell(w.local)
	return res, nil
}

// advisoryLocks takes the transaction-scoped advisory locks ids, in order.
func advisoryLocks(ctx context.Context, ptx pgx.Tx, ids []int64) error {
	switch len(ids) {
	case 0:
		return nil
	case 1:
		if _, err := ptx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, ids[0]); err != nil {
			return fmt.Errorf("postgres: lock: %w", err)
		}
		return nil
	}
	var b pgx.Batch
	for _, id := range ids {
		b.Queue(`SELECT pg_advisory_xact_lock($1)`, id)
	}
	br := ptx.SendBatch(ctx, &b)
	var errs []error
	for range ids {
		if _, err := br.Exec(); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, br.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("postgres: lock: %w", err)
	}
	return nil
}

// batch is engine.Batch: writes queued, then sent in one transaction.
type batch struct {
	*writer
	s    *Store
	used bool
}

var errBatchUsed = errors.New("postgres: batch already used")

// Commit writes the batch in one transaction and returns once it is
// committed.
func (b *batch) Commit() error {
	if b.used {
		return errBatchUsed
	}
	b.used = true
	if b.s.isClosed() {
		return ErrClosed
	}
	if b.writer.err != nil {
		return b.writer.err
	}
	if b.writer.Empty() {
		return nil
	}
	ctx := context.Background()
	ptx, err := b.s.pool.Begin(ctx)
	if err != nil {
		return classify(fmt.Errorf("postgres: begin: %w", err))
	}
	defer ptx.Rollback(ctx)
	seqs, err := b.writer.flush(ctx, ptx)
	if err != nil {
		return classify(err)
	}
	if err := ptx.Commit(ctx); err != nil {
		return classifyCommit(fmt.Errorf("postgres: commit: %w", err))
	}
	for i, ch := range b.writer.changes {
		b.s.deliver(seqs[i], ch)
	}
	b.s.tell(b.writer.local)
	return nil
}

// Apply is Commit: a PostgreSQL commit is visible and durable at once.
func (b *batch) Apply() error { return b.Commit() }

// Wait returns nil: Apply already waited.
func (b *batch) Wait() error {
	if !b.used {
		return errors.New("postgres: Wait on a batch that was not applied")
	}
	return nil
}

// Close releases the batch.
func (b *batch) Close() { b.used = true }

var _ engine.Batch = (*batch)(nil)
