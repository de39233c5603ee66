package main

// `dream-bench run`: the side-by-side comparison of issue 6.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// runConfig is the run subcommand's flags.
type runConfig struct {
	Duration time.Duration
	Conns    []int
	Hot      bool
	Out      string
	Bin      string
	Src      string
	Wasm     string
	Skip     map[string]bool
	Pool     int
	Keep     bool
	Strict   bool
}

func parseRunFlags(args []string, stderr io.Writer) (*runConfig, error) {
	c := &runConfig{Skip: map[string]bool{}}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&c.Duration, "duration", 5*time.Second, "measured time of each case (no separate warm-up: connections are opened and primed first)")
	conns := fs.String("conns", "32,128", "connection counts, comma-separated")
	fs.BoolVar(&c.Hot, "hot", true, "also run every stack with all connections on one customer")
	fs.StringVar(&c.Out, "out", "bin/bench-results.json", "where to write the results as JSON")
	fs.StringVar(&c.Bin, "bin", "", "dream-api binary to run (default: go build ./cmd/dream-api of -src)")
	fs.StringVar(&c.Src, "src", ".", "the dream-api module (for the build and -wasm)")
	fs.StringVar(&c.Wasm, "wasm", "testdata/plugins/builtin.wasm", "the WASM policy uploaded for the WASM cases (relative to -src)")
	skip := fs.String("skip", "", "stacks to leave out, comma-separated: ceiling, dream-api, wasm, redis, postgres, dream-api-pg")
	fs.IntVar(&c.Pool, "pool", 64, "database connections of the Redis and PostgreSQL baselines")
	fs.BoolVar(&c.Keep, "keep", false, "keep the temporary directory (data and logs)")
	fs.BoolVar(&c.Strict, "strict", false, "exit 1 when a target is missed")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	for _, s := range strings.Split(*conns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 4096 {
			return nil, fmt.Errorf("-conns: %q is not a connection count (1..4096)", s)
		}
		c.Conns = append(c.Conns, n)
	}
	for _, s := range strings.Split(*skip, ",") {
		if s = strings.TrimSpace(s); s != "" {
			c.Skip[s] = true
		}
	}
	if c.Duration <= 0 || c.Duration > time.Hour {
		return nil, fmt.Errorf("-duration must be in (0, 1h]")
	}
	return c, nil
}

// Stacks, as named in the results.
const (
	stackCeiling  = "ceiling"
	stackDream    = "dream-api"
	stackWASM     = "dream-api+wasm"
	stackRedis    = "redis"
	stackPostgres = "postgres"
)

// caseResult is one measured case.
type caseResult struct {
	Name      string  `json:"name"`
	Stack     string  `json:"stack"`
	Conns     int     `json:"conns"`
	Customers string  `json:"customers"` // "per-connection" or "hot"
	Requests  int64   `json:"requests"`
	RPS       float64 `json:"reqPerSec"`
	P50ms     float64 `json:"p50Ms"`
	P90ms     float64 `json:"p90Ms"`
	P99ms     float64 `json:"p99Ms"`
	P999ms    float64 `json:"p999Ms"`
	MaxMs     float64 `json:"maxMs"`
	Non2xx    int64   `json:"non2xx"`
	Errors    int64   `json:"errors"`
	// RatioToCeiling is RPS over the ceiling's RPS at the same connections.
	RatioToCeiling float64 `json:"ratioToCeiling"`
	CPU            cpuUse  `json:"cpu"`
}

// ratio is one comparison the issue asks for.
type ratio struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"` // "x" or "ms"
	Target string  `json:"target,omitempty"`
	Met    *bool   `json:"met,omitempty"`
}

// runResults is the JSON file.
type runResults struct {
	GeneratedAt     time.Time      `json:"generatedAt"`
	Machine         machineInfo    `json:"machine"`
	DurationSeconds float64        `json:"durationSecondsPerCase"`
	Cases           []*caseResult  `json:"cases"`
	Ratios          []ratio        `json:"ratios"`
	Skipped         []string       `json:"skipped"`
	Exactness       *exactness     `json:"exactness,omitempty"`
	Notes           []string       `json:"notes"`
	Took            float64        `json:"tookSeconds"`
	DreamAPI        map[string]any `json:"dreamApi,omitempty"`
	Batch           *batchResult   `json:"batch,omitempty"` // batch.go
}

