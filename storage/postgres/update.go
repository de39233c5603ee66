package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/dream-api/dream-api/engine"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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
// the in-process stripes of locks, then the locks in the database in key
// order (takeLocks), fn reading through the transaction, its writes in one
// round trip, COMMIT. This node's Watch listener is told of the unit's
// changes after COMMIT and before the in-process stripes are released;
// other nodes learn them from the change log. Nothing is written when fn
// fails; Update returns once COMMIT has returned, so the writes are
// durable (as durable as the server's synchronous_commit makes them).
//
// A transaction the database aborts with 40001 (serialization_failure:
// CockroachDB's "restart transaction", PostgreSQL's under SERIALIZABLE) or
// 40P01 (deadlock_detected) is run again from BEGIN, fn included, after a
// short jittered backoff, up to maxAttempts times within UnitTimeout; then
// Update answers EUNAVAILABLE (msgContended). fn MUST therefore have no
// effect outside tx: only its last run's result and writes count.
//
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
	for attempt := 1; ; attempt++ {
		res, w, seqs, err := s.attempt(ctx, ids, fn)
		var re *retryError
		if errors.As(err, &re) {
			if err := s.backoff(ctx, attempt, re); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		for i, ch := range w.changes {
			s.deliver(seqs[i], ch)
		}
		s.tell(w.local)
		return res, nil
	}
}

// attempt runs fn once in a new transaction; a *retryError asks for
// another attempt.
func (s *Store) attempt(ctx context.Context, ids []int64, fn func(tx engine.Tx) (any, error)) (any, *writer, []int64, error) {
	ptx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, nil, nil, classify(fmt.Errorf("postgres: begin: %w", err))
	}
	defer ptx.Rollback(context.Background()) // a no-op after Commit
	if err := s.takeLocks(ctx, ptx, ids); err != nil {
		return nil, nil, nil, retryOr(err, classify)
	}
	w := newWriter()
	nq := &noting{q: ptx}
	res, err := fn(&tx{reader: reader{q: guarded{nq}}, writer: w})
	if err != nil {
		if nq.retry != nil {
			// fn failed because the transaction was aborted under it.
			return nil, nil, nil, &retryError{nq.retry}
		}
		return nil, nil, nil, retryOr(err, func(err error) error { return err })
	}
	seqs, err := w.flush(ctx, ptx)
	if err != nil {
		return nil, nil, nil, retryOr(err, classify)
	}
	if err := ptx.Commit(ctx); err != nil {
		// A connection lost during COMMIT leaves the outcome unknown
		// (errors.go): EUNAVAILABLE saying so, never "nothing changed".
		// A 40001 answer to COMMIT (PostgreSQL's SERIALIZABLE) rolled
		// back: run again.
		return nil, nil, nil, retryOr(fmt.Errorf("postgres: commit: %w", err), classifyCommit)
	}
	return res, w, seqs, nil
}

// Retries of a transaction aborted by the database (isRetryable): the
// first one at once, the next after a backoff. Many attempts, because
// PostgreSQL under SERIALIZABLE aborts every unit that waited for a lock
// another unit wrote under (its snapshot predates the write), so a unit
// of a hot customer may lose a few times in a row to another node's; the
// attempts are also bounded by UnitTimeout.
const (
	maxAttempts = 40
	minBackoff  = time.Millisecond
	maxBackoff  = 20 * time.Millisecond
)

// retryError is an attempt's failure that asks to run the unit (or the
// group) again from BEGIN.
type retryError struct{ cause error }

func (e *retryError) Error() string { return "postgres: retry: " + e.cause.Error() }
func (e *retryError) Unwrap() error { return e.cause }

// retryOr returns err as a *retryError when the database asks for a retry
// (isRetryable), else or(err).
func retryOr(err error, or func(error) error) error {
	if isRetryable(err) {
		return &retryError{err}
	}
	return or(err)
}

