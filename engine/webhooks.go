package engine

import (
	"context"
	"encoding/json"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Outgoing webhooks: a platform registers endpoints (per mode, like its
// customers); every event it subscribes to is written, in the same batch as
// the change that causes it, as an event record and one pending delivery
// per subscribed endpoint. A worker (RunWebhooks, webhooks_deliver.go)
// delivers them, signed, with retries, across restarts.

// Event types of outgoing webhooks.
const (
	EventUsageThreshold      = "usage.threshold"
	EventCustomerCreated     = "customer.created"
	EventCustomerUpdated     = "customer.updated"
	EventCustomerDeleted     = "customer.deleted"
	EventPlanChanged         = "customer.plan_changed"
	EventSubscriptionUpdated = "subscription.updated"
	EventPluginFallback      = "plugin.fallback"
	EventPing                = "ping"
)

// WebhookEventTypes are the event types an endpoint may subscribe to; "*"
// stands for all of them.
var WebhookEventTypes = []string{
	EventUsageThreshold, EventCustomerCreated, EventCustomerUpdated, EventCustomerDeleted,
	EventPlanChanged, EventSubscriptionUpdated, EventPluginFallback,
}

// Limits on webhook endpoints.
const (
	MaxWebhookEndpoints   = 16 // per platform and mode
	maxWebhookURLLen      = 2048
	maxWebhookDescription = 500
)

// WebhookEndpoint is a URL that receives a platform's events.
type WebhookEndpoint struct {
	// ID is `whe_…`.
	ID          string    `json:"id"`
	URL         string    `json:"url"`
	Events      []string  `json:"events"`
	Description string    `json:"description"`
	Enabled     bool      `json:"enabled"`
	CreatedAt   time.Time `json:"createdAt"`
	// DisabledReason says why the server disabled the endpoint.
	DisabledReason string `json:"disabledReason,omitempty"`
	// FailingSince is the first failed attempt since the last success.
	FailingSince time.Time `json:"failingSince,omitzero"`

	// Secret is the signing secret, sealed (Sealer, webhookAAD).
	Secret []byte `json:"-"`
	// PrevSecret is the secret before the last rotation, sealed; it also
	// signs until PrevSecretUntil.
	PrevSecret      []byte    `json:"-"`
	PrevSecretUntil time.Time `json:"-"`
}

// subscribed reports whether e wants events of type typ.
func (e *WebhookEndpoint) subscribed(typ string) bool {
	return slices.Contains(e.Events, "*") || slices.Contains(e.Events, typ)
}

// WebhookEvent is one event as sent: Body is the exact JSON body
// `{"id","type","createdAt","mode","data"}`, the same for every attempt.
type WebhookEvent struct {
	ID        string
	Type      string
	CreatedAt time.Time
	Body      []byte
}

// Delivery states.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// WebhookDelivery is the state of one event's delivery to one endpoint; it
// shows the last attempt.
type WebhookDelivery struct {
	EventID    string `json:"eventId"`
	EndpointID string `json:"endpointId"`
	Type       string `json:"type"`
	State      string `json:"state"`
	// Attempt is the number of attempts made so far.
	Attempt int `json:"attempt"`
	// Status is the HTTP status of the last attempt; 0 when it got none.
	Status    int    `json:"status"`
	LatencyMs int64  `json:"latencyMs"`
	Error     string `json:"error"`
	// NextRetryAt is when the next attempt is due; null unless pending.
	NextRetryAt *time.Time `json:"nextRetryAt"`
	CreatedAt   time.Time  `json:"createdAt"`
	// AttemptedAt is when the last attempt started.
	AttemptedAt *time.Time `json:"attemptedAt"`
}

// WebhookEndpointRef names an endpoint that has pending deliveries.
type WebhookEndpointRef struct {
	Tenant
	EndpointID string
}

// Webhooks manages a platform's webhook endpoints.
type Webhooks struct {
	c *core
}

// CreateWebhookInput is the body of POST /api/platform/webhooks.
type CreateWebhookInput struct {
	URL         string   `json:"url" required:"true"`
	Events      []string `json:"events"`
	Description string   `json:"description"`
}

// UpdateWebhookInput is the body of PATCH /api/platform/webhooks/{id};
// absent fields stay. Enabling a disabled endpoint clears its reason.
type UpdateWebhookInput struct {
	URL         *string  `json:"url"`
	Events      []string `json:"events"`
	Description *string  `json:"description"`
	Enabled     *bool    `json:"enabled"`
}

// CreatedWebhook is an endpoint with its secret, shown once.
type CreatedWebhook struct {
	Endpoint *WebhookEndpoint `json:"endpoint"`
	Secret   string           `json:"secret"`
}

func validateEvents(v *Validation, events []string) []string {
	if len(events) == 0 {
		return []string{"*"}
	}
	out := make([]string, 0, len(events))
	for _, e := range events {
		if e != "*" && !slices.Contains(WebhookEventTypes, e) {
			v.Add("events", "unknown event type %q; known: * %s", e, strings.Join(WebhookEventTypes, " "))
			continue
		}
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	return out
}

// ValidateWebhookURL checks an endpoint URL: https, or (with allowPrivate)
// http and private or loopback addresses; link-local addresses never. A
// host name is checked again on its resolved address at every delivery.
func ValidateWebhookURL(raw string, allowPrivate bool) error {
	if len(raw) > maxWebhookURLLen {
		return invalid("url", "must be at most %d characters", maxWebhookURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return invalid("url", "must be an absolute https URL")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && allowPrivate:
	case u.Scheme == "http":
		return invalid("url", "must be https (http only when the server sets DREAM_WEBHOOK_ALLOW_PRIVATE=1)")
	default:
		return invalid("url", "must be an https URL")
	}
	if u.User != nil {
		return invalid("url", "must not carry a user or password")
	}
	if u.Fragment != "" {
		return invalid("url", "must not have a #fragment")
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		host = "127.0.0.1"
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if err := checkWebhookAddr(ip, allowPrivate); err != nil {
			return invalid("url", "%s", err.Error())
		}
	}
	return nil
}

// webhookAddrError is why an address may not receive webhooks.
type webhookAddrError string

func (e webhookAddrError) Error() string { return string(e) }

// checkWebhookAddr refuses link-local (cloud metadata) addresses always,
// and private, loopback, unspecified and multicast addresses unless
// allowPrivate.
func checkWebhookAddr(ip netip.Addr, allowPrivate bool) error {
	ip = ip.Unmap()
	switch {
	case ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast():
		return webhookAddrError("must not point at a link-local address (" + ip.String() + ")")
	case ip.IsMulticast() || ip.IsInterfaceLocalMulticast():
		return webhookAddrError("must not point at a multicast address (" + ip.String() + ")")
	case allowPrivate:
		return nil
	case ip.IsLoopback() || ip.IsPrivate() || ip.IsUnspecified() || isSharedAddr(ip):
		return webhookAddrError("must not point at a private or loopback address (" + ip.String() +
			") unless the server sets DREAM_WEBHOOK_ALLOW_PRIVATE=1")
	}
	return nil
}

// isSharedAddr reports carrier-grade NAT space (100.64.0.0/10).
func isSharedAddr(ip netip.Addr) bool {
	return ip.Is4() && netip.MustParsePrefix("100.64.0.0/10").Contains(ip)
}

func webhookLock(t Tenant, id string) Lock {
	return Lock{Kind: LockWebhook, Mode: t.Mode, Platform: t.PlatformID, ID: id}
}

// webhooksLock guards the set of a tenant's endpoints (their number).
func webhooksLock(t Tenant) Lock {
	return Lock{Kind: LockWebhook, Mode: t.Mode, Platform: t.PlatformID}
}

func webhookAAD(t Tenant, id string) []byte {
	return []byte("whsec\x00" + t.PlatformID + "\x00" + t.Mode.String() + "\x00" + id)
}

// Create registers an endpoint and returns it with its secret, which is
// shown this once. Returns EVALIDATION.
func (w *Webhooks) Create(ctx context.Context, t Tenant, in CreateWebhookInput, idem *Idempotency) (*CreatedWebhook, error) {
	var v Validation
	if in.URL == "" {
		v.Add("url", "is required")
	} else if err := ValidateWebhookURL(in.URL, w.c.hooks.opts.AllowPrivate); err != nil {
		v.Add("url", "%s", err.(*Error).Fields[0].Message)
	}
	events := validateEvents(&v, in.Events)
	if len(in.Description) > maxWebhookDescription {
		v.Add("description", "must be at most %d characters", maxWebhookDescription)
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	c := w.c
	res, err := c.update(ctx, t, idem, []Lock{webhooksLock(t)}, func(tx Tx) (any, error) {
		eps, err := tx.WebhookEndpoints(ctx, t)
		if err != nil {
			return nil, err
		}
		if len(eps) >= MaxWebhookEndpoints {
			return nil, invalid("url", "a platform has at most %d endpoints per mode; delete one first", MaxWebhookEndpoints)
		}
		now := c.now().UTC()
		e := &WebhookEndpoint{
			ID: NewID("whe_", now), URL: in.URL, Events: events, Description: in.Description,
			Enabled: true, CreatedAt: now,
		}
		secret := newSecret("whsec_")
		e.Secret = c.sealer.Seal([]byte(secret), webhookAAD(t, e.ID))
		tx.PutWebhookEndpoint(t, e)
		return &CreatedWebhook{Endpoint: e, Secret: secret}, nil
	})
	if err != nil {
		return nil, err
	}
	return res.(*CreatedWebhook), nil
}

// List returns a tenant's endpoints, oldest first.
func (w *Webhooks) List(ctx context.Context, t Tenant) ([]*WebhookEndpoint, error) {
	eps, err := w.c.store.WebhookEndpoints(ctx, t)
	if eps == nil && err == nil {
		eps = []*WebhookEndpoint{}
	}
	return eps, err
}

// Get returns one endpoint, or ENOTFOUND.
func (w *Webhooks) Get(ctx context.Context, t Tenant, id string) (*WebhookEndpoint, error) {
	return webhookIn(ctx, w.c.store, t, id)
}

func webhookIn(ctx context.Context, r Reader, t Tenant, id string) (*WebhookEndpoint, error) {
	if !strings.HasPrefix(id, "whe_") || len(id) > 100 {
		return nil, Errorf(ENOTFOUND, "No webhook endpoint %q.", id)
	}
	e, err := r.WebhookEndpoint(ctx, t, id)
	if ErrorCode(err) == ENOTFOUND {
		return nil, Errorf(ENOTFOUND, "No webhook endpoint %q.", id)
	}
	return e, err
}

// Update changes an endpoint. Returns ENOTFOUND or EVALIDATION.
func (w *Webhooks) Update(ctx context.Context, t Tenant, id string, in UpdateWebhookInput, idem *Idempotency) (*WebhookEndpoint, error) {
	var v Validation
	if in.URL != nil {
		if err := ValidateWebhookURL(*in.URL, w.c.hooks.opts.AllowPrivate); err != nil {
			v.Add("url", "%s", err.(*Error).Fields[0].Message)
		}
	}
	var events []string
	if in.Events != nil {
		events = validateEvents(&v, in.Events)
	}
	if in.Description != nil && len(*in.Description) > maxWebhookDescription {
		v.Add("description", "must be at most %d characters", maxWebhookDescription)
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	res, err := w.c.update(ctx, t, idem, []Lock{webhookLock(t, id)}, func(tx Tx) (any, error) {
		e, err := webhookIn(ctx, tx, t, id)
		if err != nil {
			return nil, err
		}
		if in.URL != nil {
			e.URL = *in.URL
		}
		if events != nil {
			e.Events = events
		}
		if in.Description != nil {
			e.Description = *in.Description
		}
		if in.Enabled != nil {
			if *in.Enabled && !e.Enabled {
				e.DisabledReason, e.FailingSince = "", time.Time{}
			}
			e.Enabled = *in.Enabled
		}
		tx.PutWebhookEndpoint(t, e)
		return e, nil
	})
	if err != nil {
		return nil, err
	}
	return res.(*WebhookEndpoint), nil
}

// Delete removes an endpoint; its pending deliveries are dropped by the
// worker. Returns ENOTFOUND.
func (w *Webhooks) Delete(ctx context.Context, t Tenant, id string) error {
	_, err := w.c.update(ctx, t, nil, []Lock{webhooksLock(t), webhookLock(t, id)}, func(tx Tx) (any, error) {
		if _, err := webhookIn(ctx, tx, t, id); err != nil {
			return nil, err
		}
		tx.DeleteWebhookEndpoint(t, id)
		return nil, nil
	})
	return err
}

// RotateSecret gives an endpoint a new secret, returned this once; the
// current one keeps signing (a second v1) for the grace period (24 h).
// Returns ENOTFOUND.
func (w *Webhooks) RotateSecret(ctx context.Context, t Tenant, id string, idem *Idempotency) (*CreatedWebhook, error) {
	c := w.c
	res, err := c.update(ctx, t, idem, []Lock{webhookLock(t, id)}, func(tx Tx) (any, error) {
		e, err := webhookIn(ctx, tx, t, id)
		if err != nil {
			return nil, err
		}
		secret := newSecret("whsec_")
		e.PrevSecret, e.PrevSecretUntil = e.Secret, c.now().UTC().Add(c.hooks.opts.SecretGrace)
		e.Secret = c.sealer.Seal([]byte(secret), webhookAAD(t, e.ID))
		tx.PutWebhookEndpoint(t, e)
		return &CreatedWebhook{Endpoint: e, Secret: secret}, nil
	})
	if err != nil {
		return nil, err
	}
	return res.(*CreatedWebhook), nil
}

// SentEvent is the answer to a test or a retry: the event queued.
type SentEvent struct {
	Delivery *WebhookDelivery `json:"delivery"`
}

// Test queues a `ping` event for one endpoint (whatever it subscribes to).
// Returns ENOTFOUND, or EVALIDATION when the endpoint is disabled.
func (w *Webhooks) Test(ctx context.Context, t Tenant, id string, idem *Idempotency) (*SentEvent, error) {
	c := w.c
	res, err := c.update(ctx, t, idem, []Lock{webhookLock(t, id)}, func(tx Tx) (any, error) {
		e, err := webhookIn(ctx, tx, t, id)
		if err != nil {
			return nil, err
		}
		if !e.Enabled {
			return nil, invalid("enabled", "the endpoint is disabled; enable it with PATCH first")
		}
		ev, err := c.newWebhookEvent(t, EventPing, map[string]string{"endpointId": e.ID})
		if err != nil {
			return nil, err
		}
		tx.PutWebhookEvent(t, ev)
		d := c.queueDelivery(tx, t, e.ID, ev)
		return &SentEvent{Delivery: d}, nil
	})
	if err != nil {
		return nil, err
	}
	return res.(*SentEvent), nil
}

// Deliveries lists an endpoint's deliveries, newest first: each shows its
// last attempt. Returns ENOTFOUND.
func (w *Webhooks) Deliveries(ctx context.Context, t Tenant, id string, p Page) ([]*WebhookDelivery, bool, error) {
	if err := p.validate(); err != nil {
		return nil, false, err
	}
	if _, err := webhookIn(ctx, w.c.store, t, id); err != nil {
		return nil, false, err
	}
	ds, more, err := w.c.store.WebhookDeliveries(ctx, t, id, p)
	if ds == nil && err == nil {
		ds = []*WebhookDelivery{}
	}
	return ds, more, err
}

// Retry queues an event's delivery to an endpoint again, due now, whatever
// its state. Returns ENOTFOUND, or EVALIDATION when the endpoint is
// disabled.
func (w *Webhooks) Retry(ctx context.Context, t Tenant, id, eventID string, idem *Idempotency) (*SentEvent, error) {
	c := w.c
	res, err := c.update(ctx, t, idem, []Lock{webhookLock(t, id)}, func(tx Tx) (any, error) {
		e, err := webhookIn(ctx, tx, t, id)
		if err != nil {
			return nil, err
		}
		if !e.Enabled {
			return nil, invalid("enabled", "the endpoint is disabled; enable it with PATCH first")
		}
		if !strings.HasPrefix(eventID, "evt_") || len(eventID) > 100 {
			return nil, Errorf(ENOTFOUND, "No delivery of event %q to this endpoint.", eventID)
		}
		d, err := tx.WebhookDelivery(ctx, t, id, eventID)
		if ErrorCode(err) == ENOTFOUND {
			return nil, Errorf(ENOTFOUND, "No delivery of event %q to this endpoint.", eventID)
		} else if err != nil {
			return nil, err
		}
		now := c.now().UTC()
		d.State, d.NextRetryAt = DeliveryPending, &now
		// A manual retry gets a fresh give-up window.
		d.CreatedAt = now
		tx.PutWebhookDelivery(t, d)
		return &SentEvent{Delivery: d}, nil
	})
	if err != nil {
		return nil, err
	}
	return res.(*SentEvent), nil
}

// eventBody is the JSON body of an event.
type eventBody struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	CreatedAt time.Time `json:"createdAt"`
	Mode      Mode      `json:"mode"`
	Data      any       `json:"data"`
}

func (c *core) newWebhookEvent(t Tenant, typ string, data any) (*WebhookEvent, error) {
	now := c.now().UTC()
	ev := &WebhookEvent{ID: NewID("evt_", now), Type: typ, CreatedAt: now}
	body, err := json.Marshal(eventBody{ID: ev.ID, Type: typ, CreatedAt: now, Mode: t.Mode, Data: data})
	if err != nil {
		return nil, err
	}
	ev.Body = body
	return ev, nil
}

// queueDelivery writes a pending delivery of ev to an endpoint, due now.
func (c *core) queueDelivery(tx Writer, t Tenant, endpointID string, ev *WebhookEvent) *WebhookDelivery {
	due := ev.CreatedAt
	d := &WebhookDelivery{
		EventID: ev.ID, EndpointID: endpointID, Type: ev.Type, State: DeliveryPending,
		NextRetryAt: &due, CreatedAt: ev.CreatedAt,
	}
	tx.PutWebhookDelivery(t, d)
	return d
}

// emit writes an event of type typ into the unit of work tx, for every
// enabled endpoint of t subscribed to it; nothing when there is none. It
// is called in the unit that makes the change the event tells of, so that
// the event is durable exactly when the change is.
func (c *core) emit(ctx context.Context, tx Tx, t Tenant, typ string, data any) error {
	eps, err := tx.WebhookEndpoints(ctx, t)
	if err != nil || len(eps) == 0 {
		return err
	}
	var ev *WebhookEvent
	for _, e := range eps {
		if !e.Enabled || !e.subscribed(typ) {
			continue
		}
		if ev == nil {
			if ev, err = c.newWebhookEvent(t, typ, data); err != nil {
				return err
			}
			tx.PutWebhookEvent(t, ev)
		}
		c.queueDelivery(tx, t, e.ID, ev)
	}
	return nil
}

// Event payloads.

// ThresholdData is the data of usage.threshold.
type ThresholdData struct {
	CustomerID  string    `json:"customerId"`
	Feature     string    `json:"feature"`
	Threshold   int       `json:"threshold"`
	Count       int64     `json:"count"`
	Limit       int64     `json:"limit"`
	PeriodStart time.Time `json:"periodStart"`
	PeriodEnd   time.Time `json:"periodEnd"`
}

// PlanChangedData is the data of customer.plan_changed.
type PlanChangedData struct {
	CustomerID string `json:"customerId"`
	From       string `json:"from"`
	To         string `json:"to"`
	// Source is "api", "stripe" or "dashboard".
	Source string `json:"source"`
}

// SubscriptionUpdatedData is the data of subscription.updated: a Stripe
// subscription event changed the customer's subscription.
type SubscriptionUpdatedData struct {
	CustomerID   string        `json:"customerId"`
	Plan         string        `json:"plan"`
	Subscription *Subscription `json:"subscription"`
}

// Sources of a plan change.
const (
	SourceAPI       = "api"
	SourceStripe    = "stripe"
	SourceDashboard = "dashboard"
)

// thresholdCrossed returns the thresholds (80, 100 percent of limit) that a
// count going from before to after crosses; none for an unlimited or zero
// limit. It is a comparison or two on the track path.
func thresholdCrossed(before, after, limit int64) (crossed [2]int, n int) {
	if limit <= 0 || after <= before {
		return crossed, 0
	}
	for _, pct := range [2]int64{80, 100} {
		// ceil(limit*pct/100) without overflow.
		th := limit/100*pct + (limit%100*pct+99)/100
		if before < th && after >= th {
			crossed[n] = int(pct)
			n++
		}
	}
	return crossed, n
}

// emitThresholds writes usage.threshold events for the thresholds a track
// crossed, in its unit of work.
func (c *core) emitThresholds(ctx context.Context, tx Tx, t Tenant, customerID, feature string, before, after, limit int64, start, end time.Time) error {
	crossed, n := thresholdCrossed(before, after, limit)
	for _, pct := range crossed[:n] {
		if err := c.emit(ctx, tx, t, EventUsageThreshold, ThresholdData{
			CustomerID: customerID, Feature: feature, Threshold: pct, Count: after, Limit: limit,
			PeriodStart: start.UTC(), PeriodEnd: end.UTC(),
		}); err != nil {
			return err
		}
	}
	return nil
}

// customerEvent writes a customer.* event of cus in a unit of work.
func (c *core) customerEvent(ctx context.Context, tx Tx, t Tenant, typ string, cus *Customer) error {
	return c.emit(ctx, tx, t, typ, cus)
}

// pluginFallback writes a plugin.fallback event in a unit of its own: the
// breaker of a platform's plugin opened, so built-in limits (or onError)
// decide for a cool-down. Called without locks held, off the track path.
func (c *core) pluginFallback(t Tenant, version, onError string, coolDown time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.store.Update(ctx, []Lock{webhooksLock(t)}, func(tx Tx) (any, error) {
		return nil, c.emit(ctx, tx, t, EventPluginFallback, map[string]any{
			"version": version, "onError": onError, "coolDownSeconds": int(coolDown / time.Second),
		})
	})
	if err != nil {
		c.log.Warn("writing a plugin.fallback webhook event failed", "platform", t.PlatformID, "mode", t.Mode.String(), "err", err)
	}
}

// WebhookStore is the part of Store that keeps webhook state. Reads return
// ENOTFOUND when absent unless they say otherwise.
type WebhookStore interface {
	// WebhookEndpoints lists a tenant's endpoints, oldest first.
	WebhookEndpoints(ctx context.Context, t Tenant) ([]*WebhookEndpoint, error)
	WebhookEndpoint(ctx context.Context, t Tenant, id string) (*WebhookEndpoint, error)
	WebhookEvent(ctx context.Context, t Tenant, id string) (*WebhookEvent, error)
	WebhookDelivery(ctx context.Context, t Tenant, endpointID, eventID string) (*WebhookDelivery, error)
	// WebhookDeliveries lists an endpoint's deliveries, newest event
	// first; p.StartingAfter is an event id.
	WebhookDeliveries(ctx context.Context, t Tenant, endpointID string, p Page) ([]*WebhookDelivery, bool, error)
	// WebhookPending lists up to limit pending deliveries of an endpoint,
	// oldest event first.
	WebhookPending(ctx context.Context, t Tenant, endpointID string, limit int) ([]*WebhookDelivery, error)
	// WebhookPendingEndpoints lists every endpoint that has a pending
	// delivery, in every tenant.
	WebhookPendingEndpoints(ctx context.Context) ([]WebhookEndpointRef, error)
	// ExpireWebhooks deletes the events made before before and the
	// deliveries (not pending) that were, and returns how many records
	// went.
	ExpireWebhooks(ctx context.Context, before time.Time) (int, error)
}

// WebhookBatch is the part of Writer that writes webhook state.
type WebhookBatch interface {
	PutWebhookEndpoint(t Tenant, e *WebhookEndpoint)
	// DeleteWebhookEndpoint removes an endpoint; its deliveries stay until
	// the worker drops them.
	DeleteWebhookEndpoint(t Tenant, id string)
	PutWebhookEvent(t Tenant, ev *WebhookEvent)
	// PutWebhookDelivery writes a delivery; a pending one is queued (and
	// the worker told, through Watch), any other leaves the queue.
	PutWebhookDelivery(t Tenant, d *WebhookDelivery)
}
