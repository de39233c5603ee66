package plugins

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// section encodes one wasm section.
func section(id byte, content ...[]byte) []byte {
	var body []byte
	for _, c := range content {
		body = append(body, c...)
	}
	return append(append([]byte{id}, appendLEB(nil, uint64(len(body)))...), body...)
}

func module(sections ...[]byte) []byte {
	b := []byte("\x00asm\x01\x00\x00\x00")
	for _, s := range sections {
		b = append(b, s...)
	}
	return b
}

func leb(v uint64) []byte { return appendLEB(nil, v) }

// tableLimits are the default declaration limits with tables capped at
// elems.
func tableLimits(elems uint32) declLimits {
	o := (&Options{MaxTableElements: elems}).EnsureDefaults()
	return o.declLimits()
}

var (
	typeVoid = section(1, leb(1), []byte{0x60, 0, 0}) // () -> ()
	oneFunc  = section(3, leb(1), leb(0))
)

// TestPrepareRefusesBombs: modules of a few bytes that declare huge vectors,
// which wazero would allocate before reading (and crash the host).
func TestPrepareRefusesBombs(t *testing.T) {
	body := append(append(leb(1), leb(0xf0000000)...), 0x7f, 0x0b) // 4e9 i32 locals
	tests := []struct {
		name string
		wasm []byte
		want string
	}{
		{"locals", module(typeVoid, oneFunc, section(10, leb(1), leb(uint64(len(body))), body)), "declares 4026531840 locals"},
		{"function vector", module(typeVoid, section(3, leb(0xffffffff), leb(0))), "vector of 4294967295 elements in 1 bytes"},
		{"import vector", module(section(2, leb(0xffffffff))), "vector of 4294967295 elements in 0 bytes"},
		{"type params", module(section(1, leb(1), []byte{0x60}, leb(0xffffffff))), "vector of 4294967295 elements"},
		{"data bytes", module(section(11, leb(1), leb(1), leb(0xffffffff))), "byte vector of 4294967295"},
		{"element vector", module(section(9, leb(1), leb(1), []byte{0}, leb(0xffffffff))), "vector of 4294967295"},
		{"function names", module(section(0, leb(4), []byte("name"), []byte{1}, leb(5), leb(0xffffffff))), "vector of 4294967295"},
		{"section size", append(module(), 1, 0xff, 0xff, 0x03), "section 1 is cut short"},
		{"tables", module(section(4, leb(5))), "module defines 5 tables; the limit is 4"},
		{"table size", module(section(4, leb(1), []byte{0x70, 0}, leb(1<<20))), "table 0 has 1048576 elements; the limit is 131072"},
		{"unknown section", module(section(42)), "unknown section 42"},
		{"not wasm", []byte("\x00asm\x02\x00\x00\x00"), "not a WebAssembly 1.0 binary"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := prepare(tc.wasm, tableLimits(DefaultMaxTableElements))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("prepare: got %v, want %q", err, tc.want)
			}
		})
	}
	// Through Load, each is a ValidationError and the host survives.
	r := newRuntime(t, nil)
	for _, tc := range tests {
		_, err := r.Load(context.Background(), tc.wasm)
		var ve *ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("Load(%s): got %v", tc.name, err)
		}
	}
}

func TestPrepareCapsTables(t *testing.T) {
	mod := module(section(4, leb(1), []byte{0x70, 0x00}, leb(5)), section(10, leb(0)))
	sc, err := prepare(mod, tableLimits(300))
	want := module(section(4, leb(1), []byte{0x70, 0x01}, leb(5), leb(300)), section(10, leb(0)))
	if err != nil || string(sc.capped) != string(want) {
		t.Fatalf("prepare: got %q, %v; want %q", sc.capped, err, want)
	}
	// Already capped: unchanged, not copied.
	if again, err := prepare(want, tableLimits(300)); err != nil || &again.capped[0] != &want[0] {
		t.Errorf("prepare of a capped module: copied, or %v", err)
	}
	// A maximum over the cap is lowered.
	low, err := prepare(want, tableLimits(100))
	if err != nil || string(low.capped) != string(module(section(4, leb(1), []byte{0x70, 0x01}, leb(5), leb(100)), section(10, leb(0)))) {
		t.Errorf("prepare lowering: got %q, %v", low.capped, err)
	}
}

// TestPrepareExamples: every example passes, and only tables change.
func TestPrepareExamples(t *testing.T) {
	paths, _ := filepath.Glob("../testdata/plugins/*.wasm")
	more, _ := filepath.Glob("../testdata/plugins/*/*/*.wasm")
	paths = append(append(paths, more...), "../testdata/plugins/as/weighted_as.wasm")
	for _, p := range paths {
		name := strings.TrimSuffix(strings.TrimPrefix(p, "../testdata/plugins/"), ".wasm")
		if dir, base, ok := strings.Cut(name, "/"); ok && dir == "go" {
			name = "go/" + filepath.Base(base)
		}
		wasm := wasmFile(t, name)
		sc, err := prepare(wasm, tableLimits(DefaultMaxTableElements))
		switch {
		case name == "big_table":
			if err == nil {
				t.Errorf("%s: got nil error", name)
			}
		case err != nil:
			t.Errorf("%s: %v", name, err)
		case strings.HasPrefix(name, "go/") || name == "table_grow":
			if len(sc.capped) == len(wasm) {
				t.Errorf("%s: table not capped", name)
			}
		case &sc.capped[0] != &wasm[0]:
			t.Errorf("%s: changed", name)
		}
	}
}
