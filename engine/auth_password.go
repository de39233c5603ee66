package engine

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// PasswordParams are the argon2id parameters of a password hash; they are
// stored with it.
type PasswordParams struct {
	// Algorithm is "argon2id".
	Algorithm string `json:"alg"`
	Time      uint32 `json:"t"`
	MemoryKiB uint32 `json:"m"`
	Threads   uint8  `json:"p"`
}

// DefaultPasswordParams are OWASP's argon2id recommendation: 19 MiB, two
// passes, one thread.
var DefaultPasswordParams = PasswordParams{Algorithm: "argon2id", Time: 2, MemoryKiB: 19 * 1024, Threads: 1}

const (
	passwordSaltLen = 16
	passwordHashLen = 32
	// maxPasswordBytes bounds the work of a hash: longer passwords are
	// refused (and compared on their first bytes at sign-in).
	maxPasswordBytes = 256
)

// hashCustomerPassword hashes password with p; changedAt is when the
// password (not its hash) was set.
func hashCustomerPassword(p PasswordParams, password string, changedAt time.Time) *CustomerPassword {
	salt := make([]byte, passwordSaltLen)
	rand.Read(salt)
	return &CustomerPassword{
		PasswordParams: p, Salt: salt, ChangedAt: changedAt.UTC(),
		Hash: argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, passwordHashLen),
	}
}

// verify reports whether password is the one hashed, in constant time.
func (h *CustomerPassword) verify(password string) bool {
	if h.Algorithm != "argon2id" || h.Time == 0 || h.Threads == 0 || len(h.Hash) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(password), h.Salt, h.Time, h.MemoryKiB, h.Threads, uint32(len(h.Hash)))
	return subtle.ConstantTimeCompare(got, h.Hash) == 1
}

// dummyHash is a hash of nothing anyone knows, with the current
// parameters: verifying against it costs what a real check does.
func (a *EndUserAuth) dummyHash() *CustomerPassword {
	a.dummyOnce.Do(func() {
		var b [32]byte
		rand.Read(b[:])
		a.dummy = hashCustomerPassword(a.cfg.Argon2, string(b[:]), time.Time{})
	})
	return a.dummy
}

// newPassword checks a new password and returns its hash. Returns
// EVALIDATION naming the reason: too short, too long, or a common password.
func (a *EndUserAuth) newPassword(password string) (*CustomerPassword, error) {
	switch {
	case utf8.RuneCountInString(password) < a.cfg.MinPasswordLength:
		return nil, invalid("password", "must be at least %d characters", a.cfg.MinPasswordLength)
	case len(password) > maxPasswordBytes:
		return nil, invalid("password", "must be at most %d bytes", maxPasswordBytes)
	case !utf8.ValidString(password):
		return nil, invalid("password", "must be valid UTF-8")
	case commonPassword(password):
		return nil, invalid("password", "is one of the most common passwords; choose another")
	}
	return hashCustomerPassword(a.cfg.Argon2, password, a.c.now()), nil
}

//go:embed auth_common_passwords.txt
var commonPasswordsText string

var commonPasswords = sync.OnceValue(func() map[string]bool {
	m := map[string]bool{}
	for _, l := range strings.Split(commonPasswordsText, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			m[l] = true
		}
	}
	return m
})

// commonPassword reports whether p is on the bundled list of common
// passwords, ignoring case.
func commonPassword(p string) bool { return commonPasswords()[strings.ToLower(p)] }

// secretRequest hides a request that carries a password from its
// Idempotency-Key record: the record keeps a hash of the request, and a
// plain SHA-256 of a body holding a password could be tried against
// guesses as fast as SHA-256 runs. The stored hash becomes an HMAC keyed
// by the master key (through the Sealer), so the record says nothing
// without it. Replays compare the same way.
func (c *core) secretRequest(idem *Idempotency) {
	if idem == nil || idem.Key == "" {
		return
	}
	m := hmac.New(sha256.New, c.requestDigestKey())
	m.Write(idem.RequestHash[:])
	m.Sum(idem.RequestHash[:0])
}

// requestDigestKey is a key derived from the master key: AES-GCM under it
// with the all-zero nonce (never drawn by Seal, whose nonces are random)
// over 32 zero bytes, i.e. the cipher's keystream, a function of the key.
func (c *core) requestDigestKey() []byte {
	c.digestOnce.Do(func() {
		a := c.sealer.aead
		c.digestKey = a.Seal(nil, make([]byte, a.NonceSize()), make([]byte, 32), []byte("dream-api request digest"))[:32]
	})
	return c.digestKey
}
