package storage

import (
	"context"

	"github.com/dream-api/dream-api/engine"
)

// The outbox holds changes waiting to be delivered to Clerk (engine's
// outbox.go). An entry is written in the batch of the change that causes
// it, so it is durable exactly when the change is.

// Outbox lists a page of outbox entries in id order, which is creation
// order, and reports whether more follow.
func (s *Store) Outbox(ctx context.Context, p engine.Page) ([]*engine.OutboxEntry, bool, error) {
	start := outboxPrefix()
	if p.StartingAfter != "" {
		start = after(outboxKey(p.StartingAfter))
	}
	return list(ctx, s, start, prefixEnd(outboxPrefix()), p.Limit, decodeOutboxEntry)
}

func decodeOutboxEntry(val []byte) (*engine.OutboxEntry, error) {
	e := new(engine.OutboxEntry)
	return e, decodeJSON("outbox entry", val, e)
}

// PutOutbox writes an outbox entry, or rewrites it after a failed delivery.
func (b *batch) PutOutbox(e *engine.OutboxEntry) {
	if b.check(e.ID) {
		val, err := encodeJSON(e)
		b.setEncoded(outboxKey(e.ID), val, err)
	}
}

// DeleteOutbox removes a delivered entry; deleting one that is gone does
// nothing.
func (b *batch) DeleteOutbox(id string) {
	if b.check(id) {
		b.delete(outboxKey(id))
	}
}
