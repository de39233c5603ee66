package engine

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// WebhookOptions tune outgoing webhooks. The zero value means the defaults.
type WebhookOptions struct {
	// AllowPrivate lets endpoints use http and private or loopback
	// addresses (DREAM_WEBHOOK_ALLOW_PRIVATE=1). Link-local addresses are
	// refused whatever it says. Defaults to false.
	AllowPrivate bool
	// Timeout bounds one attempt: a 2xx answer within it is a delivery.
	// Defaults to 10 s.
	Timeout time.Duration
	// GiveUpAfter is how long a delivery is retried, and how long an
	// endpoint may fail every attempt before it is disabled. Defaults to
	// 72 h.
	GiveUpAfter time.Duration
	// SecretGrace is how long a rotated secret keeps signing. Defaults to
	// 24 h.
	SecretGrace time.Duration
	// Backoff is the wait after the n-th failed attempt (n ≥ 1). Defaults
	// to WebhookBackoff.
	Backoff func(n int) time.Duration
	// Poll is how often the worker looks for pending deliveries nothing
	// woke it for. Defaults to 30 s.
	Poll time.Duration
	// UserAgent defaults to "dream-api-webhooks/1".
	UserAgent string
	// Retention is how long events and finished deliveries are kept (the
	// delivery log, manual retries). Defaults to 30 days.
	Retention time.Duration
}

func (o *WebhookOptions) ensureDefaults() {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.GiveUpAfter <= 0 {
		o.GiveUpAfter = 72 * time.Hour
	}
	if o.SecretGrace <= 0 {
		o.SecretGrace = 24 * time.Hour
	}
	if o.Backoff == nil {
		o.Backoff = WebhookBackoff
	}
	if o.Poll <= 0 {
		o.Poll = 30 * time.Second
	}
	if o.UserAgent == "" {
		o.UserAgent = "dream-api-webhooks/1"
	}
	if o.Retention <= 0 {
		o.Retention = 30 * 24 * time.Hour
	}
}

// WebhookBackoff is the default retry schedule: 10 s after the first failed
// attempt, then six times longer after each (1 min, 6 min, 36 min, 3.6 h),
// at most 12 h, each shortened by up to 20 % of jitter. With the 72 h
// GiveUpAfter that is about 11 attempts.
func WebhookBackoff(n int) time.Duration {
	d := 10 * time.Second
	for i := 1; i < n && d < 12*time.Hour; i++ {
		d *= 6
	}
	d = min(d, 12*time.Hour)
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}

// maxWebhookResponse is how much of a response body is read.
const maxWebhookResponse = 4 << 10

// hookWorker delivers webhooks: one goroutine per endpoint that has
// pending deliveries, so that a slow or failing endpoint delays only its
// own. The store is the queue; the worker keeps only a wake-up channel per
// endpoint (bounded by the number of endpoints).
type hookWorker struct {
	c      *core
	opts   WebhookOptions
	client *http.Client

	mu     sync.Mutex
	ctx    context.Context // nil while RunWebhooks is not running
	queues map[WebhookEndpointRef]chan struct{}
	wg     sync.WaitGroup
}

