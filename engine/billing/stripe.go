// Package billing is the Stripe adapter of dream-api: it implements
// engine.Billing with stripe-go v76, against the API base it is given
// (STRIPE_API_BASE; tests point it at stripe-mock).
//
// It keeps no package-level state of stripe-go: every call goes through the
// adapter's own backend, with the key and connected account the engine
// names, so that one process serves many Stripe accounts.
package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	stripe "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/dream-api/dream-api/engine"
)

// DefaultAPIBase is Stripe's own API.
const DefaultAPIBase = "https://api.stripe.com"

// Options configure New. A nil *Options is valid and means all defaults.
type Options struct {
	// APIBase is the base URL of the Stripe API. Defaults to
	// DefaultAPIBase.
	APIBase string
	// HTTPClient makes the requests. Defaults to a client with a 30 s
	// timeout.
	HTTPClient *http.Client
	// MaxNetworkRetries is how often a call that failed in a way Stripe
	// calls retryable is retried, with the same idempotency key. Defaults
	// to 2; negative means none.
	MaxNetworkRetries int
	// Logger receives stripe-go's messages: errors and warnings at Warn,
	// the rest at Debug. Defaults to discarding them.
	Logger *slog.Logger
}

// Stripe implements engine.Billing. Safe for concurrent use.
type Stripe struct {
	backends *stripe.Backends
}

