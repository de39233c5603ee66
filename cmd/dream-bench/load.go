package main

// The load generator: N keep-alive HTTP/1.1 connections over loopback, each
// in its own goroutine, each sending its next request as soon as the
// previous one is answered (closed loop) or at a fixed pace (Rate). It
// writes prebuilt request bytes on a raw net.Conn and parses only what it
// needs of the response (status, Content-Length or chunked), so that it
// spends as little as possible of the CPU it shares with the server.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

// load is one run of the load generator.
type load struct {
	// Addr is the server's host:port.
	Addr string
	// Addrs, when set, are several servers' host:port: connection c
	// dials Addrs[c % len(Addrs)] (nodes behind a round-robin balancer).
	Addrs []string
	// Conns is the number of connections, each with at most one request
	// in flight.
	Conns int
	// Duration is the measured window.
	Duration time.Duration
	// MaxPerConn bounds the requests of one connection. Defaults to
	// 10 million.
	MaxPerConn int64
	// Rate is the total request rate, spread evenly over the connections;
	// 0 sends each next request as soon as the previous one is answered.
	Rate float64
	// Request returns the bytes of connection c's n-th request (n = 0 is
	// the priming request sent before the window opens). It may reuse and
	// return buf. Called from the connection's goroutine.
	Request func(c int, n int64, buf []byte) []byte
	// Observe, when set, sees every answer (and every request that got
	// none, with status 0). Called from the connection's goroutine.
	Observe func(c int, n int64, status int)
}

// loadResult is what a run measured.
type loadResult struct {
	Conns   int
	Elapsed time.Duration
	// Requests is the number answered within the window; Status counts
	// them by status code.
	Requests int64
	Status   map[int]int64
	// Errors counts requests that got no answer (connection errors), in
	// the whole run.
	Errors int64
	Hist   histogram
	// OK counts 2xx answers per connection over the whole run: the
	// priming request and requests answered after the window closed too.
	OK []int64
	// First is the body of connection 0's priming answer, for a sanity check.
	First []byte
	// FirstStatus is its status.
	FirstStatus int
}

// addr is the server connection c talks to.
func (l *load) addr(c int) string {
	if len(l.Addrs) > 0 {
		return l.Addrs[c%len(l.Addrs)]
	}
	return l.Addr
}

// RPS is requests answered per second of the window.
func (r *loadResult) RPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// Non2xx counts the answers in the window whose status was not 2xx.
func (r *loadResult) Non2xx() int64 {
	var n int64
	for code, k := range r.Status {
		if code/100 != 2 {
			n += k
		}
	}
	return n
}

// maxConnErrors is how many failed requests one connection tolerates before
// it gives up.
const maxConnErrors = 100

type connState struct {
	hist    histogram
	status  map[int]int64
	n       int64
	errors  int64
	ok      int64
	first   []byte
	fstatus int
	err     error
}

// run dials every connection, primes each with one request, then measures
// for l.Duration. It fails when a connection cannot be opened or its priming
// request is not answered.
func (l *load) run(ctx context.Context) (*loadResult, error) {
	if l.Conns < 1 {
		return nil, errors.New("load: Conns must be at least 1")
	}
	if l.MaxPerConn == 0 {
		l.MaxPerConn = 10_000_000
	}
	conns := make([]*httpConn, l.Conns)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.close()
			}
		}
	}()
	states := make([]*connState, l.Conns)
	for i := range conns {
		c, err := dialHTTP(l.addr(i))
		if err != nil {
			return nil, fmt.Errorf("load: connection %d: %w", i, err)
		}
		conns[i] = c
		st := &connState{status: map[int]int64{}}
		states[i] = st
		req := l.Request(i, 0, nil)
		status, body, err := c.roundTrip(req, i == 0)
		if err != nil {
			return nil, fmt.Errorf("load: priming request of connection %d: %w", i, err)
		}
		if l.Observe != nil {
			l.Observe(i, 0, status)
		}
		if status/100 == 2 {
			st.ok++
		}
		st.first, st.fstatus = body, status
	}

	start := time.Now()
	deadline := start.Add(l.Duration)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.drive(ctx, i, &conns[i], states[i], start, deadline)
		}()
	}
	wg.Wait()

	res := &loadResult{Conns: l.Conns, Elapsed: l.Duration, Status: map[int]int64{}, OK: make([]int64, l.Conns),
		First: states[0].first, FirstStatus: states[0].fstatus}
	for i, st := range states {
		res.Hist.merge(&st.hist)
		res.Requests += st.n
		res.Errors += st.errors
		res.OK[i] = st.ok
		for k, v := range st.status {
			res.Status[k] += v
		}
		if st.err != nil {
			return res, fmt.Errorf("load: connection %d gave up: %w", i, st.err)
		}
	}
	return res, nil
}

