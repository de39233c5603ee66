package main

// `dream-bench scale`: dream-api on a large store (issue 16, item 4),
// measured from outside on the real binary: customer creation on a fresh
// store and on the large one, tracks spread over a thousand customers and
// over all of them, the store's bytes per customer and per counter on disk
// and in memory, and the time a restart takes after heavy writing.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type scaleConfig struct {
	Customers int
	Sample    int
	Conns     int
	Duration  time.Duration
	Bin, Src  string
	Out       string
	Keep      bool
	Env       []string
	Profiles  string
}

func parseScaleFlags(args []string, stderr io.Writer) (*scaleConfig, error) {
	c := &scaleConfig{}
	fs := flag.NewFlagSet("scale", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.Customers, "customers", 100_000, "customers in the large store (each gets three counters)")
	fs.IntVar(&c.Sample, "sample", 10_000, "customers created for each create-rate measurement")
	fs.IntVar(&c.Conns, "conns", 32, "connections")
	fs.DurationVar(&c.Duration, "duration", 5*time.Second, "measured time of each track case")
	fs.StringVar(&c.Bin, "bin", "", "dream-api binary to run (default: go build ./cmd/dream-api of -src)")
	fs.StringVar(&c.Src, "src", ".", "the dream-api module")
	fs.StringVar(&c.Out, "out", "bin/bench-scale.json", "where to write the results as JSON")
	fs.BoolVar(&c.Keep, "keep", false, "keep the temporary directory (the store and the logs)")
	fs.StringVar(&c.Profiles, "profiles", "", "write a CPU profile of the server during each track case into this directory")
	env := fs.String("env", "", "extra environment of the server, comma-separated NAME=value pairs")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if c.Customers < 2000 || c.Sample < 100 || c.Sample > c.Customers || c.Conns < 1 {
		return nil, errors.New("-customers must be ≥ 2000, -sample in [100, customers], -conns ≥ 1")
	}
	for _, kv := range strings.Split(*env, ",") {
		if kv = strings.TrimSpace(kv); kv != "" {
			c.Env = append(c.Env, kv)
		}
	}
	return c, nil
}

// scaleResults is the JSON file, and what is printed.
type scaleResults struct {
	GeneratedAt time.Time   `json:"generatedAt"`
	Machine     machineInfo `json:"machine"`
	Customers   int         `json:"customers"`
	Counters    int         `json:"counters"`
	Steps       []scaleStep `json:"steps"`
	Ratios      []ratio     `json:"ratios"`
	// Bytes per customer and per counter: on disk from the store's size
	// after the customers and after the counters; in memory from the
	// server's resident set and Go heap at the same points.
	DiskPerCustomer float64 `json:"diskBytesPerCustomer"`
	DiskPerCounter  float64 `json:"diskBytesPerCounter"`
	HeapPerCustomer float64 `json:"heapBytesPerCustomer"`
	RestartSeconds  float64 `json:"restartSeconds"`
	ColdStartSecs   float64 `json:"coldStartAfterKillSeconds"`
	Errors          int64   `json:"errors"`
}

// scaleStep is one measured step.
type scaleStep struct {
	Name       string  `json:"name"`
	Ops        int64   `json:"ops"`
	PerSec     float64 `json:"perSec"`
	CPUPerOpUS float64 `json:"serverCpuMicrosPerOp"`
	DiskBytes  int64   `json:"diskBytes"`
	RSSBytes   int64   `json:"rssBytes"`
	HeapBytes  int64   `json:"heapBytes"`
	Non2xx     int64   `json:"non2xx"`
}

