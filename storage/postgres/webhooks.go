package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/dream-api/dream-api/engine"
	"github.com/jackc/pgx/v5"
)

// Webhook endpoints, events and deliveries; developer accounts and
// dashboard sessions; daily usage rollups. Records are stored as the
// Pebble store stores them (storage/webhooks.go, storage/developers.go).

// endpointRecord is an endpoint as stored: engine.WebhookEndpoint does not
// marshal its sealed secrets.
type endpointRecord struct {
	engine.WebhookEndpoint
	Secret          []byte    `json:"secret"`
	PrevSecret      []byte    `json:"prevSecret,omitempty"`
	PrevSecretUntil time.Time `json:"prevSecretUntil,omitzero"`
}

func decodeEndpoint(raw []byte) (*engine.WebhookEndpoint, error) {
	var r endpointRecord
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("postgres: webhook endpoint: %w", err)
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

// WebhookEndpoints lists a tenant's endpoints by id (at most 100).
func (r reader) WebhookEndpoints(ctx context.Context, t engine.Tenant) ([]*engine.WebhookEndpoint, error) {
	var out []*engine.WebhookEndpoint
	err := r.each(ctx, `SELECT record FROM webhook_endpoints WHERE platform = $1 AND mode = $2 ORDER BY id LIMIT $3`,
		[]any{t.PlatformID, mode(t.Mode), maxPageLimit}, func(rows pgx.Rows) error {
			var raw []byte
			if err := rows.Scan(&raw); err != nil {
				return err
			}
			e, err := decodeEndpoint(raw)
			out = append(out, e)
			return err
		})
	return out, err
}

// WebhookEndpoint returns an endpoint, or ENOTFOUND.
func (r reader) WebhookEndpoint(ctx context.Context, t engine.Tenant, id string) (*engine.WebhookEndpoint, error) {
	var raw []byte
	found, err := r.one(ctx, `SELECT record FROM webhook_endpoints WHERE platform = $1 AND mode = $2 AND id = $3`,
		[]any{t.PlatformID, mode(t.Mode), id}, &raw)
	if err != nil {
		return nil, err
	} else if !found {
		return nil, engine.Errorf(engine.ENOTFOUND, "No webhook endpoint %s", id)
	}
	return decodeEndpoint(raw)
}

// WebhookEvent returns an event, or ENOTFOUND.
func (r reader) WebhookEvent(ctx context.Context, t engine.Tenant, id string) (*engine.WebhookEvent, error) {
	var rec eventRecord
	err := r.oneJSON(ctx, "webhook event", &rec, engine.Errorf(engine.ENOTFOUND, "No webhook event %s", id),
		`SELECT record FROM webhook_events WHERE platform = $1 AND mode = $2 AND id = $3`, t.PlatformID, mode(t.Mode), id)
	if err != nil {
		return nil, err
	}
	return &engine.WebhookEvent{ID: rec.ID, Type: rec.Type, CreatedAt: rec.CreatedAt, Body: []byte(rec.Body)}, nil
}

// WebhookDelivery returns the delivery of an event to an endpoint, or
// ENOTFOUND.
func (r reader) WebhookDelivery(ctx context.Context, t engine.Tenant, endpointID, eventID string) (*engine.WebhookDelivery, error) {
	d := new(engine.WebhookDelivery)
	err := r.oneJSON(ctx, "webhook delivery", d, engine.Errorf(engine.ENOTFOUND, "No delivery of %s to %s", eventID, endpointID),
		`SELECT record FROM webhook_deliveries WHERE platform = $1 AND mode = $2 AND endpoint = $3 AND event = $4`,
		t.PlatformID, mode(t.Mode), endpointID, eventID)
	if err != nil {
		return nil, err
	}
	return d, nil
}

func (r reader) deliveries(ctx context.Context, sql string, args ...any) ([]*engine.WebhookDelivery, error) {
	var out []*engine.WebhookDelivery
	err := r.each(ctx, sql, args, func(rows pgx.Rows) error {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return err
		}
		d := new(engine.WebhookDelivery)
		if err := json.Unmarshal(raw, d); err != nil {
			return fmt.Errorf("postgres: webhook delivery: %w", err)
		}
		out = append(out, d)
		return nil
	})
	return out, err
}