// backoff sleeps before attempt+1: not at all after the first, then a
// random time in [d/2, d), d doubling from minBackoff to maxBackoff. It
// returns EUNAVAILABLE (msgContended) when attempt was the last one or
// ctx ends first; nothing was written.
func (s *Store) backoff(ctx context.Context, attempt int, re *retryError) error {
	if attempt >= maxAttempts || ctx.Err() != nil {
		return newUnavailable(msgContended, fmt.Errorf("postgres: %d attempts: %w", attempt, re.cause))
	}
	s.retries.Add(1)
	if attempt == 1 {
		return nil
	}
	d := min(maxBackoff, minBackoff<<min(attempt-2, 16))
	d = d/2 + rand.N(d/2)
	if err := sleepCtx(ctx, d); err != nil {
		return newUnavailable(msgContended, fmt.Errorf("postgres: %w after %d attempts: %w", err, attempt, re.cause))
	}
	return nil
}

// noting is a transaction's querier that keeps the first error asking for
// a retry (isRetryable): a unit's fn may wrap or replace the error of a
// read, and the transaction is aborted all the same.
type noting struct {
	q     querier
	mu    sync.Mutex
	retry error
}

func (n *noting) note(err error) error {
	if isRetryable(err) {
		n.mu.Lock()
		if n.retry == nil {
			n.retry = err
		}
		n.mu.Unlock()
	}
	return err
}

func (n *noting) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	tag, err := n.q.Exec(ctx, sql, args...)
	return tag, n.note(err)
}

func (n *noting) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	rows, err := n.q.Query(ctx, sql, args...)
	if err != nil {
		return rows, n.note(err)
	}
	return notingRows{rows, n}, nil
}

func (n *noting) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return notingRow{n.q.QueryRow(ctx, sql, args...), n}
}

type notingRows struct {
	pgx.Rows
	n *noting
}

func (r notingRows) Err() error { return r.n.note(r.Rows.Err()) }

type notingRow struct {
	pgx.Row
	n *noting
}

func (r notingRow) Scan(dest ...any) error { return r.n.note(r.Row.Scan(dest...)) }

// takeLocks takes the locks ids, sorted, in the transaction: PostgreSQL
// advisory transaction locks, or with Options.LockRows rows of
// dream_locks upserted in key order in one statement. The upsert writes
// each row, so a unit that waited for another's lock row conflicts with
// that unit's write: on CockroachDB its timestamp moves past the other's
// commit before it reads anything (so it reads what the other wrote);
// on PostgreSQL under READ COMMITTED it goes on once the other commits,
// and under REPEATABLE READ or SERIALIZABLE it fails with 40001 and is
// run again.
func (s *Store) takeLocks(ctx context.Context, ptx pgx.Tx, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	if s.opts.LockRows {
		if _, err := ptx.Exec(ctx, `INSERT INTO dream_locks (id) SELECT id FROM unnest($1::bigint[]) AS l(id) ORDER BY id
			ON CONFLICT (id) DO UPDATE SET n = dream_locks.n + 1`, ids); err != nil {
			return fmt.Errorf("postgres: lock: %w", err)
		}
		return nil
	}
	return advisoryLocks(ctx, ptx, ids)
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
// committed: again, up to maxAttempts times, when the
// database aborts it with 40001 or 40P01 (Update).
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
	ctx := context.Background() // a batch may be large (a migration's)
	for attempt := 1; ; attempt++ {
		seqs, err := b.commitOnce(ctx)
		var re *retryError
		if errors.As(err, &re) {
			if err := b.s.backoff(ctx, attempt, re); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		for i, ch := range b.writer.changes {
			b.s.deliver(seqs[i], ch)
		}
		b.s.tell(b.writer.local)
		return nil
	}
}

// commitOnce sends the batch in one transaction; a *retryError asks for
// another attempt (the writes are the same every time).
func (b *batch) commitOnce(ctx context.Context) ([]int64, error) {
	ptx, err := b.s.pool.Begin(ctx)
	if err != nil {
		return nil, classify(fmt.Errorf("postgres: begin: %w", err))
	}
	defer ptx.Rollback(context.Background())
	seqs, err := b.writer.flush(ctx, ptx)
	if err != nil {
		return nil, retryOr(err, classify)
	}
	if err := ptx.Commit(ctx); err != nil {
		return nil, retryOr(fmt.Errorf("postgres: commit: %w", err), classifyCommit)
	}
	return seqs, nil
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
