// Command burst is an example limit policy: a burst guard on top of the
// tier's limit for the period. Each customer and feature gets a token bucket
// of 100 000 units that refills at 10 000 units per second, kept in the
// plugin state: even a load test does not notice it, a runaway client is
// held to 10 000 calls a second. It reads and writes 16 bytes of state on
// every call, so it is also the Go-PDK case of the benchmarks
// (BenchmarkServeTrackPolicy, BenchmarkMeterTrackPolicy "wasm-go-state",
// `dream-bench run -wasm testdata/plugins/go/burst/burst.wasm`).
//
// State (16 bytes, little-endian): tokens in thousandths (i64), then the
// time of the last refill in Unix ms (i64).
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o burst.wasm .
package main

import (
	"encoding/binary"

	"github.com/dream-api/dream-api/plugins/pdk"
)

const (
	capacity = 100_000 * 1000 // thousandths of a unit
	perMilli = 10_000         // thousandths of a unit refilled per ms: 10 000 units/s
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
	d := pdk.Deny("Too many calls: slow down to 10 000 a second")
	if need := in.Quantity * 1000; tokens >= need {
		tokens -= need
		d = pdk.Allow(in.Quantity)
	}
	binary.LittleEndian.PutUint64(state[:], uint64(tokens))
	binary.LittleEndian.PutUint64(state[8:], uint64(last))
	return d.WithState(state[:])
}
