package engine

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Billing is the payment provider as the engine uses it: Stripe, through the
// engine/billing adapter. The engine decides what to create and when; the
// adapter only speaks the provider's API. Every call says which key it runs
// with and, for Stripe Connect, on which connected account (BillingCall).
//
// Methods that reach the provider return a *BillingError when it answers
// with an error or cannot be reached. Implementations are safe for
// concurrent use.
type Billing interface {
	// Account returns the account the call's key belongs to
	// (GET /v1/account): how a key given by a developer is checked.
	Account(ctx context.Context, call BillingCall) (*BillingAccount, error)
	// CreateAccount makes a Standard connected account with the operator's
	// key (POST /v1/accounts) and returns its id.
	CreateAccount(ctx context.Context, call BillingCall, in AccountInput) (string, error)
	// CreateAccountLink returns the URL of an onboarding link for a
	// connected account (POST /v1/account_links).
	CreateAccountLink(ctx context.Context, call BillingCall, in AccountLinkInput) (string, error)

	// CreateProduct returns the id of a new product (POST /v1/products).
	CreateProduct(ctx context.Context, call BillingCall, in ProductInput) (string, error)
	// UpdateProduct renames a product (POST /v1/products/{id}).
	UpdateProduct(ctx context.Context, call BillingCall, id string, in ProductInput) error
	// ArchiveProduct sets a product inactive (POST /v1/products/{id} active=false).
	ArchiveProduct(ctx context.Context, call BillingCall, id string) error
	// CreatePrice returns the id of a new recurring price (POST /v1/prices).
	CreatePrice(ctx context.Context, call BillingCall, in PriceInput) (string, error)
	// ArchivePrice sets a price inactive (POST /v1/prices/{id} active=false):
	// prices are immutable, a changed amount is a new price.
	ArchivePrice(ctx context.Context, call BillingCall, id string) error

	// CreateCustomer returns the id of a new customer (POST /v1/customers).
	CreateCustomer(ctx context.Context, call BillingCall, in BillingCustomerInput) (string, error)
	// CreateCheckoutSession starts a subscription Checkout
	// (POST /v1/checkout/sessions).
	CreateCheckoutSession(ctx context.Context, call BillingCall, in CheckoutSessionInput) (*CheckoutSession, error)
	// CreatePortalSession returns the URL of a billing portal session
	// (POST /v1/billing_portal/sessions).
	CreatePortalSession(ctx context.Context, call BillingCall, in PortalSessionInput) (string, error)

	// ParseEvent checks a webhook's signature header against secret, with a
	// tolerance of WebhookTolerance on its timestamp, and decodes the event,
	// whatever API version it was rendered with. It returns
	// ErrEventTooOld, ErrEventSignature or ErrEventPayload (wrapped).
	ParseEvent(payload []byte, header, secret string) (*BillingEvent, error)
}

// WebhookTolerance is how far a webhook's signed timestamp may be from now,
// in the past or in the future.
const WebhookTolerance = 5 * time.Minute

// Errors of Billing.ParseEvent.
var (
	ErrEventSignature = errors.New("engine: the Stripe-Signature header does not verify")
	ErrEventTooOld    = errors.New("engine: the Stripe-Signature timestamp is outside the tolerance")
	ErrEventPayload   = errors.New("engine: the event is not valid JSON of the expected shape")
)

// BillingCall says how one provider call is made.
type BillingCall struct {
	// Key is the secret key the call runs with: the operator's (Connect)
	// or the platform's own (connected by key).
	Key string
	// Account is the connected account the call acts on (the
	// Stripe-Account header); "" for the key's own account.
	Account string
	// IdempotencyKey makes a retried create return the first result; ""
	// lets the adapter make one per call (safe retries of that call only).
	IdempotencyKey string
}

// BillingError is an error of the payment provider.
type BillingError struct {
	Op      string // what was attempted, e.g. "create price"
	Status  int    // the provider's HTTP status; 0 when it was not reached
	Type    string // the provider's error type, e.g. "invalid_request_error"
	Code    string // the provider's error code, if any
	Message string // the provider's message, safe to show
	Err     error  // the underlying error when the provider was not reached
}

