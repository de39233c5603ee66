package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/dream-api/dream-api/engine"
)

// Developer accounts and their dashboard sessions. Key layout in keys.go.

// developerRecord is a developer as stored: engine.Developer does not
// marshal its password hash.
type developerRecord struct {
	engine.Developer
	Password engine.PasswordHash `json:"password"`
}

// Developer returns a developer account, or ENOTFOUND.
func (s *Store) Developer(ctx context.Context, id string) (*engine.Developer, error) {
	var d *engine.Developer
	found, err := s.get(developerKey(id), func(val []byte) error {
		var r developerRecord
		if err := decodeJSON("developer", val, &r); err != nil {
			return err
		}
		r.Developer.Password = r.Password
		d = &r.Developer
		return nil
	})
	if err == nil && !found {
		err = engine.Errorf(engine.ENOTFOUND, "No developer %s.", id)
	}
	return d, err
}

// DeveloperIDByEmail returns the id of the developer with email, or
// ENOTFOUND.
func (s *Store) DeveloperIDByEmail(ctx context.Context, email string) (string, error) {
	var id []byte
	found, err := s.get(developerEmailKey(email), func(val []byte) (err error) {
		id, err = decodeBytes("developer email index", val)
		return err
	})
	if err == nil && (!found || len(id) == 0) {
		err = engine.Errorf(engine.ENOTFOUND, "No developer with that email.")
	}
	return string(id), err
}

// Session returns the session whose token hashes to h, or ENOTFOUND.
func (s *Store) Session(ctx context.Context, h [32]byte) (*engine.Session, error) {
	var sess *engine.Session
	found, err := s.get(sessionKey(h), func(val []byte) error {
		sess = new(engine.Session)
		return decodeJSON("session", val, sess)
	})
	if err == nil && !found {
		err = engine.Errorf(engine.ENOTFOUND, "No session.")
	}
	if sess != nil {
		sess.TokenHash = h
	}
	return sess, err
}

// Sessions calls fn with every stored session.
func (s *Store) Sessions(ctx context.Context, fn func(*engine.Session) error) error {
	prefix := prefixOf(makeKey(prefixSession))
	return s.scan(ctx, prefix, prefixEnd(prefix), func(key, val []byte) error {
		sess := new(engine.Session)
		if err := decodeJSON("session", val, sess); err != nil {
			return err
		}
		if len(key) != len(prefix)+32 {
			return fmt.Errorf("%w: session key %q", ErrFormat, key)
		}
		copy(sess.TokenHash[:], key[len(prefix):])
		return fn(sess)
	})
}

// PutDeveloper writes d and its email index; prevEmail's entry goes when
// the email changed.
func (b *batch) PutDeveloper(d *engine.Developer, prevEmail string) {
	if !b.check(d.ID, d.Email) {
		return
	}
	val, err := encodeJSON(developerRecord{Developer: *d, Password: d.Password})
	b.setEncoded(developerKey(d.ID), val, err)
	if prevEmail != "" && prevEmail != d.Email {
		b.delete(developerEmailKey(prevEmail))
	}
	b.set(developerEmailKey(d.Email), encodeBytes([]byte(d.ID)))
}

// PutSession writes a session under the hash of its token.
func (b *batch) PutSession(sess *engine.Session) {
	if b.check(sess.DeveloperID) {
		val, err := encodeJSON(sess)
		b.setEncoded(sessionKey(sess.TokenHash), val, err)
	}
}

// DeleteSession removes the session whose token hashes to h.
func (b *batch) DeleteSession(h [32]byte) { b.delete(sessionKey(h)) }

// UsageDay returns a shard of a daily rollup; zero when absent.
// It is read on every track: no closure, one key.
func (s *Store) UsageDay(ctx context.Context, k engine.DayKey) (engine.DayCount, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return engine.DayCount{}, ErrClosed
	}
	val, closer, err := s.db.Get(usageDayKey(k))
	if errors.Is(err, pebble.ErrNotFound) {
		return engine.DayCount{}, nil
	} else if err != nil {
		return engine.DayCount{}, fmt.Errorf("storage: get: %w", err)
	}
	defer closer.Close()
	return decodeDayCount(val)
}

// UsageDays calls fn with every stored shard of t's rollups from the date
// from to the date to, both included.
func (s *Store) UsageDays(ctx context.Context, t engine.Tenant, from, to string, fn func(engine.DayKey, engine.DayCount) error) error {
	lo, hi := usageDaysRange(t, from, to)
	return s.scan(ctx, lo, hi, func(key, val []byte) error {
		k, err := parseUsageDayKey(t, key)
		if err != nil {
			return err
		}
		c, err := decodeDayCount(val)
		if err != nil {
			return err
		}
		return fn(k, c)
	})
}

// PutUsageDay writes a shard of a daily rollup.
func (b *batch) PutUsageDay(k engine.DayKey, c engine.DayCount) {
	if b.check(k.PlatformID, k.Date, k.Feature) {
		b.set(usageDayKey(k), encodeDayCount(c))
	}
}

// A day count is two big-endian int64: count, denied.
func encodeDayCount(c engine.DayCount) []byte {
	b := binary.BigEndian.AppendUint64([]byte{formatV1}, uint64(c.Count))
	return binary.BigEndian.AppendUint64(b, uint64(c.Denied))
}

func decodeDayCount(val []byte) (engine.DayCount, error) {
	p, err := payload("usage day", val)
	if err != nil {
		return engine.DayCount{}, err
	}
	if len(p) != 16 {
		return engine.DayCount{}, fmt.Errorf("%w: usage day is %d bytes", ErrFormat, len(p))
	}
	return engine.DayCount{Count: int64(binary.BigEndian.Uint64(p)), Denied: int64(binary.BigEndian.Uint64(p[8:]))}, nil
}
