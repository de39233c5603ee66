package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dream-api/dream-api/engine"
	"github.com/jackc/pgx/v5"
)

// dbNowMS is the database's clock in unix milliseconds: leases are judged
// by one clock, whatever the nodes' clocks say.
const dbNowMS = `(extract(epoch from clock_timestamp()) * 1000)::bigint`

// LeaseOutbox leases every entry of ids for d, or none (engine.OutboxLeaser):
// one transaction locks the entries whose lease has ended, skipping those
// another transaction holds (FOR UPDATE SKIP LOCKED), and leases them only
// when it got them all. A transaction the database aborts (40001, 40P01:
// another node leased or wrote an entry meanwhile) is tried again, at most
// leaseAttempts times, then reported as not leased.
func (s *Store) LeaseOutbox(ctx context.Context, ids []string, d time.Duration) (bool, error) {
	if s.isClosed() {
		return false, ErrClosed
	}
	for attempt := 1; ; attempt++ {
		got, err := s.leaseOutbox(ctx, ids, d)
		if !isRetryable(err) {
			return got, err
		}
		if attempt == leaseAttempts {
			return false, nil
		}
		s.retries.Add(1)
	}
}

// leaseAttempts bounds the attempts of LeaseOutbox.
const leaseAttempts = 3

func (s *Store) leaseOutbox(ctx context.Context, ids []string, d time.Duration) (bool, error) {
	got := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id FROM outbox WHERE id = ANY($1) AND lease_until < `+dbNowMS+`
			FOR UPDATE SKIP LOCKED`, ids)
		if err != nil {
			return err
		}
		n := 0
		for rows.Next() {
			n++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if n != len(ids) {
			return errNotAll
		}
		_, err = tx.Exec(ctx, `UPDATE outbox SET lease_until = `+dbNowMS+` + $2 WHERE id = ANY($1)`, ids, d.Milliseconds())
		got = err == nil
		return err
	})
	if errors.Is(err, errNotAll) {
		return false, nil
	} else if isRetryable(err) {
		return false, err
	} else if err != nil {
		return false, classify(fmt.Errorf("postgres: lease outbox entries: %w", err))
	}
	return got, nil
}

// errNotAll rolls back a lease that did not get every entry.
var errNotAll = errors.New("postgres: not every outbox entry is free")

var _ engine.OutboxLeaser = (*Store)(nil)
