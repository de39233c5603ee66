// Command hostile is a misbehaving limit policy for the runtime's tests. It
// allows every call like the built-in limits, except by feature:
//
//	"panic"  the handler panics (decide_v1 returns -4, the panic is logged)
//	"loop"   the handler never returns (stopped at the deadline)
//	"oom"    the handler allocates until the Go runtime dies (memory cap)
//	"print"  prints to stdout and stderr, then decides as usual
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o hostile.wasm .
package main

import (
	"fmt"
	"os"

	"github.com/dream-api/dream-api/plugins/pdk"
)

func init() { pdk.Handle(decide) }

func main() {}

var sink [][]byte

func decide(in pdk.Input) pdk.Decision {
	switch in.Feature {
	case "panic":
		panic("boom")
	case "loop":
		for n := 0; ; n++ {
			if n < 0 {
				break
			}
		}
	case "oom":
		for {
			sink = append(sink, make([]byte, 1<<20))
		}
	case "print":
		fmt.Println("to stdout")
		fmt.Fprintln(os.Stderr, "to stderr")
	}
	return in.Builtin()
}
