package main

// `dream-bench soak`: the real binary under moderate load for a long time
// (10 minutes by default), sampling its goroutines and memory from /metrics,
// failing when they grow beyond the tolerance, and checking at the end that
// every acknowledged unit was counted once.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type soakConfig struct {
	Duration  time.Duration
	Rate      float64
	Conns     int
	Customers int
	Every     time.Duration
	Warmup    time.Duration
	// Tolerances: the final level (median of the last three samples) may
	// exceed the level at the end of the warm-up by at most these.
	MaxGoroutines int
	MaxGrowth     float64 // fraction of the warm level, for the heap and resident memory
	HeapSlack     int64   // bytes the heap may gain on top of MaxGrowth
	PebbleBudget  int64   // bytes resident memory may gain on top of MaxGrowth: what Pebble holds outside the Go heap
	Bin, Src      string
	Keep          bool
}

func parseSoakFlags(args []string, stderr io.Writer) (*soakConfig, error) {
	c := &soakConfig{}
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&c.Duration, "duration", 10*time.Minute, "how long the load runs")
	fs.Float64Var(&c.Rate, "rate", 2000, "requests per second, all connections together")
	fs.IntVar(&c.Conns, "conns", 16, "connections")
	fs.IntVar(&c.Customers, "customers", 1000, "customers the load is spread over")
	fs.DurationVar(&c.Every, "every", 10*time.Second, "sampling interval of /metrics")
	fs.DurationVar(&c.Warmup, "warmup", time.Minute, "time before the reference sample (caches and memtables fill)")
	fs.IntVar(&c.MaxGoroutines, "max-goroutine-growth", 20, "goroutines the server may gain after the warm-up")
	fs.Float64Var(&c.MaxGrowth, "max-growth", 0.25, "fraction of its warm Go heap (and of its warm resident memory) the server may gain after the warm-up")
	heapSlack := fs.Int("heap-slack-mib", 16, "MiB the Go heap may gain on top of -max-growth")
	budget := fs.Int("pebble-budget-mib", 192, "MiB resident memory may gain on top of -max-growth: Pebble's block cache (64 MiB) and two memtables (64 MiB each), "+
		"allocated outside the Go heap, fill for minutes and are bounded by configuration")
	fs.StringVar(&c.Bin, "bin", "", "dream-api binary (default: go build ./cmd/dream-api of -src)")
	fs.StringVar(&c.Src, "src", ".", "the dream-api module")
	fs.BoolVar(&c.Keep, "keep", false, "keep the temporary directory")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	c.HeapSlack, c.PebbleBudget = int64(*heapSlack)<<20, int64(*budget)<<20
	if c.Warmup >= c.Duration {
		return nil, errors.New("-warmup must be shorter than -duration")
	}
	if c.Conns < 1 || c.Customers < 1 || c.Rate <= 0 || c.Every <= 0 {
		return nil, errors.New("-conns, -customers, -rate and -every must be positive")
	}
	return c, nil
}

// soakSample is one reading of the server's /metrics.
type soakSample struct {
	At         time.Duration
	Goroutines float64
	RSS        float64
	Heap       float64
	RPS        float64
}

// The soak's mix of calls, chosen by a connection's request number: most
// are plain tracks; some carry an Idempotency-Key, and the next call
// retries that key (a replay, counted once); a few are checks.
const (
	soakTrack = iota
	soakTrackIdem
	soakRetry
	soakCheck
)

func soakKind(n int64) int {
	switch n % 20 {
	case 2, 12:
		return soakTrackIdem
	case 3, 13:
		return soakRetry
	case 7:
		return soakCheck
	}
	return soakTrack
}

var soakFeatures = []string{"requests", "exports"}

// soakTarget is the customer and feature of connection c's n-th call; a
// retry repeats the previous call's.
func soakTarget(c int, n int64, customers int) (cus, feature int) {
	if soakKind(n) == soakRetry {
		n--
	}
	x := uint64(c)*1_000_003 + uint64(n)*7919
	return int(x % uint64(customers)), int((x / 7) % uint64(len(soakFeatures)))
}

