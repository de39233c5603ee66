// Package billingtest runs Stripe's official mock server, stripe-mock, for
// tests: on a free loopback port, behind a small proxy that records every
// request, so that tests can assert on what was sent to Stripe (stripe-mock
// itself is stateless: it answers with fixtures and remembers nothing). The
// proxy also hands live-mode keys to stripe-mock as test-mode keys, which
// is all it accepts, so that live mode can be tested too.
//
// stripe-mock is looked up in PATH and in $(go env GOPATH)/bin. Without it,
// tests skip with a message, unless DREAM_REQUIRE_STRIPE_MOCK=1, when they
// fail. Install it with:
//
//	go install github.com/stripe/stripe-mock@v0.203.0
package billingtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Version is the stripe-mock the project tests against.
const Version = "v0.203.0"

// Request is one request made to Stripe, as the proxy saw it.
type Request struct {
	Method string
	Path   string
	// Form is the form body of a POST, or the query of a GET.
	Form url.Values
	// Key is the bearer key, Account the Stripe-Account header,
	// IdempotencyKey the Idempotency-Key header.
	Key, Account, IdempotencyKey string
	// Status is stripe-mock's answer, ID the id of the object it returned.
	Status int
	ID     string
}

// Mock is a running stripe-mock behind a recording proxy.
type Mock struct {
	// URL is the proxy's base URL: the STRIPE_API_BASE of a test.
	URL string

	mu       sync.Mutex
	reqs     []Request
	down     bool
	backend  string // stripe-mock's http://host:port
	cmd      *exec.Cmd
	exited   chan struct{}
	proxy    *httptest.Server
	upstream *http.Client
}

// Start runs stripe-mock for the test and stops it when the test ends. It
// skips the test when stripe-mock is not installed, or fails it when
// DREAM_REQUIRE_STRIPE_MOCK=1.
func Start(t testing.TB) *Mock {
	t.Helper()
	bin := Binary()
	if bin == "" {
		msg := "stripe-mock is not installed (looked in PATH and $(go env GOPATH)/bin); install it with `go install github.com/stripe/stripe-mock@" + Version + "`"
		if os.Getenv("DREAM_REQUIRE_STRIPE_MOCK") == "1" {
			t.Fatal(msg + " (DREAM_REQUIRE_STRIPE_MOCK=1)")
		}
		t.Skip(msg + "; set DREAM_REQUIRE_STRIPE_MOCK=1 to fail instead of skipping")
	}
	m := &Mock{upstream: &http.Client{Timeout: 30 * time.Second}, exited: make(chan struct{})}
	if err := m.run(bin); err != nil {
		t.Fatalf("start stripe-mock: %v", err)
	}
	m.proxy = httptest.NewServer(http.HandlerFunc(m.serve))
	m.URL = m.proxy.URL
	t.Cleanup(m.Close)
	return m
}

// Binary returns the path of stripe-mock, or "" when it is not installed.
func Binary() string {
	if p, err := exec.LookPath("stripe-mock"); err == nil {
		return p
	}
	var dirs []string
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, d := range filepath.SplitList(strings.TrimSpace(string(out))) {
			dirs = append(dirs, filepath.Join(d, "bin"))
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "stripe-mock")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// run starts stripe-mock on free loopback ports and waits until it listens.
func (m *Mock) run(bin string) error {
	cmd := exec.Command(bin, "-http-addr", "127.0.0.1:", "-https-addr", "127.0.0.1:")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return err
	}
	m.cmd = cmd
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		const marker = "Listening for HTTP at address: "
		for sc.Scan() {
			if i := strings.Index(sc.Text(), marker); i >= 0 {
				select {
				case addr <- strings.TrimSpace(sc.Text()[i+len(marker):]):
				default:
				}
			}
		}
		io.Copy(io.Discard, out)
	}()
	go func() { cmd.Wait(); close(m.exited) }()
	select {
	case a := <-addr:
		m.backend = "http://" + a
	case <-m.exited:
		return io.ErrUnexpectedEOF
	case <-time.After(30 * time.Second):
		m.kill()
		return context.DeadlineExceeded
	}
	// It listens once it says so; make sure it answers.
	for i := 0; i < 100; i++ {
		c, err := net.DialTimeout("tcp", strings.TrimPrefix(m.backend, "http://"), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	m.kill()
	return io.ErrUnexpectedEOF
}

func (m *Mock) kill() {
	if m.cmd != nil && m.cmd.Process != nil {
		m.cmd.Process.Kill()
		<-m.exited
	}
}

// Stop stops stripe-mock: from then on Stripe is down (the proxy drops every
// connection, as an unreachable Stripe would).
func (m *Mock) Stop() {
	m.mu.Lock()
	m.down = true
	m.mu.Unlock()
	m.kill()
}

// SetDown makes the proxy drop every connection (true) or forward again
// (false), with stripe-mock still running.
func (m *Mock) SetDown(down bool) {
	m.mu.Lock()
	m.down = down
	m.mu.Unlock()
}

// Close stops stripe-mock and the proxy. Safe to call more than once.
func (m *Mock) Close() {
	m.Stop()
	if m.proxy != nil {
		m.proxy.Close()
	}
}

// Requests returns every request made so far, in order.
func (m *Mock) Requests() []Request {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Request(nil), m.reqs...)
}

// Find returns the requests with method whose path is path, or starts with
// it when path ends in "/".
func (m *Mock) Find(method, path string) []Request {
	var out []Request
	for _, r := range m.Requests() {
		if r.Method != method {
			continue
		}
		if r.Path == path || (strings.HasSuffix(path, "/") && strings.HasPrefix(r.Path, path)) {
			out = append(out, r)
		}
	}
	return out
}

// Reset forgets the requests recorded so far.
func (m *Mock) Reset() {
	m.mu.Lock()
	m.reqs = nil
	m.mu.Unlock()
}

func (m *Mock) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec := Request{
		Method: r.Method, Path: r.URL.Path,
		Key:     strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "),
		Account: r.Header.Get("Stripe-Account"), IdempotencyKey: r.Header.Get("Idempotency-Key"),
	}
	if r.Method == http.MethodGet {
		rec.Form = r.URL.Query()
	} else {
		rec.Form, _ = url.ParseQuery(string(body))
	}
	m.mu.Lock()
	down := m.down
	m.mu.Unlock()
	if down {
		rec.Status = 0
		m.record(rec)
		// An unreachable Stripe: the connection ends without an answer.
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, m.backend+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out.Header = r.Header.Clone()
	// stripe-mock accepts test-mode keys only: live keys reach it as test
	// keys (the record keeps the key that was sent).
	if k := rec.Key; strings.HasPrefix(k, "sk_live_") || strings.HasPrefix(k, "rk_live_") {
		out.Header.Set("Authorization", "Bearer "+k[:3]+"test_"+k[8:])
	}
	res, err := m.upstream.Do(out)
	if err != nil {
		m.record(rec)
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
	defer res.Body.Close()
	resBody, _ := io.ReadAll(res.Body)
	rec.Status = res.StatusCode
	var obj struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(resBody, &obj) == nil {
		rec.ID = obj.ID
	}
	m.record(rec)
	for k, v := range res.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(res.StatusCode)
	w.Write(resBody)
}

func (m *Mock) record(r Request) {
	m.mu.Lock()
	m.reqs = append(m.reqs, r)
	m.mu.Unlock()
}
