package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dream-api/dream-api/engine"
	"github.com/jackc/pgx/v5"
)

// errBadComponent is kept by a writer when an id is empty or holds a NUL
// byte, which PostgreSQL's text cannot store (the Pebble store refuses the
// same ids).
var errBadComponent = errors.New("postgres: id is empty or contains a NUL byte")

// statement is one queued write; check, when set, judges its result.
type statement struct {
	sql   string
	args  []any
	check func(rowsAffected int64) error
}

// writer queues the writes of a batch or a unit of work, to send them in
// one round trip, with the changes they make to cached state.
type writer struct {
	stmts   []statement
	changes []engine.Change
	// local are changes for this node's Watch listener only (a pending
	// webhook delivery wakes its worker), not logged for other nodes.
	local []engine.Change
	err   error
}

func newWriter() *writer { return &writer{} }

func (w *writer) fail(err error) {
	if w.err == nil {
		w.err = err
	}
}

// ok reports whether writes should still be queued, keeping an error if an
// id is not fit to store.
func (w *writer) ok(ids ...string) bool {
	if w.err != nil {
		return false
	}
	for _, id := range ids {
		if id == "" || strings.IndexByte(id, 0) >= 0 {
			w.fail(fmt.Errorf("%w: %q", errBadComponent, id))
			return false
		}
	}
	return true
}

func (w *writer) exec(sql string, args ...any) {
	w.stmts = append(w.stmts, statement{sql: sql, args: args})
}

// jsonOf encodes v, keeping the error.
func (w *writer) jsonOf(v any) ([]byte, bool) {
	b, err := json.Marshal(v)
	if err != nil {
		w.fail(fmt.Errorf("postgres: encode: %w", err))
		return nil, false
	}
	return b, true
}

// Empty reports whether nothing has been written.
func (w *writer) Empty() bool { return len(w.stmts) == 0 }

// PutAdminTokenHash stores the hash of the admin token.
func (w *writer) PutAdminTokenHash(h [32]byte) {
	if w.ok() {
		w.exec(`INSERT INTO meta (name, value) VALUES ('admin', $1)
			ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value`, h[:])
	}
}

// PutPlatform writes p and logs the change for every node (key
// authentication follows a suspension).
func (w *writer) PutPlatform(p *engine.Platform) {
	if b, ok := w.jsonOf(p); ok && w.ok(p.ID) {
		w.exec(`INSERT INTO platforms (id, record) VALUES ($1, $2)
			ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record`, p.ID, b)
		w.changes = append(w.changes, engine.Change{PlatformID: p.ID, Platform: p})
	}
}

// PutKey writes k with its secret hash and publishable key as columns.
func (w *writer) PutKey(k *engine.Key) {
	if !w.ok(k.PlatformID, k.ID) || (k.PublishableKey != "" && !w.ok(k.PublishableKey)) {
		return
	}
	if b, ok := w.jsonOf(keyRecord{Key: *k, SecretHash: k.SecretHash[:]}); ok {
		w.exec(`INSERT INTO api_keys (platform, id, secret_hash, publishable, record) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (platform, id) DO UPDATE SET secret_hash = EXCLUDED.secret_hash,
			publishable = EXCLUDED.publishable, record = EXCLUDED.record`,
			k.PlatformID, k.ID, k.SecretHash[:], k.PublishableKey, b)
		w.changes = append(w.changes, engine.Change{PlatformID: k.PlatformID, Mode: k.Mode, Key: k})
	}
}

// PutTiers writes a tenant's tier config.
func (w *writer) PutTiers(t engine.Tenant, c *engine.TierConfig) {
	if b, ok := w.jsonOf(c); ok && w.ok(t.PlatformID) {
		w.exec(`INSERT INTO tiers (platform, mode, config) VALUES ($1, $2, $3)
			ON CONFLICT (platform, mode) DO UPDATE SET config = EXCLUDED.config`, t.PlatformID, mode(t.Mode), b)
		w.changes = append(w.changes, engine.Change{PlatformID: t.PlatformID, Mode: t.Mode, Tiers: c})
	}
}