// WebhookDeliveries lists an endpoint's deliveries newest first (by event
// id), before the event id p.StartingAfter when set.
func (r reader) WebhookDeliveries(ctx context.Context, t engine.Tenant, endpointID string, p engine.Page) ([]*engine.WebhookDelivery, bool, error) {
	limit := pageLimit(p)
	before := p.StartingAfter
	if before == "" {
		before = "\U0010FFFF" // after every id
	}
	out, err := r.deliveries(ctx, `SELECT record FROM webhook_deliveries
		WHERE platform = $1 AND mode = $2 AND endpoint = $3 AND event < $4 ORDER BY event DESC LIMIT $5`,
		t.PlatformID, mode(t.Mode), endpointID, before, limit+1)
	if err != nil {
		return nil, false, err
	}
	if len(out) > limit {
		return out[:limit], true, nil
	}
	return out, false, nil
}

// WebhookPending lists up to limit pending deliveries of an endpoint,
// oldest event first.
func (r reader) WebhookPending(ctx context.Context, t engine.Tenant, endpointID string, limit int) ([]*engine.WebhookDelivery, error) {
	return r.deliveries(ctx, `SELECT record FROM webhook_deliveries
		WHERE pending AND platform = $1 AND mode = $2 AND endpoint = $3 ORDER BY event LIMIT $4`,
		t.PlatformID, mode(t.Mode), endpointID, limit)
}

// WebhookPendingEndpoints lists every endpoint with a pending delivery.
func (r reader) WebhookPendingEndpoints(ctx context.Context) ([]engine.WebhookEndpointRef, error) {
	var out []engine.WebhookEndpointRef
	err := r.each(ctx, `SELECT DISTINCT platform, mode, endpoint FROM webhook_deliveries WHERE pending
		ORDER BY platform, mode, endpoint`, nil, func(rows pgx.Rows) error {
		var ref engine.WebhookEndpointRef
		var m int16
		if err := rows.Scan(&ref.PlatformID, &m, &ref.EndpointID); err != nil {
			return err
		}
		ref.Mode = engine.Mode(m)
		out = append(out, ref)
		return nil
	})
	return out, err
}

// ExpireWebhooks deletes the finished deliveries and the events created
// before before, and returns how many.
func (r reader) ExpireWebhooks(ctx context.Context, before time.Time) (int, error) {
	n := 0
	for _, sql := range []string{
		`DELETE FROM webhook_deliveries WHERE (platform, mode, endpoint, event) IN
			(SELECT platform, mode, endpoint, event FROM webhook_deliveries WHERE NOT pending AND created_at < $1 LIMIT 1000)`,
		`DELETE FROM webhook_events WHERE (platform, mode, id) IN
			(SELECT platform, mode, id FROM webhook_events WHERE created_at < $1 LIMIT 1000)`,
	} {
		for {
			tag, err := r.q.Exec(ctx, sql, ms(before))
			if err != nil {
				return n, fmt.Errorf("postgres: expire webhook records: %w", err)
			}
			n += int(tag.RowsAffected())
			if tag.RowsAffected() < 1000 {
				break
			}
		}
	}
	return n, nil
}

// developerRecord is a developer as stored, with the password hash.
type developerRecord struct {
	engine.Developer
	Password engine.PasswordHash `json:"password"`
}

// Developer returns a developer account, or ENOTFOUND.
func (r reader) Developer(ctx context.Context, id string) (*engine.Developer, error) {
	var rec developerRecord
	err := r.oneJSON(ctx, "developer", &rec, engine.Errorf(engine.ENOTFOUND, "No developer %s.", id),
		`SELECT record FROM developers WHERE id = $1`, id)
	if err != nil {
		return nil, err
	}
	rec.Developer.Password = rec.Password
	return &rec.Developer, nil
}

