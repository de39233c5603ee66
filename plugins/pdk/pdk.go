// Package pdk is the plugin development kit for dream-api limit policies
// written in Go.
//
// A policy is a Go main package that registers one function and is built as a
// WASI reactor:
//
//	package main
//
//	import "github.com/dream-api/dream-api/plugins/pdk"
//
//	func init() { pdk.Handle(decide) }
//
//	func main() {} // required by the compiler, never called
//
//	func decide(in pdk.Input) pdk.Decision {
//		if in.Feature == "exports" {
//			in.Quantity *= 10
//		}
//		return in.Builtin()
//	}
//
// Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o policy.wasm .
//
// and upload policy.wasm (PUT /api/platform/plugin). The PDK owns the exports
// of the limitpolicy v1 ABI (`alloc`, `decide_v1`; `memory` and
// `_initialize` come from the Go toolchain) and the byte layout described in
// docs/plugin-abi.md. Registration must happen in an init function: a reactor's
// main function is never run.
//
// The host calls the handler once per track or check call, one call at a
// time per instance. The strings and slices of Input alias the host's input
// buffer and are valid only until the handler returns; copy what you keep.
// The bytes of Decision.State and Decision.Message are copied out before the
// next call, so a handler may return a slice of a package-level array without
// allocating.
//
// The guest has no real clock: take the time from Input.Now, never from
// time.Now. It has no files, environment or network either; Log (or
// printing to stdout and stderr) writes to the plugin log, which dry-run
// shows.
//
// The encoding functions in this package (DecodeInput, EncodeInput,
// EncodeDecision, DecodeDecision) are plain Go and run on any platform, so a
// policy can be unit-tested with `go test` on the host.
package pdk

import (
	"time"
)

// Mode separates live and test data, as in the dream-api API.
type Mode uint32

const (
	Live Mode = 0
	Test Mode = 1
)

// Input is one track or check call as the policy sees it.
type Input struct {
	Now         time.Time // UTC, millisecond precision
	Usage       int64     // usage already counted this period for this customer and feature
	Limit       int64     // the tier's built-in limit; -1 unlimited, 0 when the tier does not meter the feature
	Quantity    int64     // units requested, ≥ 1
	PeriodStart time.Time // UTC
	PeriodEnd   time.Time // UTC
	Mode        Mode
	CheckOnly   bool // nothing will be counted, and no state is stored, whatever the decision
	CustomerID  string
	Plan        string
	Feature     string
	Metadata    []byte // the call's metadata as JSON text; may be empty
	State       []byte // this customer's state for the feature, as last stored; empty at first
}

// Decision is the policy's answer.
type Decision struct {
	Allowed bool
	// Cost is the number of units added to usage when allowed (≥ 0); usually
	// the quantity.
	Cost int64
	// Limit is reported to the caller when LimitSet; otherwise the caller
	// sees the built-in limit.
	Limit    int64
	LimitSet bool
	// Message is shown to the caller on deny; at most MaxMessage bytes.
	Message string
	// State replaces the stored state when ReplaceState, on allow and on
	// deny; at most MaxState bytes.
	State        []byte
	ReplaceState bool
}

// Handler decides one call.
type Handler func(in Input) Decision

var handler Handler

// Handle registers h as the policy of this module. Call it from an init
// function. A later call replaces the handler.
func Handle(h Handler) { handler = h }

// Register is an alias of Handle.
func Register(h Handler) { Handle(h) }

// Allow returns a decision that allows the call and adds cost to usage.
func Allow(cost int64) Decision { return Decision{Allowed: true, Cost: cost} }

// Deny returns a decision that denies the call with message shown to the
// caller (empty for the default text).
func Deny(message string) Decision { return Decision{Message: message} }

// WithLimit returns d reporting limit to the caller.
func (d Decision) WithLimit(limit int64) Decision {
	d.Limit, d.LimitSet = limit, true
	return d
}

// WithState returns d replacing the stored state with state.
func (d Decision) WithState(state []byte) Decision {
	d.State, d.ReplaceState = state, true
	return d
}

// Builtin returns what the built-in tier limits decide for in: allow while
// usage plus quantity stays within the limit, always allow when unlimited
// (-1), deny when the tier does not meter the feature (limit 0).
func (in *Input) Builtin() Decision {
	if in.Limit < 0 || in.Usage+in.Quantity <= in.Limit {
		return Allow(in.Quantity)
	}
	return Deny("Please upgrade to unlock more " + in.Feature)
}
