package storage

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dream-api/dream-api/engine"
)

// Every value starts with a format byte. Records are JSON after it; counters,
// idempotency records, hashes and index entries are binary. A value whose
// format this build does not know is an error, never a guess.
const formatV1 = 1

// ErrFormat is returned (wrapped) when a stored value is empty, has an
// unknown format byte or is malformed.
var ErrFormat = errors.New("storage: unknown value format")

// payload checks the format byte of val and returns what follows it.
func payload(what string, val []byte) ([]byte, error) {
	if len(val) == 0 {
		return nil, fmt.Errorf("%w: empty %s", ErrFormat, what)
	}
	if val[0] != formatV1 {
		return nil, fmt.Errorf("%w: %s has format %d", ErrFormat, what, val[0])
	}
	return val[1:], nil
}

func encodeJSON(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("storage: encode: %w", err)
	}
	return append([]byte{formatV1}, b...), nil
}

func decodeJSON(what string, val []byte, v any) error {
	p, err := payload(what, val)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(p, v); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrFormat, what, err)
	}
	return nil
}

// keyRecord is a key record as stored: engine.Key does not marshal its
// secret hash.
type keyRecord struct {
	engine.Key
	SecretHash []byte `json:"secretHash"`
}

func encodeKey(k *engine.Key) ([]byte, error) {
	return encodeJSON(keyRecord{Key: *k, SecretHash: k.SecretHash[:]})
}

func decodeKey(val []byte) (*engine.Key, error) {
	var r keyRecord
	if err := decodeJSON("key", val, &r); err != nil {
		return nil, err
	}
	if len(r.SecretHash) != len(r.Key.SecretHash) {
		return nil, fmt.Errorf("%w: key %s has a %d-byte secret hash", ErrFormat, r.ID, len(r.SecretHash))
	}
	copy(r.Key.SecretHash[:], r.SecretHash)
	return &r.Key, nil
}

// customerRecord is a customer as stored: engine.Customer does not marshal
// its subscription period.
type customerRecord struct {
	engine.Customer
	SubscriptionStart time.Time `json:"periodStart,omitzero"`
	SubscriptionEnd   time.Time `json:"periodEnd,omitzero"`
}

func encodeCustomer(c *engine.Customer) ([]byte, error) {
	return encodeJSON(customerRecord{Customer: *c, SubscriptionStart: c.PeriodStart, SubscriptionEnd: c.PeriodEnd})
}

func decodeCustomer(val []byte) (*engine.Customer, error) {
	var r customerRecord
	if err := decodeJSON("customer", val, &r); err != nil {
		return nil, err
	}
	r.Customer.PeriodStart, r.Customer.PeriodEnd = r.SubscriptionStart, r.SubscriptionEnd
	return &r.Customer, nil
}

func decodePlatform(val []byte) (*engine.Platform, error) {
	p := new(engine.Platform)
	return p, decodeJSON("platform", val, p)
}

// encodeBytes stores b as is after the format byte: policy states, hashes,
// customer ids of the email index.
func encodeBytes(b []byte) []byte { return append([]byte{formatV1}, b...) }

// decodeBytes returns a copy of what encodeBytes stored; nil when empty.
func decodeBytes(what string, val []byte) ([]byte, error) {
	p, err := payload(what, val)
	if err != nil || len(p) == 0 {
		return nil, err
	}
	return bytes.Clone(p), nil
}

func encodeHash(h [32]byte) []byte { return encodeBytes(h[:]) }

func decodeHash(what string, val []byte) ([32]byte, error) {
	var h [32]byte
	p, err := payload(what, val)
	if err != nil {
		return h, err
	}
	if len(p) != len(h) {
		return h, fmt.Errorf("%w: %s is %d bytes", ErrFormat, what, len(p))
	}
	copy(h[:], p)
	return h, nil
}

// keyRef is an index entry pointing at a key record.
type keyRef struct{ platformID, id string }

