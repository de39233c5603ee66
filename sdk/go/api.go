package dream

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// CustomersService is Client.Customers.
type CustomersService struct{ c *Client }

// Create creates a customer (POST /api/customers). An email already used
// in the platform and mode is a 409 conflict *Error; an unknown plan is 422.
func (s *CustomersService) Create(ctx context.Context, p CustomerParams) (*Customer, error) {
	var out struct {
		Customer Customer `json:"customer"`
	}
	if err := s.c.do(ctx, &request{method: http.MethodPost, path: "/api/customers", body: p, idem: p.IdempotencyKey}, &out); err != nil {
		return nil, err
	}
	return &out.Customer, nil
}

// Get returns one customer with its current usage.
func (s *CustomersService) Get(ctx context.Context, id string) (*Customer, error) {
	var out struct {
		Customer Customer `json:"customer"`
	}
	if err := s.c.do(ctx, &request{method: http.MethodGet, path: "/api/customers/" + url.PathEscape(id)}, &out); err != nil {
		return nil, err
	}
	return &out.Customer, nil
}

// Update changes the fields of u that are set.
func (s *CustomersService) Update(ctx context.Context, id string, u CustomerUpdate) (*Customer, error) {
	var out struct {
		Customer Customer `json:"customer"`
	}
	if err := s.c.do(ctx, &request{method: http.MethodPatch, path: "/api/customers/" + url.PathEscape(id), body: u}, &out); err != nil {
		return nil, err
	}
	return &out.Customer, nil
}

// Delete deletes a customer; its usage history is kept.
func (s *CustomersService) Delete(ctx context.Context, id string) error {
	return s.c.do(ctx, &request{method: http.MethodDelete, path: "/api/customers/" + url.PathEscape(id)}, nil)
}

