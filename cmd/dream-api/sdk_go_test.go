package main

// The Go SDK (sdk/go) against the real program: the seed's three lines
// with Stripe on stripe-mock, the limit error, a retried POST counted once,
// pagination and every error shape.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	dream "github.com/dream-api/dream-api/sdk/go"
)

// sdkClient is a Go SDK client of ts with key.
func sdkClient(ts *testServer, key string) *dream.Client {
	return dream.New(dream.Options{SecretKey: key, BaseURL: ts.URL})
}

func TestSDKGoSeedLines(t *testing.T) {
	ts, mock := stripeServer(t, nil)
	p := ts.createPlatform(t, "Seed Go")
	ts.stripeConnectByKey(t, p)
	dream := sdkClient(ts, p.TestSK)
	ctx := t.Context()
	email := "seed-go@example.com"

	// The seed's three lines, in Go.
	customer, err := dream.Customers.Create(ctx, sdkCustomerParams{Email: email, Plan: "free"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dream.Track(ctx, customer.ID); err != nil { // Enforces limits
		t.Fatal(err)
	}
	checkout, err := dream.Checkout(ctx, customer.ID, "pro", nil) // Their Stripe
	if err != nil {
		t.Fatal(err)
	}

	if !strings.HasPrefix(customer.ID, "cus_") || customer.Plan != "free" || customer.Email != email {
		t.Errorf("customer %+v", customer)
	}
	if !strings.HasPrefix(checkout.URL, "https://") || !strings.HasPrefix(checkout.SessionID, "cs_") {
		t.Errorf("checkout %+v", checkout)
	}
	if rs := mock.Find("POST", "/v1/checkout/sessions"); len(rs) != 1 || rs[0].IdempotencyKey == "" {
		t.Errorf("Stripe saw %d checkout sessions (%+v), want 1 with an Idempotency-Key", len(rs), rs)
	}
	if got := ts.count(t, p.TestSK, customer.ID, "requests"); got != 1 {
		t.Errorf("count after one Track = %d", got)
	}
	portal, err := dream.Portal(ctx, customer.ID, &sdkPortalOptions{ReturnURL: "https://app.example.com/account"})
	if err != nil || !strings.HasPrefix(portal.URL, "https://") {
		t.Errorf("Portal: %+v %v", portal, err)
	}
	c, err := dream.Customers.Get(ctx, customer.ID)
	if err != nil || !strings.HasPrefix(c.StripeCustomerID, "cus_") || len(c.Usage) != 1 || c.Usage[0].Count != 1 {
		t.Errorf("Get after checkout: %+v %v", c, err)
	}
}

// The seed names its client `dream`, which shadows the package in
// TestSDKGoSeedLines: these name the package's types there.
type (
	sdkCustomerParams = dream.CustomerParams
	sdkPortalOptions  = dream.PortalOptions
)

func TestSDKGoLimitsAndSurface(t *testing.T) {
	ts := startServer(t, nil)
	p := ts.createPlatform(t, "Limits Go")
	c := sdkClient(ts, p.SK)
	ctx := t.Context()

	tiers, err := c.Tiers.Replace(ctx, []dream.TierInput{
		{Name: "free", Limit: dream.Int64(3)},
		{Name: "pro", Price: 1500, Limits: map[string]int64{"requests": 1000, "exports": -1}, Features: map[string]bool{"sso": true}},
	})
	if err != nil || len(tiers) != 2 || tiers[0].Limits["requests"] != 3 || tiers[1].Price != 1500 || tiers[1].PriceID != "" {
		t.Fatalf("Tiers.Replace: %+v %v", tiers, err)
	}
	if got, err := c.Tiers.List(ctx); err != nil || len(got) != 2 || got[1].Name != "pro" || !got[1].Features["sso"] {
		t.Fatalf("Tiers.List: %+v %v", got, err)
	}
	cu, err := c.Customers.Create(ctx, dream.CustomerParams{Email: "limit@example.com", FirstName: "Li", Metadata: map[string]any{"team": "core"}})
	if err != nil || cu.Plan != "free" || cu.Metadata["team"] != "core" {
		t.Fatalf("Create: %+v %v", cu, err)
	}
	for i := 1; i <= 3; i++ {
		r, err := c.Track(ctx, cu.ID)
		if err != nil || !r.Allowed || r.Usage.Count != int64(i) || r.Usage.Limit != 3 || r.Usage.Plan != "free" {
			t.Fatalf("Track %d: %+v %v", i, r, err)
		}
	}
	_, err = c.Track(ctx, cu.ID)
	var tl *dream.TierLimitError
	if !errors.As(err, &tl) || tl.Status != 429 || tl.Code != "tier_limit_reached" || tl.Usage.Count != 3 ||
		tl.Usage.Remaining != 0 || !strings.HasPrefix(tl.RequestID, "req_") {
		t.Fatalf("Track at the limit: %v (%+v)", err, tl)
	}
	if !errors.As(err, &dream.TierLimitError{}) {
		t.Error("errors.As(err, &dream.TierLimitError{}) is false")
	}
	chk, err := c.Check(ctx, cu.ID)
	if err != nil || chk.Allowed || chk.Usage.Remaining != 0 {
		t.Fatalf("Check at the limit: %+v %v (want allowed false, no error)", chk, err)
	}
	u, err := c.Usage(ctx, cu.ID)
	if err != nil || u.CustomerID != cu.ID || u.Plan != "free" || len(u.Usage) != 1 || u.Usage[0].Count != 3 {
		t.Fatalf("Usage: %+v %v", u, err)
	}

	// Upgrading lifts the limit; other features and quantities.
	up, err := c.Customers.Update(ctx, cu.ID, dream.CustomerUpdate{Plan: dream.String("pro"), Metadata: map[string]any{"team": nil, "seats": 5}})
	if err != nil || up.Plan != "pro" || up.Metadata["team"] != nil || up.Metadata["seats"] != float64(5) || up.FirstName != "Li" {
		t.Fatalf("Update: %+v %v", up, err)
	}
	r, err := c.TrackWith(ctx, dream.TrackParams{CustomerID: cu.ID, Feature: "exports", Quantity: 7, Metadata: map[string]any{"job": "x"}})
	if err != nil || r.Usage.Feature != "exports" || r.Usage.Count != 7 || r.Usage.Limit != -1 {
		t.Fatalf("TrackWith exports: %+v %v", r, err)
	}

	// Keys: create, rotate, list, revoke.
	kc, err := c.Keys.Create(ctx, nil)
	if err != nil || !strings.HasPrefix(kc.SecretKey, "sk_live_") || !strings.HasPrefix(kc.Key.ID, "key_") {
		t.Fatalf("Keys.Create: %+v %v", kc, err)
	}
	rot, err := c.Keys.Rotate(ctx, kc.Key.ID, 1)
	if err != nil || rot.PublishableKey != kc.PublishableKey || rot.SecretKey == kc.SecretKey {
		t.Fatalf("Keys.Rotate: %+v %v", rot, err)
	}
	keys, err := c.Keys.List(ctx)
	if err != nil || len(keys) < 3 {
		t.Fatalf("Keys.List: %d keys, %v", len(keys), err)
	}
	for _, k := range keys {
		if k.ID == kc.Key.ID && k.ExpiresAt == nil {
			t.Errorf("rotated key %s has no expiresAt", k.ID)
		}
	}
	if rk, err := c.Keys.Revoke(ctx, rot.Key.ID); err != nil || rk.RevokedAt == nil {
		t.Fatalf("Keys.Revoke: %+v %v", rk, err)
	}
	if _, err := sdkClient(ts, rot.SecretKey).Usage(ctx, cu.ID); !isCode(err, 401, "invalid_api_key") {
		t.Errorf("revoked key: %v", err)
	}

	st, err := c.Stats(ctx)
	if err != nil || st.Mode != "live" || st.Customers != 1 || st.CustomersPerPlan["pro"] != 1 {
		t.Fatalf("Stats: %+v %v", st, err)
	}

	// Plugin through the SDK.
	wasm := wasmFile(t, "allow_all.wasm")
	ps, err := c.Plugin.Upload(ctx, wasm, &dream.PluginUploadOptions{OnError: "deny"})
	if err != nil || !ps.Active || ps.OnError != "deny" || ps.Size != int64(len(wasm)) {
		t.Fatalf("Plugin.Upload: %+v %v", ps, err)
	}
	dr, err := c.Plugin.DryRun(ctx, dream.DryRunParams{Plan: "free", Usage: dream.Int64(99), Limit: dream.Int64(3), Quantity: dream.Int64(1)})
	if err != nil || !dr.Allowed {
		t.Fatalf("Plugin.DryRun: %+v %v", dr, err)
	}
	if ov, err := c.Plugin.Get(ctx); err != nil || ov.Active == nil || ov.Active.Version != ps.Version || len(ov.History) != 1 {
		t.Fatalf("Plugin.Get: %+v %v", ov, err)
	}
	if _, err := c.Plugin.Rollback(ctx, "plg_missing"); !isCode(err, 404, "not_found") {
		t.Errorf("Plugin.Rollback of an unknown version: %v", err)
	}
	if err := c.Plugin.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if ov, err := c.Plugin.Get(ctx); err != nil || ov.Active != nil {
		t.Fatalf("Plugin.Get after Remove: %+v %v", ov, err)
	}

	if err := c.Customers.Delete(ctx, cu.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Customers.Get(ctx, cu.ID); !isCode(err, 404, "not_found") {
		t.Errorf("Get after Delete: %v", err)
	}
}

// isCode reports whether err is an *dream.Error of status and code, with a
// request id.
func isCode(err error, status int, code string) bool {
	var e *dream.Error
	return errors.As(err, &e) && e.Status == status && e.Code == code && strings.HasPrefix(e.RequestID, "req_") && e.Message != ""
}

// dropFirst is a proxy in front of the server that forwards every request
// and, for the first POST to path, throws the server's answer away and
// hangs up: the server did the work, the client saw a network error.
type dropFirst struct {
	target, path string
	mu           sync.Mutex
	dropped      bool
	keys         []string // Idempotency-Key of each POST to path
}

func (d *dropFirst) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	out, _ := http.NewRequestWithContext(r.Context(), r.Method, d.target+r.URL.RequestURI(), bytes.NewReader(body))
	out.Header = r.Header.Clone()
	res, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), 502)
		return
	}
	defer res.Body.Close()
	rb, _ := io.ReadAll(res.Body)
	d.mu.Lock()
	drop := false
	if r.Method == "POST" && r.URL.Path == d.path {
		d.keys = append(d.keys, r.Header.Get("Idempotency-Key"))
		drop, d.dropped = !d.dropped, true
	}
	d.mu.Unlock()
	if drop {
		if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
			c.Close()
		}
		return
	}
	for k, v := range res.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(res.StatusCode)
	w.Write(rb)
}