func runSoak(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseSoakFlags(args, stderr)
	if err != nil {
		return err
	}
	dir, cleanup, err := workDir("dream-soak-", cfg.Keep, stdout)
	if err != nil {
		return err
	}
	defer cleanup()
	bin, err := dreamAPIBinary(cfg.Bin, cfg.Src, dir)
	if err != nil {
		return err
	}
	token := "dat_soak_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	p, addr, err := startDreamAPI(bin, dir, token)
	if err != nil {
		return err
	}
	defer p.stop()
	api := newAPIClient(addr)
	sk, err := api.createPlatform(ctx, token, "Soak")
	if err != nil {
		return err
	}
	if _, err := api.callJSON(ctx, "PUT", "/api/platform/tiers", sk, map[string]any{"tiers": []any{
		map[string]any{"name": "free", "limits": map[string]int64{"requests": baselineLimit, "exports": baselineLimit}},
	}}, 200); err != nil {
		return err
	}
	ids, err := api.createCustomers(ctx, sk, "soak", cfg.Customers)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "soak: dream-api on %s, %d customers, %.0f req/s over %d connections for %s; sampling /metrics every %s\n",
		addr, cfg.Customers, cfg.Rate, cfg.Conns, cfg.Duration, cfg.Every)

	// Bodies are built per call; acknowledged units are kept per
	// connection and merged at the end.
	nf := len(soakFeatures)
	acked := make([][]int64, cfg.Conns)
	for i := range acked {
		acked[i] = make([]int64, cfg.Customers*nf)
	}
	var answered, failed atomic.Int64
	var statusMu sync.Mutex
	statuses := map[int]int64{}
	l := &load{Addr: addr, Conns: cfg.Conns, Duration: cfg.Duration, Rate: cfg.Rate,
		MaxPerConn: int64(cfg.Rate*cfg.Duration.Seconds())/int64(cfg.Conns) + 1000,
		Request: func(c int, n int64, buf []byte) []byte {
			cus, f := soakTarget(c, n, cfg.Customers)
			body := fmt.Appendf(nil, `{"customerId":%q,"feature":%q,"quantity":1}`, ids[cus], soakFeatures[f])
			switch soakKind(n) {
			case soakCheck:
				return httpRequest(buf, addr, "/api/check", sk, body)
			case soakTrackIdem:
				return httpRequest(buf, addr, "/api/track", sk, body, "Idempotency-Key", fmt.Sprintf("soak-%d-%d", c, n))
			case soakRetry:
				return httpRequest(buf, addr, "/api/track", sk, body, "Idempotency-Key", fmt.Sprintf("soak-%d-%d", c, n-1))
			}
			return httpRequest(buf, addr, "/api/track", sk, body)
		},
		Observe: func(c int, n int64, status int) {
			answered.Add(1)
			if status == 0 {
				failed.Add(1)
				return
			}
			if status != 200 {
				statusMu.Lock()
				statuses[status]++
				statusMu.Unlock()
				return
			}
			if k := soakKind(n); k == soakTrack || k == soakTrackIdem {
				cus, f := soakTarget(c, n, cfg.Customers)
				acked[c][cus*nf+f]++
			}
		},
	}

	// The sampler.
	began := time.Now()
	var samples []soakSample
	var sampleErr error
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(cfg.Every)
		defer t.Stop()
		last, lastN := began, int64(0)
		for {
			select {
			case <-stopSampling:
				return
			case now := <-t.C:
				m, err := api.metrics(ctx, "go_goroutines", "process_resident_memory_bytes", "go_memstats_heap_inuse_bytes")
				if err != nil {
					sampleErr = err
					continue
				}
				n := answered.Load()
				s := soakSample{At: now.Sub(began).Round(time.Second), Goroutines: m["go_goroutines"],
					RSS: m["process_resident_memory_bytes"], Heap: m["go_memstats_heap_inuse_bytes"],
					RPS: float64(n-lastN) / now.Sub(last).Seconds()}
				last, lastN = now, n
				samples = append(samples, s)
				fmt.Fprintf(stdout, "  %6s  goroutines %4.0f  resident %7.1f MiB  heap in use %7.1f MiB  %6.0f req/s\n",
					s.At, s.Goroutines, s.RSS/(1<<20), s.Heap/(1<<20), s.RPS)
			}
		}
	}()
	res, loadErr := l.run(ctx)
	close(stopSampling)
	<-sampled
	if loadErr != nil {
		return loadErr
	}
	fmt.Fprintf(stdout, "soak: %d calls answered in the window, %.0f req/s, p50 %.2f ms, p99 %.2f ms, max %.2f ms; %d without an answer\n",
		res.Requests, res.RPS(), ms(res.Hist.quantile(.5)), ms(res.Hist.quantile(.99)), ms(time.Duration(res.Hist.max)), failed.Load())
	var errs []error
	if sampleErr != nil {
		errs = append(errs, fmt.Errorf("sampling /metrics: %w", sampleErr))
	}
	if len(statuses) > 0 {
		errs = append(errs, fmt.Errorf("answers other than 200: %v", statuses))
	}
	errs = append(errs, soakVerdict(cfg, samples, stdout)...)

	// Exactness: every acknowledged unit counted once (replays not again).
	var mismatches int
	var ack, stored int64
	for cus, id := range ids {
		out, err := api.call(ctx, "GET", "/api/usage?customerId="+id, sk, "", nil, 200)
		if err != nil {
			errs = append(errs, err)
			break
		}
		got := map[string]int64{}
		list, _ := out["usage"].([]any)
		for _, u := range list {
			m, _ := u.(map[string]any)
			f, _ := m["feature"].(string)
			n, _ := m["count"].(float64)
			got[f] = int64(n)
		}
		for f, name := range soakFeatures {
			var want int64
			for c := range acked {
				want += acked[c][cus*nf+f]
			}
			ack += want
			stored += got[name]
			if got[name] < want || got[name] > want+failed.Load() {
				mismatches++
			}
		}
	}
	fmt.Fprintf(stdout, "soak: exactness: %d units acknowledged, %d stored, %d customer-features differ\n", ack, stored, mismatches)
	if mismatches > 0 {
		errs = append(errs, fmt.Errorf("%d customer-features stored a count other than the acknowledged one", mismatches))
	}
	p.stop()
	if p.err != nil {
		errs = append(errs, fmt.Errorf("dream-api did not exit cleanly on SIGTERM: %v", p.err))
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintf(stdout, "soak: FAILED\n")
		return err
	}
	fmt.Fprintf(stdout, "soak: ok\n")
	return nil
}

