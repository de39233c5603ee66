package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"sort"
	"sync"
	"time"
)

// Limits on track input.
const (
	MaxQuantity      = 1_000_000_000_000
	MaxTrackMetadata = 4096 // bytes of JSON
)

// Meter counts usage and enforces limits.
type Meter struct {
	c    *core
	rate *rateLimiter
}

// TrackInput is the body of POST /api/track and /api/check.
type TrackInput struct {
	CustomerID string          `json:"customerId"`
	Feature    string          `json:"feature"`
	Quantity   *int64          `json:"quantity" want:"an integer from 1 to 1000000000000"`
	Metadata   json.RawMessage `json:"metadata"`
}

// Validate fills in defaults and reports every problem of in.
func (in *TrackInput) Validate() error {
	var v Validation
	in.validate(&v)
	return v.Err()
}

func (in *TrackInput) validate(v *Validation) {
	if in.CustomerID == "" {
		v.Add("customerId", "is required")
	} else if len(in.CustomerID) > 100 {
		v.Add("customerId", "must be at most 100 characters")
	}
	if in.Feature == "" {
		in.Feature = "requests"
	} else if !slug.MatchString(in.Feature) {
		v.Add("feature", "must be a lowercase slug (a-z, 0-9, - and _)")
	}
	if in.Quantity == nil {
		one := int64(1)
		in.Quantity = &one
	} else if q := *in.Quantity; q < 1 || q > MaxQuantity {
		v.Add("quantity", "must be an integer from 1 to %d", int64(MaxQuantity))
	}
	if len(in.Metadata) > MaxTrackMetadata {
		v.Add("metadata", "must be at most %d bytes of JSON", MaxTrackMetadata)
	} else if len(in.Metadata) > 0 && in.Metadata[0] != '{' && string(in.Metadata) != "null" {
		v.Add("metadata", "must be an object")
	}
}

// TrackResult is the decision on one track or check call.
type TrackResult struct {
	Success bool        `json:"success"`
	Allowed bool        `json:"allowed"`
	Usage   Usage       `json:"usage"`
	Plugin  *PluginInfo `json:"plugin"`
	// Message says why a call was denied.
	Message string `json:"-"`
}

// PluginInfo tells the caller which uploaded policy decided.
type PluginInfo struct {
	Version  string  `json:"version"`
	Message  *string `json:"message"`
	Fallback bool    `json:"fallback"`
}

// Track counts in.Quantity of in.Feature for a customer if its tier (or the
// platform's policy) allows it. It returns once the count is durable. A
// denial is a result with Allowed false, not an error.
//
// Returns EVALIDATION, ENOTFOUND (no such customer in t), ERATELIMITED (the
// tier's per-minute limit) or EPLUGINERROR (the policy failed and its
// onError is "deny").
func (m *Meter) Track(ctx context.Context, t Tenant, in TrackInput, idem *Idempotency) (*TrackResult, error) {
	return m.decide(ctx, t, in, false, idem)
}

// Check answers what Track would, counting nothing. It writes nothing
// either: idem is ignored (a check needs no replay, and a stored record per
// fresh key let a caller fill the disk).
func (m *Meter) Check(ctx context.Context, t Tenant, in TrackInput, idem *Idempotency) (*TrackResult, error) {
	return m.decide(ctx, t, in, true, nil)
}

func (m *Meter) decide(ctx context.Context, t Tenant, in TrackInput, checkOnly bool, idem *Idempotency) (*TrackResult, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	c := m.c
	// A replay answers before anything else is looked at: the customer may
	// be gone, the minute's rate used up.
	done, err := c.idempotent(ctx, t, idem)
	if err != nil {
		return nil, err
	}
	defer done()
	p, err := m.lookup(ctx, t, in.CustomerID)
	if err != nil {
		return nil, err
	}
	now := c.now()
	if !checkOnly {
		if err := m.takeRate(t, &p, now); err != nil {
			return nil, err
		}
	}
	start, end, limit, err := p.meter(in.Feature, now)
	if err != nil {
		return nil, err
	}
	var active *ActivePolicy
	if c.policies != nil {
		active = c.policies.Active(t)
	}
	// The unit of work takes what it needs, not in, which would then move
	// to the heap; it comes from a pool with its lock list and its bound
	// run function (two allocations a call before).
	u := trackUnits.Get().(*trackUnit)
	*u = trackUnit{
		c: c, ctx: ctx, t: t, now: now, start: start, end: end, limit: limit,
		active: active, cus: p.cus, feature: in.Feature, quantity: *in.Quantity,
		metadata: in.Metadata, checkOnly: checkOnly, run: u.run,
	}
	u.key = CounterKey{Tenant: t, CustomerID: u.cus.ID, Feature: u.feature, PeriodStart: start}
	u.locks[0] = counterLock(t, u.cus.ID, u.feature)
	res, err := c.updateClaimed(ctx, t, idem, u.locks[:], u.run)
	feature := u.feature
	*u = trackUnit{run: u.run}
	trackUnits.Put(u)
	if err != nil {
		return nil, err
	}
	r := res.(*TrackResult)
	if !checkOnly {
		// Usage per day is counted in memory and flushed by RunUsageDays
		// (usage_days.go): statistics, not usage, so not on the write path.
		c.days.add(t, feature, now, !r.Allowed)
	}
	return r, nil
}

