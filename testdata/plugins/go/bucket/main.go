// Command bucket is an example limit policy: on top of the tier's limit for
// the period, each customer and feature gets a token bucket of 10 units that
// refills at 1 unit per second, kept in the plugin state. It allows bursts of
// 10 and a sustained 1 call per second.
//
// State (16 bytes, little-endian): tokens in thousandths (i64), then the
// time of the last refill in Unix ms (i64).
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o bucket.wasm .
package main

import (
	"encoding/binary"

	"github.com/dream-api/dream-api/plugins/pdk"
)

const (
	capacity = 10 * 1000 // thousandths of a unit
	perMilli = 1         // thousandths of a unit refilled per ms: 1 unit/s
)

func init() { pdk.Handle(decide) }

func main() {}

// state is the new state; returning a slice of it allocates nothing.
var state [16]byte

func decide(in pdk.Input) pdk.Decision {
	if d := in.Builtin(); !d.Allowed {
		return d // the period's quota comes first
	}
	now := in.Now.UnixMilli()
	tokens, last := int64(capacity), now
	if len(in.State) == len(state) {
		tokens = int64(binary.LittleEndian.Uint64(in.State))
		last = int64(binary.LittleEndian.Uint64(in.State[8:]))
	}
	if elapsed := now - last; elapsed > 0 {
		tokens = min(capacity, tokens+elapsed*perMilli)
		last = now
	}
	d := pdk.Deny("Too many calls: the bucket refills at 1 per second")
	if need := in.Quantity * 1000; tokens >= need {
		tokens -= need
		d = pdk.Allow(in.Quantity)
	}
	binary.LittleEndian.PutUint64(state[:], uint64(tokens))
	binary.LittleEndian.PutUint64(state[8:], uint64(last))
	return d.WithState(state[:])
}
