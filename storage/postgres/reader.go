package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dream-api/dream-api/engine"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// querier is what reads run on: the pool (Store) or a transaction (a unit
// of work's tx).
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// reader implements engine.Reader on a querier.
type reader struct{ q querier }

// mode is how a Mode is stored.
func mode(m engine.Mode) int16 { return int16(m) }

// ms is how a time is stored where SQL compares or keys it.
func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

// one scans the single row of a query into dest; found is false when there
// is none.
func (r reader) one(ctx context.Context, sql string, args []any, dest ...any) (found bool, err error) {
	err = r.q.QueryRow(ctx, sql, args...).Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("postgres: %w", err)
	}
	return true, nil
}

// oneJSON decodes the single jsonb column of a query into v, or returns
// notFound.
func (r reader) oneJSON(ctx context.Context, what string, v any, notFound *engine.Error, sql string, args ...any) error {
	var raw []byte
	found, err := r.one(ctx, sql, args, &raw)
	if err != nil {
		return err
	} else if !found {
		return notFound
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("postgres: %s: %w", what, err)
	}
	return nil
}

// each calls fn with every row of a query.
func (r reader) each(ctx context.Context, sql string, args []any, fn func(pgx.Rows) error) error {
	rows, err := r.q.Query(ctx, sql, args...)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return nil
}

// pageLimit is the number of items a page holds.
func pageLimit(p engine.Page) int {
	if p.Limit <= 0 {
		return defaultPageLimit
	}
	return min(p.Limit, maxPageLimit)
}

