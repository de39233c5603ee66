package engine

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"time"
)

// crockford is the lowercase Crockford base32 alphabet: ids sort like the
// times they were made at.
const crockford = "0123456789abcdefghjkmnpqrstvwxyz"

// NewID returns prefix followed by 26 characters: 48 bits of milliseconds
// then 80 random bits, so ids made later sort later.
func NewID(prefix string, now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16)
	rand.Read(b[6:])
	// 128 bits → 26 base32 characters (130 bits, top two zero).
	out := make([]byte, len(prefix)+26)
	copy(out, prefix)
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	for i := 25; i >= 0; i-- {
		out[len(prefix)+i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out)
}

// newSecret returns prefix followed by 48 hex characters of randomness.
func newSecret(prefix string) string {
	var b [24]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// HashSecret is how every secret (keys, admin token) is stored.
func HashSecret(s string) [32]byte {
	var buf [128]byte // keys fit: hashed without an allocation
	return sha256.Sum256(append(buf[:0], s...))
}