type machineInfo struct {
	CPUs     int    `json:"cpus"`
	CPUModel string `json:"cpuModel"`
	Kernel   string `json:"kernel"`
	Go       string `json:"go"`
}

// exactness compares what the load generator saw allowed with what
// dream-api stored, customer by customer, after every dream-api case.
type exactness struct {
	Customers    int   `json:"customers"`
	Acknowledged int64 `json:"acknowledged"`
	Stored       int64 `json:"stored"`
	Mismatches   int   `json:"mismatches"`
	// TransportErrors is the number of requests that got no answer; with
	// any, stored may exceed acknowledged by at most that many.
	TransportErrors int64 `json:"transportErrors"`
}

func machine() machineInfo {
	m := machineInfo{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// runner holds one run's state.
type runner struct {
	cfg     *runConfig
	dir     string
	out     io.Writer
	res     *runResults
	ceiling map[int]float64 // RPS by connections
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseRunFlags(args, stderr)
	if err != nil {
		return err
	}
	began := time.Now()
	dir, cleanup, err := workDir("dream-bench-", cfg.Keep, stdout)
	if err != nil {
		return err
	}
	defer cleanup()
	r := &runner{cfg: cfg, dir: dir, out: stdout, ceiling: map[int]float64{},
		res: &runResults{GeneratedAt: time.Now().UTC(), Machine: machine(), DurationSeconds: cfg.Duration.Seconds()}}
	r.res.Notes = append(r.res.Notes,
		fmt.Sprintf("load generator and servers share the same %d CPUs over loopback", runtime.NumCPU()),
		"closed loop: each connection sends its next request when the previous one is answered",
		"dream-api: the real binary, durable (Pebble Sync with group commit), authenticated with a secret key",
		"redis: redis-server appendonly yes, appendfsync always; Lua check-and-increment via EVALSHA",
		"postgres: synchronous_commit on; UPDATE ... WHERE count + $1 <= lim RETURNING count")
	fmt.Fprintf(stdout, "dream-bench: %d CPUs (%s), %s per case, connections %v, loopback\n",
		r.res.Machine.CPUs, r.res.Machine.CPUModel, cfg.Duration, cfg.Conns)

	steps := []struct {
		stack string
		fn    func(context.Context) error
	}{
		{stackCeiling, r.runCeiling},
		{stackDream, r.runDream},
		{stackRedis, r.runRedis},
		{stackPostgres, r.runPostgres},
		{stackDreamPG, r.runDreamPostgres},
	}
	var errs []error
	for _, s := range steps {
		if ctx.Err() != nil {
			break
		}
		if cfg.Skip[s.stack] {
			r.skip(s.stack, "left out with -skip")
			continue
		}
		if err := s.fn(ctx); errors.Is(err, errNotInstalled) {
			continue // already reported
		} else if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.stack, err))
			fmt.Fprintf(stdout, "%s: FAILED: %v\n", s.stack, err)
		}
	}
	r.res.Ratios = r.ratios()
	r.res.Took = time.Since(began).Seconds()
	r.print()
	if b, err := json.MarshalIndent(r.res, "", "  "); err == nil {
		os.MkdirAll(filepath.Dir(cfg.Out), 0o755)
		if err := os.WriteFile(cfg.Out, append(b, '\n'), 0o644); err != nil {
			errs = append(errs, err)
		} else {
			abs, _ := filepath.Abs(cfg.Out)
			fmt.Fprintf(stdout, "\nresults: %s (%.0f s in all)\n", abs, r.res.Took)
		}
	}
	if cfg.Strict {
		for _, q := range r.res.Ratios {
			if q.Met != nil && !*q.Met {
				errs = append(errs, fmt.Errorf("target missed: %s = %.2f%s, want %s", q.Name, q.Value, q.Unit, q.Target))
			}
		}
	}
	if e := r.res.Exactness; e != nil && e.Mismatches > 0 {
		errs = append(errs, fmt.Errorf("dream-api stored counts differ from the acknowledged ones for %d customers", e.Mismatches))
	}
	return errors.Join(errs...)
}

func (r *runner) skip(stack, why string) {
	line := fmt.Sprintf("%s: skipped: %s", stack, why)
	r.res.Skipped = append(r.res.Skipped, line)
	fmt.Fprintln(r.out, line)
}

