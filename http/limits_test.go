package http

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
)

// Generous bounds on waiting for an outcome: a busy CI machine meets them
// by far; a server that never cuts a body off does not.
const (
	outcomeWait = 20 * time.Second
	forever     = time.Hour // a Limits.BodyTimeout no test waits for
)

// limitsServer serves a Server with limits on a real listener (the body's
// deadline is the connection's) and returns it and a live secret key.
func limitsServer(t *testing.T, limits Limits) (*httptest.Server, *Server, string) {
	t.Helper()
	st := tempStore(t)
	log := slog.New(slog.DiscardHandler)
	eng := engine.New(engine.Config{Store: st, Logger: log})
	np, err := eng.Platforms.Create(context.Background(), engine.CreatePlatformInput{Name: "Limits"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(Config{Engine: eng, Store: st, Logger: log, Limits: limits})
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return ts, s, np.SecretKey
}

// slowRequest opens a connection and sends the headers of a POST that
// announces a body of size bytes, and the first bytes of it.
func slowRequest(t *testing.T, ts *httptest.Server, path, key string, size int) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	auth := ""
	if key != "" {
		auth = "Authorization: Bearer " + key + "\r\n"
	}
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{\"id\":", path, auth, size)
	return c
}

// trickle writes one byte to c every few milliseconds until a write fails
// or stop is closed.
func trickle(c net.Conn, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-time.After(5 * time.Millisecond):
		}
		if _, err := c.Write([]byte(" ")); err != nil {
			return
		}
	}
}

// answerThenClose reads what the server answers on c and reports its
// status (0 when it answered nothing), failing the test unless the server
// then closes the connection.
func answerThenClose(t *testing.T, c net.Conn) int {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(outcomeWait))
	br := bufio.NewReader(c)
	status := 0
	if res, err := http.ReadResponse(br, nil); err == nil {
		status = res.StatusCode
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("no answer within %v: the server still waits for the body", outcomeWait)
	}
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("the server sent more than one answer")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the connection is still open after %v", outcomeWait)
	}
	return status
}

// waitGoroutines waits until at most n goroutines run.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(outcomeWait)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTricklingBodiesAreCutOff: bodies that trickle in (on the webhook
// route, which reads before anything is authenticated, and on an
// authenticated route) fail once the body's timeout has passed, their
// connections close and the server's goroutines go back to where they
// were, however long the clients would keep trickling.
func TestTricklingBodiesAreCutOff(t *testing.T) {
	ts, _, key := limitsServer(t, Limits{BodyTimeout: 200 * time.Millisecond, MaxUnauthenticatedBodies: 100})
	ts.Client().Get(ts.URL + "/health") // the listener's goroutines are running
	ts.Client().CloseIdleConnections()
	baseline := runtime.NumGoroutine()

	stop := make(chan struct{})
	defer close(stop)
	var conns []net.Conn
	for i := range 40 {
		path, k := "/webhook/stripe", ""
		if i%4 == 0 {
			path, k = "/api/track", key
		}
		c := slowRequest(t, ts, path, k, 100_000)
		go trickle(c, stop)
		conns = append(conns, c)
	}
	for _, c := range conns {
		if status := answerThenClose(t, c); status != 0 && status != http.StatusBadRequest {
			t.Errorf("a cut-off body answered %d, want 400 or nothing", status)
		}
	}
	for _, c := range conns {
		c.Close()
	}
	waitGoroutines(t, baseline+5)
}

