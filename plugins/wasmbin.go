package plugins

import (
	"errors"
	"fmt"
)

// Structural limits checked before wazero decodes a module.
const (
	// maxTables is the most tables a module may define.
	maxTables = 4
	// maxFunctionLocals and maxModuleLocals bound the locals of one
	// function and of all of them: wazero allocates the declared count
	// up front, and 6 bytes can declare 2^32 locals.
	maxFunctionLocals = 1 << 16
	maxModuleLocals   = 1 << 22
)

// declLimits bound what a module may declare (the Options fields of the
// same names). prepare refuses a module over any of them before wazero
// decodes it: compiling costs time and memory per function and per byte of
// code (a valid 8 MiB module of two million empty functions takes a GiB and
// tens of seconds), so the limits bound the work of one compile.
type declLimits struct {
	tableElements uint32
	functions     int // functions the module defines (not imports)
	functionSize  int // bytes of one function body
	codeSize      int // bytes of the code section
	types         int
	imports       int
	exports       int
	globals       int
	dataSegments  int
	elemSegments  int
}

// declared counts what a module declares (for tests and the limits).
type declared struct {
	functions, types, imports, exports, globals, dataSegments, elemSegments int
	codeSize, maxFunctionSize                                               int
}

// errLimit is a declaration over a limit found by prepare.
var errLimit = errors.New("over a limit")

// scanned is what prepare learned about a module.
type scanned struct {
	declared

	// capped is the module with every table's maximum at most
	// MaxTableElements; the same slice as the input when nothing changed.
	capped []byte
	// otherImports lists, as "module.name", the imports of a table, memory,
	// global or tag (wazero lists only imported functions and memories).
	otherImports []string
}

// errWasmBinary is a structural error found by prepare.
var errWasmBinary = errors.New("malformed binary")

