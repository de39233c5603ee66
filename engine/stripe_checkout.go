package engine

import (
	"context"
	"strings"
)

// CheckoutInput is the body of POST /api/create-checkout.
type CheckoutInput struct {
	CustomerID string `json:"customerId"`
	Tier       string `json:"tier"`
	// SuccessURL and CancelURL default to DREAM_PUBLIC_URL +
	// /billing/success and /billing/cancel.
	SuccessURL string `json:"successUrl"`
	CancelURL  string `json:"cancelUrl"`
}

// Validate reports every problem of in.
func (in *CheckoutInput) Validate() error {
	var v Validation
	if in.CustomerID == "" {
		v.Add("customerId", "is required (or the X-User-Id header)")
	} else if len(in.CustomerID) > 100 {
		v.Add("customerId", "must be at most 100 characters")
	}
	if in.Tier == "" {
		v.Add("tier", "is required")
	}
	validateReturnURL(&v, "successUrl", in.SuccessURL)
	validateReturnURL(&v, "cancelUrl", in.CancelURL)
	return v.Err()
}

// CheckoutResult is a Checkout to send the customer to.
type CheckoutResult struct {
	URL       string `json:"url"`
	SessionID string `json:"sessionId"`
}

// Checkout starts a subscription Checkout for a customer on the platform's
// own Stripe account: the Stripe customer is made the first time (and kept
// on our customer), then a session for the tier's price, with our customer
// id as client_reference_id and the tier in the metadata of the session and
// of the subscription. The request's Idempotency-Key is passed on to Stripe.
//
// Returns EVALIDATION (bad input, unknown tier), ENOTFOUND (customer),
// ECONFLICT (already subscribed: the portal changes plans),
// ESTRIPENOTCONNECTED or EUPSTREAM. Nothing is written unless every Stripe
// call succeeded.
func (s *Stripe) Checkout(ctx context.Context, t Tenant, in CheckoutInput, idem *Idempotency) (*CheckoutResult, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	done, conn, call, cus, err := s.beginCustomerCall(ctx, t, idem, in.CustomerID)
	if err != nil {
		return nil, err
	}
	defer done()
	tc, err := s.c.tierConfig(ctx, t)
	if err != nil {
		return nil, err
	}
	tier := tc.Tier(in.Tier)
	if tier == nil {
		return nil, invalid("tier", "no tier named %q", in.Tier)
	}
	if sub := cus.Subscription; sub != nil && liveStatus(sub.Status) && cus.StripeAccountID == conn.AccountID {
		return nil, Errorf(ECONFLICT, "Customer %s already has a %s subscription (%s); change its plan in the billing portal: POST /api/customer-portal.", cus.ID, sub.Status, sub.ID)
	}
	price, err := s.priceFor(ctx, t, tier)
	if err != nil {
		return nil, err
	}

	stripeCus := ""
	if cus.StripeCustomerID != nil && cus.StripeAccountID == conn.AccountID {
		stripeCus = *cus.StripeCustomerID
	}
	made := stripeCus == ""
	if made {
		c := call
		c.IdempotencyKey = stripeIdem(t, idem, "customer")
		name := strings.TrimSpace(cus.FirstName + " " + cus.LastName)
		stripeCus, err = s.cfg.Billing.CreateCustomer(ctx, c, BillingCustomerInput{Email: cus.Email, Name: name,
			Metadata: map[string]string{"dreamCustomerId": cus.ID, "dreamPlatformId": t.PlatformID}})
		if err != nil {
			return nil, s.upstream(err)
		}
	}
	successURL, cancelURL := in.SuccessURL, in.CancelURL
	if successURL == "" {
		successURL = s.publicURL() + "/billing/success?session_id={CHECKOUT_SESSION_ID}"
	}
	if cancelURL == "" {
		cancelURL = s.publicURL() + "/billing/cancel"
	}
	c := call
	c.IdempotencyKey = stripeIdem(t, idem, "checkout")
	sess, err := s.cfg.Billing.CreateCheckoutSession(ctx, c, CheckoutSessionInput{
		Customer: stripeCus, Price: price, ClientReferenceID: cus.ID,
		Metadata:   map[string]string{"tier": tier.Name, "dreamCustomerId": cus.ID, "dreamPlatformId": t.PlatformID},
		SuccessURL: successURL, CancelURL: cancelURL,
	})
	if err != nil {
		return nil, s.upstream(err)
	}

	res, err := s.c.updateClaimed(ctx, t, idem, []Lock{customerLock(t, cus.ID)}, func(b Tx) (any, error) {
		if made {
			cur, err := b.Customer(ctx, t, cus.ID)
			if err != nil && ErrorCode(err) != ENOTFOUND {
				return nil, err
			}
			if cur != nil && (cur.StripeCustomerID == nil || cur.StripeAccountID != conn.AccountID) {
				cur.StripeCustomerID, cur.StripeAccountID = &stripeCus, conn.AccountID
				b.PutCustomer(t, cur, cur.Email)
			}
			b.PutStripeCustomer(t, stripeCus, cus.ID)
		}
		return &CheckoutResult{URL: sess.URL, SessionID: sess.ID}, nil
	})
	if err != nil {
		return nil, err
	}
	return res.(*CheckoutResult), nil
}

// PortalInput is the body of POST /api/customer-portal.
type PortalInput struct {
	CustomerID string `json:"customerId"`
	// ReturnURL defaults to the portal configuration's in Stripe.
	ReturnURL string `json:"returnUrl"`
}

// PortalResult is a billing portal session to send the customer to.
type PortalResult struct {
	URL string `json:"url"`
}

