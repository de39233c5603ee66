package engine

import (
	"context"
	"crypto/subtle"
	"strings"
	"sync"
	"time"
)

// Key prefixes. A secret key is its prefix and 48 hex characters.
const (
	prefixSecretLive      = "sk_live_"
	prefixSecretTest      = "sk_test_"
	prefixPublishableLive = "pk_live_"
	prefixPublishableTest = "pk_test_"
	secretRandLen         = 48
)

// lastUsedEvery is how often a key's lastUsedAt is written back at most.
const lastUsedEvery = time.Minute

// Keys authenticates and manages platforms' key records.
type Keys struct {
	c     *core
	grace time.Duration

	// cache holds key records by secret hash. It is filled on a miss only
	// where it has no entry, and every stored change of a record replaces
	// its entry while the writing unit holds the platform's key lock
	// (core.changed): a revoke is in the cache before Revoke returns.
	mu    sync.RWMutex // guards cache and suspended
	cache map[[32]byte]*cachedKey
	// suspended holds, by platform id, whether the operator suspended the
	// platform (Platforms.Suspend). Like cache it is filled on a miss only
	// where it has no entry, and every stored platform record replaces its
	// entry while the writing unit holds the platform's lock
	// (core.changed; on PostgreSQL other nodes' writes arrive through the
	// change log), so that a suspension is in force when Suspend returns.
	suspended map[string]bool
}

type cachedKey struct {
	key       Key // immutable copy; replaced, never mutated
	persisted time.Time
	lastUsed  time.Time
}

// KeyPair is a newly made key record with its secret, shown once.
type KeyPair struct {
	Key            *Key   `json:"key"`
	PublishableKey string `json:"publishableKey"`
	SecretKey      string `json:"secretKey"`
}

func newKeyPair(platformID string, mode Mode, pk string, now time.Time) KeyPair {
	sp, pp := prefixSecretLive, prefixPublishableLive
	if mode == Test {
		sp, pp = prefixSecretTest, prefixPublishableTest
	}
	if pk == "" {
		pk = newSecret(pp)
	}
	secret := newSecret(sp)
	k := &Key{
		ID:             NewID("key_", now),
		PlatformID:     platformID,
		Mode:           mode,
		PublishableKey: pk,
		SecretHash:     HashSecret(secret),
		SecretHint:     sp + "…" + secret[len(secret)-4:],
		CreatedAt:      now,
	}
	return KeyPair{Key: k, PublishableKey: pk, SecretKey: secret}
}

// Authenticate returns the key record of a secret key. Returns
// EINVALIDAPIKEY when the key is malformed, unknown, revoked or expired, and
// EFORBIDDEN when it is a publishable key (not allowed where a secret is).
func (s *Keys) Authenticate(ctx context.Context, secret string) (*Key, error) {
	if strings.HasPrefix(secret, "pk_live_") || strings.HasPrefix(secret, "pk_test_") {
		return nil, Errorf(EFORBIDDEN, "A publishable key cannot be used here; use your secret key.")
	}
	if !wellFormedSecret(secret) {
		return nil, Errorf(EINVALIDAPIKEY, "Invalid API key.")
	}
	h := HashSecret(secret)
	now := s.c.now()

	s.mu.RLock()
	ck := s.cache[h]
	var stopped, known bool
	if ck != nil {
		stopped, known = s.suspended[ck.key.PlatformID]
	}
	s.mu.RUnlock()
	if ck == nil {
		k, err := s.c.store.KeyBySecretHash(ctx, h)
		if ErrorCode(err) == ENOTFOUND {
			return nil, Errorf(EINVALIDAPIKEY, "Invalid API key.")
		} else if err != nil {
			return nil, err
		}
		s.mu.Lock()
		if ck = s.cache[h]; ck == nil {
			ck = &cachedKey{key: *k, persisted: now}
			s.cache[h] = ck
		}
		s.mu.Unlock()
	}
	// The map lookup found the hash; compare in constant time all the same,
	// so that the comparison itself never leaks a prefix.
	if subtle.ConstantTimeCompare(ck.key.SecretHash[:], h[:]) != 1 {
		return nil, Errorf(EINVALIDAPIKEY, "Invalid API key.")
	}
	if !ck.key.Active(now) {
		return nil, Errorf(EINVALIDAPIKEY, "This API key has been revoked or has expired.")
	}
	if !known {
		var err error
		if stopped, err = s.platformSuspended(ctx, ck.key.PlatformID); err != nil {
			return nil, err
		}
	}
	if stopped {
		return nil, errSuspended()
	}
	if now.Sub(ck.persisted) >= lastUsedEvery {
		s.touch(h, now)
	}
	return &ck.key, nil
}

