package engine

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Developer is a person who signs in to the dashboard: the owner of one or
// more platforms. Its password is stored as an argon2id hash with the
// parameters it was made with.
type Developer struct {
	ID        string       `json:"id"`
	Email     string       `json:"email"`
	Password  PasswordHash `json:"-"` // stored by the store, never shown
	Platforms []string     `json:"platforms"`
	CreatedAt time.Time    `json:"createdAt"`
	// SessionEpoch is raised by "sign out everywhere": sessions made under
	// an earlier epoch are no longer valid.
	SessionEpoch int `json:"sessionEpoch"`
}

// Owns reports whether d owns the platform id.
func (d *Developer) Owns(platformID string) bool { return slices.Contains(d.Platforms, platformID) }

// PasswordHash is an argon2id hash and the parameters that made it, so that
// hashes made before a change of parameters keep verifying.
type PasswordHash struct {
	Algorithm string `json:"alg"` // "argon2id"
	Time      uint32 `json:"t"`
	MemoryKiB uint32 `json:"m"`
	Threads   uint8  `json:"p"`
	Salt      []byte `json:"salt"`
	Hash      []byte `json:"hash"`
}

// Argon2Params are the argon2id parameters of new password hashes.
type Argon2Params struct {
	Time      uint32
	MemoryKiB uint32
	Threads   uint8
}

// DefaultArgon2 is OWASP's argon2id recommendation (19 MiB, 2 passes, 1
// thread).
var DefaultArgon2 = Argon2Params{Time: 2, MemoryKiB: 19 * 1024, Threads: 1}

func hashPassword(p Argon2Params, password string) PasswordHash {
	salt := make([]byte, 16)
	rand.Read(salt)
	return PasswordHash{Algorithm: "argon2id", Time: p.Time, MemoryKiB: p.MemoryKiB, Threads: p.Threads, Salt: salt,
		Hash: argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, 32)}
}

// verify compares password with h in constant time.
func (h *PasswordHash) verify(password string) bool {
	if h.Algorithm != "argon2id" || len(h.Hash) == 0 || h.Threads == 0 {
		return false
	}
	got := argon2.IDKey([]byte(password), h.Salt, h.Time, h.MemoryKiB, h.Threads, uint32(len(h.Hash)))
	return subtle.ConstantTimeCompare(got, h.Hash) == 1
}

// Session is a signed-in browser. Only the SHA-256 of its token is stored;
// the token itself lives in the browser's cookie.
type Session struct {
	TokenHash   [32]byte  `json:"-"`
	DeveloperID string    `json:"developerId"`
	Epoch       int       `json:"epoch"`
	CSRFToken   string    `json:"csrf"`
	PlatformID  string    `json:"platformId"` // the platform the dashboard shows
	Mode        Mode      `json:"mode"`
	CreatedAt   time.Time `json:"createdAt"`
	LastSeenAt  time.Time `json:"lastSeenAt"`
}

// Tenant is the platform and mode the session's dashboard shows.
func (s *Session) Tenant() Tenant { return Tenant{PlatformID: s.PlatformID, Mode: s.Mode} }

// DeveloperStore is the part of Store that keeps developers and sessions.
// Reads return ENOTFOUND when the object does not exist.
type DeveloperStore interface {
	Developer(ctx context.Context, id string) (*Developer, error)
	// DeveloperIDByEmail returns the id of the developer with email
	// (lowercased).
	DeveloperIDByEmail(ctx context.Context, email string) (string, error)
	// Session returns the session whose token hashes to h.
	Session(ctx context.Context, h [32]byte) (*Session, error)
	// Sessions calls fn with every stored session, until fn returns an
	// error, which Sessions returns.
	Sessions(ctx context.Context, fn func(*Session) error) error
}

// DeveloperBatch is the part of Batch that writes developers and sessions.
type DeveloperBatch interface {
	// PutDeveloper writes d and its email index; prevEmail is the stored
	// email ("" when new).
	PutDeveloper(d *Developer, prevEmail string)
	PutSession(s *Session)
	DeleteSession(h [32]byte)
}

