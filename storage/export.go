package storage

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/dream-api/dream-api/engine"
)

// CopyTo writes every record of s into dst (another engine.Store, e.g. a
// PostgreSQL one) through dst's batches of about batchSize records (500
// when 0), and returns how many records it copied. Index entries are not
// copied: dst's writers make their own from the records. s should not be
// written meanwhile (the caller holds the data dir); each batch is one
// transaction of dst, so a failed copy leaves part of the records in dst.
func (s *Store) CopyTo(ctx context.Context, dst engine.Store, batchSize int) (int, error) {
	if batchSize <= 0 {
		batchSize = 500
	}
	c := &copier{ctx: ctx, src: s, dst: dst, size: batchSize}
	err := s.scan(ctx, nil, nil, func(key, val []byte) error {
		// scan's fn must not call s: collect what needs a second read.
		return c.record(bytes.Clone(key), bytes.Clone(val))
	})
	if err == nil {
		err = c.flush()
	}
	if err == nil {
		err = c.modules()
	}
	return c.n, err
}

type copier struct {
	ctx  context.Context
	src  *Store
	dst  engine.Store
	size int
	b    engine.Batch
	n    int
	// versions are the plugin versions seen, whose modules are copied
	// after the scan.
	versions []pendingVersion
}

type pendingVersion struct {
	t engine.Tenant
	v *engine.PluginVersion
}

func (c *copier) batch() engine.Batch {
	if c.b == nil {
		c.b = c.dst.NewBatch()
	}
	return c.b
}

// counted commits the batch once it holds size records.
func (c *copier) counted() error {
	c.n++
	if c.n%c.size == 0 {
		return c.flush()
	}
	return nil
}

func (c *copier) flush() error {
	if c.b == nil {
		return nil
	}
	b := c.b
	c.b = nil
	defer b.Close()
	if err := b.Commit(); err != nil {
		return fmt.Errorf("storage: copy: %w", err)
	}
	return nil
}

// parts splits key into its prefix and n components, the last taking the
// rest (it may hold any byte), or reports false.
func parts(key []byte, n int) (string, []string, bool) {
	fields := bytes.SplitN(key, []byte{sep}, n+1)
	if len(fields) != n+1 {
		return "", nil, false
	}
	out := make([]string, n)
	for i := range out {
		out[i] = string(fields[i+1])
	}
	return string(fields[0]), out, true
}

// tenantOf parses a key's platform and mode components.
func tenantOf(platformID, mode string) (engine.Tenant, error) {
	m, err := engine.ParseMode(mode)
	return engine.Tenant{PlatformID: platformID, Mode: m}, err
}

