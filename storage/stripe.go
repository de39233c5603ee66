package storage

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/dream-api/dream-api/engine"
)

// Stripe state: connections (secrets inside are sealed by the engine),
// catalogs, the indexes webhooks resolve through, and the record of applied
// events. Key layout in keys.go.

// StripeConnection returns a platform's Stripe connection in t's mode, or
// ENOTFOUND.
func (s *Store) StripeConnection(ctx context.Context, t engine.Tenant) (*engine.StripeConnection, error) {
	var c *engine.StripeConnection
	found, err := s.get(stripeConnectionKey(t), func(val []byte) error {
		c = new(engine.StripeConnection)
		return decodeJSON("stripe connection", val, c)
	})
	if err == nil && !found {
		err = engine.Errorf(engine.ENOTFOUND, "No Stripe connection for %s (%s)", t.PlatformID, t.Mode)
	}
	return c, err
}

// StripeAccountPlatform returns the platform a Connect account belongs to,
// or ENOTFOUND.
func (s *Store) StripeAccountPlatform(ctx context.Context, accountID string) (string, error) {
	var id []byte
	found, err := s.get(stripeAccountKey(accountID), func(val []byte) (err error) {
		id, err = decodeBytes("stripe account index", val)
		return err
	})
	if err == nil && (!found || len(id) == 0) {
		err = engine.Errorf(engine.ENOTFOUND, "No platform for Stripe account %s", accountID)
	}
	return string(id), err
}

// StripeCatalog returns a platform's Stripe products and prices in t's mode,
// or ENOTFOUND.
func (s *Store) StripeCatalog(ctx context.Context, t engine.Tenant) (*engine.StripeCatalog, error) {
	var c *engine.StripeCatalog
	found, err := s.get(stripeCatalogKey(t), func(val []byte) error {
		c = new(engine.StripeCatalog)
		return decodeJSON("stripe catalog", val, c)
	})
	if err == nil && !found {
		err = engine.Errorf(engine.ENOTFOUND, "No Stripe catalog for %s (%s)", t.PlatformID, t.Mode)
	}
	return c, err
}

// CustomerIDByStripeID returns the id of the tenant's customer with a Stripe
// customer id, or ENOTFOUND.
func (s *Store) CustomerIDByStripeID(ctx context.Context, t engine.Tenant, stripeCustomerID string) (string, error) {
	var id []byte
	found, err := s.get(stripeCustomerKey(t, stripeCustomerID), func(val []byte) (err error) {
		id, err = decodeBytes("stripe customer index", val)
		return err
	})
	if err == nil && (!found || len(id) == 0) {
		err = engine.Errorf(engine.ENOTFOUND, "No customer for Stripe customer %s", stripeCustomerID)
	}
	return string(id), err
}

// StripeSubscription returns the ordering record of a subscription, or
// ENOTFOUND.
func (s *Store) StripeSubscription(ctx context.Context, t engine.Tenant, id string) (*engine.StripeSubscription, error) {
	var sub *engine.StripeSubscription
	found, err := s.get(stripeSubscriptionKey(t, id), func(val []byte) error {
		sub = new(engine.StripeSubscription)
		return decodeJSON("stripe subscription", val, sub)
	})
	if err == nil && !found {
		err = engine.Errorf(engine.ENOTFOUND, "No Stripe subscription %s", id)
	}
	return sub, err
}

// StripeEventApplied reports whether an event id was recorded in t.
func (s *Store) StripeEventApplied(ctx context.Context, t engine.Tenant, eventID string) (bool, error) {
	return s.get(stripeEventKey(t, eventID), func(val []byte) error {
		_, err := decodeTime("stripe event", val)
		return err
	})
}

// StripeEventLog returns the records of t's log of recent Stripe events,
// by slot; none when empty.
func (s *Store) StripeEventLog(ctx context.Context, t engine.Tenant) ([]*engine.StripeEventRecord, error) {
	if err := checkComponents(t.PlatformID); err != nil {
		return nil, err
	}
	prefix := stripeLogPrefix(t)
	recs, _, err := list(ctx, s, prefix, prefixEnd(prefix), maxPageLimit, decodeStripeLogRecord)
	return recs, err
}

func decodeStripeLogRecord(val []byte) (*engine.StripeEventRecord, error) {
	r := new(engine.StripeEventRecord)
	return r, decodeJSON("stripe event log record", val, r)
}

