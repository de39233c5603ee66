package engine

import (
	"context"
	"errors"
	"strings"
	"time"
)

// Stripe webhooks. An event is verified (signature, 5-minute tolerance, any
// API version), its mode taken from livemode, and applied at most once: the
// event id is recorded in the batch of its effect, under the lock of the
// customer it changes, so a replay or a concurrent redelivery finds it.
// Events of one subscription apply in the order Stripe created them: an
// event older than the last one applied (customer.subscription.* among
// themselves, invoice.* among themselves) is recorded and changes nothing.
// The plan comes from the event's own objects, never from a fetch.

// Event outcomes.
const (
	EventApplied   = "applied"   // the event changed what it is about
	EventDuplicate = "duplicate" // its id was applied before
	EventStale     = "stale"     // older than what was applied for its subscription
	EventIgnored   = "ignored"   // a type, object or account we do not act on
)

// WebhookResult is the answer to a webhook delivery (always 200 once the
// signature verifies).
type WebhookResult struct {
	Received bool   `json:"received"`
	EventID  string `json:"eventId"`
	Type     string `json:"type"`
	Outcome  string `json:"outcome"`

	// logged: the unit of work that applied the event wrote it into the
	// tenant's log (stripe_log.go); otherwise apply logs it, with reason.
	logged bool
	reason string
}

func result(ev *BillingEvent, outcome string) *WebhookResult {
	return &WebhookResult{Received: true, EventID: ev.ID, Type: ev.Type, Outcome: outcome}
}

// ignored is the result of an event the engine does not act on, and why.
func ignored(ev *BillingEvent, reason string) *WebhookResult {
	r := result(ev, EventIgnored)
	r.reason = reason
	return r
}

// ConnectWebhook handles a delivery to /webhook/stripe: events of connected
// accounts (event.account picks the platform) and of the operator's own
// account (its billing of platforms). Returns ENOTFOUND when no secret is
// configured and EINVALIDJSON when the signature does not verify.
func (s *Stripe) ConnectWebhook(ctx context.Context, payload []byte, header string) (*WebhookResult, error) {
	if s.cfg.Billing == nil || len(s.cfg.WebhookSecrets) == 0 {
		return nil, Errorf(ENOTFOUND, "This server has no Stripe webhook secret (STRIPE_WEBHOOK_SECRET).")
	}
	var ev *BillingEvent
	var err error
	for _, secret := range s.cfg.WebhookSecrets {
		if ev, err = s.cfg.Billing.ParseEvent(payload, header, secret); err == nil {
			break
		}
	}
	if err != nil {
		return nil, signatureError(err)
	}
	if ev.Account == "" {
		return s.applyOperatorEvent(ctx, ev)
	}
	pid, err := s.c.store.StripeAccountPlatform(ctx, ev.Account)
	if ErrorCode(err) == ENOTFOUND {
		s.c.log.Info("stripe event of an unknown account ignored", "event", ev.ID, "type", ev.Type, "account", ev.Account)
		return result(ev, EventIgnored), nil
	} else if err != nil {
		return nil, err
	}
	t := Tenant{PlatformID: pid, Mode: ev.Mode()}
	conn, err := s.storedConnection(ctx, t)
	if err != nil {
		return nil, err
	}
	if conn == nil || conn.Method != StripeViaConnect || conn.AccountID != ev.Account {
		res := ignored(ev, "the account is no longer the platform's Connect account")
		s.logResult(ctx, t, ev, res)
		return res, nil
	}
	return s.apply(ctx, t, conn, ev)
}

