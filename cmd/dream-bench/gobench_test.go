package main

import (
	"strings"
	"testing"
)

// gobench ends the Go benchmarks' output with the in-process ratios: WASM
// against built-in by ns/op, the stateful policies by CPU per track.
func TestGoBenchRatios(t *testing.T) {
	in := `BenchmarkMeterTrackPolicy/policy=builtin/goroutines=32-2   30000   20000 ns/op   1043 B/op   8 allocs/op
BenchmarkMeterTrackPolicy/policy=wasm/goroutines=32-2   30000   25000 ns/op   1043 B/op   8 allocs/op
BenchmarkServeTrackPolicy/policy=builtin/goroutines=32-2   30000   19000 ns/op   15000 cpu-ns/op   1837 B/op   18 allocs/op
BenchmarkServeTrackPolicy/policy=wasm-state/goroutines=32-2   30000   21000 ns/op   16000 cpu-ns/op   2611 B/op   30 allocs/op
BenchmarkServeTrackPolicy/policy=wasm-go-state/goroutines=32-2   30000   23000 ns/op   20000 cpu-ns/op   3432 B/op   32 allocs/op
ok  	github.com/dream-api/dream-api/http	3.624s
`
	var out strings.Builder
	if err := runGoBench(strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"WASM / built-in 0.800x",
		"ServeTrack wasm-state (32 goroutines)",
		"built-in / it 0.938x",
		"built-in / it 0.750x",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if err := runGoBench(strings.NewReader("--- FAIL: BenchmarkX\n"), &out); err == nil {
		t.Error("a failed benchmark is not an error")
	}
}
