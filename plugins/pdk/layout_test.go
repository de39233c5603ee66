package pdk

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func sample() Input {
	return Input{
		Now:         time.Date(2026, 3, 7, 12, 0, 0, 0, time.UTC),
		Usage:       7,
		Limit:       -1,
		Quantity:    3,
		PeriodStart: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
		PeriodEnd:   time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC),
		Mode:        Test,
		CheckOnly:   true,
		CustomerID:  "cus_1",
		Plan:        "pro",
		Feature:     "exports",
		Metadata:    []byte(`{"k":"v"}`),
		State:       []byte{9, 8, 7},
	}
}

func TestInputRoundTrip(t *testing.T) {
	in := sample()
	buf := make([]byte, 512)
	n, err := EncodeInput(&in, buf)
	if err != nil {
		t.Fatal(err)
	}
	if want := HeaderSize + 5 + 3 + 7 + 9 + 3; n != want {
		t.Errorf("n: got %d, want %d", n, want)
	}
	var got Input
	if err := DecodeInput(buf[:n], &got); err != nil {
		t.Fatal(err)
	}
	if !got.Now.Equal(in.Now) || got.Usage != in.Usage || got.Limit != in.Limit || got.Quantity != in.Quantity ||
		!got.PeriodStart.Equal(in.PeriodStart) || !got.PeriodEnd.Equal(in.PeriodEnd) || got.Mode != in.Mode ||
		got.CheckOnly != in.CheckOnly || got.CustomerID != in.CustomerID || got.Plan != in.Plan ||
		got.Feature != in.Feature || !bytes.Equal(got.Metadata, in.Metadata) || !bytes.Equal(got.State, in.State) {
		t.Errorf("got %+v, want %+v", got, in)
	}
	// Fixed offsets of the ABI.
	if le.Uint32(buf[0:]) != 1 || le.Uint32(buf[4:]) != 104 || le.Uint64(buf[32:]) != 3 || le.Uint32(buf[60:]) != 1 ||
		le.Uint32(buf[64:]) != 104 || le.Uint32(buf[68:]) != 5 {
		t.Errorf("header bytes: % x", buf[:HeaderSize])
	}

	if _, err := EncodeInput(&in, buf[:n-1]); !errors.Is(err, ErrShortBuffer) {
		t.Errorf("short buffer: got %v", err)
	}
}

func TestDecodeInputRejects(t *testing.T) {
	in := sample()
	buf := make([]byte, 512)
	n, _ := EncodeInput(&in, buf)
	tests := []struct {
		name  string
		mod   func(b []byte) []byte
		wantE error
	}{
		{"short", func(b []byte) []byte { return b[:HeaderSize-1] }, ErrShortBuffer},
		{"version", func(b []byte) []byte { le.PutUint32(b, 2); return b }, ErrVersion},
		{"header size", func(b []byte) []byte { le.PutUint32(b[4:], 100); return b }, ErrOutOfBounds},
		{"feature past end", func(b []byte) []byte { le.PutUint32(b[84:], 1000); return b }, ErrOutOfBounds},
		{"offset overflow", func(b []byte) []byte { le.PutUint32(b[96:], 0xffffffff); return b }, ErrOutOfBounds},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.mod(bytes.Clone(buf[:n]))
			var got Input
			if err := DecodeInput(b, &got); !errors.Is(err, tc.wantE) {
				t.Errorf("got %v, want %v", err, tc.wantE)
			}
		})
	}
}