// drive is one connection's loop.
func (l *load) drive(ctx context.Context, i int, cp **httpConn, st *connState, start, deadline time.Time) {
	var buf []byte
	var interval time.Duration
	if l.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(l.Conns) / l.Rate)
		// Spread the connections over one interval.
		time.Sleep(time.Duration(int64(interval) * int64(i) / int64(l.Conns)))
	}
	next := time.Now()
	for n := int64(1); n <= l.MaxPerConn; n++ {
		if ctx.Err() != nil {
			return
		}
		if interval > 0 {
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
			next = next.Add(interval)
		}
		t0 := time.Now()
		if !t0.Before(deadline) {
			return
		}
		buf = l.Request(i, n, buf[:0])
		c := *cp
		if c == nil {
			var err error
			if c, err = dialHTTP(l.addr(i)); err != nil {
				st.errors++
				if st.errors >= maxConnErrors {
					st.err = err
					return
				}
				time.Sleep(10 * time.Millisecond)
				continue
			}
			*cp = c
		}
		status, _, err := c.roundTrip(buf, false)
		t1 := time.Now()
		if err != nil {
			c.close()
			*cp = nil
			st.errors++
			if l.Observe != nil {
				l.Observe(i, n, 0)
			}
			if st.errors >= maxConnErrors {
				st.err = err
				return
			}
			continue
		}
		if l.Observe != nil {
			l.Observe(i, n, status)
		}
		if status/100 == 2 {
			st.ok++
		}
		if c.mustClose {
			c.close()
			*cp = nil
		}
		if t1.After(deadline) {
			continue // answered, counted in OK, but outside the window
		}
		st.n++
		st.status[status]++
		st.hist.record(t1.Sub(t0))
	}
}

// httpConn is one keep-alive HTTP/1.1 connection.
type httpConn struct {
	conn      net.Conn
	r         *bufio.Reader
	mustClose bool // the server answered Connection: close
}

func dialHTTP(addr string) (*httpConn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &httpConn{conn: c, r: bufio.NewReaderSize(c, 32<<10)}, nil
}

func (c *httpConn) close() { c.conn.Close() }

// roundTrip writes one request and reads its response, returning the body
// only when keep is set. A response must arrive within 30 s.
func (c *httpConn) roundTrip(req []byte, keep bool) (status int, body []byte, err error) {
	c.conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.conn.Write(req); err != nil {
		return 0, nil, err
	}
	return c.readResponse(keep)
}

var (
	hdrContentLength    = []byte("content-length:")
	hdrTransferEncoding = []byte("transfer-encoding:")
	hdrConnection       = []byte("connection:")
)

// readResponse reads a response: the status line, the headers it needs and
// the body (Content-Length or chunked).
func (c *httpConn) readResponse(keep bool) (status int, body []byte, err error) {
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return 0, nil, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, nil, fmt.Errorf("malformed status line %q", line)
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, nil, fmt.Errorf("malformed status line %q", line)
	}
	length, chunked := -1, false
	for {
		line, err = c.r.ReadSlice('\n')
		if err != nil {
			return 0, nil, err
		}
		if len(line) <= 2 {
			break
		}
		switch {
		case hasPrefixFold(line, hdrContentLength):
			v := bytes.TrimSpace(line[len(hdrContentLength):])
			if length, err = strconv.Atoi(string(v)); err != nil || length < 0 {
				return 0, nil, fmt.Errorf("malformed Content-Length %q", v)
			}
		case hasPrefixFold(line, hdrTransferEncoding):
			chunked = bytes.Contains(bytes.ToLower(line), []byte("chunked"))
		case hasPrefixFold(line, hdrConnection):
			c.mustClose = bytes.Contains(bytes.ToLower(line), []byte("close"))
		}
	}
	switch {
	case chunked:
		body, err = c.readChunked(keep)
	case length >= 0:
		body, err = c.readN(length, keep)
	case status == 204 || status == 304 || status/100 == 1:
	default:
		return 0, nil, errors.New("response without Content-Length (read to close is not supported)")
	}
	return status, body, err
}

func (c *httpConn) readN(n int, keep bool) ([]byte, error) {
	if !keep {
		_, err := c.r.Discard(n)
		return nil, err
	}
	b := make([]byte, n)
	_, err := io.ReadFull(c.r, b)
	return b, err
}

func (c *httpConn) readChunked(keep bool) ([]byte, error) {
	var body []byte
	for {
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			return nil, err
		}
		sz := bytes.TrimSpace(line)
		if i := bytes.IndexByte(sz, ';'); i >= 0 {
			sz = sz[:i]
		}
		n, err := strconv.ParseInt(string(sz), 16, 64)
		if err != nil || n < 0 || n > 1<<30 {
			return nil, fmt.Errorf("malformed chunk size %q", line)
		}
		if n == 0 {
			for { // trailers, then the empty line
				line, err := c.r.ReadSlice('\n')
				if err != nil {
					return nil, err
				}
				if len(line) <= 2 {
					return body, nil
				}
			}
		}
		b, err := c.readN(int(n), keep)
		if err != nil {
			return nil, err
		}
		body = append(body, b...)
		if _, err := c.r.Discard(2); err != nil { // CRLF
			return nil, err
		}
	}
}

func hasPrefixFold(line, prefix []byte) bool {
	return len(line) >= len(prefix) && bytes.EqualFold(line[:len(prefix)], prefix)
}

// httpRequest renders a POST with a JSON body (and an Authorization header
// when key is set) into buf.
func httpRequest(buf []byte, host, path, key string, body []byte, extra ...string) []byte {
	buf = append(buf, "POST "...)
	buf = append(buf, path...)
	buf = append(buf, " HTTP/1.1\r\nHost: "...)
	buf = append(buf, host...)
	if key != "" {
		buf = append(buf, "\r\nAuthorization: Bearer "...)
		buf = append(buf, key...)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		buf = append(buf, "\r\n"...)
		buf = append(buf, extra[i]...)
		buf = append(buf, ": "...)
		buf = append(buf, extra[i+1]...)
	}
	buf = append(buf, "\r\nContent-Type: application/json\r\nContent-Length: "...)
	buf = strconv.AppendInt(buf, int64(len(body)), 10)
	buf = append(buf, "\r\n\r\n"...)
	return append(buf, body...)
}
