// Package plugins runs the WebAssembly limit policies that platforms upload,
// and implements engine.Policy with them. It is built on wazero (no cgo).
//
// # The limitpolicy v1 ABI
//
// The contract for plugin authors is docs/plugin-abi.md; this is its summary, and
// the code in this package is held to it byte for byte.
//
// A module exports:
//
//   - memory
//   - alloc(size i32) -> i32: called once per instance; returns a pointer to
//     size bytes that the guest never frees or moves. The host keeps the input
//     and the output buffer of every call there.
//   - decide_v1(in, in_len, out, out_cap i32) -> i32: decides one call and
//     returns the number of bytes written at out (≥ 32), or a negative number
//     on error.
//   - optionally _initialize() (a WASI reactor's start, e.g. Go's
//     -buildmode=c-shared), called once per instance before alloc.
//
// It may import nothing, functions of wasi_snapshot_preview1 (no files, no
// environment, no arguments, no network, no real clocks; stdout and stderr go
// to the plugin log), and dream.log(ptr, len i32), which appends one line to
// the plugin log. Any other import is refused at Load, naming the import.
//
// The input at in, little-endian: a 104-byte header
//
//	 0 u32 abi version (1)        4 u32 header size (104)
//	 8 i64 now, Unix ms          16 i64 usage this period
//	24 i64 built-in limit (-1 unlimited, 0 not metered)
//	32 i64 quantity (≥ 1)        40 i64 period start, Unix ms
//	48 i64 period end, Unix ms   56 u32 mode (0 live, 1 test)
//	60 u32 flags (bit 0: check only)
//	64 u32,u32 offset,length of the customer id   72 … of the plan
//	80 … of the feature   88 … of the metadata JSON   96 … of the state
//
// followed by the strings (offsets are from in). The output at out: decision
// u32 (0 deny, 1 allow), flags u32 (bit 0 replace state, bit 1 limit set),
// cost i64 (≥ 0), limit i64, message length u32 (≤ 512), state length u32
// (≤ 1024), then the message and the state. The return value must equal
// 32 + message length + state length.
//
// # Limits
//
// Every limit is an Options field; the defaults are:
//
//   - Deadline: 10 ms per decide_v1 call. A call that overruns is stopped
//     (wazero's close-on-context-done) and counts as a plugin error.
//   - InitDeadline: 1 s to instantiate an instance (including _initialize and
//     alloc).
//   - MemoryPages: 256 pages (16 MiB) of linear memory per instance;
//     memory.grow beyond it fails.
//   - MaxModuleSize: 8 MiB of wasm.
//   - MaxTableElements: 131072 elements per table (at most 4 tables): a
//     larger table is refused, and every table's maximum is lowered to it,
//     so table.grow fails beyond it instead of allocating without bound.
//   - MaxMessage: 512 bytes; MaxState: 1024 bytes (the ABI's caps).
//   - MaxInput: 2 MiB of input (header, ids, metadata, state) per call.
//   - PoolSize: 2 × GOMAXPROCS instances per module.
//   - LogLinesPerSecond: 20 plugin log lines per module per second reach the
//     Logger; the rest are counted and dropped.
//   - What a module declares, checked before it is compiled: MaxFunctions
//     10000, MaxFunctionSize 512 KiB per body, MaxCodeSize 6 MiB of code,
//     MaxTypes 2000, MaxImports 200, MaxExports 1000, MaxGlobals 1000,
//     MaxDataSegments 200000, MaxElementSegments 1000. Compiling costs per
//     function and per byte of code: a valid 8 MiB module of two million
//     empty functions would take a GiB and tens of seconds.
//   - CompileDeadline: 20 s to compile. wazero does not stop a compile when
//     its context is done, so Load returns at the deadline and the compile
//     runs on, its result discarded, holding its load slot until it ends.
//   - MaxLoads: GOMAXPROCS/2 (at least 1) Loads at once, each waiting up to
//     LoadWait (5 s) for a slot; and one at a time per owner (LoadFor). A
//     Load refused so is a *BusyError (429 rate_limited with Retry-After).
//
// Before wazero decodes a module, Load walks its structure and refuses one
// whose declared vector lengths do not fit in its bytes or whose functions
// declare too many locals (over 65536 in one function, 4Mi in all): wazero
// allocates what a module declares before reading it, so a few bytes could
// otherwise exhaust the host's memory.
//
// The guest sees no real clocks (WASI clocks are fixed): a policy takes the
// time from the input's `now`.
//
// # Errors
//
// Load refuses a module with a *ValidationError (mapped to 422
// validation_failed). Decide and DryRun report a failure of the plugin —
// trap, overrun, memory exhaustion, negative return, garbage output — as a
// *PluginError (code plugin_error). Either converts to an *engine.Error with
// errors.As, so engine.ErrorCode understands both. After a plugin error the
// instance is closed and never reused; the module keeps serving with fresh
// instances.
//
// # Instances and allocation
//
// Each Module keeps a bounded pool of up to PoolSize instances, created
// lazily; a call waits when all are busy. An instance's buffer is sized for
// inputs up to 8 KiB when created; a larger input replaces the instance by a
// fresh one whose buffer fits it (up to MaxInput), which then stays in the
// pool. In the steady state the host side of Decide allocates nothing:
// the input is written straight into guest memory, the output is read in
// place, the state is appended to the caller's Decision.State, and a message
// is copied only when it differs from the instance's previous one.
//
// wazero itself spends a few small allocations per call to watch the context
// (that is how the deadline interrupts a running guest); see BenchmarkDecide.
package plugins
