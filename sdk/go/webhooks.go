package dream

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// WebhooksService is Client.Webhooks: the outgoing webhook endpoints of
// the key's platform and mode (/api/platform/webhooks). Check deliveries
// with VerifyWebhook and the secret of Create or RotateSecret.
type WebhooksService struct{ c *Client }

func webhookPath(id string) string { return "/api/platform/webhooks/" + url.PathEscape(id) }

// Create registers an endpoint and returns it with its signing secret,
// which is shown only here. At most 16 endpoints per mode (409 beyond).
func (s *WebhooksService) Create(ctx context.Context, p WebhookParams) (*WebhookCreated, error) {
	var out WebhookCreated
	if err := s.c.do(ctx, &request{method: http.MethodPost, path: "/api/platform/webhooks", body: p, idem: p.IdempotencyKey}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// List returns every endpoint of the key's platform and mode, oldest
// first, without secrets.
func (s *WebhooksService) List(ctx context.Context) ([]WebhookEndpoint, error) {
	var out struct {
		Data []WebhookEndpoint `json:"data"`
	}
	if err := s.c.do(ctx, &request{method: http.MethodGet, path: "/api/platform/webhooks"}, &out); err != nil {
		return nil, err
	}
	return out.Data, nil
}

// Get returns one endpoint.
func (s *WebhooksService) Get(ctx context.Context, id string) (*WebhookEndpoint, error) {
	var out struct {
		Endpoint WebhookEndpoint `json:"endpoint"`
	}
	if err := s.c.do(ctx, &request{method: http.MethodGet, path: webhookPath(id)}, &out); err != nil {
		return nil, err
	}
	return &out.Endpoint, nil
}

// Update changes the fields of u that are set.
func (s *WebhooksService) Update(ctx context.Context, id string, u WebhookUpdate) (*WebhookEndpoint, error) {
	var out struct {
		Endpoint WebhookEndpoint `json:"endpoint"`
	}
	if err := s.c.do(ctx, &request{method: http.MethodPatch, path: webhookPath(id), body: u}, &out); err != nil {
		return nil, err
	}
	return &out.Endpoint, nil
}

// Delete deletes an endpoint; its pending deliveries are dropped.
func (s *WebhooksService) Delete(ctx context.Context, id string) error {
	return s.c.do(ctx, &request{method: http.MethodDelete, path: webhookPath(id)}, nil)
}

// RotateSecret gives the endpoint a new signing secret, shown only in
// this answer; for 24 h the old secret signs too.
func (s *WebhooksService) RotateSecret(ctx context.Context, id string) (*WebhookCreated, error) {
	var out WebhookCreated
	if err := s.c.do(ctx, &request{method: http.MethodPost, path: webhookPath(id) + "/rotate-secret"}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Test queues a "ping" event for this endpoint alone and returns its
// delivery (pending).
func (s *WebhooksService) Test(ctx context.Context, id string) (*WebhookDelivery, error) {
	var out struct {
		Delivery WebhookDelivery `json:"delivery"`
	}
	if err := s.c.do(ctx, &request{method: http.MethodPost, path: webhookPath(id) + "/test"}, &out); err != nil {
		return nil, err
	}
	return &out.Delivery, nil
}

// Deliveries returns one page of the endpoint's deliveries, newest first;
// p.StartingAfter is an event id (p.Email is ignored).
func (s *WebhooksService) Deliveries(ctx context.Context, id string, p ListParams) (*WebhookDeliveryPage, error) {
	q := url.Values{}
	if p.Limit > 0 {
		q.Set("limit", strconv.Itoa(p.Limit))
	}
	if p.StartingAfter != "" {
		q.Set("startingAfter", p.StartingAfter)
	}
	var out WebhookDeliveryPage
	if err := s.c.do(ctx, &request{method: http.MethodGet, path: webhookPath(id) + "/deliveries", query: q}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Retry queues the event's delivery to the endpoint again, due at once,
// whatever its state; the endpoint must be enabled.
func (s *WebhooksService) Retry(ctx context.Context, id, eventID string) (*WebhookDelivery, error) {
	var out struct {
		Delivery WebhookDelivery `json:"delivery"`
	}
	path := webhookPath(id) + "/deliveries/" + url.PathEscape(eventID) + "/retry"
	if err := s.c.do(ctx, &request{method: http.MethodPost, path: path}, &out); err != nil {
		return nil, err
	}
	return &out.Delivery, nil
}
