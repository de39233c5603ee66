// Command dream-bench measures dream-api over HTTP against the stacks a
// developer would otherwise build, on the same machine, in one run.
//
// Usage:
//
//	dream-bench run [-duration 5s] [-conns 32,128] [-out bench-results.json] [-skip redis,postgres]
//	dream-bench soak [-duration 10m] [-rate 2000]
//	dream-bench load -addr HOST:PORT [-path /api/track] [-key SK] [-body JSON] [-c 32] [-d 5s]
//	go test -bench … | dream-bench gobench
//	dream-bench serve-bare|serve-redis|serve-postgres [-addr 127.0.0.1:0] …
//
// `run` builds and starts the real dream-api binary on a temporary data dir,
// sets up a platform, a tier and customers through the admin API, and drives
// POST /api/track with N keep-alive connections (closed loop), first with
// the built-in limits and then with the builtin.wat WASM policy uploaded. In
// the same run it drives three baselines, each a small net/http server of
// this program started as its own process: a bare handler answering a
// track-sized body (the ceiling), a check-and-increment Lua script on
// redis-server (appendfsync always), and an UPDATE … RETURNING on PostgreSQL
// (synchronous_commit on). It prints req/s, p50 and p99 of every case and
// the ratios, and writes the same as JSON.
//
// The load generator is this program's own (load.go), not wrk: it runs
// every stack in one process that also starts and stops them, gives each
// connection its own customer without a Lua script, checks the answers
// (status and body), counts what was acknowledged per customer so that the
// stored counts can be checked afterwards, and needs nothing installed. It
// writes prebuilt requests on raw connections and parses only the status
// line and the body length, so it costs about what wrk does; it runs on the
// same cores as the server, and the results say how much CPU it used.
//
// `soak` runs the real binary under moderate load for 10 minutes and fails
// when its goroutines or memory grow beyond the tolerance (docs/performance.md).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "dream-bench:", err)
		os.Exit(1)
	}
}

const usage = `usage: dream-bench run | scale | soak | load | gobench | serve-bare | serve-redis | serve-postgres  (-h for flags)`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%s", usage)
	}
	switch args[0] {
	case "run":
		return runBench(ctx, args[1:], stdout, stderr)
	case "scale":
		return runScale(ctx, args[1:], stdout, stderr)
	case "soak":
		return runSoak(ctx, args[1:], stdout, stderr)
	case "load":
		return runLoad(ctx, args[1:], stdout, stderr)
	case "gobench":
		return runGoBench(os.Stdin, stdout)
	case "serve-bare", "serve-redis", "serve-postgres":
		return serveBaseline(ctx, strings.TrimPrefix(args[0], "serve-"), args[1:])
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q\n%s", args[0], usage)
}

// runLoad is the `load` subcommand: the load generator alone, against any
// server.
func runLoad(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "server host:port")
	path := fs.String("path", "/api/track", "path to POST to")
	key := fs.String("key", "", "secret key (Authorization: Bearer)")
	body := fs.String("body", `{"customerId":"cus_x"}`, "JSON body")
	conns := fs.Int("c", 32, "connections")
	d := fs.Duration("d", 5*time.Second, "duration")
	rate := fs.Float64("rate", 0, "requests per second (0: closed loop)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *addr == "" {
		return fmt.Errorf("load: -addr is required")
	}
	req := httpRequest(nil, *addr, *path, *key, []byte(*body))
	l := &load{Addr: *addr, Conns: *conns, Duration: *d, Rate: *rate,
		Request: func(int, int64, []byte) []byte { return req }}
	before := sampleCPU()
	res, err := l.run(ctx)
	if err != nil {
		return err
	}
	u := cpuBetween(before, sampleCPU(), 0)
	fmt.Fprintf(stdout, "%d requests in %s: %.0f req/s, p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms; status %v; %d errors; load generator %.2f cores\n",
		res.Requests, res.Elapsed, res.RPS(), ms(res.Hist.quantile(.5)), ms(res.Hist.quantile(.9)),
		ms(res.Hist.quantile(.99)), ms(time.Duration(res.Hist.max)), res.Status, res.Errors, u.Client)
	return nil
}