// PutCustomer writes c; its email (lowercased) is a column, so prevEmail
// is not needed.
func (w *writer) PutCustomer(t engine.Tenant, c *engine.Customer, prevEmail string) {
	rec := customerRecord{Customer: *c, SubscriptionStart: c.PeriodStart, SubscriptionEnd: c.PeriodEnd}
	if b, ok := w.jsonOf(rec); ok && w.ok(t.PlatformID, c.ID) {
		w.exec(`INSERT INTO customers (platform, mode, id, email, record) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (platform, mode, id) DO UPDATE SET email = EXCLUDED.email, record = EXCLUDED.record`,
			t.PlatformID, mode(t.Mode), c.ID, strings.ToLower(c.Email), b)
	}
}

// DeleteCustomer removes c; its counters, plugin state and idempotency
// records stay.
func (w *writer) DeleteCustomer(t engine.Tenant, c *engine.Customer) {
	if w.ok(t.PlatformID, c.ID) {
		w.exec(`DELETE FROM customers WHERE platform = $1 AND mode = $2 AND id = $3`, t.PlatformID, mode(t.Mode), c.ID)
	}
}

// PutPlatformQuotas writes a platform's own quotas.
func (w *writer) PutPlatformQuotas(platformID string, q *engine.PlatformQuotas) {
	if b, ok := w.jsonOf(q); ok && w.ok(platformID) {
		w.exec(`INSERT INTO platform_quotas (platform, record) VALUES ($1, $2)
			ON CONFLICT (platform) DO UPDATE SET record = EXCLUDED.record`, platformID, b)
		w.changes = append(w.changes, engine.Change{PlatformID: platformID, Quotas: q})
	}
}

// PutAggregates writes a tenant's customer aggregates.
func (w *writer) PutAggregates(t engine.Tenant, a *engine.Aggregates) {
	if b, ok := w.jsonOf(a); ok && w.ok(t.PlatformID) {
		w.exec(`INSERT INTO aggregates (platform, mode, record) VALUES ($1, $2, $3)
			ON CONFLICT (platform, mode) DO UPDATE SET record = EXCLUDED.record`, t.PlatformID, mode(t.Mode), b)
	}
}

// PutCounter writes a usage counter.
func (w *writer) PutCounter(k engine.CounterKey, c engine.Counter) {
	if w.ok(k.PlatformID, k.CustomerID, k.Feature) {
		w.exec(`INSERT INTO counters (platform, mode, customer, feature, period_start, count, period_end)
			VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (platform, mode, customer, feature, period_start)
			DO UPDATE SET count = EXCLUDED.count, period_end = EXCLUDED.period_end`,
			k.PlatformID, mode(k.Mode), k.CustomerID, k.Feature, ms(k.PeriodStart), c.Count, ms(c.PeriodEnd))
	}
}

// PutPolicyState writes a customer's plugin state for feature.
func (w *writer) PutPolicyState(t engine.Tenant, customerID, feature string, state []byte) {
	if w.ok(t.PlatformID, customerID, feature) {
		if state == nil {
			state = []byte{}
		}
		w.exec(`INSERT INTO policy_state (platform, mode, customer, feature, state) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (platform, mode, customer, feature) DO UPDATE SET state = EXCLUDED.state`,
			t.PlatformID, mode(t.Mode), customerID, feature, state)
	}
}

