package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/url"
	"strings"
	"sync"
	"time"
)

// StripeConfig turns Stripe billing on. The zero value leaves it off: the
// Stripe operations answer ESTRIPENOTCONNECTED and tier configs are not
// synced to Stripe.
type StripeConfig struct {
	// Billing is the provider adapter (engine/billing). Required for
	// anything Stripe.
	Billing Billing
	// Sealer encrypts platforms' Stripe keys and webhook secrets at rest.
	// Required with Billing.
	Sealer *Sealer
	// OperatorKeys are the operator's own Stripe secret keys by mode
	// (STRIPE_SECRET_KEY): Connect onboarding in a mode needs one, and
	// every call for a platform connected through Connect runs with it.
	OperatorKeys map[Mode]string
	// WebhookSecrets are the signing secrets accepted on /webhook/stripe
	// (STRIPE_WEBHOOK_SECRET): Connect events and the operator's own.
	WebhookSecrets []string
	// PlatformPriceID is the operator's price a platform subscribes to
	// (DREAM_PLATFORM_PRICE_ID). When set, a platform's live keys work only
	// while that subscription is active; test keys always work.
	PlatformPriceID string
	// PublicURL returns the server's public base URL, for default return
	// URLs and the webhook URLs shown to developers. Defaults to
	// http://127.0.0.1:8787.
	PublicURL func() string
}

// Stripe connects platforms to Stripe and keeps customers' plans in step
// with their subscriptions: connections, tier prices, Checkout, the billing
// portal, webhooks and the operator's own billing of platforms. Safe for
// concurrent use.
//
// Calls to Stripe are never made under the engine's lock stripes: an
// operation asks Stripe first and writes what it learnt in one batch after,
// so that a Stripe failure leaves nothing half-written.
type Stripe struct {
	c   *core
	cfg StripeConfig

	// syncMu serializes tier syncs per platform and mode, across their
	// Stripe calls, so that two syncs never make prices for the same tier.
	syncMu   sync.Mutex
	syncing  map[string]*sync.Mutex
	paidMu   sync.RWMutex
	paidLive map[string]bool // operator billing: platform → live keys allowed
}

func newStripe(c *core, cfg StripeConfig) *Stripe {
	if cfg.Sealer == nil {
		cfg.Sealer = c.sealer
	}
	if cfg.PublicURL == nil {
		cfg.PublicURL = func() string { return "http://127.0.0.1:8787" }
	}
	return &Stripe{c: c, cfg: cfg, syncing: make(map[string]*sync.Mutex), paidLive: make(map[string]bool)}
}

// How a platform is connected.
const (
	// StripeViaConnect: a Standard account made through Stripe Connect with
	// the operator's key; calls carry the Stripe-Account header.
	StripeViaConnect = "connect"
	// StripeViaKey: the platform's own secret key, stored sealed.
	StripeViaKey = "key"
)

// operatorTenant scopes the operator's own Stripe events (its billing of
// platforms) in the event log.
const operatorTenant = "operator"

// StripeConnection is a platform's Stripe account in one mode, as stored.
type StripeConnection struct {
	Mode      Mode   `json:"mode"`
	Method    string `json:"method"` // StripeViaConnect or StripeViaKey
	AccountID string `json:"accountId"`
	// SecretKey and WebhookSecret are sealed (AES-GCM) when connected by
	// key; KeyHint is enough to recognise the key, not to use it.
	SecretKey        []byte    `json:"secretKey,omitempty"`
	WebhookSecret    []byte    `json:"webhookSecret,omitempty"`
	KeyHint          string    `json:"keyHint,omitempty"`
	ChargesEnabled   bool      `json:"chargesEnabled"`
	DetailsSubmitted bool      `json:"detailsSubmitted"`
	CreatedAt        time.Time `json:"createdAt"`
	UpdatedAt        time.Time `json:"updatedAt"`
}

