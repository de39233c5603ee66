package engine

import (
	"context"
	"errors"
	"time"
)

// ErrIdempotencyRace is returned (wrapped) by Store.Update when its unit
// wrote an idempotency record under a key whose live record (younger than
// IdempotencyTTL) another unit stored first: a store shared by several
// processes, where two of them ran the same Idempotency-Key at once. The
// unit wrote nothing; the engine answers with the stored record. A store
// used by one process never returns it (the engine claims keys in memory).
var ErrIdempotencyRace = errors.New("engine: idempotency key recorded by another unit")

// Store keeps everything durable. Reads see every batch that has been
// applied, durable or not yet; a caller acknowledges nothing to a client
// before the batch that holds it is durable.
//
// Every read-modify-write of durable state is one unit of work (Update):
// the reads it bases its writes on are made while it holds its locks, and
// its writes become visible together. In-memory copies of stored state
// (tier configs, key records, plugin settings, platform billing) are kept by
// the store's Watch listener, called with each applied change while the
// unit's locks are still held, so that a cache can never end up behind the
// store.
//
// Read methods return an *Error with code ENOTFOUND when the object does not
// exist, unless they say otherwise. Implementations are safe for concurrent use.
type Store interface {
	Reader

	// Update runs fn as one unit of work: while fn runs and until its writes
	// are applied, no other unit of work holding any of locks runs. fn reads
	// through tx (its reads see every unit applied before it) and writes into
	// tx; nothing is written when fn returns an error, which Update returns.
	// Otherwise the writes are applied (visible, and Watch listeners called)
	// before the locks are released, and Update returns fn's result once
	// they are durable. A unit that wrote nothing applies nothing.
	//
	// fn may be run more than once for one Update (a shared store runs the
	// unit again when the database aborted its transaction, e.g. a
	// serialization failure): only the last run's writes and result count,
	// so fn must have no effect outside tx that a second run would repeat
	// or that the first run's outcome would leave behind. Neither locks nor
	// fn nor tx is used after Update returns (callers pool them).
	Update(ctx context.Context, locks []Lock, fn func(tx Tx) (any, error)) (any, error)

	// Watch registers fn to be called with every change to stored state
	// that caches keep (see Change), once per applied batch that makes it,
	// in the order of the batches for any one object. fn is called while
	// the writing unit's locks are held: it must be quick and must not
	// call the store. Watch is called before the store serves; fn may be
	// called concurrently for unrelated objects.
	Watch(fn func(Change))

	// NewBatch starts a batch of writes outside a unit of work, for writes
	// that read nothing first (an outbox record, the admin token). The
	// caller MUST Close it.
	NewBatch() Batch

	// Checkpoint writes a consistent copy of the store into dir, which must
	// not exist. Safe while serving.
	Checkpoint(dir string) error
	// Healthy returns an error when the store cannot serve.
	Healthy() error
	Close() error
}

// SharedStore is implemented by a Store that several processes (nodes)
// share, such as PostgreSQL: the engine then draws no conclusion about
// stored state from what its own process saw, e.g. that a platform has no
// plugin state because none was there when its policy was loaded.
type SharedStore interface {
	Store
	// Shared reports whether other processes may write the store.
	Shared() bool
}

// shared reports whether s is shared by several processes.
func shared(s Store) bool {
	ss, ok := s.(SharedStore)
	return ok && ss.Shared()
}

// OutboxLeaser is implemented by a store that several processes share:
// an outbox entry is delivered only by the process that holds its lease.
type OutboxLeaser interface {
	// LeaseOutbox leases every entry of ids for d to the caller, or none
	// (false) when one of them is gone or leased by another process
	// already. A lease ends at its end, or when its entry is rewritten
	// (PutOutbox) or deleted.
	LeaseOutbox(ctx context.Context, ids []string, d time.Duration) (bool, error)
}

// Tx is what a unit of work (Store.Update) reads and writes through.
type Tx interface {
	Reader
	Writer
}