// New returns an adapter over the Stripe API at opts.APIBase.
func New(opts *Options) *Stripe {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.APIBase == "" {
		o.APIBase = DefaultAPIBase
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	retries := int64(2)
	if o.MaxNetworkRetries > 0 {
		retries = int64(o.MaxNetworkRetries)
	} else if o.MaxNetworkRetries < 0 {
		retries = 0
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	backend := stripe.GetBackendWithConfig(stripe.APIBackend, &stripe.BackendConfig{
		URL:               stripe.String(strings.TrimRight(o.APIBase, "/")),
		HTTPClient:        o.HTTPClient,
		MaxNetworkRetries: stripe.Int64(retries),
		LeveledLogger:     leveledLogger{o.Logger},
	})
	return &Stripe{backends: &stripe.Backends{API: backend, Connect: backend, Uploads: backend}}
}

// api returns a client for the call's key.
func (s *Stripe) api(call engine.BillingCall) *client.API {
	return client.New(call.Key, s.backends)
}

// params fills in what every call carries: the context, the connected
// account (Stripe-Account) and the idempotency key.
func params(ctx context.Context, call engine.BillingCall, p *stripe.Params) {
	p.Context = ctx
	if call.Account != "" {
		p.SetStripeAccount(call.Account)
	}
	if call.IdempotencyKey != "" {
		p.SetIdempotencyKey(call.IdempotencyKey)
	}
}

// fail turns a stripe-go error into an *engine.BillingError.
func fail(op string, err error) error {
	var se *stripe.Error
	if errors.As(err, &se) {
		msg := se.Msg
		if msg == "" {
			msg = http.StatusText(se.HTTPStatusCode)
		}
		return &engine.BillingError{Op: op, Status: se.HTTPStatusCode, Type: string(se.Type), Code: string(se.Code), Message: msg, Err: err}
	}
	return &engine.BillingError{Op: op, Message: "Stripe could not be reached", Err: err}
}

// Account returns the account of the call's key (GET /v1/account).
func (s *Stripe) Account(ctx context.Context, call engine.BillingCall) (*engine.BillingAccount, error) {
	p := &stripe.AccountParams{}
	params(ctx, call, &p.Params)
	a := &stripe.Account{}
	if err := s.backends.API.Call(http.MethodGet, "/v1/account", call.Key, p, a); err != nil {
		return nil, fail("check the key (GET /v1/account)", err)
	}
	return &engine.BillingAccount{ID: a.ID, ChargesEnabled: a.ChargesEnabled, DetailsSubmitted: a.DetailsSubmitted}, nil
}

// CreateAccount makes a Standard connected account (POST /v1/accounts).
func (s *Stripe) CreateAccount(ctx context.Context, call engine.BillingCall, in engine.AccountInput) (string, error) {
	p := &stripe.AccountParams{Type: stripe.String(string(stripe.AccountTypeStandard)), Metadata: in.Metadata}
	if in.Email != "" {
		p.Email = stripe.String(in.Email)
	}
	params(ctx, call, &p.Params)
	a, err := s.api(call).Accounts.New(p)
	if err != nil {
		return "", fail("create a connected account", err)
	}
	return a.ID, nil
}

// CreateAccountLink returns an onboarding link (POST /v1/account_links).
func (s *Stripe) CreateAccountLink(ctx context.Context, call engine.BillingCall, in engine.AccountLinkInput) (string, error) {
	p := &stripe.AccountLinkParams{
		Account: stripe.String(in.Account), Type: stripe.String("account_onboarding"),
		RefreshURL: stripe.String(in.RefreshURL), ReturnURL: stripe.String(in.ReturnURL),
	}
	params(ctx, call, &p.Params)
	l, err := s.api(call).AccountLinks.New(p)
	if err != nil {
		return "", fail("create an account link", err)
	}
	return l.URL, nil
}

// CreateProduct makes a product (POST /v1/products).
func (s *Stripe) CreateProduct(ctx context.Context, call engine.BillingCall, in engine.ProductInput) (string, error) {
	p := &stripe.ProductParams{Name: stripe.String(in.Name), Metadata: in.Metadata}
	params(ctx, call, &p.Params)
	pr, err := s.api(call).Products.New(p)
	if err != nil {
		return "", fail("create a product", err)
	}
	return pr.ID, nil
}

// UpdateProduct renames a product (POST /v1/products/{id}).
func (s *Stripe) UpdateProduct(ctx context.Context, call engine.BillingCall, id string, in engine.ProductInput) error {
	p := &stripe.ProductParams{Name: stripe.String(in.Name)}
	if len(in.Metadata) > 0 {
		p.Metadata = in.Metadata
	}
	params(ctx, call, &p.Params)
	if _, err := s.api(call).Products.Update(id, p); err != nil {
		return fail("rename a product", err)
	}
	return nil
}

// ArchiveProduct sets a product inactive (POST /v1/products/{id}).
func (s *Stripe) ArchiveProduct(ctx context.Context, call engine.BillingCall, id string) error {
	p := &stripe.ProductParams{Active: stripe.Bool(false)}
	params(ctx, call, &p.Params)
	if _, err := s.api(call).Products.Update(id, p); err != nil {
		return fail("archive a product", err)
	}
	return nil
}

// CreatePrice makes a recurring price (POST /v1/prices); a free tier gets a
// price of 0.
func (s *Stripe) CreatePrice(ctx context.Context, call engine.BillingCall, in engine.PriceInput) (string, error) {
	p := &stripe.PriceParams{
		Product: stripe.String(in.Product), UnitAmount: stripe.Int64(in.Amount), Currency: stripe.String(in.Currency),
		Recurring: &stripe.PriceRecurringParams{Interval: stripe.String(in.Interval)},
		Metadata:  in.Metadata,
	}
	params(ctx, call, &p.Params)
	pr, err := s.api(call).Prices.New(p)
	if err != nil {
		return "", fail("create a price", err)
	}
	return pr.ID, nil
}

// ArchivePrice sets a price inactive (POST /v1/prices/{id}).
func (s *Stripe) ArchivePrice(ctx context.Context, call engine.BillingCall, id string) error {
	p := &stripe.PriceParams{Active: stripe.Bool(false)}
	params(ctx, call, &p.Params)
	if _, err := s.api(call).Prices.Update(id, p); err != nil {
		return fail("archive a price", err)
	}
	return nil
}

// CreateCustomer makes a customer (POST /v1/customers).
func (s *Stripe) CreateCustomer(ctx context.Context, call engine.BillingCall, in engine.BillingCustomerInput) (string, error) {
	p := &stripe.CustomerParams{Metadata: in.Metadata}
	if in.Email != "" {
		p.Email = stripe.String(in.Email)
	}
	if in.Name != "" {
		p.Name = stripe.String(in.Name)
	}
	params(ctx, call, &p.Params)
	c, err := s.api(call).Customers.New(p)
	if err != nil {
		return "", fail("create a customer", err)
	}
	return c.ID, nil
}

// CreateCheckoutSession starts a subscription Checkout
// (POST /v1/checkout/sessions). The metadata goes on the session and on the
// subscription it makes; a card is asked for only when the price needs one.
func (s *Stripe) CreateCheckoutSession(ctx context.Context, call engine.BillingCall, in engine.CheckoutSessionInput) (*engine.CheckoutSession, error) {
	p := &stripe.CheckoutSessionParams{
		Mode:                    stripe.String(string(stripe.CheckoutSessionModeSubscription)),
		LineItems:               []*stripe.CheckoutSessionLineItemParams{{Price: stripe.String(in.Price), Quantity: stripe.Int64(1)}},
		ClientReferenceID:       stripe.String(in.ClientReferenceID),
		Metadata:                in.Metadata,
		SubscriptionData:        &stripe.CheckoutSessionSubscriptionDataParams{Metadata: in.Metadata},
		PaymentMethodCollection: stripe.String("if_required"),
		SuccessURL:              stripe.String(in.SuccessURL),
		CancelURL:               stripe.String(in.CancelURL),
	}
	switch {
	case in.Customer != "":
		p.Customer = stripe.String(in.Customer)
	case in.CustomerEmail != "":
		p.CustomerEmail = stripe.String(in.CustomerEmail)
	}
	params(ctx, call, &p.Params)
	sess, err := s.api(call).CheckoutSessions.New(p)
	if err != nil {
		return nil, fail("create a Checkout session", err)
	}
	return &engine.CheckoutSession{ID: sess.ID, URL: sess.URL}, nil
}

// CreatePortalSession opens a billing portal session
// (POST /v1/billing_portal/sessions).
func (s *Stripe) CreatePortalSession(ctx context.Context, call engine.BillingCall, in engine.PortalSessionInput) (string, error) {
	p := &stripe.BillingPortalSessionParams{Customer: stripe.String(in.Customer)}
	if in.ReturnURL != "" {
		p.ReturnURL = stripe.String(in.ReturnURL)
	}
	params(ctx, call, &p.Params)
	sess, err := s.api(call).BillingPortalSessions.New(p)
	if err != nil {
		return "", fail("create a billing portal session", err)
	}
	return sess.URL, nil
}

// ParseEvent verifies a webhook (signature, engine.WebhookTolerance on the
// timestamp, both ways) and decodes it, whatever API version rendered it:
// the objects are read with small structs of this package that accept the
// shapes of older and newer versions, not with stripe-go's types of its own
// version.
func (s *Stripe) ParseEvent(payload []byte, header, secret string) (*engine.BillingEvent, error) {
	ev, err := webhook.ConstructEventWithOptions(payload, header, secret, webhook.ConstructEventOptions{
		Tolerance: engine.WebhookTolerance, IgnoreAPIVersionMismatch: true,
	})
	switch {
	case errors.Is(err, webhook.ErrTooOld):
		return nil, fmt.Errorf("%w: %v", engine.ErrEventTooOld, err)
	case errors.Is(err, webhook.ErrNoValidSignature), errors.Is(err, webhook.ErrNotSigned), errors.Is(err, webhook.ErrInvalidHeader):
		return nil, fmt.Errorf("%w: %v", engine.ErrEventSignature, err)
	case err != nil:
		return nil, fmt.Errorf("%w: %v", engine.ErrEventPayload, err)
	}
	// stripe-go refuses only timestamps in the past: a signature made for
	// later (a leaked secret, a clock far off) is refused here.
	if at, ok := signedAt(header); !ok {
		return nil, fmt.Errorf("%w: no timestamp", engine.ErrEventSignature)
	} else if ahead := time.Until(at); ahead > engine.WebhookTolerance {
		return nil, fmt.Errorf("%w: timestamp %s is %s in the future", engine.ErrEventTooOld, at.UTC().Format(time.RFC3339), ahead.Round(time.Second))
	}
	if ev.ID == "" || ev.Type == "" || ev.Data == nil {
		return nil, fmt.Errorf("%w: no id, type or data", engine.ErrEventPayload)
	}
	out := &engine.BillingEvent{
		ID: ev.ID, Type: string(ev.Type), Account: ev.Account, Livemode: ev.Livemode,
		Created: time.Unix(ev.Created, 0).UTC(),
	}
	if err := decodeObject(out, ev.Data.Raw); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", engine.ErrEventPayload, ev.Type, err)
	}
	return out, nil
}

// signedAt returns the t= timestamp of a Stripe-Signature header
// ("t=1700000000,v1=…,v0=…").
func signedAt(header string) (time.Time, bool) {
	for _, part := range strings.Split(header, ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(part), "t="); ok {
			sec, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return time.Time{}, false
			}
			return time.Unix(sec, 0), true
		}
	}
	return time.Time{}, false
}

