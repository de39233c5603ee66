package postgres

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/dream-api/dream-api/engine"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The database being unreachable is engine.EUNAVAILABLE (503 with
// Retry-After: 1), not an internal error: a client may retry, and a node
// serves again on its own once the database answers (the pool drops broken
// connections: it pings a connection idle for more than a second before
// handing it out).
//
// Before COMMIT is sent, a lost connection rolls the transaction back
// (PostgreSQL aborts a transaction whose session ends), so "nothing was
// changed" holds. When the connection is lost while COMMIT is in flight,
// nobody knows whether the transaction committed: Update then answers
// EUNAVAILABLE with a message saying so (errCommitUnknown). A retry with
// the same Idempotency-Key is safe either way: it replays the recorded
// answer when the first attempt committed, and runs the call when it did
// not. Without a key a retry may count twice. This node's caches learn of
// such a commit from the change log like any other node's.

// Messages of EUNAVAILABLE errors: safe to show, no detail of the cause
// (the cause is in the error chain, for the server's log).
const (
	msgUnavailable   = "The database cannot be reached; nothing was changed. Retry shortly."
	msgCommitUnknown = "The database connection was lost while committing: the call may or may not have taken effect. Retry with the same Idempotency-Key to learn which (without one, a retry may apply it twice)."
	msgContended     = "The database is busy with conflicting writes; nothing was changed. Retry shortly."
)

// isRetryable reports whether err is an answer of the database that
// aborted the transaction and asks for it to be run again from BEGIN:
// 40001 serialization_failure (CockroachDB's "restart transaction", and
// PostgreSQL's under REPEATABLE READ or SERIALIZABLE) or 40P01
// deadlock_detected. Nothing of the transaction was committed.
func isRetryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// outcomeUnknown reports whether err is CockroachDB's 40003
// statement_completion_unknown (an ambiguous result: the statement, or
// the COMMIT, may or may not have taken effect).
func outcomeUnknown(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "40003"
}

// unavailableError is an EUNAVAILABLE *engine.Error with its cause: the
// engine and HTTP layer see the code (errors.As), the log sees the cause.
type unavailableError struct {
	e     *engine.Error
	cause error
}

func (u *unavailableError) Error() string {
	return "postgres: unavailable: " + u.cause.Error()
}

func (u *unavailableError) Unwrap() []error { return []error{u.e, u.cause} }

func newUnavailable(msg string, cause error) error {
	return &unavailableError{e: &engine.Error{Code: engine.EUNAVAILABLE, Message: msg, RetryAfter: 1}, cause: cause}
}

// unreachable reports whether err says the database could not be reached
// or the connection was lost, as opposed to an answer of the database
// (a constraint, a syntax error) or an error of the caller.
//
// Connection-class: a failed connect (refused, timed out, the server
// starting up or shutting down); an error pgconn marks safe to retry
// (nothing was sent); a network error, EOF or reset on the wire; a server
// error of class 08 (connection exception), 57P01 admin_shutdown, 57P02
// crash_shutdown, 57P03 cannot_connect_now or 53300 too_many_connections;
// a connection pgx closed after such a failure (pgconn.ErrConnClosed);
// a timeout in pgconn; a pool that could not hand out a connection before
// the context's deadline. context.Canceled (the caller went away) is not.
func unreachable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" ||
			pe.Code == "57P03" || pe.Code == "53300"
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	switch {
	case errors.As(err, &ce), pgconn.SafeToRetry(err), pgconn.Timeout(err),
		errors.As(err, &ne), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, pgconn.ErrConnClosed),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EPIPE),
		errors.Is(err, context.DeadlineExceeded):
		return true
	}
	return false
}

// classify returns err as EUNAVAILABLE when it is connection-class
// (unreachable), else err unchanged; an *engine.Error is kept as it is.
//
// CockroachDB's 40003 (outcomeUnknown) is EUNAVAILABLE with the
// outcome-unknown message wherever it comes from.
func classify(err error) error {
	var e *engine.Error
	if err == nil || errors.As(err, &e) {
		return err
	}
	if outcomeUnknown(err) {
		return newUnavailable(msgCommitUnknown, err)
	}
	if !unreachable(err) {
		return err
	}
	return newUnavailable(msgUnavailable, err)
}

// classifyCommit is classify for the error of COMMIT: a connection lost
// then leaves the outcome unknown (msgCommitUnknown): the connection was
// alive when the unit's writes returned, so COMMIT may have been sent (pgx
// answers pgconn.ErrConnClosed when it was, and the reply was lost). A
// server's answer (a PgError that is not connection-class) means it
// rolled back.
// CockroachDB's 40003 answer to COMMIT is the same unknown outcome.
func classifyCommit(err error) error {
	var e *engine.Error
	if err == nil || errors.As(err, &e) || !(unreachable(err) || outcomeUnknown(err)) {
		return err
	}
	return newUnavailable(msgCommitUnknown, err)
}

// timed is a querier on the pool whose every call may last d at most
// (Options.ReadTimeout): a read outside a unit of work on a database that
// stops answering ends with context.DeadlineExceeded, which guarded turns
// into EUNAVAILABLE. Rows hold the deadline until they are closed or
// read to the end; a Row until it is scanned.
type timed struct {
	q querier
	d time.Duration
}

func (t timed) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	ctx, cancel := context.WithTimeout(ctx, t.d)
	defer cancel()
	return t.q.Exec(ctx, sql, args...)
}

func (t timed) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	ctx, cancel := context.WithTimeout(ctx, t.d)
	rows, err := t.q.Query(ctx, sql, args...)
	if err != nil {
		cancel()
		return rows, err
	}
	return &timedRows{Rows: rows, cancel: cancel}, nil
}

func (t timed) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	ctx, cancel := context.WithTimeout(ctx, t.d)
	return timedRow{row: t.q.QueryRow(ctx, sql, args...), cancel: cancel}
}

type timedRows struct {
	pgx.Rows
	cancel context.CancelFunc
}

func (r *timedRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.cancel()
	return false
}

func (r *timedRows) Close() {
	r.Rows.Close()
	r.cancel()
}

type timedRow struct {
	row    pgx.Row
	cancel context.CancelFunc
}

func (r timedRow) Scan(dest ...any) error {
	defer r.cancel()
	return r.row.Scan(dest...)
}

// guarded is a querier whose errors are classified: reads (and the writes
// of ExpireIdempotency and friends) answer EUNAVAILABLE when the database
// cannot be reached.
type guarded struct{ q querier }

func (g guarded) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	tag, err := g.q.Exec(ctx, sql, args...)
	return tag, classify(err)
}

func (g guarded) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	rows, err := g.q.Query(ctx, sql, args...)
	if err != nil {
		return rows, classify(err)
	}
	return guardedRows{rows}, nil
}

func (g guarded) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return guardedRow{g.q.QueryRow(ctx, sql, args...)}
}

type guardedRows struct{ pgx.Rows }

func (r guardedRows) Err() error { return classify(r.Rows.Err()) }

type guardedRow struct{ pgx.Row }

func (r guardedRow) Scan(dest ...any) error { return classify(r.Row.Scan(dest...)) }

var (
	_ querier = guarded{}
	_ querier = timed{}
	_ querier = (*pgxpool.Pool)(nil)
)
