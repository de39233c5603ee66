package plugins

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/dream-api/dream-api/engine"
)

// Runtime compiles, validates and runs limit-policy modules. It owns one
// wazero runtime with the host modules wasi_snapshot_preview1 and dream.
//
// A Runtime is safe for concurrent use. The caller MUST call Close, which
// also closes every Module loaded from it.
type Runtime struct {
	opts   Options
	wr     wazero.Runtime
	cache  wazero.CompilationCache
	logger *slog.Logger

	// wasi holds the signatures of the WASI functions a module may import.
	wasi map[string]api.FunctionDefinition

	mu       sync.Mutex
	compiled map[[32]byte]*compiled // by sha256 of the wasm
	loading  map[string]bool        // owners with a Load (or its compile) running
	closed   atomic.Bool

	// compiling holds a read lock per compile in progress, one abandoned
	// at its deadline included: Close takes the write lock, so that wazero
	// is never closed under a compile (it panics).
	compiling sync.RWMutex

	// compileModule is wr.CompileModule; tests slow it down.
	compileModule func(context.Context, []byte) (wazero.CompiledModule, error)

	// loads holds one token per Load running (Options.MaxLoads), a compile
	// run on past its deadline included.
	loads chan struct{}
}

// compiled is a compiled module shared by every Module loaded from the same
// bytes.
type compiled struct {
	sum  [32]byte
	cm   wazero.CompiledModule
	refs int // under Runtime.mu
}

// New returns a Runtime configured by opts (nil for the defaults). It returns
// an error listing every invalid option.
func New(ctx context.Context, opts *Options) (*Runtime, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	var (
		cache wazero.CompilationCache
		err   error
	)
	if o.CacheDir != "" {
		if cache, err = wazero.NewCompilationCacheWithDir(o.CacheDir); err != nil {
			return nil, fmt.Errorf("plugins: compilation cache: %w", err)
		}
	} else {
		cache = wazero.NewCompilationCache()
	}
	cfg := wazero.NewRuntimeConfig().
		WithCloseOnContextDone(true).
		WithMemoryLimitPages(o.MemoryPages).
		WithCompilationCache(cache).
		WithDebugInfoEnabled(false)
	r := &Runtime{
		opts:     o,
		wr:       wazero.NewRuntimeWithConfig(ctx, cfg),
		cache:    cache,
		logger:   o.Logger,
		compiled: map[[32]byte]*compiled{},
		loading:  map[string]bool{},
		loads:    make(chan struct{}, o.MaxLoads),
	}
	r.compileModule = r.wr.CompileModule
	wasi, err := wasi_snapshot_preview1.Instantiate(ctx, r.wr)
	if err == nil {
		r.wasi = wasi.(api.Module).ExportedFunctionDefinitions()
		_, err = r.wr.NewHostModuleBuilder("dream").
			NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(r.hostLog), []api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, nil).
			WithParameterNames("ptr", "len").
			Export("log").
			Instantiate(ctx)
	}
	if err != nil {
		_ = r.wr.Close(ctx)
		_ = cache.Close(ctx)
		return nil, fmt.Errorf("plugins: host modules: %w", err)
	}
	return r, nil
}

// Close closes every Module loaded from r, then r. In-flight calls fail.
func (r *Runtime) Close(ctx context.Context) error {
	if r.closed.Swap(true) {
		return nil
	}
	// Compiles in progress finish first (a compile cannot be stopped);
	// none starts after closed is set.
	r.compiling.Lock()
	defer r.compiling.Unlock()
	err := r.wr.Close(ctx)
	return errors.Join(err, r.cache.Close(ctx))
}

// Options returns the options r runs with, defaults filled in.
func (r *Runtime) Options() Options { return r.opts }

// Load validates wasm and returns a Module ready to decide. Validation checks
// the size and the binary's structure, refuses a module that declares more
// than the Options allow (functions, code, imports, …; see the package doc)
// before compiling it, compiles under Options.CompileDeadline (once per
// sha256: loading the same bytes again shares the compiled code), checks
// exports and imports, instantiates one instance and runs a self-test
// decide call under the deadline (usage 0, limit 100, quantity 1, feature
// "requests", plan "free", check only). A module that fails is refused with
// a *ValidationError saying why.
//
// At most Options.MaxLoads Loads run at once; Load waits up to
// Options.LoadWait for its turn, then fails with a *BusyError.
//
// The caller MUST call Module.Close.
func (r *Runtime) Load(ctx context.Context, wasm []byte) (*Module, error) {
	return r.LoadFor(ctx, "", wasm)
}