var _ engine.Billing = (*Stripe)(nil)

// leveledLogger sends stripe-go's log to slog.
type leveledLogger struct{ l *slog.Logger }

func (l leveledLogger) Debugf(format string, v ...any) { l.l.Debug(fmt.Sprintf(format, v...)) }
func (l leveledLogger) Infof(format string, v ...any)  { l.l.Debug(fmt.Sprintf(format, v...)) }
func (l leveledLogger) Warnf(format string, v ...any)  { l.l.Warn(fmt.Sprintf(format, v...)) }
func (l leveledLogger) Errorf(format string, v ...any) { l.l.Warn(fmt.Sprintf(format, v...)) }

// --- event objects, as any API version renders them

// expandable is an id that Stripe renders either as a string or, expanded,
// as an object with an id.
type expandable string

func (e *expandable) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*e = ""
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*e = expandable(s)
		return nil
	}
	var o struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &o); err != nil {
		return err
	}
	*e = expandable(o.ID)
	return nil
}

type sessionObject struct {
	ID                string            `json:"id"`
	Mode              string            `json:"mode"`
	PaymentStatus     string            `json:"payment_status"`
	ClientReferenceID string            `json:"client_reference_id"`
	Customer          expandable        `json:"customer"`
	Subscription      expandable        `json:"subscription"`
	Metadata          map[string]string `json:"metadata"`
}