// trackUnit is the unit of work of one track or check call: what it needs
// of the call, its lock and run (u.decide, bound once per pooled unit).
type trackUnit struct {
	c               *core
	ctx             context.Context
	t               Tenant
	key             CounterKey
	now, start, end time.Time
	limit, quantity int64
	active          *ActivePolicy
	cus             *Customer
	feature         string
	metadata        json.RawMessage
	checkOnly       bool
	locks           [1]Lock
	run             func(Tx) (any, error)
}

var trackUnits = sync.Pool{New: func() any {
	u := new(trackUnit)
	u.run = u.decide
	return u
}}

// decide counts the call under its counter lock if its tier (or policy)
// allows it. Store.Update may run it more than once.
func (u *trackUnit) decide(b Tx) (any, error) {
	c, ctx, t, key, cus, feature := u.c, u.ctx, u.t, u.key, u.cus, u.feature
	now, start, end, limit, quantity, metadata := u.now, u.start, u.end, u.limit, u.quantity, u.metadata
	active, checkOnly := u.active, u.checkOnly
	cnt, err := b.Counter(ctx, key)
	if err != nil {
		return nil, err
	}
	pin := PolicyInput{
		Now: now, Used: cnt.Count, Limit: limit, Quantity: quantity,
		PeriodStart: start, PeriodEnd: end, Mode: t.Mode, CheckOnly: checkOnly,
		CustomerID: cus.ID, Plan: cus.Plan, Feature: feature, Metadata: metadata,
	}
	if active != nil && active.mayHaveState() {
		if pin.State, err = b.PolicyState(ctx, t, cus.ID, feature); err != nil {
			return nil, err
		}
	}
	var d Decision
	info, err := c.judge(ctx, t, active, &pin, &d)
	if err != nil {
		return nil, err
	}
	r := trackResult(&pin, &d, info)
	count := r.Usage.Count
	if d.Allowed && !checkOnly && d.Cost > 0 {
		b.PutCounter(key, Counter{Count: count, PeriodEnd: end})
		// Under the counter lock: each threshold is crossed by
		// exactly one track. One that crosses none pays a comparison.
		if reported := r.Usage.Limit; mayCross(cnt.Count, count, reported) {
			if err := c.emitThresholds(ctx, b, t, cus.ID, feature, cnt.Count, count, reported, start, end); err != nil {
				return nil, err
			}
		}
	}
	if keepsState(&d, info, checkOnly) {
		// Before Apply, under the lock: the next call for this customer
		// and feature reads what this one writes.
		active.keptState()
		b.PutPolicyState(t, cus.ID, feature, d.State)
	}
	return r, nil
}

// trackPlan is what a track call looks up before its unit of work: the
// customer (shared: never changed) and the tier it is on.
type trackPlan struct {
	cus  *Customer
	tc   *TierConfig
	tier *Tier
}

// lookup finds a customer of t and its tier. Returns ENOTFOUND.
func (m *Meter) lookup(ctx context.Context, t Tenant, customerID string) (trackPlan, error) {
	c := m.c
	cus, err := c.store.CustomerShared(ctx, t, customerID)
	if ErrorCode(err) == ENOTFOUND {
		return trackPlan{}, Errorf(ENOTFOUND, "No customer %q; create it with POST /api/customers.", customerID)
	} else if err != nil {
		return trackPlan{}, err
	}
	tc, err := c.tierConfig(ctx, t)
	if err != nil {
		return trackPlan{}, err
	}
	tier := tc.Tier(cus.Plan)
	if tier == nil {
		tier = &Tier{Name: cus.Plan}
	}
	return trackPlan{cus: cus, tc: tc, tier: tier}, nil
}

