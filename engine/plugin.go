package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"sync/atomic"
	"time"
)

// PolicyModule is a validated, compiled limit-policy module (the plugins
// package's Module).
type PolicyModule interface {
	Policy
	// DryRun decides like Decide and returns the plugin's log lines and the
	// call's duration.
	DryRun(ctx context.Context, in *PolicyInput, out *Decision) (log []string, dur time.Duration, err error)
	// Close releases the module once calls in flight have finished.
	Close(ctx context.Context) error
}

// PolicyLoader validates and compiles uploaded modules. Load returns an
// error whose code is EVALIDATION, with the reason, for a module it refuses,
// and ERATELIMITED (with RetryAfter) when it is busy: loads of one
// platformID run one at a time ("" is no platform's).
type PolicyLoader interface {
	Load(ctx context.Context, platformID string, wasm []byte) (PolicyModule, error)
}

// PluginVersion is one uploaded module of a platform.
type PluginVersion struct {
	Version    string    `json:"version"`
	SHA256     string    `json:"sha256"`
	Size       int       `json:"size"`
	UploadedAt time.Time `json:"uploadedAt"`
}

// PluginSettings is which version decides for a platform, and what happens
// when it fails.
type PluginSettings struct {
	Active  string `json:"active"` // "" when built-in limits decide
	OnError string `json:"onError"`
}

// Plugin error handling.
const (
	OnErrorBuiltin = "builtin"
	OnErrorDeny    = "deny"
)

// PluginStatus is the answer of upload and rollback.
type PluginStatus struct {
	PluginVersion
	Active  bool   `json:"active"`
	OnError string `json:"onError"`
}

// PluginOverview is the answer of GET /api/platform/plugin.
type PluginOverview struct {
	Active  *PluginVersion   `json:"active"`
	OnError string           `json:"onError"`
	History []*PluginVersion `json:"history"`
}

// Breaker defaults: after breakerErrors plugin errors in a row the plugin is
// skipped for breakerCoolDown.
const (
	breakerErrors   = 5
	breakerCoolDown = 30 * time.Second
)

// ErrBreakerOpen is the error of a call the breaker kept from the plugin.
var ErrBreakerOpen = Errorf(EPLUGINERROR, "The limit plugin is paused after repeated errors.")

// Plugins manages platforms' uploaded policies and finds the active one for
// the Meter. Without a loader, uploads are refused and built-in limits decide.
type Plugins struct {
	c      *core
	loader PolicyLoader

	mu     sync.RWMutex
	active map[string]*ActivePolicy // nil value: known to have none
	// loading serializes loads and changes per platform.
	loading *stripes

	limitsMu sync.Mutex
	limits   *PluginLimits // nil: the defaults (plugin_limits.go)
	buckets  tokenBuckets  // management calls per platform
}

// breaker wraps a module: after repeated errors it stops calling it for a
// cool-down. It logs when it opens and when a call succeeds again after a
// cool-down (closed), not the calls it skips; the Meter logs a sample of
// the plugin errors through errs (logPluginError).
type breaker struct {
	PolicyModule
	now      Clock
	errors   atomic.Int32
	openTill atomic.Int64 // unix nanoseconds; 0 while closed
	skipped  atomic.Int64 // calls skipped while open, since it last opened
	onOpen   func()
	onClose  func(skipped int64)

	errs     errorSampler
	logEvery time.Duration
}

func (b *breaker) Decide(ctx context.Context, in *PolicyInput, out *Decision) error {
	until := b.openTill.Load()
	if until != 0 && b.now().UnixNano() < until {
		b.skipped.Add(1)
		return ErrBreakerOpen
	}
	err := b.PolicyModule.Decide(ctx, in, out)
	if err == nil {
		b.errors.Store(0)
		if until != 0 && b.openTill.CompareAndSwap(until, 0) {
			b.onClose(b.skipped.Swap(0))
		}
		return nil
	}
	if b.errors.Add(1) >= breakerErrors {
		b.errors.Store(0)
		b.openTill.Store(b.now().Add(breakerCoolDown).UnixNano())
		b.onOpen()
	}
	return err
}

