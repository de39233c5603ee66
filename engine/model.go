package engine

import (
	"encoding/json"
	"time"
)

// Platform is a developer's account: the tenant that owns keys, tiers and
// customers. Its ID never changes when keys rotate.
type Platform struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Email     string    `json:"email,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	// SuspendedAt is when the operator suspended the platform (nil when it
	// is not): its keys are refused, its Stripe webhooks still apply
	// (Platforms.Suspend). Records from before suspension existed decode
	// with nil.
	SuspendedAt *time.Time `json:"suspendedAt"`
	// SuspendedReason is the operator's note, shown to the operator and on
	// the developer's dashboard; "" when none was given.
	SuspendedReason string `json:"suspendedReason,omitempty"`
}

// Suspended reports whether the operator has suspended p.
func (p *Platform) Suspended() bool { return p.SuspendedAt != nil }

// Key is one key record: a publishable key and the SHA-256 of its secret
// key. The secret itself is never stored.
type Key struct {
	ID             string     `json:"id"`
	PlatformID     string     `json:"platformId"`
	Mode           Mode       `json:"mode"`
	PublishableKey string     `json:"publishableKey"`
	SecretHash     [32]byte   `json:"-"`
	SecretHint     string     `json:"secretKeyHint"` // "sk_live_…abcd": enough to recognise, not to use
	CreatedAt      time.Time  `json:"createdAt"`
	LastUsedAt     *time.Time `json:"lastUsedAt"`
	RevokedAt      *time.Time `json:"revokedAt"`
	ExpiresAt      *time.Time `json:"expiresAt"`
}

// Active reports whether k may authenticate at now.
func (k *Key) Active(now time.Time) bool {
	if k.RevokedAt != nil {
		return false
	}
	return k.ExpiresAt == nil || now.Before(*k.ExpiresAt)
}

// Tenant is the world the key acts in.
func (k *Key) Tenant() Tenant { return Tenant{PlatformID: k.PlatformID, Mode: k.Mode} }

// MayManageKeys returns EFORBIDDEN for a key that was rotated: in its grace
// period it still calls the API, but a leaked key must not mint a new pair
// or revoke its successor.
func (k *Key) MayManageKeys() error {
	if k.ExpiresAt != nil {
		return Errorf(EFORBIDDEN, "This key was rotated and works only until %s; manage keys with its successor.", k.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return nil
}

// Customer is a platform's end user, in one mode.
type Customer struct {
	ID               string         `json:"id"`
	Email            string         `json:"email"`
	FirstName        string         `json:"firstName"`
	LastName         string         `json:"lastName"`
	Plan             string         `json:"plan"`
	PublishableKey   string         `json:"publishableKey"`
	Metadata         map[string]any `json:"metadata"`
	StripeCustomerID *string        `json:"stripeCustomerId"`
	CreatedAt        time.Time      `json:"createdAt"`
	// StripeAccountID is the Stripe account StripeCustomerID lives on;
	// Subscription is the customer's subscription there, as Stripe's
	// webhooks last told it (stripe.go).
	StripeAccountID string        `json:"stripeAccountId,omitempty"`
	Subscription    *Subscription `json:"subscription,omitempty"`

	// Subscription period from Stripe; zero when the customer has none and
	// calendar periods apply.
	PeriodStart time.Time `json:"-"`
	PeriodEnd   time.Time `json:"-"`
}

// Clone returns a copy of c that shares nothing mutable with it (metadata
// values are shared: they are replaced, never changed in place).
func (c *Customer) Clone() *Customer {
	cp := *c
	if c.Metadata != nil {
		cp.Metadata = make(map[string]any, len(c.Metadata))
		for k, v := range c.Metadata {
			cp.Metadata[k] = v
		}
	}
	if c.StripeCustomerID != nil {
		id := *c.StripeCustomerID
		cp.StripeCustomerID = &id
	}
	if c.Subscription != nil {
		sub := *c.Subscription
		for _, p := range []**time.Time{&sub.CurrentPeriodStart, &sub.CurrentPeriodEnd, &sub.LastPaymentFailedAt} {
			if *p != nil {
				t := **p
				*p = &t
			}
		}
		if sub.PriceID != nil {
			id := *sub.PriceID
			sub.PriceID = &id
		}
		cp.Subscription = &sub
	}
	return &cp
}

// Unlimited is the limit value that means no limit.
const Unlimited = -1

// Tier is one plan of a platform's tier config.
type Tier struct {
	Name               string           `json:"name"`
	DisplayName        string           `json:"displayName"`
	Price              int64            `json:"price"`
	Currency           string           `json:"currency"`
	Interval           string           `json:"interval"`
	Limits             map[string]int64 `json:"limits"`
	Features           map[string]bool  `json:"features"`
	RateLimitPerMinute int64            `json:"rateLimitPerMinute"`
	PriceID            *string          `json:"priceId"`
	ProductID          *string          `json:"productId"`
}

// Limit returns the tier's limit for feature and whether the tier meters it
// at all.
func (t *Tier) Limit(feature string) (int64, bool) {
	l, ok := t.Limits[feature]
	return l, ok
}

// TierConfig is a platform's ordered list of tiers.
type TierConfig struct {
	Tiers []Tier `json:"tiers"`
}

// Knows reports whether some tier meters feature (limits) or lists it
// (features).
func (c *TierConfig) Knows(feature string) bool {
	for i := range c.Tiers {
		if _, ok := c.Tiers[i].Limits[feature]; ok {
			return true
		}
		if _, ok := c.Tiers[i].Features[feature]; ok {
			return true
		}
	}
	return false
}

// Tier returns the tier called name, or nil.
func (c *TierConfig) Tier(name string) *Tier {
	for i := range c.Tiers {
		if c.Tiers[i].Name == name {
			return &c.Tiers[i]
		}
	}
	return nil
}

// DefaultTiers is the tier config of a new platform.
func DefaultTiers() *TierConfig {
	return &TierConfig{Tiers: []Tier{
		{Name: "free", DisplayName: "Free", Price: 0, Currency: "usd", Interval: "month",
			Limits: map[string]int64{"requests": 100}, Features: map[string]bool{}},
		{Name: "pro", DisplayName: "Pro", Price: 1500, Currency: "usd", Interval: "month",
			Limits: map[string]int64{"requests": 10000}, Features: map[string]bool{}},
	}}
}

// Usage is a customer's consumption of one feature in one period.
type Usage struct {
	Feature     string    `json:"feature"`
	Count       int64     `json:"count"`
	Limit       int64     `json:"limit"`
	Remaining   int64     `json:"remaining"`
	Plan        string    `json:"plan,omitempty"`
	PeriodStart time.Time `json:"periodStart"`
	PeriodEnd   time.Time `json:"periodEnd"`
}

// remaining is what is left of limit after count; Unlimited stays Unlimited.
func remaining(count, limit int64) int64 {
	if limit < 0 {
		return Unlimited
	}
	if count >= limit {
		return 0
	}
	return limit - count
}

// CounterKey names one usage counter: a customer, a feature and the start of
// a period.
type CounterKey struct {
	Tenant
	CustomerID  string
	Feature     string
	PeriodStart time.Time
}

// Counter is the stored value of a usage counter.
type Counter struct {
	Count     int64
	PeriodEnd time.Time
}

// Period is one stored counter as history: CounterKey's period with its count.
type Period struct {
	Feature     string    `json:"feature"`
	Count       int64     `json:"count"`
	PeriodStart time.Time `json:"periodStart"`
	PeriodEnd   time.Time `json:"periodEnd"`
}

// IdemRecord is the first response to a request that carried an
// Idempotency-Key; a replay returns it byte for byte.
type IdemRecord struct {
	RequestHash [32]byte
	RequestID   string // of the first request; a replay answers with it
	Sealed      bool   // Body is encrypted (it holds a secret)
	Status      int
	Body        []byte
	CreatedAt   time.Time
}

// Idempotency carries a request's Idempotency-Key into an operation, so that
// the response is stored in the same batch as the operation's effect.
type Idempotency struct {
	Key         string
	RequestHash [32]byte
	RequestID   string
	// Sensitive marks responses that hold secrets: they are stored
	// encrypted.
	Sensitive bool
	// Render turns the operation's result into the exact status and body
	// the client gets. It may be called while a lock is held: keep it cheap.
	Render func(result any) (status int, body []byte)
}

// IdempotencyTTL is how long a replay returns the first response.
const IdempotencyTTL = 24 * time.Hour

// Page selects part of a list: at most Limit items after the id StartingAfter.
type Page struct {
	Limit         int
	StartingAfter string
}

// rawJSON keeps metadata as given for policies that read it.
type rawJSON = json.RawMessage
