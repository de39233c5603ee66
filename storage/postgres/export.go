package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/dream-api/dream-api/engine"
	"github.com/jackc/pgx/v5"
)

// exportTable is one table CopyTo copies: sql selects its rows, row
// writes one of them.
type exportTable struct {
	table string
	sql   string
	row   func(pgx.Rows, engine.Writer) error
}

// exportTables are the tables CopyTo copies, in order, each with how a
// row becomes writes of dst's engine.Writer; exportSkipped are the tables
// it leaves out on purpose. A table in neither (one a later migration
// added) fails CopyTo rather than being left behind: add it here.
var exportTables = []exportTable{
	{"meta", `SELECT value FROM meta WHERE name = 'admin'`, func(rows pgx.Rows, w engine.Writer) error {
		var v []byte
		if err := rows.Scan(&v); err != nil {
			return err
		}
		var h [32]byte
		if len(v) != len(h) {
			return fmt.Errorf("admin token hash is %d bytes", len(v))
		}
		copy(h[:], v)
		w.PutAdminTokenHash(h)
		return nil
	}},
	{"platforms", `SELECT record FROM platforms ORDER BY id`, recordRow(func(w engine.Writer, p *engine.Platform) { w.PutPlatform(p) })},
	{"api_keys", `SELECT record FROM api_keys ORDER BY platform, id`, func(rows pgx.Rows, w engine.Writer) error {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return err
		}
		k, err := decodeKey(raw)
		if err == nil {
			w.PutKey(k)
		}
		return err
	}},
	{"tiers", `SELECT platform, mode, config FROM tiers ORDER BY platform, mode`,
		tenantRow(func(w engine.Writer, t engine.Tenant, c *engine.TierConfig) { w.PutTiers(t, c) })},
	{"customers", `SELECT platform, mode, record FROM customers ORDER BY platform, mode, id`,
		tenantRow(func(w engine.Writer, t engine.Tenant, c *customerRecord) { w.PutCustomer(t, c.customer(), "") })},
	{"platform_quotas", `SELECT platform, record FROM platform_quotas ORDER BY platform`, func(rows pgx.Rows, w engine.Writer) error {
		var platform string
		var raw []byte
		if err := rows.Scan(&platform, &raw); err != nil {
			return err
		}
		q := new(engine.PlatformQuotas)
		if err := json.Unmarshal(raw, q); err != nil {
			return err
		}
		w.PutPlatformQuotas(platform, q)
		return nil
	}},
	{"aggregates", `SELECT platform, mode, record FROM aggregates ORDER BY platform, mode`,
		tenantRow(func(w engine.Writer, t engine.Tenant, a *engine.Aggregates) { w.PutAggregates(t, a) })},
	{"counters", `SELECT platform, mode, customer, feature, period_start, count, period_end FROM counters
		ORDER BY platform, mode, customer, feature, period_start`, func(rows pgx.Rows, w engine.Writer) error {
		var k engine.CounterKey
		var m int16
		var start, end int64
		var c engine.Counter
		if err := rows.Scan(&k.PlatformID, &m, &k.CustomerID, &k.Feature, &start, &c.Count, &end); err != nil {
			return err
		}
		k.Mode, k.PeriodStart, c.PeriodEnd = engine.Mode(m), fromMS(start), fromMS(end)
		w.PutCounter(k, c)
		return nil
	}},
	{"policy_state", `SELECT platform, mode, customer, feature, state FROM policy_state
		ORDER BY platform, mode, customer, feature`, func(rows pgx.Rows, w engine.Writer) error {
		var t engine.Tenant
		var m int16
		var customer, feature string
		var state []byte
		if err := rows.Scan(&t.PlatformID, &m, &customer, &feature, &state); err != nil {
			return err
		}
		t.Mode = engine.Mode(m)
		w.PutPolicyState(t, customer, feature, state)
		return nil
	}},
	{"idempotency", `SELECT platform, mode, key, request_hash, request_id, sealed, status, body, created_at FROM idempotency
		ORDER BY platform, mode, key`, func(rows pgx.Rows, w engine.Writer) error {
		var t engine.Tenant
		var m int16
		var key string
		var hash []byte
		var created int64
		r := new(engine.IdemRecord)
		if err := rows.Scan(&t.PlatformID, &m, &key, &hash, &r.RequestID, &r.Sealed, &r.Status, &r.Body, &created); err != nil {
			return err
		}
		if len(hash) != len(r.RequestHash) {
			return fmt.Errorf("idempotency record %q has a %d-byte request hash", key, len(hash))
		}
		copy(r.RequestHash[:], hash)
		if len(r.Body) == 0 {
			r.Body = nil
		}
		t.Mode, r.CreatedAt = engine.Mode(m), fromMS(created)
		w.PutIdempotency(t, key, r)
		return nil
	}},
	{"plugin_settings", `SELECT platform, mode, settings FROM plugin_settings ORDER BY platform, mode`,
		tenantRow(func(w engine.Writer, t engine.Tenant, ps *engine.PluginSettings) { w.PutPluginSettings(t, ps) })},
	{"plugin_versions", `SELECT platform, mode, record, module FROM plugin_versions ORDER BY platform, mode, version`,
		func(rows pgx.Rows, w engine.Writer) error {
			var t engine.Tenant
			var m int16
			var raw, module []byte
			if err := rows.Scan(&t.PlatformID, &m, &raw, &module); err != nil {
				return err
			}
			v := new(engine.PluginVersion)
			if err := json.Unmarshal(raw, v); err != nil {
				return err
			}
			t.Mode = engine.Mode(m)
			w.PutPluginVersion(t, v, module)
			return nil
		}},
	{"outbox", `SELECT record FROM outbox ORDER BY id`, recordRow(func(w engine.Writer, e *engine.OutboxEntry) { w.PutOutbox(e) })},
	{"cors", `SELECT platform, origins FROM cors ORDER BY platform`, func(rows pgx.Rows, w engine.Writer) error {
		var platform string
		var raw []byte
		if err := rows.Scan(&platform, &raw); err != nil {
			return err
		}
		var origins []string
		if err := json.Unmarshal(raw, &origins); err != nil {
			return err
		}
		w.PutAllowedOrigins(platform, origins, nil)
		return nil
	}},
	{"stripe_connections", `SELECT platform, mode, record FROM stripe_connections ORDER BY platform, mode`,
		tenantRow(func(w engine.Writer, t engine.Tenant, c *engine.StripeConnection) { w.PutStripeConnection(t, c) })},
	{"stripe_accounts", `SELECT account, platform FROM stripe_accounts ORDER BY account`, func(rows pgx.Rows, w engine.Writer) error {
		var account, platform string
		if err := rows.Scan(&account, &platform); err != nil {
			return err
		}
		w.PutStripeAccount(account, platform)
		return nil
	}},
	{"stripe_catalogs", `SELECT platform, mode, record FROM stripe_catalogs ORDER BY platform, mode`,
		tenantRow(func(w engine.Writer, t engine.Tenant, c *engine.StripeCatalog) { w.PutStripeCatalog(t, c) })},
	{"stripe_customers", `SELECT platform, mode, stripe_id, customer FROM stripe_customers ORDER BY platform, mode, stripe_id`,
		func(rows pgx.Rows, w engine.Writer) error {
			var t engine.Tenant
			var m int16
			var stripeID, customer string
			if err := rows.Scan(&t.PlatformID, &m, &stripeID, &customer); err != nil {
				return err
			}
			t.Mode = engine.Mode(m)
			w.PutStripeCustomer(t, stripeID, customer)
			return nil
		}},
	{"stripe_subscriptions", `SELECT platform, mode, record FROM stripe_subscriptions ORDER BY platform, mode, id`,
		tenantRow(func(w engine.Writer, t engine.Tenant, s *engine.StripeSubscription) { w.PutStripeSubscription(t, s) })},
	{"stripe_events", `SELECT platform, mode, event_id, applied_at FROM stripe_events ORDER BY platform, mode, event_id`,
		func(rows pgx.Rows, w engine.Writer) error {
			var t engine.Tenant
			var m int16
			var id string
			var at int64
			if err := rows.Scan(&t.PlatformID, &m, &id, &at); err != nil {
				return err
			}
			t.Mode = engine.Mode(m)
			w.PutStripeEvent(t, id, fromMS(at))
			return nil
		}},
	{"stripe_event_log", `SELECT platform, mode, slot, record FROM stripe_event_log ORDER BY platform, mode, slot`,
		func(rows pgx.Rows, w engine.Writer) error {
			var t engine.Tenant
			var m, slot int16
			var raw []byte
			if err := rows.Scan(&t.PlatformID, &m, &slot, &raw); err != nil {
				return err
			}
			r := new(engine.StripeEventRecord)
			if err := json.Unmarshal(raw, r); err != nil {
				return err
			}
			t.Mode = engine.Mode(m)
			w.PutStripeEventLog(t, int(slot), r)
			return nil
		}},
	{"platform_billing", `SELECT record FROM platform_billing ORDER BY platform`,
		recordRow(func(w engine.Writer, pb *engine.PlatformBilling) { w.PutPlatformBilling(pb) })},
	{"webhook_endpoints", `SELECT platform, mode, record FROM webhook_endpoints ORDER BY platform, mode, id`,
		func(rows pgx.Rows, w engine.Writer) error {
			var t engine.Tenant
			var m int16
			var raw []byte
			if err := rows.Scan(&t.PlatformID, &m, &raw); err != nil {
				return err
			}
			e, err := decodeEndpoint(raw)
			if err != nil {
				return err
			}
			t.Mode = engine.Mode(m)
			w.PutWebhookEndpoint(t, e)
			return nil
		}},
	{"webhook_events", `SELECT platform, mode, record FROM webhook_events ORDER BY platform, mode, id`,
		tenantRow(func(w engine.Writer, t engine.Tenant, r *eventRecord) {
			w.PutWebhookEvent(t, &engine.WebhookEvent{ID: r.ID, Type: r.Type, CreatedAt: r.CreatedAt, Body: []byte(r.Body)})
		})},
	{"webhook_deliveries", `SELECT platform, mode, record FROM webhook_deliveries ORDER BY platform, mode, endpoint, event`,
		tenantRow(func(w engine.Writer, t engine.Tenant, d *engine.WebhookDelivery) { w.PutWebhookDelivery(t, d) })},
	{"developers", `SELECT record FROM developers ORDER BY id`, recordRow(func(w engine.Writer, r *developerRecord) {
		r.Developer.Password = r.Password
		w.PutDeveloper(&r.Developer, "")
	})},
	{"sessions", `SELECT token_hash, record FROM sessions ORDER BY token_hash`, func(rows pgx.Rows, w engine.Writer) error {
		var h, raw []byte
		if err := rows.Scan(&h, &raw); err != nil {
			return err
		}
		sess := new(engine.Session)
		if err := json.Unmarshal(raw, sess); err != nil {
			return err
		}
		if len(h) != len(sess.TokenHash) {
			return fmt.Errorf("session hash of %d bytes", len(h))
		}
		copy(sess.TokenHash[:], h)
		w.PutSession(sess)
		return nil
	}},
	{"usage_days", `SELECT platform, mode, day, feature, shard, count, denied FROM usage_days
		ORDER BY platform, mode, day, feature, shard`, func(rows pgx.Rows, w engine.Writer) error {
		var k engine.DayKey
		var m, shard int16
		var c engine.DayCount
		if err := rows.Scan(&k.PlatformID, &m, &k.Date, &k.Feature, &shard, &c.Count, &c.Denied); err != nil {
			return err
		}
		k.Mode, k.Shard = engine.Mode(m), uint8(shard)
		w.PutUsageDay(k, c)
		return nil
	}},
	{"customer_passwords", `SELECT platform, mode, customer, record FROM customer_passwords ORDER BY platform, mode, customer`,
		func(rows pgx.Rows, w engine.Writer) error {
			var t engine.Tenant
			var m int16
			var customer string
			var raw []byte
			if err := rows.Scan(&t.PlatformID, &m, &customer, &raw); err != nil {
				return err
			}
			p := new(engine.CustomerPassword)
			if err := json.Unmarshal(raw, p); err != nil {
				return err
			}
			t.Mode = engine.Mode(m)
			w.PutCustomerPassword(t, customer, p)
			return nil
		}},
	{"signin_sessions", `SELECT record FROM signin_sessions ORDER BY id`,
		recordRow(func(w engine.Writer, s *engine.SignInSession) { w.PutSignInSession(s) })},
	{"password_resets", `SELECT record FROM password_resets ORDER BY id`,
		recordRow(func(w engine.Writer, p *engine.PasswordReset) { w.PutPasswordReset(p) })},
	{"signing_keys", `SELECT record FROM signing_keys ORDER BY id`,
		recordRow(func(w engine.Writer, k *engine.SigningKey) { w.PutSigningKey(k) })},
}

