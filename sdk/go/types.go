package dream

import "time"

// Customer is an end user of the platform.
type Customer struct {
	ID             string         `json:"id"`
	Email          string         `json:"email"`
	FirstName      string         `json:"firstName"`
	LastName       string         `json:"lastName"`
	Plan           string         `json:"plan"`
	PublishableKey string         `json:"publishableKey"`
	Metadata       map[string]any `json:"metadata"`
	// StripeCustomerID is "" until the customer's first checkout.
	StripeCustomerID string `json:"stripeCustomerId"`
	// StripeAccountID is the Stripe account StripeCustomerID lives on.
	StripeAccountID string        `json:"stripeAccountId,omitempty"`
	Subscription    *Subscription `json:"subscription,omitempty"`
	CreatedAt       time.Time     `json:"createdAt"`
	// Usage is the current period's usage of every metered feature of the
	// plan; only Customers.Get fills it.
	Usage []Usage `json:"usage,omitempty"`
}

// Subscription is a customer's Stripe subscription, as Stripe's webhooks
// last told it.
type Subscription struct {
	ID                  string     `json:"id"`
	Status              string     `json:"status"`
	PastDue             bool       `json:"pastDue"`
	PriceID             string     `json:"priceId"`
	Amount              int64      `json:"amount"`
	Currency            string     `json:"currency"`
	Interval            string     `json:"interval"`
	IntervalCount       int64      `json:"intervalCount"`
	CurrentPeriodStart  *time.Time `json:"currentPeriodStart"`
	CurrentPeriodEnd    *time.Time `json:"currentPeriodEnd"`
	CancelAtPeriodEnd   bool       `json:"cancelAtPeriodEnd"`
	LastPaymentFailedAt *time.Time `json:"lastPaymentFailedAt"`
	UpdatedAt           time.Time  `json:"updatedAt"`
}

// CustomerParams is the body of Customers.Create. Email is required
// (unless ClerkUserID links a Clerk user); Plan defaults to free, or the
// first tier.
type CustomerParams struct {
	Email       string         `json:"email,omitempty"`
	ClerkUserID string         `json:"clerkUserId,omitempty"`
	FirstName   string         `json:"firstName,omitempty"`
	LastName    string         `json:"lastName,omitempty"`
	Plan        string         `json:"plan,omitempty"`
	Password    string         `json:"password,omitempty"`
	Metadata    map[string]any `json:"metadata,omitempty"`
	// IdempotencyKey is sent as the Idempotency-Key header; generated
	// when empty.
	IdempotencyKey string `json:"-"`
}

// CustomerUpdate is the body of Customers.Update: only the fields that are
// set change. Metadata is merged into the stored metadata; a key set to
// nil is removed.
type CustomerUpdate struct {
	Email     *string        `json:"email,omitempty"`
	FirstName *string        `json:"firstName,omitempty"`
	LastName  *string        `json:"lastName,omitempty"`
	Plan      *string        `json:"plan,omitempty"`
	Metadata  map[string]any `json:"metadata,omitempty"`
	// Password sets a new password for dream-api's own end-user sign-in
	// (servers without Clerk); the customer's sessions end.
	Password *string `json:"password,omitempty"`
}

// String returns a pointer to s, for the optional fields of CustomerUpdate.
func String(s string) *string { return &s }

// Int64 returns a pointer to n, for optional numbers.
func Int64(n int64) *int64 { return &n }

// ListParams page through a list. Limit is the page size (1..100, default
// 20 on the server); StartingAfter is the id of the last object of the
// previous page.
type ListParams struct {
	Limit         int
	StartingAfter string
	// Email filters customers by email (case-insensitive).
	Email string
}

// CustomerPage is one page of customers.
type CustomerPage struct {
	Data    []Customer `json:"data"`
	HasMore bool       `json:"hasMore"`
}

// Usage is a customer's use of one feature in the current period. Limit
// and Remaining are -1 when unlimited.
type Usage struct {
	Feature   string `json:"feature"`
	Count     int64  `json:"count"`
	Limit     int64  `json:"limit"`
	Remaining int64  `json:"remaining"`
	// Plan is set in the answers of Track and Check.
	Plan        string    `json:"plan,omitempty"`
	PeriodStart time.Time `json:"periodStart"`
	PeriodEnd   time.Time `json:"periodEnd"`
}