func (d *dropFirst) seen() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.keys...)
}

func TestSDKGoRetriedPostCountsOnce(t *testing.T) {
	ts := startServer(t, nil)
	p := ts.createPlatform(t, "Retry Go")
	ctx := t.Context()

	for _, path := range []string{"/api/customers", "/api/track"} {
		t.Run(path, func(t *testing.T) {
			d := &dropFirst{target: ts.URL, path: path}
			proxy := httptest.NewServer(d)
			defer proxy.Close()
			c := dream.New(dream.Options{SecretKey: p.SK, BaseURL: proxy.URL})
			email := "retry" + strings.ReplaceAll(path, "/", "-") + "@example.com"
			var id string
			if path == "/api/customers" {
				cu, err := c.Customers.Create(ctx, dream.CustomerParams{Email: email})
				if err != nil {
					t.Fatalf("Create through a dropped answer: %v (a retry must replay, not 409)", err)
				}
				id = cu.ID
				list, err := c.Customers.ListPage(ctx, dream.ListParams{Email: email})
				if err != nil || len(list.Data) != 1 || list.Data[0].ID != id {
					t.Fatalf("customers with %s: %+v %v, want exactly the one", email, list, err)
				}
			} else {
				id = str(ts.createCustomer(t, p.SK, map[string]any{"email": email}), "id")
				r, err := c.Track(ctx, id)
				if err != nil || r.Usage.Count != 1 {
					t.Fatalf("Track through a dropped answer: %+v %v", r, err)
				}
				if got := ts.count(t, p.SK, id, "requests"); got != 1 {
					t.Fatalf("count = %d after one retried Track, want 1", got)
				}
			}
			keys := d.seen()
			if len(keys) != 2 || keys[0] == "" || keys[0] != keys[1] {
				t.Fatalf("POSTs to %s with Idempotency-Keys %q: want two with the same key", path, keys)
			}
		})
	}
}