// touch writes lastUsedAt back in the background, at most once a minute.
func (s *Keys) touch(h [32]byte, now time.Time) {
	s.mu.Lock()
	ck := s.cache[h]
	if ck == nil || now.Sub(ck.persisted) < lastUsedEvery {
		s.mu.Unlock()
		return
	}
	k := ck.key
	t := now.UTC()
	k.LastUsedAt = &t
	s.cache[h] = &cachedKey{key: k, persisted: now}
	s.mu.Unlock()
	go func() {
		// Write only onto what is stored, under the key lock: a revoke or
		// rotation in between wins.
		ctx := context.Background()
		_, err := s.c.store.Update(ctx, []Lock{keysLock(k.PlatformID)}, func(tx Tx) (any, error) {
			cur, err := tx.KeyBySecretHash(ctx, h)
			if err != nil || cur.RevokedAt != nil {
				return nil, nil
			}
			cur.LastUsedAt = &t
			tx.PutKey(cur)
			return nil, nil
		})
		if err != nil {
			s.c.log.Warn("key lastUsedAt write failed", "key", k.ID, "err", err)
		}
	}()
}

func wellFormedSecret(s string) bool {
	if !strings.HasPrefix(s, prefixSecretLive) && !strings.HasPrefix(s, prefixSecretTest) {
		return false
	}
	r := s[len(prefixSecretLive):]
	if len(r) != secretRandLen {
		return false
	}
	for i := 0; i < len(r); i++ {
		if !('0' <= r[i] && r[i] <= '9' || 'a' <= r[i] && r[i] <= 'f') {
			return false
		}
	}
	return true
}

// AuthenticatePublishable returns the tenant of a publishable key. Returns
// EINVALIDAPIKEY when no active key record carries it.
func (s *Keys) AuthenticatePublishable(ctx context.Context, pk string) (Tenant, error) {
	if !strings.HasPrefix(pk, prefixPublishableLive) && !strings.HasPrefix(pk, prefixPublishableTest) || len(pk) > 100 {
		return Tenant{}, Errorf(EINVALIDAPIKEY, "Invalid publishable key.")
	}
	keys, err := s.c.store.KeysByPublishable(ctx, pk)
	if ErrorCode(err) == ENOTFOUND {
		return Tenant{}, Errorf(EINVALIDAPIKEY, "Invalid publishable key.")
	} else if err != nil {
		return Tenant{}, err
	}
	now := s.c.now()
	for _, k := range keys {
		if k.Active(now) {
			if stopped, err := s.platformSuspended(ctx, k.PlatformID); err != nil {
				return Tenant{}, err
			} else if stopped {
				return Tenant{}, errSuspended()
			}
			return k.Tenant(), nil
		}
	}
	return Tenant{}, Errorf(EINVALIDAPIKEY, "This publishable key has been revoked or has expired.")
}

// List returns the key records of a tenant, oldest first. Secrets are never
// part of a record.
func (s *Keys) List(ctx context.Context, t Tenant) ([]*Key, error) {
	all, err := s.c.store.Keys(ctx, t.PlatformID)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, k := range all {
		if k.Mode == t.Mode {
			out = append(out, k)
		}
	}
	return out, nil
}

// CreateKeyInput asks for a new key pair, or for the rotation of one.
type CreateKeyInput struct {
	// Rotate names a key record whose secret is replaced. The new record
	// keeps its publishable key (end users' JWTs carry it); the old secret
	// keeps working for GracePeriodHours.
	Rotate string `json:"rotate"`
	// GracePeriodHours defaults to the engine's KeyGrace (24 h); 0..720.
	GracePeriodHours *int `json:"gracePeriodHours" want:"an integer from 0 to 720"`
}

