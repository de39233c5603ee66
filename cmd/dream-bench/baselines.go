package main

// The baselines: small net/http servers answering POST /api/track the way a
// developer would without dream-api. Each runs as its own process (a
// subcommand of this program), like the real server, so that every stack
// pays for its own process and the load generator measures them all alike.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
)

// baselineLimit is the limit every baseline enforces: huge, so that every
// call is allowed but the check is still made.
const baselineLimit = 1_000_000_000_000

// ceilingBody is what the bare handler answers: a track response of the
// same size and shape as dream-api's.
var ceilingBody = []byte(`{"success":true,"allowed":true,"usage":{"feature":"requests","count":1,"limit":1000000000000,` +
	`"remaining":999999999999,"plan":"free","periodStart":"2026-11-01T00:00:00Z","periodEnd":"2026-12-01T00:00:00Z"},"plugin":null}` + "\n")

// trackIn is the part of a track body the baselines read.
type trackIn struct {
	CustomerID string `json:"customerId"`
	Feature    string `json:"feature"`
	Quantity   *int64 `json:"quantity"`
}

type trackUsage struct {
	Feature     string    `json:"feature"`
	Count       int64     `json:"count"`
	Limit       int64     `json:"limit"`
	Remaining   int64     `json:"remaining"`
	Plan        string    `json:"plan"`
	PeriodStart time.Time `json:"periodStart"`
	PeriodEnd   time.Time `json:"periodEnd"`
}

type trackOut struct {
	Success bool       `json:"success"`
	Allowed bool       `json:"allowed"`
	Usage   trackUsage `json:"usage"`
	Plugin  any        `json:"plugin"`
}

// meterFunc counts qty of feature for a customer: the new count and
// whether it was allowed.
type meterFunc func(ctx context.Context, customer, feature string, qty int64) (count int64, allowed bool, err error)

// trackHandler decodes a track body, meters it and answers like dream-api.
func trackHandler(meter meterFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, `{"error":"bad body"}`, http.StatusBadRequest)
			return
		}
		var in trackIn
		if err := json.Unmarshal(body, &in); err != nil || in.CustomerID == "" {
			http.Error(w, `{"error":"invalid json"}`, http.StatusBadRequest)
			return
		}
		if in.Feature == "" {
			in.Feature = "requests"
		}
		qty := int64(1)
		if in.Quantity != nil {
			qty = *in.Quantity
		}
		count, allowed, err := meter(r.Context(), in.CustomerID, in.Feature, qty)
		if err != nil {
			http.Error(w, `{"error":"internal"}`, http.StatusInternalServerError)
			return
		}
		now := time.Now().UTC()
		start := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
		out := trackOut{Success: true, Allowed: allowed, Usage: trackUsage{
			Feature: in.Feature, Count: count, Limit: baselineLimit, Remaining: baselineLimit - count,
			Plan: "free", PeriodStart: start, PeriodEnd: start.AddDate(0, 1, 0),
		}}
		b, _ := json.Marshal(out)
		w.Header().Set("Content-Type", "application/json")
		if !allowed {
			w.WriteHeader(http.StatusTooManyRequests)
		}
		w.Write(append(b, '\n'))
	})
}

// ceilingHandler answers every request with ceilingBody: the most a Go
// net/http server can do on this machine.
func ceilingHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(ceilingBody)
	})
}

// redisScript checks and increments one counter atomically: KEYS[1] the
// counter, ARGV[1] the quantity, ARGV[2] the limit (-1 unlimited). It
// returns {allowed (0/1), count}.
var redisScript = redis.NewScript(`
local c = tonumber(redis.call('GET', KEYS[1]) or '0')
local q = tonumber(ARGV[1])
local lim = tonumber(ARGV[2])
if lim >= 0 and c + q > lim then
  return {0, c}
end
return {1, redis.call('INCRBY', KEYS[1], q)}
`)