// Defaults of DeveloperConfig.
const (
	DefaultSessionIdle     = 12 * time.Hour
	DefaultSessionAbsolute = 30 * 24 * time.Hour
	minPasswordLen         = 10
	maxPasswordLen         = 256
)

// Sign-in throttling: failures allowed per window, per account and per
// client address.
const (
	signInWindow        = 15 * time.Minute
	signInFailsPerEmail = 5
	signInFailsPerIP    = 20
	signupsPerIP        = 10
)

// DeveloperConfig tunes developer accounts; the zero value is the defaults.
type DeveloperConfig struct {
	// Argon2 defaults to DefaultArgon2.
	Argon2 Argon2Params
	// SessionIdle ends a session not used for this long. Defaults to 12 h.
	SessionIdle time.Duration
	// SessionAbsolute ends a session this long after sign-in. Defaults to
	// 30 days.
	SessionAbsolute time.Duration
}

// Developers manages developer accounts and their dashboard sessions.
// Safe for concurrent use.
type Developers struct {
	c         *core
	cfg       DeveloperConfig
	platforms *Platforms
	dummy     PasswordHash // verified for unknown emails: same cost as a real one

	mu    sync.Mutex
	fails map[string][]time.Time // "e:"+email or "i:"+ip → recent failures
}

func newDevelopers(c *core, cfg DeveloperConfig, platforms *Platforms) *Developers {
	if cfg.Argon2.Time == 0 {
		cfg.Argon2 = DefaultArgon2
	}
	if cfg.SessionIdle == 0 {
		cfg.SessionIdle = DefaultSessionIdle
	}
	if cfg.SessionAbsolute == 0 {
		cfg.SessionAbsolute = DefaultSessionAbsolute
	}
	d := &Developers{c: c, cfg: cfg, platforms: platforms, fails: map[string][]time.Time{}}
	d.dummy = hashPassword(cfg.Argon2, "no such developer")
	return d
}

func developerLock(id string) Lock         { return Lock{Kind: LockDeveloper, ID: id} }
func developerEmailLock(email string) Lock { return Lock{Kind: LockDeveloperEmail, ID: email} }

// SignupInput is a new developer account and its first platform.
type SignupInput struct {
	Email        string `json:"email"`
	Password     string `json:"password"`
	PlatformName string `json:"platformName"`
	// IP is the client's address on self-serve signup: at most
	// signupsPerIP valid attempts an address per 15 minutes. Empty (the
	// operator) is not limited.
	IP string `json:"-"`
}

// Validate reports every problem of in and lowercases the email.
func (in *SignupInput) Validate() error {
	var v Validation
	if e, err := normalizeEmail(in.Email); err != nil {
		v.Add("email", "%s", err)
	} else {
		in.Email = e
	}
	validatePassword(&v, "password", in.Password)
	in.PlatformName = strings.TrimSpace(in.PlatformName)
	if in.PlatformName == "" {
		v.Add("platformName", "is required")
	} else if utf8.RuneCountInString(in.PlatformName) > 200 {
		v.Add("platformName", "must be at most 200 characters")
	}
	return v.Err()
}

func validatePassword(v *Validation, field, p string) {
	if n := utf8.RuneCountInString(p); n < minPasswordLen {
		v.Add(field, "must be at least %d characters", minPasswordLen)
	} else if n > maxPasswordLen {
		v.Add(field, "must be at most %d characters", maxPasswordLen)
	}
}

// NewDeveloper is a created account with its first platform, whose secret
// keys are shown this once.
type NewDeveloper struct {
	Developer *Developer   `json:"developer"`
	Platform  *NewPlatform `json:"platform"`
}