// Reader is the read side of the store.
type Reader interface {
	// AdminTokenHash returns the stored SHA-256 of the operator admin token.
	AdminTokenHash(ctx context.Context) ([32]byte, error)

	Platform(ctx context.Context, id string) (*Platform, error)
	Platforms(ctx context.Context, p Page) ([]*Platform, bool, error)

	// KeyBySecretHash finds the key record whose secret hashes to h.
	KeyBySecretHash(ctx context.Context, h [32]byte) (*Key, error)
	// KeysByPublishable returns every key record carrying pk (a rotation
	// keeps the publishable key); ENOTFOUND when there is none.
	KeysByPublishable(ctx context.Context, pk string) ([]*Key, error)
	Key(ctx context.Context, platformID, id string) (*Key, error)
	// Keys lists a platform's key records, oldest first.
	Keys(ctx context.Context, platformID string) ([]*Key, error)

	// Tiers returns a tenant's tier config.
	Tiers(ctx context.Context, t Tenant) (*TierConfig, error)

	Customer(ctx context.Context, t Tenant, id string) (*Customer, error)
	// CustomerShared is Customer for a caller that only reads the result,
	// which may be shared with other callers and MUST NOT be changed.
	CustomerShared(ctx context.Context, t Tenant, id string) (*Customer, error)
	// CustomerIDByEmail returns the id of the customer with email
	// (lowercased), or ENOTFOUND.
	CustomerIDByEmail(ctx context.Context, t Tenant, email string) (string, error)
	Customers(ctx context.Context, t Tenant, p Page) ([]*Customer, bool, error)
	// PlatformQuotas returns a platform's own quotas (quota.go), or
	// ENOTFOUND when the operator set none.
	PlatformQuotas(ctx context.Context, platformID string) (*PlatformQuotas, error)
	// Aggregates returns t's customer aggregates (stats.go), or ENOTFOUND
	// when none are stored (a store from before they were kept).
	Aggregates(ctx context.Context, t Tenant) (*Aggregates, error)

	// Counter returns a usage counter; a zero Counter (no error) when absent.
	Counter(ctx context.Context, k CounterKey) (Counter, error)
	// Periods lists every stored counter of a customer, by feature then period.
	Periods(ctx context.Context, t Tenant, customerID string) ([]Period, error)
	// HasPolicyState reports whether any customer of the platform (either
	// mode) has plugin state stored.
	HasPolicyState(ctx context.Context, platformID string) (bool, error)
	// PolicyState returns a customer's plugin state for feature; nil when none.
	PolicyState(ctx context.Context, t Tenant, customerID, feature string) ([]byte, error)

	// Idempotency returns the record stored under key, or ENOTFOUND.
	Idempotency(ctx context.Context, t Tenant, key string) (*IdemRecord, error)
	// ExpireIdempotency deletes every idempotency record created before
	// before and returns how many there were.
	ExpireIdempotency(ctx context.Context, before time.Time) (int, error)

	// Outbox lists a page of outbox entries, oldest first, and reports
	// whether more follow.
	Outbox(ctx context.Context, p Page) ([]*OutboxEntry, bool, error)
	// AllowedOrigins returns a platform's CORS origins; nil when none.
	AllowedOrigins(ctx context.Context, platformID string) ([]string, error)
	// OriginAllowedAnywhere reports whether some platform allows origin
	// (normalized) or "*".
	OriginAllowedAnywhere(ctx context.Context, origin string) (bool, error)

	// PluginSettings returns a platform's plugin settings, or ENOTFOUND.
	PluginSettings(ctx context.Context, t Tenant) (*PluginSettings, error)
	// PluginVersions lists a platform's uploaded versions, oldest first.
	PluginVersions(ctx context.Context, t Tenant) ([]*PluginVersion, error)
	// PluginModule returns the module bytes of a version, or ENOTFOUND.
	PluginModule(ctx context.Context, t Tenant, version string) ([]byte, error)

	// StripeStore reads Stripe connections, catalogs and event records.
	StripeStore
	// WebhookStore reads webhook endpoints, events and deliveries.
	WebhookStore
	// DeveloperStore reads developer accounts and dashboard sessions.
	DeveloperStore
	// UsageDayStore reads daily usage rollups (usage_days.go).
	UsageDayStore
	// AuthStore reads end-user passwords, sessions and signing keys (auth.go).
	AuthStore
}

// Batch is one logical change. All its writes become visible and durable
// together, or not at all. Put methods cannot fail one by one: the first
// problem (a value that does not encode) is returned by Commit or Apply,
// which then write nothing.
type Batch interface {
	Writer
	// Empty reports whether nothing has been written to the batch.
	Empty() bool

	// Commit writes the batch and returns once it is durable.
	Commit() error
	// Apply makes the batch visible to readers in the order Apply is called,
	// without waiting for durability; Wait then blocks until it is durable.
	// Apply is cheap enough to call under a lock; Wait is not.
	Apply() error
	Wait() error
	// Close releases the batch. Safe after Commit or Wait, and on a batch
	// that was never committed.
	Close()
}

