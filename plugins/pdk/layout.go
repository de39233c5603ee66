package pdk

import (
	"encoding/binary"
	"errors"
	"time"
	"unicode/utf8"
	"unsafe"
)

// The limitpolicy v1 layout. See docs/plugin-abi.md in the repository.
const (
	ABIVersion       = 1
	HeaderSize       = 104 // input header, v1
	OutputHeaderSize = 32
	MaxMessage       = 512
	MaxState         = 1024

	// FlagCheckOnly is bit 0 of the input flags.
	FlagCheckOnly = 1 << 0
	// OutReplaceState and OutLimitSet are the output flags.
	OutReplaceState = 1 << 0
	OutLimitSet     = 1 << 1
)

// Input header offsets.
const (
	inVersion     = 0
	inHeaderSize  = 4
	inNow         = 8
	inUsage       = 16
	inLimit       = 24
	inQuantity    = 32
	inPeriodStart = 40
	inPeriodEnd   = 48
	inMode        = 56
	inFlags       = 60
	inCustomer    = 64
	inPlan        = 72
	inFeature     = 80
	inMetadata    = 88
	inState       = 96
)

// Output header offsets.
const (
	outDecision = 0
	outFlags    = 4
	outCost     = 8
	outLimit    = 16
	outMsgLen   = 24
	outStateLen = 28
)

// Errors of the encoding functions.
var (
	ErrShortBuffer     = errors.New("pdk: buffer too short")
	ErrVersion         = errors.New("pdk: unsupported abi version")
	ErrOutOfBounds     = errors.New("pdk: field out of bounds")
	ErrMessageTooLong  = errors.New("pdk: message longer than 512 bytes")
	ErrStateTooLong    = errors.New("pdk: state longer than 1024 bytes")
	ErrNegativeCost    = errors.New("pdk: negative cost")
	ErrInvalidDecision = errors.New("pdk: invalid decision")
	ErrInvalidUTF8     = errors.New("pdk: message is not valid UTF-8")
)

var le = binary.LittleEndian

// DecodeInput decodes a v1 input from b into in without allocating: the
// strings and slices of in alias b, so b must not change while in is used.
func DecodeInput(b []byte, in *Input) error {
	if len(b) < HeaderSize {
		return ErrShortBuffer
	}
	if le.Uint32(b[inVersion:]) != ABIVersion {
		return ErrVersion
	}
	if hs := le.Uint32(b[inHeaderSize:]); hs < HeaderSize || uint64(hs) > uint64(len(b)) {
		return ErrOutOfBounds
	}
	var (
		cust, plan, feat, meta, state []byte
		err                           error
	)
	if cust, err = field(b, inCustomer); err != nil {
		return err
	}
	if plan, err = field(b, inPlan); err != nil {
		return err
	}
	if feat, err = field(b, inFeature); err != nil {
		return err
	}
	if meta, err = field(b, inMetadata); err != nil {
		return err
	}
	if state, err = field(b, inState); err != nil {
		return err
	}
	*in = Input{
		Now:         millis(int64(le.Uint64(b[inNow:]))),
		Usage:       int64(le.Uint64(b[inUsage:])),
		Limit:       int64(le.Uint64(b[inLimit:])),
		Quantity:    int64(le.Uint64(b[inQuantity:])),
		PeriodStart: millis(int64(le.Uint64(b[inPeriodStart:]))),
		PeriodEnd:   millis(int64(le.Uint64(b[inPeriodEnd:]))),
		Mode:        Mode(le.Uint32(b[inMode:])),
		CheckOnly:   le.Uint32(b[inFlags:])&FlagCheckOnly != 0,
		CustomerID:  alias(cust),
		Plan:        alias(plan),
		Feature:     alias(feat),
		Metadata:    meta,
		State:       state,
	}
	return nil
}

func field(b []byte, at int) ([]byte, error) {
	off, n := uint64(le.Uint32(b[at:])), uint64(le.Uint32(b[at+4:]))
	if off+n > uint64(len(b)) {
		return nil, ErrOutOfBounds
	}
	if n == 0 {
		return nil, nil
	}
	return b[off : off+n : off+n], nil
}