type priceObject struct {
	ID         string `json:"id"`
	UnitAmount *int64 `json:"unit_amount"`
	Currency   string `json:"currency"`
	Recurring  *struct {
		Interval      string `json:"interval"`
		IntervalCount int64  `json:"interval_count"`
	} `json:"recurring"`
}

type subscriptionObject struct {
	ID                string            `json:"id"`
	Status            string            `json:"status"`
	Customer          expandable        `json:"customer"`
	Metadata          map[string]string `json:"metadata"`
	CancelAtPeriodEnd bool              `json:"cancel_at_period_end"`
	// Up to API version 2025-03-31 the period is the subscription's;
	// later versions have it on each item.
	CurrentPeriodStart int64 `json:"current_period_start"`
	CurrentPeriodEnd   int64 `json:"current_period_end"`
	Items              struct {
		Data []struct {
			Price              *priceObject `json:"price"`
			Quantity           int64        `json:"quantity"`
			CurrentPeriodStart int64        `json:"current_period_start"`
			CurrentPeriodEnd   int64        `json:"current_period_end"`
		} `json:"data"`
	} `json:"items"`
}

type invoiceObject struct {
	ID       string     `json:"id"`
	Customer expandable `json:"customer"`
	// Up to API version 2025-03-31; later versions have
	// parent.subscription_details.
	Subscription        expandable `json:"subscription"`
	SubscriptionDetails *struct {
		Metadata map[string]string `json:"metadata"`
	} `json:"subscription_details"`
	Parent *struct {
		SubscriptionDetails *struct {
			Subscription expandable        `json:"subscription"`
			Metadata     map[string]string `json:"metadata"`
		} `json:"subscription_details"`
	} `json:"parent"`
	Lines struct {
		Data []struct {
			Type   string `json:"type"`
			Period *struct {
				Start int64 `json:"start"`
				End   int64 `json:"end"`
			} `json:"period"`
		} `json:"data"`
	} `json:"lines"`
}