// Signup creates a developer account and its first platform (with keys
// and default tiers, as Platforms.Create makes them) in one unit of work.
// Returns EVALIDATION for a bad input, ECONFLICT when the email has an
// account.
//
// idem (may be nil) is the operator's Idempotency-Key (POST
// /admin/developers); its record is sealed, since it holds secrets.
func (s *Developers) Signup(ctx context.Context, in SignupInput, idem *Idempotency) (*NewDeveloper, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	if in.IP != "" {
		// Every attempt counts, so that probing which emails have an
		// account (ECONFLICT) is as slow as making accounts.
		if s.throttledKey("s:"+in.IP, signupsPerIP) > 0 {
			return nil, &Error{Code: ERATELIMITED, RetryAfter: int(signInWindow.Seconds()),
				Message: "Too many sign-ups from your address. Try again later."}
		}
		s.mu.Lock()
		s.fails["s:"+in.IP] = append(s.recent("s:"+in.IP, s.c.now()), s.c.now())
		s.mu.Unlock()
	}
	hash := hashPassword(s.cfg.Argon2, in.Password) // slow: never under a lock
	now := s.c.now().UTC()
	if idem != nil {
		idem.Sensitive = true
	}
	res, err := s.c.update(ctx, adminTenant, idem, []Lock{developerEmailLock(in.Email)}, func(tx Tx) (any, error) {
		if _, err := tx.DeveloperIDByEmail(ctx, in.Email); err == nil {
			return nil, Errorf(ECONFLICT, "An account with this email already exists.")
		} else if ErrorCode(err) != ENOTFOUND {
			return nil, err
		}
		np := s.platforms.put(tx, CreatePlatformInput{Name: in.PlatformName, Email: in.Email}, now)
		d := &Developer{ID: NewID("dev_", now), Email: in.Email, Password: hash, Platforms: []string{np.Platform.ID}, CreatedAt: now}
		tx.PutDeveloper(d, "")
		return &NewDeveloper{Developer: d, Platform: np}, nil
	})
	if err != nil {
		return nil, err
	}
	return res.(*NewDeveloper), nil
}

// AddPlatform creates another platform owned by developer id. Returns
// ENOTFOUND when the developer does not exist.
func (s *Developers) AddPlatform(ctx context.Context, id string, in CreatePlatformInput) (*NewPlatform, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	now := s.c.now().UTC()
	res, err := s.c.store.Update(ctx, []Lock{developerLock(id)}, func(tx Tx) (any, error) {
		d, err := tx.Developer(ctx, id)
		if err != nil {
			return nil, err
		}
		if in.Email == "" {
			in.Email = d.Email
		}
		np := s.platforms.put(tx, in, now)
		d.Platforms = append(d.Platforms, np.Platform.ID)
		tx.PutDeveloper(d, d.Email)
		return np, nil
	})
	if err != nil {
		return nil, err
	}
	return res.(*NewPlatform), nil
}

// Get returns a developer, or ENOTFOUND.
func (s *Developers) Get(ctx context.Context, id string) (*Developer, error) {
	return s.c.store.Developer(ctx, id)
}

// SignInInput is what a sign-in form sends. IP is the client's address,
// for throttling.
type SignInInput struct {
	Email    string
	Password string
	IP       string
}

// SignIn checks a developer's email and password and starts a session,
// returning its token (for the cookie) and the session. A wrong email and
// a wrong password are the same EINVALIDAPIKEY, and cost the same time.
// After too many failures for the email or from the IP within 15 minutes
// it returns ERATELIMITED (with RetryAfter) without checking anything.
func (s *Developers) SignIn(ctx context.Context, in SignInInput) (string, *Session, error) {
	email := strings.ToLower(strings.TrimSpace(in.Email))
	if retry := s.throttled(email, in.IP); retry > 0 {
		return "", nil, &Error{Code: ERATELIMITED, RetryAfter: int(retry.Seconds()) + 1,
			Message: "Too many sign-in attempts. Wait a few minutes and try again."}
	}
	d, err := s.byEmail(ctx, email)
	if err != nil && ErrorCode(err) != ENOTFOUND {
		return "", nil, err
	}
	ok := false
	if d != nil {
		ok = d.Password.verify(in.Password)
	} else {
		s.dummy.verify(in.Password)
	}
	if !ok {
		s.fail(email, in.IP)
		return "", nil, Errorf(EINVALIDAPIKEY, "Wrong email or password.")
	}
	s.clearFails(email)
	return s.startSession(ctx, d)
}

func (s *Developers) byEmail(ctx context.Context, email string) (*Developer, error) {
	id, err := s.c.store.DeveloperIDByEmail(ctx, email)
	if err != nil {
		return nil, err
	}
	return s.c.store.Developer(ctx, id)
}

