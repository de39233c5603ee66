package http

import (
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/dream-api/dream-api/engine"
)

// Defaults of Limits.
const (
	DefaultBodyTimeout              = 30 * time.Second
	DefaultMaxUnauthenticatedBodies = 64
)

// Limits bound what one client may hold of the server while a request's
// body arrives. The zero value means the defaults.
type Limits struct {
	// BodyTimeout bounds the arrival of a request's body, from when the
	// server starts handling the request (its headers are read) to the
	// body's end. A body that takes longer fails: 400, and the connection
	// is closed. Defaults to DefaultBodyTimeout; negative means no bound.
	BodyTimeout time.Duration
	// MaxUnauthenticatedBodies bounds the bodies read at once before
	// anything has authenticated their sender: the Stripe webhooks, whose
	// signature covers the body. One more is answered 429 rate_limited
	// (Retry-After: 1) without being read. Defaults to
	// DefaultMaxUnauthenticatedBodies; negative means no bound.
	//
	// Every other route authenticates from the headers before it reads a
	// body, and a body that a handler leaves unread (a request refused
	// before it was read) is not drained: its connection is closed after
	// the answer instead.
	MaxUnauthenticatedBodies int
}

// limiter applies Limits. Safe for concurrent use.
type limiter struct {
	bodyTimeout time.Duration
	// unauthenticated holds one token per unauthenticated body being
	// read; nil without a bound.
	unauthenticated chan struct{}
	reading         atomic.Int64 // unauthenticated bodies being read, for tests
}

func newLimiter(l Limits) *limiter {
	if l.BodyTimeout == 0 {
		l.BodyTimeout = DefaultBodyTimeout
	}
	if l.MaxUnauthenticatedBodies == 0 {
		l.MaxUnauthenticatedBodies = DefaultMaxUnauthenticatedBodies
	}
	lm := &limiter{bodyTimeout: l.BodyTimeout}
	if l.MaxUnauthenticatedBodies > 0 {
		lm.unauthenticated = make(chan struct{}, l.MaxUnauthenticatedBodies)
	}
	return lm
}

// guardBody is the first step of every request with a body: the body must
// have arrived within BodyTimeout (the connection's read deadline, which
// net/http lifts when the body has been read to its end and it starts
// watching the connection for the next request). The caller MUST call done
// on what it returns (nil included) when the handler has returned: a body
// the handler left unread is then cut off at once, so that net/http does
// not wait for its rest to arrive before it answers (it closes the
// connection instead).
//
// w must be the server's own ResponseWriter (ServeHTTP's); with one that
// has no read deadline (a test recorder) nothing is bounded.
func (l *limiter) guardBody(w http.ResponseWriter, r *http.Request) *watchedBody {
	if r.Body == nil || r.Body == http.NoBody || l.bodyTimeout < 0 {
		return nil
	}
	conn, ok := w.(readDeadliner)
	if !ok || conn.SetReadDeadline(time.Now().Add(l.bodyTimeout)) != nil {
		return nil // not a connection of ours
	}
	b := &watchedBody{ReadCloser: r.Body, conn: conn}
	r.Body = b
	return b
}

// readDeadliner is net/http's ResponseWriter: it sets the connection's read
// deadline (what http.ResponseController calls).
type readDeadliner interface {
	SetReadDeadline(time.Time) error
}

// watchedBody is a request body that knows whether it was read to its end.
type watchedBody struct {
	io.ReadCloser
	conn readDeadliner
	eof  bool
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

// done cuts off a body that was not read to its end. b may be nil.
func (b *watchedBody) done() {
	if b != nil && !b.eof {
		b.conn.SetReadDeadline(time.Now())
	}
}

// readUnauthenticated reads the body of a request whose sender is not known
// until the body is read (a webhook), holding one of
// Limits.MaxUnauthenticatedBodies while it arrives. Returns ERATELIMITED
// when all are taken, and readBody's errors.
func (l *limiter) readUnauthenticated(r *http.Request) ([]byte, error) {
	if l.unauthenticated != nil {
		select {
		case l.unauthenticated <- struct{}{}:
			defer func() { <-l.unauthenticated }()
		default:
			return nil, errTooManyBodies
		}
	}
	l.reading.Add(1)
	defer l.reading.Add(-1)
	return readBody(r)
}

var errTooManyBodies = &engine.Error{Code: engine.ERATELIMITED, RetryAfter: 1,
	Message: "Too many requests are being received at once on this endpoint; retry in a second."}