func runScale(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseScaleFlags(args, stderr)
	if err != nil {
		return err
	}
	dir, cleanup, err := workDir("dream-scale-", cfg.Keep, stdout)
	if err != nil {
		return err
	}
	defer cleanup()
	bin, err := dreamAPIBinary(cfg.Bin, cfg.Src, dir)
	if err != nil {
		return err
	}
	s := &scaler{cfg: cfg, dir: dir, bin: bin, out: stdout, token: "scale-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		res: &scaleResults{GeneratedAt: time.Now().UTC(), Machine: machine(), Customers: cfg.Customers, Counters: 3 * cfg.Customers}}
	defer s.stop()
	if err := s.run(ctx); err != nil {
		return err
	}
	s.print()
	b, _ := json.MarshalIndent(s.res, "", "  ")
	if err := os.MkdirAll(filepath.Dir(cfg.Out), 0o755); err == nil {
		os.WriteFile(cfg.Out, append(b, '\n'), 0o644)
	}
	return nil
}

type scaler struct {
	cfg   *scaleConfig
	dir   string
	bin   string
	out   io.Writer
	token string
	res   *scaleResults

	p    *proc
	addr string
	api  *apiClient
	sk   string
	ids  []string // every customer, in creation order
	// debug is the server's pprof address with -profiles.
	debug string
}

var scaleFeatures = [3]string{"requests", "exports", "storage"}

func (s *scaler) start() error {
	for _, kv := range s.cfg.Env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			os.Setenv(k, v)
		}
	}
	if s.cfg.Profiles != "" {
		port, err := freePort()
		if err != nil {
			return err
		}
		s.debug = "127.0.0.1:" + strconv.Itoa(port)
		os.Setenv("DREAM_DEBUG_ADDR", s.debug)
	}
	p, addr, err := startDreamAPI(s.bin, s.dir, s.token)
	if err != nil {
		return err
	}
	s.p, s.addr, s.api = p, addr, newAPIClient(addr)
	return nil
}

func (s *scaler) stop() {
	if s.p != nil {
		s.p.stop()
		s.p = nil
	}
}

func (s *scaler) run(ctx context.Context) error {
	if err := s.start(); err != nil {
		return err
	}
	sk, err := s.api.createPlatform(ctx, s.token, "Scale")
	if err != nil {
		return err
	}
	s.sk = sk
	limits := map[string]int64{}
	for _, f := range scaleFeatures {
		limits[f] = 1 << 50
	}
	if _, err := s.api.callJSON(ctx, "PUT", "/api/platform/tiers", sk,
		map[string]any{"tiers": []any{map[string]any{"name": "free", "limits": limits}}}, 200); err != nil {
		return err
	}
	empty, err := s.snapshot(ctx, "empty store", 0, 0, 0, 0)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.out, "dream-api scale: %d customers, %d counters, %d connections\n", s.cfg.Customers, 3*s.cfg.Customers, s.cfg.Conns)

	fresh, err := s.create(ctx, "create customers, fresh store", s.cfg.Sample)
	if err != nil {
		return err
	}
	if _, err := s.create(ctx, "", s.cfg.Customers-s.cfg.Sample); err != nil {
		return err
	}
	if err := s.settle(ctx); err != nil {
		return err
	}
	// A restart, as a store that grew over months has had: the server
	// sizes its memtable from the store when it starts (storage.Open).
	// The snapshot comes after it, so that both disk figures are of a
	// settled store (a restart also drops the log files of the writes).
	s.stop()
	if err := s.start(); err != nil {
		return err
	}
	customers, err := s.snapshot(ctx, "customers created, restarted", 0, 0, 0, 0)
	if err != nil {
		return err
	}
	// Every customer gets a counter of each feature.
	if err := s.populate(ctx); err != nil {
		return err
	}
	if err := s.settle(ctx); err != nil {
		return err
	}
	full, err := s.snapshot(ctx, "counters written, settled", 0, 0, 0, 0)
	if err != nil {
		return err
	}
	few, err := s.track(ctx, "track over 1 000 customers", 1000)
	if err != nil {
		return err
	}
	all, err := s.track(ctx, fmt.Sprintf("track over %d customers", s.cfg.Customers), s.cfg.Customers)
	if err != nil {
		return err
	}
	large, err := s.create(ctx, "create customers, large store", s.cfg.Sample)
	if err != nil {
		return err
	}
	s.res.DiskPerCustomer = float64(customers.DiskBytes-empty.DiskBytes) / float64(s.cfg.Customers)
	s.res.DiskPerCounter = float64(full.DiskBytes-customers.DiskBytes) / float64(3*s.cfg.Customers)
	s.res.HeapPerCustomer = float64(full.HeapBytes-empty.HeapBytes) / float64(s.cfg.Customers)

	// Restart after heavy writing: graceful, then after kill -9.
	t0 := time.Now()
	s.stop()
	if err := s.start(); err != nil {
		return err
	}
	s.res.RestartSeconds = time.Since(t0).Seconds()
	if _, err := s.measureTracks(ctx, "heavy writing before kill -9", s.cfg.Customers, 9); err != nil {
		return err
	}
	s.p.kill()
	s.p = nil
	t0 = time.Now()
	if err := s.start(); err != nil {
		return err
	}
	s.res.ColdStartSecs = time.Since(t0).Seconds()
	if _, err := s.snapshot(ctx, "after cold start", 0, 0, 0, 0); err != nil {
		return err
	}

	r := func(name string, v float64, target string, met bool) {
		s.res.Ratios = append(s.res.Ratios, ratio{Name: name, Value: v, Unit: "x", Target: target, Met: &met})
	}
	tr := all.PerSec / few.PerSec
	r(fmt.Sprintf("tracks over %d customers / over 1 000", s.cfg.Customers), tr, "≥ 0.8", tr >= 0.8)
	cr := large.PerSec / fresh.PerSec
	r(fmt.Sprintf("creates on the %d-customer store / on a fresh one", s.cfg.Customers), cr, "≥ 0.8", cr >= 0.8)
	cold := s.res.ColdStartSecs
	s.res.Ratios = append(s.res.Ratios, ratio{Name: "cold start after kill -9 under writes", Value: cold, Unit: "s", Target: "≤ 2"})
	return nil
}