// StartSession starts a session for developer d (signed in some other way:
// right after Signup). Returns the cookie's token and the session.
func (s *Developers) StartSession(ctx context.Context, d *Developer) (string, *Session, error) {
	return s.startSession(ctx, d)
}

func (s *Developers) startSession(ctx context.Context, d *Developer) (string, *Session, error) {
	token := newSecret("dss_")
	now := s.c.now().UTC()
	sess := &Session{TokenHash: HashSecret(token), DeveloperID: d.ID, Epoch: d.SessionEpoch, CSRFToken: randomHex(16),
		Mode: Test, CreatedAt: now, LastSeenAt: now}
	if len(d.Platforms) > 0 {
		sess.PlatformID = d.Platforms[0]
	}
	if _, err := s.c.store.Update(ctx, nil, func(tx Tx) (any, error) {
		tx.PutSession(sess)
		return nil, nil
	}); err != nil {
		return "", nil, err
	}
	return token, sess, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Authenticate returns the live session of a cookie's token and its
// developer. Returns EINVALIDAPIKEY when the token is unknown, signed out,
// idle for longer than SessionIdle, older than SessionAbsolute or from
// before a "sign out everywhere"; an expired session is deleted. A session
// used after a minute or more has its LastSeenAt written.
func (s *Developers) Authenticate(ctx context.Context, token string) (*Session, *Developer, error) {
	invalid := Errorf(EINVALIDAPIKEY, "Your session has ended. Sign in again.")
	if token == "" {
		return nil, nil, invalid
	}
	h := HashSecret(token)
	sess, err := s.c.store.Session(ctx, h)
	if ErrorCode(err) == ENOTFOUND {
		return nil, nil, invalid
	} else if err != nil {
		return nil, nil, err
	}
	d, err := s.c.store.Developer(ctx, sess.DeveloperID)
	if err != nil && ErrorCode(err) != ENOTFOUND {
		return nil, nil, err
	}
	now := s.c.now().UTC()
	if d == nil || sess.Epoch != d.SessionEpoch || now.Sub(sess.LastSeenAt) > s.cfg.SessionIdle || now.Sub(sess.CreatedAt) > s.cfg.SessionAbsolute {
		s.SignOut(ctx, token)
		return nil, nil, invalid
	}
	if sess.PlatformID != "" && !d.Owns(sess.PlatformID) {
		sess.PlatformID = ""
	}
	if sess.PlatformID == "" && len(d.Platforms) > 0 {
		sess.PlatformID = d.Platforms[0]
	}
	if now.Sub(sess.LastSeenAt) >= time.Minute {
		sess.LastSeenAt = now
		if err := s.putSession(ctx, sess); err != nil {
			return nil, nil, err
		}
	}
	return sess, d, nil
}

func (s *Developers) putSession(ctx context.Context, sess *Session) error {
	_, err := s.c.store.Update(ctx, nil, func(tx Tx) (any, error) {
		tx.PutSession(sess)
		return nil, nil
	})
	return err
}

// Switch makes the session show platform id in mode. Returns ENOTFOUND when
// the session's developer does not own the platform.
func (s *Developers) Switch(ctx context.Context, sess *Session, d *Developer, platformID string, mode Mode) error {
	if !d.Owns(platformID) {
		return Errorf(ENOTFOUND, "No platform %s.", platformID)
	}
	cp := *sess
	cp.PlatformID, cp.Mode = platformID, mode
	return s.putSession(ctx, &cp)
}

// ExpireSessions deletes the sessions past their idle or absolute expiry
// and returns how many (RunMaintenance calls it hourly). A session is
// refused once expired whether or not it has been deleted.
func (s *Developers) ExpireSessions(ctx context.Context) (int, error) {
	now := s.c.now()
	var expired [][32]byte
	err := s.c.store.Sessions(ctx, func(sess *Session) error {
		if now.Sub(sess.LastSeenAt) > s.cfg.SessionIdle || now.Sub(sess.CreatedAt) > s.cfg.SessionAbsolute {
			expired = append(expired, sess.TokenHash)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	total := len(expired)
	for len(expired) > 0 {
		n := min(len(expired), 1000)
		chunk := expired[:n]
		if _, err := s.c.store.Update(ctx, nil, func(tx Tx) (any, error) {
			for _, h := range chunk {
				tx.DeleteSession(h)
			}
			return nil, nil
		}); err != nil {
			return 0, err
		}
		expired = expired[n:]
	}
	return total, nil
}

// SignOut deletes the session of token, if any.
func (s *Developers) SignOut(ctx context.Context, token string) error {
	h := HashSecret(token)
	_, err := s.c.store.Update(ctx, nil, func(tx Tx) (any, error) {
		tx.DeleteSession(h)
		return nil, nil
	})
	return err
}

// SignOutEverywhere ends every session of developer id.
func (s *Developers) SignOutEverywhere(ctx context.Context, id string) error {
	_, err := s.c.store.Update(ctx, []Lock{developerLock(id)}, func(tx Tx) (any, error) {
		d, err := tx.Developer(ctx, id)
		if err != nil {
			return nil, err
		}
		d.SessionEpoch++
		tx.PutDeveloper(d, d.Email)
		return nil, nil
	})
	return err
}

// ChangePassword replaces developer id's password after checking the
// current one, and signs out every other session (the caller starts a new
// one). Returns EVALIDATION naming "current" when it is wrong, and
// ERATELIMITED after 5 wrong ones in 15 minutes.
func (s *Developers) ChangePassword(ctx context.Context, id, current, next string) error {
	var v Validation
	validatePassword(&v, "password", next)
	if err := v.Err(); err != nil {
		return err
	}
	if s.throttledKey("p:"+id, signInFailsPerEmail) > 0 {
		return &Error{Code: ERATELIMITED, RetryAfter: int(signInWindow.Seconds()),
			Message: "Too many wrong passwords. Wait a few minutes and try again."}
	}
	d, err := s.c.store.Developer(ctx, id)
	if err != nil {
		return err
	}
	if !d.Password.verify(current) {
		now := s.c.now()
		s.mu.Lock()
		s.fails["p:"+id] = append(s.recent("p:"+id, now), now)
		s.mu.Unlock()
		return invalid("current", "is not your current password")
	}
	hash := hashPassword(s.cfg.Argon2, next)
	_, err = s.c.store.Update(ctx, []Lock{developerLock(id)}, func(tx Tx) (any, error) {
		d, err := tx.Developer(ctx, id)
		if err != nil {
			return nil, err
		}
		d.Password = hash
		d.SessionEpoch++
		tx.PutDeveloper(d, d.Email)
		return nil, nil
	})
	return err
}

// throttled returns how long until a sign-in for email from ip may be
// tried again; 0 when it may now.
func (s *Developers) throttled(email, ip string) time.Duration {
	return max(s.throttledKey("e:"+email, signInFailsPerEmail), s.throttledKey("i:"+ip, signInFailsPerIP))
}

// throttledKey returns how long until key has fewer than limit events in
// the window; 0 when it has now.
func (s *Developers) throttledKey(key string, limit int) time.Duration {
	now := s.c.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	fs := s.recent(key, now)
	if len(fs) < limit {
		return 0
	}
	return fs[len(fs)-limit].Add(signInWindow).Sub(now)
}

// recent drops failures older than the window and returns the rest. s.mu
// is held.
func (s *Developers) recent(key string, now time.Time) []time.Time {
	fs := s.fails[key]
	i := 0
	for i < len(fs) && now.Sub(fs[i]) >= signInWindow {
		i++
	}
	fs = fs[i:]
	if len(fs) == 0 {
		delete(s.fails, key)
		return nil
	}
	s.fails[key] = fs
	return fs
}

func (s *Developers) fail(email, ip string) {
	now := s.c.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.fails) > 100_000 {
		for k := range s.fails { // bounded memory under a flood: forget the oldest-ish
			s.recent(k, now)
		}
	}
	for _, k := range []string{"e:" + email, "i:" + ip} {
		s.fails[k] = append(s.recent(k, now), now)
	}
}

func (s *Developers) clearFails(email string) {
	s.mu.Lock()
	delete(s.fails, "e:"+email)
	s.mu.Unlock()
}
