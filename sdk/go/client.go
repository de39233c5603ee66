// Package dream is the Go client of dream-api: customers, usage tracking
// with enforced limits, tiers, Stripe checkout and portal, keys, WASM limit
// policies and stats, for a platform's secret key.
//
// It imports only the standard library, so a backend that uses it pulls in
// nothing of the server (no Pebble, no wazero).
//
//	client := dream.New(dream.Options{}) // DREAM_SECRET_KEY, DREAM_API_URL
//	customer, err := client.Customers.Create(ctx, dream.CustomerParams{Email: email, Plan: "free"})
//	_, err = client.Track(ctx, customer.ID) // enforces limits: *dream.TierLimitError at the limit
//	checkout, err := client.Checkout(ctx, customer.ID, "pro", nil)
//
// Every POST carries an Idempotency-Key (generated, or the caller's), and
// every retry of a request (network errors, 5xx, 409
// idempotency_in_progress, 429 rate_limited) sends the same key, so a
// retried call is never counted twice.
//
// A Client is safe for concurrent use by multiple goroutines.
package dream

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Version is the client's version, sent in its User-Agent.
const Version = "0.1.0"

// DefaultBaseURL is the server the client talks to when neither
// Options.BaseURL nor DREAM_API_URL says otherwise.
const DefaultBaseURL = "http://127.0.0.1:8787"

// Options configure a Client. The zero value is valid: every field has a
// default.
type Options struct {
	// SecretKey is the platform's secret key (sk_live_… or sk_test_…).
	// Defaults to the environment variable DREAM_SECRET_KEY.
	SecretKey string
	// BaseURL is the server's URL. Defaults to DREAM_API_URL, then
	// http://127.0.0.1:8787.
	BaseURL string
	// HTTPClient sends the requests. Defaults to a new http.Client (its
	// transport is http.DefaultTransport).
	HTTPClient *http.Client
	// MaxRetries is how often a failed request is retried. 0 means the
	// default, 2; a negative value means never.
	MaxRetries int
	// Timeout bounds each attempt. Defaults to 30 s; a negative value means
	// no bound other than the context's.
	Timeout time.Duration
	// MaxRetryWait is the longest Retry-After the client waits for before a
	// retry; a longer one ends the call with the 429 error. Defaults to 60 s.
	MaxRetryWait time.Duration
}

// Client calls one dream-api server with one secret key.
type Client struct {
	// Customers creates, reads, updates, lists and deletes customers.
	Customers *CustomersService
	// Tiers reads and replaces the tier config.
	Tiers *TiersService
	// Keys lists, creates, rotates and revokes key pairs.
	Keys *KeysService
	// Plugin manages the platform's WASM limit policy.
	Plugin *PluginService
	// Webhooks manages the outgoing webhook endpoints.
	Webhooks *WebhooksService

	key        string
	base       string
	hc         *http.Client
	maxRetries int
	timeout    time.Duration
	maxWait    time.Duration
	// backoff is the wait before retry n (1-based) without Retry-After,
	// and sleep waits; tests replace them.
	backoff func(n int) time.Duration
	sleep   func(ctx context.Context, d time.Duration) error
}

// New returns a Client with opts' defaults filled in.
func New(opts Options) *Client {
	if opts.SecretKey == "" {
		opts.SecretKey = os.Getenv("DREAM_SECRET_KEY")
	}
	if opts.BaseURL == "" {
		opts.BaseURL = os.Getenv("DREAM_API_URL")
	}
	if opts.BaseURL == "" {
		opts.BaseURL = DefaultBaseURL
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{}
	}
	switch {
	case opts.MaxRetries == 0:
		opts.MaxRetries = 2
	case opts.MaxRetries < 0:
		opts.MaxRetries = 0
	}
	if opts.Timeout == 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.MaxRetryWait == 0 {
		opts.MaxRetryWait = 60 * time.Second
	}
	c := &Client{
		key: strings.TrimSpace(opts.SecretKey), base: strings.TrimRight(opts.BaseURL, "/"), hc: opts.HTTPClient,
		maxRetries: opts.MaxRetries, timeout: opts.Timeout, maxWait: opts.MaxRetryWait, backoff: backoff, sleep: sleep,
	}
	c.Customers = &CustomersService{c}
	c.Tiers = &TiersService{c}
	c.Keys = &KeysService{c}
	c.Plugin = &PluginService{c}
	c.Webhooks = &WebhooksService{c}
	return c
}

