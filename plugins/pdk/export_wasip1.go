//go:build wasip1

package pdk

import (
	"fmt"
	"unsafe"
)

// buf is the one buffer the host asks for with alloc. The Go garbage
// collector does not move objects, and buf is never freed, so its address
// stays valid for the life of the instance.
var buf []byte

// alloc is the `alloc(size i32) -> i32` export: the host calls it once per
// instance and uses the bytes as its input and output buffers.
//
//go:wasmexport alloc
func alloc(size int32) int32 {
	if size <= 0 {
		return 0
	}
	buf = make([]byte, size)
	return int32(uintptr(unsafe.Pointer(unsafe.SliceData(buf))))
}

// decideV1 is the `decide_v1(in, in_len, out, out_cap i32) -> i32` export.
// It returns the number of bytes written at out, or a negative number:
// -1 the host's pointers are not inside the alloc'd buffer, -2 the input does
// not decode, -3 no handler is registered, -4 the handler panicked, -5 the
// decision does not encode (message or state too long, negative cost).
//
//go:wasmexport decide_v1
func decideV1(in, inLen, out, outCap int32) (n int32) {
	inB, ok1 := window(in, inLen)
	outB, ok2 := window(out, outCap)
	if !ok1 || !ok2 {
		return -1
	}
	var input Input
	if DecodeInput(inB, &input) != nil {
		return -2
	}
	if handler == nil {
		Log("pdk: no handler registered; call pdk.Handle in an init function")
		return -3
	}
	defer func() {
		if r := recover(); r != nil {
			Log(fmt.Sprint("pdk: handler panicked: ", r))
			n = -4
		}
	}()
	d := handler(input)
	written, err := EncodeDecision(&d, outB)
	if err != nil {
		Log(err.Error())
		return -5
	}
	return int32(written)
}

// window returns the bytes [p, p+n) of buf, or false when they are not
// inside it.
func window(p, n int32) ([]byte, bool) {
	if len(buf) == 0 || n < 0 {
		return nil, false
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	off := uintptr(uint32(p)) - base
	if uintptr(uint32(p)) < base || off+uintptr(n) > uintptr(len(buf)) {
		return nil, false
	}
	return buf[off : off+uintptr(n) : off+uintptr(n)], true
}

//go:wasmimport dream log
func hostLog(ptr unsafe.Pointer, n uint32)

// Log appends msg as one line to the plugin log: shown by dry-run, and
// rate-limited in the server's log in production.
func Log(msg string) {
	if len(msg) == 0 {
		return
	}
	hostLog(unsafe.Pointer(unsafe.StringData(msg)), uint32(len(msg)))
}