// prepare walks the structure of a wasm binary before wazero decodes it,
// because wazero trusts the counts it reads: it allocates a vector of the
// declared length before reading its elements, so a module of a few bytes
// declaring 2^32 imports, locals or data bytes would exhaust the host's
// memory. prepare checks that every vector fits in the bytes that remain of
// its section (each element takes at least one byte), bounds the locals,
// refuses tables over maxElems elements, and caps the maximum of every
// table at maxElems, so that table.grow (which wazero runs as one
// uninterruptible allocation, up to 2^32 elements when a table has no
// maximum) fails beyond it.
//
// It also refuses a module declaring more than lim allows (functions, bytes
// of code, types, imports, exports, globals, data and element segments),
// reading only the vector lengths and the body sizes, with an error wrapping
// errLimit that names the limit.
//
// Instructions inside function bodies are not read; wazero's own validation
// of them allocates as it reads.
func prepare(wasm []byte, lim declLimits) (*scanned, error) {
	maxElems := lim.tableElements
	if len(wasm) < 8 || string(wasm[:8]) != "\x00asm\x01\x00\x00\x00" {
		return nil, errors.New("not a WebAssembly 1.0 binary")
	}
	out := &scanned{capped: wasm}
	top := wasmReader{b: wasm, off: 8}
	var locals uint64
	for top.off < len(top.b) {
		start := top.off
		id := top.byte()
		size := top.leb()
		if top.err != nil || size > uint64(top.remaining()) {
			return nil, fmt.Errorf("%w: section %d is cut short", errWasmBinary, id)
		}
		end := top.off + int(size)
		s := wasmReader{b: wasm[:end], off: top.off}
		top.off = end
		var err error
		switch id {
		case 0:
			err = s.custom()
		case 1: // type
			err = s.vecMax(lim.types, "types", &out.types, func() {
				if form := s.byte(); form != 0x60 && s.err == nil {
					s.fail("unsupported type form %#x", form)
					return
				}
				s.vec(s.valtype)
				s.vec(s.valtype)
			})
		case 2: // import
			err = s.vecMax(lim.imports, "imports", &out.imports, func() {
				mod, name := s.name(), s.name()
				switch kind := s.byte(); kind {
				case 0x00: // func
					s.leb()
					return
				case 0x01: // table
					s.valtype()
					s.limits()
				case 0x02: // memory
					s.limits()
				case 0x03: // global
					s.valtype()
					s.byte()
				case 0x04: // tag
					s.byte()
					s.leb()
				default:
					s.fail("import %s.%s has unknown kind %#x", mod, name, kind)
				}
				if s.err == nil {
					out.otherImports = append(out.otherImports, mod+"."+name)
				}
			})
		case 3: // function
			err = s.vecMax(lim.functions, "functions", &out.functions, func() { s.leb() })
		case 4: // table
			var capped []byte
			if capped, err = s.capTables(maxElems); err == nil && capped != nil {
				b := make([]byte, 0, len(wasm)+16)
				b = append(b, wasm[:start]...)
				b = append(b, 4)
				b = appendLEB(b, uint64(len(capped)))
				b = append(b, capped...)
				out.capped = append(b, wasm[end:]...)
			}
		case 5: // memory
			err = s.vec(s.limits)
		case 6: // global
			err = s.vecMax(lim.globals, "globals", &out.globals, func() {
				s.valtype()
				s.byte()
				s.constExpr()
			})
		case 7: // export
			err = s.vecMax(lim.exports, "exports", &out.exports, func() {
				s.name()
				s.byte()
				s.leb()
			})
		case 8, 12: // start, data count
			s.leb()
			err = s.err
		case 9: // element
			err = s.vecMax(lim.elemSegments, "element segments", &out.elemSegments, s.element)
		case 10: // code
			if out.codeSize = int(size); out.codeSize > lim.codeSize {
				return nil, limitf("the code section is %d bytes; the limit is %d", size, lim.codeSize)
			}
			var bodies, fns int
			err = s.vecMax(lim.functions, "function bodies", &bodies, func() {
				n := s.leb()
				if s.err != nil || n > uint64(s.remaining()) {
					s.fail("function body is cut short")
					return
				}
				if int(n) > out.maxFunctionSize {
					out.maxFunctionSize = int(n)
				}
				if n > uint64(lim.functionSize) {
					s.err = limitf("function %d is %d bytes; the limit is %d", fns, n, lim.functionSize)
					return
				}
				fns++
				bodyEnd := s.off + int(n)
				body := wasmReader{b: s.b[:bodyEnd], off: s.off}
				var fn uint64
				if err := body.vec(func() {
					fn += body.leb()
					body.valtype()
				}); err != nil {
					s.err = err
					return
				}
				locals += fn
				if fn > maxFunctionLocals {
					s.fail("a function declares %d locals; the limit is %d", fn, maxFunctionLocals)
				} else if locals > maxModuleLocals {
					s.fail("the functions declare over %d locals", maxModuleLocals)
				}
				s.off = bodyEnd
			})
		case 11: // data
			err = s.vecMax(lim.dataSegments, "data segments", &out.dataSegments, func() {
				switch flags := s.leb(); flags {
				case 0:
					s.constExpr()
				case 1:
				case 2:
					s.leb()
					s.constExpr()
				default:
					s.fail("data segment has unknown flags %d", flags)
				}
				s.bytes()
			})
		case 13: // tag
			err = s.vec(func() {
				s.byte()
				s.leb()
			})
		default:
			err = fmt.Errorf("%w: unknown section %d", errWasmBinary, id)
		}
		if err == nil && s.err == nil && s.off != end {
			err = fmt.Errorf("%w: section %d has %d bytes left over", errWasmBinary, id, end-s.off)
		}
		if err == nil {
			err = s.err
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// capTables reads a table section and returns it with every maximum at
// most maxElems, or nil when it needs no change.
func (r *wasmReader) capTables(maxElems uint32) ([]byte, error) {
	n := r.leb()
	if r.err == nil && n > maxTables {
		return nil, fmt.Errorf("module defines %d tables; the limit is %d", n, maxTables)
	}
	out := appendLEB(nil, n)
	changed := false
	for i := uint64(0); i < n && r.err == nil; i++ {
		ref := r.byte()
		if ref != 0x70 && ref != 0x6f { // funcref, externref
			return nil, fmt.Errorf("table %d has an unsupported type %#x", i, ref)
		}
		flags := r.byte()
		if flags > 1 {
			return nil, fmt.Errorf("table %d has unsupported limits %#x", i, flags)
		}
		lo, hi := r.leb(), uint64(maxElems)
		if flags == 1 {
			if max := r.leb(); max <= hi {
				hi = max
			} else {
				changed = true
			}
		} else {
			changed = true
		}
		if lo > uint64(maxElems) {
			return nil, fmt.Errorf("table %d has %d elements; the limit is %d", i, lo, maxElems)
		}
		out = append(out, ref, 1)
		out = appendLEB(out, lo)
		out = appendLEB(out, hi)
	}
	if r.err != nil || !changed {
		return nil, r.err
	}
	return out, nil
}

func (r *wasmReader) element() {
	switch flags := r.leb(); flags {
	case 0:
		r.constExpr()
		r.vec(func() { r.leb() })
	case 1, 3:
		r.byte()
		r.vec(func() { r.leb() })
	case 2:
		r.leb()
		r.constExpr()
		r.byte()
		r.vec(func() { r.leb() })
	case 4:
		r.constExpr()
		r.vec(r.constExpr)
	case 5, 7:
		r.valtype()
		r.vec(r.constExpr)
	case 6:
		r.leb()
		r.constExpr()
		r.valtype()
		r.vec(r.constExpr)
	default:
		r.fail("element segment has unknown flags %d", flags)
	}
}

// custom checks the "name" section, which wazero decodes; it skips the
// others.
func (r *wasmReader) custom() error {
	if r.name() != "name" || r.err != nil {
		r.off = len(r.b)
		return r.err
	}
	for r.off < len(r.b) && r.err == nil {
		id := r.byte()
		n := r.leb()
		if r.err != nil || n > uint64(r.remaining()) {
			return fmt.Errorf("%w: name subsection %d is cut short", errWasmBinary, id)
		}
		end := r.off + int(n)
		s := wasmReader{b: r.b[:end], off: r.off}
		switch id {
		case 0: // module name
			s.name()
		case 1: // function names
			s.vec(func() {
				s.leb()
				s.name()
			})
		case 2: // local names
			s.vec(func() {
				s.leb()
				s.vec(func() {
					s.leb()
					s.name()
				})
			})
		default:
			s.off = end
		}
		if s.err != nil {
			return s.err
		}
		r.off = end
	}
	return r.err
}

// wasmReader reads a wasm binary; the first error sticks.
type wasmReader struct {
	b   []byte
	off int
	err error
}

func (r *wasmReader) remaining() int { return len(r.b) - r.off }

func (r *wasmReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{errWasmBinary}, args...)...)
	}
}