// TestUnreadBodiesAreNotWaitedFor: a request refused before its body is
// read (no key, no route, every webhook slot taken) is answered at once and
// its connection closed, although the rest of its body never comes and the
// body's timeout is far away.
func TestUnreadBodiesAreNotWaitedFor(t *testing.T) {
	ts, s, _ := limitsServer(t, Limits{BodyTimeout: forever, MaxUnauthenticatedBodies: 1})
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/api/track", http.StatusUnauthorized},
		{"/api/customers", http.StatusUnauthorized},
		{"/no/such/route", http.StatusNotFound},
	} {
		t.Run(tc.path, func(t *testing.T) {
			if got := answerThenClose(t, slowRequest(t, ts, tc.path, "", 1000)); got != tc.want {
				t.Errorf("status %d, want %d", got, tc.want)
			}
		})
	}
	t.Run("webhook slots taken", func(t *testing.T) {
		slowRequest(t, ts, "/webhook/stripe", "", 1000)
		waitReading(t, s, 1)
		if got := answerThenClose(t, slowRequest(t, ts, "/webhook/stripe", "", 1000)); got != http.StatusTooManyRequests {
			t.Errorf("status %d, want 429", got)
		}
	})
}

// waitReading waits until n unauthenticated bodies are being read.
func waitReading(t *testing.T, s *Server, n int64) {
	t.Helper()
	deadline := time.Now().Add(outcomeWait)
	for s.limits.reading.Load() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d unauthenticated bodies being read, want %d", s.limits.reading.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestUnauthenticatedBodiesAreCapped: while MaxUnauthenticatedBodies
// webhook bodies are arriving, one more webhook is 429 rate_limited with
// Retry-After; other routes are not affected; once the slow ones are gone
// webhooks are read again.
func TestUnauthenticatedBodiesAreCapped(t *testing.T) {
	ts, s, key := limitsServer(t, Limits{BodyTimeout: forever, MaxUnauthenticatedBodies: 2})
	slow := []net.Conn{
		slowRequest(t, ts, "/webhook/stripe", "", 1000),
		slowRequest(t, ts, "/webhook/stripe/plt_x", "", 1000),
	}
	waitReading(t, s, 2)

	post := func(path, key string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("POST", ts.URL+path, strings.NewReader(`{"id":"evt_1"}`))
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		res, err := (&http.Client{Timeout: outcomeWait}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		res.Header.Set("X-Body", string(body))
		return res
	}
	res := post("/webhook/stripe", "")
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") != "1" || !strings.Contains(res.Header.Get("X-Body"), `"code":"rate_limited"`) {
		t.Errorf("webhook while the slots are taken: %d (Retry-After %q) %s", res.StatusCode, res.Header.Get("Retry-After"), res.Header.Get("X-Body"))
	}
	// An authenticated body is not an unauthenticated one.
	if res := post("/api/customers", key); res.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("POST /api/customers while the webhook slots are taken: %d %s", res.StatusCode, res.Header.Get("X-Body"))
	}

	for _, c := range slow {
		c.Close()
	}
	waitReading(t, s, 0)
	// Read, then refused for its own reason (no Stripe secret here).
	if res := post("/webhook/stripe", ""); res.StatusCode != http.StatusNotFound {
		t.Errorf("webhook after the slow ones left: %d %s", res.StatusCode, res.Header.Get("X-Body"))
	}
}

