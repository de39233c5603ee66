package plugins

import (
	"context"
	"testing"

	"github.com/dream-api/dream-api/engine"
)

// BenchmarkDecide is one decision of the WAT builtin policy, the same as
// engine.BuiltinLimits: compare with BenchmarkDecideBuiltinGo.
func BenchmarkDecide(b *testing.B) {
	benchmarkDecide(b, "builtin")
}

// BenchmarkDecideGoPDK is one decision of a Go guest (go/weekend).
func BenchmarkDecideGoPDK(b *testing.B) {
	benchmarkDecide(b, "go/weekend")
}

// BenchmarkDecideAssemblyScript is one decision of as/weighted_as.
func BenchmarkDecideAssemblyScript(b *testing.B) {
	benchmarkDecide(b, "as/weighted_as")
}

func benchmarkDecide(b *testing.B, name string) {
	r := newRuntime(b, nil) // Deadline 1s: no spurious overruns on a busy machine
	m := load(b, r, name)
	ctx := context.Background()
	in := call("requests", 5, 10, 1)
	var out engine.Decision
	b.ReportAllocs()
	for b.Loop() {
		if err := m.Decide(ctx, in, &out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecideParallel runs the WAT builtin policy from GOMAXPROCS
// goroutines on one module.
func BenchmarkDecideParallel(b *testing.B) {
	r := newRuntime(b, nil) // Deadline 1s: no spurious overruns on a busy machine
	m := load(b, r, "builtin")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		in := call("requests", 5, 10, 1)
		var out engine.Decision
		for pb.Next() {
			if err := m.Decide(ctx, in, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDecideBuiltinGo is the same decision without WebAssembly.
func BenchmarkDecideBuiltinGo(b *testing.B) {
	ctx := context.Background()
	in := call("requests", 5, 10, 1)
	var out engine.Decision
	var p engine.Policy = engine.BuiltinLimits{}
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Decide(ctx, in, &out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInstantiateGoPDK is the cost of one more instance of a Go guest
// (compiled once): instantiation, _initialize (the Go runtime's start) and
// alloc. The pool pays it once per slot, and after a plugin error.
func BenchmarkInstantiateGoPDK(b *testing.B) {
	r := newRuntime(b, nil) // Deadline 1s: no spurious overruns on a busy machine
	m := load(b, r, "go/weekend")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		inst, err := m.newInstance(ctx, initialInput)
		if err != nil {
			b.Fatal(err)
		}
		inst.close()
	}
}

// BenchmarkLoadWAT is Load of the builtin policy when its compiled code is
// cached: checks, one instance and the self-test.
func BenchmarkLoadWAT(b *testing.B) {
	r := newRuntime(b, nil)       // Deadline 1s: no spurious overruns on a busy machine
	keep := load(b, r, "builtin") // keeps the compiled code
	_ = keep
	wasm := wasmFile(b, "builtin")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		m, err := r.Load(ctx, wasm)
		if err != nil {
			b.Fatal(err)
		}
		m.Close(ctx)
	}
}
