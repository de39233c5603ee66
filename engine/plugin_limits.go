package engine

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"sync"
	"time"
)

// PluginLimits bound what one platform may do with plugins, so that one
// platform's uploads cannot hurt the others. Zero fields take the defaults.
type PluginLimits struct {
	// Versions is how many uploaded versions a platform keeps: an upload
	// deletes the oldest beyond it, in its own batch. The active version is
	// always kept. Defaults to 10.
	Versions int
	// StorageBytes is the per-platform budget for stored modules: an upload
	// also deletes the oldest versions until the kept ones fit, and a module
	// larger than the budget on its own is refused with EQUOTAEXCEEDED.
	// Defaults to 32 MiB.
	StorageBytes int64
	// UploadsPerMinute bounds uploads and rollbacks (each compiles and
	// starts a module) per platform: a token bucket holding as many tokens,
	// refilled evenly over the minute. Over it, calls are refused with
	// ERATELIMITED and RetryAfter. Defaults to 10.
	UploadsPerMinute int
	// DryRunsPerMinute bounds dry-runs per platform, the same way.
	// Defaults to 60.
	DryRunsPerMinute int
	// ErrorLogInterval is how often, at most, a platform's failing plugin
	// calls are logged: one line per interval, the first error, with the
	// count of those not logged. Defaults to 10 s.
	ErrorLogInterval time.Duration
}

// Plugin limit defaults.
const (
	DefaultPluginVersions         = 10
	DefaultPluginStorageBytes     = 32 << 20
	DefaultPluginUploadsPerMinute = 10
	DefaultPluginDryRunsPerMinute = 60
	DefaultPluginErrorLogInterval = 10 * time.Second
)

func (l PluginLimits) withDefaults() PluginLimits {
	if l.Versions <= 0 {
		l.Versions = DefaultPluginVersions
	}
	if l.StorageBytes <= 0 {
		l.StorageBytes = DefaultPluginStorageBytes
	}
	if l.UploadsPerMinute <= 0 {
		l.UploadsPerMinute = DefaultPluginUploadsPerMinute
	}
	if l.DryRunsPerMinute <= 0 {
		l.DryRunsPerMinute = DefaultPluginDryRunsPerMinute
	}
	if l.ErrorLogInterval <= 0 {
		l.ErrorLogInterval = DefaultPluginErrorLogInterval
	}
	return l
}

// SetLimits sets the plugin limits (zero fields: defaults). Call it before
// the engine serves; it is safe to call concurrently with calls, which see
// the old or the new limits.
func (p *Plugins) SetLimits(l PluginLimits) {
	l = l.withDefaults()
	p.limitsMu.Lock()
	p.limits = &l
	p.limitsMu.Unlock()
}

// Limits returns the plugin limits in force, defaults filled in.
func (p *Plugins) Limits() PluginLimits {
	p.limitsMu.Lock()
	defer p.limitsMu.Unlock()
	if p.limits == nil {
		l := PluginLimits{}.withDefaults()
		p.limits = &l
	}
	return *p.limits
}

// Kinds of plugin management calls, each with its own bucket.
const (
	pluginCallUpload = "upload" // uploads and rollbacks
	pluginCallDryRun = "dry-run"
)

// allow takes a token of the platform's bucket for kind, or returns
// ERATELIMITED with the seconds until one is back. The engine's clock
// refills the buckets.
func (p *Plugins) allow(platformID, kind string) error {
	l := p.Limits()
	perMinute, what := l.UploadsPerMinute, "plugin uploads and rollbacks"
	if kind == pluginCallDryRun {
		perMinute, what = l.DryRunsPerMinute, "plugin dry-runs"
	}
	if wait := p.buckets.take(platformID+"\x00"+kind, perMinute, p.c.now()); wait > 0 {
		return &Error{Code: ERATELIMITED, RetryAfter: wait,
			Message: fmt.Sprintf("Too many %s: at most %d a minute per platform.", what, perMinute)}
	}
	return nil
}

// tokenBuckets are per-key token buckets of n tokens refilled evenly over a
// minute, in memory (a restart refills them). Safe for concurrent use.
type tokenBuckets struct {
	mu sync.Mutex
	m  map[string]*tokenBucket
}

type tokenBucket struct {
	tokens float64
	at     time.Time
}

