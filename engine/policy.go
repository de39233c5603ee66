package engine

import (
	"context"
	"sync/atomic"
	"time"
)

// PolicyInput is what a policy sees of one track or check call. It mirrors
// the input header of the limitpolicy v1 ABI (docs/plugin-abi.md).
type PolicyInput struct {
	Now         time.Time
	Used        int64 // already counted this period
	Limit       int64 // the tier's built-in limit; Unlimited is -1, 0 when unmetered
	Quantity    int64 // ≥ 1
	PeriodStart time.Time
	PeriodEnd   time.Time
	Mode        Mode
	CheckOnly   bool
	CustomerID  string
	Plan        string
	Feature     string
	Metadata    []byte // the call's metadata as JSON text; may be empty
	State       []byte // the customer's plugin state for the feature; may be empty
}

// Decision is a policy's answer.
type Decision struct {
	Allowed bool
	// Cost is the number of units added to usage when allowed.
	Cost int64
	// Limit is reported to the caller when LimitSet; else the built-in limit.
	Limit    int64
	LimitSet bool
	// Message is shown to the caller on deny (≤ 512 bytes).
	Message string
	// State replaces the stored state when ReplaceState (≤ 1024 bytes).
	State        []byte
	ReplaceState bool
}

// Policy decides track and check calls.
//
// Decide fills out from in. It returns an error when the policy itself failed
// (a plugin error), in which case out must be ignored. Implementations must
// be safe for concurrent use; the Meter serializes calls per customer and
// feature. Decide keeps neither in nor out after it returns (the Meter
// reuses them).
type Policy interface {
	Decide(ctx context.Context, in *PolicyInput, out *Decision) error
}

// BuiltinLimits is the default Policy: allow while usage plus quantity stays
// within the tier's limit. A feature the tier does not meter (limit 0) is
// denied; Unlimited always allows.
type BuiltinLimits struct{}

// Decide implements Policy.
func (BuiltinLimits) Decide(_ context.Context, in *PolicyInput, out *Decision) error {
	*out = Decision{Cost: in.Quantity, Limit: in.Limit}
	out.Allowed = in.Limit < 0 || in.Used+in.Quantity <= in.Limit
	if !out.Allowed {
		out.Message = "Please upgrade to unlock more " + in.Feature
	}
	return nil
}

// ActivePolicy is a platform's uploaded policy as the Meter uses it.
type ActivePolicy struct {
	Policy
	Version string
	// OnError is "builtin" (built-in limits decide when the policy fails)
	// or "deny".
	OnError string

	// stateful is false while the platform has no plugin state stored at
	// all, so that a policy that never keeps state costs no read per call.
	// nil means unknown: read.
	stateful *atomic.Bool
}

// mayHaveState reports whether a call must read the customer's state.
func (a *ActivePolicy) mayHaveState() bool { return a.stateful == nil || a.stateful.Load() }

// keptState records that a state is being written.
func (a *ActivePolicy) keptState() {
	if a.stateful != nil {
		a.stateful.Store(true)
	}
}

// Policies finds the active policy of a tenant (a platform in one mode).
// Meter uses built-in limits when it returns nil.
type Policies interface {
	Active(t Tenant) *ActivePolicy
}

var _ Policy = BuiltinLimits{}