// PutIdempotency writes the record of an idempotency key. A record younger
// than engine.IdempotencyTTL (at the new record's creation) is never
// replaced: the write then fails the whole batch with
// engine.ErrIdempotencyRace, which happens only when two nodes ran the
// same key at once.
func (w *writer) PutIdempotency(t engine.Tenant, key string, r *engine.IdemRecord) {
	if !w.ok(t.PlatformID) || !w.ok(key) {
		return
	}
	rid := r.RequestID
	if len(rid) > 255 {
		rid = rid[:255]
	}
	body := r.Body
	if body == nil {
		body = []byte{}
	}
	created := ms(r.CreatedAt)
	w.stmts = append(w.stmts, statement{
		sql: `INSERT INTO idempotency (platform, mode, key, request_hash, request_id, sealed, status, body, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (platform, mode, key) DO UPDATE SET request_hash = EXCLUDED.request_hash,
			request_id = EXCLUDED.request_id, sealed = EXCLUDED.sealed, status = EXCLUDED.status,
			body = EXCLUDED.body, created_at = EXCLUDED.created_at
			WHERE idempotency.created_at <= $10`,
		args: []any{t.PlatformID, mode(t.Mode), key, r.RequestHash[:], rid, r.Sealed, r.Status, body, created,
			created - engine.IdempotencyTTL.Milliseconds()},
		check: func(n int64) error {
			if n == 0 {
				return fmt.Errorf("postgres: idempotency key %q: %w", key, engine.ErrIdempotencyRace)
			}
			return nil
		},
	})
}

// PutOutbox writes (or rewrites) an outbox entry; a rewrite ends its lease.
func (w *writer) PutOutbox(e *engine.OutboxEntry) {
	if b, ok := w.jsonOf(e); ok && w.ok(e.ID) {
		w.exec(`INSERT INTO outbox (id, record) VALUES ($1, $2)
			ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record, lease_until = 0`, e.ID, b)
	}
}

// DeleteOutbox removes an entry; deleting one that is gone does nothing.
func (w *writer) DeleteOutbox(id string) {
	if w.ok(id) {
		w.exec(`DELETE FROM outbox WHERE id = $1`, id)
	}
}

// PutAllowedOrigins replaces a platform's CORS origins and their index
// rows; prev is not needed (the platform's rows are replaced).
func (w *writer) PutAllowedOrigins(platformID string, origins, prev []string) {
	if origins == nil {
		origins = []string{}
	}
	b, ok := w.jsonOf(origins)
	if !ok || !w.ok(platformID) || !w.ok(origins...) {
		return
	}
	w.exec(`INSERT INTO cors (platform, origins) VALUES ($1, $2)
		ON CONFLICT (platform) DO UPDATE SET origins = EXCLUDED.origins`, platformID, b)
	w.exec(`DELETE FROM cors_origins WHERE platform = $1`, platformID)
	for _, o := range origins {
		w.exec(`INSERT INTO cors_origins (origin, platform) VALUES ($1, $2) ON CONFLICT DO NOTHING`, o, platformID)
	}
}

// PutPluginVersion stores a version's record and its module.
func (w *writer) PutPluginVersion(t engine.Tenant, v *engine.PluginVersion, wasm []byte) {
	if b, ok := w.jsonOf(v); ok && w.ok(t.PlatformID, v.Version) {
		if wasm == nil {
			wasm = []byte{}
		}
		w.exec(`INSERT INTO plugin_versions (platform, mode, version, record, module) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (platform, mode, version) DO UPDATE SET record = EXCLUDED.record, module = EXCLUDED.module`,
			t.PlatformID, mode(t.Mode), v.Version, b, wasm)
	}
}

// DeletePluginVersion removes a version's record and its module.
func (w *writer) DeletePluginVersion(t engine.Tenant, version string) {
	if w.ok(t.PlatformID, version) {
		w.exec(`DELETE FROM plugin_versions WHERE platform = $1 AND mode = $2 AND version = $3`,
			t.PlatformID, mode(t.Mode), version)
	}
}

// PutPluginSettings stores which version is active and the onError
// setting.
func (w *writer) PutPluginSettings(t engine.Tenant, ps *engine.PluginSettings) {
	if b, ok := w.jsonOf(ps); ok && w.ok(t.PlatformID) {
		w.exec(`INSERT INTO plugin_settings (platform, mode, settings) VALUES ($1, $2, $3)
			ON CONFLICT (platform, mode) DO UPDATE SET settings = EXCLUDED.settings`, t.PlatformID, mode(t.Mode), b)
		w.changes = append(w.changes, engine.Change{PlatformID: t.PlatformID, Mode: t.Mode, PluginSettings: ps})
	}
}