// ListPage returns one page of customers, oldest first.
func (s *CustomersService) ListPage(ctx context.Context, p ListParams) (*CustomerPage, error) {
	q := url.Values{}
	if p.Limit > 0 {
		q.Set("limit", strconv.Itoa(p.Limit))
	}
	if p.StartingAfter != "" {
		q.Set("startingAfter", p.StartingAfter)
	}
	if p.Email != "" {
		q.Set("email", p.Email)
	}
	var out CustomerPage
	if err := s.c.do(ctx, &request{method: http.MethodGet, path: "/api/customers", query: q}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// List iterates over every customer, fetching pages of p.Limit (default
// 100) as it goes, starting after p.StartingAfter. An error ends the
// iteration after it is yielded:
//
//	for c, err := range client.Customers.List(ctx, dream.ListParams{}) {
//		if err != nil { return err }
//		…
//	}
func (s *CustomersService) List(ctx context.Context, p ListParams) iter.Seq2[Customer, error] {
	return func(yield func(Customer, error) bool) {
		if p.Limit == 0 {
			p.Limit = 100
		}
		for {
			page, err := s.ListPage(ctx, p)
			if err != nil {
				yield(Customer{}, err)
				return
			}
			for _, c := range page.Data {
				if !yield(c, nil) {
					return
				}
			}
			if !page.HasMore || len(page.Data) == 0 {
				return
			}
			p.StartingAfter = page.Data[len(page.Data)-1].ID
		}
	}
}

// Track counts one unit of "requests" for the customer, enforcing its
// plan's limit: at the limit it returns a *TierLimitError and counts
// nothing. TrackWith takes a feature, quantity, metadata or key.
func (c *Client) Track(ctx context.Context, customerID string) (*TrackResult, error) {
	return c.TrackWith(ctx, TrackParams{CustomerID: customerID})
}

// TrackWith counts p.Quantity units of p.Feature (POST /api/track). A
// retry with the same p.IdempotencyKey is never counted twice.
func (c *Client) TrackWith(ctx context.Context, p TrackParams) (*TrackResult, error) {
	var out TrackResult
	if err := c.do(ctx, &request{method: http.MethodPost, path: "/api/track", body: p, idem: p.IdempotencyKey}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// TrackBatch counts up to 1 000 events in one request (POST
// /api/track/batch): the server decides them in order, exactly as if each
// were tracked alone, and makes all of them durable in one commit. The
// results are in the order of events; an event's own error (its limit
// reached, an unknown customer, a bad quantity) is its result's Err, not
// TrackBatch's, which returns only the errors of the request as a whole
// (validation of the body, authentication, quotas). A retry of the request
// replays its first answer (one Idempotency-Key, generated unless opts
// gives one); opts may be nil.
func (c *Client) TrackBatch(ctx context.Context, events []TrackEvent, opts *BatchOptions) ([]BatchResult, error) {
	if opts == nil {
		opts = &BatchOptions{}
	}
	body := struct {
		Events []TrackEvent `json:"events"`
	}{events}
	var out struct {
		Results []json.RawMessage `json:"results"`
	}
	if err := c.do(ctx, &request{method: http.MethodPost, path: "/api/track/batch", body: body, idem: opts.IdempotencyKey}, &out); err != nil {
		return nil, err
	}
	results := make([]BatchResult, len(out.Results))
	for i, raw := range out.Results {
		var head struct {
			Status int `json:"status"`
		}
		if err := json.Unmarshal(raw, &head); err != nil {
			return nil, fmt.Errorf("dream: POST /api/track/batch: decode result %d: %w", i, err)
		}
		r := &results[i]
		r.Status = head.Status
		if head.Status == http.StatusOK {
			r.Result = new(TrackResult)
			if err := json.Unmarshal(raw, r.Result); err != nil {
				return nil, fmt.Errorf("dream: POST /api/track/batch: decode result %d: %w", i, err)
			}
			continue
		}
		r.Err = parseError(head.Status, nil, raw)
	}
	return results, nil
}

// Check answers the decision Track would make for one unit of "requests",
// counting nothing. A denial is Allowed false, not an error.
func (c *Client) Check(ctx context.Context, customerID string) (*TrackResult, error) {
	return c.CheckWith(ctx, TrackParams{CustomerID: customerID})
}

// CheckWith is Check for any feature and quantity.
func (c *Client) CheckWith(ctx context.Context, p TrackParams) (*TrackResult, error) {
	var out TrackResult
	if err := c.do(ctx, &request{method: http.MethodPost, path: "/api/check", body: p, idem: p.IdempotencyKey}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Usage returns the customer's usage of every metered feature of its plan.
func (c *Client) Usage(ctx context.Context, customerID string) (*UsageReport, error) {
	var out UsageReport
	q := url.Values{"customerId": {customerID}}
	if err := c.do(ctx, &request{method: http.MethodGet, path: "/api/usage", query: q}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UsageHistory returns the customer's past periods (the current one
// excluded), newest first; see UsageHistoryParams for the filters.
func (c *Client) UsageHistory(ctx context.Context, p UsageHistoryParams) (*UsageHistory, error) {
	var out UsageHistory
	q := url.Values{"customerId": {p.CustomerID}}
	if p.Feature != "" {
		q.Set("feature", p.Feature)
	}
	if !p.From.IsZero() {
		q.Set("from", p.From.UTC().Format(time.RFC3339Nano))
	}
	if !p.To.IsZero() {
		q.Set("to", p.To.UTC().Format(time.RFC3339Nano))
	}
	if p.Limit > 0 {
		q.Set("limit", strconv.Itoa(p.Limit))
	}
	if err := c.do(ctx, &request{method: http.MethodGet, path: "/api/usage/history", query: q}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Checkout starts a Stripe Checkout for the customer to subscribe to tier,
// on the platform's own Stripe account; opts may be nil.
func (c *Client) Checkout(ctx context.Context, customerID, tier string, opts *CheckoutOptions) (*CheckoutSession, error) {
	if opts == nil {
		opts = &CheckoutOptions{}
	}
	body := struct {
		CustomerID string `json:"customerId"`
		Tier       string `json:"tier"`
		*CheckoutOptions
	}{customerID, tier, opts}
	var out CheckoutSession
	if err := c.do(ctx, &request{method: http.MethodPost, path: "/api/create-checkout", body: body, idem: opts.IdempotencyKey}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Portal opens a Stripe billing portal session for the customer; opts may
// be nil.
func (c *Client) Portal(ctx context.Context, customerID string, opts *PortalOptions) (*PortalSession, error) {
	if opts == nil {
		opts = &PortalOptions{}
	}
	body := struct {
		CustomerID string `json:"customerId"`
		*PortalOptions
	}{customerID, opts}
	var out PortalSession
	if err := c.do(ctx, &request{method: http.MethodPost, path: "/api/customer-portal", body: body, idem: opts.IdempotencyKey}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Stats returns the platform's customers, customers per plan,
// subscriptions and MRR in the key's mode.
func (c *Client) Stats(ctx context.Context) (*Stats, error) {
	var out Stats
	if err := c.do(ctx, &request{method: http.MethodGet, path: "/api/platform/stats"}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// TiersService is Client.Tiers.
type TiersService struct{ c *Client }

// List returns the tier config, in the order the tiers were given.
func (s *TiersService) List(ctx context.Context) ([]Tier, error) {
	var out struct {
		Tiers []Tier `json:"tiers"`
	}
	if err := s.c.do(ctx, &request{method: http.MethodGet, path: "/api/platform/tiers"}, &out); err != nil {
		return nil, err
	}
	return out.Tiers, nil
}

// Replace replaces the whole tier config (creating Stripe products and
// prices when Stripe is connected) and returns it.
func (s *TiersService) Replace(ctx context.Context, tiers []TierInput) ([]Tier, error) {
	if tiers == nil {
		tiers = []TierInput{}
	}
	var out struct {
		Tiers []Tier `json:"tiers"`
	}
	body := struct {
		Tiers []TierInput `json:"tiers"`
	}{tiers}
	if err := s.c.do(ctx, &request{method: http.MethodPut, path: "/api/platform/tiers", body: body, idem: NewIdempotencyKey()}, &out); err != nil {
		return nil, err
	}
	return out.Tiers, nil
}

// KeysService is Client.Keys.
type KeysService struct{ c *Client }

// List returns every key record of the platform (never secrets).
func (s *KeysService) List(ctx context.Context) ([]KeyRecord, error) {
	var out struct {
		Data []KeyRecord `json:"data"`
	}
	if err := s.c.do(ctx, &request{method: http.MethodGet, path: "/api/platform/keys"}, &out); err != nil {
		return nil, err
	}
	return out.Data, nil
}

// Create creates a key pair in the key's mode, or with p.Rotate the
// replacement of a key pair; p may be nil.
func (s *KeysService) Create(ctx context.Context, p *KeyCreateParams) (*KeyCreated, error) {
	if p == nil {
		p = &KeyCreateParams{}
	}
	var out KeyCreated
	if err := s.c.do(ctx, &request{method: http.MethodPost, path: "/api/platform/keys", body: p, idem: p.IdempotencyKey}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Rotate replaces the key pair id; its secret keeps working for
// graceHours.
func (s *KeysService) Rotate(ctx context.Context, id string, graceHours int) (*KeyCreated, error) {
	return s.Create(ctx, &KeyCreateParams{Rotate: id, GracePeriodHours: &graceHours})
}

// Revoke revokes a key pair at once.
func (s *KeysService) Revoke(ctx context.Context, id string) (*KeyRecord, error) {
	var out struct {
		Key KeyRecord `json:"key"`
	}
	if err := s.c.do(ctx, &request{method: http.MethodDelete, path: "/api/platform/keys/" + url.PathEscape(id)}, &out); err != nil {
		return nil, err
	}
	return &out.Key, nil
}

// PluginService is Client.Plugin.
type PluginService struct{ c *Client }

// Upload uploads a WASM limit policy; validated, it becomes the active
// version. opts may be nil.
func (s *PluginService) Upload(ctx context.Context, wasm []byte, opts *PluginUploadOptions) (*PluginStatus, error) {
	if opts == nil {
		opts = &PluginUploadOptions{}
	}
	q := url.Values{}
	if opts.OnError != "" {
		q.Set("onError", opts.OnError)
	}
	idem := opts.IdempotencyKey
	if idem == "" {
		idem = NewIdempotencyKey()
	}
	if wasm == nil {
		wasm = []byte{}
	}
	var out PluginStatus
	if err := s.c.do(ctx, &request{method: http.MethodPut, path: "/api/platform/plugin", query: q, raw: wasm,
		contentType: "application/wasm", idem: idem}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Get returns the active version, onError and every uploaded version.
func (s *PluginService) Get(ctx context.Context) (*PluginOverview, error) {
	var out PluginOverview
	if err := s.c.do(ctx, &request{method: http.MethodGet, path: "/api/platform/plugin"}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DryRun runs the active module (or p.Version) on p, counting nothing.
func (s *PluginService) DryRun(ctx context.Context, p DryRunParams) (*DryRunResult, error) {
	q := url.Values{}
	if p.Version != "" {
		q.Set("version", p.Version)
	}
	var out DryRunResult
	if err := s.c.do(ctx, &request{method: http.MethodPost, path: "/api/platform/plugin/dry-run", query: q, body: p}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Rollback re-activates an earlier version.
func (s *PluginService) Rollback(ctx context.Context, version string) (*PluginStatus, error) {
	body := struct {
		Version string `json:"version"`
	}{version}
	var out PluginStatus
	if err := s.c.do(ctx, &request{method: http.MethodPost, path: "/api/platform/plugin/rollback", body: body}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Remove goes back to built-in limits; the versions are kept.
func (s *PluginService) Remove(ctx context.Context) error {
	return s.c.do(ctx, &request{method: http.MethodDelete, path: "/api/platform/plugin"}, nil)
}