func TestSDKGoPagination(t *testing.T) {
	ts := startServer(t, nil)
	p := ts.createPlatform(t, "Pages Go")
	c := sdkClient(ts, p.SK)
	ctx := t.Context()

	const n = 250
	created := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				cu, err := c.Customers.Create(ctx, dream.CustomerParams{Email: fmt.Sprintf("page%03d@example.com", i)})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				created[cu.ID] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, limit := range []int{0, 7, 100} {
		seen := map[string]bool{}
		for cu, err := range c.Customers.List(ctx, dream.ListParams{Limit: limit}) {
			if err != nil {
				t.Fatalf("List(limit %d): %v", limit, err)
			}
			if seen[cu.ID] || !created[cu.ID] {
				t.Fatalf("List(limit %d): %s twice or never created", limit, cu.ID)
			}
			seen[cu.ID] = true
		}
		if len(seen) != n {
			t.Errorf("List(limit %d) gave %d customers, want %d", limit, len(seen), n)
		}
	}
	// Breaking out of the loop stops fetching; a page at a time works too.
	k := 0
	for range c.Customers.List(ctx, dream.ListParams{Limit: 10}) {
		if k++; k == 15 {
			break
		}
	}
	page, err := c.Customers.ListPage(ctx, dream.ListParams{Limit: 100})
	if err != nil || len(page.Data) != 100 || !page.HasMore {
		t.Fatalf("ListPage: %d, hasMore %v, %v", len(page.Data), page.HasMore, err)
	}
	if _, err := c.Customers.ListPage(ctx, dream.ListParams{Limit: 101}); !isCode(err, 422, "validation_failed") {
		t.Errorf("ListPage(limit 101): %v", err)
	}
}