// LoadFor is Load on behalf of owner (a platform): while one Load of an
// owner runs — or its compile, run on past the deadline — another for the
// same owner fails at once with a *BusyError. An empty owner is not
// limited so.
func (r *Runtime) LoadFor(ctx context.Context, owner string, wasm []byte) (*Module, error) {
	if r.closed.Load() {
		return nil, ErrClosed
	}
	if len(wasm) > r.opts.MaxModuleSize {
		return nil, invalidf("module is %d bytes; the limit is %d", len(wasm), r.opts.MaxModuleSize)
	}
	if len(wasm) == 0 {
		return nil, invalidf("module is empty")
	}
	sc, err := prepare(wasm, r.opts.declLimits())
	if errors.Is(err, errLimit) {
		return nil, invalidf("%s", strings.TrimPrefix(err.Error(), errLimit.Error()+": "))
	} else if err != nil {
		return nil, invalidf("does not compile: %v", err)
	}
	release, err := r.acquireLoad(ctx, owner)
	if err != nil {
		return nil, err
	}
	c, err := r.compile(ctx, wasm, sc.capped, &release)
	if release != nil {
		defer release()
	}
	if err != nil {
		return nil, err
	}
	if err := r.check(c.cm, sc); err != nil {
		r.release(c)
		return nil, err
	}
	m := newModule(r, c, len(wasm))
	if err := m.selfTest(ctx); err != nil {
		_ = m.Close(ctx)
		return nil, err
	}
	return m, nil
}

// acquireLoad takes owner's turn and a load slot, and returns what gives
// them back.
func (r *Runtime) acquireLoad(ctx context.Context, owner string) (func(), error) {
	if owner != "" {
		r.mu.Lock()
		busy := r.loading[owner]
		r.loading[owner] = true
		r.mu.Unlock()
		if busy {
			return nil, &BusyError{Reason: "Another plugin module of this platform is being loaded; try again shortly.", RetryAfter: time.Second}
		}
	}
	done := func() {
		if owner != "" {
			r.mu.Lock()
			delete(r.loading, owner)
			r.mu.Unlock()
		}
	}
	wait := time.NewTimer(r.opts.LoadWait)
	defer wait.Stop()
	select {
	case r.loads <- struct{}{}:
	default:
		select {
		case r.loads <- struct{}{}:
		case <-wait.C:
			done()
			return nil, &BusyError{Reason: "The server is loading other plugin modules; try again shortly.", RetryAfter: r.opts.LoadWait}
		case <-ctx.Done():
			done()
			return nil, ctx.Err()
		}
	}
	return func() { <-r.loads; done() }, nil
}