// StripeStatus is what GET /api/platform/stripe shows: never a secret.
type StripeStatus struct {
	Mode      Mode    `json:"mode"`
	Connected bool    `json:"connected"`
	Method    *string `json:"method"`
	AccountID *string `json:"accountId"`
	// ChargesEnabled and DetailsSubmitted follow the account's onboarding
	// (account.updated events, or the key check).
	ChargesEnabled   bool       `json:"chargesEnabled"`
	DetailsSubmitted bool       `json:"detailsSubmitted"`
	SecretKeyHint    *string    `json:"secretKeyHint"`
	WebhookURL       *string    `json:"webhookUrl"`
	ConnectedAt      *time.Time `json:"connectedAt"`
	// ConnectAvailable says whether this server can onboard through
	// Stripe Connect in this mode (the operator configured a key for it).
	ConnectAvailable bool `json:"connectAvailable"`
}

// StripeConnected is the answer of POST /api/platform/stripe/connect: the
// onboarding link (Connect; null when connected by key) and the status.
type StripeConnected struct {
	URL *string `json:"url"`
	*StripeStatus
}

// Subscription is a customer's Stripe subscription, as the webhooks last
// told it.
type Subscription struct {
	ID     string `json:"id"`
	Status string `json:"status"` // Stripe's: active, trialing, past_due, canceled, unpaid, incomplete, …
	// PastDue is set by invoice.payment_failed and cleared by invoice.paid.
	PastDue bool    `json:"pastDue"`
	PriceID *string `json:"priceId"`
	// Amount is minor units per Interval (unit amount × quantity); 0 when
	// not known yet.
	Amount              int64      `json:"amount"`
	Currency            string     `json:"currency"`
	Interval            string     `json:"interval"`
	IntervalCount       int64      `json:"intervalCount"`
	CurrentPeriodStart  *time.Time `json:"currentPeriodStart"`
	CurrentPeriodEnd    *time.Time `json:"currentPeriodEnd"`
	CancelAtPeriodEnd   bool       `json:"cancelAtPeriodEnd"`
	LastPaymentFailedAt *time.Time `json:"lastPaymentFailedAt"`
	// UpdatedAt is the creation time of the last event applied.
	UpdatedAt time.Time `json:"updatedAt"`
}

// StripeSubscription orders the events of one subscription: an event
// created before the last one applied never overrides it.
type StripeSubscription struct {
	ID         string `json:"id"`
	CustomerID string `json:"customerId"`
	Status     string `json:"status"`
	// SubscriptionEventAt and InvoiceEventAt are the creation times of the
	// last customer.subscription.* and invoice.* events applied.
	SubscriptionEventAt time.Time `json:"subscriptionEventAt"`
	InvoiceEventAt      time.Time `json:"invoiceEventAt"`
}

// StripeCatalog is a platform's Stripe products and prices in one mode: one
// product and one current price per tier.
type StripeCatalog struct {
	AccountID string                 `json:"accountId"`
	Tiers     map[string]*StripeTier `json:"tiers"`
	// Prices maps every price ever made for a tier to the tier, archived
	// ones included: subscriptions stay on the price they were sold at.
	Prices map[string]string `json:"prices"`
}

// StripeTier is the product and current price of a tier, with what the price
// was made from.
type StripeTier struct {
	ProductID string `json:"productId"`
	PriceID   string `json:"priceId"`
	Name      string `json:"name"`
	Amount    int64  `json:"amount"`
	Currency  string `json:"currency"`
	Interval  string `json:"interval"`
}

// matches reports whether the price was made from t as it is now.
func (st *StripeTier) matches(t *Tier) bool {
	return st != nil && st.PriceID != "" && st.ProductID != "" &&
		st.Amount == t.Price && st.Currency == t.Currency && st.Interval == t.Interval
}

// PlatformBilling is a platform's subscription on the operator's own Stripe
// account (operator billing).
type PlatformBilling struct {
	PlatformID       string     `json:"platformId"`
	CustomerID       string     `json:"customerId,omitempty"`
	SubscriptionID   string     `json:"subscriptionId,omitempty"`
	Status           string     `json:"status"`
	CurrentPeriodEnd *time.Time `json:"currentPeriodEnd,omitempty"`
	EventAt          time.Time  `json:"eventAt"`
	UpdatedAt        time.Time  `json:"updatedAt"`
}

// Active reports whether the subscription lets live keys work. past_due
// counts: Stripe is still retrying the payment.
func (pb *PlatformBilling) Active() bool { return pb != nil && liveStatus(pb.Status) }

