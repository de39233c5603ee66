package engine

import (
	"cmp"
	"context"
	"slices"
	"time"
)

// The recent Stripe events of a tenant, as the dashboard's Stripe page shows
// them: a bounded log (a ring of StripeEventLogSize records) written in the
// same unit of work as the event's effect, so that what it says happened is
// what happened. Events the engine answers without a unit of work (a type it
// does not handle, an object it does not act on) are logged in a small unit
// of their own. Signature failures are not logged per tenant (the tenant of
// a forged delivery is not known); /metrics counts them. Events of an
// account no platform is connected to, and the operator's own events, have
// no tenant's log.

// StripeEventLogSize is how many recent Stripe events a tenant's log keeps.
const StripeEventLogSize = 50

// EventFailed is an outcome of the log only: the event could not be
// applied (an unknown customer, an error); the webhook's answer says
// "ignored", or is an error Stripe retries.
const EventFailed = "failed"

// StripeEventRecord is one Stripe event in a tenant's log.
type StripeEventRecord struct {
	// Seq orders the log (1, 2, …); the record sits in slot Seq % StripeEventLogSize.
	Seq        int64     `json:"seq"`
	EventID    string    `json:"eventId"`
	Type       string    `json:"type"`
	ReceivedAt time.Time `json:"receivedAt"`
	// Outcome is applied, duplicate, stale, ignored or failed.
	Outcome string `json:"outcome"`
	// Reason says why an event was ignored or failed, shortly.
	Reason string `json:"reason,omitempty"`
	// CustomerID is the customer the event was about, when known; PlanFrom
	// and PlanTo are its plan before and after (equal when unchanged).
	CustomerID string `json:"customerId,omitempty"`
	PlanFrom   string `json:"planFrom,omitempty"`
	PlanTo     string `json:"planTo,omitempty"`
}

// StripeEventLogStore reads a tenant's log of recent Stripe events.
type StripeEventLogStore interface {
	// StripeEventLog returns the records of t's log, in any order; none
	// (no error) when empty.
	StripeEventLog(ctx context.Context, t Tenant) ([]*StripeEventRecord, error)
}

// StripeEventLogBatch writes a tenant's log of recent Stripe events.
type StripeEventLogBatch interface {
	// PutStripeEventLog writes r into slot (0 ≤ slot < StripeEventLogSize)
	// of t's log, replacing what was there.
	PutStripeEventLog(t Tenant, slot int, r *StripeEventRecord)
}

// stripeLogLock guards a tenant's log of Stripe events (its next slot).
func stripeLogLock(t Tenant) Lock {
	return Lock{Kind: LockStripeEventLog, Mode: t.Mode, Platform: t.PlatformID}
}

// logStripeEvent appends r to t's log within the unit of work tx, which
// MUST hold stripeLogLock(t): the next record replaces the oldest once the
// log is full.
func (c *core) logStripeEvent(ctx context.Context, tx Tx, t Tenant, r *StripeEventRecord) error {
	recs, err := tx.StripeEventLog(ctx, t)
	if err != nil {
		return err
	}
	var last int64
	for _, x := range recs {
		last = max(last, x.Seq)
	}
	r.Seq = last + 1
	tx.PutStripeEventLog(t, int(r.Seq%StripeEventLogSize), r)
	return nil
}

// logStripeEventAlone logs r in a unit of work of its own: an event that
// changed nothing (or could not be applied). A failure is logged, not
// returned: the log is not worth failing a webhook for.
func (c *core) logStripeEventAlone(ctx context.Context, t Tenant, r *StripeEventRecord) {
	_, err := c.store.Update(ctx, []Lock{stripeLogLock(t)}, func(tx Tx) (any, error) {
		return nil, c.logStripeEvent(ctx, tx, t, r)
	})
	if err != nil && ctx.Err() == nil {
		c.log.Warn("logging a stripe event failed", "platform", t.PlatformID, "mode", t.Mode.String(), "event", r.EventID, "err", err)
	}
}

// RecentEvents returns t's most recent Stripe events, newest first (at
// most StripeEventLogSize), for the dashboard.
func (s *Stripe) RecentEvents(ctx context.Context, t Tenant) ([]*StripeEventRecord, error) {
	recs, err := s.c.store.StripeEventLog(ctx, t)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(recs, func(a, b *StripeEventRecord) int { return cmp.Compare(b.Seq, a.Seq) })
	return recs, nil
}
