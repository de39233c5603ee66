package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/dream-api/dream-api/engine"
)

// Outgoing webhooks: endpoints, events (the exact body sent), deliveries
// (the log, one record per event and endpoint) and the queue of pending
// deliveries. Key layout in keys.go.

// endpointRecord is an endpoint as stored: engine.WebhookEndpoint does not
// marshal its sealed secrets.
type endpointRecord struct {
	engine.WebhookEndpoint
	Secret          []byte    `json:"secret"`
	PrevSecret      []byte    `json:"prevSecret,omitempty"`
	PrevSecretUntil time.Time `json:"prevSecretUntil,omitzero"`
}

func decodeEndpoint(val []byte) (*engine.WebhookEndpoint, error) {
	var r endpointRecord
	if err := decodeJSON("webhook endpoint", val, &r); err != nil {
		return nil, err
	}
	e := r.WebhookEndpoint
	e.Secret, e.PrevSecret, e.PrevSecretUntil = r.Secret, r.PrevSecret, r.PrevSecretUntil
	return &e, nil
}

// eventRecord is an event as stored.
type eventRecord struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	CreatedAt time.Time       `json:"createdAt"`
	Body      json.RawMessage `json:"body"`
}

func decodeDelivery(val []byte) (*engine.WebhookDelivery, error) {
	d := new(engine.WebhookDelivery)
	return d, decodeJSON("webhook delivery", val, d)
}

// WebhookEndpoints lists a tenant's endpoints in id (creation) order.
func (s *Store) WebhookEndpoints(ctx context.Context, t engine.Tenant) ([]*engine.WebhookEndpoint, error) {
	prefix := webhookEndpointsPrefix(t)
	eps, _, err := list(ctx, s, prefix, prefixEnd(prefix), maxPageLimit, decodeEndpoint)
	return eps, err
}

// WebhookEndpoint returns one endpoint, or ENOTFOUND.
func (s *Store) WebhookEndpoint(ctx context.Context, t engine.Tenant, id string) (*engine.WebhookEndpoint, error) {
	var e *engine.WebhookEndpoint
	found, err := s.get(webhookEndpointKey(t, id), func(val []byte) (err error) {
		e, err = decodeEndpoint(val)
		return err
	})
	if err == nil && !found {
		err = engine.Errorf(engine.ENOTFOUND, "No webhook endpoint %s", id)
	}
	return e, err
}

// WebhookEvent returns an event, or ENOTFOUND.
func (s *Store) WebhookEvent(ctx context.Context, t engine.Tenant, id string) (*engine.WebhookEvent, error) {
	var ev *engine.WebhookEvent
	found, err := s.get(webhookEventKey(t, id), func(val []byte) error {
		var r eventRecord
		if err := decodeJSON("webhook event", val, &r); err != nil {
			return err
		}
		ev = &engine.WebhookEvent{ID: r.ID, Type: r.Type, CreatedAt: r.CreatedAt, Body: append([]byte(nil), r.Body...)}
		return nil
	})
	if err == nil && !found {
		err = engine.Errorf(engine.ENOTFOUND, "No webhook event %s", id)
	}
	return ev, err
}

// WebhookDelivery returns the delivery of an event to an endpoint, or
// ENOTFOUND.
func (s *Store) WebhookDelivery(ctx context.Context, t engine.Tenant, endpointID, eventID string) (*engine.WebhookDelivery, error) {
	var d *engine.WebhookDelivery
	found, err := s.get(webhookDeliveryKey(t, endpointID, eventID), func(val []byte) (err error) {
		d, err = decodeDelivery(val)
		return err
	})
	if err == nil && !found {
		err = engine.Errorf(engine.ENOTFOUND, "No delivery of %s to %s", eventID, endpointID)
	}
	return d, err
}

// WebhookDeliveries lists an endpoint's deliveries, newest event first,
// starting after (older than) p.StartingAfter.
func (s *Store) WebhookDeliveries(ctx context.Context, t engine.Tenant, endpointID string, p engine.Page) ([]*engine.WebhookDelivery, bool, error) {
	prefix := webhookDeliveriesPrefix(t, endpointID)
	upper := prefixEnd(prefix)
	if p.StartingAfter != "" {
		upper = webhookDeliveryKey(t, endpointID, p.StartingAfter)
	}
	limit := p.Limit
	if limit <= 0 {
		limit = defaultPageLimit
	}
	limit = min(limit, maxPageLimit)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return nil, false, ErrClosed
	}
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: prefix, UpperBound: upper})
	if err != nil {
		return nil, false, fmt.Errorf("storage: scan: %w", err)
	}
	var out []*engine.WebhookDelivery
	more := false
	for valid := it.Last(); valid && err == nil; valid = it.Prev() {
		if len(out) == limit {
			more = true
			break
		}
		var val []byte
		if val, err = it.ValueAndErr(); err == nil {
			var d *engine.WebhookDelivery
			if d, err = decodeDelivery(val); err == nil {
				out = append(out, d)
			}
		}
	}
	if cerr := it.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("storage: scan: %w", cerr)
	}
	return out, more, err
}