// StripeStore is the part of Store that keeps Stripe state. Reads return
// ENOTFOUND when absent unless they say otherwise.
type StripeStore interface {
	// StripeConnection returns a platform's connection in t's mode.
	StripeConnection(ctx context.Context, t Tenant) (*StripeConnection, error)
	// StripeAccountPlatform returns the platform a Connect account belongs to.
	StripeAccountPlatform(ctx context.Context, accountID string) (string, error)
	StripeCatalog(ctx context.Context, t Tenant) (*StripeCatalog, error)
	// CustomerIDByStripeID returns our customer id of a Stripe customer.
	CustomerIDByStripeID(ctx context.Context, t Tenant, stripeCustomerID string) (string, error)
	StripeSubscription(ctx context.Context, t Tenant, id string) (*StripeSubscription, error)
	// StripeEventApplied reports whether an event id was recorded (no
	// ENOTFOUND).
	StripeEventApplied(ctx context.Context, t Tenant, eventID string) (bool, error)
	PlatformBilling(ctx context.Context, platformID string) (*PlatformBilling, error)
	// StripeEventLogStore reads the recent events (stripe_log.go).
	StripeEventLogStore
}

// StripeBatch is the part of Batch that writes Stripe state.
type StripeBatch interface {
	PutStripeConnection(t Tenant, c *StripeConnection)
	DeleteStripeConnection(t Tenant)
	// PutStripeAccount points a Connect account at its platform.
	PutStripeAccount(accountID, platformID string)
	DeleteStripeAccount(accountID string)
	PutStripeCatalog(t Tenant, c *StripeCatalog)
	// PutStripeCustomer indexes a Stripe customer id to our customer id.
	PutStripeCustomer(t Tenant, stripeCustomerID, customerID string)
	PutStripeSubscription(t Tenant, s *StripeSubscription)
	// PutStripeEvent records an event id as applied.
	PutStripeEvent(t Tenant, eventID string, appliedAt time.Time)
	PutPlatformBilling(pb *PlatformBilling)
	// StripeEventLogBatch writes the recent events (stripe_log.go).
	StripeEventLogBatch
}

// liveStatus reports whether a subscription status keeps a paid plan.
func liveStatus(status string) bool {
	return status == "active" || status == "trialing" || status == "past_due"
}

// endedStatus reports whether a subscription status ends a paid plan.
func endedStatus(status string) bool {
	switch status {
	case "canceled", "unpaid", "incomplete_expired", "paused":
		return true
	}
	return false
}

// --- connections

// ConnectInput is the body of POST /api/platform/stripe/connect: empty to
// onboard through Stripe Connect, or the platform's own keys.
type ConnectInput struct {
	SecretKey     string `json:"secretKey"`
	WebhookSecret string `json:"webhookSecret"`
	// ReturnURL and RefreshURL are where Stripe sends the developer after
	// onboarding and when the link has expired (Connect only). They
	// default to DREAM_PUBLIC_URL + /stripe/return and /stripe/refresh.
	ReturnURL  string `json:"returnUrl"`
	RefreshURL string `json:"refreshUrl"`
}

// Validate reports every problem of in for a connection in mode m.
func (in *ConnectInput) Validate(m Mode) error {
	var v Validation
	in.SecretKey, in.WebhookSecret = strings.TrimSpace(in.SecretKey), strings.TrimSpace(in.WebhookSecret)
	if in.SecretKey == "" {
		if in.WebhookSecret != "" {
			v.Add("secretKey", "is required with webhookSecret")
		}
	} else {
		if !stripeKeyOfMode(in.SecretKey, m) {
			v.Add("secretKey", "must be a %s-mode Stripe secret or restricted key (sk_%s_… or rk_%s_…)", m, m, m)
		} else if len(in.SecretKey) > 500 {
			v.Add("secretKey", "must be at most 500 characters")
		}
		if !strings.HasPrefix(in.WebhookSecret, "whsec_") || len(in.WebhookSecret) > 500 {
			v.Add("webhookSecret", "is required: the signing secret (whsec_…) of your Stripe webhook endpoint for /webhook/stripe/{platformId}")
		}
	}
	validateReturnURL(&v, "returnUrl", in.ReturnURL)
	validateReturnURL(&v, "refreshUrl", in.RefreshURL)
	return v.Err()
}

// stripeKeyOfMode reports whether k is a Stripe secret or restricted key of
// mode m.
func stripeKeyOfMode(k string, m Mode) bool {
	return strings.HasPrefix(k, "sk_"+m.String()+"_") || strings.HasPrefix(k, "rk_"+m.String()+"_")
}