// Writer is the write side of a batch or a unit of work. Writes cannot
// fail one by one: the first problem (a value that does not encode) fails
// the whole batch when it is applied.
type Writer interface {
	PutAdminTokenHash(h [32]byte)
	PutPlatform(p *Platform)
	// PutKey writes a key record and its secret-hash and publishable indexes.
	PutKey(k *Key)
	PutTiers(t Tenant, c *TierConfig)
	// PutCustomer writes c; prevEmail is its stored email ("" when new), so
	// the email index follows a change.
	PutCustomer(t Tenant, c *Customer, prevEmail string)
	// DeleteCustomer removes c and its email index; usage history stays.
	DeleteCustomer(t Tenant, c *Customer)
	// PutPlatformQuotas writes a platform's own quotas.
	PutPlatformQuotas(platformID string, q *PlatformQuotas)
	// PutAggregates writes t's customer aggregates.
	PutAggregates(t Tenant, a *Aggregates)
	PutCounter(k CounterKey, c Counter)
	PutPolicyState(t Tenant, customerID, feature string, state []byte)
	PutIdempotency(t Tenant, key string, r *IdemRecord)
	// PutOutbox writes (or rewrites) an outbox entry.
	PutOutbox(e *OutboxEntry)
	DeleteOutbox(id string)
	// PutAllowedOrigins replaces a platform's CORS origins; prev are the
	// stored ones, whose index entries go.
	PutAllowedOrigins(platformID string, origins, prev []string)
	PutPluginVersion(t Tenant, v *PluginVersion, wasm []byte)
	// DeletePluginVersion removes a version's record and its module bytes.
	DeletePluginVersion(t Tenant, version string)
	PutPluginSettings(t Tenant, s *PluginSettings)
	// StripeBatch writes Stripe connections, catalogs and event records.
	StripeBatch
	// WebhookBatch writes webhook endpoints, events and deliveries.
	WebhookBatch
	// DeveloperBatch writes developer accounts and dashboard sessions.
	DeveloperBatch
	// UsageDayBatch writes daily usage rollups.
	UsageDayBatch
	// AuthBatch writes end-user passwords, sessions and signing keys.
	AuthBatch
}

// Lock names what a unit of work holds alone while it reads and writes.
// Its zero fields are part of its identity: a lock of a platform's tier
// config is Lock{Kind: LockTiers, Platform: id}.
type Lock struct {
	Kind     LockKind
	Mode     Mode
	Platform string
	// ID is the object within the platform: a customer id, an email.
	ID string
	// Feature is a usage counter's feature (LockCounter).
	Feature string
}

// LockKind says what a Lock guards.
type LockKind uint8

// The kinds of lock.
const (
	// LockCounter: one customer's counter and policy state of one feature.
	LockCounter LockKind = iota + 1
	// LockCustomer: one customer record.
	LockCustomer
	// LockEmail: an email within a platform and mode (uniqueness).
	LockEmail
	// LockTiers: a platform's tier config and the plans customers are on.
	LockTiers
	// LockKeys: a platform's key records.
	LockKeys
	// LockPlugin: a platform's plugin versions and settings.
	LockPlugin
	// LockCORS: a platform's CORS origins.
	LockCORS
	// LockStripe: a platform's Stripe connection in one mode.
	LockStripe
	// LockPlatformBilling: a platform's subscription to the operator.
	LockPlatformBilling
	// LockPlatform: a platform record.
	LockPlatform
	// LockQuotas: a platform's own quotas.
	LockQuotas
	// LockWebhook: a webhook endpoint and its deliveries (ID set), or the
	// set of a tenant's endpoints (ID empty).
	LockWebhook
	// LockDeveloper: a developer account (ID is its id).
	LockDeveloper
	// LockDeveloperEmail: an email among developer accounts (uniqueness).
	LockDeveloperEmail
	// LockUsageDay: one shard of a tenant's daily rollup of a feature.
	LockUsageDay
	// LockSigningKeys: the server's end-user token signing keys.
	LockSigningKeys
	// LockStripeEventLog: a tenant's log of recent Stripe events.
	LockStripeEventLog
	// LockIdempotency: one idempotency key of a tenant (ID), for a
	// record read and written in a unit of work (the events of
	// POST /api/track/batch).
	LockIdempotency
)

// Change is one change to stored state that the engine keeps a copy of in
// memory, as a Store's Watch listener is told it. Exactly one of the
// pointer fields is set; the listener MUST NOT change what they point at.
type Change struct {
	PlatformID string
	// Mode is the tenant's mode for per-mode state (tiers, plugin settings).
	Mode           Mode
	Tiers          *TierConfig
	Key            *Key
	PluginSettings *PluginSettings
	Billing        *PlatformBilling
	Quotas         *PlatformQuotas
	// WebhookDelivery is a delivery written pending: the worker is woken.
	WebhookDelivery *WebhookDelivery
	SigningKey      *SigningKey
	// Platform is a written platform record: key authentication follows
	// its suspension (Keys).
	Platform *Platform
}