// TestBodyDeadlineEndsWithTheBody: a handler that runs past the body's
// timeout after reading its body is not cut off: its context stays alive
// and its answer arrives (a read deadline that passed while net/http
// watches the connection would cancel the request's context).
func TestBodyDeadlineEndsWithTheBody(t *testing.T) {
	const timeout = 50 * time.Millisecond
	l := newLimiter(Limits{BodyTimeout: timeout})
	handlerErr := make(chan error, 1)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer l.guardBody(w, r).done()
		if _, err := io.ReadAll(r.Body); err != nil {
			handlerErr <- err
			return
		}
		// Well past the body's deadline (a sleep is never shorter).
		time.Sleep(4 * timeout)
		handlerErr <- r.Context().Err()
		io.WriteString(w, "done")
	}))
	defer ts.Close()
	res, err := ts.Client().Post(ts.URL, "application/json", strings.NewReader(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if err := <-handlerErr; err != nil || string(body) != "done" {
		t.Errorf("handler: %v, answer %q", err, body)
	}
}

func TestLimitsDefaults(t *testing.T) {
	l := newLimiter(Limits{})
	if l.bodyTimeout != DefaultBodyTimeout || cap(l.unauthenticated) != DefaultMaxUnauthenticatedBodies {
		t.Errorf("defaults: %v, %d", l.bodyTimeout, cap(l.unauthenticated))
	}
	l = newLimiter(Limits{BodyTimeout: -1, MaxUnauthenticatedBodies: -1})
	if l.unauthenticated != nil {
		t.Error("MaxUnauthenticatedBodies < 0 still bounds")
	}
	// A ResponseWriter without a connection (a recorder) bounds nothing.
	r := httptest.NewRequest("POST", "/", strings.NewReader("{}"))
	body := r.Body
	newLimiter(Limits{}).guardBody(httptest.NewRecorder(), r).done()
	if r.Body != body {
		t.Error("guardBody wrapped a body it cannot bound")
	}
}

// BenchmarkBodyDeadline is the cost of the body's deadline on a small POST
// over a loopback keep-alive connection, against none.
func BenchmarkBodyDeadline(b *testing.B) {
	for _, tc := range []struct {
		name    string
		timeout time.Duration
	}{{"off", -1}, {"on", DefaultBodyTimeout}} {
		b.Run(tc.name, func(b *testing.B) {
			l := newLimiter(Limits{BodyTimeout: tc.timeout})
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				defer l.guardBody(w, r).done()
				io.Copy(io.Discard, r.Body)
			}))
			defer ts.Close()
			c := ts.Client()
			b.ReportAllocs()
			for b.Loop() {
				res, err := c.Post(ts.URL, "application/json", strings.NewReader(`{"customerId":"cus_1","quantity":1}`))
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
		})
	}
}

// TestBodyCapOverTheWire: the 1 MiB cap holds whether a body declares its
// length or not (ServeHTTP wraps only bodies of unknown or too-large
// declared length; net/http stops a declared one at its length), and a
// declared length the body runs past is not read beyond.
func TestBodyCapOverTheWire(t *testing.T) {
	ts, _, sk := limitsServer(t, Limits{})
	huge := `{"customerId":"cus_x","metadata":{"x":"` + strings.Repeat("x", MaxBodyBytes) + `"}}`
	post := func(body io.Reader, length int64) (int, string) {
		t.Helper()
		r, err := http.NewRequest("POST", ts.URL+"/api/track", body)
		if err != nil {
			t.Fatal(err)
		}
		r.ContentLength = length
		r.Header.Set("Authorization", "Bearer "+sk)
		r.Header.Set("Content-Type", "application/json")
		res, err := ts.Client().Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var e struct{ Code string }
		json.NewDecoder(res.Body).Decode(&e)
		return res.StatusCode, e.Code
	}
	// io.MultiReader hides the length: the client sends it chunked.
	if status, code := post(io.MultiReader(strings.NewReader(huge)), -1); status != 413 || code != string(engine.EBODYTOOLARGE) {
		t.Errorf("chunked body over 1 MiB: %d %s, want 413 %s", status, code, engine.EBODYTOOLARGE)
	}
	if status, code := post(strings.NewReader(huge), int64(len(huge))); status != 413 || code != string(engine.EBODYTOOLARGE) {
		t.Errorf("declared body over 1 MiB: %d %s, want 413 %s", status, code, engine.EBODYTOOLARGE)
	}
	// A small chunked body is read to its end like a declared one.
	if status, code := post(io.MultiReader(strings.NewReader(`{"customerId":"cus_nobody"}`)), -1); status != 404 {
		t.Errorf("small chunked body: %d %s, want 404 (no such customer)", status, code)
	}

	// A declared length shorter than what follows: the handler reads the
	// declared bytes only (here a valid prefix, then junk the server
	// takes for the next request and answers 400).
	c, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body := `{"customerId":"cus_nobody"}`
	fmt.Fprintf(c, "POST /api/track HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s%s",
		sk, len(body), body, strings.Repeat("x", 4096))
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 404 {
		t.Errorf("declared %d bytes followed by more: %d, want 404 for the declared body", len(body), res.StatusCode)
	}
}
