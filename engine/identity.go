package engine

import (
	"context"
	"strings"
	"time"
)

// Identity is the end users' identity provider: the one Clerk application
// that every platform shares for its customers (the seed's "end-user-api"
// app). A customer made while an Identity is configured is a user of that
// application; its user id is the customer id, and its public metadata
// carries {publishableKey, plan}, so that the session JWTs of the user say
// which platform and mode it belongs to.
//
// Methods return *Error values with these codes: EVALIDATION when the
// provider refused the input (the message is the provider's own, e.g.
// "Password has been found in an online data breach"), ENOTFOUND when there
// is no such user, EUPSTREAM when the provider is unreachable, answers 5xx
// or fails in any other way; VerifySession returns EINVALIDAPIKEY for a
// token it does not accept. Implementations are safe for concurrent use.
type Identity interface {
	// CreateUser makes a user with in's email, names, password (when not
	// empty) and public metadata.
	CreateUser(ctx context.Context, in NewIdentityUser) (*IdentityUser, error)
	// User returns a user.
	User(ctx context.Context, id string) (*IdentityUser, error)
	// UpdateMetadata merges md into the user's public metadata; a key whose
	// value is nil is removed.
	UpdateMetadata(ctx context.Context, id string, md map[string]any) error
	// DeleteUser deletes a user.
	DeleteUser(ctx context.Context, id string) error
	// VerifySession checks a session JWT of the application (signature,
	// expiry, not-before, issuer) and returns what it says.
	VerifySession(ctx context.Context, token string) (*EndUserSession, error)
}

// Public metadata keys the identity provider's users carry.
const (
	MetadataPublishableKey = "publishableKey"
	MetadataPlan           = "plan"
)

// NewIdentityUser is a user to create in the identity provider.
type NewIdentityUser struct {
	Email     string
	FirstName string
	LastName  string
	// Password is set on the user when not empty; it is never stored here.
	Password       string
	PublicMetadata map[string]any
}

// IdentityUser is a user of the identity provider.
type IdentityUser struct {
	ID string
	// Email is the primary email address, lowercased; "" when none.
	Email          string
	FirstName      string
	LastName       string
	PublicMetadata map[string]any
}

// EndUserSession is what a verified session JWT says.
type EndUserSession struct {
	UserID    string // the `sub` claim
	SessionID string // the `sid` claim
	// PublishableKey is the `publishableKey` claim: the platform and mode
	// the user belongs to.
	PublishableKey string
	ExpiresAt      time.Time
}

// EndUser is a signed-in customer: the session, the tenant its
// publishable key picks and the customer record.
type EndUser struct {
	Tenant
	Session  *EndUserSession
	Customer *Customer
}

// identityUserPrefix is how the ids of the identity provider's users start
// (Clerk's `user_…`): only such customers are synced to it.
const identityUserPrefix = "user_"

// identityTimeout bounds the calls that undo a half-made change: they run
// after the request's context may be gone.
const identityTimeout = 10 * time.Second

// deliverNowTimeout bounds an inline delivery (a deletion tried before the
// DELETE answers); the outbox retries it after that.
const deliverNowTimeout = 5 * time.Second

