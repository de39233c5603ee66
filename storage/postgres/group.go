package postgres

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"

	"github.com/dream-api/dream-api/engine"
)

// Group commit (Options.GroupCommit): the units of work of one node that
// arrive while a group transaction runs wait, then run together in the
// next one — sequentially on its connection, each seeing the writes of
// those before it — and share its COMMIT. A group takes the locks
// (takeLocks) of all its units at its start, in key order, so that groups
// of different nodes never deadlock; the units' writes are flushed after
// each unit behind a SAVEPOINT, so that a unit whose writes fail is rolled
// back alone (for errors other than a retry error, which aborts the group:
// runGroup). A failed COMMIT fails every unit of the group; none was
// acknowledged.

// maxGroup is the most units one group transaction runs.
const maxGroup = 256

// maxGroups is the most group transactions a node runs at once: few, so
// that units arriving meanwhile queue into the next group instead of each
// starting its own: one for every two CPUs, at least 2, since a group
// runs its units' work (plugins included) on one goroutine. On two
// cores, 2 beat 4 everywhere (make bench, PostgreSQL cases: a hot customer
// 2–5 times the throughput of one transaction a unit on one node and on
// two, many customers about the same or better; 4 had two nodes slower
// than without group commit). More cores were not measured.
var maxGroups = max(2, runtime.GOMAXPROCS(0)/2)

// unit is one Update waiting for, or running in, a group.
type unit struct {
	ctx  context.Context
	ids  []int64
	fn   func(engine.Tx) (any, error)
	res  any
	err  error
	w    *writer
	seqs []int64
	done chan struct{}
}

// grouper queues units and runs up to max groups at once.
type grouper struct {
	mu      sync.Mutex
	queue   []*unit
	running int
	max     int
}

// updateGrouped is Update with group commit.
func (s *Store) updateGrouped(ctx context.Context, locks []engine.Lock, fn func(tx engine.Tx) (any, error)) (any, error) {
	u := &unit{ctx: ctx, ids: lockIDs(locks), fn: fn, done: make(chan struct{})}
	g := s.groups
	g.mu.Lock()
	g.queue = append(g.queue, u)
	start := g.running < g.max
	if start {
		g.running++
	}
	g.mu.Unlock()
	if start {
		go s.runGroups()
	}
	<-u.done // a unit that started is never abandoned: its write may commit
	return u.res, u.err
}

// runGroups runs groups of queued units until the queue is empty.
func (s *Store) runGroups() {
	g := s.groups
	for {
		g.mu.Lock()
		n := min(len(g.queue), maxGroup)
		if n == 0 {
			g.running--
			g.mu.Unlock()
			return
		}
		units := slices.Clone(g.queue[:n])
		g.queue = slices.Delete(g.queue, 0, n)
		g.mu.Unlock()
		s.runGroup(units)
	}
}

// runGroup runs units in one transaction, again from BEGIN — every unit's
// fn re-run on a fresh transaction — when the database aborts it with
// 40001 or 40P01 (isRetryable), after a backoff, up to maxAttempts times
// within UnitTimeout. Savepoints do not help there: CockroachDB cannot
// roll back to an ordinary savepoint after a retry error, and PostgreSQL's
// SERIALIZABLE would fail the COMMIT all the same. No unit is told
// anything before the last attempt ends, so none is acknowledged twice.
func (s *Store) runGroup(units []*unit) {
	defer func() {
		for _, u := range units {
			close(u.done)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.UnitTimeout)
	defer cancel()
	var ids []int64
	for _, u := range units {
		ids = append(ids, u.ids...)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	for attempt := 1; ; attempt++ {
		for _, u := range units {
			u.res, u.err, u.w, u.seqs = nil, nil, nil, nil
		}
		re := s.groupAttempt(ctx, units, ids)
		if re == nil {
			break
		}
		if err := s.backoff(ctx, attempt, re); err != nil {
			for _, u := range units {
				u.res, u.err, u.w = nil, err, nil
			}
			return
		}
	}
	for _, u := range units {
		if u.err == nil && u.w != nil {
			for i, ch := range u.w.changes {
				s.deliver(u.seqs[i], ch)
			}
			s.tell(u.w.local)
		}
	}
}

// groupAttempt runs units once in one transaction, setting each unit's
// outcome; a non-nil *retryError asks for the whole group again.
func (s *Store) groupAttempt(ctx context.Context, units []*unit, ids []int64) *retryError {
	fail := func(err error) *retryError {
		var re *retryError
		if errors.As(err, &re) {
			return re
		}
		for _, u := range units {
			if u.err == nil {
				u.res, u.err, u.w = nil, err, nil
			}
		}
		return nil
	}
	ptx, err := s.pool.Begin(ctx)
	if err != nil {
		return fail(classify(fmt.Errorf("postgres: begin: %w", err)))
	}
	defer ptx.Rollback(context.Background()) // a no-op after Commit
	if err := s.takeLocks(ctx, ptx, ids); err != nil {
		return fail(retryOr(err, classify))
	}
	for _, u := range units {
		if err := u.ctx.Err(); err != nil {
			u.err = err
			continue
		}
		u.w = newWriter()
		nq := &noting{q: ptx}
		res, err := u.fn(&tx{reader: reader{q: guarded{nq}}, writer: u.w})
		if nq.retry != nil {
			return &retryError{nq.retry} // the transaction is aborted
		}
		if err != nil {
			u.err, u.w = err, nil
			continue
		}
		if u.w.Empty() && u.w.err == nil {
			u.res = res
			continue
		}
		seqs, err := u.w.flushAfter(ctx, ptx, "SAVEPOINT unit")
		if isRetryable(err) {
			return &retryError{err}
		}
		if err != nil {
			u.err = classify(err)
			u.w = nil
			if _, rerr := ptx.Exec(ctx, "ROLLBACK TO SAVEPOINT unit"); rerr != nil {
				// The transaction cannot go on: nothing of the group commits.
				return fail(retryOr(fmt.Errorf("postgres: rollback to savepoint: %w", rerr), classify))
			}
			continue
		}
		u.res, u.seqs = res, seqs
	}
	if err := ptx.Commit(ctx); err != nil {
		return fail(retryOr(fmt.Errorf("postgres: commit: %w", err), classifyCommit))
	}
	return nil
}
