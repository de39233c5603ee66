package storage

import (
	"context"

	"github.com/dream-api/dream-api/engine"
)

// End-user sign-in's records (engine.AuthStore, engine.AuthBatch): JSON
// after the format byte, keys in keys.go.

// CustomerPassword returns a customer's password hash, or ENOTFOUND.
func (s *Store) CustomerPassword(ctx context.Context, t engine.Tenant, customerID string) (*engine.CustomerPassword, error) {
	if checkComponents(t.PlatformID, customerID) != nil {
		return nil, engine.Errorf(engine.ENOTFOUND, "No password for %q.", customerID)
	}
	return getJSON[engine.CustomerPassword](s, passwordKey(t, customerID), "password", "No password for %q.", customerID)
}

// SignInSession returns a session, or ENOTFOUND.
func (s *Store) SignInSession(ctx context.Context, id string) (*engine.SignInSession, error) {
	if checkComponents(id) != nil {
		return nil, engine.Errorf(engine.ENOTFOUND, "No session %q.", id)
	}
	return getJSON[engine.SignInSession](s, signInSessionKey(id), "sign-in session", "No session %q.", id)
}

// SignInSessions lists a customer's sessions, oldest first.
func (s *Store) SignInSessions(ctx context.Context, t engine.Tenant, customerID string) ([]*engine.SignInSession, error) {
	if checkComponents(t.PlatformID, customerID) != nil {
		return nil, nil
	}
	var ids []string
	prefix := customerSessionsPrefix(t, customerID)
	err := s.scan(ctx, prefix, prefixEnd(prefix), func(key, _ []byte) error {
		ids = append(ids, string(key[len(prefix):]))
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]*engine.SignInSession, 0, len(ids))
	for _, id := range ids {
		sess, err := s.SignInSession(ctx, id)
		if engine.ErrorCode(err) == engine.ENOTFOUND {
			continue
		} else if err != nil {
			return nil, err
		}
		out = append(out, sess)
	}
	return out, nil
}

// PasswordReset returns an outstanding reset, or ENOTFOUND.
func (s *Store) PasswordReset(ctx context.Context, id string) (*engine.PasswordReset, error) {
	if checkComponents(id) != nil {
		return nil, engine.Errorf(engine.ENOTFOUND, "No reset %q.", id)
	}
	return getJSON[engine.PasswordReset](s, passwordResetKey(id), "password reset", "No reset %q.", id)
}

// SigningKeys lists the stored signing keys, oldest first.
func (s *Store) SigningKeys(ctx context.Context) ([]*engine.SigningKey, error) {
	var ks []*engine.SigningKey
	err := s.scan(ctx, signingKeysPrefix(), prefixEnd(signingKeysPrefix()), func(_, val []byte) error {
		k := new(engine.SigningKey)
		ks = append(ks, k)
		return decodeJSON("signing key", val, k)
	})
	return ks, err
}

// getJSON decodes the JSON record under key, or returns ENOTFOUND with the
// message notFound.
func getJSON[T any](s *Store, key []byte, what, notFound string, args ...any) (*T, error) {
	v := new(T)
	found, err := s.get(key, func(val []byte) error { return decodeJSON(what, val, v) })
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, engine.Errorf(engine.ENOTFOUND, notFound, args...)
	}
	return v, nil
}

// PutCustomerPassword writes a customer's password hash.
func (b *batch) PutCustomerPassword(t engine.Tenant, customerID string, p *engine.CustomerPassword) {
	if b.check(t.PlatformID, customerID) {
		val, err := encodeJSON(p)
		b.setEncoded(passwordKey(t, customerID), val, err)
	}
}

// DeleteCustomerPassword removes a customer's password hash.
func (b *batch) DeleteCustomerPassword(t engine.Tenant, customerID string) {
	if b.check(t.PlatformID, customerID) {
		b.delete(passwordKey(t, customerID))
	}
}

// PutSignInSession writes a session and its entry in the customer's list.
func (b *batch) PutSignInSession(sess *engine.SignInSession) {
	t := sess.Tenant()
	if b.check(sess.ID, t.PlatformID, sess.CustomerID) {
		val, err := encodeJSON(sess)
		b.setEncoded(signInSessionKey(sess.ID), val, err)
		b.set(customerSessionKey(t, sess.CustomerID, sess.ID), encodeBytes(nil))
	}
}

// DeleteSignInSession removes a session and its list entry.
func (b *batch) DeleteSignInSession(sess *engine.SignInSession) {
	t := sess.Tenant()
	if b.check(sess.ID, t.PlatformID, sess.CustomerID) {
		b.delete(signInSessionKey(sess.ID))
		b.delete(customerSessionKey(t, sess.CustomerID, sess.ID))
	}
}

// PutPasswordReset writes an outstanding reset.
func (b *batch) PutPasswordReset(r *engine.PasswordReset) {
	if b.check(r.ID) {
		val, err := encodeJSON(r)
		b.setEncoded(passwordResetKey(r.ID), val, err)
	}
}

// DeletePasswordReset removes a reset.
func (b *batch) DeletePasswordReset(id string) {
	if b.check(id) {
		b.delete(passwordResetKey(id))
	}
}

// PutSigningKey writes a signing key and tells the Watch listener.
func (b *batch) PutSigningKey(k *engine.SigningKey) {
	if b.check(k.ID) {
		val, err := encodeJSON(k)
		b.setEncoded(signingKeyKey(k.ID), val, err)
		b.changed(engine.Change{SigningKey: k})
	}
}
