package engine

import (
	"context"
	"time"
)

// Store keeps everything durable. Reads see every batch that has been
// applied, durable or not yet; a caller acknowledges nothing to a client
// before the batch that holds it is durable.
//
// Read methods return an *Error with code ENOTFOUND when the object does not
// exist, unless they say otherwise. Implementations are safe for concurrent use.
type Store interface {
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

	// Tiers returns a platform's tier config.
	Tiers(ctx context.Context, platformID string) (*TierConfig, error)

	Customer(ctx context.Context, t Tenant, id string) (*Customer, error)
	// CustomerShared is Customer for a caller that only reads the result,
	// which may be shared with other callers and MUST NOT be changed.
	CustomerShared(ctx context.Context, t Tenant, id string) (*Customer, error)
	// CustomerIDByEmail returns the id of the customer with email
	// (lowercased), or ENOTFOUND.
	CustomerIDByEmail(ctx context.Context, t Tenant, email string) (string, error)
	Customers(ctx context.Context, t Tenant, p Page) ([]*Customer, bool, error)

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
	PluginSettings(ctx context.Context, platformID string) (*PluginSettings, error)
	// PluginVersions lists a platform's uploaded versions, oldest first.
	PluginVersions(ctx context.Context, platformID string) ([]*PluginVersion, error)
	// PluginModule returns the module bytes of a version, or ENOTFOUND.
	PluginModule(ctx context.Context, platformID, version string) ([]byte, error)

	// StripeStore reads Stripe connections, catalogs and event records.
	StripeStore

	// NewBatch starts a batch of writes; nothing is visible until it is
	// committed or applied. The caller MUST Close it.
	NewBatch() Batch

	// Checkpoint writes a consistent copy of the store into dir, which must
	// not exist. Safe while serving.
	Checkpoint(dir string) error
	// Healthy returns an error when the store cannot serve.
	Healthy() error
	Close() error
}

// Batch is one logical change. All its writes become visible and durable
// together, or not at all. Put methods cannot fail one by one: the first
// problem (a value that does not encode) is returned by Commit or Apply,
// which then write nothing.
type Batch interface {
	// Empty reports whether nothing has been written to the batch.
	Empty() bool
	PutAdminTokenHash(h [32]byte)
	PutPlatform(p *Platform)
	// PutKey writes a key record and its secret-hash and publishable indexes.
	PutKey(k *Key)
	PutTiers(platformID string, c *TierConfig)
	// PutCustomer writes c; prevEmail is its stored email ("" when new), so
	// the email index follows a change.
	PutCustomer(t Tenant, c *Customer, prevEmail string)
	// DeleteCustomer removes c and its email index; usage history stays.
	DeleteCustomer(t Tenant, c *Customer)
	PutCounter(k CounterKey, c Counter)
	PutPolicyState(t Tenant, customerID, feature string, state []byte)
	PutIdempotency(t Tenant, key string, r *IdemRecord)
	// PutOutbox writes (or rewrites) an outbox entry.
	PutOutbox(e *OutboxEntry)
	DeleteOutbox(id string)
	// PutAllowedOrigins replaces a platform's CORS origins; prev are the
	// stored ones, whose index entries go.
	PutAllowedOrigins(platformID string, origins, prev []string)
	PutPluginVersion(platformID string, v *PluginVersion, wasm []byte)
	// DeletePluginVersion removes a version's record and its module bytes.
	DeletePluginVersion(platformID, version string)
	PutPluginSettings(platformID string, s *PluginSettings)
	// StripeBatch writes Stripe connections, catalogs and event records.
	StripeBatch

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