// DeveloperIDByEmail returns the id of the developer with email, in any
// case, or ENOTFOUND.
func (r reader) DeveloperIDByEmail(ctx context.Context, email string) (string, error) {
	var id string
	found, err := r.one(ctx, `SELECT id FROM developers WHERE email = $1 ORDER BY id LIMIT 1`, []any{strings.ToLower(email)}, &id)
	if err == nil && !found {
		err = engine.Errorf(engine.ENOTFOUND, "No developer with that email.")
	}
	return id, err
}

// Session returns the dashboard session whose token hashes to h, or
// ENOTFOUND.
func (r reader) Session(ctx context.Context, h [32]byte) (*engine.Session, error) {
	sess := new(engine.Session)
	err := r.oneJSON(ctx, "session", sess, engine.Errorf(engine.ENOTFOUND, "No session."),
		`SELECT record FROM sessions WHERE token_hash = $1`, h[:])
	if err != nil {
		return nil, err
	}
	sess.TokenHash = h
	return sess, nil
}

// Sessions calls fn with every session, by token hash, until it fails.
func (r reader) Sessions(ctx context.Context, fn func(*engine.Session) error) error {
	var all []*engine.Session
	err := r.each(ctx, `SELECT token_hash, record FROM sessions ORDER BY token_hash`, nil, func(rows pgx.Rows) error {
		var h, raw []byte
		if err := rows.Scan(&h, &raw); err != nil {
			return err
		}
		sess := new(engine.Session)
		if err := json.Unmarshal(raw, sess); err != nil {
			return fmt.Errorf("postgres: session: %w", err)
		}
		if len(h) != len(sess.TokenHash) {
			return fmt.Errorf("postgres: session hash of %d bytes", len(h))
		}
		copy(sess.TokenHash[:], h)
		all = append(all, sess)
		return nil
	})
	if err != nil {
		return err
	}
	// fn may call the store: the rows are closed first.
	for _, sess := range all {
		if err := fn(sess); err != nil {
			return err
		}
	}
	return nil
}

// UsageDay returns a daily rollup; zero when there is none.
func (r reader) UsageDay(ctx context.Context, k engine.DayKey) (engine.DayCount, error) {
	var c engine.DayCount
	_, err := r.one(ctx, `SELECT count, denied FROM usage_days
		WHERE platform = $1 AND mode = $2 AND day = $3 AND feature = $4 AND shard = $5`,
		[]any{k.PlatformID, mode(k.Mode), k.Date, k.Feature, int16(k.Shard)}, &c.Count, &c.Denied)
	return c, err
}

// UsageDays calls fn with a tenant's rollups of the days from to to
// (inclusive), by day, feature and shard.
func (r reader) UsageDays(ctx context.Context, t engine.Tenant, from, to string, fn func(engine.DayKey, engine.DayCount) error) error {
	type row struct {
		k engine.DayKey
		c engine.DayCount
	}
	var all []row
	err := r.each(ctx, `SELECT day, feature, shard, count, denied FROM usage_days
		WHERE platform = $1 AND mode = $2 AND day >= $3 AND day <= $4 ORDER BY day, feature, shard`,
		[]any{t.PlatformID, mode(t.Mode), from, to}, func(rows pgx.Rows) error {
			x := row{k: engine.DayKey{Tenant: t}}
			var shard int16
			if err := rows.Scan(&x.k.Date, &x.k.Feature, &shard, &x.c.Count, &x.c.Denied); err != nil {
				return err
			}
			x.k.Shard = uint8(shard)
			all = append(all, x)
			return nil
		})
	if err != nil {
		return err
	}
	for _, x := range all {
		if err := fn(x.k, x.c); err != nil {
			return err
		}
	}
	return nil
}

// PutWebhookEndpoint writes an endpoint with its sealed secrets.
func (w *writer) PutWebhookEndpoint(t engine.Tenant, e *engine.WebhookEndpoint) {
	rec := endpointRecord{WebhookEndpoint: *e, Secret: e.Secret, PrevSecret: e.PrevSecret, PrevSecretUntil: e.PrevSecretUntil}
	if b, ok := w.jsonOf(rec); ok && w.ok(t.PlatformID, e.ID) {
		w.exec(`INSERT INTO webhook_endpoints (platform, mode, id, record) VALUES ($1, $2, $3, $4)
			ON CONFLICT (platform, mode, id) DO UPDATE SET record = EXCLUDED.record`, t.PlatformID, mode(t.Mode), e.ID, b)
	}
}