// create makes n customers through POST /api/customers, cfg.Conns at a
// time, and records a step when name is set.
func (s *scaler) create(ctx context.Context, name string, n int) (scaleStep, error) {
	start := len(s.ids)
	ids := make([]string, n)
	var next atomic.Int64
	var failed atomic.Int64
	var firstErr error
	var once sync.Once
	before, t0 := procCPU(s.p.pid()), time.Now()
	var wg sync.WaitGroup
	for range s.cfg.Conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				out, err := s.api.callJSON(ctx, "POST", "/api/customers", s.sk,
					map[string]any{"email": fmt.Sprintf("c%d@scale.example", start+i)}, 201)
				if err != nil {
					failed.Add(1)
					once.Do(func() { firstErr = err })
					continue
				}
				cus, _ := out["customer"].(map[string]any)
				ids[i], _ = cus["id"].(string)
			}
		}()
	}
	wg.Wait()
	elapsed, cpu := time.Since(t0), procCPU(s.p.pid())-before
	if f := failed.Load(); f > 0 {
		return scaleStep{}, fmt.Errorf("%d of %d creates failed, the first: %v", f, n, firstErr)
	}
	s.ids = append(s.ids, ids...)
	if name == "" {
		return scaleStep{}, nil
	}
	return s.snapshot(ctx, name, int64(n), elapsed, cpu, 0)
}

// populate tracks each feature of each customer once.
func (s *scaler) populate(ctx context.Context) error {
	total := int64(3 * len(s.ids))
	var next atomic.Int64
	reqs := func(c int, n int64, buf []byte) []byte {
		i := next.Add(1) - 1
		if i >= total {
			i = total - 1 // the last connections' extra requests repeat the last one
		}
		body := fmt.Appendf(nil, `{"customerId":%q,"feature":%q}`, s.ids[i/3], scaleFeatures[i%3])
		return httpRequest(buf, s.addr, "/api/track", s.sk, body)
	}
	per := (total + int64(s.cfg.Conns) - 1) / int64(s.cfg.Conns)
	l := &load{Addr: s.addr, Conns: s.cfg.Conns, Duration: time.Hour, MaxPerConn: per - 1, Request: reqs}
	before, t0 := procCPU(s.p.pid()), time.Now()
	res, err := l.run(ctx)
	if err != nil {
		return err
	}
	_, err = s.snapshot(ctx, "one track per counter", res.Requests+int64(s.cfg.Conns), time.Since(t0), procCPU(s.p.pid())-before, res.Non2xx())
	return err
}