// PutStripeConnection writes a platform's connection in t's mode.
func (w *writer) PutStripeConnection(t engine.Tenant, c *engine.StripeConnection) {
	if b, ok := w.jsonOf(c); ok && w.ok(t.PlatformID) {
		w.exec(`INSERT INTO stripe_connections (platform, mode, record) VALUES ($1, $2, $3)
			ON CONFLICT (platform, mode) DO UPDATE SET record = EXCLUDED.record`, t.PlatformID, mode(t.Mode), b)
	}
}

// DeleteStripeConnection removes a platform's connection in t's mode.
func (w *writer) DeleteStripeConnection(t engine.Tenant) {
	if w.ok(t.PlatformID) {
		w.exec(`DELETE FROM stripe_connections WHERE platform = $1 AND mode = $2`, t.PlatformID, mode(t.Mode))
	}
}

// PutStripeAccount points a Connect account at its platform.
func (w *writer) PutStripeAccount(accountID, platformID string) {
	if w.ok(accountID, platformID) {
		w.exec(`INSERT INTO stripe_accounts (account, platform) VALUES ($1, $2)
			ON CONFLICT (account) DO UPDATE SET platform = EXCLUDED.platform`, accountID, platformID)
	}
}

// DeleteStripeAccount removes a Connect account's index row.
func (w *writer) DeleteStripeAccount(accountID string) {
	if w.ok(accountID) {
		w.exec(`DELETE FROM stripe_accounts WHERE account = $1`, accountID)
	}
}

// PutStripeCatalog writes a platform's Stripe catalog in t's mode.
func (w *writer) PutStripeCatalog(t engine.Tenant, c *engine.StripeCatalog) {
	if b, ok := w.jsonOf(c); ok && w.ok(t.PlatformID) {
		w.exec(`INSERT INTO stripe_catalogs (platform, mode, record) VALUES ($1, $2, $3)
			ON CONFLICT (platform, mode) DO UPDATE SET record = EXCLUDED.record`, t.PlatformID, mode(t.Mode), b)
	}
}

// PutStripeCustomer indexes a Stripe customer id to a customer id.
func (w *writer) PutStripeCustomer(t engine.Tenant, stripeCustomerID, customerID string) {
	if w.ok(t.PlatformID, stripeCustomerID, customerID) {
		w.exec(`INSERT INTO stripe_customers (platform, mode, stripe_id, customer) VALUES ($1, $2, $3, $4)
			ON CONFLICT (platform, mode, stripe_id) DO UPDATE SET customer = EXCLUDED.customer`,
			t.PlatformID, mode(t.Mode), stripeCustomerID, customerID)
	}
}

// PutStripeSubscription writes the ordering record of a subscription.
func (w *writer) PutStripeSubscription(t engine.Tenant, sub *engine.StripeSubscription) {
	if b, ok := w.jsonOf(sub); ok && w.ok(t.PlatformID, sub.ID) {
		w.exec(`INSERT INTO stripe_subscriptions (platform, mode, id, record) VALUES ($1, $2, $3, $4)
			ON CONFLICT (platform, mode, id) DO UPDATE SET record = EXCLUDED.record`, t.PlatformID, mode(t.Mode), sub.ID, b)
	}
}

// PutStripeEvent records an event id as applied at appliedAt.
func (w *writer) PutStripeEvent(t engine.Tenant, eventID string, appliedAt time.Time) {
	if w.ok(t.PlatformID, eventID) {
		w.exec(`INSERT INTO stripe_events (platform, mode, event_id, applied_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (platform, mode, event_id) DO UPDATE SET applied_at = EXCLUDED.applied_at`,
			t.PlatformID, mode(t.Mode), eventID, ms(appliedAt))
	}
}

// PutStripeEventLog writes slot of t's log of recent Stripe events.
func (w *writer) PutStripeEventLog(t engine.Tenant, slot int, r *engine.StripeEventRecord) {
	if slot < 0 || slot >= engine.StripeEventLogSize {
		w.fail(fmt.Errorf("postgres: stripe event log slot %d out of range", slot))
		return
	}
	if b, ok := w.jsonOf(r); ok && w.ok(t.PlatformID) {
		w.exec(`INSERT INTO stripe_event_log (platform, mode, slot, record) VALUES ($1, $2, $3, $4)
			ON CONFLICT (platform, mode, slot) DO UPDATE SET record = EXCLUDED.record`, t.PlatformID, mode(t.Mode), slot, b)
	}
}