// PutStripeEventLog writes slot of t's log of recent Stripe events.
func (b *batch) PutStripeEventLog(t engine.Tenant, slot int, r *engine.StripeEventRecord) {
	if slot < 0 || slot >= engine.StripeEventLogSize {
		b.fail(fmt.Errorf("storage: stripe event log slot %d out of range", slot))
		return
	}
	if b.check(t.PlatformID) {
		val, err := encodeJSON(r)
		b.setEncoded(stripeLogKey(t, slot), val, err)
	}
}

// PlatformBilling returns a platform's subscription on the operator's
// account, or ENOTFOUND.
func (s *Store) PlatformBilling(ctx context.Context, platformID string) (*engine.PlatformBilling, error) {
	var pb *engine.PlatformBilling
	found, err := s.get(platformBillingKey(platformID), func(val []byte) error {
		pb = new(engine.PlatformBilling)
		return decodeJSON("platform billing", val, pb)
	})
	if err == nil && !found {
		err = engine.Errorf(engine.ENOTFOUND, "No billing for platform %s", platformID)
	}
	return pb, err
}

// PutStripeConnection writes a platform's connection in t's mode.
func (b *batch) PutStripeConnection(t engine.Tenant, c *engine.StripeConnection) {
	if b.check(t.PlatformID) {
		val, err := encodeJSON(c)
		b.setEncoded(stripeConnectionKey(t), val, err)
	}
}

// DeleteStripeConnection removes a platform's connection in t's mode.
func (b *batch) DeleteStripeConnection(t engine.Tenant) {
	if b.check(t.PlatformID) {
		b.delete(stripeConnectionKey(t))
	}
}

// PutStripeAccount points a Connect account at its platform.
func (b *batch) PutStripeAccount(accountID, platformID string) {
	if b.check(accountID, platformID) {
		b.set(stripeAccountKey(accountID), encodeBytes([]byte(platformID)))
	}
}

// DeleteStripeAccount removes a Connect account's index entry.
func (b *batch) DeleteStripeAccount(accountID string) {
	if b.check(accountID) {
		b.delete(stripeAccountKey(accountID))
	}
}

// PutStripeCatalog writes a platform's Stripe catalog in t's mode.
func (b *batch) PutStripeCatalog(t engine.Tenant, c *engine.StripeCatalog) {
	if b.check(t.PlatformID) {
		val, err := encodeJSON(c)
		b.setEncoded(stripeCatalogKey(t), val, err)
	}
}

// PutStripeCustomer indexes a Stripe customer id to a customer id.
func (b *batch) PutStripeCustomer(t engine.Tenant, stripeCustomerID, customerID string) {
	if b.check(t.PlatformID, stripeCustomerID, customerID) {
		b.set(stripeCustomerKey(t, stripeCustomerID), encodeBytes([]byte(customerID)))
	}
}

// PutStripeSubscription writes the ordering record of a subscription.
func (b *batch) PutStripeSubscription(t engine.Tenant, sub *engine.StripeSubscription) {
	if b.check(t.PlatformID, sub.ID) {
		val, err := encodeJSON(sub)
		b.setEncoded(stripeSubscriptionKey(t, sub.ID), val, err)
	}
}

// PutStripeEvent records an event id as applied at appliedAt.
func (b *batch) PutStripeEvent(t engine.Tenant, eventID string, appliedAt time.Time) {
	if b.check(t.PlatformID, eventID) {
		b.set(stripeEventKey(t, eventID), encodeTime(appliedAt))
	}
}

// PutPlatformBilling writes a platform's subscription on the operator's
// account.
func (b *batch) PutPlatformBilling(pb *engine.PlatformBilling) {
	if b.check(pb.PlatformID) {
		val, err := encodeJSON(pb)
		b.setEncoded(platformBillingKey(pb.PlatformID), val, err)
		b.changed(engine.Change{PlatformID: pb.PlatformID, Billing: pb})
	}
}

// A time is big-endian unix milliseconds.
func encodeTime(t time.Time) []byte {
	return binary.BigEndian.AppendUint64([]byte{formatV1}, uint64(t.UnixMilli()))
}

func decodeTime(what string, val []byte) (time.Time, error) {
	p, err := payload(what, val)
	if err != nil {
		return time.Time{}, err
	}
	if len(p) != 8 {
		return time.Time{}, fmt.Errorf("%w: %s is %d bytes", ErrFormat, what, len(val))
	}
	return time.UnixMilli(int64(binary.BigEndian.Uint64(p))).UTC(), nil
}