// UsageReport is a customer's usage of every metered feature of its plan.
type UsageReport struct {
	CustomerID string  `json:"customerId"`
	Plan       string  `json:"plan"`
	Usage      []Usage `json:"usage"`
}

// UsageHistoryParams is the query of UsageHistory. Zero fields are absent.
type UsageHistoryParams struct {
	CustomerID string
	// Feature keeps only this feature's periods.
	Feature string
	// From keeps only periods that end after it.
	From time.Time
	// To keeps only periods that start at or before it.
	To time.Time
	// Limit caps the rows, 1 to 100 (the server's default: 20).
	Limit int
}

// PastUsage is one feature in one past period. Limit and Remaining are
// those of the customer's plan as it is now (nil when it does not meter
// the feature), not necessarily the ones in force then; -1 is unlimited.
type PastUsage struct {
	Feature     string    `json:"feature"`
	Count       int64     `json:"count"`
	Limit       *int64    `json:"limit"`
	Remaining   *int64    `json:"remaining"`
	PeriodStart time.Time `json:"periodStart"`
	PeriodEnd   time.Time `json:"periodEnd"`
}

// UsageHistory is a customer's past periods, newest first. HasMore says
// more matched than the limit: narrow From/To to see older ones.
type UsageHistory struct {
	Data    []PastUsage `json:"data"`
	HasMore bool        `json:"hasMore"`
}

// TrackParams is the body of TrackWith and CheckWith. Feature defaults to
// "requests", Quantity to 1.
type TrackParams struct {
	CustomerID string         `json:"customerId"`
	Feature    string         `json:"feature,omitempty"`
	Quantity   int64          `json:"quantity,omitempty"`
	Metadata   map[string]any `json:"metadata,omitempty"`
	// IdempotencyKey is sent as the Idempotency-Key header; generated
	// when empty. A retry with the same key is never counted twice.
	IdempotencyKey string `json:"-"`
}

// TrackEvent is one event of TrackBatch: TrackParams, and a key of the
// event's own. Feature defaults to "requests", Quantity to 1.
type TrackEvent struct {
	CustomerID string         `json:"customerId"`
	Feature    string         `json:"feature,omitempty"`
	Quantity   int64          `json:"quantity,omitempty"`
	Metadata   map[string]any `json:"metadata,omitempty"`
	// IdempotencyKey, when set, counts the event once: an event sent
	// again with it (within 24 h, in any batch) answers its first answer.
	IdempotencyKey string `json:"idempotencyKey,omitempty"`
}

// BatchOptions are the options of TrackBatch.
type BatchOptions struct {
	// IdempotencyKey is the request's Idempotency-Key; generated when
	// empty. A retry with the same key replays the first answer.
	IdempotencyKey string
}

// BatchResult is what the server answered for one event of TrackBatch:
// Result when it was allowed (Status 200), else Err — a *TierLimitError
// when its limit is reached (nothing counted), an *Error otherwise
// (not_found, unknown_feature, validation_failed, rate_limited,
// idempotency_conflict, plugin_error).
type BatchResult struct {
	// Status is the HTTP status /api/track would have answered.
	Status int
	Result *TrackResult
	Err    error
}

// TrackResult is the decision and the usage after it.
type TrackResult struct {
	Success bool          `json:"success"`
	Allowed bool          `json:"allowed"`
	Usage   Usage         `json:"usage"`
	Plugin  *PluginResult `json:"plugin"`
}

// PluginResult is the limit plugin that decided.
type PluginResult struct {
	Version string  `json:"version"`
	Message *string `json:"message"`
	// Fallback is true when the plugin failed and built-in limits decided.
	Fallback bool `json:"fallback,omitempty"`
}

// Tier is one tier of the tier config. Limits of -1 are unlimited.
type Tier struct {
	Name               string           `json:"name"`
	DisplayName        string           `json:"displayName"`
	Price              int64            `json:"price"`
	Currency           string           `json:"currency"`
	Interval           string           `json:"interval"`
	Limits             map[string]int64 `json:"limits"`
	Features           map[string]bool  `json:"features"`
	RateLimitPerMinute int64            `json:"rateLimitPerMinute"`
	// PriceID and ProductID are "" without Stripe.
	PriceID   string `json:"priceId"`
	ProductID string `json:"productId"`
}

