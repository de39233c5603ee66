package plugins

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"
)

// Options configure a Runtime. The zero value (and nil) is valid: every
// field left zero takes its default.
type Options struct {
	// Deadline bounds one decide_v1 call. Defaults to 10 ms.
	Deadline time.Duration
	// InitDeadline bounds instantiating one instance: _initialize and
	// alloc. Defaults to 1 s.
	InitDeadline time.Duration
	// MemoryPages caps the linear memory of each instance, in 64 KiB pages.
	// Defaults to 256 (16 MiB). A module whose minimum memory is larger is
	// refused at Load.
	MemoryPages uint32
	// MaxModuleSize is the largest wasm binary Load accepts. Defaults to
	// 8 MiB.
	MaxModuleSize int
	// MaxTableElements caps each table of a module (at most 4 tables): a
	// larger minimum is refused at Load, and the maximum is lowered to it,
	// so that table.grow fails beyond it. Defaults to 131072 (1 MiB of
	// references per table and instance).
	MaxTableElements uint32
	// MaxFunctions caps the functions a module defines. Defaults to 10000.
	// Compiling costs per function: without it a valid 8 MiB module of two
	// million empty functions takes a GiB of memory and tens of seconds.
	MaxFunctions int
	// MaxFunctionSize caps the bytes of one function body. Defaults to
	// 512 KiB.
	MaxFunctionSize int
	// MaxCodeSize caps the code section (every function body). Defaults to
	// 6 MiB.
	MaxCodeSize int
	// MaxTypes, MaxImports, MaxExports, MaxGlobals, MaxDataSegments and
	// MaxElementSegments cap the module's other declarations. They default
	// to 2000 types, 200 imports, 1000 exports, 1000 globals, 200000 data
	// segments and 1000 element segments. (A Go module built for wasip1
	// declares about 1800 functions in 1.6 MB of code, 14 types, 17
	// imports and 30000 data segments per 2.5 MB of module.)
	MaxTypes, MaxImports, MaxExports, MaxGlobals, MaxDataSegments, MaxElementSegments int
	// CompileDeadline bounds compiling a module in Load. wazero does not
	// stop a compile when its context is done, so Load returns at the
	// deadline (refusing the module) and the compile runs on, its result
	// discarded, still holding its load slot. Defaults to 20 s (a 3 MB Go
	// module compiles in about 1.5 s on one core).
	CompileDeadline time.Duration
	// MaxLoads is how many Loads (compile, instantiate, self-test) run at
	// once in the Runtime; one owner (LoadFor) has at most one at a time.
	// Each compiles on one core. Defaults to GOMAXPROCS/2, at least 1.
	MaxLoads int
	// LoadWait is how long a Load waits for one of the MaxLoads slots
	// before it fails with a *BusyError. Defaults to 5 s.
	LoadWait time.Duration
	// MaxState caps the state a plugin returns. Defaults to 1024, the ABI's
	// cap, which is also the largest value allowed.
	MaxState int
	// MaxMessage caps the message a plugin returns. Defaults to 512, the
	// ABI's cap, which is also the largest value allowed.
	MaxMessage int
	// MaxInput is the largest input (header, ids, plan, feature, metadata and
	// state) a call may pass; Decide refuses larger ones with
	// ErrInputTooLarge. Defaults to 2 MiB.
	MaxInput int
	// PoolSize is the number of instances kept per module; calls wait when
	// all are busy. Defaults to 2 × GOMAXPROCS.
	PoolSize int
	// CacheDir, when set, keeps wazero's compiled code on disk there, so a
	// restart does not compile known modules again. Empty keeps it in memory.
	CacheDir string
	// Logger receives the plugin log (dream.log, stdout and stderr of the
	// guest) outside of DryRun. Defaults to slog.Default().
	Logger *slog.Logger
	// LogLinesPerSecond caps the plugin log lines of one module that reach
	// Logger each second; the rest are dropped and counted. Defaults to 20.
	LogLinesPerSecond int
}

// Defaults.
const (
	DefaultDeadline          = 10 * time.Millisecond
	DefaultInitDeadline      = time.Second
	DefaultMemoryPages       = 256
	DefaultMaxModuleSize     = 8 << 20
	DefaultMaxTableElements  = 1 << 17
	DefaultMaxState          = 1024
	DefaultMaxMessage        = 512
	DefaultMaxInput          = 2 << 20
	DefaultLogLinesPerSecond = 20

	DefaultMaxFunctions       = 10000
	DefaultMaxFunctionSize    = 512 << 10
	DefaultMaxCodeSize        = 6 << 20
	DefaultMaxTypes           = 2000
	DefaultMaxImports         = 200
	DefaultMaxExports         = 1000
	DefaultMaxGlobals         = 1000
	DefaultMaxDataSegments    = 200000
	DefaultMaxElementSegments = 1000
	DefaultCompileDeadline    = 20 * time.Second
	DefaultLoadWait           = 5 * time.Second
)

