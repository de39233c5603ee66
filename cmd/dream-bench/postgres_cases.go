package main

// dream-api on PostgreSQL (issue 14): the real binary with --store on a
// PostgreSQL started for the run (like the postgres baseline's: initdb on
// the run's temporary directory, fsync and synchronous_commit on), first
// one node, then two nodes on the same database with the load generator's
// connections alternating between them (as behind a round-robin
// balancer). The workload is the Pebble case's built-in one: one customer
// per connection, then every connection on one hot customer.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Stacks of the PostgreSQL cases, as named in the results; stackDreamPG is
// the name -skip takes.
const (
	stackDreamPG  = "dream-api-pg"
	stackDreamPG1 = "dream-api/pg 1 node"
	stackDreamPG2 = "dream-api/pg 2 nodes"
)

// dreamBinary returns -bin, or builds ./cmd/dream-api of -src once per run.
func (r *runner) dreamBinary() (string, error) {
	if r.cfg.Bin == "" && !fileExists(filepath.Join(r.dir, "dream-api")) {
		fmt.Fprintln(r.out, "dream-api: building ./cmd/dream-api")
	}
	return dreamAPIBinary(r.cfg.Bin, r.cfg.Src, r.dir)
}

func (r *runner) runDreamPostgres(ctx context.Context) error {
	fmt.Fprintln(r.out, "dream-api on PostgreSQL: the real binary with --store (fsync and synchronous_commit on), 1 node then 2 nodes")
	bin, err := r.dreamBinary()
	if err != nil {
		return err
	}
	pgDir := filepath.Join(r.dir, "dream-pg")
	if err := os.MkdirAll(pgDir, 0o700); err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		// PostgreSQL runs as the postgres user, who must pass through the
		// run's directory to pgDir (startPostgres opens pgDir itself).
		if err := os.Chmod(r.dir, 0o711); err != nil {
			return err
		}
	}
	pp, url, err := startPostgres(pgDir)
	if errors.Is(err, errNotInstalled) {
		r.skip(stackDreamPG, "PostgreSQL (initdb, postgres) is not installed (make bench-deps installs it)")
		return err
	} else if err != nil {
		return err
	}
	defer pp.stop()
	r.res.Notes = append(r.res.Notes,
		"dream-api/pg: the real binary with --store postgres://, on a PostgreSQL of its own (fsync and synchronous_commit on, as the postgres baseline), default pool (32 connections a node, 16 for units of work), group commit off; 2 nodes: connection c talks to node c % 2")

	key := make([]byte, 32)
	rand.Read(key)
	token := "dat_bench_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	env := []string{"DREAM_STORE=" + url, "DREAM_MASTER_KEY=" + hex.EncodeToString(key)}
	var nodes []*proc
	defer func() {
		for _, p := range nodes {
			p.stop()
		}
	}()
	startNode := func(name string) (string, error) {
		p, addr, err := startDreamAPINode("dream-api pg node "+name, bin, filepath.Join(r.dir, "dream-pg-data-"+name),
			filepath.Join(r.dir, "dream-api-pg-"+name+".log"), token, env...)
		if err != nil {
			return "", err
		}
		nodes = append(nodes, p)
		return addr, nil
	}
	addrA, err := startNode("a")
	if err != nil {
		return err
	}
	api := newAPIClient(addrA)
	maxConns := 0
	for _, n := range r.cfg.Conns {
		maxConns = max(maxConns, n)
	}
	bp, err := r.setupPlatform(ctx, api, token, stackDreamPG1, "Bench PG", maxConns)
	if err != nil {
		return err
	}
	fmt.Fprintf(r.out, "dream-api/pg: node A %s, a tier of limit %d and %d customers (+1 hot)\n", addrA, int64(baselineLimit), maxConns)

	acked := map[string]int64{}
	var transport int64
	cases := func(stack string, addrs []string) error {
		for _, n := range r.cfg.Conns {
			for _, isHot := range r.variants() {
				use := bp.ids
				if isHot {
					use = []string{bp.hot}
				}
				cr, ok, err := r.measureNodes(ctx, stack, caseName(stack, n, isHot), addrs, bp.sk, use, n, isHot, expectAllowed)
				if err != nil {
					return err
				}
				transport += cr.Errors
				for i, k := range ok {
					acked[use[i%len(use)]] += k
				}
			}
		}
		return nil
	}
	if err := cases(stackDreamPG1, []string{addrA}); err != nil {
		return err
	}
	addrB, err := startNode("b")
	if err != nil {
		return err
	}
	fmt.Fprintf(r.out, "dream-api/pg: node B %s on the same database\n", addrB)
	if err := cases(stackDreamPG2, []string{addrA, addrB}); err != nil {
		return err
	}
	e, err := r.checkExactness(ctx, "dream-api/pg", api, []*benchPlatform{bp}, acked, transport)
	if err != nil {
		return err
	}
	if e.Mismatches > 0 {
		return fmt.Errorf("dream-api on PostgreSQL stored counts that differ from the acknowledged ones for %d customers", e.Mismatches)
	}
	for _, p := range nodes {
		p.stop()
		if p.err != nil {
			return fmt.Errorf("%s did not exit cleanly on SIGTERM: %v\n%s", p.name, p.err, tail(p.log))
		}
	}
	nodes = nil
	return nil
}

// postgresRatios compare dream-api on PostgreSQL with itself (2 nodes over
// 1), with dream-api on Pebble and with the postgres baseline, at every
// connection count and layout. No targets: for information.
func (r *runner) postgresRatios() []ratio {
	var out []ratio
	for _, n := range r.cfg.Conns {
		for _, hot := range r.variants() {
			layout := ""
			if hot {
				layout = " hot"
			}
			one, two := r.find(stackDreamPG1, n, hot), r.find(stackDreamPG2, n, hot)
			if one == nil || one.RPS <= 0 {
				continue
			}
			add := func(name string, v float64) {
				out = append(out, ratio{Name: fmt.Sprintf("%s (c=%d%s)", name, n, layout), Value: v, Unit: "x"})
			}
			if two != nil {
				add("track on PostgreSQL, 2 nodes / 1 node", two.RPS/one.RPS)
			}
			if d := r.find(stackDream, n, hot); d != nil && d.RPS > 0 {
				add("track on PostgreSQL, 1 node / on Pebble", one.RPS/d.RPS)
			}
			if b := r.find(stackPostgres, n, hot); b != nil && b.RPS > 0 {
				add("track on PostgreSQL, 1 node / postgres baseline", one.RPS/b.RPS)
			}
		}
	}
	return out
}