// PutPlatformBilling writes a platform's subscription on the operator's
// account.
func (w *writer) PutPlatformBilling(pb *engine.PlatformBilling) {
	if b, ok := w.jsonOf(pb); ok && w.ok(pb.PlatformID) {
		w.exec(`INSERT INTO platform_billing (platform, record) VALUES ($1, $2)
			ON CONFLICT (platform) DO UPDATE SET record = EXCLUDED.record`, pb.PlatformID, b)
		w.changes = append(w.changes, engine.Change{PlatformID: pb.PlatformID, Billing: pb})
	}
}

// flush sends the queued writes on tx in one round trip, then, when they
// change cached state, appends those changes to the change log. It
// returns the change-log sequence number of each change.
//
// The numbers come from the one row of change_seq, moved on by UPDATE …
// RETURNING in this transaction, after the writes so that its row lock is
// held only from here to COMMIT. A unit that logs changes waits there
// for the one before it to commit, so numbers are given, and become
// visible, in commit order: a poller that has read number n has seen
// every change below n that will ever commit (store.go, pollOnce). No
// dense serial is needed (CockroachDB's are not).
func (w *writer) flush(ctx context.Context, tx pgx.Tx) ([]int64, error) {
	return w.flushAfter(ctx, tx, "")
}

// flushAfter is flush that first runs first (a SAVEPOINT) in the same
// round trip, when it is not empty.
func (w *writer) flushAfter(ctx context.Context, tx pgx.Tx, first string) ([]int64, error) {
	if w.err != nil {
		return nil, w.err
	}
	if len(w.stmts) == 0 {
		return nil, nil
	}
	var pb pgx.Batch
	if first != "" {
		pb.Queue(first)
	}
	for _, st := range w.stmts {
		pb.Queue(st.sql, st.args...)
	}
	n := len(w.changes)
	if n > 0 {
		pb.Queue(`UPDATE change_seq SET seq = seq + $1::bigint WHERE id = 1 RETURNING seq`, n)
		for i, ch := range w.changes {
			kind, payload, err := encodeChange(ch)
			if err != nil {
				return nil, err
			}
			// The i-th of the n numbers taken: last - (n-1-i).
			// Typed parameters: in INSERT … SELECT, CockroachDB does not
			// infer them from the target columns as PostgreSQL does.
			pb.Queue(`INSERT INTO changes (seq, kind, platform, mode, payload)
				SELECT seq - $1::bigint, $2::text, $3::text, $4::smallint, $5::jsonb FROM change_seq WHERE id = 1 RETURNING seq`,
				n-1-i, kind, ch.PlatformID, mode(ch.Mode), payload)
		}
	}
	br := tx.SendBatch(ctx, &pb)
	var failed error
	if first != "" {
		if _, err := br.Exec(); err != nil {
			failed = err
		}
	}
	for _, st := range w.stmts {
		tag, err := br.Exec()
		if err == nil && st.check != nil {
			err = st.check(tag.RowsAffected())
		}
		if err != nil && failed == nil {
			failed = err
		}
	}
	var seqs []int64
	if n > 0 && failed == nil {
		var last int64
		if err := br.QueryRow().Scan(&last); err != nil {
			failed = err
		}
		for range n {
			var seq int64
			if err := br.QueryRow().Scan(&seq); err != nil && failed == nil {
				failed = err
			}
			seqs = append(seqs, seq)
		}
	}
	if err := br.Close(); err != nil && failed == nil {
		failed = err
	}
	if failed != nil {
		if !errors.Is(failed, engine.ErrIdempotencyRace) {
			failed = fmt.Errorf("postgres: write: %w", failed)
		}
		return nil, failed
	}
	return seqs, nil
}