func (r *wasmReader) byte() byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.b) {
		r.fail("unexpected end")
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

// leb reads an unsigned LEB128 number (up to 64 bits). Signed numbers take
// the same bytes, so it also skips them.
func (r *wasmReader) leb() uint64 {
	var v uint64
	for shift := 0; shift < 70; shift += 7 {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			return v
		}
	}
	r.fail("LEB128 number too long")
	return 0
}

// vec reads a vector, calling each once per element, after checking that
// the declared length fits in the bytes left.
func (r *wasmReader) vec(each func()) error {
	n := r.leb()
	if r.err == nil && n > uint64(r.remaining()) {
		r.fail("vector of %d elements in %d bytes", n, r.remaining())
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		each()
	}
	return r.err
}

// vecMax is vec for a vector of at most limit elements, whose length it
// stores in *n: a longer one fails with an error wrapping errLimit that
// names what (plural).
func (r *wasmReader) vecMax(limit int, what string, n *int, each func()) error {
	save := r.off
	count := r.leb()
	if r.err == nil && count > uint64(r.remaining()) {
		r.fail("vector of %d elements in %d bytes", count, r.remaining())
	} else if r.err == nil && count > uint64(limit) {
		r.err = limitf("module declares %d %s; the limit is %d", count, what, limit)
	}
	if r.err != nil {
		return r.err
	}
	*n = int(count)
	r.off = save
	return r.vec(each)
}

// limitf returns an error wrapping errLimit.
func limitf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errLimit}, args...)...)
}

// bytes skips a byte vector.
func (r *wasmReader) bytes() {
	n := r.leb()
	if r.err == nil && n > uint64(r.remaining()) {
		r.fail("byte vector of %d in %d bytes", n, r.remaining())
		return
	}
	r.off += int(n)
}

func (r *wasmReader) name() string {
	n := r.leb()
	if r.err == nil && n > uint64(r.remaining()) {
		r.fail("name of %d bytes in %d", n, r.remaining())
	}
	if r.err != nil {
		return ""
	}
	s := string(r.b[r.off : r.off+int(n)])
	r.off += int(n)
	return s
}

// valtype skips a value or reference type.
func (r *wasmReader) valtype() {
	if c := r.byte(); c == 0x63 || c == 0x64 { // (ref null? heaptype)
		r.leb()
	}
}

func (r *wasmReader) limits() {
	flags := r.byte()
	r.leb()
	if flags&1 != 0 {
		r.leb()
	}
}

// constExpr skips a constant expression, up to and including its end.
func (r *wasmReader) constExpr() {
	for r.err == nil {
		switch op := r.byte(); op {
		case 0x0b: // end
			return
		case 0x41, 0x42, 0x23, 0xd0, 0xd2: // i32/i64.const, global.get, ref.null, ref.func
			r.leb()
		case 0x43: // f32.const
			r.skip(4)
		case 0x44: // f64.const
			r.skip(8)
		case 0x6a, 0x6b, 0x6c, 0x7c, 0x7d, 0x7e: // extended constant arithmetic
		case 0xfd: // v128.const
			r.leb()
			r.skip(16)
		default:
			r.fail("unsupported instruction %#x in a constant expression", op)
		}
	}
}

func (r *wasmReader) skip(n int) {
	if r.err == nil && n > r.remaining() {
		r.fail("unexpected end")
		return
	}
	r.off += n
}

func appendLEB(b []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