func redisMeter(rdb *redis.Client) meterFunc {
	return func(ctx context.Context, customer, feature string, qty int64) (int64, bool, error) {
		now := time.Now().UTC()
		key := fmt.Sprintf("usage:%s:%s:%04d%02d", customer, feature, now.Year(), now.Month())
		v, err := redisScript.Run(ctx, rdb, []string{key}, qty, baselineLimit).Int64Slice()
		if err != nil {
			return 0, false, err
		}
		if len(v) != 2 {
			return 0, false, errors.New("redis: unexpected script answer")
		}
		return v[1], v[0] == 1, nil
	}
}

// pgSchema is the baseline's table: one row per customer and feature.
const pgSchema = `CREATE TABLE IF NOT EXISTS usage (
  customer_id text NOT NULL,
  feature     text NOT NULL,
  count       bigint NOT NULL DEFAULT 0,
  lim         bigint NOT NULL,
  PRIMARY KEY (customer_id, feature)
)`

// pgTrack is the check-and-increment: one statement, one row lock, one
// commit (synchronous_commit on).
const pgTrack = `UPDATE usage SET count = count + $1
 WHERE customer_id = $2 AND feature = $3 AND count + $1 <= lim
 RETURNING count`

func pgMeter(pool *pgxpool.Pool) meterFunc {
	return func(ctx context.Context, customer, feature string, qty int64) (int64, bool, error) {
		var count int64
		err := pool.QueryRow(ctx, pgTrack, qty, customer, feature).Scan(&count)
		if errors.Is(err, pgx.ErrNoRows) {
			return 0, false, nil // over the limit (or no such customer)
		}
		return count, err == nil, err
	}
}

// baselineIDs are the customers the baselines know: cus_b0000… and a hot one.
func baselineIDs(n int) (ids []string, hot string) {
	for i := range n {
		ids = append(ids, fmt.Sprintf("cus_b%04d", i))
	}
	return ids, "cus_bhot"
}

// serveBaseline is the `serve-bare|serve-redis|serve-postgres` subcommand:
// it listens, prints `LISTEN <addr>` on stdout, and serves until stdin
// closes or ctx ends.
func serveBaseline(ctx context.Context, kind string, args []string) error {
	fs := flag.NewFlagSet("serve-"+kind, flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "address to listen on")
	redisAddr := fs.String("redis", "", "redis-server host:port (serve-redis)")
	pgURL := fs.String("pg", "", "PostgreSQL connection string (serve-postgres)")
	pool := fs.Int("pool", 64, "database connections at most")
	customers := fs.Int("customers", 128, "customers to create rows for (serve-postgres)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var h http.Handler
	switch kind {
	case "bare":
		h = ceilingHandler()
	case "redis":
		rdb := redis.NewClient(&redis.Options{Addr: *redisAddr, PoolSize: *pool, MinIdleConns: 4})
		defer rdb.Close()
		if err := rdb.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("redis: %w", err)
		}
		h = trackHandler(redisMeter(rdb))
	case "postgres":
		cfg, err := pgxpool.ParseConfig(*pgURL)
		if err != nil {
			return err
		}
		cfg.MaxConns = int32(*pool)
		p, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			return err
		}
		defer p.Close()
		if _, err := p.Exec(ctx, pgSchema); err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
		ids, hot := baselineIDs(*customers)
		for _, id := range append(ids, hot) {
			if _, err := p.Exec(ctx, `INSERT INTO usage (customer_id, feature, lim) VALUES ($1, 'requests', $2)
				ON CONFLICT DO NOTHING`, id, int64(baselineLimit)); err != nil {
				return fmt.Errorf("postgres: %w", err)
			}
		}
		h = trackHandler(pgMeter(p))
	default:
		return fmt.Errorf("unknown baseline %q", kind)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /api/track", h)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Printf("LISTEN %s\n", ln.Addr())
	stdinClosed := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(stdinClosed) }()
	select {
	case <-ctx.Done():
	case <-stdinClosed:
	case err := <-served:
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