// PlatformWebhook handles a delivery to /webhook/stripe/{platformId}: the
// events of a platform connected by key, signed with its own secret. The
// secret that verifies names the mode, which the event's livemode must
// match. Returns ENOTFOUND (no platform connected by key) or EINVALIDJSON.
func (s *Stripe) PlatformWebhook(ctx context.Context, platformID string, payload []byte, header string) (*WebhookResult, error) {
	notFound := Errorf(ENOTFOUND, "Platform %q is not connected to Stripe by key.", platformID)
	if s.cfg.Billing == nil || s.cfg.Sealer == nil || !strings.HasPrefix(platformID, "plt_") || len(platformID) > 100 {
		return nil, notFound
	}
	var firstErr error
	tried := false
	for _, m := range []Mode{Live, Test} {
		t := Tenant{PlatformID: platformID, Mode: m}
		conn, err := s.storedConnection(ctx, t)
		if err != nil {
			return nil, err
		}
		if conn == nil || conn.Method != StripeViaKey {
			continue
		}
		secret, err := s.cfg.Sealer.Open(conn.WebhookSecret, sealAAD(t, "webhookSecret"))
		if err != nil {
			return nil, errSealedElsewhere(t)
		}
		tried = true
		ev, err := s.cfg.Billing.ParseEvent(payload, header, string(secret))
		if err != nil {
			if firstErr == nil || errors.Is(err, ErrEventTooOld) {
				firstErr = err
			}
			continue
		}
		if ev.Mode() != m {
			return nil, Errorf(EINVALIDJSON, "A %s-mode event signed with the %s-mode webhook secret.", ev.Mode(), m)
		}
		if ev.Account != "" {
			// A Connect event of the developer's own platform account: not ours.
			res := ignored(ev, "a Connect event of another account, sent to the platform's own endpoint")
			s.logResult(ctx, t, ev, res)
			return res, nil
		}
		return s.apply(ctx, t, conn, ev)
	}
	if !tried {
		return nil, notFound
	}
	return nil, signatureError(firstErr)
}

func signatureError(err error) error {
	switch {
	case errors.Is(err, ErrEventTooOld):
		return Errorf(EINVALIDJSON, "The Stripe-Signature timestamp is more than 5 minutes from now (too old, or in the future); the event was not applied.")
	case errors.Is(err, ErrEventPayload):
		return Errorf(EINVALIDJSON, "The event is not valid JSON of the expected shape.")
	}
	return Errorf(EINVALIDJSON, "The Stripe-Signature header does not verify with this endpoint's signing secret.")
}

// apply applies a verified event of t's connection and makes sure it is
// in t's log of recent events: the unit of work that applied it wrote it,
// or it is logged now (ignored, or failed with an error Stripe retries).
func (s *Stripe) apply(ctx context.Context, t Tenant, conn *StripeConnection, ev *BillingEvent) (*WebhookResult, error) {
	res, err := s.applyEvent(ctx, t, conn, ev)
	if err != nil {
		if ctx.Err() == nil {
			reason := "internal error; Stripe retries the delivery"
			if ErrorCode(err) != EINTERNAL {
				reason = ErrorMessage(err)
			}
			s.c.logStripeEventAlone(ctx, t, &StripeEventRecord{EventID: ev.ID, Type: ev.Type, ReceivedAt: s.c.now().UTC(), Outcome: EventFailed, Reason: reason})
		}
		return nil, err
	}
	s.logResult(ctx, t, ev, res)
	return res, nil
}

// logResult logs an event that no unit of work logged.
func (s *Stripe) logResult(ctx context.Context, t Tenant, ev *BillingEvent, res *WebhookResult) {
	if !res.logged {
		s.c.logStripeEventAlone(ctx, t, &StripeEventRecord{EventID: ev.ID, Type: ev.Type, ReceivedAt: s.c.now().UTC(), Outcome: res.Outcome, Reason: res.reason})
	}
}

// applyEvent applies a verified event of t's connection.
func (s *Stripe) applyEvent(ctx context.Context, t Tenant, conn *StripeConnection, ev *BillingEvent) (*WebhookResult, error) {
	switch {
	case ev.Type == "checkout.session.completed" && ev.Session != nil:
		return s.applySession(ctx, t, conn, ev)
	case strings.HasPrefix(ev.Type, "customer.subscription.") && ev.Subscription != nil &&
		(ev.Type == "customer.subscription.created" || ev.Type == "customer.subscription.updated" || ev.Type == "customer.subscription.deleted"):
		return s.applySubscription(ctx, t, conn, ev)
	case (ev.Type == "invoice.paid" || ev.Type == "invoice.payment_failed") && ev.Invoice != nil:
		return s.applyInvoice(ctx, t, conn, ev)
	case ev.Type == "account.updated" && ev.AccountUpdate != nil:
		return s.applyAccount(ctx, t, ev)
	}
	return ignored(ev, "event type not handled"), nil
}

