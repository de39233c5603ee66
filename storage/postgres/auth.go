package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/dream-api/dream-api/engine"
	"github.com/jackc/pgx/v5"
)

// End-user sign-in: passwords, sessions, password resets and the server's
// token signing keys, stored as the Pebble store stores them
// (storage/auth.go).

// CustomerPassword returns a customer's password record, or ENOTFOUND.
func (r reader) CustomerPassword(ctx context.Context, t engine.Tenant, customerID string) (*engine.CustomerPassword, error) {
	p := new(engine.CustomerPassword)
	err := r.oneJSON(ctx, "password", p, engine.Errorf(engine.ENOTFOUND, "No password for %q.", customerID),
		`SELECT record FROM customer_passwords WHERE platform = $1 AND mode = $2 AND customer = $3`, t.PlatformID, mode(t.Mode), customerID)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// SignInSession returns a sign-in session, or ENOTFOUND.
func (r reader) SignInSession(ctx context.Context, id string) (*engine.SignInSession, error) {
	s := new(engine.SignInSession)
	err := r.oneJSON(ctx, "sign-in session", s, engine.Errorf(engine.ENOTFOUND, "No session %q.", id),
		`SELECT record FROM signin_sessions WHERE id = $1`, id)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// SignInSessions lists a customer's sessions by id.
func (r reader) SignInSessions(ctx context.Context, t engine.Tenant, customerID string) ([]*engine.SignInSession, error) {
	out := []*engine.SignInSession{}
	err := r.each(ctx, `SELECT record FROM signin_sessions WHERE platform = $1 AND mode = $2 AND customer = $3 ORDER BY id`,
		[]any{t.PlatformID, mode(t.Mode), customerID}, func(rows pgx.Rows) error {
			var raw []byte
			if err := rows.Scan(&raw); err != nil {
				return err
			}
			s := new(engine.SignInSession)
			if err := json.Unmarshal(raw, s); err != nil {
				return fmt.Errorf("postgres: sign-in session: %w", err)
			}
			out = append(out, s)
			return nil
		})
	return out, err
}

// PasswordReset returns a password reset, or ENOTFOUND.
func (r reader) PasswordReset(ctx context.Context, id string) (*engine.PasswordReset, error) {
	p := new(engine.PasswordReset)
	err := r.oneJSON(ctx, "password reset", p, engine.Errorf(engine.ENOTFOUND, "No reset %q.", id),
		`SELECT record FROM password_resets WHERE id = $1`, id)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// SigningKeys lists every signing key, oldest first (ids sort by time).
func (r reader) SigningKeys(ctx context.Context) ([]*engine.SigningKey, error) {
	var out []*engine.SigningKey
	err := r.each(ctx, `SELECT record FROM signing_keys ORDER BY id`, nil, func(rows pgx.Rows) error {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return err
		}
		k := new(engine.SigningKey)
		if err := json.Unmarshal(raw, k); err != nil {
			return fmt.Errorf("postgres: signing key: %w", err)
		}
		out = append(out, k)
		return nil
	})
	return out, err
}

// PutCustomerPassword writes a customer's password record.
func (w *writer) PutCustomerPassword(t engine.Tenant, customerID string, p *engine.CustomerPassword) {
	if b, ok := w.jsonOf(p); ok && w.ok(t.PlatformID, customerID) {
		w.exec(`INSERT INTO customer_passwords (platform, mode, customer, record) VALUES ($1, $2, $3, $4)
			ON CONFLICT (platform, mode, customer) DO UPDATE SET record = EXCLUDED.record`, t.PlatformID, mode(t.Mode), customerID, b)
	}
}

// DeleteCustomerPassword removes a customer's password record.
func (w *writer) DeleteCustomerPassword(t engine.Tenant, customerID string) {
	if w.ok(t.PlatformID, customerID) {
		w.exec(`DELETE FROM customer_passwords WHERE platform = $1 AND mode = $2 AND customer = $3`, t.PlatformID, mode(t.Mode), customerID)
	}
}

// PutSignInSession writes a sign-in session.
func (w *writer) PutSignInSession(s *engine.SignInSession) {
	if b, ok := w.jsonOf(s); ok && w.ok(s.ID, s.PlatformID, s.CustomerID) {
		w.exec(`INSERT INTO signin_sessions (id, platform, mode, customer, record) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (id) DO UPDATE SET platform = EXCLUDED.platform, mode = EXCLUDED.mode,
			customer = EXCLUDED.customer, record = EXCLUDED.record`, s.ID, s.PlatformID, mode(s.Mode), s.CustomerID, b)
	}
}

// DeleteSignInSession removes a sign-in session.
func (w *writer) DeleteSignInSession(s *engine.SignInSession) {
	if w.ok(s.ID) {
		w.exec(`DELETE FROM signin_sessions WHERE id = $1`, s.ID)
	}
}

// PutPasswordReset writes a password reset.
func (w *writer) PutPasswordReset(p *engine.PasswordReset) {
	if b, ok := w.jsonOf(p); ok && w.ok(p.ID) {
		w.exec(`INSERT INTO password_resets (id, record) VALUES ($1, $2)
			ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record`, p.ID, b)
	}
}

// DeletePasswordReset removes a password reset.
func (w *writer) DeletePasswordReset(id string) {
	if w.ok(id) {
		w.exec(`DELETE FROM password_resets WHERE id = $1`, id)
	}
}

// PutSigningKey writes a signing key; every node's Watch listener is told.
func (w *writer) PutSigningKey(k *engine.SigningKey) {
	if b, ok := w.jsonOf(k); ok && w.ok(k.ID) {
		w.exec(`INSERT INTO signing_keys (id, record) VALUES ($1, $2)
			ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record`, k.ID, b)
		w.changes = append(w.changes, engine.Change{SigningKey: k})
	}
}