// compile returns the compiled module for wasm, compiling it (as capped, its
// tables capped) unless r holds it already.
//
// wazero's CompileModule does not stop when its context is done (it checks
// the context only with several compilation workers), so it runs on its own
// goroutine: at CompileDeadline, or when ctx is done, compile returns and
// leaves the compile running; it then takes over *release (setting it to
// nil), so that the load slot and the owner's turn are held until the
// compile ends, and closes what it compiled.
func (r *Runtime) compile(ctx context.Context, wasm, capped []byte, release *func()) (*compiled, error) {
	sum := sha256.Sum256(wasm)
	r.mu.Lock()
	if c := r.compiled[sum]; c != nil {
		c.refs++
		r.mu.Unlock()
		return c, nil
	}
	r.mu.Unlock()

	type result struct {
		cm  wazero.CompiledModule
		err error
	}
	done := make(chan result, 1)
	r.compiling.RLock()
	if r.closed.Load() {
		r.compiling.RUnlock()
		return nil, ErrClosed
	}
	go func() {
		defer r.compiling.RUnlock()
		cm, err := r.compileModule(context.WithoutCancel(ctx), capped)
		done <- result{cm, err}
	}()
	deadline := time.NewTimer(r.opts.CompileDeadline)
	defer deadline.Stop()
	var res result
	select {
	case res = <-done:
	case <-deadline.C:
	case <-ctx.Done():
	}
	if res.cm == nil && res.err == nil { // abandoned
		rel := *release
		*release = nil
		go func() {
			if res := <-done; res.cm != nil {
				_ = res.cm.Close(context.Background())
			}
			rel()
		}()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return nil, invalidf("compiling took over %v (the compile deadline)", r.opts.CompileDeadline)
	}
	cm, err := res.cm, res.err
	if err != nil {
		if r.closed.Load() {
			return nil, ErrClosed
		}
		return nil, invalidf("does not compile: %v", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if c := r.compiled[sum]; c != nil { // compiled concurrently
		c.refs++
		_ = cm.Close(ctx)
		return c, nil
	}
	c := &compiled{sum: sum, cm: cm, refs: 1}
	r.compiled[sum] = c
	return c, nil
}

// release drops a reference to c, closing it with the last one.
func (r *Runtime) release(c *compiled) {
	r.mu.Lock()
	c.refs--
	last := c.refs == 0
	if last {
		delete(r.compiled, c.sum)
	}
	r.mu.Unlock()
	if last {
		_ = c.cm.Close(context.Background())
	}
}

var (
	i32           = api.ValueTypeI32
	sigAlloc      = signature{[]api.ValueType{i32}, []api.ValueType{i32}}
	sigDecide     = signature{[]api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}}
	sigLog        = signature{[]api.ValueType{i32, i32}, nil}
	sigInitialize = signature{nil, nil}
)

type signature struct{ params, results []api.ValueType }

func sigOf(d api.FunctionDefinition) signature {
	return signature{d.ParamTypes(), d.ResultTypes()}
}

func (s signature) equal(o signature) bool {
	return slices.Equal(s.params, o.params) && slices.Equal(s.results, o.results)
}

func (s signature) String() string {
	names := func(ts []api.ValueType) string {
		var b strings.Builder
		for i, t := range ts {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(api.ValueTypeName(t))
		}
		return b.String()
	}
	return "(" + names(s.params) + ") -> (" + names(s.results) + ")"
}

// check validates the exports and imports of cm against the ABI.
func (r *Runtime) check(cm wazero.CompiledModule, sc *scanned) error {
	var problems []string
	if _, ok := cm.ExportedMemories()["memory"]; !ok {
		problems = append(problems, "export memory is missing")
	}
	fns := cm.ExportedFunctions()
	for _, want := range []struct {
		name     string
		sig      signature
		optional bool
	}{
		{"alloc", sigAlloc, false},
		{"decide_v1", sigDecide, false},
		{"_initialize", sigInitialize, true},
	} {
		d, ok := fns[want.name]
		switch {
		case !ok && !want.optional:
			problems = append(problems, fmt.Sprintf("export %s is missing", want.name))
		case ok && !sigOf(d).equal(want.sig):
			problems = append(problems, fmt.Sprintf("export %s has type %v; want %v", want.name, sigOf(d), want.sig))
		}
	}
	for _, d := range cm.ImportedFunctions() {
		mod, name, _ := d.Import()
		var want api.FunctionDefinition
		switch {
		case mod == "wasi_snapshot_preview1" && r.wasi[name] != nil:
			want = r.wasi[name]
		case mod == "dream" && name == "log":
		default:
			problems = append(problems, fmt.Sprintf("import %s.%s is not allowed", mod, name))
			continue
		}
		wantSig := sigLog
		if want != nil {
			wantSig = sigOf(want)
		}
		if got := sigOf(d); !got.equal(wantSig) {
			problems = append(problems, fmt.Sprintf("import %s.%s has type %v; want %v", mod, name, got, wantSig))
		}
	}
	// wazero lists imported functions and memories, not tables, globals or
	// tags: prepare read those.
	for _, imp := range sc.otherImports {
		problems = append(problems, fmt.Sprintf("import %s is not allowed", imp))
	}
	if len(problems) > 0 {
		return invalidf("%s", strings.Join(problems, "; "))
	}
	return nil
}

// hostLog is dream.log(ptr, len i32): one line of the plugin log.
func (r *Runtime) hostLog(ctx context.Context, mod api.Module, stack []uint64) {
	ptr, n := api.DecodeU32(stack[0]), api.DecodeU32(stack[1])
	b, ok := mod.Memory().Read(ptr, n)
	if !ok {
		// Panicking traps the guest: its call fails as a plugin error.
		panic(fmt.Errorf("dream.log: %d bytes at %d are out of bounds", n, ptr))
	}
	if inst, _ := ctx.Value(instanceKey{}).(*instance); inst != nil {
		inst.logLine(b)
		return
	}
	r.logger.Info("plugin log", "line", string(truncate(b)))
}

// selfTestInput is the call every module must answer at Load.
func selfTestInput() *engine.PolicyInput {
	now := time.Now().UTC()
	start := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	return &engine.PolicyInput{
		Now:         now,
		Used:        0,
		Limit:       100,
		Quantity:    1,
		PeriodStart: start,
		PeriodEnd:   start.AddDate(0, 1, 0),
		Mode:        engine.Test,
		CheckOnly:   true,
		CustomerID:  "cus_selftest",
		Plan:        "free",
		Feature:     "requests",
	}
}

// Loader returns r as an engine.PolicyLoader, whose Load is LoadFor the
// platform and returns the *Module as an engine.PolicyModule.
func (r *Runtime) Loader() engine.PolicyLoader { return loader{r} }

type loader struct{ r *Runtime }

func (l loader) Load(ctx context.Context, platformID string, wasm []byte) (engine.PolicyModule, error) {
	m, err := l.r.LoadFor(ctx, platformID, wasm)
	if err != nil {
		return nil, err // never a typed nil
	}
	return m, nil
}

var (
	_ engine.PolicyLoader = loader{}
	_ engine.PolicyModule = (*Module)(nil)
)