// WebhookPending lists up to limit pending deliveries of an endpoint,
// oldest event first.
func (s *Store) WebhookPending(ctx context.Context, t engine.Tenant, endpointID string, limit int) ([]*engine.WebhookDelivery, error) {
	prefix := webhookQueuePrefix(t, endpointID)
	var ids []string
	err := s.scan(ctx, prefix, prefixEnd(prefix), func(key, _ []byte) error {
		if len(ids) == limit {
			return errStop
		}
		ids = append(ids, string(key[len(prefix):]))
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]*engine.WebhookDelivery, 0, len(ids))
	for _, id := range ids {
		d, err := s.WebhookDelivery(ctx, t, endpointID, id)
		if engine.ErrorCode(err) == engine.ENOTFOUND {
			continue
		} else if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// WebhookPendingEndpoints lists the endpoints that have a pending delivery,
// skipping over each endpoint's queue once one entry is seen.
func (s *Store) WebhookPendingEndpoints(ctx context.Context) ([]engine.WebhookEndpointRef, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return nil, ErrClosed
	}
	lower := webhookQueueAll()
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
	if err != nil {
		return nil, fmt.Errorf("storage: scan: %w", err)
	}
	var out []engine.WebhookEndpointRef
	for valid := it.First(); valid; {
		if err = ctx.Err(); err != nil {
			break
		}
		ref, ok := parseWebhookQueueKey(it.Key())
		if !ok {
			err = fmt.Errorf("%w: malformed webhook queue key %q", ErrFormat, it.Key())
			break
		}
		out = append(out, ref)
		valid = it.SeekGE(prefixEnd(webhookQueuePrefix(ref.Tenant, ref.EndpointID)))
	}
	if cerr := it.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("storage: scan: %w", cerr)
	}
	if errors.Is(err, errStop) {
		err = nil
	}
	return out, err
}

// PutWebhookEndpoint writes an endpoint.
func (b *batch) PutWebhookEndpoint(t engine.Tenant, e *engine.WebhookEndpoint) {
	if b.check(t.PlatformID, e.ID) {
		val, err := encodeJSON(endpointRecord{WebhookEndpoint: *e, Secret: e.Secret, PrevSecret: e.PrevSecret, PrevSecretUntil: e.PrevSecretUntil})
		b.setEncoded(webhookEndpointKey(t, e.ID), val, err)
	}
}

// DeleteWebhookEndpoint removes an endpoint record.
func (b *batch) DeleteWebhookEndpoint(t engine.Tenant, id string) {
	if b.check(t.PlatformID, id) {
		b.delete(webhookEndpointKey(t, id))
	}
}

// PutWebhookEvent writes an event.
func (b *batch) PutWebhookEvent(t engine.Tenant, ev *engine.WebhookEvent) {
	if b.check(t.PlatformID, ev.ID) {
		val, err := encodeJSON(eventRecord{ID: ev.ID, Type: ev.Type, CreatedAt: ev.CreatedAt, Body: ev.Body})
		b.setEncoded(webhookEventKey(t, ev.ID), val, err)
	}
}

// PutWebhookDelivery writes a delivery and queues it while it is pending.
func (b *batch) PutWebhookDelivery(t engine.Tenant, d *engine.WebhookDelivery) {
	if !b.check(t.PlatformID, d.EndpointID, d.EventID) {
		return
	}
	val, err := encodeJSON(d)
	b.setEncoded(webhookDeliveryKey(t, d.EndpointID, d.EventID), val, err)
	if d.State == engine.DeliveryPending {
		b.set(webhookQueueKey(t, d.EndpointID, d.EventID), encodeBytes(nil))
		b.changed(engine.Change{PlatformID: t.PlatformID, Mode: t.Mode, WebhookDelivery: d})
	} else {
		b.delete(webhookQueueKey(t, d.EndpointID, d.EventID))
	}
}

// ExpireWebhooks deletes the deliveries (not pending) and the events made
// before before, and returns how many records went.
func (s *Store) ExpireWebhooks(ctx context.Context, before time.Time) (int, error) {
	n := 0
	for _, prefix := range []string{prefixWebhookDelivery, prefixWebhookEvent} {
		lower := prefixOf(makeKey(prefix))
		for {
			var expired [][]byte
			err := s.scan(ctx, lower, prefixEnd(lower), func(key, val []byte) error {
				var created time.Time
				if prefix == prefixWebhookDelivery {
					d, err := decodeDelivery(val)
					if err == nil && d.State == engine.DeliveryPending {
						return nil
					}
					if err == nil {
						created = d.CreatedAt
					}
				} else {
					var r eventRecord
					if decodeJSON("webhook event", val, &r) == nil {
						created = r.CreatedAt
					}
				}
				if created.Before(before) { // undecodable ones too
					expired = append(expired, append([]byte(nil), key...))
				}
				if len(expired) == 1000 {
					return errStop
				}
				return nil
			})
			if err != nil {
				return n, err
			}
			if len(expired) > 0 {
				if err := s.deleteKeys(expired, "webhook records"); err != nil {
					return n, err
				}
				n += len(expired)
			}
			if len(expired) < 1000 {
				break
			}
		}
	}
	return n, nil
}