// TierInput is a tier as given to Tiers.Replace; only Name is required.
// Limit is shorthand for Limits["requests"].
type TierInput struct {
	Name               string           `json:"name"`
	DisplayName        string           `json:"displayName,omitempty"`
	Price              int64            `json:"price,omitempty"`
	Currency           string           `json:"currency,omitempty"`
	Interval           string           `json:"interval,omitempty"`
	Limit              *int64           `json:"limit,omitempty"`
	Limits             map[string]int64 `json:"limits,omitempty"`
	Features           map[string]bool  `json:"features,omitempty"`
	RateLimitPerMinute int64            `json:"rateLimitPerMinute,omitempty"`
}

// Input is t as a TierInput, to change and give back to Tiers.Replace.
func (t Tier) Input() TierInput {
	return TierInput{Name: t.Name, DisplayName: t.DisplayName, Price: t.Price, Currency: t.Currency,
		Interval: t.Interval, Limits: t.Limits, Features: t.Features, RateLimitPerMinute: t.RateLimitPerMinute}
}

// CheckoutOptions are the optional fields of Checkout.
type CheckoutOptions struct {
	SuccessURL string `json:"successUrl,omitempty"`
	CancelURL  string `json:"cancelUrl,omitempty"`
	// IdempotencyKey is also passed on to Stripe; generated when empty.
	IdempotencyKey string `json:"-"`
}

// CheckoutSession is the Stripe Checkout to send the customer to.
type CheckoutSession struct {
	URL       string `json:"url"`
	SessionID string `json:"sessionId"`
}

// PortalOptions are the optional fields of Portal.
type PortalOptions struct {
	ReturnURL      string `json:"returnUrl,omitempty"`
	IdempotencyKey string `json:"-"`
}

// PortalSession is the Stripe billing portal to send the customer to.
type PortalSession struct {
	URL string `json:"url"`
}

// KeyRecord is a key pair as stored; the secret is never returned after
// creation.
type KeyRecord struct {
	ID             string     `json:"id"`
	PlatformID     string     `json:"platformId"`
	Mode           string     `json:"mode"`
	PublishableKey string     `json:"publishableKey"`
	SecretKeyHint  string     `json:"secretKeyHint"`
	CreatedAt      time.Time  `json:"createdAt"`
	LastUsedAt     *time.Time `json:"lastUsedAt"`
	RevokedAt      *time.Time `json:"revokedAt"`
	ExpiresAt      *time.Time `json:"expiresAt"`
}

// KeyCreateParams is the body of Keys.Create. With Rotate (a key_… id), the
// new pair replaces that one: the old secret keeps working for
// GracePeriodHours (default 24).
type KeyCreateParams struct {
	Rotate           string `json:"rotate,omitempty"`
	GracePeriodHours *int   `json:"gracePeriodHours,omitempty"`
	IdempotencyKey   string `json:"-"`
}

// KeyCreated is a new key pair; SecretKey is shown only here.
type KeyCreated struct {
	Key            KeyRecord `json:"key"`
	PublishableKey string    `json:"publishableKey"`
	SecretKey      string    `json:"secretKey"`
}

// PluginVersion is one uploaded module.
type PluginVersion struct {
	Version    string    `json:"version"`
	SHA256     string    `json:"sha256"`
	Size       int64     `json:"size"`
	UploadedAt time.Time `json:"uploadedAt"`
}

// PluginStatus is a version and whether it is active.
type PluginStatus struct {
	PluginVersion
	Active  bool   `json:"active"`
	OnError string `json:"onError"`
}

// PluginOverview is the active version (nil when built-in limits decide),
// what decides when it fails, and every uploaded version.
type PluginOverview struct {
	Active  *PluginVersion  `json:"active"`
	OnError string          `json:"onError"`
	History []PluginVersion `json:"history"`
}

// PluginUploadOptions are the options of Plugin.Upload.
type PluginUploadOptions struct {
	// OnError is what decides when the plugin fails: "builtin" (the
	// default) or "deny".
	OnError        string
	IdempotencyKey string
}

// DryRunParams is the input of Plugin.DryRun; every field is optional.
type DryRunParams struct {
	// Version runs that version instead of the active one.
	Version    string         `json:"-"`
	Plan       string         `json:"plan,omitempty"`
	Feature    string         `json:"feature,omitempty"`
	Quantity   *int64         `json:"quantity,omitempty"`
	Usage      *int64         `json:"usage,omitempty"`
	Limit      *int64         `json:"limit,omitempty"`
	CustomerID string         `json:"customerId,omitempty"`
	Metadata   map[string]any `json:"metadata,omitempty"`
	// State is the customer's plugin state (at most 1024 bytes).
	State []byte `json:"state,omitempty"`
}