// Create makes a new key pair in t, or rotates in.Rotate. Returns ENOTFOUND
// when the key to rotate is not t's, EVALIDATION for a bad grace period.
func (s *Keys) Create(ctx context.Context, t Tenant, in CreateKeyInput, idem *Idempotency) (*KeyPair, error) {
	grace := s.grace
	if in.GracePeriodHours != nil {
		if h := *in.GracePeriodHours; h < 0 || h > 720 {
			return nil, invalid("gracePeriodHours", "must be between 0 and 720")
		}
		grace = time.Duration(*in.GracePeriodHours) * time.Hour
	}
	now := s.c.now().UTC()
	res, err := s.c.update(ctx, t, idem, []Lock{keysLock(t.PlatformID)}, func(tx Tx) (any, error) {
		pk := ""
		if in.Rotate != "" {
			// Read under the key lock: a revoke that returned before is
			// seen here, and one that comes after sees this write.
			old, err := s.tenantKey(ctx, tx, t, in.Rotate)
			if err != nil {
				return nil, err
			}
			if old.RevokedAt != nil {
				return nil, invalid("rotate", "key %s is revoked", in.Rotate)
			}
			pk = old.PublishableKey
			exp := now.Add(grace)
			if old.ExpiresAt == nil || exp.Before(*old.ExpiresAt) {
				old.ExpiresAt = &exp
			}
			tx.PutKey(old)
		}
		kp := newKeyPair(t.PlatformID, t.Mode, pk, now)
		tx.PutKey(kp.Key)
		return &kp, nil
	})
	if err != nil {
		return nil, err
	}
	return res.(*KeyPair), nil
}

// Revoke ends a key record at once: after Revoke returns, its secret no
// longer authenticates. Returns ENOTFOUND when the key is not t's.
func (s *Keys) Revoke(ctx context.Context, t Tenant, id string, idem *Idempotency) (*Key, error) {
	res, err := s.c.update(ctx, t, idem, []Lock{keysLock(t.PlatformID)}, func(tx Tx) (any, error) {
		k, err := s.tenantKey(ctx, tx, t, id)
		if err != nil {
			return nil, err
		}
		if k.RevokedAt == nil {
			now := s.c.now().UTC()
			k.RevokedAt = &now
			tx.PutKey(k)
		}
		return k, nil
	})
	if err != nil {
		return nil, err
	}
	return res.(*Key), nil
}

// tenantKey reads key record id of t. Returns ENOTFOUND when it is not t's.
func (s *Keys) tenantKey(ctx context.Context, tx Tx, t Tenant, id string) (*Key, error) {
	k, err := tx.Key(ctx, t.PlatformID, id)
	if ErrorCode(err) == ENOTFOUND || err == nil && k.Mode != t.Mode {
		return nil, Errorf(ENOTFOUND, "No key %s.", id)
	}
	return k, err
}

// replace puts a changed record into the cache (core.changed), replacing
// the cached copy: the stored record wins over any earlier one.
func (s *Keys) replace(k *Key) {
	s.mu.Lock()
	s.cache[k.SecretHash] = &cachedKey{key: *k, persisted: s.c.now()}
	s.mu.Unlock()
}

// errSuspended is the answer to a key of a suspended platform.
func errSuspended() error {
	return Errorf(EFORBIDDEN, "This platform is suspended by the operator of this dream-api server, so its keys are refused; contact the operator.")
}

// platformSuspended reports whether the operator suspended platform id,
// from memory once known. A platform without a record is not suspended.
func (s *Keys) platformSuspended(ctx context.Context, id string) (bool, error) {
	s.mu.RLock()
	stopped, known := s.suspended[id]
	s.mu.RUnlock()
	if known {
		return stopped, nil
	}
	p, err := s.c.store.Platform(ctx, id)
	if err != nil && ErrorCode(err) != ENOTFOUND {
		return false, err
	}
	stopped = err == nil && p.Suspended()
	s.mu.Lock()
	// A stored change that arrived meanwhile (platformChanged) wins.
	if cur, set := s.suspended[id]; set {
		stopped = cur
	} else {
		s.suspended[id] = stopped
	}
	s.mu.Unlock()
	return stopped, nil
}

// platformChanged follows a written platform record (core.changed).
func (s *Keys) platformChanged(p *Platform) {
	s.mu.Lock()
	s.suspended[p.ID] = p.Suspended()
	s.mu.Unlock()
}
