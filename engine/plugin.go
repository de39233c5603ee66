package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
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

	// active follows each platform's stored settings: a change of them
	// (settingsChanged, called while the writing unit holds the plugin
	// lock) installs the module its writer compiled, or clears the entry
	// for a lazy load; gen counts the changes, so that a lazy load that
	// read older settings never installs its module over a newer one.
	mu       sync.RWMutex
	active   map[Tenant]*ActivePolicy // nil value: known to have none
	gen      map[Tenant]uint64
	prepared map[string]*ActivePolicy // by platform, mode and version: compiled by Upload or Rollback
	stateful map[string]*atomic.Bool  // by platform: whether any plugin state is stored
	// loading serializes lazy loads per platform, so a module is compiled once.
	loading *stripes

	// health keeps each tenant's recent fallbacks, in memory only
	// (operational state, since the engine started); guarded by mu.
	health  map[Tenant]*pluginHealthLog
	started time.Time

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

	// health is the tenant's record of fallbacks (Plugins.Health), written
	// only when a call fails; version and onError label its entries.
	health  *pluginHealthLog
	version string
	onError string
}

func (b *breaker) Decide(ctx context.Context, in *PolicyInput, out *Decision) error {
	until := b.openTill.Load()
	if until != 0 && b.now().UnixNano() < until {
		b.skipped.Add(1)
		b.fellBack(in, ErrBreakerOpen, false)
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
	opened := false
	if b.errors.Add(1) >= breakerErrors {
		b.errors.Store(0)
		b.openTill.Store(b.now().Add(breakerCoolDown).UnixNano())
		opened = true
		b.onOpen()
	}
	b.fellBack(in, err, opened)
	return err
}

// fellBack records a call the plugin did not decide (the fallback path
// only: a successful call records nothing and takes no lock).
func (b *breaker) fellBack(in *PolicyInput, err error, opened bool) {
	if b.health == nil {
		return
	}
	now := b.now().UTC()
	detail := ErrorMessage(err)
	if len(detail) > 200 {
		detail = detail[:200] + "…"
	}
	b.health.add(PluginFallback{
		At: now, Version: b.version, CustomerID: in.CustomerID, Feature: in.Feature,
		Kind: fallbackKind(err), Detail: detail, Denied: b.onError == "deny",
	}, opened)
}

// Active implements Policies: the platform's active policy, or nil.
func (p *Plugins) Active(t Tenant) *ActivePolicy {
	p.mu.RLock()
	a, known := p.active[t]
	p.mu.RUnlock()
	if known {
		return a
	}
	a, err := p.load(context.Background(), t)
	if err != nil {
		p.c.log.Error("loading the active plugin failed; built-in limits decide", "platform", t.PlatformID, "mode", t.Mode.String(), "err", err)
		return nil
	}
	return a
}

// load reads a platform's settings and compiles its active module, once.
func (p *Plugins) load(ctx context.Context, t Tenant) (*ActivePolicy, error) {
	unlock := p.loading.lock(t.PlatformID, t.Mode.String())
	defer unlock()
	p.mu.RLock()
	a, known := p.active[t]
	gen := p.gen[t]
	p.mu.RUnlock()
	if known {
		return a, nil
	}
	s, err := p.c.store.PluginSettings(ctx, t)
	if ErrorCode(err) == ENOTFOUND || err == nil && s.Active == "" || p.loader == nil {
		return p.install(t, gen, nil), nil
	} else if err != nil {
		return nil, err
	}
	wasm, err := p.c.store.PluginModule(ctx, t, s.Active)
	if err != nil {
		return nil, err
	}
	m, err := p.loader.Load(ctx, "", wasm)
	if err != nil {
		return nil, err
	}
	return p.install(t, gen, p.newActive(ctx, t, s, m)), nil
}

// install makes a the platform's active policy unless its settings changed
// since gen was read, and returns the active policy.
func (p *Plugins) install(t Tenant, gen uint64, a *ActivePolicy) *ActivePolicy {
	p.mu.Lock()
	if p.gen[t] != gen {
		// A unit of work changed the settings meanwhile: its policy wins.
		cur := p.active[t]
		p.mu.Unlock()
		if a != nil {
			a.Policy.(*breaker).Close(context.Background())
		}
		return cur
	}
	p.active[t] = a
	p.mu.Unlock()
	return a
}

// newActive wraps a compiled module as the active policy of settings s.
func (p *Plugins) newActive(ctx context.Context, t Tenant, s *PluginSettings, m PolicyModule) *ActivePolicy {
	b := &breaker{PolicyModule: m, now: p.c.now, logEvery: p.Limits().ErrorLogInterval,
		health: p.healthLog(t), version: s.Active, onError: s.OnError}
	version := s.Active
	b.onOpen = func() {
		p.c.log.Warn("plugin circuit breaker open: built-in limits or onError decide for a cool-down",
			"platform", t.PlatformID, "mode", t.Mode.String(), "version", version, "coolDown", breakerCoolDown.String())
		go p.c.pluginFallback(t, version, s.OnError, breakerCoolDown) // its own unit, off the track's locks
	}
	b.onClose = func(skipped int64) {
		p.c.log.Info("plugin circuit breaker closed: the plugin decides again",
			"platform", t.PlatformID, "mode", t.Mode.String(), "version", version, "skipped", skipped)
	}
	return &ActivePolicy{Policy: b, Version: version, OnError: s.OnError, stateful: p.statefulFlag(ctx, t.PlatformID)}
}

// statefulFlag tells whether a platform has any plugin state stored: one
// flag per platform, shared by its policies, that only ever turns true;
// true when unsure. Nil (always read the state) on a store that other
// processes write: another node may store the first state at any time.
func (p *Plugins) statefulFlag(ctx context.Context, platformID string) *atomic.Bool {
	if shared(p.c.store) {
		return nil
	}
	p.mu.RLock()
	f := p.stateful[platformID]
	p.mu.RUnlock()
	if f != nil {
		return f
	}
	has, err := p.c.store.HasPolicyState(ctx, platformID)
	p.mu.Lock()
	defer p.mu.Unlock()
	if f = p.stateful[platformID]; f == nil {
		f = new(atomic.Bool)
		p.stateful[platformID] = f
	}
	if has || err != nil {
		f.Store(true)
	}
	return f
}

// prepare compiles version's module for a unit of work that makes it
// active: settingsChanged installs it when the unit's batch is applied.
// The caller MUST call the returned discard after the unit, which closes
// the module if it was not installed.
func (p *Plugins) prepare(ctx context.Context, t Tenant, s *PluginSettings, wasm []byte) (discard func(), err error) {
	m, err := p.loader.Load(ctx, t.PlatformID, wasm)
	if err != nil {
		return nil, err
	}
	a := p.newActive(ctx, t, s, m)
	key := t.PlatformID + "\x00" + t.Mode.String() + "\x00" + s.Active
	p.mu.Lock()
	p.prepared[key] = a
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		left := p.prepared[key] == a
		if left {
			delete(p.prepared, key)
		}
		p.mu.Unlock()
		if left {
			m.Close(context.WithoutCancel(ctx))
		}
	}, nil
}