func alias(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

func millis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

func unixMillis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// EncodeInput encodes in into b in the v1 layout (header, then customer id,
// plan, feature, metadata and state) and returns the number of bytes
// written. It is what the host does; policies use it in their tests.
func EncodeInput(in *Input, b []byte) (int, error) {
	n := HeaderSize + len(in.CustomerID) + len(in.Plan) + len(in.Feature) + len(in.Metadata) + len(in.State)
	if len(b) < n {
		return 0, ErrShortBuffer
	}
	le.PutUint32(b[inVersion:], ABIVersion)
	le.PutUint32(b[inHeaderSize:], HeaderSize)
	le.PutUint64(b[inNow:], uint64(unixMillis(in.Now)))
	le.PutUint64(b[inUsage:], uint64(in.Usage))
	le.PutUint64(b[inLimit:], uint64(in.Limit))
	le.PutUint64(b[inQuantity:], uint64(in.Quantity))
	le.PutUint64(b[inPeriodStart:], uint64(unixMillis(in.PeriodStart)))
	le.PutUint64(b[inPeriodEnd:], uint64(unixMillis(in.PeriodEnd)))
	le.PutUint32(b[inMode:], uint32(in.Mode))
	var flags uint32
	if in.CheckOnly {
		flags |= FlagCheckOnly
	}
	le.PutUint32(b[inFlags:], flags)
	off := HeaderSize
	put := func(at int, s []byte) {
		le.PutUint32(b[at:], uint32(off))
		le.PutUint32(b[at+4:], uint32(len(s)))
		off += copy(b[off:], s)
	}
	put(inCustomer, []byte(in.CustomerID))
	put(inPlan, []byte(in.Plan))
	put(inFeature, []byte(in.Feature))
	put(inMetadata, in.Metadata)
	put(inState, in.State)
	return n, nil
}

// EncodeDecision encodes d into out in the v1 output layout and returns the
// number of bytes written: the value decide_v1 returns.
func EncodeDecision(d *Decision, out []byte) (int, error) {
	if len(d.Message) > MaxMessage {
		return 0, ErrMessageTooLong
	}
	if len(d.State) > MaxState {
		return 0, ErrStateTooLong
	}
	if d.Cost < 0 {
		return 0, ErrNegativeCost
	}
	state := d.State
	if !d.ReplaceState {
		state = nil
	}
	n := OutputHeaderSize + len(d.Message) + len(state)
	if len(out) < n {
		return 0, ErrShortBuffer
	}
	var decision, flags uint32
	if d.Allowed {
		decision = 1
	}
	if d.ReplaceState {
		flags |= OutReplaceState
	}
	var limit int64
	if d.LimitSet {
		flags |= OutLimitSet
		limit = d.Limit
	}
	le.PutUint32(out[outDecision:], decision)
	le.PutUint32(out[outFlags:], flags)
	le.PutUint64(out[outCost:], uint64(d.Cost))
	le.PutUint64(out[outLimit:], uint64(limit))
	le.PutUint32(out[outMsgLen:], uint32(len(d.Message)))
	le.PutUint32(out[outStateLen:], uint32(len(state)))
	copy(out[OutputHeaderSize:], d.Message)
	copy(out[OutputHeaderSize+len(d.Message):], state)
	return n, nil
}

// DecodeDecision decodes the first n bytes of out, as returned by decide_v1,
// with the checks the host makes. Message and State are copies.
func DecodeDecision(out []byte, n int, d *Decision) error {
	if n < OutputHeaderSize || n > len(out) {
		return ErrOutOfBounds
	}
	decision, flags := le.Uint32(out[outDecision:]), le.Uint32(out[outFlags:])
	if decision > 1 {
		return ErrInvalidDecision
	}
	msgLen, stateLen := le.Uint32(out[outMsgLen:]), le.Uint32(out[outStateLen:])
	switch {
	case msgLen > MaxMessage:
		return ErrMessageTooLong
	case stateLen > MaxState:
		return ErrStateTooLong
	case OutputHeaderSize+int(msgLen)+int(stateLen) != n:
		return ErrOutOfBounds
	}
	*d = Decision{
		Allowed:      decision == 1,
		Cost:         int64(le.Uint64(out[outCost:])),
		ReplaceState: flags&OutReplaceState != 0,
		LimitSet:     flags&OutLimitSet != 0,
	}
	if d.Cost < 0 {
		return ErrNegativeCost
	}
	if d.LimitSet {
		d.Limit = int64(le.Uint64(out[outLimit:]))
	}
	msg := out[OutputHeaderSize : OutputHeaderSize+msgLen]
	if !utf8.Valid(msg) {
		return ErrInvalidUTF8
	}
	d.Message = string(msg)
	if d.ReplaceState {
		d.State = append([]byte{}, out[OutputHeaderSize+msgLen:n]...)
	}
	return nil
}
