// Command counter is counter.wat written with the Go PDK: it keeps a call
// counter (u64, little-endian) in the plugin state, allows every call, and
// reports a limit of 42. It reads and writes 8 bytes of state on every
// call, the same work as counter.wat, so the benchmarks compare the Go
// guest with the WAT one (BenchmarkServeTrackPolicy and
// BenchmarkMeterTrackPolicy "wasm-go-state", and
// `dream-bench run -wasm testdata/plugins/go/counter/counter.wasm`).
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o counter.wasm .
package main

import (
	"encoding/binary"

	"github.com/dream-api/dream-api/plugins/pdk"
)

func init() { pdk.Handle(decide) }

func main() {}

// state is the new state; returning a slice of it allocates nothing.
var state [8]byte

func decide(in pdk.Input) pdk.Decision {
	var count uint64
	if len(in.State) == len(state) {
		count = binary.LittleEndian.Uint64(in.State)
	}
	binary.LittleEndian.PutUint64(state[:], count+1)
	return pdk.Allow(in.Quantity).WithLimit(42).WithState(state[:])
}