// backoff is exponential with full jitter: a random wait in [d/2, d] with
// d = 500 ms · 2^(n-1), at most 8 s.
func backoff(n int) time.Duration {
	d := time.Duration(float64(500*time.Millisecond) * math.Pow(2, float64(n-1)))
	if d > 8*time.Second {
		d = 8 * time.Second
	}
	return d/2 + time.Duration(mrand.Int64N(int64(d/2)+1))
}

// sleep waits d, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// NewIdempotencyKey returns a fresh random Idempotency-Key.
func NewIdempotencyKey() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "idk_" + hex.EncodeToString(b)
}

// request is one API call.
type request struct {
	method string
	path   string
	query  url.Values
	// body is JSON-encoded unless raw is set.
	body        any
	raw         []byte
	contentType string
	// idem is the Idempotency-Key; every POST gets one.
	idem string
	// auth overrides the secret key (the admin token of a test, a JWT).
	auth string
}

// retryable reports whether a method may be sent again after a network
// error or a 5xx: POST and PUT carry an Idempotency-Key, the others are
// idempotent reads and merges. DELETE is retried only on rate_limited (a
// second delete of a deleted object would be a confusing 404).
func (r *request) retryable() bool {
	return r.method != http.MethodDelete
}

// do sends r, retrying as the package doc says, and decodes a 2xx answer
// into out (when not nil). Any other answer is an *Error (or
// *TierLimitError).
func (c *Client) do(ctx context.Context, r *request, out any) error {
	if r.method == http.MethodPost && r.idem == "" {
		r.idem = NewIdempotencyKey()
	}
	var body []byte
	switch {
	case r.raw != nil:
		body = r.raw
	case r.body != nil:
		b, err := json.Marshal(r.body)
		if err != nil {
			return fmt.Errorf("dream: encode request: %w", err)
		}
		body = b
		if r.contentType == "" {
			r.contentType = "application/json"
		}
	}
	u := c.base + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	for attempt := 0; ; attempt++ {
		status, hdr, rb, err := c.send(ctx, r, u, body)
		if err == nil && status >= 200 && status < 300 {
			if out == nil || len(rb) == 0 {
				return nil
			}
			if err := json.Unmarshal(rb, out); err != nil {
				return fmt.Errorf("dream: %s %s: decode answer: %w", r.method, r.path, err)
			}
			return nil
		}
		var apiErr error
		if err == nil {
			apiErr = parseError(status, hdr, rb)
		}
		wait, again := c.retry(ctx, r, attempt, status, hdr, apiErr, err)
		if !again {
			if err != nil {
				return fmt.Errorf("dream: %s %s: %w", r.method, r.path, err)
			}
			return apiErr
		}
		if serr := c.sleep(ctx, wait); serr != nil {
			if err == nil {
				err = apiErr
			}
			return fmt.Errorf("dream: %s %s: %w (while waiting to retry: %w)", r.method, r.path, err, serr)
		}
	}
}

// retry decides whether attempt (0-based) is followed by another, and
// after how long.
func (c *Client) retry(ctx context.Context, r *request, attempt, status int, hdr http.Header, apiErr, netErr error) (time.Duration, bool) {
	if attempt >= c.maxRetries || ctx.Err() != nil {
		return 0, false
	}
	wait := c.backoff(attempt + 1)
	if netErr != nil {
		return wait, r.retryable()
	}
	code := ""
	var e *Error
	if errors.As(apiErr, &e) {
		code = e.Code
	}
	switch {
	case status == http.StatusTooManyRequests && code == "rate_limited",
		status == http.StatusConflict && code == "idempotency_in_progress":
		if ra := retryAfter(hdr); ra >= 0 {
			if ra > c.maxWait {
				return 0, false
			}
			wait = ra
		}
		return wait, true
	case status >= 500:
		if ra := retryAfter(hdr); ra >= 0 && ra <= c.maxWait {
			wait = ra
		}
		return wait, r.retryable()
	}
	return 0, false
}

// retryAfter is the Retry-After header in seconds (or as an HTTP date);
// -1 without one.
func retryAfter(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return -1
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
		return 0
	}
	return -1
}

// send makes one attempt.
func (c *Client) send(ctx context.Context, r *request, u string, body []byte) (int, http.Header, []byte, error) {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	key := c.key
	if r.auth != "" {
		key = r.auth
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	if r.idem != "" {
		req.Header.Set("Idempotency-Key", r.idem)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "dream-api-go/"+Version)
	res, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer res.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(res.Body, 32<<20))
	if err != nil {
		return 0, nil, nil, err
	}
	return res.StatusCode, res.Header, rb, nil
}