func encodeKeyRef(r keyRef) []byte {
	b := append([]byte{formatV1}, r.platformID...)
	return append(append(b, sep), r.id...)
}

func decodeKeyRef(val []byte) (keyRef, error) {
	p, err := payload("key index", val)
	if err != nil {
		return keyRef{}, err
	}
	platformID, id, ok := bytes.Cut(p, []byte{sep})
	if !ok || len(platformID) == 0 || len(id) == 0 {
		return keyRef{}, fmt.Errorf("%w: malformed key index entry", ErrFormat)
	}
	return keyRef{string(platformID), string(id)}, nil
}

// A counter is the count and the period end, big-endian int64s, the end in
// unix milliseconds.
const counterLen = 1 + 8 + 8

func encodeCounter(c engine.Counter) []byte {
	b := make([]byte, 1, counterLen)
	b[0] = formatV1
	b = binary.BigEndian.AppendUint64(b, uint64(c.Count))
	return binary.BigEndian.AppendUint64(b, uint64(c.PeriodEnd.UnixMilli()))
}

func decodeCounter(val []byte) (engine.Counter, error) {
	p, err := payload("counter", val)
	if err != nil {
		return engine.Counter{}, err
	}
	if len(p) != counterLen-1 {
		return engine.Counter{}, fmt.Errorf("%w: counter is %d bytes", ErrFormat, len(val))
	}
	return engine.Counter{
		Count:     int64(binary.BigEndian.Uint64(p)),
		PeriodEnd: time.UnixMilli(int64(binary.BigEndian.Uint64(p[8:]))).UTC(),
	}, nil
}

// An idempotency record is the request hash, the status as a big-endian
// int64, the creation time in unix milliseconds, a flags byte (bit 0: the
// body is sealed), the length of the first request's id (one byte) and the
// id, then the body as is.
const idemHeaderLen = 1 + 32 + 8 + 8 + 1 + 1

const idemSealed = 1

func encodeIdempotency(r *engine.IdemRecord) []byte {
	rid := r.RequestID
	if len(rid) > 255 {
		rid = rid[:255]
	}
	b := make([]byte, 1, idemHeaderLen+len(rid)+len(r.Body))
	b[0] = formatV1
	b = append(b, r.RequestHash[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Status))
	b = binary.BigEndian.AppendUint64(b, uint64(r.CreatedAt.UnixMilli()))
	var flags byte
	if r.Sealed {
		flags |= idemSealed
	}
	b = append(b, flags)
	b = append(append(b, byte(len(rid))), rid...)
	return append(b, r.Body...)
}

func decodeIdempotency(val []byte) (*engine.IdemRecord, error) {
	p, err := payload("idempotency record", val)
	if err != nil {
		return nil, err
	}
	if len(p) < idemHeaderLen-1 {
		return nil, fmt.Errorf("%w: idempotency record is %d bytes", ErrFormat, len(val))
	}
	flags, n := p[48], int(p[49])
	if len(p) < 50+n {
		return nil, fmt.Errorf("%w: idempotency record is %d bytes", ErrFormat, len(val))
	}
	r := &engine.IdemRecord{
		Status:    int(int64(binary.BigEndian.Uint64(p[32:]))),
		CreatedAt: time.UnixMilli(int64(binary.BigEndian.Uint64(p[40:]))).UTC(),
		Sealed:    flags&idemSealed != 0,
		RequestID: string(p[50 : 50+n]),
		Body:      bytes.Clone(p[50+n:]),
	}
	copy(r.RequestHash[:], p)
	return r, nil
}

// The schema version is a big-endian uint64.
func encodeSchema(v uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{formatV1}, v)
}

func decodeSchema(val []byte) (uint64, error) {
	p, err := payload("schema version", val)
	if err != nil {
		return 0, err
	}
	if len(p) != 8 {
		return 0, fmt.Errorf("%w: schema version is %d bytes", ErrFormat, len(val))
	}
	return binary.BigEndian.Uint64(p), nil
}