// exportSkipped are tables CopyTo leaves out: the schema's own bookkeeping,
// the change log (other nodes' cache invalidations) and index tables that
// dst's writers make from the records.
var exportSkipped = []string{"schema_migrations", "schema_lease", "changes", "change_seq", "dream_locks", "cors_origins"}

// recordRow makes the row function of a query selecting one JSON record.
func recordRow[T any](put func(engine.Writer, *T)) func(pgx.Rows, engine.Writer) error {
	return func(rows pgx.Rows, w engine.Writer) error {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return err
		}
		v := new(T)
		if err := json.Unmarshal(raw, v); err != nil {
			return err
		}
		put(w, v)
		return nil
	}
}

// tenantRow makes the row function of a query selecting platform, mode and
// one JSON record.
func tenantRow[T any](put func(engine.Writer, engine.Tenant, *T)) func(pgx.Rows, engine.Writer) error {
	return func(rows pgx.Rows, w engine.Writer) error {
		var t engine.Tenant
		var m int16
		var raw []byte
		if err := rows.Scan(&t.PlatformID, &m, &raw); err != nil {
			return err
		}
		v := new(T)
		if err := json.Unmarshal(raw, v); err != nil {
			return err
		}
		t.Mode = engine.Mode(m)
		put(w, t, v)
		return nil
	}
}