// takeRate counts one call against the tier's per-minute limit of the
// customer. Returns ERATELIMITED.
func (m *Meter) takeRate(t Tenant, p *trackPlan, now time.Time) error {
	if p.tier.RateLimitPerMinute > 0 {
		if wait := m.rate.take(t, p.cus.ID, p.tier.RateLimitPerMinute, now); wait > 0 {
			return &Error{Code: ERATELIMITED, RetryAfter: wait,
				Message: "Too many requests for this customer; retry in a few seconds."}
		}
	}
	return nil
}

// meter returns the current period of feature and its limit on the plan.
// Returns EUNKNOWNFEATURE.
func (p *trackPlan) meter(feature string, now time.Time) (start, end time.Time, limit int64, err error) {
	start, end = CurrentPeriod(p.cus, p.tier.Interval, now)
	limit, err = p.limit(feature)
	return start, end, limit, err
}

// limit returns the limit of feature on the plan. Returns EUNKNOWNFEATURE.
func (p *trackPlan) limit(feature string) (int64, error) {
	limit, metered := p.tier.Limit(feature)
	if !metered {
		// A feature another tier meters is not this plan's: limit 0. One
		// that no tier meters or lists is a mistake (a typo in feature),
		// not a reason to tell the customer to upgrade.
		if !p.tc.Knows(feature) {
			return 0, &Error{Code: EUNKNOWNFEATURE, Message: fmt.Sprintf("No tier meters or lists the feature %q; add it to a tier's limits or features first.", feature),
				Fields: []FieldError{{Field: "feature", Message: "no tier meters or lists it"}}}
		}
		limit = 0
	}
	return limit, nil
}

// judge decides pin (its State read when the policy may keep one) into d
// with the platform's policy, or the built-in limits when there is none
// or it failed and its onError is "builtin". It runs under the call's
// counter lock. Returns EPLUGINERROR when the policy failed and its
// onError is "deny".
func (c *core) judge(ctx context.Context, t Tenant, active *ActivePolicy, pin *PolicyInput, d *Decision) (*PluginInfo, error) {
	if active == nil {
		BuiltinLimits{}.Decide(ctx, pin, d)
		return nil, nil
	}
	// The policy's own copies: what an interface call is given escapes,
	// and the built-in path should not pay for that. They are pooled: the
	// policy keeps nothing of a call (engine.Policy).
	pc := policyCalls.Get().(*policyCall)
	defer func() {
		*pc = policyCall{} // d.State stays the caller's
		policyCalls.Put(pc)
	}()
	pc.in = *pin
	pd := &pc.out
	info := &PluginInfo{Version: active.Version}
	if perr := active.Decide(ctx, &pc.in, pd); perr != nil {
		logPluginError(c.log, active, t.PlatformID, perr)
		if active.OnError == "deny" {
			return nil, Errorf(EPLUGINERROR, "The platform's limit policy failed.")
		}
		info.Fallback = true
		BuiltinLimits{}.Decide(ctx, pin, d)
		return info, nil
	}
	*d = *pd
	if d.Message != "" {
		msg := d.Message
		info.Message = &msg
	}
	return info, nil
}

// policyCall is a policy's copy of a call's input and its decision.
type policyCall struct {
	in  PolicyInput
	out Decision
}

var policyCalls = sync.Pool{New: func() any { return new(policyCall) }}

// trackResult is the answer to the call pin decided as d: its usage counts
// d.Cost when allowed (and not a check).
func trackResult(pin *PolicyInput, d *Decision, info *PluginInfo) *TrackResult {
	r := new(TrackResult)
	fillTrackResult(r, pin, d, info)
	return r
}

// fillTrackResult is trackResult into r.
func fillTrackResult(r *TrackResult, pin *PolicyInput, d *Decision, info *PluginInfo) {
	reported := pin.Limit
	if d.LimitSet {
		reported = d.Limit
	}
	count := pin.Used
	if d.Allowed && !pin.CheckOnly {
		count += d.Cost
	}
	*r = TrackResult{
		Success: true, Allowed: d.Allowed, Plugin: info, Message: d.Message,
		Usage: Usage{
			Feature: pin.Feature, Count: count, Limit: reported, Remaining: remaining(count, reported),
			Plan: pin.Plan, PeriodStart: pin.PeriodStart.UTC(), PeriodEnd: pin.PeriodEnd.UTC(),
		},
	}
	if !r.Allowed && r.Message == "" {
		r.Message = "Please upgrade to unlock more " + pin.Feature
	}
}