// StripeKeyMode returns the mode of a Stripe secret or restricted key by its
// prefix, and false when the prefix names none.
func StripeKeyMode(k string) (Mode, bool) {
	switch {
	case stripeKeyOfMode(k, Live):
		return Live, true
	case stripeKeyOfMode(k, Test):
		return Test, true
	}
	return 0, false
}

func validateReturnURL(v *Validation, field, s string) {
	if s == "" {
		return
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || len(s) > 2048 {
		v.Add(field, "must be an absolute http(s) URL of at most 2048 characters")
	}
}

// Connect connects t's platform to Stripe in t's mode: with in.SecretKey,
// by key (checked with GET /v1/account, stored sealed); without, through
// Stripe Connect onboarding (a Standard account made with the operator's
// key, and an Account Link to finish it). Calling it again refreshes the
// onboarding link, or replaces the keys.
//
// Returns EVALIDATION (bad input, or a key Stripe rejects), ECONFLICT
// (connected the other way: disconnect first), ESTRIPENOTCONNECTED (this
// server offers no Connect in this mode) or EUPSTREAM.
func (s *Stripe) Connect(ctx context.Context, t Tenant, in ConnectInput, idem *Idempotency) (*StripeConnected, error) {
	if err := in.Validate(t.Mode); err != nil {
		return nil, err
	}
	if s.cfg.Billing == nil || s.cfg.Sealer == nil {
		return nil, Errorf(ESTRIPENOTCONNECTED, "Stripe is not configured on this server.")
	}
	done, err := s.c.idempotent(ctx, t, idem)
	if err != nil {
		return nil, err
	}
	defer done()
	cur, err := s.storedConnection(ctx, t)
	if err != nil {
		return nil, err
	}
	if in.SecretKey != "" {
		return s.connectByKey(ctx, t, cur, in, idem)
	}
	return s.connectOnboarding(ctx, t, cur, in, idem)
}

func (s *Stripe) connectOnboarding(ctx context.Context, t Tenant, cur *StripeConnection, in ConnectInput, idem *Idempotency) (*StripeConnected, error) {
	key := s.cfg.OperatorKeys[t.Mode]
	if key == "" {
		return nil, Errorf(ESTRIPENOTCONNECTED, "This server offers no Stripe Connect onboarding in %s mode; connect with your own keys instead: {\"secretKey\":\"sk_%s_…\",\"webhookSecret\":\"whsec_…\"}.", t.Mode, t.Mode)
	}
	if cur != nil && cur.Method != StripeViaConnect {
		return nil, Errorf(ECONFLICT, "This platform is connected to Stripe by key in %s mode; DELETE /api/platform/stripe first to switch to Stripe Connect.", t.Mode)
	}
	var account string
	if cur != nil {
		account = cur.AccountID
	} else {
		p, err := s.c.store.Platform(ctx, t.PlatformID)
		if err != nil {
			return nil, err
		}
		account, err = s.cfg.Billing.CreateAccount(ctx, BillingCall{Key: key, IdempotencyKey: stripeIdem(t, idem, "account")},
			AccountInput{Email: p.Email, Metadata: map[string]string{"dreamPlatformId": p.ID, "dreamMode": t.Mode.String()}})
		if err != nil {
			return nil, s.upstream(err)
		}
	}
	returnURL, refreshURL := in.ReturnURL, in.RefreshURL
	if returnURL == "" {
		returnURL = s.publicURL() + "/stripe/return"
	}
	if refreshURL == "" {
		refreshURL = s.publicURL() + "/stripe/refresh"
	}
	link, err := s.cfg.Billing.CreateAccountLink(ctx, BillingCall{Key: key, IdempotencyKey: stripeIdem(t, idem, "account-link")},
		AccountLinkInput{Account: account, ReturnURL: returnURL, RefreshURL: refreshURL})
	if err != nil {
		return nil, s.upstream(err)
	}
	now := s.c.now().UTC()
	res, err := s.c.updateClaimed(ctx, t, idem, s.connectionLock(t), func(b Tx) (any, error) {
		stored, err := s.storedConnection(ctx, t)
		if err != nil {
			return nil, err
		}
		if stored != nil && stored.Method != StripeViaConnect {
			return nil, Errorf(ECONFLICT, "This platform was connected to Stripe by key meanwhile; DELETE /api/platform/stripe first to switch to Stripe Connect.")
		}
		conn := &StripeConnection{Mode: t.Mode, Method: StripeViaConnect, AccountID: account, CreatedAt: now, UpdatedAt: now}
		if stored != nil && stored.AccountID == account {
			conn.CreatedAt, conn.ChargesEnabled, conn.DetailsSubmitted = stored.CreatedAt, stored.ChargesEnabled, stored.DetailsSubmitted
		}
		b.PutStripeConnection(t, conn)
		b.PutStripeAccount(account, t.PlatformID)
		return &StripeConnected{URL: &link, StripeStatus: s.status(t, conn)}, nil
	})
	if err != nil {
		return nil, err
	}
	return res.(*StripeConnected), nil
}

func (s *Stripe) connectByKey(ctx context.Context, t Tenant, cur *StripeConnection, in ConnectInput, idem *Idempotency) (*StripeConnected, error) {
	if cur != nil && cur.Method != StripeViaKey {
		return nil, Errorf(ECONFLICT, "This platform is connected through Stripe Connect in %s mode; DELETE /api/platform/stripe first to connect by key.", t.Mode)
	}
	acct, err := s.cfg.Billing.Account(ctx, BillingCall{Key: in.SecretKey})
	if err != nil {
		var be *BillingError
		if errors.As(err, &be) && (be.Status == 401 || be.Status == 403) {
			return nil, invalid("secretKey", "Stripe rejected this key: %s", be.Message)
		}
		return nil, s.upstream(err)
	}
	now := s.c.now().UTC()
	res, err := s.c.updateClaimed(ctx, t, idem, s.connectionLock(t), func(b Tx) (any, error) {
		stored, err := s.storedConnection(ctx, t)
		if err != nil {
			return nil, err
		}
		if stored != nil && stored.Method != StripeViaKey {
			return nil, Errorf(ECONFLICT, "This platform was connected through Stripe Connect meanwhile; DELETE /api/platform/stripe first to connect by key.")
		}
		conn := &StripeConnection{
			Mode: t.Mode, Method: StripeViaKey, AccountID: acct.ID,
			SecretKey:      s.cfg.Sealer.Seal([]byte(in.SecretKey), sealAAD(t, "secretKey")),
			WebhookSecret:  s.cfg.Sealer.Seal([]byte(in.WebhookSecret), sealAAD(t, "webhookSecret")),
			KeyHint:        in.SecretKey[:8] + "…" + in.SecretKey[len(in.SecretKey)-4:],
			ChargesEnabled: acct.ChargesEnabled, DetailsSubmitted: acct.DetailsSubmitted,
			CreatedAt: now, UpdatedAt: now,
		}
		if stored != nil {
			conn.CreatedAt = stored.CreatedAt
		}
		b.PutStripeConnection(t, conn)
		return &StripeConnected{StripeStatus: s.status(t, conn)}, nil
	})
	if err != nil {
		return nil, err
	}
	return res.(*StripeConnected), nil
}

// Status returns t's Stripe connection, without secrets.
func (s *Stripe) Status(ctx context.Context, t Tenant) (*StripeStatus, error) {
	conn, err := s.storedConnection(ctx, t)
	if err != nil {
		return nil, err
	}
	return s.status(t, conn), nil
}

func (s *Stripe) status(t Tenant, conn *StripeConnection) *StripeStatus {
	st := &StripeStatus{Mode: t.Mode, ConnectAvailable: s.cfg.Billing != nil && s.cfg.OperatorKeys[t.Mode] != ""}
	if conn == nil {
		return st
	}
	method, acct := conn.Method, conn.AccountID
	created := conn.CreatedAt
	hook := s.publicURL() + "/webhook/stripe"
	if conn.Method == StripeViaKey {
		hook += "/" + t.PlatformID
		hint := conn.KeyHint
		st.SecretKeyHint = &hint
	}
	st.Connected, st.Method, st.AccountID, st.WebhookURL, st.ConnectedAt = true, &method, &acct, &hook, &created
	st.ChargesEnabled, st.DetailsSubmitted = conn.ChargesEnabled, conn.DetailsSubmitted
	return st
}

// Disconnect forgets t's Stripe connection: its keys, or its Connect
// account. Customers keep their Stripe ids (a reconnection to the same
// account finds them again) and tiers their config. Disconnecting what is
// not connected does nothing.
func (s *Stripe) Disconnect(ctx context.Context, t Tenant) (*StripeStatus, error) {
	res, err := s.c.update(ctx, t, nil, s.connectionLock(t), func(b Tx) (any, error) {
		cur, err := s.storedConnection(ctx, t)
		if err != nil || cur == nil {
			return s.status(t, nil), err
		}
		b.DeleteStripeConnection(t)
		if cur.Method == StripeViaConnect {
			other, err := s.storedConnection(ctx, Tenant{PlatformID: t.PlatformID, Mode: otherMode(t.Mode)})
			if err != nil {
				return nil, err
			}
			if other == nil || other.Method != StripeViaConnect || other.AccountID != cur.AccountID {
				b.DeleteStripeAccount(cur.AccountID)
			}
		}
		return s.status(t, nil), nil
	})
	if err != nil {
		return nil, err
	}
	return res.(*StripeStatus), nil
}

// --- operator billing

// LiveAllowed returns nil when a platform's live keys may be used: always
// without operator billing, else while its subscription on the operator's
// account is active. Returns EFORBIDDEN otherwise. Cheap: the answer is kept
// in memory once read.
func (s *Stripe) LiveAllowed(ctx context.Context, platformID string) error {
	if s.cfg.PlatformPriceID == "" {
		return nil
	}
	s.paidMu.RLock()
	ok, known := s.paidLive[platformID]
	s.paidMu.RUnlock()
	if !known {
		pb, err := s.c.store.PlatformBilling(ctx, platformID)
		if err != nil && ErrorCode(err) != ENOTFOUND {
			return err
		}
		ok = err == nil && pb.Active()
		s.paidMu.Lock()
		// A webhook that changed it meanwhile has the last word.
		if _, set := s.paidLive[platformID]; !set {
			s.paidLive[platformID] = ok
		}
		s.paidMu.Unlock()
	}
	if !ok {
		return Errorf(EFORBIDDEN, "This platform's dream-api subscription is not active, so its live keys are paused; test keys keep working. Subscribe with POST /api/platform/billing/checkout.")
	}
	return nil
}

func (s *Stripe) setLiveAllowed(platformID string, ok bool) {
	s.paidMu.Lock()
	s.paidLive[platformID] = ok
	s.paidMu.Unlock()
}

// PlatformBillingStatus is the answer of GET /api/platform/billing.
type PlatformBillingStatus struct {
	// Required says whether this server bills platforms at all.
	Required         bool       `json:"required"`
	Active           bool       `json:"active"`
	Status           *string    `json:"status"`
	SubscriptionID   *string    `json:"subscriptionId"`
	CurrentPeriodEnd *time.Time `json:"currentPeriodEnd"`
}

// PlatformBilling returns a platform's subscription on the operator's
// account.
func (s *Stripe) PlatformBilling(ctx context.Context, platformID string) (*PlatformBillingStatus, error) {
	out := &PlatformBillingStatus{Required: s.cfg.PlatformPriceID != ""}
	pb, err := s.c.store.PlatformBilling(ctx, platformID)
	if ErrorCode(err) == ENOTFOUND {
		out.Active = !out.Required
		return out, nil
	} else if err != nil {
		return nil, err
	}
	out.Active = !out.Required || pb.Active()
	if pb.Status != "" {
		out.Status = &pb.Status
	}
	if pb.SubscriptionID != "" {
		out.SubscriptionID = &pb.SubscriptionID
	}
	out.CurrentPeriodEnd = pb.CurrentPeriodEnd
	return out, nil
}

// --- helpers

// storedConnection returns t's connection, or nil when there is none.
func (s *Stripe) storedConnection(ctx context.Context, t Tenant) (*StripeConnection, error) {
	conn, err := s.c.store.StripeConnection(ctx, t)
	if ErrorCode(err) == ENOTFOUND {
		return nil, nil
	}
	return conn, err
}

// connection returns t's connection and how to call Stripe for it. Returns
// ESTRIPENOTCONNECTED when there is none.
func (s *Stripe) connection(ctx context.Context, t Tenant) (*StripeConnection, BillingCall, error) {
	if s.cfg.Billing == nil {
		return nil, BillingCall{}, Errorf(ESTRIPENOTCONNECTED, "Stripe is not configured on this server.")
	}
	conn, err := s.storedConnection(ctx, t)
	if err != nil {
		return nil, BillingCall{}, err
	}
	if conn == nil {
		return nil, BillingCall{}, Errorf(ESTRIPENOTCONNECTED, "This platform has not connected Stripe in %s mode: POST /api/platform/stripe/connect.", t.Mode)
	}
	call, err := s.callFor(t, conn)
	return conn, call, err
}

// callFor returns how to call Stripe for a connection.
func (s *Stripe) callFor(t Tenant, conn *StripeConnection) (BillingCall, error) {
	if conn.Method == StripeViaConnect {
		key := s.cfg.OperatorKeys[t.Mode]
		if key == "" {
			return BillingCall{}, Errorf(ESTRIPENOTCONNECTED, "This server no longer has a Stripe Connect key for %s mode; reconnect with your own keys.", t.Mode)
		}
		return BillingCall{Key: key, Account: conn.AccountID}, nil
	}
	if s.cfg.Sealer == nil {
		return BillingCall{}, errors.New("engine: no sealer to open a platform's Stripe key")
	}
	key, err := s.cfg.Sealer.Open(conn.SecretKey, sealAAD(t, "secretKey"))
	if err != nil {
		return BillingCall{}, errSealedElsewhere(t)
	}
	return BillingCall{Key: string(key)}, nil
}

// errSealedElsewhere is the error of a platform's sealed Stripe secret that
// the master key does not open: the data was restored without its key, or
// the server runs with another DREAM_MASTER_KEY. It is the operator's to
// fix (or the developer's, by connecting again), never an internal error.
func errSealedElsewhere(t Tenant) error {
	return Errorf(ESTRIPENOTCONNECTED, "The Stripe credentials of this platform (%s mode) were sealed with another master key; the operator must set DREAM_MASTER_KEY to the original key, or reconnect Stripe with POST /api/platform/stripe/connect.", t.Mode)
}

// otherMode is live for test and test for live.
func otherMode(m Mode) Mode {
	if m == Live {
		return Test
	}
	return Live
}

// sealAAD binds a sealed secret to its platform, mode and field.
func sealAAD(t Tenant, field string) []byte {
	return []byte("stripe\x00" + t.PlatformID + "\x00" + t.Mode.String() + "\x00" + field)
}

func (s *Stripe) connectionLock(t Tenant) []Lock { return []Lock{stripeLock(t)} }

func (s *Stripe) publicURL() string { return strings.TrimRight(s.cfg.PublicURL(), "/") }

// stripeIdem derives the Idempotency-Key of one Stripe call made for t from
// the request's: the platform and mode, the request's key, what the call is
// for, and a short hash of the request. A retry gets Stripe's first answer;
// a corrected request with the same key is not refused by Stripe; and two
// platforms (or one platform's two modes) that send the same key never get
// each other's answer: Connect onboarding and operator billing of every
// platform run on the operator's one Stripe account, which Stripe keeps
// keys per. "" without a key.
func stripeIdem(t Tenant, idem *Idempotency, purpose string) string {
	if idem == nil || idem.Key == "" {
		return ""
	}
	k := t.PlatformID + "/" + t.Mode.String() + "/" + idem.Key + "/" + purpose + "/" + hex.EncodeToString(idem.RequestHash[:4])
	if len(k) > 255 {
		sum := sha256.Sum256([]byte(k))
		k = "dream-" + hex.EncodeToString(sum[:])
	}
	return k
}

// upstream turns a provider error into EUPSTREAM; the details go to the log.
func (s *Stripe) upstream(err error) error {
	var be *BillingError
	if !errors.As(err, &be) {
		return err
	}
	s.c.log.Warn("stripe call failed", "op", be.Op, "status", be.Status, "type", be.Type, "code", be.Code, "err", err)
	if be.Status == 0 {
		return Errorf(EUPSTREAM, "Stripe could not be reached (%s); nothing was changed. Retry later.", be.Op)
	}
	return Errorf(EUPSTREAM, "Stripe refused to %s (%d): %s Nothing was changed.", be.Op, be.Status, be.Message)
}