// page lists up to a page of jsonb records by id after p.StartingAfter:
// sql selects record and takes $1 (the id to start after), $2 (the limit),
// then args.
func page[T any](ctx context.Context, r reader, what string, p engine.Page, sql string, args ...any) ([]*T, bool, error) {
	limit := pageLimit(p)
	var out []*T
	err := r.each(ctx, sql, append([]any{p.StartingAfter, limit + 1}, args...), func(rows pgx.Rows) error {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return err
		}
		v := new(T)
		if err := json.Unmarshal(raw, v); err != nil {
			return fmt.Errorf("postgres: %s: %w", what, err)
		}
		out = append(out, v)
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	if len(out) > limit {
		return out[:limit], true, nil
	}
	return out, false, nil
}

// AdminTokenHash returns the stored hash of the admin token, or ENOTFOUND.
func (r reader) AdminTokenHash(ctx context.Context) ([32]byte, error) {
	var h [32]byte
	var v []byte
	found, err := r.one(ctx, `SELECT value FROM meta WHERE name = 'admin'`, nil, &v)
	if err != nil {
		return h, err
	} else if !found {
		return h, engine.Errorf(engine.ENOTFOUND, "No admin token is set.")
	} else if len(v) != len(h) {
		return h, fmt.Errorf("postgres: admin token hash is %d bytes", len(v))
	}
	copy(h[:], v)
	return h, nil
}

// Platform returns the platform id, or ENOTFOUND.
func (r reader) Platform(ctx context.Context, id string) (*engine.Platform, error) {
	p := new(engine.Platform)
	err := r.oneJSON(ctx, "platform", p, engine.Errorf(engine.ENOTFOUND, "No such platform: %s", id),
		`SELECT record FROM platforms WHERE id = $1`, id)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Platforms lists platforms by id. It reports whether more follow the page.
func (r reader) Platforms(ctx context.Context, p engine.Page) ([]*engine.Platform, bool, error) {
	return page[engine.Platform](ctx, r, "platform", p,
		`SELECT record FROM platforms WHERE id > $1 ORDER BY id LIMIT $2`)
}

// keys lists the key records a query selects (record, secret_hash),
// oldest first.
func (r reader) keys(ctx context.Context, sql string, args ...any) ([]*engine.Key, error) {
	var keys []*engine.Key
	err := r.each(ctx, sql, args, func(rows pgx.Rows) error {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return err
		}
		k, err := decodeKey(raw)
		keys = append(keys, k)
		return err
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(keys, func(a, b *engine.Key) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return keys, nil
}

// KeyBySecretHash returns the key record whose secret hashes to h, or
// ENOTFOUND.
func (r reader) KeyBySecretHash(ctx context.Context, h [32]byte) (*engine.Key, error) {
	keys, err := r.keys(ctx, `SELECT record FROM api_keys WHERE secret_hash = $1 ORDER BY platform, id LIMIT 1`, h[:])
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 || keys[0].SecretHash != h {
		return nil, engine.Errorf(engine.ENOTFOUND, "No such key.")
	}
	return keys[0], nil
}

// KeysByPublishable returns the key records that carry pk, oldest first,
// or ENOTFOUND when there is none.
func (r reader) KeysByPublishable(ctx context.Context, pk string) ([]*engine.Key, error) {
	if pk == "" {
		return nil, engine.Errorf(engine.ENOTFOUND, "No such publishable key: %s", pk)
	}
	keys, err := r.keys(ctx, `SELECT record FROM api_keys WHERE publishable = $1 ORDER BY platform, id`, pk)
	if err == nil && len(keys) == 0 {
		err = engine.Errorf(engine.ENOTFOUND, "No such publishable key: %s", pk)
	}
	return keys, err
}

// Key returns a platform's key record, or ENOTFOUND.
func (r reader) Key(ctx context.Context, platformID, id string) (*engine.Key, error) {
	keys, err := r.keys(ctx, `SELECT record FROM api_keys WHERE platform = $1 AND id = $2`, platformID, id)
	if err == nil && len(keys) == 0 {
		err = engine.Errorf(engine.ENOTFOUND, "No such key: %s", id)
	}
	if err != nil {
		return nil, err
	}
	return keys[0], nil
}

// Keys lists a platform's key records, oldest first.
func (r reader) Keys(ctx context.Context, platformID string) ([]*engine.Key, error) {
	return r.keys(ctx, `SELECT record FROM api_keys WHERE platform = $1 ORDER BY id`, platformID)
}

// Tiers returns a tenant's tier config, or ENOTFOUND.
func (r reader) Tiers(ctx context.Context, t engine.Tenant) (*engine.TierConfig, error) {
	c := new(engine.TierConfig)
	err := r.oneJSON(ctx, "tiers", c, engine.Errorf(engine.ENOTFOUND, "No tiers for platform %s in %s mode", t.PlatformID, t.Mode),
		`SELECT config FROM tiers WHERE platform = $1 AND mode = $2`, t.PlatformID, mode(t.Mode))
	if err != nil {
		return nil, err
	}
	return c, nil
}

// customerRecord is a customer as stored: engine.Customer does not marshal
// its subscription period.
type customerRecord struct {
	engine.Customer
	SubscriptionStart time.Time `json:"periodStart,omitzero"`
	SubscriptionEnd   time.Time `json:"periodEnd,omitzero"`
}

func (c *customerRecord) customer() *engine.Customer {
	c.Customer.PeriodStart, c.Customer.PeriodEnd = c.SubscriptionStart, c.SubscriptionEnd
	return &c.Customer
}

// Customer returns a customer, or ENOTFOUND.
func (r reader) Customer(ctx context.Context, t engine.Tenant, id string) (*engine.Customer, error) {
	var c customerRecord
	err := r.oneJSON(ctx, "customer", &c, engine.Errorf(engine.ENOTFOUND, "No such customer: %s", id),
		`SELECT record FROM customers WHERE platform = $1 AND mode = $2 AND id = $3`, t.PlatformID, mode(t.Mode), id)
	if err != nil {
		return nil, err
	}
	return c.customer(), nil
}

// CustomerShared is Customer: every call decodes its own copy.
func (r reader) CustomerShared(ctx context.Context, t engine.Tenant, id string) (*engine.Customer, error) {
	return r.Customer(ctx, t, id)
}

// CustomerIDByEmail returns the id of the tenant's customer with email, in
// any case, or ENOTFOUND.
func (r reader) CustomerIDByEmail(ctx context.Context, t engine.Tenant, email string) (string, error) {
	var id string
	email = strings.ToLower(email)
	found, err := r.one(ctx, `SELECT id FROM customers WHERE platform = $1 AND mode = $2 AND email = $3 ORDER BY id LIMIT 1`,
		[]any{t.PlatformID, mode(t.Mode), email}, &id)
	if err == nil && (!found || email == "") {
		err = engine.Errorf(engine.ENOTFOUND, "No customer with email %s", email)
	}
	return id, err
}

// Customers lists a tenant's customers by id. It reports whether more
// follow the page.
func (r reader) Customers(ctx context.Context, t engine.Tenant, p engine.Page) ([]*engine.Customer, bool, error) {
	recs, more, err := page[customerRecord](ctx, r, "customer", p,
		`SELECT record FROM customers WHERE id > $1 AND platform = $3 AND mode = $4 ORDER BY id LIMIT $2`, t.PlatformID, mode(t.Mode))
	if err != nil {
		return nil, false, err
	}
	out := make([]*engine.Customer, len(recs))
	for i, c := range recs {
		out[i] = c.customer()
	}
	return out, more, nil
}

// PlatformQuotas returns a platform's own quotas, or ENOTFOUND.
func (r reader) PlatformQuotas(ctx context.Context, platformID string) (*engine.PlatformQuotas, error) {
	q := new(engine.PlatformQuotas)
	err := r.oneJSON(ctx, "platform quotas", q, engine.Errorf(engine.ENOTFOUND, "No quotas for platform %s", platformID),
		`SELECT record FROM platform_quotas WHERE platform = $1`, platformID)
	if err != nil {
		return nil, err
	}
	return q, nil
}

// Aggregates returns a tenant's customer aggregates, or ENOTFOUND.
func (r reader) Aggregates(ctx context.Context, t engine.Tenant) (*engine.Aggregates, error) {
	a := new(engine.Aggregates)
	err := r.oneJSON(ctx, "aggregates", a, engine.Errorf(engine.ENOTFOUND, "No aggregates for platform %s in %s mode", t.PlatformID, t.Mode),
		`SELECT record FROM aggregates WHERE platform = $1 AND mode = $2`, t.PlatformID, mode(t.Mode))
	if err != nil {
		return nil, err
	}
	return a, nil
}

// Counter returns a usage counter; the zero Counter when there is none.
func (r reader) Counter(ctx context.Context, k engine.CounterKey) (engine.Counter, error) {
	var count, end int64
	found, err := r.one(ctx, `SELECT count, period_end FROM counters
		WHERE platform = $1 AND mode = $2 AND customer = $3 AND feature = $4 AND period_start = $5`,
		[]any{k.PlatformID, mode(k.Mode), k.CustomerID, k.Feature, ms(k.PeriodStart)}, &count, &end)
	if err != nil || !found {
		return engine.Counter{}, err
	}
	return engine.Counter{Count: count, PeriodEnd: fromMS(end)}, nil
}

// Periods lists every counter of a customer, by feature then period start.
func (r reader) Periods(ctx context.Context, t engine.Tenant, customerID string) ([]engine.Period, error) {
	var out []engine.Period
	err := r.each(ctx, `SELECT feature, period_start, count, period_end FROM counters
		WHERE platform = $1 AND mode = $2 AND customer = $3 ORDER BY feature, period_start`,
		[]any{t.PlatformID, mode(t.Mode), customerID}, func(rows pgx.Rows) error {
			var p engine.Period
			var start, end int64
			if err := rows.Scan(&p.Feature, &start, &p.Count, &end); err != nil {
				return err
			}
			p.PeriodStart, p.PeriodEnd = fromMS(start), fromMS(end)
			out = append(out, p)
			return nil
		})
	return out, err
}

// HasPolicyState reports whether any customer of the platform, in either
// mode, has plugin state stored.
func (r reader) HasPolicyState(ctx context.Context, platformID string) (bool, error) {
	var one int
	return r.one(ctx, `SELECT 1 FROM policy_state WHERE platform = $1 LIMIT 1`, []any{platformID}, &one)
}

// PolicyState returns a customer's plugin state for feature; nil when there
// is none or it is empty.
func (r reader) PolicyState(ctx context.Context, t engine.Tenant, customerID, feature string) ([]byte, error) {
	var state []byte
	_, err := r.one(ctx, `SELECT state FROM policy_state WHERE platform = $1 AND mode = $2 AND customer = $3 AND feature = $4`,
		[]any{t.PlatformID, mode(t.Mode), customerID, feature}, &state)
	if len(state) == 0 {
		state = nil
	}
	return state, err
}

// Idempotency returns the record stored under key, or ENOTFOUND.
func (r reader) Idempotency(ctx context.Context, t engine.Tenant, key string) (*engine.IdemRecord, error) {
	rec := new(engine.IdemRecord)
	var hash []byte
	var created int64
	found, err := r.one(ctx, `SELECT request_hash, request_id, sealed, status, body, created_at FROM idempotency
		WHERE platform = $1 AND mode = $2 AND key = $3`, []any{t.PlatformID, mode(t.Mode), key},
		&hash, &rec.RequestID, &rec.Sealed, &rec.Status, &rec.Body, &created)
	if err != nil {
		return nil, err
	} else if !found {
		return nil, engine.Errorf(engine.ENOTFOUND, "No idempotency record for key %q", key)
	} else if len(hash) != len(rec.RequestHash) {
		return nil, fmt.Errorf("postgres: idempotency record %q has a %d-byte request hash", key, len(hash))
	}
	copy(rec.RequestHash[:], hash)
	rec.CreatedAt = fromMS(created)
	if len(rec.Body) == 0 {
		rec.Body = nil
	}
	return rec, nil
}

// ExpireIdempotency deletes the idempotency records created before before,
// at most 1000 a statement, and returns how many it deleted.
func (r reader) ExpireIdempotency(ctx context.Context, before time.Time) (int, error) {
	n := 0
	for {
		tag, err := r.q.Exec(ctx, `DELETE FROM idempotency WHERE (platform, mode, key) IN
			(SELECT platform, mode, key FROM idempotency WHERE created_at < $1 LIMIT 1000)`, ms(before))
		if err != nil {
			return n, fmt.Errorf("postgres: expire idempotency records: %w", err)
		}
		n += int(tag.RowsAffected())
		if tag.RowsAffected() < 1000 {
			return n, nil
		}
	}
}

// Outbox lists a page of outbox entries in id (creation) order, and
// reports whether more follow.
func (r reader) Outbox(ctx context.Context, p engine.Page) ([]*engine.OutboxEntry, bool, error) {
	return page[engine.OutboxEntry](ctx, r, "outbox entry", p,
		`SELECT record FROM outbox WHERE id > $1 ORDER BY id LIMIT $2`)
}

// AllowedOrigins returns a platform's CORS origins; nil when none were set.
func (r reader) AllowedOrigins(ctx context.Context, platformID string) ([]string, error) {
	var raw []byte
	found, err := r.one(ctx, `SELECT origins FROM cors WHERE platform = $1`, []any{platformID}, &raw)
	if err != nil || !found {
		return nil, err
	}
	var origins []string
	if err := json.Unmarshal(raw, &origins); err != nil {
		return nil, fmt.Errorf("postgres: cors origins: %w", err)
	}
	return origins, nil
}

// OriginAllowedAnywhere reports whether some platform allows origin, or
// allows every origin ("*").
func (r reader) OriginAllowedAnywhere(ctx context.Context, origin string) (bool, error) {
	var one int
	return r.one(ctx, `SELECT 1 FROM cors_origins WHERE origin = $1 OR origin = $2 LIMIT 1`,
		[]any{origin, engine.AnyOrigin}, &one)
}

// PluginSettings returns a tenant's plugin settings, or ENOTFOUND.
func (r reader) PluginSettings(ctx context.Context, t engine.Tenant) (*engine.PluginSettings, error) {
	ps := new(engine.PluginSettings)
	err := r.oneJSON(ctx, "plugin settings", ps, engine.Errorf(engine.ENOTFOUND, "No plugin settings for platform %s in %s mode", t.PlatformID, t.Mode),
		`SELECT settings FROM plugin_settings WHERE platform = $1 AND mode = $2`, t.PlatformID, mode(t.Mode))
	if err != nil {
		return nil, err
	}
	return ps, nil
}

// PluginVersions lists a tenant's uploaded versions, oldest first (version
// ids sort by upload time).
func (r reader) PluginVersions(ctx context.Context, t engine.Tenant) ([]*engine.PluginVersion, error) {
	var out []*engine.PluginVersion
	err := r.each(ctx, `SELECT record FROM plugin_versions WHERE platform = $1 AND mode = $2 ORDER BY version`,
		[]any{t.PlatformID, mode(t.Mode)}, func(rows pgx.Rows) error {
			var raw []byte
			if err := rows.Scan(&raw); err != nil {
				return err
			}
			v := new(engine.PluginVersion)
			if err := json.Unmarshal(raw, v); err != nil {
				return fmt.Errorf("postgres: plugin version: %w", err)
			}
			out = append(out, v)
			return nil
		})
	return out, err
}

// PluginModule returns the wasm bytes of a version, or ENOTFOUND.
func (r reader) PluginModule(ctx context.Context, t engine.Tenant, version string) ([]byte, error) {
	var wasm []byte
	found, err := r.one(ctx, `SELECT module FROM plugin_versions WHERE platform = $1 AND mode = $2 AND version = $3`,
		[]any{t.PlatformID, mode(t.Mode), version}, &wasm)
	if err == nil && !found {
		err = engine.Errorf(engine.ENOTFOUND, "No plugin version %s", version)
	}
	return wasm, err
}

// StripeConnection returns a platform's Stripe connection in t's mode, or
// ENOTFOUND.
func (r reader) StripeConnection(ctx context.Context, t engine.Tenant) (*engine.StripeConnection, error) {
	c := new(engine.StripeConnection)
	err := r.oneJSON(ctx, "stripe connection", c, engine.Errorf(engine.ENOTFOUND, "No Stripe connection for %s (%s)", t.PlatformID, t.Mode),
		`SELECT record FROM stripe_connections WHERE platform = $1 AND mode = $2`, t.PlatformID, mode(t.Mode))
	if err != nil {
		return nil, err
	}
	return c, nil
}

// StripeAccountPlatform returns the platform a Connect account belongs to,
// or ENOTFOUND.
func (r reader) StripeAccountPlatform(ctx context.Context, accountID string) (string, error) {
	var id string
	found, err := r.one(ctx, `SELECT platform FROM stripe_accounts WHERE account = $1`, []any{accountID}, &id)
	if err == nil && !found {
		err = engine.Errorf(engine.ENOTFOUND, "No platform for Stripe account %s", accountID)
	}
	return id, err
}

// StripeCatalog returns a platform's Stripe products and prices in t's
// mode, or ENOTFOUND.
func (r reader) StripeCatalog(ctx context.Context, t engine.Tenant) (*engine.StripeCatalog, error) {
	c := new(engine.StripeCatalog)
	err := r.oneJSON(ctx, "stripe catalog", c, engine.Errorf(engine.ENOTFOUND, "No Stripe catalog for %s (%s)", t.PlatformID, t.Mode),
		`SELECT record FROM stripe_catalogs WHERE platform = $1 AND mode = $2`, t.PlatformID, mode(t.Mode))
	if err != nil {
		return nil, err
	}
	return c, nil
}

// CustomerIDByStripeID returns the id of the tenant's customer with a
// Stripe customer id, or ENOTFOUND.
func (r reader) CustomerIDByStripeID(ctx context.Context, t engine.Tenant, stripeCustomerID string) (string, error) {
	var id string
	found, err := r.one(ctx, `SELECT customer FROM stripe_customers WHERE platform = $1 AND mode = $2 AND stripe_id = $3`,
		[]any{t.PlatformID, mode(t.Mode), stripeCustomerID}, &id)
	if err == nil && !found {
		err = engine.Errorf(engine.ENOTFOUND, "No customer for Stripe customer %s", stripeCustomerID)
	}
	return id, err
}

// StripeSubscription returns the ordering record of a subscription, or
// ENOTFOUND.
func (r reader) StripeSubscription(ctx context.Context, t engine.Tenant, id string) (*engine.StripeSubscription, error) {
	sub := new(engine.StripeSubscription)
	err := r.oneJSON(ctx, "stripe subscription", sub, engine.Errorf(engine.ENOTFOUND, "No Stripe subscription %s", id),
		`SELECT record FROM stripe_subscriptions WHERE platform = $1 AND mode = $2 AND id = $3`, t.PlatformID, mode(t.Mode), id)
	if err != nil {
		return nil, err
	}
	return sub, nil
}

// StripeEventApplied reports whether an event id was recorded in t.
func (r reader) StripeEventApplied(ctx context.Context, t engine.Tenant, eventID string) (bool, error) {
	var one int
	return r.one(ctx, `SELECT 1 FROM stripe_events WHERE platform = $1 AND mode = $2 AND event_id = $3`,
		[]any{t.PlatformID, mode(t.Mode), eventID}, &one)
}

// StripeEventLog returns the records of t's log of recent Stripe events,
// by slot; none when empty.
func (r reader) StripeEventLog(ctx context.Context, t engine.Tenant) ([]*engine.StripeEventRecord, error) {
	var out []*engine.StripeEventRecord
	err := r.each(ctx, `SELECT record FROM stripe_event_log WHERE platform = $1 AND mode = $2 ORDER BY slot`,
		[]any{t.PlatformID, mode(t.Mode)}, func(rows pgx.Rows) error {
			var raw []byte
			if err := rows.Scan(&raw); err != nil {
				return err
			}
			rec := new(engine.StripeEventRecord)
			if err := json.Unmarshal(raw, rec); err != nil {
				return fmt.Errorf("postgres: stripe event log record: %w", err)
			}
			out = append(out, rec)
			return nil
		})
	return out, err
}

// PlatformBilling returns a platform's subscription on the operator's
// account, or ENOTFOUND.
func (r reader) PlatformBilling(ctx context.Context, platformID string) (*engine.PlatformBilling, error) {
	pb := new(engine.PlatformBilling)
	err := r.oneJSON(ctx, "platform billing", pb, engine.Errorf(engine.ENOTFOUND, "No billing for platform %s", platformID),
		`SELECT record FROM platform_billing WHERE platform = $1`, platformID)
	if err != nil {
		return nil, err
	}
	return pb, nil
}

var _ engine.Reader = reader{}
