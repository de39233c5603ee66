package engine

import (
	"context"
	"crypto/subtle"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"
)

// adminTenant scopes the operator's idempotency keys.
var adminTenant = Tenant{PlatformID: "admin"}

// Platforms manages platforms and the operator's admin token.
type Platforms struct {
	c *core
}

// CreatePlatformInput is the body of POST /admin/platforms.
type CreatePlatformInput struct {
	Name  string `json:"name"`
	Email string `json:"email"`
}

// Validate reports every problem of in.
func (in *CreatePlatformInput) Validate() error {
	var v Validation
	in.Name = strings.TrimSpace(in.Name)
	if in.Name == "" {
		v.Add("name", "is required")
	} else if utf8.RuneCountInString(in.Name) > 200 {
		v.Add("name", "must be at most 200 characters")
	}
	if in.Email != "" {
		if _, err := normalizeEmail(in.Email); err != nil {
			v.Add("email", "%s", err)
		}
	}
	return v.Err()
}

// NewPlatform is a created platform with its first keys, shown once.
type NewPlatform struct {
	Platform       *Platform `json:"platform"`
	PublishableKey string    `json:"publishableKey"`
	SecretKey      string    `json:"secretKey"`
	Test           struct {
		PublishableKey string `json:"publishableKey"`
		SecretKey      string `json:"secretKey"`
	} `json:"test"`
}

// Create makes a platform with the default tiers and a live and a test key
// pair. Returns EVALIDATION for a bad input.
func (s *Platforms) Create(ctx context.Context, in CreatePlatformInput, idem *Idempotency) (*NewPlatform, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	now := s.c.now().UTC()
	res, err := s.c.update(ctx, adminTenant, idem, nil, func(b Tx) (any, error) {
		return s.put(b, in, now), nil
	})
	if err != nil {
		return nil, err
	}
	return res.(*NewPlatform), nil
}

// put writes a new platform of a validated in into b: the record, its
// live and test key pairs and the default tiers. Developers.Signup makes
// one in the same unit as its account.
func (s *Platforms) put(b Writer, in CreatePlatformInput, now time.Time) *NewPlatform {
	p := &Platform{ID: NewID("plt_", now), Name: in.Name, Email: strings.ToLower(in.Email), CreatedAt: now}
	live := newKeyPair(p.ID, Live, "", now)
	test := newKeyPair(p.ID, Test, "", now)
	b.PutPlatform(p)
	b.PutKey(live.Key)
	b.PutKey(test.Key)
	b.PutTiers(Tenant{PlatformID: p.ID, Mode: Live}, DefaultTiers())
	b.PutTiers(Tenant{PlatformID: p.ID, Mode: Test}, DefaultTiers())
	np := &NewPlatform{Platform: p, PublishableKey: live.PublishableKey, SecretKey: live.SecretKey}
	np.Test.PublishableKey, np.Test.SecretKey = test.PublishableKey, test.SecretKey
	return np
}

// Get returns a platform, or ENOTFOUND.
func (s *Platforms) Get(ctx context.Context, id string) (*Platform, error) {
	return s.c.store.Platform(ctx, id)
}

// List returns a page of platforms, oldest first.
func (s *Platforms) List(ctx context.Context, p Page) ([]*Platform, bool, error) {
	if err := p.validate(); err != nil {
		return nil, false, err
	}
	return s.c.store.Platforms(ctx, p)
}

// SuspendInput is the body of POST /admin/platforms/{id}/suspend.
type SuspendInput struct {
	// Reason is the operator's note (at most 500 characters); optional.
	Reason string `json:"reason"`
}

// Validate reports every problem of in.
func (in *SuspendInput) Validate() error {
	var v Validation
	in.Reason = strings.TrimSpace(in.Reason)
	if utf8.RuneCountInString(in.Reason) > 500 {
		v.Add("reason", "must be at most 500 characters")
	}
	return v.Err()
}

// Suspend stops a platform, as one unit of work: from when it returns,
// every request with one of its keys (secret or publishable, live or test)
// and every end-user token of its customers is refused with EFORBIDDEN, on
// every node. Nothing is deleted: its Stripe webhooks keep being applied
// (billing is never lost) and Resume undoes it. Suspending a suspended
// platform keeps its SuspendedAt and replaces the reason when one is
// given. Returns ENOTFOUND for an unknown platform, EVALIDATION for a bad
// reason.
func (s *Platforms) Suspend(ctx context.Context, id string, in SuspendInput, idem *Idempotency) (*Platform, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	return s.setSuspended(ctx, id, idem, func(p *Platform) bool {
		changed := false
		if p.SuspendedAt == nil {
			now := s.c.now().UTC()
			p.SuspendedAt, changed = &now, true
		}
		if in.Reason != "" && in.Reason != p.SuspendedReason {
			p.SuspendedReason, changed = in.Reason, true
		}
		return changed
	})
}

