package main

// The batch case of `dream-bench run` (issue 16, item 2): POST
// /api/track/batch with batches of batchSize events at batchConns
// connections, against single POST /api/track at the same connections, on
// the same server in the same run. Reported as durable tracks per second
// and as the ratio of the two.

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"strings"
	"time"
)

const (
	// batchSize is the events of one batch.
	batchSize = 100
	// batchConns is the connections of both cases.
	batchConns = 8
	// batchSpread is how many customers one connection's batch covers.
	batchSpread = 10
	// stackBatch names the batch case in the results.
	stackBatch = "dream-api batch"
	// stackSingle names the single-track case it is held to.
	stackSingle = "dream-api single"
)

// batchResult is the batch comparison of a run.
type batchResult struct {
	Size               int     `json:"eventsPerBatch"`
	Conns              int     `json:"conns"`
	BatchTracksPerSec  float64 `json:"batchTracksPerSec"`
	SingleTracksPerSec float64 `json:"singleTracksPerSec"`
	Ratio              float64 `json:"ratio"`
}

// runBatch measures single tracks, then batches, at batchConns connections
// on bp's customers, and adds what each connection had acknowledged to
// acked, for the exactness check. It returns the units that may have been
// counted without an answer (transport errors).
func (r *runner) runBatch(ctx context.Context, addr string, bp *benchPlatform, acked map[string]int64) (transport int64, err error) {
	if r.cfg.Skip["batch"] {
		r.skip(stackBatch, "left out with -skip")
		return 0, nil
	}
	fmt.Fprintf(r.out, "dream-api: batches of %d events at %d connections, against single tracks at %d\n", batchSize, batchConns, batchConns)
	// The same customers in both cases: connection c's batch spreads over
	// batchSpread of them, its single tracks go to the first.
	units := make([]map[string]int64, batchConns)
	reqs := make([][]byte, batchConns)
	singles := make([]string, batchConns)
	for c := range reqs {
		units[c] = map[string]int64{}
		var b strings.Builder
		b.WriteString(`{"events":[`)
		for e := range batchSize {
			id := bp.ids[(c*batchSpread+e%batchSpread)%len(bp.ids)]
			units[c][id]++
			if e > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"customerId":%q,"quantity":1}`, id)
		}
		b.WriteString(`]}`)
		reqs[c] = httpRequest(nil, addr, "/api/track/batch", bp.sk, []byte(b.String()))
		singles[c] = bp.ids[(c*batchSpread)%len(bp.ids)]
	}

	single, ok, err := r.measure(ctx, stackSingle, fmt.Sprintf("%s c=%d", stackSingle, batchConns), addr, bp.sk, singles, batchConns, false, bp.check)
	if err != nil {
		return 0, err
	}
	transport += single.Errors
	for c, n := range ok {
		acked[singles[c%len(singles)]] += n
	}

	l := &load{Addr: addr, Conns: batchConns, Duration: r.cfg.Duration,
		Request: func(c int, _ int64, _ []byte) []byte { return reqs[c] }}
	time.Sleep(300 * time.Millisecond)
	before := sampleCPU()
	res, err := l.run(ctx)
	after := sampleCPU()
	if err != nil {
		return transport, err
	}
	if res.FirstStatus != 200 || bytes.Count(res.First, []byte(`"status":200,`)) != batchSize {
		return transport, fmt.Errorf("%s: first answer: not every event allowed: %d %s", stackBatch, res.FirstStatus, res.First)
	}
	name := fmt.Sprintf("%s=%d c=%d", stackBatch, batchSize, batchConns)
	cr := &caseResult{Name: name, Stack: stackBatch, Conns: batchConns, Customers: "per-connection",
		Requests: res.Requests, RPS: res.RPS(), Errors: res.Errors,
		P50ms: ms(res.Hist.quantile(.5)), P90ms: ms(res.Hist.quantile(.9)), P99ms: ms(res.Hist.quantile(.99)),
		P999ms: ms(res.Hist.quantile(.999)), MaxMs: ms(time.Duration(res.Hist.max)),
		CPU: cpuBetween(before, after, runtime.NumCPU())}
	cr.Non2xx = res.Non2xx()
	r.res.Cases = append(r.res.Cases, cr)
	// A batch that got no answer may have counted up to all its units.
	transport += res.Errors * batchSize
	for c, n := range res.OK {
		for id, u := range units[c] {
			acked[id] += n * u
		}
	}
	b := &batchResult{Size: batchSize, Conns: batchConns, BatchTracksPerSec: cr.RPS * batchSize, SingleTracksPerSec: single.RPS}
	if b.SingleTracksPerSec > 0 {
		b.Ratio = b.BatchTracksPerSec / b.SingleTracksPerSec
	}
	r.res.Batch = b
	fmt.Fprintf(r.out, "  %-44s %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  (busy %.2f cores, load generator %.2f)\n",
		name, cr.RPS, cr.P50ms, cr.P99ms, cr.CPU.Busy, cr.CPU.Client)
	fmt.Fprintf(r.out, "  %-44s %8.0f durable tracks/s, %.1fx single tracks (%.0f/s)\n", "", b.BatchTracksPerSec, b.Ratio, b.SingleTracksPerSec)
	if cr.Non2xx > 0 || cr.Errors > 0 {
		fmt.Fprintf(r.out, "  %-44s WARNING: %d non-2xx answers, %d transport errors\n", "", cr.Non2xx, cr.Errors)
	}
	return transport, nil
}

// batchRatios are the batch targets, when the case ran.
func (r *runner) batchRatios() []ratio {
	b := r.res.Batch
	if b == nil {
		return nil
	}
	met := func(ok bool) *bool { return &ok }
	c := fmt.Sprintf(" (batch=%d, c=%d)", b.Size, b.Conns)
	return []ratio{
		{Name: "batch durable tracks/s" + c, Value: b.BatchTracksPerSec, Unit: "tracks/s", Target: ">= 300000", Met: met(b.BatchTracksPerSec >= 300_000)},
		{Name: "batch / single tracks" + c, Value: b.Ratio, Unit: "x", Target: ">= 10x", Met: met(b.Ratio >= 10)},
	}
}