// soakVerdict compares the final level of goroutines, resident memory and
// heap (median of the last three samples) with the first sample after the
// warm-up.
func soakVerdict(cfg *soakConfig, samples []soakSample, w io.Writer) []error {
	var ref *soakSample
	for i := range samples {
		if samples[i].At >= cfg.Warmup {
			ref = &samples[i]
			break
		}
	}
	if ref == nil || len(samples) < 3 {
		return []error{fmt.Errorf("too few samples (%d) after the warm-up of %s: run longer", len(samples), cfg.Warmup)}
	}
	last := samples[len(samples)-3:]
	median := func(get func(soakSample) float64) float64 {
		v := []float64{get(last[0]), get(last[1]), get(last[2])}
		slices.Sort(v)
		return v[1]
	}
	g := median(func(s soakSample) float64 { return s.Goroutines })
	rss := median(func(s soakSample) float64 { return s.RSS })
	heap := median(func(s soakSample) float64 { return s.Heap })
	var errs []error
	check := func(what string, from, to, allowed float64, unit float64, unitName string) {
		verdict := "ok"
		if to-from > allowed {
			verdict = "GREW"
			errs = append(errs, fmt.Errorf("%s grew from %.1f to %.1f %s (allowed +%.1f)", what, from/unit, to/unit, unitName, allowed/unit))
		}
		fmt.Fprintf(w, "soak: %-12s at %s %8.1f %s, at the end %8.1f %s (allowed +%.1f): %s\n",
			what, ref.At, from/unit, unitName, to/unit, unitName, allowed/unit, verdict)
	}
	check("goroutines", ref.Goroutines, g, float64(cfg.MaxGoroutines), 1, "")
	check("heap in use", ref.Heap, heap, ref.Heap*cfg.MaxGrowth+float64(cfg.HeapSlack), 1<<20, "MiB")
	check("resident", ref.RSS, rss, ref.RSS*cfg.MaxGrowth+float64(cfg.PebbleBudget), 1<<20, "MiB")
	// For the reader: how resident memory moved over the second half. A
	// leak keeps climbing; Pebble's memtables climb and fall back.
	half := samples[len(samples)/2:]
	if len(half) >= 2 {
		lo, hi := half[0].RSS, half[0].RSS
		for _, s := range half {
			lo, hi = min(lo, s.RSS), max(hi, s.RSS)
		}
		fmt.Fprintf(w, "soak: resident over the second half: %.1f to %.1f MiB, slope %+.2f MiB/min\n",
			lo/(1<<20), hi/(1<<20), slope(half)*60/(1<<20))
	}
	return errs
}

// slope is the least-squares slope of resident memory over time, in bytes
// per second.
func slope(s []soakSample) float64 {
	var n, sx, sy, sxx, sxy float64
	for _, v := range s {
		x := v.At.Seconds()
		n++
		sx += x
		sy += v.RSS
		sxx += x * x
		sxy += x * v.RSS
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}