// validIdentityUserID reports whether id can be a customer id: a provider
// user id of letters, digits and underscores.
func validIdentityUserID(id string) bool {
	if !strings.HasPrefix(id, identityUserPrefix) || len(id) > 100 || len(id) == len(identityUserPrefix) {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// UseIdentity makes customers users of id, as Config.Identity does, for
// wiring that builds the provider after the engine. Call it before the
// engine serves: it is not safe for concurrent use with other methods.
func (e *Engine) UseIdentity(id Identity) { e.Customers.c.identity = id }

// AuthenticateSession verifies an end user's session JWT and returns the
// customer it signs in. The token's publishableKey claim picks the platform
// and mode, and must be the customer's own.
//
// Returns ECLERKNOTCONFIGURED without an Identity, EFORBIDDEN for an API
// key (they are not end-user credentials) or a session whose user is not a
// customer of that publishable key, EINVALIDAPIKEY for a token that does
// not verify or a publishable key that does not authenticate, and
// EUPSTREAM when the keys to verify it cannot be fetched.
func (e *Engine) AuthenticateSession(ctx context.Context, token string) (*EndUser, error) {
	c := e.Customers.c
	if c.identity == nil {
		return nil, Errorf(ECLERKNOTCONFIGURED, "End-user sign-in needs Clerk: the server has no CLERK_SECRET_KEY.")
	}
	for _, p := range []string{prefixSecretLive, prefixSecretTest, prefixPublishableLive, prefixPublishableTest} {
		if strings.HasPrefix(token, p) {
			return nil, Errorf(EFORBIDDEN, "API keys are not accepted here; send the end user's Clerk session token.")
		}
	}
	if token == "" {
		return nil, Errorf(EINVALIDAPIKEY, "Missing session token: send `Authorization: Bearer <Clerk session JWT>`.")
	}
	sess, err := c.identity.VerifySession(ctx, token)
	if err != nil {
		return nil, err
	}
	if sess.PublishableKey == "" {
		return nil, Errorf(EINVALIDAPIKEY, "The session token has no publishableKey claim; add it to the session token template.")
	}
	t, err := e.Keys.AuthenticatePublishable(ctx, sess.PublishableKey)
	if err != nil {
		return nil, err
	}
	var cus *Customer
	err = Errorf(ENOTFOUND, "not a user id")
	if validIdentityUserID(sess.UserID) {
		cus, err = c.store.Customer(ctx, t, sess.UserID)
	}
	if err != nil && ErrorCode(err) != ENOTFOUND {
		return nil, err
	}
	// One answer for "no such customer" and "another platform's or mode's
	// customer": nothing about other tenants is revealed.
	if err != nil || cus.PublishableKey != sess.PublishableKey {
		return nil, Errorf(EFORBIDDEN, "This session's user is not a customer of publishable key %s.", sess.PublishableKey)
	}
	return &EndUser{Tenant: t, Session: sess, Customer: cus}, nil
}

// createWithIdentity is Create when customers are users of the identity
// provider: the user is created (or, with in.ClerkUserID, linked) first and
// our record written only once that succeeded; when our write then fails,
// the user is deleted again (or its metadata restored), so that neither side
// keeps half a customer.
func (s *Customers) createWithIdentity(ctx context.Context, t Tenant, pk string, in CreateCustomerInput, idem *Idempotency) (*Customer, error) {
	c := s.c
	// Create holds the Idempotency-Key's claim over the whole operation, so
	// that a retry racing the first call replays it instead of making a
	// second user, and a replay never calls Clerk.
	var linked *IdentityUser
	if in.ClerkUserID != "" {
		u, err := s.linkable(ctx, t, pk, in.ClerkUserID)
		if err != nil {
			return nil, err
		}
		linked = u
		if in.Email == "" {
			if in.Email, err = normalizeEmail(u.Email); err != nil {
				return nil, invalid("email", "is required: Clerk user %s has no usable email address", u.ID)
			}
		}
		if in.FirstName == "" {
			in.FirstName = u.FirstName
		}
		if in.LastName == "" {
			in.LastName = u.LastName
		}
	}
	// Checked before the provider is called, and again under the lock.
	if err := s.emailFree(ctx, t, in.Email); err != nil {
		return nil, err
	}

	md := map[string]any{MetadataPublishableKey: pk, MetadataPlan: in.Plan}
	var id string
	var undo func(ctx context.Context)
	if linked != nil {
		if err := c.identity.UpdateMetadata(ctx, linked.ID, md); err != nil {
			return nil, err
		}
		id = linked.ID
		prev := map[string]any{
			MetadataPublishableKey: linked.PublicMetadata[MetadataPublishableKey],
			MetadataPlan:           linked.PublicMetadata[MetadataPlan],
		}
		undo = func(ctx context.Context) {
			if err := c.identity.UpdateMetadata(ctx, id, prev); err != nil {
				c.log.Error("restoring the metadata of a Clerk user failed; fix it in the Clerk dashboard",
					"user", id, "err", err)
			}
		}
	} else {
		u, err := c.identity.CreateUser(ctx, NewIdentityUser{
			Email: in.Email, FirstName: in.FirstName, LastName: in.LastName, Password: in.Password, PublicMetadata: md,
		})
		if err != nil {
			return nil, err
		}
		id = u.ID
		undo = func(ctx context.Context) { c.undoCreateUser(ctx, t, id) }
		if !validIdentityUserID(id) {
			undo(context.WithoutCancel(ctx))
			c.log.Error("Clerk answered a user id that cannot be a customer id", "user", id)
			return nil, Errorf(EUPSTREAM, "Clerk answered an unexpected user id; nothing was created.")
		}
	}

	now := c.now().UTC()
	locks := []Lock{customerLock(t, id), emailLock(t, in.Email), tiersLock(t)}
	res, err := c.updateClaimed(ctx, t, idem, locks, func(b Tx) (any, error) {
		if err := c.planExists(ctx, b, t, in.Plan); err != nil {
			return nil, err
		}
		if _, err := b.Customer(ctx, t, id); err == nil {
			return nil, Errorf(ECONFLICT, "Clerk user %s is already a customer.", id)
		} else if ErrorCode(err) != ENOTFOUND {
			return nil, err
		}
		if err := s.emailFree(ctx, t, in.Email); err != nil {
			return nil, err
		}
		md := in.Metadata
		if md == nil {
			md = map[string]any{}
		}
		cus := &Customer{
			ID: id, Email: in.Email, FirstName: in.FirstName, LastName: in.LastName,
			Plan: in.Plan, PublishableKey: pk, Metadata: md, CreatedAt: now,
		}
		if err := c.customerAdded(ctx, b, t, cus); err != nil { // quota.go: the customers quota, the aggregates
			return nil, err
		}
		b.PutCustomer(t, cus, "")
		if err := c.customerEvent(ctx, b, t, EventCustomerCreated, cus); err != nil {
			return nil, err
		}
		return cus, nil
	})
	if err != nil {
		undo(context.WithoutCancel(ctx))
		return nil, err
	}
	return res.(*Customer), nil
}

// linkable returns the provider's user id if it may become a customer of
// t: it exists, is not a customer yet, and belongs to no other publishable
// key.
func (s *Customers) linkable(ctx context.Context, t Tenant, pk, id string) (*IdentityUser, error) {
	if !validIdentityUserID(id) {
		return nil, invalid("clerkUserId", "must be a Clerk user id (user_…)")
	}
	if _, err := s.c.store.Customer(ctx, t, id); err == nil {
		return nil, Errorf(ECONFLICT, "Clerk user %s is already a customer.", id)
	} else if ErrorCode(err) != ENOTFOUND {
		return nil, err
	}
	u, err := s.c.identity.User(ctx, id)
	if ErrorCode(err) == ENOTFOUND {
		return nil, invalid("clerkUserId", "no Clerk user %s", id)
	} else if err != nil {
		return nil, err
	}
	if other, _ := u.PublicMetadata[MetadataPublishableKey].(string); other != "" && other != pk {
		return nil, Errorf(ECONFLICT, "Clerk user %s belongs to another publishable key.", id)
	}
	return u, nil
}

// emailFree returns ECONFLICT when a customer of t has email.
func (s *Customers) emailFree(ctx context.Context, t Tenant, email string) error {
	if _, err := s.c.store.CustomerIDByEmail(ctx, t, email); err == nil {
		return Errorf(ECONFLICT, "A customer with email %s already exists.", email)
	} else if ErrorCode(err) != ENOTFOUND {
		return err
	}
	return nil
}

// undoCreateUser deletes a user whose customer record could not be
// written. When the provider fails now, the deletion goes to the outbox,
// which retries it until it succeeds.
func (c *core) undoCreateUser(ctx context.Context, t Tenant, id string) {
	ctx, cancel := context.WithTimeout(ctx, identityTimeout)
	defer cancel()
	err := c.identity.DeleteUser(ctx, id)
	if err == nil || ErrorCode(err) == ENOTFOUND {
		return
	}
	c.log.Warn("deleting a Clerk user whose customer was not written failed; queued for retry", "user", id, "err", err)
	b := c.store.NewBatch()
	defer b.Close()
	c.putOutbox(b, OutboxDeleteUser, t, id)
	if err := b.Commit(); err != nil {
		c.log.Error("a Clerk user has no customer and could not be queued for deletion; delete it in the Clerk dashboard",
			"user", id, "err", err)
		return
	}
	c.outbox.wake()
}

// SessionCheckoutInput is the body of POST /api/me/checkout: the signed-in
// customer upgrades itself.
type SessionCheckoutInput struct {
	Tier       string `json:"tier"`
	SuccessURL string `json:"successUrl"`
	CancelURL  string `json:"cancelUrl"`
}

// SessionCheckout starts a Stripe Checkout for the signed-in customer, on
// its platform's Stripe account, exactly as Stripe.Checkout does for
// POST /api/create-checkout. Returns what Stripe.Checkout returns
// (ESTRIPENOTCONNECTED while the platform, or the server, has no Stripe).
func (e *Engine) SessionCheckout(ctx context.Context, eu *EndUser, in SessionCheckoutInput, idem *Idempotency) (*CheckoutResult, error) {
	return e.Stripe.Checkout(ctx, eu.Tenant, CheckoutInput{
		CustomerID: eu.Customer.ID, Tier: in.Tier, SuccessURL: in.SuccessURL, CancelURL: in.CancelURL,
	}, idem)
}
