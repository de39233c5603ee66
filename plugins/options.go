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
	return errors.Join(errs...)
}
