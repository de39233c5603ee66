package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/dream-api/dream-api/engine"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Which errors mean "the database cannot be reached" (EUNAVAILABLE) and
// which are answers of the database or the caller's own.
func TestClassify(t *testing.T) {
	notFound := engine.Errorf(engine.ENOTFOUND, "No such customer: x")
	for _, tc := range []struct {
		name string
		err  error
		want bool // EUNAVAILABLE
	}{
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{"failed connect", fmt.Errorf("begin: %w", &pgconn.ConnectError{}), true},
		{"reset", fmt.Errorf("x: %w", syscall.ECONNRESET), true},
		{"unexpected EOF", fmt.Errorf("failed to receive message: %w", io.ErrUnexpectedEOF), true},
		{"conn closed", fmt.Errorf("commit: %w", pgconn.ErrConnClosed), true},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, true},
		{"starting up", &pgconn.PgError{Code: "57P03"}, true},
		{"connection failure", &pgconn.PgError{Code: "08006"}, true},
		{"too many connections", &pgconn.PgError{Code: "53300"}, true},
		{"deadline", fmt.Errorf("acquire: %w", context.DeadlineExceeded), true},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"syntax error", &pgconn.PgError{Code: "42601"}, false},
		{"no rows", pgx.ErrNoRows, false},
		{"canceled", fmt.Errorf("x: %w", context.Canceled), false},
		{"engine error", notFound, false},
		{"decoding", errors.New("postgres: customer: invalid character"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := classify(tc.err)
			var e *engine.Error
			isUnavailable := errors.As(got, &e) && e.Code == engine.EUNAVAILABLE
			if isUnavailable != tc.want {
				t.Fatalf("classify(%v) = %v, want unavailable=%v", tc.err, got, tc.want)
			}
			if !tc.want {
				if got != tc.err {
					t.Errorf("classify changed %v into %v", tc.err, got)
				}
				return
			}
			if e.RetryAfter != 1 || e.Message != msgUnavailable || !errors.Is(got, tc.err) {
				t.Errorf("classify(%v) = %+v: want Retry-After 1, the generic message and the cause kept", tc.err, e)
			}
			if c := classifyCommit(tc.err); !errors.As(c, &e) || e.Message != msgCommitUnknown {
				t.Errorf("classifyCommit(%v) = %v, want the outcome-unknown message", tc.err, c)
			}
		})
	}
}

// CockroachDB's 40003 (statement_completion_unknown, an ambiguous result)
// is a commit whose outcome is unknown, wherever it is answered: 503
// unavailable with the outcome-unknown message, never "nothing was
// changed", and never run again. 40001 and 40P01 abort the transaction and
// ask for it to be run again (Update does); other answers do not.
func TestClassifyCockroachCodes(t *testing.T) {
	ambiguous := fmt.Errorf("postgres: commit: %w", &pgconn.PgError{Code: "40003", Message: "result is ambiguous"})
	for name, got := range map[string]error{"classify": classify(ambiguous), "classifyCommit": classifyCommit(ambiguous)} {
		var e *engine.Error
		if !errors.As(got, &e) || e.Code != engine.EUNAVAILABLE || e.Message != msgCommitUnknown || e.RetryAfter != 1 || !errors.Is(got, ambiguous) {
			t.Errorf("%s(40003) = %v, want EUNAVAILABLE with the outcome-unknown message and the cause kept", name, got)
		}
	}
	for _, tc := range []struct {
		code  string
		retry bool
	}{{"40001", true}, {"40P01", true}, {"40003", false}, {"23505", false}, {"08006", false}} {
		err := fmt.Errorf("postgres: write: %w", &pgconn.PgError{Code: tc.code})
		if got := isRetryable(err); got != tc.retry {
			t.Errorf("isRetryable(%s) = %v, want %v", tc.code, got, tc.retry)
		}
	}
}