func newHookWorker(c *core, opts WebhookOptions) *hookWorker {
	opts.ensureDefaults()
	allow := opts.AllowPrivate
	dialer := &net.Dialer{
		Timeout: opts.Timeout,
		// The address dialed is the resolved one: a name that resolves (or
		// rebinds) to a refused address is refused here.
		Control: func(network, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			ip, err := netip.ParseAddr(host)
			if err != nil {
				return err
			}
			return checkWebhookAddr(ip, allow)
		},
	}
	transport := &http.Transport{
		Proxy:                 nil, // a proxy would dial for us, past the check
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   opts.Timeout,
		ResponseHeaderTimeout: opts.Timeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
	}
	return &hookWorker{
		c: c, opts: opts, queues: make(map[WebhookEndpointRef]chan struct{}),
		client: &http.Client{
			Transport: transport,
			// Redirects are not followed: a 3xx is a failed attempt.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// notify tells the worker an endpoint has a pending delivery. Never blocks;
// called by the store's Watch listener.
func (w *hookWorker) notify(ref WebhookEndpointRef) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ctx == nil {
		return // RunWebhooks finds it when it starts
	}
	if ch, ok := w.queues[ref]; ok {
		select {
		case ch <- struct{}{}:
		default:
		}
		return
	}
	ch := make(chan struct{}, 1)
	w.queues[ref] = ch
	w.wg.Add(1)
	go w.run(w.ctx, ref, ch)
}

// run delivers an endpoint's pending deliveries until it has none.
func (w *hookWorker) run(ctx context.Context, ref WebhookEndpointRef, ch chan struct{}) {
	defer w.wg.Done()
	defer func() {
		w.mu.Lock()
		if w.queues[ref] == ch {
			delete(w.queues, ref)
		}
		w.mu.Unlock()
	}()
	fails := 0
	for {
		next, more, err := w.c.deliverEndpoint(ctx, ref)
		if ctx.Err() != nil {
			return
		}
		var wait time.Duration
		switch {
		case err != nil:
			fails++
			wait = min(time.Duration(fails)*time.Second, time.Minute)
			w.c.log.Warn("webhook delivery pass failed; will retry", "platform", ref.PlatformID, "endpoint", ref.EndpointID, "err", err)
		case more:
			fails = 0
			continue
		case next.IsZero():
			w.mu.Lock()
			select {
			case <-ch:
				w.mu.Unlock()
				continue
			default:
			}
			delete(w.queues, ref)
			w.mu.Unlock()
			return
		default:
			fails = 0
			wait = max(next.Sub(w.c.now()), 10*time.Millisecond)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		case <-ch:
			timer.Stop()
		}
	}
}

// RunWebhooks delivers outgoing webhooks until ctx is done: at once when an
// event is queued, at each retry's time, and every Poll for anything missed
// (including what was pending at the last shutdown). Call it once per
// engine; it returns when its deliveries in flight have ended.
func (e *Engine) RunWebhooks(ctx context.Context) {
	c := e.c
	w := c.hooks
	w.mu.Lock()
	w.ctx = ctx
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.ctx = nil
		w.mu.Unlock()
		w.wg.Wait()
	}()
	t := time.NewTicker(w.opts.Poll)
	defer t.Stop()
	var expired time.Time
	for {
		refs, err := c.store.WebhookPendingEndpoints(ctx)
		if err != nil && ctx.Err() == nil {
			c.log.Warn("listing pending webhook deliveries failed", "err", err)
		}
		for _, ref := range refs {
			w.notify(ref)
		}
		if now := c.now(); now.Sub(expired) >= time.Hour {
			expired = now
			if n, err := c.store.ExpireWebhooks(ctx, now.Add(-w.opts.Retention)); err != nil && ctx.Err() == nil {
				c.log.Warn("expiring webhook events failed", "err", err)
			} else if n > 0 {
				c.log.Info("expired webhook events and deliveries", "count", n)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// DeliverWebhooks makes one pass over every endpoint with pending
// deliveries, delivering what is due, one endpoint after the other. It
// returns when the next retry is due (zero when none is pending). For tests
// and tools; RunWebhooks is the server's worker.
func (e *Engine) DeliverWebhooks(ctx context.Context) (next time.Time, err error) {
	c := e.c
	refs, err := c.store.WebhookPendingEndpoints(ctx)
	if err != nil {
		return next, err
	}
	for _, ref := range refs {
		for {
			n, more, err := c.deliverEndpoint(ctx, ref)
			if err != nil {
				return next, err
			}
			if !n.IsZero() && (next.IsZero() || n.Before(next)) {
				next = n
			}
			if !more {
				break
			}
		}
	}
	return next, nil
}

// deliverEndpoint attempts the due deliveries of one endpoint (a page of
// its queue), oldest event first. It returns when the earliest of the
// others is due (zero: none), and whether more of the queue follows.
func (c *core) deliverEndpoint(ctx context.Context, ref WebhookEndpointRef) (next time.Time, more bool, err error) {
	t := ref.Tenant
	const page = 100
	pending, err := c.store.WebhookPending(ctx, t, ref.EndpointID, page)
	if err != nil || len(pending) == 0 {
		return next, false, err
	}
	for _, d := range pending {
		if ctx.Err() != nil {
			return next, false, ctx.Err()
		}
		if d.NextRetryAt != nil && d.NextRetryAt.After(c.now()) {
			if next.IsZero() || d.NextRetryAt.Before(next) {
				next = *d.NextRetryAt
			}
			continue
		}
		retry, err := c.attempt(ctx, t, d)
		if err != nil {
			return next, false, err
		}
		if !retry.IsZero() && (next.IsZero() || retry.Before(next)) {
			next = retry
		}
	}
	return next, len(pending) == page, nil
}

// attempt makes one delivery attempt: it records the attempt (durably,
// which also makes durable every batch applied before, the event's cause
// included), sends, and records the outcome. It returns when the next
// attempt is due; zero when none is.
func (c *core) attempt(ctx context.Context, t Tenant, d *WebhookDelivery) (retry time.Time, err error) {
	opts := c.hooks.opts
	locks := []Lock{webhookLock(t, d.EndpointID)}
	type leased struct {
		d  *WebhookDelivery
		ep *WebhookEndpoint
	}
	res, err := c.store.Update(ctx, locks, func(tx Tx) (any, error) {
		cur, err := tx.WebhookDelivery(ctx, t, d.EndpointID, d.EventID)
		if ErrorCode(err) == ENOTFOUND {
			return nil, nil
		} else if err != nil {
			return nil, err
		}
		now := c.now().UTC()
		if cur.State != DeliveryPending || cur.NextRetryAt != nil && cur.NextRetryAt.After(now) {
			return nil, nil // changed since it was listed
		}
		ep, err := tx.WebhookEndpoint(ctx, t, d.EndpointID)
		switch {
		case ErrorCode(err) == ENOTFOUND:
			cur.State, cur.NextRetryAt, cur.Error = DeliveryFailed, nil, "the endpoint was deleted"
			tx.PutWebhookDelivery(t, cur)
			return nil, nil
		case err != nil:
			return nil, err
		case !ep.Enabled:
			cur.State, cur.NextRetryAt, cur.Error = DeliveryFailed, nil, "the endpoint is disabled"
			tx.PutWebhookDelivery(t, cur)
			return nil, nil
		}
		// Should the process die during the attempt, the retry is due as
		// after a failure.
		cur.Attempt++
		retry := now.Add(opts.Backoff(cur.Attempt))
		cur.AttemptedAt, cur.NextRetryAt = &now, &retry
		tx.PutWebhookDelivery(t, cur)
		return &leased{d: cur, ep: ep}, nil
	})
	if err != nil || res == nil {
		return retry, err
	}
	l := res.(*leased)
	status, latency, sendErr := c.send(ctx, t, l.ep, l.d)
	if ctx.Err() != nil {
		return retry, ctx.Err() // the recorded retry time stands
	}
	_, err = c.store.Update(ctx, locks, func(tx Tx) (any, error) {
		cur, err := tx.WebhookDelivery(ctx, t, d.EndpointID, d.EventID)
		if ErrorCode(err) == ENOTFOUND {
			return nil, nil
		} else if err != nil {
			return nil, err
		}
		now := c.now().UTC()
		cur.Status, cur.LatencyMs, cur.Error = status, latency.Milliseconds(), ""
		if sendErr == nil {
			cur.State, cur.NextRetryAt = DeliveryDelivered, nil
		} else {
			cur.Error = sendErr.Error()
			if now.Sub(cur.CreatedAt) >= opts.GiveUpAfter {
				cur.State, cur.NextRetryAt = DeliveryFailed, nil
			} else if cur.State == DeliveryPending && cur.Attempt == l.d.Attempt {
				next := now.Add(opts.Backoff(cur.Attempt))
				cur.NextRetryAt = &next
			}
		}
		if cur.State == DeliveryPending && cur.NextRetryAt != nil {
			retry = *cur.NextRetryAt
		}
		tx.PutWebhookDelivery(t, cur)

		ep, err := tx.WebhookEndpoint(ctx, t, d.EndpointID)
		if ErrorCode(err) == ENOTFOUND {
			return nil, nil
		} else if err != nil {
			return nil, err
		}
		switch {
		case sendErr == nil && !ep.FailingSince.IsZero():
			ep.FailingSince = time.Time{}
			tx.PutWebhookEndpoint(t, ep)
		case sendErr != nil && ep.FailingSince.IsZero():
			ep.FailingSince = now
			tx.PutWebhookEndpoint(t, ep)
		case sendErr != nil && ep.Enabled && now.Sub(ep.FailingSince) >= opts.GiveUpAfter:
			ep.Enabled = false
			ep.DisabledReason = fmt.Sprintf("every delivery failed since %s (last: %s); fix the endpoint and enable it again",
				ep.FailingSince.Format(time.RFC3339), cur.Error)
			tx.PutWebhookEndpoint(t, ep)
			c.log.Warn("webhook endpoint disabled after failing for too long", "platform", t.PlatformID,
				"mode", t.Mode.String(), "endpoint", ep.ID, "since", ep.FailingSince)
		}
		return nil, nil
	})
	return retry, err
}

// send posts an event to an endpoint once, signed with each of its valid
// secrets. It returns the HTTP status (0 without an answer), the latency,
// and nil only for a 2xx.
func (c *core) send(ctx context.Context, t Tenant, ep *WebhookEndpoint, d *WebhookDelivery) (int, time.Duration, error) {
	ev, err := c.store.WebhookEvent(ctx, t, d.EventID)
	if err != nil {
		return 0, 0, fmt.Errorf("reading the event: %w", err)
	}
	now := c.now()
	secrets := make([][]byte, 0, 2)
	s, err := c.sealer.Open(ep.Secret, webhookAAD(t, ep.ID))
	if err != nil {
		return 0, 0, errors.New("the signing secret cannot be opened (was the master key changed?); rotate the secret")
	}
	secrets = append(secrets, s)
	if len(ep.PrevSecret) > 0 && now.Before(ep.PrevSecretUntil) {
		if s, err := c.sealer.Open(ep.PrevSecret, webhookAAD(t, ep.ID)); err == nil {
			secrets = append(secrets, s)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, c.hooks.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(ev.Body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", c.hooks.opts.UserAgent)
	req.Header.Set("Dream-Event-Id", ev.ID)
	req.Header.Set("Dream-Signature", SignWebhook(now.Unix(), ev.Body, secrets...))
	start := time.Now() // latency is measured, not a clock of the domain
	resp, err := c.hooks.client.Do(req)
	if err != nil {
		return 0, time.Since(start), err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxWebhookResponse))
	resp.Body.Close()
	latency := time.Since(start)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, latency, fmt.Errorf("the endpoint answered %d", resp.StatusCode)
	}
	return resp.StatusCode, latency, nil
}

// SignWebhook returns the Dream-Signature header of body sent at unix time
// ts: `t=<ts>,v1=<hex HMAC-SHA256(secret, "<ts>.<body>")>`, one v1 per
// secret. The HMAC key is the secret string as shown (`whsec_…`).
func SignWebhook(ts int64, body []byte, secrets ...[]byte) string {
	tstr := strconv.FormatInt(ts, 10)
	out := "t=" + tstr
	for _, s := range secrets {
		mac := hmac.New(sha256.New, s)
		mac.Write([]byte(tstr))
		mac.Write([]byte{'.'})
		mac.Write(body)
		out += ",v1=" + hex.EncodeToString(mac.Sum(nil))
	}
	return out
}