// EnsureDefaults fills every zero field with its default and returns o; a nil
// o yields a new Options.
func (o *Options) EnsureDefaults() *Options {
	if o == nil {
		o = &Options{}
	}
	if o.Deadline == 0 {
		o.Deadline = DefaultDeadline
	}
	if o.InitDeadline == 0 {
		o.InitDeadline = DefaultInitDeadline
	}
	if o.MemoryPages == 0 {
		o.MemoryPages = DefaultMemoryPages
	}
	if o.MaxModuleSize == 0 {
		o.MaxModuleSize = DefaultMaxModuleSize
	}
	if o.MaxTableElements == 0 {
		o.MaxTableElements = DefaultMaxTableElements
	}
	if o.MaxState == 0 {
		o.MaxState = DefaultMaxState
	}
	if o.MaxMessage == 0 {
		o.MaxMessage = DefaultMaxMessage
	}
	if o.MaxInput == 0 {
		o.MaxInput = DefaultMaxInput
	}
	if o.PoolSize == 0 {
		o.PoolSize = 2 * runtime.GOMAXPROCS(0)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.LogLinesPerSecond == 0 {
		o.LogLinesPerSecond = DefaultLogLinesPerSecond
	}
	for _, f := range []struct {
		p   *int
		def int
	}{
		{&o.MaxFunctions, DefaultMaxFunctions},
		{&o.MaxFunctionSize, DefaultMaxFunctionSize},
		{&o.MaxCodeSize, DefaultMaxCodeSize},
		{&o.MaxTypes, DefaultMaxTypes},
		{&o.MaxImports, DefaultMaxImports},
		{&o.MaxExports, DefaultMaxExports},
		{&o.MaxGlobals, DefaultMaxGlobals},
		{&o.MaxDataSegments, DefaultMaxDataSegments},
		{&o.MaxElementSegments, DefaultMaxElementSegments},
		{&o.MaxLoads, max(1, runtime.GOMAXPROCS(0)/2)},
	} {
		if *f.p == 0 {
			*f.p = f.def
		}
	}
	if o.CompileDeadline == 0 {
		o.CompileDeadline = DefaultCompileDeadline
	}
	if o.LoadWait == 0 {
		o.LoadWait = DefaultLoadWait
	}
	return o
}

// Validate reports every problem of o at once (call EnsureDefaults first).
func (o *Options) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("plugins: invalid options: "+format, args...))
	}
	if o.Deadline <= 0 {
		bad("Deadline %v must be positive", o.Deadline)
	}
	if o.InitDeadline <= 0 {
		bad("InitDeadline %v must be positive", o.InitDeadline)
	}
	if o.MemoryPages == 0 || o.MemoryPages > 65536 {
		bad("MemoryPages %d must be in 1..65536", o.MemoryPages)
	}
	if o.MaxModuleSize <= 0 {
		bad("MaxModuleSize %d must be positive", o.MaxModuleSize)
	}
	if o.MaxState <= 0 || o.MaxState > DefaultMaxState {
		bad("MaxState %d must be in 1..%d", o.MaxState, DefaultMaxState)
	}
	if o.MaxMessage <= 0 || o.MaxMessage > DefaultMaxMessage {
		bad("MaxMessage %d must be in 1..%d", o.MaxMessage, DefaultMaxMessage)
	}
	minInput := headerSize + o.MaxState
	if o.MaxInput < minInput {
		bad("MaxInput %d must be at least %d (header and state)", o.MaxInput, minInput)
	} else if o.MemoryPages > 0 && o.MemoryPages <= 65536 &&
		uint64(o.MaxInput)+uint64(outputHeaderSize+o.MaxMessage+o.MaxState) > uint64(o.MemoryPages)*pageSize {
		bad("MaxInput %d does not fit in MemoryPages %d", o.MaxInput, o.MemoryPages)
	}
	if o.PoolSize <= 0 {
		bad("PoolSize %d must be positive", o.PoolSize)
	}
	if o.Logger == nil {
		bad("Logger is nil")
	}
	if o.LogLinesPerSecond < 0 {
		bad("LogLinesPerSecond %d must not be negative", o.LogLinesPerSecond)
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"MaxFunctions", o.MaxFunctions}, {"MaxFunctionSize", o.MaxFunctionSize},
		{"MaxCodeSize", o.MaxCodeSize}, {"MaxTypes", o.MaxTypes}, {"MaxImports", o.MaxImports},
		{"MaxExports", o.MaxExports}, {"MaxGlobals", o.MaxGlobals},
		{"MaxDataSegments", o.MaxDataSegments}, {"MaxElementSegments", o.MaxElementSegments},
		{"MaxLoads", o.MaxLoads},
	} {
		if f.v <= 0 {
			bad("%s %d must be positive", f.name, f.v)
		}
	}
	if o.CompileDeadline <= 0 {
		bad("CompileDeadline %v must be positive", o.CompileDeadline)
	}
	if o.LoadWait < 0 {
		bad("LoadWait %v must not be negative", o.LoadWait)
	}
	return errors.Join(errs...)
}

// declLimits are the declaration limits of o for prepare.
func (o *Options) declLimits() declLimits {
	return declLimits{
		tableElements: o.MaxTableElements,
		functions:     o.MaxFunctions,
		functionSize:  o.MaxFunctionSize,
		codeSize:      o.MaxCodeSize,
		types:         o.MaxTypes,
		imports:       o.MaxImports,
		exports:       o.MaxExports,
		globals:       o.MaxGlobals,
		dataSegments:  o.MaxDataSegments,
		elemSegments:  o.MaxElementSegments,
	}
}