type accountObject struct {
	ID               string `json:"id"`
	ChargesEnabled   bool   `json:"charges_enabled"`
	DetailsSubmitted bool   `json:"details_submitted"`
}

func unix(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

// decodeObject decodes the event's object for the types the engine applies.
func decodeObject(ev *engine.BillingEvent, raw json.RawMessage) error {
	switch {
	case strings.HasPrefix(ev.Type, "checkout.session."):
		var o sessionObject
		if err := json.Unmarshal(raw, &o); err != nil {
			return err
		}
		ev.Session = &engine.EventSession{
			ID: o.ID, Mode: o.Mode, PaymentStatus: o.PaymentStatus, ClientReferenceID: o.ClientReferenceID,
			Customer: string(o.Customer), Subscription: string(o.Subscription), Metadata: o.Metadata,
		}
	case strings.HasPrefix(ev.Type, "customer.subscription."):
		var o subscriptionObject
		if err := json.Unmarshal(raw, &o); err != nil {
			return err
		}
		sub := &engine.EventSubscription{
			ID: o.ID, Customer: string(o.Customer), Status: o.Status, Metadata: o.Metadata,
			CancelAtPeriodEnd:  o.CancelAtPeriodEnd,
			CurrentPeriodStart: unix(o.CurrentPeriodStart), CurrentPeriodEnd: unix(o.CurrentPeriodEnd),
		}
		if len(o.Items.Data) > 0 {
			it := o.Items.Data[0]
			if sub.CurrentPeriodStart.IsZero() {
				sub.CurrentPeriodStart, sub.CurrentPeriodEnd = unix(it.CurrentPeriodStart), unix(it.CurrentPeriodEnd)
			}
			if p := it.Price; p != nil {
				q := it.Quantity
				if q < 1 {
					q = 1
				}
				sub.Price, sub.Currency = p.ID, p.Currency
				if p.UnitAmount != nil {
					sub.Amount = *p.UnitAmount * q
				}
				if p.Recurring != nil {
					sub.Interval, sub.IntervalCount = p.Recurring.Interval, p.Recurring.IntervalCount
				}
			}
		}
		ev.Subscription = sub
	case strings.HasPrefix(ev.Type, "invoice."):
		var o invoiceObject
		if err := json.Unmarshal(raw, &o); err != nil {
			return err
		}
		inv := &engine.EventInvoice{ID: o.ID, Customer: string(o.Customer), Subscription: string(o.Subscription)}
		if o.SubscriptionDetails != nil {
			inv.SubscriptionMetadata = o.SubscriptionDetails.Metadata
		}
		if p := o.Parent; p != nil && p.SubscriptionDetails != nil {
			if inv.Subscription == "" {
				inv.Subscription = string(p.SubscriptionDetails.Subscription)
			}
			if inv.SubscriptionMetadata == nil {
				inv.SubscriptionMetadata = p.SubscriptionDetails.Metadata
			}
		}
		// The subscription line's period is the one the invoice pays for
		// (the invoice's own period_start/end is the previous one).
		for _, l := range o.Lines.Data {
			if l.Period == nil || l.Period.End <= l.Period.Start {
				continue
			}
			if end := unix(l.Period.End); end.After(inv.PeriodEnd) {
				inv.PeriodStart, inv.PeriodEnd = unix(l.Period.Start), end
			}
		}
		ev.Invoice = inv
	case ev.Type == "account.updated":
		var o accountObject
		if err := json.Unmarshal(raw, &o); err != nil {
			return err
		}
		ev.AccountUpdate = &engine.EventAccountUpdate{ID: o.ID, ChargesEnabled: o.ChargesEnabled, DetailsSubmitted: o.DetailsSubmitted}
	}
	return nil
}