// trackRequests returns one prebuilt POST /api/track per connection, for
// customer ids[i % len(ids)].
func trackRequests(addr, key string, ids []string, conns int) [][]byte {
	reqs := make([][]byte, conns)
	for i := range reqs {
		body := fmt.Sprintf(`{"customerId":%q,"quantity":1}`, ids[i%len(ids)])
		reqs[i] = httpRequest(nil, addr, "/api/track", key, []byte(body))
	}
	return reqs
}

// measure runs one case.
func (r *runner) measure(ctx context.Context, stack, name, addr, key string, ids []string, conns int, hot bool,
	check func(status int, body []byte) error) (*caseResult, []int64, error) {
	return r.measureNodes(ctx, stack, name, []string{addr}, key, ids, conns, hot, check)
}

// measureNodes is measure on several servers: connection c talks to
// addrs[c % len(addrs)], as behind a round-robin balancer.
func (r *runner) measureNodes(ctx context.Context, stack, name string, addrs []string, key string, ids []string, conns int, hot bool,
	check func(status int, body []byte) error) (*caseResult, []int64, error) {
	reqs := trackRequests(addrs[0], key, ids, conns) // the Host header does not matter
	l := &load{Addrs: addrs, Conns: conns, Duration: r.cfg.Duration,
		Request: func(c int, _ int64, _ []byte) []byte { return reqs[c] }}
	// Let the previous case's process exit and its sockets close.
	time.Sleep(300 * time.Millisecond)
	before := sampleCPU()
	res, err := l.run(ctx)
	after := sampleCPU()
	if err != nil {
		return nil, nil, err
	}
	if check != nil {
		if err := check(res.FirstStatus, res.First); err != nil {
			return nil, nil, fmt.Errorf("%s: first answer: %w", name, err)
		}
	}
	cr := &caseResult{Name: name, Stack: stack, Conns: conns, Customers: "per-connection",
		Requests: res.Requests, RPS: res.RPS(), Errors: res.Errors,
		P50ms: ms(res.Hist.quantile(.5)), P90ms: ms(res.Hist.quantile(.9)), P99ms: ms(res.Hist.quantile(.99)),
		P999ms: ms(res.Hist.quantile(.999)), MaxMs: ms(time.Duration(res.Hist.max)),
		CPU: cpuBetween(before, after, runtime.NumCPU())}
	if hot {
		cr.Customers = "hot"
	}
	cr.Non2xx = res.Non2xx()
	if c, ok := r.ceiling[conns]; ok && c > 0 {
		cr.RatioToCeiling = cr.RPS / c
	}
	r.res.Cases = append(r.res.Cases, cr)
	fmt.Fprintf(r.out, "  %-44s %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  (busy %.2f cores, load generator %.2f)\n",
		name, cr.RPS, cr.P50ms, cr.P99ms, cr.CPU.Busy, cr.CPU.Client)
	if cr.Non2xx > 0 || cr.Errors > 0 {
		fmt.Fprintf(r.out, "  %-44s WARNING: %d non-2xx answers, %d transport errors\n", "", cr.Non2xx, cr.Errors)
	}
	return cr, res.OK, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// variants are the customer layouts of a stack: one customer per
// connection, and (with -hot) every connection on one customer.
func (r *runner) variants() []bool {
	if r.cfg.Hot {
		return []bool{false, true}
	}
	return []bool{false}
}

func caseName(stack string, conns int, hot bool) string {
	if hot {
		return fmt.Sprintf("%s c=%d hot customer", stack, conns)
	}
	return fmt.Sprintf("%s c=%d", stack, conns)
}

func expectAllowed(status int, body []byte) error {
	if status != 200 || !bytes.Contains(body, []byte(`"allowed":true`)) {
		return fmt.Errorf("%d %s", status, body)
	}
	return nil
}

func (r *runner) runCeiling(ctx context.Context) error {
	fmt.Fprintln(r.out, "ceiling: bare net/http answering a track-sized JSON body")
	p, addr, err := startBaseline(r.dir, "bare")
	if err != nil {
		return err
	}
	defer p.stop()
	for _, n := range r.cfg.Conns {
		cr, _, err := r.measure(ctx, stackCeiling, caseName(stackCeiling, n, false), addr, "", []string{"cus_ceiling"}, n, false, expectAllowed)
		if err != nil {
			return err
		}
		r.ceiling[n] = cr.RPS
		cr.RatioToCeiling = 1
	}
	return nil
}

// benchPlatform is one platform of the dream-api run: its secret key, one
// customer per connection and a hot one.
type benchPlatform struct {
	stack string
	sk    string
	ids   []string
	hot   string
	check func(status int, body []byte) error
}

func (r *runner) setupPlatform(ctx context.Context, api *apiClient, token, stack, name string, customers int) (*benchPlatform, error) {
	sk, err := api.createPlatform(ctx, token, name)
	if err != nil {
		return nil, err
	}
	if err := api.putTiers(ctx, sk, baselineLimit); err != nil {
		return nil, err
	}
	ids, err := api.createCustomers(ctx, sk, strings.ReplaceAll(strings.ToLower(name), " ", "-"), customers+1)
	if err != nil {
		return nil, err
	}
	return &benchPlatform{stack: stack, sk: sk, ids: ids[:customers], hot: ids[customers]}, nil
}

// runDream runs the real binary with two platforms: one on the built-in
// limits and one with the WASM policy. Their cases alternate (built-in,
// then WASM, for each connection count and layout), so that both see the
// server in the same state: the store grows and Pebble flushes and
// compacts as the run goes on.
func (r *runner) runDream(ctx context.Context) error {
	bin, err := r.dreamBinary()
	if err != nil {
		return err
	}
	token := "dat_bench_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	p, addr, err := startDreamAPI(bin, r.dir, token)
	if err != nil {
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			p.stop()
		}
	}()
	api := newAPIClient(addr)
	maxConns := 0
	for _, n := range r.cfg.Conns {
		maxConns = max(maxConns, n)
	}
	builtin, err := r.setupPlatform(ctx, api, token, stackDream, "Bench", maxConns)
	if err != nil {
		return err
	}
	builtin.check = func(status int, body []byte) error {
		if err := expectAllowed(status, body); err != nil {
			return err
		}
		if !bytes.Contains(body, []byte(`"plugin":null`)) {
			return fmt.Errorf("a policy decided, want the built-in limits: %s", body)
		}
		return nil
	}
	platforms := []*benchPlatform{builtin}
	if r.cfg.Skip["wasm"] {
		r.skip(stackWASM, "left out with -skip")
	} else {
		wasm, err := os.ReadFile(filepath.Join(r.cfg.Src, r.cfg.Wasm))
		if err != nil {
			return fmt.Errorf("the WASM policy: %w", err)
		}
		wp, err := r.setupPlatform(ctx, api, token, stackWASM, "Bench WASM", maxConns)
		if err != nil {
			return err
		}
		version, err := api.putPlugin(ctx, wp.sk, wasm)
		if err != nil {
			return err
		}
		fmt.Fprintf(r.out, "dream-api: uploaded %s as %s (PUT /api/platform/plugin) to the second platform\n", r.cfg.Wasm, version)
		wp.check = func(status int, body []byte) error {
			if err := expectAllowed(status, body); err != nil {
				return err
			}
			if !bytes.Contains(body, []byte(`"version":"`+version+`"`)) {
				return fmt.Errorf("the uploaded policy did not decide: %s", body)
			}
			return nil
		}
		platforms = append(platforms, wp)
	}
	fmt.Fprintf(r.out, "dream-api: %s, %d platform(s), each with a tier of limit %d and %d customers (+1 hot)\n",
		addr, len(platforms), int64(baselineLimit), maxConns)

	acked := map[string]int64{}
	var transport int64
	for _, n := range r.cfg.Conns {
		for _, isHot := range r.variants() {
			for _, bp := range platforms {
				use := bp.ids
				if isHot {
					use = []string{bp.hot}
				}
				cr, ok, err := r.measure(ctx, bp.stack, caseName(bp.stack, n, isHot), addr, bp.sk, use, n, isHot, bp.check)
				if err != nil {
					return err
				}
				transport += cr.Errors
				for i, k := range ok {
					acked[use[i%len(use)]] += k
				}
			}
		}
	}

	bt, err := r.runBatch(ctx, addr, builtin, acked) // batch.go
	if err != nil {
		return err
	}
	transport += bt

	e, err := r.checkExactness(ctx, stackDream, api, platforms, acked, transport)
	if err != nil {
		return err
	}
	r.res.Exactness = e
	if m, err := api.metrics(ctx, "go_goroutines", "process_resident_memory_bytes"); err == nil {
		fallbacks := m[`dream_track_decisions_total{call="track",outcome="plugin_fallback"}`]
		r.res.DreamAPI = map[string]any{"goroutinesAfter": m["go_goroutines"],
			"residentBytesAfter": m["process_resident_memory_bytes"], "pluginFallbacks": fallbacks}
		fmt.Fprintf(r.out, "dream-api: after the run: %.0f goroutines, %.1f MiB resident, %.0f plugin fallbacks to the built-in limits\n",
			m["go_goroutines"], m["process_resident_memory_bytes"]/(1<<20), fallbacks)
	}
	stopped = true
	p.stop()
	if p.err != nil {
		return fmt.Errorf("dream-api did not exit cleanly on SIGTERM: %v\n%s", p.err, tail(p.log))
	}
	return nil
}