func (e *BillingError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("billing: %s: Stripe could not be reached: %v", e.Op, e.Err)
	}
	return fmt.Sprintf("billing: %s: Stripe answered %d %s: %s", e.Op, e.Status, e.Type, e.Message)
}

func (e *BillingError) Unwrap() error { return e.Err }

// BillingAccount is a provider account as GET /v1/account shows it.
type BillingAccount struct {
	ID               string
	ChargesEnabled   bool
	DetailsSubmitted bool
}

// AccountInput describes a connected account to create.
type AccountInput struct {
	Email    string
	Metadata map[string]string
}

// AccountLinkInput asks for an onboarding link.
type AccountLinkInput struct {
	Account    string
	RefreshURL string // where Stripe sends the developer when the link expired
	ReturnURL  string // where Stripe sends the developer after onboarding
}

// ProductInput describes a product: one per tier.
type ProductInput struct {
	Name     string
	Metadata map[string]string
}

// PriceInput describes a recurring price of a product.
type PriceInput struct {
	Product  string
	Amount   int64 // minor units per interval; 0 for a free tier
	Currency string
	Interval string // day, week, month or year
	Metadata map[string]string
}

// BillingCustomerInput describes a provider customer.
type BillingCustomerInput struct {
	Email    string
	Name     string
	Metadata map[string]string
}

// CheckoutSessionInput describes a subscription Checkout.
type CheckoutSessionInput struct {
	// Customer is the provider's customer id; without it, CustomerEmail
	// pre-fills the form and the provider creates the customer.
	Customer          string
	CustomerEmail     string
	Price             string
	ClientReferenceID string
	// Metadata goes on the session and on the subscription it creates.
	Metadata   map[string]string
	SuccessURL string
	CancelURL  string
}

// CheckoutSession is a created Checkout.
type CheckoutSession struct {
	ID  string
	URL string
}

// PortalSessionInput describes a billing portal session.
type PortalSessionInput struct {
	Customer  string
	ReturnURL string
}

// BillingEvent is a verified webhook event, with the objects the engine
// applies decoded from the event itself (never fetched again).
type BillingEvent struct {
	ID       string
	Type     string
	Account  string // the connected account it comes from; "" for the key's own account
	Livemode bool
	Created  time.Time

	// One of these is set, by type; none for types the engine ignores.
	Session       *EventSession       // checkout.session.*
	Subscription  *EventSubscription  // customer.subscription.*
	Invoice       *EventInvoice       // invoice.*
	AccountUpdate *EventAccountUpdate // account.updated
}

// Mode is the mode the event belongs to.
func (e *BillingEvent) Mode() Mode {
	if e.Livemode {
		return Live
	}
	return Test
}

// EventSession is a Checkout Session of an event.
type EventSession struct {
	ID                string
	Mode              string // payment, setup or subscription
	PaymentStatus     string // paid, unpaid or no_payment_required
	ClientReferenceID string
	Customer          string
	Subscription      string
	Metadata          map[string]string
}

// EventSubscription is a subscription of an event, with its first item's
// price.
type EventSubscription struct {
	ID                 string
	Customer           string
	Status             string // active, trialing, past_due, canceled, unpaid, incomplete, incomplete_expired, paused
	Price              string
	Amount             int64 // unit amount × quantity, minor units per interval
	Currency           string
	Interval           string
	IntervalCount      int64
	CurrentPeriodStart time.Time
	CurrentPeriodEnd   time.Time
	CancelAtPeriodEnd  bool
	Metadata           map[string]string
}

// EventInvoice is an invoice of an event.
type EventInvoice struct {
	ID           string
	Customer     string
	Subscription string
	// SubscriptionMetadata is the subscription's metadata as the invoice
	// carries it.
	SubscriptionMetadata map[string]string
	// PeriodStart and PeriodEnd are the subscription period the invoice
	// pays for (its subscription line); zero when it has none.
	PeriodStart time.Time
	PeriodEnd   time.Time
}

// EventAccountUpdate is a connected account of an account.updated event.
type EventAccountUpdate struct {
	ID               string
	ChargesEnabled   bool
	DetailsSubmitted bool
}