// applyToCustomer runs effect on a customer of t under its lock and the tier
// config's, once per event id: the event is recorded, and written into the
// tenant's log of recent events, in the same batch as the effect. effect
// changes cus and returns the outcome; the customer is written (through
// putBillingCustomer) unless the outcome is stale.
func (s *Stripe) applyToCustomer(ctx context.Context, t Tenant, ev *BillingEvent, customerID string,
	effect func(b Tx, cus *Customer) (string, error)) (*WebhookResult, error) {
	if customerID == "" || len(customerID) > 100 {
		return ignored(ev, "no dream-api customer on the event"), nil
	}
	locks := []Lock{customerLock(t, customerID), tiersLock(t), stripeLogLock(t)}
	res, err := s.c.update(ctx, t, nil, locks, func(b Tx) (any, error) {
		rec := &StripeEventRecord{EventID: ev.ID, Type: ev.Type, ReceivedAt: s.c.now().UTC(), CustomerID: customerID}
		if seen, err := b.StripeEventApplied(ctx, t, ev.ID); err != nil {
			return nil, err
		} else if seen {
			rec.Outcome, rec.Reason = EventDuplicate, "applied before"
			return EventDuplicate, s.c.logStripeEvent(ctx, b, t, rec)
		}
		cus, err := b.Customer(ctx, t, customerID)
		if ErrorCode(err) == ENOTFOUND {
			rec.Outcome, rec.Reason = EventFailed, "unknown customer"
			return EventIgnored, s.c.logStripeEvent(ctx, b, t, rec)
		} else if err != nil {
			return nil, err
		}
		prevPlan := cus.Plan
		outcome, err := effect(b, cus)
		if err != nil {
			return nil, err
		}
		if outcome == EventApplied {
			if err := s.c.putBillingCustomer(ctx, b, t, cus, prevPlan); err != nil {
				return nil, err
			}
		}
		b.PutStripeEvent(t, ev.ID, s.c.now().UTC())
		rec.Outcome, rec.PlanFrom, rec.PlanTo = outcome, prevPlan, cus.Plan
		if outcome == EventStale {
			rec.Reason, rec.PlanTo = "older than what was applied for its subscription", prevPlan
		}
		return outcome, s.c.logStripeEvent(ctx, b, t, rec)
	})
	if err != nil {
		return nil, err
	}
	r := result(ev, res.(string))
	r.logged = true
	return r, nil
}

// putBillingCustomer writes a customer that Stripe changed. Every plan
// or subscription change that comes from Stripe goes through here, so that
// planChanged and the aggregates (stats.go) see it in the same batch. The
// unit holds the customer's lock and the tier lock.
func (c *core) putBillingCustomer(ctx context.Context, b Tx, t Tenant, cus *Customer, prevPlan string) error {
	prev, err := b.CustomerShared(ctx, t, cus.ID) // as stored: cus holds the change
	if err != nil && ErrorCode(err) != ENOTFOUND {
		return err
	}
	if prev != nil {
		if err := adjustAggregates(ctx, b, t, shareOf(prev), shareOf(cus)); err != nil {
			return err
		}
	}
	b.PutCustomer(t, cus, cus.Email)
	if cus.Plan != prevPlan {
		return c.planChanged(ctx, b, t, cus, prevPlan, SourceStripe)
	}
	return nil
}

// billingPlan returns the tier a paid subscription puts a customer on: the
// tier of its price, else the tier its metadata names; "" when neither is a
// tier of the stored config.
func (s *Stripe) billingPlan(ctx context.Context, t Tenant, price string, metadata map[string]string) (string, error) {
	tc, err := storedTiers(ctx, s.c.store, t)
	if err != nil {
		return "", err
	}
	if price != "" {
		cat, err := s.c.store.StripeCatalog(ctx, t)
		if err != nil && ErrorCode(err) != ENOTFOUND {
			return "", err
		}
		if cat != nil {
			if name := cat.Prices[price]; name != "" && tc.Tier(name) != nil {
				return name, nil
			}
		}
	}
	if name := metadata["tier"]; name != "" && tc.Tier(name) != nil {
		return name, nil
	}
	return "", nil
}

// defaultPlan is where a customer goes when its subscription ends: the free
// tier, or the cheapest (the first of the cheapest).
func (s *Stripe) defaultPlan(ctx context.Context, t Tenant) (string, error) {
	tc, err := storedTiers(ctx, s.c.store, t)
	if err != nil {
		return "", err
	}
	if tc.Tier("free") != nil {
		return "free", nil
	}
	best := &tc.Tiers[0]
	for i := range tc.Tiers {
		if tc.Tiers[i].Price < best.Price {
			best = &tc.Tiers[i]
		}
	}
	return best.Name, nil
}