// take takes one token of key's bucket and returns 0, or, when the bucket
// is empty, the whole seconds (≥ 1) until a token is back.
func (tb *tokenBuckets) take(key string, perMinute int, now time.Time) int {
	rate := float64(perMinute) / 60 // tokens a second
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if tb.m == nil {
		tb.m = make(map[string]*tokenBucket)
	}
	b := tb.m[key]
	if b == nil {
		if len(tb.m) >= 4096 { // forget the full buckets: they are the default
			for k, o := range tb.m {
				if o.tokens+now.Sub(o.at).Seconds()*rate >= float64(perMinute) {
					delete(tb.m, k)
				}
			}
		}
		b = &tokenBucket{tokens: float64(perMinute), at: now}
		tb.m[key] = b
	}
	if el := now.Sub(b.at).Seconds(); el > 0 {
		b.tokens = min(float64(perMinute), b.tokens+el*rate)
		b.at = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return 0
	}
	return max(1, int(math.Ceil((1-b.tokens)/rate-1e-9)))
}

// checkStorage refuses a module that does not fit the platform's storage
// budget on its own, before it is compiled.
func (p *Plugins) checkStorage(size int) error {
	if budget := p.Limits().StorageBytes; int64(size) > budget {
		return Errorf(EQUOTAEXCEEDED, "Plugin storage quota: the module is %d bytes and a platform may store %d bytes of modules.", size, budget)
	}
	return nil
}

// prune deletes in b the platform's versions beyond its limits, as added is
// stored and made active in b.
func (p *Plugins) prune(ctx context.Context, b Tx, t Tenant, added *PluginVersion) error {
	vs, err := b.PluginVersions(ctx, t)
	if err != nil {
		return err
	}
	drop, err := p.Limits().retain(vs, added, added.Version)
	if err != nil {
		return err
	}
	for _, id := range drop {
		b.DeletePluginVersion(t, id)
	}
	return nil
}

// retain returns the versions of vs (any order) to delete so that, with
// added (nil for none), at most l.Versions are kept and their sizes fit
// l.StorageBytes: the newest are kept, and active and added always. It
// returns EQUOTAEXCEEDED when those two alone exceed the budget.
func (l PluginLimits) retain(vs []*PluginVersion, added *PluginVersion, active string) ([]string, error) {
	all := append([]*PluginVersion(nil), vs...)
	if added != nil {
		all = append(all, added)
	}
	// Newest first; version ids sort by upload time.
	sort.SliceStable(all, func(i, j int) bool {
		if !all[i].UploadedAt.Equal(all[j].UploadedAt) {
			return all[i].UploadedAt.After(all[j].UploadedAt)
		}
		return all[i].Version > all[j].Version
	})
	must := func(v *PluginVersion) bool {
		return v.Version == active || added != nil && v.Version == added.Version
	}
	var kept, bytes int64
	for _, v := range all {
		if must(v) {
			kept++
			bytes += int64(v.Size)
		}
	}
	if bytes > l.StorageBytes {
		return nil, Errorf(EQUOTAEXCEEDED, "Plugin storage quota: the active and the new module take %d bytes and a platform may store %d bytes of modules.", bytes, l.StorageBytes)
	}
	var drop []string
	for _, v := range all {
		if must(v) {
			continue
		}
		if kept < int64(l.Versions) && bytes+int64(v.Size) <= l.StorageBytes {
			kept++
			bytes += int64(v.Size)
			continue
		}
		drop = append(drop, v.Version)
	}
	return drop, nil
}

// errorSampler logs at most one line per interval for a stream of errors,
// with the count of those it did not log. Safe for concurrent use.
type errorSampler struct {
	mu         sync.Mutex
	last       time.Time // of the last line; zero: none yet
	suppressed int
}

// sample reports whether to log an error at now, and how many were
// suppressed before it.
func (s *errorSampler) sample(now time.Time, every time.Duration) (bool, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.last.IsZero() && now.Sub(s.last) < every {
		s.suppressed++
		return false, 0
	}
	n := s.suppressed
	s.last, s.suppressed = now, 0
	return true, n
}

// logPluginError logs a failed plugin call of the Meter. A call the
// breaker kept from the plugin is not logged (the breaker logs opening and
// closing); plugin errors are sampled per activation, so per platform: one
// line per PluginLimits.ErrorLogInterval, with the count suppressed.
func logPluginError(log *slog.Logger, a *ActivePolicy, platformID string, err error) {
	if err == ErrBreakerOpen {
		return
	}
	b, ok := a.Policy.(*breaker)
	if !ok {
		log.Warn("plugin error", "platform", platformID, "version", a.Version, "err", err)
		return
	}
	if ok, suppressed := b.errs.sample(b.now(), b.logEvery); ok {
		log.Warn("plugin error", "platform", platformID, "version", a.Version, "err", err,
			"suppressed", suppressed, "sampledEvery", b.logEvery.String())
	}
}