// record copies one key-value pair of the store.
func (c *copier) record(key, val []byte) error {
	prefix, _, _ := bytes.Cut(key, []byte{sep})
	b := c.batch()
	var err error
	switch string(prefix) {
	case prefixMeta:
		if bytes.Equal(key, adminTokenKey()) {
			var h [32]byte
			if h, err = decodeHash("admin token hash", val); err == nil {
				b.PutAdminTokenHash(h)
			}
		} else {
			return nil // the schema version is the store's own
		}
	case prefixPlatform:
		var p *engine.Platform
		if p, err = decodePlatform(val); err == nil {
			b.PutPlatform(p)
		}
	case prefixKey:
		var k *engine.Key
		if k, err = decodeKey(val); err == nil {
			b.PutKey(k)
		}
	case prefixCustomer:
		var t engine.Tenant
		var cus *engine.Customer
		if _, f, ok := parts(key, 3); !ok {
			err = fmt.Errorf("malformed key")
		} else if t, err = tenantOf(f[0], f[1]); err == nil {
			if cus, err = decodeCustomer(val); err == nil {
				b.PutCustomer(t, cus, "")
			}
		}
	case prefixCounter:
		err = c.counter(key, val)
	case prefixPolicyState:
		var t engine.Tenant
		var state []byte
		if _, f, ok := parts(key, 4); !ok {
			err = fmt.Errorf("malformed key")
		} else if t, err = tenantOf(f[0], f[1]); err == nil {
			if state, err = decodeBytes("policy state", val); err == nil {
				b.PutPolicyState(t, f[2], f[3], state)
			}
		}
	case prefixIdempotency:
		var t engine.Tenant
		var r *engine.IdemRecord
		if _, f, ok := parts(key, 3); !ok {
			err = fmt.Errorf("malformed key")
		} else if t, err = tenantOf(f[0], f[1]); err == nil {
			if r, err = decodeIdempotency(val); err == nil {
				b.PutIdempotency(t, f[2], r)
			}
		}
	case prefixQuotas:
		q := new(engine.PlatformQuotas)
		if err = decodeJSON("platform quotas", val, q); err == nil {
			b.PutPlatformQuotas(string(key[len(prefixQuotas)+1:]), q)
		}
	case prefixTiers, prefixPluginSet, prefixStripeConn, prefixStripeCatalog, prefixAggregates:
		err = c.tenantRecord(string(prefix), key, val)
	case prefixPluginVer:
		var t engine.Tenant
		if _, f, ok := parts(key, 3); !ok {
			err = fmt.Errorf("malformed key")
		} else if t, err = tenantOf(f[0], f[1]); err == nil {
			v := new(engine.PluginVersion)
			if err = decodeJSON("plugin version", val, v); err == nil {
				c.versions = append(c.versions, pendingVersion{t, v})
			}
		}
		return err // copied with its module, after the scan
	case prefixOutbox:
		var e *engine.OutboxEntry
		if e, err = decodeOutboxEntry(val); err == nil {
			b.PutOutbox(e)
		}
	case prefixCORS:
		var origins []string
		if err = decodeJSON("cors origins", val, &origins); err == nil {
			b.PutAllowedOrigins(string(key[len(prefixCORS)+1:]), origins, nil)
		}
	case prefixStripeAccount:
		var id []byte
		if id, err = decodeBytes("stripe account index", val); err == nil {
			b.PutStripeAccount(string(key[len(prefixStripeAccount)+1:]), string(id))
		}
	case prefixStripeCus:
		var t engine.Tenant
		var id []byte
		if _, f, ok := parts(key, 3); !ok {
			err = fmt.Errorf("malformed key")
		} else if t, err = tenantOf(f[0], f[1]); err == nil {
			if id, err = decodeBytes("stripe customer index", val); err == nil {
				b.PutStripeCustomer(t, f[2], string(id))
			}
		}
	case prefixStripeSub:
		var t engine.Tenant
		if _, f, ok := parts(key, 3); !ok {
			err = fmt.Errorf("malformed key")
		} else if t, err = tenantOf(f[0], f[1]); err == nil {
			sub := new(engine.StripeSubscription)
			if err = decodeJSON("stripe subscription", val, sub); err == nil {
				b.PutStripeSubscription(t, sub)
			}
		}
	case prefixStripeEvent:
		var t engine.Tenant
		var at time.Time
		if _, f, ok := parts(key, 3); !ok {
			err = fmt.Errorf("malformed key")
		} else if t, err = tenantOf(f[0], f[1]); err == nil {
			if at, err = decodeTime("stripe event", val); err == nil {
				b.PutStripeEvent(t, f[2], at)
			}
		}
	case prefixStripeLog:
		var t engine.Tenant
		var r *engine.StripeEventRecord
		var slot int
		if _, f, ok := parts(key, 3); !ok {
			err = fmt.Errorf("malformed key")
		} else if t, err = tenantOf(f[0], f[1]); err == nil {
			if slot, err = strconv.Atoi(f[2]); err == nil {
				if r, err = decodeStripeLogRecord(val); err == nil {
					b.PutStripeEventLog(t, slot, r)
				}
			}
		}
	case prefixPlatformBill:
		pb := new(engine.PlatformBilling)
		if err = decodeJSON("platform billing", val, pb); err == nil {
			b.PutPlatformBilling(pb)
		}
	case prefixWebhookEndpoint:
		var t engine.Tenant
		var e *engine.WebhookEndpoint
		if _, f, ok := parts(key, 3); !ok {
			err = fmt.Errorf("malformed key")
		} else if t, err = tenantOf(f[0], f[1]); err == nil {
			if e, err = decodeEndpoint(val); err == nil {
				b.PutWebhookEndpoint(t, e)
			}
		}
	case prefixWebhookEvent:
		var t engine.Tenant
		if _, f, ok := parts(key, 3); !ok {
			err = fmt.Errorf("malformed key")
		} else if t, err = tenantOf(f[0], f[1]); err == nil {
			var r eventRecord
			if err = decodeJSON("webhook event", val, &r); err == nil {
				b.PutWebhookEvent(t, &engine.WebhookEvent{ID: r.ID, Type: r.Type, CreatedAt: r.CreatedAt, Body: r.Body})
			}
		}
	case prefixWebhookDelivery:
		var t engine.Tenant
		var d *engine.WebhookDelivery
		if _, f, ok := parts(key, 3); !ok {
			err = fmt.Errorf("malformed key")
		} else if t, err = tenantOf(f[0], f[1]); err == nil {
			if d, err = decodeDelivery(val); err == nil {
				b.PutWebhookDelivery(t, d)
			}
		}
	case prefixDeveloper:
		var r developerRecord
		if err = decodeJSON("developer", val, &r); err == nil {
			r.Developer.Password = r.Password
			b.PutDeveloper(&r.Developer, "")
		}
	case prefixSession:
		sess := new(engine.Session)
		rest := key[len(prefixSession)+1:]
		if len(rest) != len(sess.TokenHash) {
			err = fmt.Errorf("malformed key")
		} else if err = decodeJSON("session", val, sess); err == nil {
			copy(sess.TokenHash[:], rest)
			b.PutSession(sess)
		}
	case prefixUsageDay:
		var t engine.Tenant
		var k engine.DayKey
		var dc engine.DayCount
		if _, f, ok := parts(key, 3); !ok {
			err = fmt.Errorf("malformed key")
		} else if t, err = tenantOf(f[0], f[1]); err == nil {
			if k, err = parseUsageDayKey(t, key); err == nil {
				if dc, err = decodeDayCount(val); err == nil {
					b.PutUsageDay(k, dc)
				}
			}
		}
	case prefixPassword:
		var t engine.Tenant
		if _, f, ok := parts(key, 3); !ok {
			err = fmt.Errorf("malformed key")
		} else if t, err = tenantOf(f[0], f[1]); err == nil {
			p := new(engine.CustomerPassword)
			if err = decodeJSON("password", val, p); err == nil {
				b.PutCustomerPassword(t, f[2], p)
			}
		}
	case prefixSignInSession:
		sess := new(engine.SignInSession)
		if err = decodeJSON("sign-in session", val, sess); err == nil {
			b.PutSignInSession(sess)
		}
	case prefixPasswordReset:
		r := new(engine.PasswordReset)
		if err = decodeJSON("password reset", val, r); err == nil {
			b.PutPasswordReset(r)
		}
	case prefixSigningKey:
		k := new(engine.SigningKey)
		if err = decodeJSON("signing key", val, k); err == nil {
			b.PutSigningKey(k)
		}
	case prefixKeySecret, prefixKeyPub, prefixEmail, prefixOrigin, prefixPluginMod, prefixWebhookQueue, prefixDeveloperEmail, prefixCustomerSess:
		return nil // indexes, and modules (copied with their versions)
	default:
		return fmt.Errorf("storage: copy: unknown record %q", key)
	}
	if err != nil {
		return fmt.Errorf("storage: copy %q: %w", key, err)
	}
	return c.counted()
}