// DeleteWebhookEndpoint removes an endpoint (its deliveries stay until
// they expire).
func (w *writer) DeleteWebhookEndpoint(t engine.Tenant, id string) {
	if w.ok(t.PlatformID, id) {
		w.exec(`DELETE FROM webhook_endpoints WHERE platform = $1 AND mode = $2 AND id = $3`, t.PlatformID, mode(t.Mode), id)
	}
}

// PutWebhookEvent writes an event.
func (w *writer) PutWebhookEvent(t engine.Tenant, ev *engine.WebhookEvent) {
	rec := eventRecord{ID: ev.ID, Type: ev.Type, CreatedAt: ev.CreatedAt, Body: ev.Body}
	if b, ok := w.jsonOf(rec); ok && w.ok(t.PlatformID, ev.ID) {
		w.exec(`INSERT INTO webhook_events (platform, mode, id, created_at, record) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (platform, mode, id) DO UPDATE SET created_at = EXCLUDED.created_at, record = EXCLUDED.record`,
			t.PlatformID, mode(t.Mode), ev.ID, ms(ev.CreatedAt), b)
	}
}

// PutWebhookDelivery writes a delivery; a pending one wakes this node's
// worker (a Watch change that is not logged for other nodes).
func (w *writer) PutWebhookDelivery(t engine.Tenant, d *engine.WebhookDelivery) {
	if b, ok := w.jsonOf(d); ok && w.ok(t.PlatformID, d.EndpointID, d.EventID) {
		pending := d.State == engine.DeliveryPending
		w.exec(`INSERT INTO webhook_deliveries (platform, mode, endpoint, event, pending, created_at, record)
			VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (platform, mode, endpoint, event) DO UPDATE SET pending = EXCLUDED.pending,
			created_at = EXCLUDED.created_at, record = EXCLUDED.record`,
			t.PlatformID, mode(t.Mode), d.EndpointID, d.EventID, pending, ms(d.CreatedAt), b)
		if pending {
			w.local = append(w.local, engine.Change{PlatformID: t.PlatformID, Mode: t.Mode, WebhookDelivery: d})
		}
	}
}

// PutDeveloper writes a developer account; its email (lowercased) is a
// column, so prevEmail is not needed.
func (w *writer) PutDeveloper(d *engine.Developer, prevEmail string) {
	if b, ok := w.jsonOf(developerRecord{Developer: *d, Password: d.Password}); ok && w.ok(d.ID, d.Email) {
		w.exec(`INSERT INTO developers (id, email, record) VALUES ($1, $2, $3)
			ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, record = EXCLUDED.record`, d.ID, strings.ToLower(d.Email), b)
	}
}

// PutSession writes a dashboard session.
func (w *writer) PutSession(sess *engine.Session) {
	if b, ok := w.jsonOf(sess); ok && w.ok(sess.DeveloperID) {
		w.exec(`INSERT INTO sessions (token_hash, record) VALUES ($1, $2)
			ON CONFLICT (token_hash) DO UPDATE SET record = EXCLUDED.record`, sess.TokenHash[:], b)
	}
}

// DeleteSession removes a session.
func (w *writer) DeleteSession(h [32]byte) {
	if w.ok() {
		w.exec(`DELETE FROM sessions WHERE token_hash = $1`, h[:])
	}
}

// PutUsageDay writes a daily rollup.
func (w *writer) PutUsageDay(k engine.DayKey, c engine.DayCount) {
	if w.ok(k.PlatformID, k.Date, k.Feature) {
		w.exec(`INSERT INTO usage_days (platform, mode, day, feature, shard, count, denied) VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (platform, mode, day, feature, shard) DO UPDATE SET count = EXCLUDED.count, denied = EXCLUDED.denied`,
			k.PlatformID, mode(k.Mode), k.Date, k.Feature, int16(k.Shard), c.Count, c.Denied)
	}
}