func (r *runner) runRedis(ctx context.Context) error {
	fmt.Fprintln(r.out, "redis: net/http + go-redis + redis-server (appendonly yes, appendfsync always)")
	rp, raddr, err := startRedis(r.dir)
	if errors.Is(err, errNotInstalled) {
		r.skip(stackRedis, "redis-server is not installed (make bench-deps installs it)")
		return err
	} else if err != nil {
		return err
	}
	defer rp.stop()
	p, addr, err := startBaseline(r.dir, "redis", "-redis", raddr, "-pool", strconv.Itoa(r.cfg.Pool))
	if err != nil {
		return err
	}
	defer p.stop()
	return r.runBaselineCases(ctx, stackRedis, addr)
}

func (r *runner) runPostgres(ctx context.Context) error {
	fmt.Fprintln(r.out, "postgres: net/http + pgx + PostgreSQL (synchronous_commit on)")
	pp, url, err := startPostgres(r.dir)
	if errors.Is(err, errNotInstalled) {
		r.skip(stackPostgres, "PostgreSQL (initdb, postgres) is not installed (make bench-deps installs it)")
		return err
	} else if err != nil {
		return err
	}
	defer pp.stop()
	maxConns := 0
	for _, n := range r.cfg.Conns {
		maxConns = max(maxConns, n)
	}
	p, addr, err := startBaseline(r.dir, "postgres", "-pg", url, "-pool", strconv.Itoa(r.cfg.Pool),
		"-customers", strconv.Itoa(maxConns))
	if err != nil {
		return err
	}
	defer p.stop()
	return r.runBaselineCases(ctx, stackPostgres, addr)
}