// linkStripeCustomer records the Stripe customer of cus (index included)
// when it has none on the account yet.
func linkStripeCustomer(b Writer, t Tenant, conn *StripeConnection, cus *Customer, stripeID string) {
	if stripeID == "" {
		return
	}
	if cus.StripeCustomerID == nil || cus.StripeAccountID != conn.AccountID {
		cus.StripeCustomerID, cus.StripeAccountID = &stripeID, conn.AccountID
	}
	b.PutStripeCustomer(t, stripeID, cus.ID)
}

// subscriptionOf returns the ordering record of a subscription; an empty one
// when none is stored.
func (s *Stripe) subscriptionOf(ctx context.Context, t Tenant, id string) (*StripeSubscription, error) {
	rec, err := s.c.store.StripeSubscription(ctx, t, id)
	if ErrorCode(err) == ENOTFOUND {
		return &StripeSubscription{ID: id}, nil
	}
	return rec, err
}

// customerOf finds our customer of an object: the id in its metadata, else
// the Stripe customer's, else the one its subscription was last applied to.
func (s *Stripe) customerOf(ctx context.Context, t Tenant, metadata map[string]string, stripeCustomer, subscription string) (string, error) {
	if id := metadata["dreamCustomerId"]; id != "" {
		return id, nil
	}
	if stripeCustomer != "" {
		id, err := s.c.store.CustomerIDByStripeID(ctx, t, stripeCustomer)
		if err == nil {
			return id, nil
		} else if ErrorCode(err) != ENOTFOUND {
			return "", err
		}
	}
	if subscription != "" {
		rec, err := s.c.store.StripeSubscription(ctx, t, subscription)
		if err == nil {
			return rec.CustomerID, nil
		} else if ErrorCode(err) != ENOTFOUND {
			return "", err
		}
	}
	return "", nil
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// checkout.session.completed: the plan from metadata.tier, the customer from
// client_reference_id, once the session is paid.
func (s *Stripe) applySession(ctx context.Context, t Tenant, conn *StripeConnection, ev *BillingEvent) (*WebhookResult, error) {
	sess := ev.Session
	if sess.Mode != "subscription" {
		return ignored(ev, "not a subscription checkout"), nil
	}
	cusID := sess.ClientReferenceID
	if cusID == "" {
		cusID = sess.Metadata["dreamCustomerId"]
	}
	return s.applyToCustomer(ctx, t, ev, cusID, func(b Tx, cus *Customer) (string, error) {
		linkStripeCustomer(b, t, conn, cus, sess.Customer)
		paid := sess.PaymentStatus == "paid" || sess.PaymentStatus == "no_payment_required"
		if sess.Subscription == "" || !paid {
			return EventApplied, nil
		}
		rec, err := s.subscriptionOf(ctx, t, sess.Subscription)
		if err != nil {
			return "", err
		}
		if ev.Created.Before(rec.SubscriptionEventAt) || rec.Status == "canceled" {
			return EventStale, nil
		}
		plan, err := s.billingPlan(ctx, t, "", sess.Metadata)
		if err != nil {
			return "", err
		}
		if plan != "" {
			cus.Plan = plan
		}
		if cus.Subscription == nil || cus.Subscription.ID != sess.Subscription {
			cus.Subscription = &Subscription{ID: sess.Subscription}
		}
		if !liveStatus(cus.Subscription.Status) {
			cus.Subscription.Status = "active"
		}
		if ev.Created.After(cus.Subscription.UpdatedAt) {
			cus.Subscription.UpdatedAt = ev.Created.UTC()
		}
		rec.CustomerID = cus.ID
		if !liveStatus(rec.Status) {
			rec.Status = "active"
		}
		b.PutStripeSubscription(t, rec)
		return EventApplied, nil
	})
}

// customer.subscription.created|updated|deleted: the plan from the item's
// price, the usage period from the subscription's current period; deleted
// (or ended) goes back to the free or cheapest tier and calendar periods.
func (s *Stripe) applySubscription(ctx context.Context, t Tenant, conn *StripeConnection, ev *BillingEvent) (*WebhookResult, error) {
	sub := ev.Subscription
	cusID, err := s.customerOf(ctx, t, sub.Metadata, sub.Customer, sub.ID)
	if err != nil {
		return nil, err
	}
	deleted := ev.Type == "customer.subscription.deleted"
	return s.applyToCustomer(ctx, t, ev, cusID, func(b Tx, cus *Customer) (string, error) {
		rec, err := s.subscriptionOf(ctx, t, sub.ID)
		if err != nil {
			return "", err
		}
		if ev.Created.Before(rec.SubscriptionEventAt) || (rec.Status == "canceled" && !deleted) {
			return EventStale, nil
		}
		status := sub.Status
		if deleted {
			status = "canceled"
		}
		rec.CustomerID, rec.Status, rec.SubscriptionEventAt = cus.ID, status, ev.Created.UTC()
		b.PutStripeSubscription(t, rec)

		if cur := cus.Subscription; cur != nil && cur.ID != sub.ID && liveStatus(cur.Status) && !liveStatus(status) {
			// The customer is on another subscription now: this one's
			// end changes nothing.
			return EventStale, nil
		}
		linkStripeCustomer(b, t, conn, cus, sub.Customer)
		view := &Subscription{
			ID: sub.ID, Status: status, PastDue: status == "past_due",
			Amount: sub.Amount, Currency: sub.Currency, Interval: sub.Interval, IntervalCount: sub.IntervalCount,
			CurrentPeriodStart: timePtr(sub.CurrentPeriodStart), CurrentPeriodEnd: timePtr(sub.CurrentPeriodEnd),
			CancelAtPeriodEnd: sub.CancelAtPeriodEnd, UpdatedAt: ev.Created.UTC(),
		}
		if sub.Price != "" {
			price := sub.Price
			view.PriceID = &price
		}
		if old := cus.Subscription; old != nil && old.ID == sub.ID {
			view.LastPaymentFailedAt = old.LastPaymentFailedAt
		}
		cus.Subscription = view
		switch {
		case deleted || endedStatus(status):
			plan, err := s.defaultPlan(ctx, t)
			if err != nil {
				return "", err
			}
			cus.Plan = plan
			cus.PeriodStart, cus.PeriodEnd = time.Time{}, time.Time{}
		case liveStatus(status):
			plan, err := s.billingPlan(ctx, t, sub.Price, sub.Metadata)
			if err != nil {
				return "", err
			}
			if plan != "" {
				cus.Plan = plan
			}
			setPeriod(cus, sub.CurrentPeriodStart, sub.CurrentPeriodEnd)
		}
		if err := s.c.emit(ctx, b, t, EventSubscriptionUpdated, SubscriptionUpdatedData{CustomerID: cus.ID, Plan: cus.Plan, Subscription: view}); err != nil {
			return "", err
		}
		return EventApplied, nil
	})
}

// setPeriod makes [start, end) the customer's usage period, unless it would
// move the period backwards (an older view of the subscription).
func setPeriod(cus *Customer, start, end time.Time) {
	if start.IsZero() || !end.After(start) || end.Before(cus.PeriodEnd) {
		return
	}
	cus.PeriodStart, cus.PeriodEnd = start.UTC(), end.UTC()
}

// invoice.paid renews the period and clears past_due; invoice.payment_failed
// marks the customer past_due. Neither changes the plan.
func (s *Stripe) applyInvoice(ctx context.Context, t Tenant, conn *StripeConnection, ev *BillingEvent) (*WebhookResult, error) {
	inv := ev.Invoice
	if inv.Subscription == "" {
		return ignored(ev, "not a subscription's invoice"), nil
	}
	cusID, err := s.customerOf(ctx, t, inv.SubscriptionMetadata, inv.Customer, inv.Subscription)
	if err != nil {
		return nil, err
	}
	paid := ev.Type == "invoice.paid"
	return s.applyToCustomer(ctx, t, ev, cusID, func(b Tx, cus *Customer) (string, error) {
		rec, err := s.subscriptionOf(ctx, t, inv.Subscription)
		if err != nil {
			return "", err
		}
		if ev.Created.Before(rec.InvoiceEventAt) || rec.Status == "canceled" {
			return EventStale, nil
		}
		cur := cus.Subscription
		if cur != nil && cur.ID != inv.Subscription && liveStatus(cur.Status) {
			return EventStale, nil
		}
		rec.CustomerID, rec.InvoiceEventAt = cus.ID, ev.Created.UTC()
		linkStripeCustomer(b, t, conn, cus, inv.Customer)
		if cur == nil || cur.ID != inv.Subscription {
			cur = &Subscription{ID: inv.Subscription, Status: rec.Status}
			cus.Subscription = cur
		}
		if paid {
			cur.PastDue = false
			if cur.Status == "" || cur.Status == "past_due" || cur.Status == "incomplete" {
				cur.Status = "active"
			}
			if !inv.PeriodStart.IsZero() && !inv.PeriodEnd.Before(cus.PeriodEnd) {
				setPeriod(cus, inv.PeriodStart, inv.PeriodEnd)
				cur.CurrentPeriodStart, cur.CurrentPeriodEnd = timePtr(inv.PeriodStart), timePtr(inv.PeriodEnd)
			}
		} else {
			cur.PastDue = true
			cur.LastPaymentFailedAt = timePtr(ev.Created)
			if cur.Status == "active" || cur.Status == "" {
				cur.Status = "past_due"
			}
		}
		if ev.Created.After(cur.UpdatedAt) {
			cur.UpdatedAt = ev.Created.UTC()
		}
		rec.Status = cur.Status
		b.PutStripeSubscription(t, rec)
		return EventApplied, nil
	})
}

// account.updated: the onboarding state of a Connect account.
func (s *Stripe) applyAccount(ctx context.Context, t Tenant, ev *BillingEvent) (*WebhookResult, error) {
	au := ev.AccountUpdate
	locks := append(s.connectionLock(t), stripeLogLock(t))
	res, err := s.c.update(ctx, t, nil, locks, func(b Tx) (any, error) {
		rec := &StripeEventRecord{EventID: ev.ID, Type: ev.Type, ReceivedAt: s.c.now().UTC()}
		if seen, err := b.StripeEventApplied(ctx, t, ev.ID); err != nil {
			return nil, err
		} else if seen {
			rec.Outcome, rec.Reason = EventDuplicate, "applied before"
			return EventDuplicate, s.c.logStripeEvent(ctx, b, t, rec)
		}
		conn, err := s.storedConnection(ctx, t)
		if err != nil {
			return nil, err
		}
		if conn == nil || conn.AccountID != au.ID {
			rec.Outcome, rec.Reason = EventIgnored, "not the platform's connected account"
			return EventIgnored, s.c.logStripeEvent(ctx, b, t, rec)
		}
		conn.ChargesEnabled, conn.DetailsSubmitted, conn.UpdatedAt = au.ChargesEnabled, au.DetailsSubmitted, s.c.now().UTC()
		b.PutStripeConnection(t, conn)
		b.PutStripeEvent(t, ev.ID, s.c.now().UTC())
		rec.Outcome = EventApplied
		return EventApplied, s.c.logStripeEvent(ctx, b, t, rec)
	})
	if err != nil {
		return nil, err
	}
	r := result(ev, res.(string))
	r.logged = true
	return r, nil
}

// applyOperatorEvent applies an event of the operator's own account: a
// platform's subscription to dream-api, found by the dreamPlatformId in the
// metadata (or the session's client_reference_id). Only events of the mode
// platforms are billed in (operatorBillingKey's: live when the operator has
// a live key) count: a test-mode checkout, which anyone can complete with a
// test card, never turns live keys on, nor does a test-mode cancellation
// turn them off.
func (s *Stripe) applyOperatorEvent(ctx context.Context, ev *BillingEvent) (*WebhookResult, error) {
	billedIn := Live
	if s.cfg.OperatorKeys[Live] == "" && s.cfg.OperatorKeys[Test] != "" {
		billedIn = Test
	}
	if ev.Mode() != billedIn {
		s.c.log.Info("operator stripe event of the other mode ignored", "event", ev.ID, "type", ev.Type, "mode", ev.Mode().String(), "billedIn", billedIn.String())
		return result(ev, EventIgnored), nil
	}
	var pid string
	switch {
	case ev.Session != nil && ev.Type == "checkout.session.completed" && ev.Session.Mode == "subscription":
		pid = ev.Session.Metadata["dreamPlatformId"]
		if pid == "" && strings.HasPrefix(ev.Session.ClientReferenceID, "plt_") {
			pid = ev.Session.ClientReferenceID
		}
	case ev.Subscription != nil && strings.HasPrefix(ev.Type, "customer.subscription."):
		pid = ev.Subscription.Metadata["dreamPlatformId"]
	case ev.Invoice != nil && (ev.Type == "invoice.paid" || ev.Type == "invoice.payment_failed"):
		pid = ev.Invoice.SubscriptionMetadata["dreamPlatformId"]
	}
	if pid == "" || len(pid) > 100 {
		return result(ev, EventIgnored), nil
	}
	if _, err := s.c.store.Platform(ctx, pid); ErrorCode(err) == ENOTFOUND {
		return result(ev, EventIgnored), nil
	} else if err != nil {
		return nil, err
	}
	op := Tenant{PlatformID: operatorTenant, Mode: ev.Mode()}
	// Whether live keys are allowed follows the stored billing record
	// (core.changed), in the unit of work that writes it.
	res, err := s.c.update(ctx, op, nil, []Lock{platformBillingLock(pid)}, func(b Tx) (any, error) {
		if seen, err := b.StripeEventApplied(ctx, op, ev.ID); err != nil {
			return nil, err
		} else if seen {
			return EventDuplicate, nil
		}
		pb, err := b.PlatformBilling(ctx, pid)
		if ErrorCode(err) == ENOTFOUND {
			pb = &PlatformBilling{PlatformID: pid}
		} else if err != nil {
			return nil, err
		}
		outcome := s.platformEffect(pb, ev)
		if outcome == EventApplied {
			pb.UpdatedAt = s.c.now().UTC()
			b.PutPlatformBilling(pb)
		}
		b.PutStripeEvent(op, ev.ID, s.c.now().UTC())
		return outcome, nil
	})
	if err != nil {
		return nil, err
	}
	return result(ev, res.(string)), nil
}

// platformEffect changes a platform's billing by an operator event.
func (s *Stripe) platformEffect(pb *PlatformBilling, ev *BillingEvent) string {
	sameSub := func(id string) bool { return pb.SubscriptionID == "" || pb.SubscriptionID == id }
	switch {
	case ev.Session != nil:
		sess := ev.Session
		if sess.PaymentStatus != "paid" && sess.PaymentStatus != "no_payment_required" {
			return EventIgnored
		}
		if sess.Subscription == pb.SubscriptionID && (ev.Created.Before(pb.EventAt) || pb.Status == "canceled") {
			return EventStale
		}
		if sess.Customer != "" {
			pb.CustomerID = sess.Customer
		}
		if sess.Subscription != pb.SubscriptionID || !liveStatus(pb.Status) {
			pb.SubscriptionID, pb.Status = sess.Subscription, "active"
		}
		if ev.Created.After(pb.EventAt) {
			pb.EventAt = ev.Created.UTC()
		}
	case ev.Subscription != nil:
		sub := ev.Subscription
		if sameSub(sub.ID) && (ev.Created.Before(pb.EventAt) || (pb.Status == "canceled" && pb.SubscriptionID == sub.ID && ev.Type != "customer.subscription.deleted")) {
			return EventStale
		}
		status := sub.Status
		if ev.Type == "customer.subscription.deleted" {
			status = "canceled"
		}
		if !sameSub(sub.ID) && pb.Active() && !liveStatus(status) {
			return EventStale // another, older subscription ended
		}
		pb.SubscriptionID, pb.Status, pb.EventAt = sub.ID, status, ev.Created.UTC()
		if sub.Customer != "" {
			pb.CustomerID = sub.Customer
		}
		pb.CurrentPeriodEnd = timePtr(sub.CurrentPeriodEnd)
	case ev.Invoice != nil:
		inv := ev.Invoice
		if inv.Subscription == "" || pb.SubscriptionID != inv.Subscription || pb.Status == "canceled" {
			return EventIgnored
		}
		if ev.Type == "invoice.paid" {
			if pb.Status == "past_due" || pb.Status == "incomplete" {
				pb.Status = "active"
			}
			if !inv.PeriodEnd.IsZero() {
				pb.CurrentPeriodEnd = timePtr(inv.PeriodEnd)
			}
		} else if pb.Status == "active" {
			pb.Status = "past_due"
		}
	default:
		return EventIgnored
	}
	return EventApplied
}