// settingsChanged follows a stored change of a platform's plugin settings
// (core.changed, while the writing unit holds the plugin lock): the module
// its writer prepared becomes active, built-in limits when none is active,
// and otherwise the next call loads the active version.
func (p *Plugins) settingsChanged(t Tenant, s *PluginSettings) {
	p.mu.Lock()
	p.gen[t]++
	old := p.active[t]
	var a *ActivePolicy
	if s.Active != "" {
		key := t.PlatformID + "\x00" + t.Mode.String() + "\x00" + s.Active
		a = p.prepared[key]
		delete(p.prepared, key)
	}
	if a != nil || s.Active == "" {
		p.active[t] = a
	} else {
		delete(p.active, t)
	}
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
	if err := p.c.quotas.storedBytes(ctx, t.PlatformID, int64(len(wasm))); err != nil { // quota.go
		return nil, err
	}
	now := p.c.now().UTC()
	sum := sha256.Sum256(wasm)
	v := &PluginVersion{Version: NewID("plg_", now), SHA256: hex.EncodeToString(sum[:]), Size: len(wasm), UploadedAt: now}
	settings := &PluginSettings{Active: v.Version, OnError: onError}
	discard, err := p.prepare(ctx, t, settings, wasm)
	if err != nil {
		return nil, err
	}
	defer discard()
	res, err := p.c.updateClaimed(ctx, t, idem, []Lock{pluginLock(t)}, func(b Tx) (any, error) {
		if err := p.prune(ctx, b, t, v); err != nil {
			return nil, err
		}
		b.PutPluginVersion(t, v, wasm)
		b.PutPluginSettings(t, settings)
		return &PluginStatus{PluginVersion: *v, Active: true, OnError: onError}, nil
	})
	if err != nil {
		return nil, err
	}
	return res.(*PluginStatus), nil
}