// Portal opens a Stripe billing portal session for a customer that has a
// Stripe customer (made by its first checkout). Returns EVALIDATION (no
// Stripe customer yet), ENOTFOUND, ESTRIPENOTCONNECTED or EUPSTREAM.
func (s *Stripe) Portal(ctx context.Context, t Tenant, in PortalInput, idem *Idempotency) (*PortalResult, error) {
	var v Validation
	if in.CustomerID == "" {
		v.Add("customerId", "is required (or the X-User-Id header)")
	}
	validateReturnURL(&v, "returnUrl", in.ReturnURL)
	if err := v.Err(); err != nil {
		return nil, err
	}
	done, conn, call, cus, err := s.beginCustomerCall(ctx, t, idem, in.CustomerID)
	if err != nil {
		return nil, err
	}
	defer done()
	if cus.StripeCustomerID == nil || cus.StripeAccountID != conn.AccountID {
		return nil, invalid("customerId", "customer %s has no Stripe customer on the connected account yet; it gets one with its first checkout", cus.ID)
	}
	call.IdempotencyKey = stripeIdem(t, idem, "portal")
	url, err := s.cfg.Billing.CreatePortalSession(ctx, call, PortalSessionInput{Customer: *cus.StripeCustomerID, ReturnURL: in.ReturnURL})
	if err != nil {
		return nil, s.upstream(err)
	}
	res, err := s.c.updateClaimed(ctx, t, idem, nil, func(b Tx) (any, error) {
		return &PortalResult{URL: url}, nil
	})
	if err != nil {
		return nil, err
	}
	return res.(*PortalResult), nil
}

// PlatformCheckoutInput is the body of POST /api/platform/billing/checkout.
type PlatformCheckoutInput struct {
	SuccessURL string `json:"successUrl"`
	CancelURL  string `json:"cancelUrl"`
}

// PlatformCheckout starts the platform's own subscription on the operator's
// Stripe account (DREAM_PLATFORM_PRICE_ID), with the operator's key and no
// Stripe-Account header. Returns ENOTFOUND when operator billing is off,
// ECONFLICT when the subscription is already active, EUPSTREAM.
func (s *Stripe) PlatformCheckout(ctx context.Context, t Tenant, in PlatformCheckoutInput, idem *Idempotency) (*CheckoutResult, error) {
	var v Validation
	validateReturnURL(&v, "successUrl", in.SuccessURL)
	validateReturnURL(&v, "cancelUrl", in.CancelURL)
	if err := v.Err(); err != nil {
		return nil, err
	}
	key := s.operatorBillingKey()
	if s.cfg.PlatformPriceID == "" || s.cfg.Billing == nil || key == "" {
		return nil, Errorf(ENOTFOUND, "This server does not bill platforms (DREAM_PLATFORM_PRICE_ID is not set).")
	}
	done, err := s.c.idempotent(ctx, t, idem)
	if err != nil {
		return nil, err
	}
	defer done()
	p, err := s.c.store.Platform(ctx, t.PlatformID)
	if err != nil {
		return nil, err
	}
	pb, err := s.c.store.PlatformBilling(ctx, t.PlatformID)
	if err != nil && ErrorCode(err) != ENOTFOUND {
		return nil, err
	}
	if pb.Active() {
		return nil, Errorf(ECONFLICT, "This platform's subscription (%s) is already %s.", pb.SubscriptionID, pb.Status)
	}
	in2 := CheckoutSessionInput{
		Price: s.cfg.PlatformPriceID, ClientReferenceID: p.ID, CustomerEmail: p.Email,
		Metadata:   map[string]string{"dreamPlatformId": p.ID},
		SuccessURL: in.SuccessURL, CancelURL: in.CancelURL,
	}
	if pb != nil && pb.CustomerID != "" {
		in2.Customer, in2.CustomerEmail = pb.CustomerID, ""
	}
	if in2.SuccessURL == "" {
		in2.SuccessURL = s.publicURL() + "/billing/success?session_id={CHECKOUT_SESSION_ID}"
	}
	if in2.CancelURL == "" {
		in2.CancelURL = s.publicURL() + "/billing/cancel"
	}
	sess, err := s.cfg.Billing.CreateCheckoutSession(ctx, BillingCall{Key: key, IdempotencyKey: stripeIdem(t, idem, "platform-checkout")}, in2)
	if err != nil {
		return nil, s.upstream(err)
	}
	res, err := s.c.updateClaimed(ctx, t, idem, nil, func(b Tx) (any, error) {
		return &CheckoutResult{URL: sess.URL, SessionID: sess.ID}, nil
	})
	if err != nil {
		return nil, err
	}
	return res.(*CheckoutResult), nil
}

// operatorBillingKey is the operator key platforms are billed with: the
// live one when there is one.
func (s *Stripe) operatorBillingKey() string {
	if k := s.cfg.OperatorKeys[Live]; k != "" {
		return k
	}
	return s.cfg.OperatorKeys[Test]
}

// beginCustomerCall starts a Stripe call for one of t's customers: it claims
// the Idempotency-Key, then finds t's connection and the customer. The
// caller MUST call done when it returns no error.
func (s *Stripe) beginCustomerCall(ctx context.Context, t Tenant, idem *Idempotency, customerID string) (done func(), conn *StripeConnection, call BillingCall, cus *Customer, err error) {
	if done, err = s.c.idempotent(ctx, t, idem); err != nil {
		return nil, nil, BillingCall{}, nil, err
	}
	if conn, call, err = s.connection(ctx, t); err == nil {
		cus, err = s.c.store.Customer(ctx, t, customerID)
		if ErrorCode(err) == ENOTFOUND {
			err = Errorf(ENOTFOUND, "No customer %q.", customerID)
		}
	}
	if err != nil {
		done()
		return nil, nil, BillingCall{}, nil, err
	}
	return done, conn, call, cus, nil
}