// mayCross reports whether a count going from before to after may cross a
// usage.threshold (80 % or 100 %) of limit: a comparison for the calls
// that cross none.
func mayCross(before, after, limit int64) bool {
	return limit > 0 && after >= limit-limit/5 && before < limit
}

// keepsState reports whether a decision's state replaces the stored one:
// the policy itself decided (not the fallback) a call that is not a check.
func keepsState(d *Decision, info *PluginInfo, checkOnly bool) bool {
	return d.ReplaceState && !checkOnly && info != nil && !info.Fallback
}

// CustomerUsage is a customer's usage of every feature its plan meters.
type CustomerUsage struct {
	CustomerID string  `json:"customerId"`
	Plan       string  `json:"plan"`
	Usage      []Usage `json:"usage"`
}

// Usage returns the current period's usage of every feature the customer's
// plan meters, by feature name. Returns ENOTFOUND.
func (m *Meter) Usage(ctx context.Context, t Tenant, customerID string) (*CustomerUsage, error) {
	c := m.c
	cus, err := c.store.Customer(ctx, t, customerID)
	if ErrorCode(err) == ENOTFOUND {
		return nil, Errorf(ENOTFOUND, "No customer %q.", customerID)
	} else if err != nil {
		return nil, err
	}
	return m.usageOf(ctx, t, cus)
}

func (m *Meter) usageOf(ctx context.Context, t Tenant, cus *Customer) (*CustomerUsage, error) {
	tc, err := m.c.tierConfig(ctx, t)
	if err != nil {
		return nil, err
	}
	out := &CustomerUsage{CustomerID: cus.ID, Plan: cus.Plan, Usage: []Usage{}}
	tier := tc.Tier(cus.Plan)
	if tier == nil {
		return out, nil
	}
	start, end := CurrentPeriod(cus, tier.Interval, m.c.now())
	for f, limit := range tier.Limits {
		cnt, err := m.c.store.Counter(ctx, CounterKey{Tenant: t, CustomerID: cus.ID, Feature: f, PeriodStart: start})
		if err != nil {
			return nil, err
		}
		out.Usage = append(out.Usage, Usage{
			Feature: f, Count: cnt.Count, Limit: limit, Remaining: remaining(cnt.Count, limit),
			PeriodStart: start.UTC(), PeriodEnd: end.UTC(),
		})
	}
	sort.Slice(out.Usage, func(i, j int) bool { return out.Usage[i].Feature < out.Usage[j].Feature })
	return out, nil
}

// CustomerWithUsage is a customer with its current usage.
type CustomerWithUsage struct {
	*Customer
	Usage []Usage `json:"usage"`
}

// CustomerWithUsage returns a customer of t with its usage. Returns ENOTFOUND.
func (m *Meter) CustomerWithUsage(ctx context.Context, t Tenant, id string) (*CustomerWithUsage, error) {
	cu, err := m.Usage(ctx, t, id)
	if err != nil {
		return nil, err
	}
	cus, err := m.c.store.Customer(ctx, t, id)
	if err != nil {
		return nil, err
	}
	return &CustomerWithUsage{Customer: cus, Usage: cu.Usage}, nil
}

// rateLimiter counts calls per customer per wall-clock minute, in memory:
// a per-minute limit protects the developer's service, it is not billing
// data, so it need not survive a restart.
type rateLimiter struct {
	seed   maphash.Seed
	shards [64]rateShard
}

type rateShard struct {
	mu sync.Mutex
	m  map[string]rateWindow
}

type rateWindow struct {
	minute int64
	n      int64
}

func newRateLimiter() *rateLimiter {
	r := &rateLimiter{seed: maphash.MakeSeed()}
	for i := range r.shards {
		r.shards[i].m = make(map[string]rateWindow)
	}
	return r
}

// take counts one call and returns 0, or the seconds to wait when the
// customer has used its limit this minute.
func (r *rateLimiter) take(t Tenant, customerID string, perMinute int64, now time.Time) int {
	key := t.PlatformID + "\x00" + t.Mode.String() + "\x00" + customerID
	s := &r.shards[maphash.String(r.seed, key)%uint64(len(r.shards))]
	minute := now.Unix() / 60
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.m[key]
	if w.minute != minute {
		if len(s.m) > 4096 {
			for k, o := range s.m {
				if o.minute != minute {
					delete(s.m, k)
				}
			}
		}
		w = rateWindow{minute: minute}
	}
	if w.n >= perMinute {
		return int(60 - now.Unix()%60)
	}
	w.n++
	s.m[key] = w
	return 0
}