// Resume ends a platform's suspension, as one unit of work: its keys work
// again when it returns, on every node. Resuming a platform that is not
// suspended changes nothing. Returns ENOTFOUND for an unknown platform.
func (s *Platforms) Resume(ctx context.Context, id string, idem *Idempotency) (*Platform, error) {
	return s.setSuspended(ctx, id, idem, func(p *Platform) bool {
		if p.SuspendedAt == nil && p.SuspendedReason == "" {
			return false
		}
		p.SuspendedAt, p.SuspendedReason = nil, ""
		return true
	})
}

// setSuspended reads platform id under its lock, lets change edit it and
// writes it when change reports a change. The store tells the key cache
// (core.changed) while the lock is held.
func (s *Platforms) setSuspended(ctx context.Context, id string, idem *Idempotency, change func(p *Platform) bool) (*Platform, error) {
	if id == "" || len(id) > 100 {
		return nil, Errorf(ENOTFOUND, "No platform %q.", id)
	}
	res, err := s.c.update(ctx, adminTenant, idem, []Lock{platformLock(id)}, func(tx Tx) (any, error) {
		p, err := tx.Platform(ctx, id)
		if ErrorCode(err) == ENOTFOUND {
			return nil, Errorf(ENOTFOUND, "No platform %q.", id)
		} else if err != nil {
			return nil, err
		}
		if change(p) {
			tx.PutPlatform(p)
		}
		return p, nil
	})
	if err != nil {
		return nil, err
	}
	return res.(*Platform), nil
}

// EnsureAdminToken makes the operator's admin token. With a given token its
// hash is stored (replacing an earlier one) and "" returned; without one, a
// token is generated and returned on first start only, to be shown once.
func (s *Platforms) EnsureAdminToken(ctx context.Context, given string) (generated string, err error) {
	b := s.c.store.NewBatch()
	defer b.Close()
	if given != "" {
		h := HashSecret(given)
		if cur, err := s.c.store.AdminTokenHash(ctx); err == nil && cur == h {
			return "", nil
		}
		b.PutAdminTokenHash(h)
		return "", b.Commit()
	}
	if _, err := s.c.store.AdminTokenHash(ctx); err == nil {
		return "", nil
	} else if ErrorCode(err) != ENOTFOUND {
		return "", err
	}
	token := newSecret("dat_")
	b.PutAdminTokenHash(HashSecret(token))
	if err := b.Commit(); err != nil {
		return "", err
	}
	return token, nil
}

// AuthenticateAdmin checks the operator's admin token in constant time.
// Returns EINVALIDAPIKEY when it does not match.
func (s *Platforms) AuthenticateAdmin(ctx context.Context, token string) error {
	want, err := s.c.store.AdminTokenHash(ctx)
	if err != nil && ErrorCode(err) != ENOTFOUND {
		return err
	}
	got := HashSecret(token)
	if token == "" || err != nil || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		return Errorf(EINVALIDAPIKEY, "Invalid admin token.")
	}
	return nil
}

// Backup writes a consistent copy of the store into dir.
func (s *Platforms) Backup(ctx context.Context, dir string) error {
	if dir == "" || !strings.HasPrefix(dir, "/") {
		return invalid("dir", "must be an absolute path")
	}
	if _, err := os.Stat(dir); err == nil {
		return invalid("dir", "%s already exists; a backup goes into a new directory", dir)
	}
	if fi, err := os.Stat(filepath.Dir(dir)); err != nil || !fi.IsDir() {
		return invalid("dir", "the parent directory of %s does not exist", dir)
	}
	return s.c.store.Checkpoint(dir)
}

// DefaultPageLimit is a list's page size when none is asked for.
const DefaultPageLimit = 20

func (p *Page) validate() error {
	if p.Limit == 0 {
		p.Limit = DefaultPageLimit
	}
	if p.Limit < 1 || p.Limit > 100 {
		return invalid("limit", "must be between 1 and 100")
	}
	return nil
}