// Get returns the active version (or nil) and the history, oldest first.
func (p *Plugins) Get(ctx context.Context, t Tenant) (*PluginOverview, error) {
	out := &PluginOverview{OnError: OnErrorBuiltin, History: []*PluginVersion{}}
	s, err := p.c.store.PluginSettings(ctx, t)
	if err != nil && ErrorCode(err) != ENOTFOUND {
		return nil, err
	}
	vs, err := p.c.store.PluginVersions(ctx, t)
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
	v, wasm, err := p.version(ctx, t, version)
	if err != nil {
		return nil, err
	}
	onError := OnErrorBuiltin
	if s, err := p.c.store.PluginSettings(ctx, t); err == nil {
		onError = s.OnError
	}
	// The module is compiled with the onError read now; the unit of work
	// re-reads it under the lock and stores what it read.
	discard, err := p.prepare(ctx, t, &PluginSettings{Active: v.Version, OnError: onError}, wasm)
	if err != nil {
		return nil, err
	}
	defer discard()
	res, err := p.c.updateClaimed(ctx, t, idem, []Lock{pluginLock(t)}, func(b Tx) (any, error) {
		if s, err := b.PluginSettings(ctx, t); err == nil && s.OnError != onError {
			return nil, Errorf(ECONFLICT, "The plugin settings changed meanwhile; retry.")
		}
		b.PutPluginSettings(t, &PluginSettings{Active: v.Version, OnError: onError})
		return &PluginStatus{PluginVersion: *v, Active: true, OnError: onError}, nil
	})
	if err != nil {
		return nil, err
	}
	return res.(*PluginStatus), nil
}

// Disable returns a platform to built-in limits; its versions are kept.
func (p *Plugins) Disable(ctx context.Context, t Tenant) error {
	_, err := p.c.update(ctx, t, nil, []Lock{pluginLock(t)}, func(b Tx) (any, error) {
		onError := OnErrorBuiltin
		if s, err := b.PluginSettings(ctx, t); err == nil {
			onError = s.OnError
		}
		b.PutPluginSettings(t, &PluginSettings{OnError: onError})
		return nil, nil
	})
	return err
}

func (p *Plugins) version(ctx context.Context, t Tenant, version string) (*PluginVersion, []byte, error) {
	vs, err := p.c.store.PluginVersions(ctx, t)
	if err != nil {
		return nil, nil, err
	}
	for _, v := range vs {
		if v.Version == version {
			wasm, err := p.c.store.PluginModule(ctx, t, version)
			return v, wasm, err
		}
	}
	return nil, nil, Errorf(ENOTFOUND, "No plugin version %q.", version)
}