func TestSDKGoErrorShapes(t *testing.T) {
	ts := startServer(t, nil)
	p := ts.createPlatform(t, "Errors Go")
	c := sdkClient(ts, p.SK)
	ctx := t.Context()
	if _, err := c.Tiers.Replace(ctx, []dream.TierInput{{Name: "free", Limit: dream.Int64(100), RateLimitPerMinute: 1}, {Name: "pro"}}); err != nil {
		t.Fatal(err)
	}
	cu, err := c.Customers.Create(ctx, dream.CustomerParams{Email: "shape@example.com"})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		call   func() error
		status int
		code   string
		check  func(t *testing.T, e *dream.Error)
	}{
		{"unknown key", func() error { _, err := sdkClient(ts, "sk_live_nope").Usage(ctx, cu.ID); return err }, 401, "invalid_api_key", nil},
		{"no key", func() error {
			_, err := dream.New(dream.Options{SecretKey: " ", BaseURL: ts.URL}).Usage(ctx, cu.ID)
			return err
		}, 401, "invalid_api_key", nil},
		{"publishable key", func() error { _, err := sdkClient(ts, p.PK).Usage(ctx, cu.ID); return err }, 403, "forbidden", nil},
		{"other mode", func() error { _, err := sdkClient(ts, p.TestSK).Customers.Get(ctx, cu.ID); return err }, 404, "not_found", nil},
		{"no such customer", func() error { _, err := c.Customers.Get(ctx, "cus_missing"); return err }, 404, "not_found", nil},
		{"duplicate email", func() error {
			_, err := c.Customers.Create(ctx, dream.CustomerParams{Email: "SHAPE@example.com"})
			return err
		}, 409, "conflict", nil},
		{"key reused with another body", func() error {
			// A creation (a check keeps no record of its key, and tracks
			// would use up the tier's one call a minute).
			if _, err := c.Customers.Create(ctx, dream.CustomerParams{Email: "k1@example.com", IdempotencyKey: "k-1"}); err != nil {
				return fmt.Errorf("first use: %w", err)
			}
			_, err := c.Customers.Create(ctx, dream.CustomerParams{Email: "k1-other@example.com", IdempotencyKey: "k-1"})
			return err
		}, 409, "idempotency_conflict", nil},
		{"invalid fields", func() error {
			_, err := c.Customers.Create(ctx, dream.CustomerParams{Email: "not an email", Plan: "Nope!"})
			return err
		}, 422, "validation_failed", func(t *testing.T, e *dream.Error) {
			if len(e.Fields) == 0 || e.Fields[0].Field == "" || e.Fields[0].Message == "" {
				t.Errorf("fields %+v", e.Fields)
			}
		}},
		{"no Stripe", func() error { _, err := c.Checkout(ctx, cu.ID, "pro", nil); return err }, 424, "stripe_not_connected", nil},
		{"body too large", func() error {
			_, err := c.Customers.Create(ctx, dream.CustomerParams{Email: "big@example.com", Metadata: map[string]any{"x": strings.Repeat("a", 2<<20)}})
			return err
		}, 413, "body_too_large", nil},
		{"rate limited", func() error {
			// One call a minute: the second is refused with a Retry-After the
			// client will not wait for (MaxRetryWait 1 s).
			rl := dream.New(dream.Options{SecretKey: p.SK, BaseURL: ts.URL, MaxRetryWait: time.Second})
			awayFromMinuteEnd()
			if _, err := rl.Track(ctx, cu.ID); err != nil {
				return fmt.Errorf("first call: %w", err)
			}
			_, err := rl.Track(ctx, cu.ID)
			return err
		}, 429, "rate_limited", func(t *testing.T, e *dream.Error) {
			if e.RetryAfter <= time.Second || e.RetryAfter > time.Minute {
				t.Errorf("RetryAfter %v", e.RetryAfter)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var e *dream.Error
			if !errors.As(err, &e) {
				t.Fatalf("%v: not a *dream.Error", err)
			}
			if !isCode(err, tc.status, tc.code) || e.Summary == "" {
				t.Fatalf("%#v, want %d %s with a request id, summary and message", e, tc.status, tc.code)
			}
			if errors.As(err, new(*dream.TierLimitError)) {
				t.Errorf("%s is a TierLimitError", tc.code)
			}
			if tc.check != nil {
				tc.check(t, e)
			}
		})
	}

	// A server that is not there: a network error, not an *dream.Error.
	down := dream.New(dream.Options{SecretKey: p.SK, BaseURL: "http://127.0.0.1:1", MaxRetries: -1})
	_, err = down.Usage(context.Background(), cu.ID)
	var e *dream.Error
	if err == nil || errors.As(err, &e) {
		t.Errorf("unreachable server: %v", err)
	}
}

