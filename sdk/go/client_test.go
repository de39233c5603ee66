package dream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// fake is a scripted server: it answers the n-th request with answers[n]
// (the last one again after that) and records every request.
type fake struct {
	mu      sync.Mutex
	reqs    []*http.Request
	bodies  []string
	answers []func(w http.ResponseWriter)
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	n := len(f.reqs)
	f.reqs = append(f.reqs, r)
	f.bodies = append(f.bodies, string(b))
	f.mu.Unlock()
	if n >= len(f.answers) {
		n = len(f.answers) - 1
	}
	f.answers[n](w)
}

// seen returns the requests and bodies so far.
func (f *fake) seen() ([]*http.Request, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*http.Request(nil), f.reqs...), append([]string(nil), f.bodies...)
}

func answer(status int, body string, hdr ...string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Set(hdr[i], hdr[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Request-Id", "req_fake")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// hangUp closes the connection without an answer.
func hangUp(w http.ResponseWriter) {
	c, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		c.Close()
	}
}

func errBody(code, msg string) string {
	return fmt.Sprintf(`{"error":"E","code":%q,"message":%q,"requestId":"req_fake"}`, code, msg)
}

const trackOK = `{"success":true,"allowed":true,"usage":{"feature":"requests","count":1,"limit":3,"remaining":2,"plan":"free","periodStart":"2026-01-01T00:00:00Z","periodEnd":"2026-02-01T00:00:00Z"},"plugin":null}`

// waits records the client's waits before retries.
type waits struct {
	backoffs []int           // n of each backoff(n) asked for
	slept    []time.Duration // every wait
}

// newTestClient is a client of f whose waits are recorded instead of
// slept: backoff(n) is n ms.
func newTestClient(t *testing.T, f *fake) (*Client, *waits) {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c := New(Options{SecretKey: "sk_test_x", BaseURL: srv.URL})
	w := &waits{}
	c.backoff = func(n int) time.Duration {
		w.backoffs = append(w.backoffs, n)
		return time.Duration(n) * time.Millisecond
	}
	c.sleep = func(ctx context.Context, d time.Duration) error {
		w.slept = append(w.slept, d)
		return ctx.Err()
	}
	return c, w
}

func TestRetriesReuseTheIdempotencyKey(t *testing.T) {
	tests := []struct {
		name    string
		answers []func(http.ResponseWriter)
		want    int // requests made
		wantErr string
	}{
		{"network error", []func(http.ResponseWriter){hangUp, answer(200, trackOK)}, 2, ""},
		{"5xx", []func(http.ResponseWriter){answer(500, errBody("internal", "x")), answer(503, errBody("unavailable", "x")), answer(200, trackOK)}, 3, ""},
		{"in progress", []func(http.ResponseWriter){answer(409, errBody("idempotency_in_progress", "x")), answer(200, trackOK)}, 2, ""},
		{"rate limited", []func(http.ResponseWriter){answer(429, errBody("rate_limited", "x"), "Retry-After", "0"), answer(200, trackOK)}, 2, ""},
		{"gives up after MaxRetries", []func(http.ResponseWriter){answer(500, errBody("internal", "x"))}, 3, "internal"},
		{"no retry on 422", []func(http.ResponseWriter){answer(422, errBody("validation_failed", "x"))}, 1, "validation_failed"},
		{"no retry on conflict", []func(http.ResponseWriter){answer(409, errBody("idempotency_conflict", "x"))}, 1, "idempotency_conflict"},
		{"no retry on tier limit", []func(http.ResponseWriter){answer(429, `{"error":"E","code":"tier_limit_reached","message":"m","requestId":"r","usage":{"feature":"requests","count":3,"limit":3,"remaining":0,"plan":"free","periodStart":"2026-01-01T00:00:00Z","periodEnd":"2026-02-01T00:00:00Z"},"plugin":null}`)}, 1, "tier_limit_reached"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fake{answers: tc.answers}
			c, _ := newTestClient(t, f)
			_, err := c.Track(t.Context(), "cus_1")
			if tc.wantErr == "" && err != nil {
				t.Fatalf("Track: %v", err)
			}
			if tc.wantErr != "" {
				var e *Error
				if !errors.As(err, &e) || e.Code != tc.wantErr {
					t.Fatalf("Track: %v, want code %s", err, tc.wantErr)
				}
			}
			reqs, bodies := f.seen()
			if len(reqs) != tc.want {
				t.Fatalf("%d requests, want %d", len(reqs), tc.want)
			}
			key := reqs[0].Header.Get("Idempotency-Key")
			if key == "" {
				t.Fatal("no Idempotency-Key on a POST")
			}
			for i, r := range reqs {
				if got := r.Header.Get("Idempotency-Key"); got != key {
					t.Errorf("request %d: Idempotency-Key %q, want %q", i, got, key)
				}
				if bodies[i] != `{"customerId":"cus_1"}` {
					t.Errorf("request %d: body %s", i, bodies[i])
				}
			}
		})
	}
}

func TestCallersIdempotencyKeyIsSent(t *testing.T) {
	f := &fake{answers: []func(http.ResponseWriter){answer(200, trackOK)}}
	c, _ := newTestClient(t, f)
	if _, err := c.TrackWith(t.Context(), TrackParams{CustomerID: "cus_1", Feature: "exports", Quantity: 2, IdempotencyKey: "mine"}); err != nil {
		t.Fatal(err)
	}
	if got := f.reqs[0].Header.Get("Idempotency-Key"); got != "mine" {
		t.Errorf("Idempotency-Key %q", got)
	}
	if got := f.bodies[0]; got != `{"customerId":"cus_1","feature":"exports","quantity":2}` {
		t.Errorf("body %s", got)
	}
	if got := f.reqs[0].Header.Get("Authorization"); got != "Bearer sk_test_x" {
		t.Errorf("Authorization %q", got)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	f := &fake{answers: []func(http.ResponseWriter){answer(429, errBody("rate_limited", "x"), "Retry-After", "1"), answer(200, trackOK)}}
	c, w := newTestClient(t, f)
	if _, err := c.Track(t.Context(), "cus_1"); err != nil {
		t.Fatal(err)
	}
	// Retry-After replaces the backoff.
	if len(w.slept) != 1 || w.slept[0] != time.Second {
		t.Errorf("waited %v before the retry, want Retry-After's [1s]", w.slept)
	}

	// Without Retry-After: exponential backoff, retry n waiting backoff(n).
	f = &fake{answers: []func(http.ResponseWriter){
		func(w http.ResponseWriter) { w.WriteHeader(502) }, func(w http.ResponseWriter) { w.WriteHeader(502) }, answer(200, trackOK),
	}}
	c, w = newTestClient(t, f)
	if _, err := c.Track(t.Context(), "cus_1"); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(w.slept) != "[1ms 2ms]" {
		t.Errorf("waited %v, want backoff(1), backoff(2)", w.slept)
	}

	// A Retry-After past MaxRetryWait ends the call with the error.
	f = &fake{answers: []func(http.ResponseWriter){answer(429, errBody("rate_limited", "x"), "Retry-After", "3600")}}
	c, _ = newTestClient(t, f)
	_, err := c.Track(t.Context(), "cus_1")
	var e *Error
	if !errors.As(err, &e) || e.Code != "rate_limited" || e.RetryAfter != time.Hour || len(f.reqs) != 1 {
		t.Fatalf("Track: %v (%d requests), want rate_limited at once", err, len(f.reqs))
	}
}

func TestContextEndsTheWait(t *testing.T) {
	f := &fake{answers: []func(http.ResponseWriter){answer(503, errBody("unavailable", "x"), "Retry-After", "30")}}
	c, _ := newTestClient(t, f)
	c.sleep = sleep // the real wait, which the context ends
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := c.Track(ctx, "cus_1")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Track: %v, want the context's error", err)
	}
}

func TestDeleteIsNotRetriedOnNetworkErrors(t *testing.T) {
	f := &fake{answers: []func(http.ResponseWriter){hangUp, answer(200, `{"deleted":true,"id":"cus_1"}`)}}
	c, _ := newTestClient(t, f)
	if err := c.Customers.Delete(t.Context(), "cus_1"); err == nil {
		t.Fatal("Delete succeeded through a dropped connection")
	}
	if reqs, _ := f.seen(); len(reqs) != 1 {
		t.Errorf("%d requests", len(reqs))
	}
}

func TestErrorShapes(t *testing.T) {
	tl := `{"error":"Tier limit reached","code":"tier_limit_reached","message":"Please upgrade","requestId":"req_9","usage":{"feature":"requests","count":3,"limit":3,"remaining":0,"plan":"free","periodStart":"2026-01-01T00:00:00Z","periodEnd":"2026-02-01T00:00:00Z"},"plugin":null}`
	f := &fake{answers: []func(http.ResponseWriter){answer(429, tl)}}
	c, _ := newTestClient(t, f)
	_, err := c.Track(t.Context(), "cus_1")

	var p *TierLimitError
	if !errors.As(err, &p) || p.Usage.Limit != 3 || p.Usage.Remaining != 0 || p.RequestID != "req_9" || p.Status != 429 {
		t.Fatalf("errors.As(*TierLimitError): %#v", p)
	}
	var v TierLimitError
	if !errors.As(err, &v) || v.Usage.Count != 3 {
		t.Fatalf("errors.As(TierLimitError value): %#v", v)
	}
	if !errors.As(err, &TierLimitError{}) {
		t.Fatal("errors.As(err, &dream.TierLimitError{}) is false")
	}
	var e *Error
	if !errors.As(err, &e) || e.Code != "tier_limit_reached" || e.Message != "Please upgrade" {
		t.Fatalf("errors.As(*Error): %#v", e)
	}
	if !strings.Contains(err.Error(), "tier_limit_reached") || !strings.Contains(err.Error(), "req_9") {
		t.Errorf("Error() = %q", err)
	}

	// A validation error lists its fields; a non-JSON answer still is an *Error.
	f = &fake{answers: []func(http.ResponseWriter){
		answer(422, `{"error":"E","code":"validation_failed","message":"m","requestId":"req_1","fields":[{"field":"quantiy","message":"unknown field"}]}`),
	}}
	c, _ = newTestClient(t, f)
	_, err = c.Usage(t.Context(), "cus_1")
	if !errors.As(err, &e) || e.Status != 422 || len(e.Fields) != 1 || e.Fields[0].Field != "quantiy" {
		t.Fatalf("422: %#v", e)
	}
	if errors.As(err, &p) {
		t.Error("a validation error is a TierLimitError")
	}
	f = &fake{answers: []func(http.ResponseWriter){func(w http.ResponseWriter) {
		w.Header().Set("X-Request-Id", "req_2")
		w.WriteHeader(404)
		io.WriteString(w, "<html>nope</html>")
	}}}
	c, _ = newTestClient(t, f)
	_, err = c.Customers.Get(t.Context(), "cus_1")
	if !errors.As(err, &e) || e.Status != 404 || e.Code != "http_404" || e.RequestID != "req_2" {
		t.Fatalf("HTML 404: %#v", e)
	}
}

func TestListFollowsPages(t *testing.T) {
	var mu sync.Mutex
	var starts []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		after := r.URL.Query().Get("startingAfter")
		mu.Lock()
		starts = append(starts, after)
		mu.Unlock()
		page := map[string]any{"hasMore": after != "cus_4", "data": []map[string]any{}}
		first := map[string]int{"": 1, "cus_2": 3, "cus_4": 5}[after]
		for i := first; i < first+2 && i <= 5; i++ {
			page["data"] = append(page["data"].([]map[string]any), map[string]any{"id": fmt.Sprintf("cus_%d", i)})
		}
		json.NewEncoder(w).Encode(page)
	}))
	defer srv.Close()
	c := New(Options{SecretKey: "sk", BaseURL: srv.URL})
	var ids []string
	for cu, err := range c.Customers.List(t.Context(), ListParams{Limit: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, cu.ID)
	}
	if got := strings.Join(ids, ","); got != "cus_1,cus_2,cus_3,cus_4,cus_5" {
		t.Errorf("ids %s", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(starts, ","); got != ",cus_2,cus_4" {
		t.Errorf("startingAfter %s", got)
	}
}

func TestDefaultsFromEnvironment(t *testing.T) {
	t.Setenv("DREAM_SECRET_KEY", "sk_test_env")
	t.Setenv("DREAM_API_URL", "http://example.test:1/")
	c := New(Options{})
	if c.key != "sk_test_env" || c.base != "http://example.test:1" || c.maxRetries != 2 || c.timeout != 30*time.Second {
		t.Errorf("defaults: key %q base %q retries %d timeout %v", c.key, c.base, c.maxRetries, c.timeout)
	}
	t.Setenv("DREAM_API_URL", "")
	if c := New(Options{MaxRetries: -1}); c.base != DefaultBaseURL || c.maxRetries != 0 {
		t.Errorf("base %q retries %d", c.base, c.maxRetries)
	}
}

func TestBackoffGrowsWithJitter(t *testing.T) {
	for n, max := range map[int]time.Duration{1: 500 * time.Millisecond, 2: time.Second, 3: 2 * time.Second, 10: 8 * time.Second} {
		for i := 0; i < 50; i++ {
			if d := backoff(n); d < max/2 || d > max {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", n, d, max/2, max)
			}
		}
	}
}

// TestNoDependencies: the module requires nothing, so that users of the
// client pull in nothing of the server (no Pebble, no wazero).
func TestNoDependencies(t *testing.T) {
	b, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "require") {
		t.Errorf("sdk/go/go.mod requires modules:\n%s", b)
	}
}