// DryRunInput is the body of POST /api/platform/plugin/dry-run.
type DryRunInput struct {
	Plan       string  `json:"plan"`
	Feature    string  `json:"feature"`
	Quantity   *int64  `json:"quantity" want:"an integer from 1 to 1000000000000"`
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
	} else if tc, err := p.c.tierConfig(ctx, t); err == nil {
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
		s, err := p.c.store.PluginSettings(ctx, t)
		if err != nil && ErrorCode(err) != ENOTFOUND {
			return nil, err
		}
		if s == nil || s.Active == "" {
			return nil, Errorf(ENOTFOUND, "No active plugin; upload one or name a version with ?version=.")
		}
		version = s.Active
	}
	var m PolicyModule
	if a := p.Active(t); a != nil && a.Version == version {
		m = a.Policy.(*breaker).PolicyModule // not through the breaker: a dry-run is no call
	} else {
		_, wasm, err := p.version(ctx, t, version)
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

// Fallback kinds (PluginFallback.Kind): why the plugin did not decide.
const (
	FallbackTrap        = "trap"         // the module trapped or exited
	FallbackTimeout     = "timeout"      // it ran past its deadline
	FallbackBreakerOpen = "breaker open" // not called: the breaker is open
	FallbackBadOutput   = "bad output"   // it answered something the ABI does not allow
)

// pluginFallbacksKept is how many recent fallbacks Health lists per tenant.
const pluginFallbacksKept = 20

// PluginFallback is one call that the plugin did not decide: built-in
// limits decided it instead, or it was refused when onError is "deny".
type PluginFallback struct {
	At         time.Time `json:"at"`
	Version    string    `json:"version"`
	CustomerID string    `json:"customerId"`
	Feature    string    `json:"feature"`
	Kind       string    `json:"kind"`
	// Detail is the plugin's error as a client may see it.
	Detail string `json:"detail"`
	// Denied: onError is "deny", so the call was refused.
	Denied bool `json:"denied"`
}

// PluginHealth is the state of a tenant's plugin in this process: its
// circuit breaker and its recent fallbacks. It is operational state, kept
// in memory since Since (the engine's start), not stored, and each node of
// a cluster has its own.
type PluginHealth struct {
	// Loaded: the active module is loaded in this process (it is loaded
	// on the first call); Version is then its version.
	Loaded  bool   `json:"loaded"`
	Version string `json:"version,omitempty"`
	// State is "closed" (the plugin decides) or "open" (skipped until
	// OpenUntil: built-in limits or onError decide).
	State     string     `json:"state"`
	OpenUntil *time.Time `json:"openUntil,omitempty"`
	// ErrorsInARow are the failed calls since the last success or opening;
	// the breaker opens at Threshold for CoolDown.
	ErrorsInARow int           `json:"errorsInARow"`
	Threshold    int           `json:"threshold"`
	CoolDown     time.Duration `json:"coolDown"`
	// LastOpenedAt is when the breaker last opened; nil when it never did.
	LastOpenedAt *time.Time `json:"lastOpenedAt,omitempty"`
	// Fallbacks are the most recent calls the plugin did not decide,
	// newest first (at most 20); Total counts them all since Since.
	Fallbacks []PluginFallback `json:"fallbacks"`
	Total     int64            `json:"total"`
	Since     time.Time        `json:"since"`
}

// pluginHealthLog is a tenant's ring of recent fallbacks. Safe for
// concurrent use; written only on the fallback path.
type pluginHealthLog struct {
	mu       sync.Mutex
	ring     [pluginFallbacksKept]PluginFallback
	total    int64
	openedAt time.Time
}

func (l *pluginHealthLog) add(f PluginFallback, opened bool) {
	l.mu.Lock()
	l.ring[l.total%pluginFallbacksKept] = f
	l.total++
	if opened {
		l.openedAt = f.At
	}
	l.mu.Unlock()
}

// recent returns the kept fallbacks, newest first, the total and when the
// breaker last opened.
func (l *pluginHealthLog) recent() ([]PluginFallback, int64, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := min(l.total, pluginFallbacksKept)
	out := make([]PluginFallback, 0, n)
	for i := int64(1); i <= n; i++ {
		out = append(out, l.ring[(l.total-i)%pluginFallbacksKept])
	}
	return out, l.total, l.openedAt
}

// healthLog returns t's fallback log, made on first use.
func (p *Plugins) healthLog(t Tenant) *pluginHealthLog {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.health[t]
	if l == nil {
		l = &pluginHealthLog{}
		p.health[t] = l
	}
	return l
}

// Health returns the state of t's plugin in this process: its breaker and
// its recent fallbacks since the engine started. It loads nothing: before
// the first call after a start or an upload, the module is not loaded and
// the breaker is closed. Safe for concurrent use.
func (p *Plugins) Health(t Tenant) *PluginHealth {
	h := &PluginHealth{State: "closed", Threshold: breakerErrors, CoolDown: breakerCoolDown, Since: p.started.UTC(), Fallbacks: []PluginFallback{}}
	p.mu.RLock()
	a := p.active[t]
	l := p.health[t]
	p.mu.RUnlock()
	if a != nil {
		h.Loaded, h.Version = true, a.Version
		if b, ok := a.Policy.(*breaker); ok {
			h.ErrorsInARow = int(b.errors.Load())
			if until := b.openTill.Load(); until != 0 && p.c.now().UnixNano() < until {
				u := time.Unix(0, until).UTC()
				h.State, h.OpenUntil = "open", &u
			}
		}
	}
	if l != nil {
		var opened time.Time
		h.Fallbacks, h.Total, opened = l.recent()
		if !opened.IsZero() {
			h.LastOpenedAt = &opened
		}
	}
	return h
}

// fallbackKind classifies a plugin error by its client-safe message (the
// plugins adapter's PluginError reasons, docs/plugin-abi.md).
func fallbackKind(err error) string {
	if err == ErrBreakerOpen {
		return FallbackBreakerOpen
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return FallbackTimeout
	}
	msg := ErrorMessage(err)
	switch {
	case strings.Contains(msg, "exceeded its deadline") || strings.Contains(msg, "was canceled"):
		return FallbackTimeout
	case strings.Contains(msg, "trapped") || strings.Contains(msg, "exited with code") || strings.Contains(msg, "instantiate"):
		return FallbackTrap
	}
	return FallbackBadOutput
}
