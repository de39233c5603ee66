package engine

import (
	"context"
	"crypto/rand"
	"errors"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Config wires an Engine. Store is required; everything else has a default.
type Config struct {
	Store Store
	// Policies finds a platform's active policy. Defaults to the engine's
	// own Plugins service (uploaded WASM modules).
	Policies Policies
	// PolicyLoader validates and compiles uploaded modules. Without one,
	// uploads are refused and built-in limits decide every call.
	PolicyLoader PolicyLoader
	// Now defaults to time.Now.
	Now Clock
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// KeyGrace is how long a rotated secret keeps working. Defaults to 24 h.
	KeyGrace time.Duration
	// Sealer encrypts recorded responses that hold secrets (idempotency
	// records of key and platform creation). Defaults to a sealer with a
	// random key, which makes such records unreadable after a restart.
	Sealer *Sealer
	// Identity makes customers users of the shared end-user Clerk app
	// (identity.go). Defaults to none: customers are local (`cus_…`).
	Identity Identity
	// Stripe turns Stripe billing on (stripe.go). Defaults to off.
	Stripe StripeConfig
	// Quotas bound each platform's use of the server (quota.go). The zero
	// value limits nothing.
	Quotas Quotas
	// Webhooks tunes outgoing webhooks (webhooks_deliver.go).
	Webhooks WebhookOptions
	// Developers tunes developer accounts and sessions (developers.go).
	Developers DeveloperConfig
	// Auth turns dream-api's own end-user sign-in on (auth.go). Defaults
	// to off.
	Auth AuthConfig
}

// Engine holds the domain services. They share one store, one clock, the
// lock stripes and the idempotency bookkeeping. Safe for concurrent use.
type Engine struct {
	c *core

	Platforms *Platforms
	Keys      *Keys
	Tiers     *Tiers
	Customers *Customers
	Meter     *Meter
	Plugins   *Plugins
	Stripe    *Stripe
	Webhooks  *Webhooks
	// Developers are the dashboard's accounts and sessions.
	Developers *Developers
	Auth       *EndUserAuth
}

// core is what the services share.
type core struct {
	store    Store
	policies Policies
	now      Clock
	log      *slog.Logger
	sealer   *Sealer
	inflight inflight
	tiers    tierCache
	identity Identity // nil without Clerk
	outbox   *outbox
	stripe   *Stripe
	keys     *Keys
	plugins  *Plugins
	quotas   *quotas
	hooks    *hookWorker
	days     *dayRollups // usage per day not flushed yet (usage_days.go)
	auth     *EndUserAuth
	// digestKey hashes requests that carry a password (auth_password.go).
	digestOnce sync.Once
	digestKey  []byte
}

// New returns an Engine over cfg.Store.
func New(cfg Config) *Engine {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.KeyGrace == 0 {
		cfg.KeyGrace = 24 * time.Hour
	}
	c := &core{
		store:    cfg.Store,
		policies: cfg.Policies,
		now:      cfg.Now,
		log:      cfg.Logger,
		sealer:   cfg.Sealer,
		identity: cfg.Identity,
		outbox:   newOutbox(),
		days:     newDayRollups(),
		quotas:   newQuotas(cfg.Quotas, cfg.Now, cfg.Store),
	}
	if c.sealer == nil {
		key := make([]byte, 32)
		rand.Read(key)
		c.sealer, _ = NewSealer(key)
	}
	c.inflight.m = make(map[string]chan struct{})
	c.tiers.m = make(map[Tenant]*TierConfig)
	plugins := &Plugins{c: c, loader: cfg.PolicyLoader, active: make(map[Tenant]*ActivePolicy), gen: make(map[Tenant]uint64),
		prepared: make(map[string]*ActivePolicy), stateful: make(map[string]*atomic.Bool), loading: newStripes(256),
		health: make(map[Tenant]*pluginHealthLog), started: cfg.Now()}
	if c.policies == nil {
		c.policies = plugins
	}
	c.stripe = newStripe(c, cfg.Stripe)
	c.keys = &Keys{c: c, grace: cfg.KeyGrace, cache: make(map[[32]byte]*cachedKey), suspended: make(map[string]bool)}
	c.plugins = plugins
	c.hooks = newHookWorker(c, cfg.Webhooks)
	c.auth = newEndUserAuth(c, cfg.Auth)
	if c.store != nil {
		c.store.Watch(c.changed)
	}
	platforms := &Platforms{c: c}
	return &Engine{
		c:          c,
		Stripe:     c.stripe,
		Plugins:    plugins,
		Platforms:  platforms,
		Developers: newDevelopers(c, cfg.Developers, platforms),
		Keys:       c.keys,
		Tiers:      &Tiers{c: c},
		Customers:  &Customers{c: c},
		Meter:      &Meter{c: c, rate: newRateLimiter()},
		Webhooks:   &Webhooks{c: c},
		Auth:       c.auth,
	}
}

// stripes is a fixed array of mutexes indexed by a hash of what they guard.
// The engine uses it only for work that is not a unit of work (compiling a
// platform's plugin once); units of work lock through Store.Update.
type stripes struct {
	seed maphash.Seed
	mu   []paddedMutex
}

type paddedMutex struct {
	sync.Mutex
	_ [56]byte // one cache line each
}

func newStripes(n int) *stripes {
	return &stripes{seed: maphash.MakeSeed(), mu: make([]paddedMutex, n)}
}

func (s *stripes) index(parts []string) int {
	var h maphash.Hash
	h.SetSeed(s.seed)
	for _, p := range parts {
		h.WriteString(p)
		h.WriteByte(0)
	}
	return int(h.Sum64() % uint64(len(s.mu)))
}

// lock locks the stripe of the given parts and returns its unlock.
func (s *stripes) lock(parts ...string) func() {
	m := &s.mu[s.index(parts)].Mutex
	m.Lock()
	return m.Unlock
}

// inflight makes requests with the same Idempotency-Key wait for each other,
// so that a retry racing the first call replays it instead of repeating it.
type inflight struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

func (f *inflight) claim(ctx context.Context, key string) (release func(), err error) {
	for {
		f.mu.Lock()
		ch, busy := f.m[key]
		if !busy {
			ch = make(chan struct{})
			f.m[key] = ch
			f.mu.Unlock()
			return func() {
				f.mu.Lock()
				delete(f.m, key)
				f.mu.Unlock()
				close(ch)
			}, nil
		}
		f.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Replayed is returned instead of a result when a request repeats an earlier
// one with the same Idempotency-Key and body: the caller sends Record as is.
type Replayed struct{ Record *IdemRecord }

func (r *Replayed) Error() string { return "engine: idempotent replay" }

// AsReplayed returns the replay carried by err, if any.
func AsReplayed(err error) (*IdemRecord, bool) {
	var r *Replayed
	if errors.As(err, &r) {
		return r.Record, true
	}
	return nil, false
}

// idempotent claims a request's Idempotency-Key before an operation looks at
// anything: a request racing one with the same key waits for it, and a
// repeat of a recorded request returns *Replayed (the first response) or
// EIDEMPOTENCYCONFLICT (a different request). The caller MUST call done,
// after its write is durable. Without a key it does nothing.
func (c *core) idempotent(ctx context.Context, t Tenant, idem *Idempotency) (done func(), err error) {
	if idem == nil || idem.Key == "" {
		return func() {}, nil
	}
	scoped := t.PlatformID + "\x00" + t.Mode.String() + "\x00" + idem.Key
	release, err := c.inflight.claim(ctx, scoped)
	if err != nil {
		return nil, err
	}
	if err := c.recorded(ctx, t, idem); err != nil {
		release()
		return nil, err
	}
	return release, nil
}

// recorded returns *Replayed (the first response) or EIDEMPOTENCYCONFLICT
// (a different request) when a live record of idem's key is stored, the
// store's error when it cannot tell, and nil when there is none.
func (c *core) recorded(ctx context.Context, t Tenant, idem *Idempotency) error {
	rec, err := c.store.Idempotency(ctx, t, idem.Key)
	switch {
	case err == nil && c.now().Sub(rec.CreatedAt) < IdempotencyTTL:
		if rec.RequestHash != idem.RequestHash {
			return Errorf(EIDEMPOTENCYCONFLICT, "Idempotency-Key %q was already used with a different request.", idem.Key)
		}
		if rec.Sealed {
			body, err := c.sealer.Open(rec.Body, idemAAD(t, idem.Key))
			if err != nil {
				return Errorf(EIDEMPOTENCYCONFLICT, "The first response to Idempotency-Key %q held a secret that can no longer be shown; use a new key.", idem.Key)
			}
			rec.Body, rec.Sealed = body, false
		}
		return &Replayed{Record: rec}
	case err != nil && ErrorCode(err) != ENOTFOUND:
		return err
	}
	return nil
}

// update runs one logical change as a unit of work (Store.Update) holding
// locks: build reads through tx and writes into it, and returns the result;
// the writes (with the idempotency record, when idem has a key) are applied
// before the locks are released and are durable when update returns.
// Nothing is written when build fails.
//
// Every read-modify-write of durable state goes through here: what build
// reads under the locks is what its writes are based on. In-memory copies
// of stored state follow the store's Watch listener (core.changed), never
// a caller's own update after the fact.
//
// Operations that look at state before they build (a customer, a rate
// limit, a module to compile) call idempotent first themselves, then
// updateClaimed, so that a replay never depends on what changed since.
func (c *core) update(ctx context.Context, t Tenant, idem *Idempotency, locks []Lock, build func(tx Tx) (any, error)) (any, error) {
	done, err := c.idempotent(ctx, t, idem)
	if err != nil {
		return nil, err
	}
	defer done()
	return c.updateClaimed(ctx, t, idem, locks, build)
}

// updateClaimed is update for a caller that already holds the key's claim.
func (c *core) updateClaimed(ctx context.Context, t Tenant, idem *Idempotency, locks []Lock, build func(tx Tx) (any, error)) (any, error) {
	if idem == nil || idem.Key == "" {
		return c.store.Update(ctx, locks, build)
	}
	res, err := c.store.Update(ctx, locks, func(tx Tx) (any, error) {
		res, err := build(tx)
		if err != nil {
			return nil, err
		}
		status, body := idem.Render(res)
		rec := &IdemRecord{
			RequestHash: idem.RequestHash, RequestID: idem.RequestID, Status: status, Body: body,
			CreatedAt: c.now().UTC(),
		}
		if idem.Sensitive {
			// The response holds a secret shown once: never store it in clear.
			rec.Body, rec.Sealed = c.sealer.Seal(body, idemAAD(t, idem.Key)), true
		}
		tx.PutIdempotency(t, idem.Key, rec)
		return res, nil
	})
	if errors.Is(err, ErrIdempotencyRace) {
		// Another process recorded the key first: answer as a replay.
		if rerr := c.recorded(ctx, t, idem); rerr != nil {
			return nil, rerr
		}
	}
	return res, err
}

// changed is the store's Watch listener: it keeps the engine's in-memory
// copies of stored state in step with the batches that change it, while
// the writing unit still holds its locks.
func (c *core) changed(ch Change) {
	switch {
	case ch.Tiers != nil:
		c.setTierConfig(Tenant{PlatformID: ch.PlatformID, Mode: ch.Mode}, ch.Tiers)
	case ch.Key != nil:
		c.keys.replace(ch.Key)
	case ch.PluginSettings != nil:
		c.plugins.settingsChanged(Tenant{PlatformID: ch.PlatformID, Mode: ch.Mode}, ch.PluginSettings)
	case ch.Billing != nil:
		c.stripe.setLiveAllowed(ch.PlatformID, ch.Billing.Active())
	case ch.Quotas != nil:
		c.quotas.set(ch.PlatformID, ch.Quotas)
	case ch.WebhookDelivery != nil:
		c.hooks.notify(WebhookEndpointRef{Tenant: Tenant{PlatformID: ch.PlatformID, Mode: ch.Mode}, EndpointID: ch.WebhookDelivery.EndpointID})
	case ch.SigningKey != nil:
		c.auth.keyChanged(ch.SigningKey)
	case ch.Platform != nil:
		c.keys.platformChanged(ch.Platform)
	}
}

// The locks of units of work, one constructor a kind.

func counterLock(t Tenant, customerID, feature string) Lock {
	return Lock{Kind: LockCounter, Mode: t.Mode, Platform: t.PlatformID, ID: customerID, Feature: feature}
}

func customerLock(t Tenant, id string) Lock {
	return Lock{Kind: LockCustomer, Mode: t.Mode, Platform: t.PlatformID, ID: id}
}

func emailLock(t Tenant, email string) Lock {
	return Lock{Kind: LockEmail, Mode: t.Mode, Platform: t.PlatformID, ID: email}
}

// tiersLock guards a tenant's tier config and the assignment of plans to
// its customers, so that a plan is never assigned while a tier change
// removes it.
func tiersLock(t Tenant) Lock { return Lock{Kind: LockTiers, Mode: t.Mode, Platform: t.PlatformID} }

func keysLock(platformID string) Lock { return Lock{Kind: LockKeys, Platform: platformID} }

// platformLock guards a platform record (its suspension).
func platformLock(platformID string) Lock { return Lock{Kind: LockPlatform, Platform: platformID} }

func pluginLock(t Tenant) Lock { return Lock{Kind: LockPlugin, Mode: t.Mode, Platform: t.PlatformID} }

func corsLock(platformID string) Lock { return Lock{Kind: LockCORS, Platform: platformID} }

func stripeLock(t Tenant) Lock { return Lock{Kind: LockStripe, Mode: t.Mode, Platform: t.PlatformID} }

func platformBillingLock(platformID string) Lock {
	return Lock{Kind: LockPlatformBilling, Platform: platformID}
}

func idemAAD(t Tenant, key string) []byte {
	return []byte("idem\x00" + t.PlatformID + "\x00" + t.Mode.String() + "\x00" + key)
}

// tierCache keeps every tenant's tier config in memory: they are small,
// read on every track and written rarely. It is filled on a miss only where
// it has no entry; every stored change replaces the entry (core.changed).
type tierCache struct {
	mu sync.RWMutex
	m  map[Tenant]*TierConfig
}

func (c *core) tierConfig(ctx context.Context, t Tenant) (*TierConfig, error) {
	c.tiers.mu.RLock()
	tc := c.tiers.m[t]
	c.tiers.mu.RUnlock()
	if tc != nil {
		return tc, nil
	}
	tc, err := c.store.Tiers(ctx, t)
	if ErrorCode(err) == ENOTFOUND {
		tc = DefaultTiers()
	} else if err != nil {
		return nil, err
	}
	c.tiers.mu.Lock()
	if cur := c.tiers.m[t]; cur != nil {
		tc = cur
	} else {
		c.tiers.m[t] = tc
	}
	c.tiers.mu.Unlock()
	return tc, nil
}

func (c *core) setTierConfig(t Tenant, tc *TierConfig) {
	c.tiers.mu.Lock()
	c.tiers.m[t] = tc
	c.tiers.mu.Unlock()
}

// ExpireIdempotency deletes the idempotency records older than
// IdempotencyTTL (they are no longer replayed) and returns how many.
func (e *Engine) ExpireIdempotency(ctx context.Context) (int, error) {
	c := e.c
	return c.store.ExpireIdempotency(ctx, c.now().Add(-IdempotencyTTL))
}

// RunMaintenance expires idempotency records and dashboard sessions every
// interval until ctx is done. Defaults to hourly when interval is 0.
func (e *Engine) RunMaintenance(ctx context.Context, interval time.Duration) {
	if interval == 0 {
		interval = time.Hour
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := e.ExpireIdempotency(ctx); err != nil && ctx.Err() == nil {
				e.c.log.Warn("expiring idempotency records failed", "err", err)
			} else if n > 0 {
				e.c.log.Info("expired idempotency records", "count", n)
			}
			if n, err := e.Developers.ExpireSessions(ctx); err != nil && ctx.Err() == nil {
				e.c.log.Warn("expiring dashboard sessions failed", "err", err)
			} else if n > 0 {
				e.c.log.Info("expired dashboard sessions", "count", n)
			}
		}
	}
}
