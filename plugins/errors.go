package plugins

import (
	"errors"
	"fmt"
	"time"

	"github.com/dream-api/dream-api/engine"
)

// Sentinel errors.
var (
	// ErrClosed is returned by calls on a closed Module or Runtime.
	ErrClosed = errors.New("plugins: closed")
	// ErrInputTooLarge is returned by Decide when an input exceeds
	// Options.MaxInput. The plugin is not called.
	ErrInputTooLarge = errors.New("plugins: input too large")
)

// ValidationError is why Load refused a module. The HTTP layer answers 422
// with Reason.
type ValidationError struct {
	Reason string
}

func (e *ValidationError) Error() string { return "plugins: invalid module: " + e.Reason }

// As converts e to an EVALIDATION *engine.Error naming the module field, so
// engine.ErrorCode(err) is "validation_failed".
func (e *ValidationError) As(target any) bool {
	t, ok := target.(**engine.Error)
	if ok {
		*t = &engine.Error{
			Code:    engine.EVALIDATION,
			Message: "module: " + e.Reason,
			Fields:  []engine.FieldError{{Field: "module", Message: e.Reason}},
		}
	}
	return ok
}

// PluginError is a failure of the plugin during a call: a trap, an overrun of
// the deadline or the memory cap, a negative return, or output that breaks
// the ABI. The instance that failed has been closed.
type PluginError struct {
	// Reason is a short, client-safe description, e.g. "decide_v1 exceeded
	// its deadline of 10ms".
	Reason string
	// Err is the underlying error from wazero, if any (for the log: it may
	// hold a wasm stack trace).
	Err error
}

func (e *PluginError) Error() string {
	if e.Err != nil {
		return "plugins: plugin error: " + e.Reason + ": " + e.Err.Error()
	}
	return "plugins: plugin error: " + e.Reason
}

func (e *PluginError) Unwrap() error { return e.Err }

// As converts e to an EPLUGINERROR *engine.Error, so engine.ErrorCode(err) is
// "plugin_error".
func (e *PluginError) As(target any) bool {
	t, ok := target.(**engine.Error)
	if ok {
		*t = &engine.Error{Code: engine.EPLUGINERROR, Message: "The limit plugin failed: " + e.Reason + "."}
	}
	return ok
}

// BusyError is a Load refused because the Runtime is loading as many
// modules as it may (Options.MaxLoads, waited for Options.LoadWait), or
// because the same owner's previous Load (or its compile, run on past the
// deadline) has not finished. Nothing was loaded; try again after
// RetryAfter.
type BusyError struct {
	Reason     string
	RetryAfter time.Duration
}

func (e *BusyError) Error() string { return "plugins: busy: " + e.Reason }

// As converts e to an ERATELIMITED *engine.Error with RetryAfter in whole
// seconds (at least 1), so the HTTP layer answers 429 with Retry-After.
func (e *BusyError) As(target any) bool {
	t, ok := target.(**engine.Error)
	if ok {
		secs := int((e.RetryAfter + time.Second - 1) / time.Second)
		*t = &engine.Error{Code: engine.ERATELIMITED, Message: e.Reason, RetryAfter: max(secs, 1)}
	}
	return ok
}

func invalidf(format string, args ...any) error {
	return &ValidationError{Reason: fmt.Sprintf(format, args...)}
}
