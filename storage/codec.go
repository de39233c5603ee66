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

// formatCustomerV2 is a customer in binary: the record every track reads
// when its customer is not in memory, where decoding the JSON of format 1
// took 4.8 µs of the 24 µs a read from a 1 000 000-customer store costs,
// and made the record half again as long (docs/performance.md). Format 1
// records are still read.
//
//	flags byte
//	id, email, firstName, lastName, plan, publishableKey, stripeAccountId:
//	    uvarint length, bytes
//	stripeCustomerId (customerHasStripeID): uvarint length, bytes
//	createdAt, periodStart, periodEnd: a time each
//	subscription (customerHasSubscription): uvarint length, its JSON
//	metadata (customerHasMetadata): uvarint length, its JSON
//
// A time is 0 for the zero time, else 1, varint Unix seconds and uvarint
// nanoseconds; it is read back in UTC.
const formatCustomerV2 = 2

// Flags of formatCustomerV2.
const (
	customerHasStripeID     = 1 << 0
	customerHasSubscription = 1 << 1
	customerHasMetadata     = 1 << 2 // else an empty map, or nil with customerNilMetadata
	customerNilMetadata     = 1 << 3
)

func encodeCustomer(c *engine.Customer) ([]byte, error) {
	var flags byte
	var sub, md []byte
	var err error
	if c.StripeCustomerID != nil {
		flags |= customerHasStripeID
	}
	if c.Subscription != nil {
		flags |= customerHasSubscription
		if sub, err = json.Marshal(c.Subscription); err != nil {
			return nil, fmt.Errorf("storage: encode customer subscription: %w", err)
		}
	}
	switch {
	case c.Metadata == nil:
		flags |= customerNilMetadata
	case len(c.Metadata) > 0:
		flags |= customerHasMetadata
		if md, err = json.Marshal(c.Metadata); err != nil {
			return nil, fmt.Errorf("storage: encode customer metadata: %w", err)
		}
	}
	b := make([]byte, 0, 64+len(c.ID)+len(c.Email)+len(c.FirstName)+len(c.LastName)+len(c.Plan)+
		len(c.PublishableKey)+len(c.StripeAccountID)+len(sub)+len(md))
	b = append(b, formatCustomerV2, flags)
	for _, s := range [...]string{c.ID, c.Email, c.FirstName, c.LastName, c.Plan, c.PublishableKey, c.StripeAccountID} {
		b = appendString(b, s)
	}
	if c.StripeCustomerID != nil {
		b = appendString(b, *c.StripeCustomerID)
	}
	b = appendTime(appendTime(appendTime(b, c.CreatedAt), c.PeriodStart), c.PeriodEnd)
	if sub != nil {
		b = appendString(b, string(sub))
	}
	if md != nil {
		b = appendString(b, string(md))
	}
	return b, nil
}

func decodeCustomer(val []byte) (*engine.Customer, error) {
	if len(val) > 0 && val[0] == formatCustomerV2 {
		c, err := decodeCustomerV2(val[1:])
		if err != nil {
			return nil, fmt.Errorf("%w: customer: %v", ErrFormat, err)
		}
		return c, nil
	}
	var r customerRecord
	if err := decodeJSON("customer", val, &r); err != nil {
		return nil, err
	}
	r.Customer.PeriodStart, r.Customer.PeriodEnd = r.SubscriptionStart, r.SubscriptionEnd
	return &r.Customer, nil
}

func decodeCustomerV2(p []byte) (*engine.Customer, error) {
	// Every string field is a substring of one copy of the record: one
	// allocation instead of seven.
	d := binDecoder{p: p, s: string(p)}
	flags := d.byte()
	c := new(engine.Customer)
	for _, s := range [...]*string{&c.ID, &c.Email, &c.FirstName, &c.LastName, &c.Plan, &c.PublishableKey, &c.StripeAccountID} {
		*s = d.string()
	}
	if flags&customerHasStripeID != 0 {
		id := d.string()
		c.StripeCustomerID = &id
	}
	c.CreatedAt, c.PeriodStart, c.PeriodEnd = d.time(), d.time(), d.time()
	if flags&customerHasSubscription != 0 {
		c.Subscription = new(engine.Subscription)
		if err := json.Unmarshal(d.bytes(), c.Subscription); err != nil && d.err == nil {
			d.err = err
		}
	}
	switch {
	case flags&customerHasMetadata != 0:
		if err := json.Unmarshal(d.bytes(), &c.Metadata); err != nil && d.err == nil {
			d.err = err
		}
	case flags&customerNilMetadata == 0:
		c.Metadata = map[string]any{}
	}
	if d.err == nil && len(d.p) > 0 {
		d.err = fmt.Errorf("%d bytes after the record", len(d.p))
	}
	if d.err != nil {
		return nil, d.err
	}
	return c, nil
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	return binary.AppendUvarint(binary.AppendVarint(append(b, 1), t.Unix()), uint64(t.Nanosecond()))
}

// binDecoder reads what appendString and appendTime wrote; its first
// error sticks, and later reads return zero values.
type binDecoder struct {
	p []byte
	// s, when set, holds the bytes p started with: string returns
	// substrings of it instead of copies.
	s   string
	err error
}

func (d *binDecoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("truncated or malformed %s", what)
	}
	d.p = nil
}

func (d *binDecoder) byte() byte {
	if len(d.p) < 1 {
		d.fail("byte")
		return 0
	}
	v := d.p[0]
	d.p = d.p[1:]
	return v
}

func (d *binDecoder) bytes() []byte {
	n, k := binary.Uvarint(d.p)
	if k <= 0 || n > uint64(len(d.p)-k) {
		d.fail("string")
		return nil
	}
	v := d.p[k : k+int(n)]
	d.p = d.p[k+int(n):]
	return v
}

func (d *binDecoder) string() string {
	b := d.bytes()
	if d.s == "" || len(b) == 0 {
		return string(b)
	}
	end := len(d.s) - len(d.p)
	return d.s[end-len(b) : end]
}

func (d *binDecoder) time() time.Time {
	switch d.byte() {
	case 0:
		return time.Time{}
	case 1:
	default:
		d.fail("time")
		return time.Time{}
	}
	sec, k := binary.Varint(d.p)
	if k <= 0 {
		d.fail("time")
		return time.Time{}
	}
	d.p = d.p[k:]
	nsec, k := binary.Uvarint(d.p)
	if k <= 0 || nsec >= 1e9 {
		d.fail("time")
		return time.Time{}
	}
	d.p = d.p[k:]
	return time.Unix(sec, int64(nsec)).UTC()
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