func (r *runner) runBaselineCases(ctx context.Context, stack, addr string) error {
	maxConns := 0
	for _, n := range r.cfg.Conns {
		maxConns = max(maxConns, n)
	}
	ids, hot := baselineIDs(maxConns)
	for _, n := range r.cfg.Conns {
		for _, isHot := range r.variants() {
			use := ids
			if isHot {
				use = []string{hot}
			}
			if _, _, err := r.measure(ctx, stack, caseName(stack, n, isHot), addr, "", use, n, isHot, expectAllowed); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkExactness reads the stored count of every customer of platforms
// and compares it with the units the load generator saw acknowledged:
// every acknowledged unit is stored, and nothing else (up to transport
// errors, requests that got no answer).
func (r *runner) checkExactness(ctx context.Context, stack string, api *apiClient, platforms []*benchPlatform,
	acked map[string]int64, transport int64) (*exactness, error) {
	e := &exactness{TransportErrors: transport}
	for _, bp := range platforms {
		for _, id := range append(bp.ids, bp.hot) {
			got, err := api.count(ctx, bp.sk, id)
			if err != nil {
				return nil, err
			}
			e.Customers++
			e.Acknowledged += acked[id]
			e.Stored += got
			if got < acked[id] || got > acked[id]+transport {
				e.Mismatches++
				fmt.Fprintf(r.out, "%s: customer %s: stored %d, acknowledged %d\n", stack, id, got, acked[id])
			}
		}
	}
	fmt.Fprintf(r.out, "%s: exactness: %d customers, %d units acknowledged, %d stored, %d mismatches\n",
		stack, e.Customers, e.Acknowledged, e.Stored, e.Mismatches)
	return e, nil
}

// find returns the case of a stack, connections and layout.
func (r *runner) find(stack string, conns int, hot bool) *caseResult {
	want := "per-connection"
	if hot {
		want = "hot"
	}
	for _, c := range r.res.Cases {
		if c.Stack == stack && c.Conns == conns && c.Customers == want {
			return c
		}
	}
	return nil
}

// ratios are the targets (at 32 connections, one customer per
// connection) and the same comparisons everywhere else, for information.
func (r *runner) ratios() []ratio {
	var out []ratio
	met := func(ok bool) *bool { return &ok }
	for _, n := range r.cfg.Conns {
		for _, hot := range r.variants() {
			layout := ""
			if hot {
				layout = " hot"
			}
			targets := n == 32 && !hot
			add := func(name string, v float64, unit, target string, ok bool) {
				q := ratio{Name: fmt.Sprintf("%s (c=%d%s)", name, n, layout), Value: v, Unit: unit}
				if targets && target != "" {
					q.Target, q.Met = target, met(ok)
				}
				out = append(out, q)
			}
			d := r.find(stackDream, n, hot)
			if d == nil {
				continue
			}
			if c, ok := r.ceiling[n]; ok && c > 0 {
				add("durable track / ceiling", d.RPS/c, "x", ">= 0.5x", d.RPS/c >= 0.5)
			}
			add("durable track p99", d.P99ms, "ms", "<= 3 ms", d.P99ms <= 3)
			if w := r.find(stackWASM, n, hot); w != nil {
				add("WASM policy / built-in", w.RPS/d.RPS, "x", ">= 0.9x", w.RPS/d.RPS >= 0.9)
			}
			if b := r.find(stackRedis, n, hot); b != nil && b.RPS > 0 {
				add("durable track / redis", d.RPS/b.RPS, "x", ">= 1.2x", d.RPS/b.RPS >= 1.2)
			}
			if b := r.find(stackPostgres, n, hot); b != nil && b.RPS > 0 {
				add("durable track / postgres", d.RPS/b.RPS, "x", ">= 2x", d.RPS/b.RPS >= 2)
			}
		}
	}
	out = append(out, r.batchRatios()...)
	return append(out, r.postgresRatios()...)
}

func (r *runner) print() {
	w := r.out
	fmt.Fprintf(w, "\n%-40s %5s %10s %9s %9s %9s %9s %7s %7s\n",
		"case", "conns", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "xceiling", "busy", "loadgen")
	order := map[string]int{stackCeiling: 0, stackDream: 1, stackWASM: 2, stackSingle: 3, stackBatch: 3, stackRedis: 4, stackPostgres: 5,
		stackDreamPG1: 6, stackDreamPG2: 7}
	cases := slices.Clone(r.res.Cases)
	slices.SortStableFunc(cases, func(a, b *caseResult) int { return order[a.Stack] - order[b.Stack] })
	for _, c := range cases {
		ratio := "-"
		if c.RatioToCeiling > 0 {
			ratio = fmt.Sprintf("%.2fx", c.RatioToCeiling)
		}
		fmt.Fprintf(w, "%-40s %5d %10.0f %9.2f %9.2f %9.2f %9s %7.2f %7.2f\n",
			c.Name, c.Conns, c.RPS, c.P50ms, c.P99ms, c.P999ms, ratio, c.CPU.Busy, c.CPU.Client)
	}
	for _, s := range r.res.Skipped {
		fmt.Fprintln(w, s)
	}
	fmt.Fprintln(w, "\n(busy: cores in use on the whole machine; loadgen: cores the load generator itself used)")
	fmt.Fprintln(w, "\nratios")
	for _, q := range r.res.Ratios {
		v := fmt.Sprintf("%.3fx", q.Value)
		switch q.Unit {
		case "ms":
			v = fmt.Sprintf("%.2f ms", q.Value)
		case "tracks/s":
			v = fmt.Sprintf("%.0f/s", q.Value)
		}
		verdict := ""
		if q.Met != nil {
			verdict = "target " + q.Target + ": "
			if *q.Met {
				verdict += "met"
			} else {
				verdict += "MISSED"
			}
		}
		fmt.Fprintf(w, "  %-46s %10s   %s\n", q.Name, v, verdict)
	}
	if e := r.res.Exactness; e != nil {
		fmt.Fprintf(w, "\nexactness: dream-api stored %d of %d acknowledged units over %d customers, %d mismatches\n",
			e.Stored, e.Acknowledged, e.Customers, e.Mismatches)
	}
}