// Active implements Policies: the platform's active policy, or nil.
func (p *Plugins) Active(platformID string) *ActivePolicy {
	p.mu.RLock()
	a, known := p.active[platformID]
	p.mu.RUnlock()
	if known {
		return a
	}
	a, err := p.load(context.Background(), platformID)
	if err != nil {
		p.c.log.Error("loading the active plugin failed; built-in limits decide", "platform", platformID, "err", err)
		return nil
	}
	return a
}

// load reads a platform's settings and compiles its active module, once.
func (p *Plugins) load(ctx context.Context, platformID string) (*ActivePolicy, error) {
	unlock := p.loading.lock(platformID)
	defer unlock()
	p.mu.RLock()
	a, known := p.active[platformID]
	p.mu.RUnlock()
	if known {
		return a, nil
	}
	s, err := p.c.store.PluginSettings(ctx, platformID)
	if ErrorCode(err) == ENOTFOUND || err == nil && s.Active == "" || p.loader == nil {
		p.set(platformID, nil)
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	wasm, err := p.c.store.PluginModule(ctx, platformID, s.Active)
	if err != nil {
		return nil, err
	}
	m, err := p.loader.Load(ctx, "", wasm)
	if err != nil {
		return nil, err
	}
	a = p.activate(platformID, s.Active, s.OnError, m)
	return a, nil
}

// statefulFlag tells whether a platform has any plugin state stored: a
// fresh flag per activation, true when unsure.
func (p *Plugins) statefulFlag(platformID string) *atomic.Bool {
	f := new(atomic.Bool)
	has, err := p.c.store.HasPolicyState(context.Background(), platformID)
	f.Store(has || err != nil)
	return f
}

func (p *Plugins) activate(platformID, version, onError string, m PolicyModule) *ActivePolicy {
	b := &breaker{PolicyModule: m, now: p.c.now, logEvery: p.Limits().ErrorLogInterval}
	b.onOpen = func() {
		p.c.log.Warn("plugin circuit breaker open: built-in limits or onError decide for a cool-down",
			"platform", platformID, "version", version, "coolDown", breakerCoolDown.String())
	}
	b.onClose = func(skipped int64) {
		p.c.log.Info("plugin circuit breaker closed: the plugin decides again",
			"platform", platformID, "version", version, "skipped", skipped)
	}
	a := &ActivePolicy{Policy: b, Version: version, OnError: onError, stateful: p.statefulFlag(platformID)}
	p.set(platformID, a)
	return a
}

// set swaps a platform's active policy; the old module is closed once calls
// that already hold it are done.
func (p *Plugins) set(platformID string, a *ActivePolicy) {
	p.mu.Lock()
	old := p.active[platformID]
	p.active[platformID] = a
	p.mu.Unlock()
	if old != nil && old != a {
		// A caller may have taken the old policy just before the swap:
		// give it well over a deadline before closing.
		time.AfterFunc(2*time.Second, func() { old.Policy.(*breaker).Close(context.Background()) })
	}
}

func (p *Plugins) requireLoader() error {
	if p.loader == nil {
		return Errorf(EVALIDATION, "WASM plugins are not enabled on this server.")
	}
	return nil
}

func validOnError(s string) (string, error) {
	switch s {
	case "":
		return OnErrorBuiltin, nil
	case OnErrorBuiltin, OnErrorDeny:
		return s, nil
	}
	return "", invalid("onError", "must be builtin or deny")
}

// Upload validates a module, stores it as a new version and makes it active.
// A module that fails validation is refused with EVALIDATION and the active
// version stays.
func (p *Plugins) Upload(ctx context.Context, t Tenant, wasm []byte, onError string, idem *Idempotency) (*PluginStatus, error) {
	if err := p.requireLoader(); err != nil {
		return nil, err
	}
	// A replay answers before a module is compiled again.
	done, err := p.c.idempotent(ctx, t, idem)
	if err != nil {
		return nil, err
	}
	defer done()
	onError, err = validOnError(onError)
	if err != nil {
		return nil, err
	}
	if len(wasm) == 0 {
		return nil, invalid("module", "the body must be a WebAssembly module (Content-Type: application/wasm)")
	}
	if err := p.allow(t.PlatformID, pluginCallUpload); err != nil {
		return nil, err
	}
	if err := p.checkStorage(len(wasm)); err != nil {
		return nil, err
	}
	m, err := p.loader.Load(ctx, t.PlatformID, wasm)
	if err != nil {
		return nil, err
	}
	now := p.c.now().UTC()
	sum := sha256.Sum256(wasm)
	v := &PluginVersion{Version: NewID("plg_", now), SHA256: hex.EncodeToString(sum[:]), Size: len(wasm), UploadedAt: now}
	lock := func() func() { return p.loading.lock(t.PlatformID) }
	res, err := p.c.writeClaimed(ctx, t, idem, lock, func(b Batch) (any, error) {
		if err := p.prune(ctx, b, t.PlatformID, v); err != nil {
			return nil, err
		}
		b.PutPluginVersion(t.PlatformID, v, wasm)
		b.PutPluginSettings(t.PlatformID, &PluginSettings{Active: v.Version, OnError: onError})
		return &PluginStatus{PluginVersion: *v, Active: true, OnError: onError}, nil
	})
	if err != nil {
		m.Close(ctx)
		return nil, err
	}
	p.activate(t.PlatformID, v.Version, onError, m)
	return res.(*PluginStatus), nil
}

// Get returns the active version (or nil) and the history, oldest first.
func (p *Plugins) Get(ctx context.Context, platformID string) (*PluginOverview, error) {
	out := &PluginOverview{OnError: OnErrorBuiltin, History: []*PluginVersion{}}
	s, err := p.c.store.PluginSettings(ctx, platformID)
	if err != nil && ErrorCode(err) != ENOTFOUND {
		return nil, err
	}
	vs, err := p.c.store.PluginVersions(ctx, platformID)
	if err != nil {
		return nil, err
	}
	out.History = append(out.History, vs...)
	if s != nil {
		out.OnError = s.OnError
		for _, v := range vs {
			if v.Version == s.Active {
				out.Active = v
			}
		}
	}
	return out, nil
}

// Rollback makes an earlier version active again. Returns ENOTFOUND.
func (p *Plugins) Rollback(ctx context.Context, t Tenant, version string, idem *Idempotency) (*PluginStatus, error) {
	if err := p.requireLoader(); err != nil {
		return nil, err
	}
	// A replay answers before a module is compiled again.
	done, err := p.c.idempotent(ctx, t, idem)
	if err != nil {
		return nil, err
	}
	defer done()
	if err := p.allow(t.PlatformID, pluginCallUpload); err != nil {
		return nil, err
	}
	v, wasm, err := p.version(ctx, t.PlatformID, version)
	if err != nil {
		return nil, err
	}
	onError := OnErrorBuiltin
	if s, err := p.c.store.PluginSettings(ctx, t.PlatformID); err == nil {
		onError = s.OnError
	}
	m, err := p.loader.Load(ctx, t.PlatformID, wasm)
	if err != nil {
		return nil, err
	}
	lock := func() func() { return p.loading.lock(t.PlatformID) }
	res, err := p.c.writeClaimed(ctx, t, idem, lock, func(b Batch) (any, error) {
		b.PutPluginSettings(t.PlatformID, &PluginSettings{Active: v.Version, OnError: onError})
		return &PluginStatus{PluginVersion: *v, Active: true, OnError: onError}, nil
	})
	if err != nil {
		m.Close(ctx)
		return nil, err
	}
	p.activate(t.PlatformID, v.Version, onError, m)
	return res.(*PluginStatus), nil
}

// Disable returns a platform to built-in limits; its versions are kept.
func (p *Plugins) Disable(ctx context.Context, t Tenant) error {
	onError := OnErrorBuiltin
	if s, err := p.c.store.PluginSettings(ctx, t.PlatformID); err == nil {
		onError = s.OnError
	}
	lock := func() func() { return p.loading.lock(t.PlatformID) }
	_, err := p.c.write(ctx, t, nil, lock, func(b Batch) (any, error) {
		b.PutPluginSettings(t.PlatformID, &PluginSettings{OnError: onError})
		return nil, nil
	})
	if err != nil {
		return err
	}
	p.set(t.PlatformID, nil)
	return nil
}

func (p *Plugins) version(ctx context.Context, platformID, version string) (*PluginVersion, []byte, error) {
	vs, err := p.c.store.PluginVersions(ctx, platformID)
	if err != nil {
		return nil, nil, err
	}
	for _, v := range vs {
		if v.Version == version {
			wasm, err := p.c.store.PluginModule(ctx, platformID, version)
			return v, wasm, err
		}
	}
	return nil, nil, Errorf(ENOTFOUND, "No plugin version %q.", version)
}

// DryRunInput is the body of POST /api/platform/plugin/dry-run.
type DryRunInput struct {
	Plan       string  `json:"plan"`
	Feature    string  `json:"feature"`
	Quantity   *int64  `json:"quantity"`
	Usage      int64   `json:"usage"`
	Limit      *int64  `json:"limit"`
	CustomerID string  `json:"customerId"`
	Metadata   rawJSON `json:"metadata"`
	State      []byte  `json:"state"` // base64 in JSON
}

// DryRunResult is what a module decided, counting nothing.
type DryRunResult struct {
	Allowed        bool     `json:"allowed"`
	Cost           int64    `json:"cost"`
	Limit          int64    `json:"limit"`
	Message        *string  `json:"message"`
	State          []byte   `json:"state"`
	DurationMicros int64    `json:"durationMicros"`
	Log            []string `json:"log"`
}

// DryRun runs the active module, or version when given, on in. Nothing is
// counted or stored. A plugin failure is EPLUGINERROR with its reason.
//
// The active version runs on the active module's instances (no compile, no
// start-up); another version is loaded for the call. Dry-runs are limited
// per platform (PluginLimits.DryRunsPerMinute).
func (p *Plugins) DryRun(ctx context.Context, t Tenant, version string, in DryRunInput) (*DryRunResult, error) {
	if err := p.requireLoader(); err != nil {
		return nil, err
	}
	if err := p.allow(t.PlatformID, pluginCallDryRun); err != nil {
		return nil, err
	}
	var v Validation
	if in.Feature == "" {
		in.Feature = "requests"
	} else if !slug.MatchString(in.Feature) {
		v.Add("feature", "must be a lowercase slug")
	}
	if in.Plan == "" {
		in.Plan = "free"
	}
	q := int64(1)
	if in.Quantity != nil {
		q = *in.Quantity
	}
	if q < 1 || q > MaxQuantity {
		v.Add("quantity", "must be an integer from 1 to %d", int64(MaxQuantity))
	}
	limit := int64(0)
	if in.Limit != nil {
		limit = *in.Limit
	} else if tc, err := p.c.tierConfig(ctx, t.PlatformID); err == nil {
		if tier := tc.Tier(in.Plan); tier != nil {
			limit, _ = tier.Limit(in.Feature)
		}
	}
	if len(in.State) > 1024 {
		v.Add("state", "must be at most 1024 bytes")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	if version == "" {
		s, err := p.c.store.PluginSettings(ctx, t.PlatformID)
		if err != nil && ErrorCode(err) != ENOTFOUND {
			return nil, err
		}
		if s == nil || s.Active == "" {
			return nil, Errorf(ENOTFOUND, "No active plugin; upload one or name a version with ?version=.")
		}
		version = s.Active
	}
	var m PolicyModule
	if a := p.Active(t.PlatformID); a != nil && a.Version == version {
		m = a.Policy.(*breaker).PolicyModule // not through the breaker: a dry-run is no call
	} else {
		_, wasm, err := p.version(ctx, t.PlatformID, version)
		if err != nil {
			return nil, err
		}
		if m, err = p.loader.Load(ctx, t.PlatformID, wasm); err != nil {
			return nil, err
		}
		defer m.Close(ctx)
	}
	now := p.c.now()
	start, end := CalendarPeriod(IntervalMonth, now)
	pin := PolicyInput{
		Now: now, Used: in.Usage, Limit: limit, Quantity: q, PeriodStart: start, PeriodEnd: end,
		Mode: t.Mode, CustomerID: in.CustomerID, Plan: in.Plan, Feature: in.Feature,
		Metadata: in.Metadata, State: in.State,
	}
	var d Decision
	log, dur, err := m.DryRun(ctx, &pin, &d)
	if err != nil {
		return nil, err
	}
	res := &DryRunResult{Allowed: d.Allowed, Cost: d.Cost, Limit: limit, State: in.State,
		DurationMicros: dur.Microseconds(), Log: log}
	if res.Log == nil {
		res.Log = []string{}
	}
	if d.LimitSet {
		res.Limit = d.Limit
	}
	if d.Message != "" {
		res.Message = &d.Message
	}
	if d.ReplaceState {
		res.State = d.State
	}
	if res.State == nil {
		res.State = []byte{}
	}
	return res, nil
}