func TestDecisionRoundTrip(t *testing.T) {
	tests := []Decision{
		Allow(3),
		Deny("no more"),
		Allow(0).WithLimit(-1),
		Deny("").WithState([]byte("state")).WithLimit(500),
		{Allowed: true, Cost: 1, State: []byte("ignored")}, // no ReplaceState: not sent
	}
	for _, d := range tests {
		out := make([]byte, OutputHeaderSize+MaxMessage+MaxState)
		n, err := EncodeDecision(&d, out)
		if err != nil {
			t.Fatal(err)
		}
		var got Decision
		if err := DecodeDecision(out, n, &got); err != nil {
			t.Fatal(err)
		}
		want := d
		if !want.ReplaceState {
			want.State = nil
		}
		if !want.LimitSet {
			want.Limit = 0
		}
		if got.Allowed != want.Allowed || got.Cost != want.Cost || got.Limit != want.Limit || got.LimitSet != want.LimitSet ||
			got.Message != want.Message || !bytes.Equal(got.State, want.State) || got.ReplaceState != want.ReplaceState {
			t.Errorf("got %+v, want %+v", got, want)
		}
	}
}

func TestEncodeDecisionRejects(t *testing.T) {
	out := make([]byte, 2048)
	for _, tc := range []struct {
		d    Decision
		want error
	}{
		{Deny(strings.Repeat("x", MaxMessage+1)), ErrMessageTooLong},
		{Allow(1).WithState(make([]byte, MaxState+1)), ErrStateTooLong},
		{Allow(-1), ErrNegativeCost},
	} {
		if _, err := EncodeDecision(&tc.d, out); !errors.Is(err, tc.want) {
			t.Errorf("got %v, want %v", err, tc.want)
		}
	}
	d := Deny("hello")
	if _, err := EncodeDecision(&d, out[:OutputHeaderSize+4]); !errors.Is(err, ErrShortBuffer) {
		t.Errorf("short: got %v", err)
	}
}

func TestDecodeDecisionRejects(t *testing.T) {
	base := func() []byte {
		d := Deny("hi").WithState([]byte{1})
		out := make([]byte, 64)
		EncodeDecision(&d, out)
		return out
	}
	n := OutputHeaderSize + 3
	tests := []struct {
		name string
		mod  func(b []byte) int
		want error
	}{
		{"short", func(b []byte) int { return 31 }, ErrOutOfBounds},
		{"decision", func(b []byte) int { le.PutUint32(b, 2); return n }, ErrInvalidDecision},
		{"inconsistent", func(b []byte) int { return n + 1 }, ErrOutOfBounds},
		{"message cap", func(b []byte) int { le.PutUint32(b[24:], 513); return n }, ErrMessageTooLong},
		{"state cap", func(b []byte) int { le.PutUint32(b[28:], 1025); return n }, ErrStateTooLong},
		{"cost", func(b []byte) int { le.PutUint64(b[8:], ^uint64(0)); return n }, ErrNegativeCost},
		{"utf8", func(b []byte) int { b[32] = 0xff; return n }, ErrInvalidUTF8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := base()
			var d Decision
			if err := DecodeDecision(b, tc.mod(b), &d); !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestBuiltin(t *testing.T) {
	for _, tc := range []struct {
		usage, limit, qty int64
		allowed           bool
	}{
		{0, 10, 10, true}, {1, 10, 10, false}, {1e9, -1, 5, true}, {0, 0, 1, false},
	} {
		in := Input{Usage: tc.usage, Limit: tc.limit, Quantity: tc.qty, Feature: "requests"}
		d := in.Builtin()
		if d.Allowed != tc.allowed || (d.Allowed && d.Cost != tc.qty) || (!d.Allowed && d.Message != "Please upgrade to unlock more requests") {
			t.Errorf("%+v: got %+v", tc, d)
		}
	}
}

// ExampleHandle shows a policy and how to test it on the host.
func ExampleHandle() {
	decide := func(in Input) Decision {
		if in.Feature == "exports" {
			in.Quantity *= 10 // an export costs 10 units
		}
		return in.Builtin()
	}
	Handle(decide) // in a policy: func init() { pdk.Handle(decide) }

	in := Input{Usage: 0, Limit: 15, Quantity: 2, Feature: "exports"}
	d := decide(in)
	fmt.Println(d.Allowed, d.Cost) // 20 > 15
	// Output: false 0
}