// settle gives the server a quiet moment to flush and compact what was
// just written.
func (s *scaler) settle(ctx context.Context) error {
	select {
	case <-time.After(5 * time.Second):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// track runs cfg.Duration of tracks, each on a random feature of a random
// customer among the first n, after as long again unmeasured: a server
// that has served a while has these customers' blocks in its cache.
func (s *scaler) track(ctx context.Context, name string, n int) (scaleStep, error) {
	if err := s.tracks(ctx, n, 7); err != nil {
		return scaleStep{}, err
	}
	return s.measureTracks(ctx, name, n, 42)
}

// tracks sends cfg.Duration of tracks over the first n customers, unmeasured.
func (s *scaler) tracks(ctx context.Context, n int, seed uint64) error {
	_, err := s.trackLoad(n, seed).run(ctx)
	return err
}

// trackLoad is cfg.Duration of tracks, each on a random feature of a
// random customer among the first n.
func (s *scaler) trackLoad(n int, seed uint64) *load {
	rngs := make([]*rand.Rand, s.cfg.Conns)
	for i := range rngs {
		rngs[i] = rand.New(rand.NewPCG(uint64(i), seed))
	}
	return &load{Addr: s.addr, Conns: s.cfg.Conns, Duration: s.cfg.Duration,
		Request: func(c int, _ int64, buf []byte) []byte {
			i := rngs[c].IntN(n * 3)
			return httpRequest(buf, s.addr, "/api/track", s.sk, fmt.Appendf(nil, `{"customerId":%q,"feature":%q}`, s.ids[i/3], scaleFeatures[i%3]))
		}}
}

func (s *scaler) measureTracks(ctx context.Context, name string, n int, seed uint64) (scaleStep, error) {
	l := s.trackLoad(n, seed)
	if s.debug != "" {
		go s.profile(ctx, name)
	}
	before, t0 := procCPU(s.p.pid()), time.Now()
	res, err := l.run(ctx)
	if err != nil {
		return scaleStep{}, err
	}
	st, err := s.snapshot(ctx, name, res.Requests, time.Since(t0), procCPU(s.p.pid())-before, res.Non2xx())
	st.PerSec = res.RPS()
	s.res.Steps[len(s.res.Steps)-1].PerSec = st.PerSec
	return st, err
}

// snapshot records a step with the store's size and the server's memory.
func (s *scaler) snapshot(ctx context.Context, name string, ops int64, elapsed, cpu time.Duration, non2xx int64) (scaleStep, error) {
	st := scaleStep{Name: name, Ops: ops, Non2xx: non2xx, DiskBytes: diskUsage(filepath.Join(s.dir, "dream-data")),
		RSSBytes: procRSS(s.p.pid())}
	if ops > 0 && elapsed > 0 {
		st.PerSec = float64(ops) / elapsed.Seconds()
		st.CPUPerOpUS = float64(cpu.Microseconds()) / float64(ops)
	}
	if m, err := s.api.metrics(ctx, "go_memstats_heap_inuse_bytes"); err == nil {
		st.HeapBytes = int64(m["go_memstats_heap_inuse_bytes"])
	}
	s.res.Errors += non2xx
	s.res.Steps = append(s.res.Steps, st)
	fmt.Fprintf(s.out, "  %-44s %9d ops %9.0f /s %7.1f µs CPU/op   disk %7.1f MB  rss %6.1f MB  heap %6.1f MB",
		name, st.Ops, st.PerSec, st.CPUPerOpUS, mb(st.DiskBytes), mb(st.RSSBytes), mb(st.HeapBytes))
	if non2xx > 0 {
		fmt.Fprintf(s.out, "  %d non-2xx", non2xx)
	}
	fmt.Fprintln(s.out)
	return st, nil
}

func (s *scaler) print() {
	fmt.Fprintf(s.out, "  on disk: %.0f B per customer, %.0f B per counter; Go heap: %.0f B per customer with its 3 counters\n",
		s.res.DiskPerCustomer, s.res.DiskPerCounter, s.res.HeapPerCustomer)
	fmt.Fprintf(s.out, "  restart %.2f s (graceful), %.2f s after kill -9 under writes\n", s.res.RestartSeconds, s.res.ColdStartSecs)
	for _, r := range s.res.Ratios {
		met := ""
		if r.Met != nil && !*r.Met {
			met = "  MISSED"
		}
		fmt.Fprintf(s.out, "  %-60s %6.2f%s (target %s)%s\n", r.Name, r.Value, r.Unit, r.Target, met)
	}
}

func mb(n int64) float64 { return float64(n) / (1 << 20) }

// diskUsage is the space the files under dir take on disk.
func diskUsage(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				n += st.Blocks * 512
			}
		}
		return nil
	})
	return n
}

// procCPU is a process's user and system CPU time (/proc/PID/stat).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// procRSS is a process's resident set (/proc/PID/status VmRSS).
func procRSS(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// profile writes a CPU profile of most of a track case (-profiles).
func (s *scaler) profile(ctx context.Context, name string) {
	secs := max(int(s.cfg.Duration.Seconds())-1, 1)
	req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", s.debug, secs), nil)
	if err != nil {
		return
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(s.out, "  profile:", err)
		return
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	os.MkdirAll(s.cfg.Profiles, 0o755)
	file := filepath.Join(s.cfg.Profiles, strings.NewReplacer(" ", "-", "/", "-").Replace(name)+".prof")
	if err := os.WriteFile(file, b, 0o644); err == nil {
		fmt.Fprintln(s.out, "  profile:", file)
	}
}