// awayFromMinuteEnd waits out the last 10 seconds of a wall-clock minute:
// the per-minute rate limit's window is the UTC minute, and two calls that
// straddle its end are both allowed (and a Retry-After of 1 s is one the
// client waits for).
func awayFromMinuteEnd() {
	if s := time.Now().UTC().Second(); s >= 50 {
		time.Sleep(time.Duration(61-s) * time.Second)
	}
}

// TestSDKGoWebhooks: every Webhooks call of the Go SDK against the real
// program, with a receiver on loopback whose ping dream.VerifyWebhook
// accepts with the secret of Create, and after RotateSecret with the new one.
func TestSDKGoWebhooks(t *testing.T) {
	ts := startServer(t, map[string]string{"DREAM_WEBHOOK_ALLOW_PRIVATE": "1"})
	p := ts.createPlatform(t, "Webhooks Go")
	c := sdkClient(ts, p.TestSK)
	ctx := t.Context()
	rcv := newHookReceiver(t)

	created, err := c.Webhooks.Create(ctx, dream.WebhookParams{URL: rcv.srv.URL + "/hooks", Events: []string{"customer.created"}, Description: "go sdk"})
	if err != nil {
		t.Fatal(err)
	}
	ep := created.Endpoint
	if !strings.HasPrefix(created.Secret, "whsec_") || !strings.HasPrefix(ep.ID, "whe_") || !ep.Enabled ||
		ep.Description != "go sdk" || len(ep.Events) != 1 || ep.Events[0] != "customer.created" {
		t.Fatalf("Create: %+v", created)
	}
	if _, err := c.Webhooks.Create(ctx, dream.WebhookParams{URL: "ftp://x.test"}); !isCode(err, 422, "validation_failed") {
		t.Errorf("Create with an ftp URL: %v, want a 422 validation_failed", err)
	}
	list, err := c.Webhooks.List(ctx)
	if err != nil || len(list) != 1 || list[0].ID != ep.ID {
		t.Fatalf("List: %+v %v", list, err)
	}
	got, err := c.Webhooks.Get(ctx, ep.ID)
	if err != nil || got.URL != ep.URL {
		t.Fatalf("Get: %+v %v", got, err)
	}
	upd, err := c.Webhooks.Update(ctx, ep.ID, dream.WebhookUpdate{Description: dream.String("renamed"), Events: []string{"*"}})
	if err != nil || upd.Description != "renamed" || len(upd.Events) != 1 || upd.Events[0] != "*" || upd.URL != ep.URL {
		t.Fatalf("Update: %+v %v", upd, err)
	}

	// A ping, signed with the secret from Create.
	d, err := c.Webhooks.Test(ctx, ep.ID)
	if err != nil || !strings.HasPrefix(d.EventID, "evt_") || d.Type != "ping" || d.EndpointID != ep.ID {
		t.Fatalf("Test: %+v %v", d, err)
	}
	eventually(t, "the ping", func() bool { return len(rcv.events("ping")) == 1 })
	ping := rcv.events("ping")[0]
	ev, err := dream.VerifyWebhook(ping.Body, ping.Signature, created.Secret, 0)
	if err != nil || ev.ID != d.EventID || ev.Type != "ping" || ev.Mode != "test" {
		t.Fatalf("VerifyWebhook of the ping: %+v %v", ev, err)
	}
	if _, err := dream.VerifyWebhook(ping.Body, ping.Signature, "whsec_wrong", 0); !errors.Is(err, dream.ErrInvalidSignature) {
		t.Errorf("VerifyWebhook with a wrong secret: %v", err)
	}
	var page *dream.WebhookDeliveryPage
	eventually(t, "the ping delivered", func() bool {
		page, err = c.Webhooks.Deliveries(ctx, ep.ID, dream.ListParams{Limit: 10})
		return err == nil && len(page.Data) == 1 && page.Data[0].State == "delivered"
	})
	if dl := page.Data[0]; dl.EventID != d.EventID || dl.Status != 200 || dl.Attempt != 1 || dl.AttemptedAt == nil || page.HasMore {
		t.Errorf("Deliveries: %+v", page)
	}

	// A new secret; the retried ping carries a v1 for it.
	rot, err := c.Webhooks.RotateSecret(ctx, ep.ID)
	if err != nil || !strings.HasPrefix(rot.Secret, "whsec_") || rot.Secret == created.Secret || rot.Endpoint.ID != ep.ID {
		t.Fatalf("RotateSecret: %+v %v", rot, err)
	}
	if r, err := c.Webhooks.Retry(ctx, ep.ID, d.EventID); err != nil || r.EventID != d.EventID {
		t.Fatalf("Retry: %+v %v", r, err)
	}
	eventually(t, "the retried ping", func() bool { return len(rcv.events("ping")) == 2 })
	again := rcv.events("ping")[1]
	if _, err := dream.VerifyWebhook(again.Body, again.Signature, rot.Secret, 0); err != nil {
		t.Errorf("VerifyWebhook of the retried ping with the new secret: %v", err)
	}

	if err := c.Webhooks.Delete(ctx, ep.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Webhooks.Get(ctx, ep.ID); !isCode(err, 404, "not_found") {
		t.Errorf("Get after Delete: %v, want a 404", err)
	}
	if list, err := c.Webhooks.List(ctx); err != nil || len(list) != 0 {
		t.Errorf("List after Delete: %+v %v", list, err)
	}
}