// CopyTo writes every record of s into dst (another engine.Store, e.g. a
// Pebble one: `dream-api migrate --from postgres://… --to DIR`) through
// dst's batches of about batchSize records (500 when 0), and returns how
// many records it copied. It reads one snapshot (a REPEATABLE READ, READ
// ONLY transaction), so nodes still serving would not make it
// inconsistent, but what they write after it started is not copied: stop
// them first. Index tables are not copied: dst's writers make their own
// from the records. Each batch is one commit of dst, so a failed copy
// leaves part of the records in dst. A table CopyTo does not know (added
// by a later migration) fails it before anything is written.
func (s *Store) CopyTo(ctx context.Context, dst engine.Store, batchSize int) (int, error) {
	if s.isClosed() {
		return 0, ErrClosed
	}
	if batchSize <= 0 {
		batchSize = 500
	}
	ptx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return 0, classify(fmt.Errorf("postgres: copy: begin: %w", err))
	}
	defer ptx.Rollback(context.Background())
	r := reader{q: guarded{ptx}}
	var tables []string
	err = r.each(ctx, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name`, nil,
		func(rows pgx.Rows) error {
			var name string
			err := rows.Scan(&name)
			tables = append(tables, name)
			return err
		})
	if err != nil {
		return 0, err
	}
	for _, name := range tables {
		known := slices.Contains(exportSkipped, name) ||
			slices.ContainsFunc(exportTables, func(e exportTable) bool { return e.table == name })
		if !known {
			return 0, fmt.Errorf("postgres: copy: the table %s is not known to CopyTo (storage/postgres/export.go): nothing was copied", name)
		}
	}

	n := 0
	var b engine.Batch
	flush := func() error {
		if b == nil {
			return nil
		}
		defer b.Close()
		err := b.Commit()
		b = nil
		if err != nil {
			return fmt.Errorf("postgres: copy: %w", err)
		}
		return nil
	}
	defer func() {
		if b != nil {
			b.Close()
		}
	}()
	for _, e := range exportTables {
		err := r.each(ctx, e.sql, nil, func(rows pgx.Rows) error {
			if b == nil {
				b = dst.NewBatch()
			}
			if err := e.row(rows, b); err != nil {
				return fmt.Errorf("postgres: copy %s: %w", e.table, err)
			}
			if n++; n%batchSize == 0 {
				return flush()
			}
			return nil
		})
		if err != nil {
			return n, err
		}
	}
	return n, flush()
}