// tenantRecord writes a JSON record keyed by prefix, platform and mode.
func (c *copier) tenantRecord(prefix string, key, val []byte) error {
	_, f, ok := parts(key, 2)
	if !ok {
		return fmt.Errorf("malformed key")
	}
	t, err := tenantOf(f[0], f[1])
	if err != nil {
		return err
	}
	b := c.batch()
	switch prefix {
	case prefixTiers:
		v := new(engine.TierConfig)
		if err = decodeJSON("tiers", val, v); err == nil {
			b.PutTiers(t, v)
		}
	case prefixPluginSet:
		v := new(engine.PluginSettings)
		if err = decodeJSON("plugin settings", val, v); err == nil {
			b.PutPluginSettings(t, v)
		}
	case prefixStripeConn:
		v := new(engine.StripeConnection)
		if err = decodeJSON("stripe connection", val, v); err == nil {
			b.PutStripeConnection(t, v)
		}
	case prefixStripeCatalog:
		v := new(engine.StripeCatalog)
		if err = decodeJSON("stripe catalog", val, v); err == nil {
			b.PutStripeCatalog(t, v)
		}
	case prefixAggregates:
		v := new(engine.Aggregates)
		if err = decodeJSON("aggregates", val, v); err == nil {
			b.PutAggregates(t, v)
		}
	}
	return err
}

// counter copies a usage counter; its key ends in the period start.
func (c *copier) counter(key, val []byte) error {
	_, f, ok := parts(key, 4) // platform, mode, customer, then feature and period start
	if !ok {
		return fmt.Errorf("malformed key")
	}
	t, err := tenantOf(f[0], f[1])
	if err != nil {
		return err
	}
	prefix := countersPrefix(t, f[2])
	if !bytes.HasPrefix(key, prefix) {
		return fmt.Errorf("malformed key")
	}
	feature, start, err := parseCounterKey(prefix, key)
	if err != nil {
		return err
	}
	cnt, err := decodeCounter(val)
	if err != nil {
		return err
	}
	c.batch().PutCounter(engine.CounterKey{Tenant: t, CustomerID: f[2], Feature: feature, PeriodStart: start}, cnt)
	return nil
}

// modules copies the plugin versions found by the scan with their modules.
func (c *copier) modules() error {
	for _, pv := range c.versions {
		wasm, err := c.src.PluginModule(c.ctx, pv.t, pv.v.Version)
		if err != nil {
			return fmt.Errorf("storage: copy plugin version %s: %w", pv.v.Version, err)
		}
		c.batch().PutPluginVersion(pv.t, pv.v, wasm)
		if err := c.counted(); err != nil {
			return err
		}
	}
	return c.flush()
}