// DryRunResult is what the module decided, its log and how long it took.
type DryRunResult struct {
	Allowed        bool     `json:"allowed"`
	Cost           int64    `json:"cost"`
	Limit          int64    `json:"limit"`
	Message        *string  `json:"message"`
	State          []byte   `json:"state"`
	DurationMicros int64    `json:"durationMicros"`
	Log            []string `json:"log"`
}

// Money is an amount in minor units of a currency.
type Money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// Stats are the platform's numbers in the key's mode.
type Stats struct {
	Mode             string           `json:"mode"`
	Customers        int64            `json:"customers"`
	CustomersPerPlan map[string]int64 `json:"customersPerPlan"`
	Subscriptions    struct {
		Active   int64 `json:"active"`
		Trialing int64 `json:"trialing"`
		PastDue  int64 `json:"pastDue"`
		Canceled int64 `json:"canceled"`
	} `json:"subscriptions"`
	MRR         []Money    `json:"mrr"`
	Days        []StatsDay `json:"days,omitempty"`
	GeneratedAt time.Time  `json:"generatedAt"`
}

// StatsDay is one feature's usage on one day (servers that report it).
type StatsDay struct {
	Date    string `json:"date"`
	Feature string `json:"feature"`
	Count   int64  `json:"count"`
	Denied  int64  `json:"denied"`
}

// WebhookParams is the body of Webhooks.Create. URL must be https (http
// and private addresses only on a server with DREAM_WEBHOOK_ALLOW_PRIVATE=1);
// Events are the event types to receive, nil or empty meaning all ("*").
type WebhookParams struct {
	URL         string   `json:"url"`
	Events      []string `json:"events,omitempty"`
	Description string   `json:"description,omitempty"`
	// IdempotencyKey is sent as the Idempotency-Key header; generated
	// when empty.
	IdempotencyKey string `json:"-"`
}

// WebhookUpdate is the body of Webhooks.Update: only the fields that are
// set change. Enabled true turns on an endpoint the server disabled.
type WebhookUpdate struct {
	URL         *string  `json:"url,omitempty"`
	Events      []string `json:"events,omitempty"`
	Description *string  `json:"description,omitempty"`
	Enabled     *bool    `json:"enabled,omitempty"`
}

// Bool returns a pointer to b, for optional booleans.
func Bool(b bool) *bool { return &b }

// WebhookEndpoint is a URL that receives the platform's events in one
// mode. DisabledReason is set when the server disabled it; FailingSince
// is the first failed attempt since the last success.
type WebhookEndpoint struct {
	ID             string     `json:"id"`
	URL            string     `json:"url"`
	Events         []string   `json:"events"`
	Description    string     `json:"description"`
	Enabled        bool       `json:"enabled"`
	CreatedAt      time.Time  `json:"createdAt"`
	DisabledReason string     `json:"disabledReason,omitempty"`
	FailingSince   *time.Time `json:"failingSince,omitempty"`
}

// WebhookCreated is an endpoint with its signing secret (whsec_…), which
// the server shows only in the answers of Create and RotateSecret.
type WebhookCreated struct {
	Endpoint WebhookEndpoint `json:"endpoint"`
	Secret   string          `json:"secret"`
}

// WebhookDelivery is one event sent to an endpoint, with its last
// attempt. State is "pending", "delivered" or "failed"; Status is the
// HTTP status of the last attempt, 0 when it got no answer.
type WebhookDelivery struct {
	EventID     string     `json:"eventId"`
	EndpointID  string     `json:"endpointId"`
	Type        string     `json:"type"`
	State       string     `json:"state"`
	Attempt     int        `json:"attempt"`
	Status      int        `json:"status"`
	LatencyMs   int64      `json:"latencyMs"`
	Error       string     `json:"error"`
	NextRetryAt *time.Time `json:"nextRetryAt"`
	CreatedAt   time.Time  `json:"createdAt"`
	AttemptedAt *time.Time `json:"attemptedAt"`
}

// WebhookDeliveryPage is one page of deliveries, newest first.
type WebhookDeliveryPage struct {
	Data    []WebhookDelivery `json:"data"`
	HasMore bool              `json:"hasMore"`
}
