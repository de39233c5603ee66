package main

// Two servers on one PostgreSQL database (issue 14): each is a whole
// dream-api (its own engine, caches, connection pool and HTTP server) as a
// node behind a load balancer would be.

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/storage/postgres/pgtest"
)

// startNodes starts two servers on one fresh database, with the same
// master key and admin token, and extra in their environment.
func startNodes(t *testing.T, extra ...map[string]string) (a, b *testServer) {
	t.Helper()
	url := pgtest.Own(t).Database(t)
	env := map[string]string{
		"DREAM_STORE":       url,
		"DREAM_MASTER_KEY":  randHex(32),
		"DREAM_ADMIN_TOKEN": "dat_test_" + randHex(16),
	}
	for _, e := range extra {
		maps.Copy(env, e)
	}
	return startServer(t, env), startServer(t, env)
}

func TestPostgresTwoNodesExact(t *testing.T) {
	const (
		workersPerNode = 32
		calls          = 1536
		limit          = 1000
	)
	a, b := startNodes(t)
	p := a.createPlatform(t, "Two nodes")
	a.putTiers(t, p.SK, map[string]any{"name": "free", "limit": limit})
	id := str(a.createCustomer(t, p.SK, map[string]any{"email": "hot@example.com"}), "id")
	enforces(t, b, p.SK, id, limit)

	hammerBothNodes(t, a, b, p.SK, id, 2*workersPerNode, calls, limit, func(*response) bool { return true })
}

func TestPostgresTwoNodesIdempotencyAndCaches(t *testing.T) {
	a, b := startNodes(t)
	p := a.createPlatform(t, "Two nodes idem")
	a.putTiers(t, p.SK, map[string]any{"name": "free", "limit": 5})
	id := str(a.createCustomer(t, p.SK, map[string]any{"email": "idem@example.com"}), "id")
	enforces(t, b, p.SK, id, 5)

	// One Idempotency-Key sent to both nodes at once: counted once, the
	// same answer from both.
	const keys = 10
	for k := range keys {
		key := "both-" + string(rune('a'+k))
		var wg sync.WaitGroup
		res := make([]*response, 2)
		for i, n := range []*testServer{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res[i] = n.do(t, req{Method: "POST", Path: "/api/track", Key: p.SK,
					Body: map[string]any{"customerId": id}, Header: map[string]string{"Idempotency-Key": key}})
			}()
		}
		wg.Wait()
		if res[0].Status != res[1].Status || !bytes.Equal(res[0].Raw, res[1].Raw) {
			t.Errorf("key %s: the nodes answered\n %d %s\n %d %s", key, res[0].Status, res[0].Raw, res[1].Status, res[1].Raw)
		}
	}
	if got := b.count(t, p.SK, id, "requests"); got != 5 {
		t.Errorf("count after %d keys sent to both nodes, limit 5: %d, want 5", keys, got)
	}

	// A tier change on A is enforced by B.
	b.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: track(id)}, 429, "tier_limit_reached")
	a.putTiers(t, p.SK, map[string]any{"name": "free", "limit": 6})
	within(t, "B allows a call under the limit raised on A", func() bool {
		r := b.do(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: track(id)})
		return r.Status == 200
	})
	b.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: track(id)}, 429, "tier_limit_reached")
	if got := a.count(t, p.SK, id, "requests"); got != 6 {
		t.Errorf("count after the raise = %d, want 6", got)
	}

	// A key revoked on A is refused by B.
	kp := a.expect(t, req{Method: "POST", Path: "/api/platform/keys", Key: p.SK}, 201, "")
	sk, keyID := str(kp.Body, "secretKey"), str(kp.Body, "key", "id")
	within(t, "B accepts the key made on A", func() bool {
		return b.do(t, req{Method: "GET", Path: "/api/platform/keys", Key: sk}).Status == 200
	})
	a.expect(t, req{Method: "DELETE", Path: "/api/platform/keys/" + keyID, Key: p.SK}, 200, "")
	within(t, "B refuses the key revoked on A", func() bool {
		r := b.do(t, req{Method: "GET", Path: "/api/platform/keys", Key: sk})
		return r.Status == 401 && str(r.Body, "code") == "invalid_api_key"
	})
}

// within polls cond every 20 ms until it holds, failing t after 5 s: the
// outcome is asserted, never the speed (the nodes poll every 200 ms).
// hammerBothNodes sends calls tracks of customer id from workers
// goroutines, alternating between nodes a and b, and checks that exactly
// limit were allowed (each also passing allowedAs), the rest denied with
// tier_limit_reached, and that both nodes read back a count of limit.
func hammerBothNodes(t *testing.T, a, b *testServer, sk, id string, workers, calls int, limit int64, allowedAs func(*response) bool) {
	t.Helper()
	var allowed, denied, other atomic.Int64
	nodes := []*testServer{a, b}
	race(workers, calls, func(w, i int) {
		res, err := nodes[w%2].try(t.Context(), req{Method: "POST", Path: "/api/track", Key: sk, Body: track(id)})
		switch {
		case err != nil:
			other.Add(1)
			t.Error(err)
		case res.Status == 200 && res.Body["allowed"] == true && allowedAs(res):
			allowed.Add(1)
		case res.Status == 429 && str(res.Body, "code") == "tier_limit_reached":
			denied.Add(1)
		default:
			other.Add(1)
			t.Errorf("unexpected answer %d %s", res.Status, res.Raw)
		}
	})
	if allowed.Load() != limit || denied.Load() != int64(calls)-limit || other.Load() != 0 {
		t.Errorf("allowed/denied/other = %d/%d/%d, want %d/%d/0", allowed.Load(), denied.Load(), other.Load(), limit, int64(calls)-limit)
	}
	for _, n := range nodes {
		if got := n.count(t, sk, id, "requests"); got != limit {
			t.Errorf("stored count read through %s = %d, want %d", n.URL, got, limit)
		}
	}
}

// enforces waits until node n decides customer id's calls with limit: a
// tier change made on another node reaches n through the change log
// within its poll (200 ms), and a test that loads n before then measures
// the old tiers, not the store.
func enforces(t *testing.T, n *testServer, sk, id string, limit float64) {
	t.Helper()
	within(t, fmt.Sprintf("%s enforces the limit %g", n.URL, limit), func() bool {
		res := n.do(t, req{Method: "POST", Path: "/api/check", Key: sk, Body: map[string]any{"customerId": id}})
		u, _ := res.Body["usage"].(map[string]any)
		return res.Status == 200 && u != nil && u["limit"] == limit
	})
}

func within(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5 s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// --store takes a postgres:// URL only, and needs DREAM_MASTER_KEY: nodes
// must seal with one key.
func TestStoreFlagRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"not postgres", map[string]string{"DREAM_STORE": "mysql://x", "DREAM_MASTER_KEY": randHex(32)}, "want a postgres:// URL"},
		{"no master key", map[string]string{"DREAM_STORE": "postgres://127.0.0.1:1/x"}, "needs DREAM_MASTER_KEY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMain()
			var logs syncBuffer
			m.Getenv = func(k string) string { return tc.env[k] }
			m.Stdout, m.Stderr = &logs, &logs
			if err := m.ParseFlags(t.Context(), []string{"--addr", "127.0.0.1:0", "--data", t.TempDir()}); err != nil {
				t.Fatal(err)
			}
			err := m.Run(t.Context())
			m.Close()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Run = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// dream-api migrate copies a served Pebble data dir into PostgreSQL; a
// node on the database then serves the same platforms, keys, tiers,
// customers, usage and recorded idempotent answers. Then back: the
// database (written to on PostgreSQL too) into a new data dir, served by
// a Pebble node, with the same counts and replays.
func TestMigrateToPostgresAndBack(t *testing.T) {
	dir := t.TempDir()
	token := "dat_test_" + randHex(16)
	old := startServerAt(t, dir, map[string]string{"DREAM_ADMIN_TOKEN": token})
	p := old.createPlatform(t, "Moving")
	old.putTiers(t, p.SK, map[string]any{"name": "free", "limit": 10})
	id := str(old.createCustomer(t, p.SK, map[string]any{"email": "mover@example.com"}), "id")
	first := old.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: track(id),
		Header: map[string]string{"Idempotency-Key": "before-the-move"}}, 200, "")
	for range 2 {
		old.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: track(id)}, 200, "")
	}
	testID := str(old.createCustomer(t, p.TestSK, map[string]any{"email": "t@example.com"}), "id")
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	url := pgtest.Own(t).Database(t)
	var out bytes.Buffer
	if err := migrate(t.Context(), []string{"--from", dir, "--to", url}, &out); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "Copied") {
		t.Errorf("migrate said %q", out.String())
	}
	if err := migrate(t.Context(), []string{"--from", dir, "--to", url}, io.Discard); err == nil || !strings.Contains(err.Error(), "already holds platforms") {
		t.Errorf("a second migrate into the same database: %v, want a refusal", err)
	}
	keyHex, err := os.ReadFile(filepath.Join(dir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	node := startServer(t, map[string]string{"DREAM_STORE": url, "DREAM_MASTER_KEY": strings.TrimSpace(string(keyHex)), "DREAM_ADMIN_TOKEN": token})
	if got := node.count(t, p.SK, id, "requests"); got != 3 {
		t.Errorf("count after the move = %d, want 3", got)
	}
	replay := node.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: track(id),
		Header: map[string]string{"Idempotency-Key": "before-the-move"}}, 200, "")
	if !bytes.Equal(replay.Raw, first.Raw) {
		t.Errorf("a replay after the move answered\n %s\nwant the first answer\n %s", replay.Raw, first.Raw)
	}
	node.expect(t, req{Method: "GET", Path: "/api/customers/" + testID, Key: p.TestSK}, 200, "")
	res := node.expect(t, req{Method: "GET", Path: "/api/platform/tiers", Key: p.SK}, 200, "")
	if !strings.Contains(string(res.Raw), `"requests":10`) {
		t.Errorf("tiers after the move: %s", res.Raw)
	}
	node.expect(t, req{Method: "GET", Path: "/admin/platforms", Key: token}, 200, "")
	if got := node.count(t, p.SK, id, "requests"); got != 3 {
		t.Errorf("count after a replay = %d, want 3", got)
	}

	// And back: the database, written to on PostgreSQL too, into a new
	// data dir (not into one that holds anything).
	onPG := node.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: track(id),
		Header: map[string]string{"Idempotency-Key": "on-postgres"}}, 200, "")
	pgID := str(node.createCustomer(t, p.SK, map[string]any{"email": "made-on-pg@example.com"}), "id")
	if err := node.Close(); err != nil {
		t.Fatal(err)
	}
	if err := migrate(t.Context(), []string{"--from", url, "--to", dir}, io.Discard); err == nil || !strings.Contains(err.Error(), "is not empty") {
		t.Errorf("migrate into a data dir that holds a store: %v, want a refusal", err)
	}
	back := filepath.Join(t.TempDir(), "back")
	out.Reset()
	if err := migrate(t.Context(), []string{"--from", url, "--to", back}, &out); err != nil {
		t.Fatalf("migrate back: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "Copied") || !strings.Contains(out.String(), "DREAM_MASTER_KEY") {
		t.Errorf("migrate back said %q", out.String())
	}
	again := startServerAt(t, back, map[string]string{"DREAM_MASTER_KEY": strings.TrimSpace(string(keyHex)), "DREAM_ADMIN_TOKEN": token})
	if got := again.count(t, p.SK, id, "requests"); got != 4 {
		t.Errorf("count after moving back = %d, want 4", got)
	}
	for key, want := range map[string][]byte{"before-the-move": first.Raw, "on-postgres": onPG.Raw} {
		replay := again.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: track(id),
			Header: map[string]string{"Idempotency-Key": key}}, 200, "")
		if !bytes.Equal(replay.Raw, want) {
			t.Errorf("replay of %s after moving back answered\n %s\nwant\n %s", key, replay.Raw, want)
		}
	}
	again.expect(t, req{Method: "GET", Path: "/api/customers/" + pgID, Key: p.SK}, 200, "")
	again.expect(t, req{Method: "GET", Path: "/api/customers/" + testID, Key: p.TestSK}, 200, "")
	if got := again.count(t, p.SK, id, "requests"); got != 4 {
		t.Errorf("count after the replays = %d, want 4", got)
	}
	again.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: track(id)}, 200, "")
	if got := again.count(t, p.SK, id, "requests"); got != 5 {
		t.Errorf("count after one more track = %d, want 5", got)
	}
}

// kill -9 of one node under load: every acknowledged track is stored, and
// the other node keeps serving throughout. Node A is a child process (the
// crash test's), node B runs in this one; both on one database.
func TestPostgresKillOneNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	const workers = 8
	url := pgtest.Own(t).Database(t)
	key, token := randHex(32), "dat_test_"+randHex(16)
	t.Setenv("DREAM_STORE", url) // inherited by the child
	t.Setenv("DREAM_MASTER_KEY", key)
	child := startCrashChild(t, t.TempDir(), token)
	b := startServer(t, map[string]string{"DREAM_STORE": url, "DREAM_MASTER_KEY": key, "DREAM_ADMIN_TOKEN": token})
	a := &testServer{URL: "http://" + child.addr, AdminToken: token, client: &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: workers}}}
	defer a.client.CloseIdleConnections()

	p := b.createPlatform(t, "Kill one")
	b.putTiers(t, p.SK, map[string]any{"name": "free", "limit": 10_000_000})
	id := str(b.createCustomer(t, p.SK, map[string]any{"email": "kill@example.com"}), "id")
	enforces(t, a, p.SK, id, 10_000_000)

	var acked, inflight, sentA, afterKill atomic.Int64
	var killed atomic.Bool
	var wg sync.WaitGroup
	load := func(n *testServer, isA bool) {
		defer wg.Done()
		for i := 0; ; i++ {
			q := int64(1 + i%3)
			if isA {
				sentA.Add(1)
			} else if killed.Load() && afterKill.Add(1) > 100 {
				return // B has served 100 calls after the kill
			}
			res, err := n.try(context.Background(), req{Method: "POST", Path: "/api/track", Key: p.SK,
				Body: map[string]any{"customerId": id, "quantity": q}})
			if isA && err != nil && res == nil {
				inflight.Add(q) // no answer: counted or not
				return
			}
			if err != nil || res.Status != 200 {
				t.Errorf("node %s under load: %v %v", n.URL, res, err)
				return
			}
			acked.Add(q)
		}
	}
	for range workers {
		wg.Add(2)
		go load(a, true)
		go load(b, false)
	}
	deadline := time.Now().Add(5 * time.Second)
	for sentA.Load() < 200 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	killChild(t, child)
	killed.Store(true)
	wg.Wait()
	child.cmd.Wait()
	got := b.count(t, p.SK, id, "requests")
	t.Logf("acknowledged %d units, %d in flight at the kill, stored %d", acked.Load(), inflight.Load(), got)
	if got < acked.Load() {
		t.Errorf("stored count %d < acknowledged %d: acknowledged usage was lost", got, acked.Load())
	}
	if got > acked.Load()+inflight.Load() {
		t.Errorf("stored count %d > acknowledged %d + in flight %d", got, acked.Load(), inflight.Load())
	}
}

// A node on PostgreSQL makes no backups itself: POST /admin/backup answers
// 409 conflict saying to use pg_dump.
func TestPostgresBackupRefused(t *testing.T) {
	a, _ := startNodes(t)
	res := a.expect(t, req{Method: "POST", Path: "/admin/backup", Key: a.AdminToken, Body: map[string]any{"dir": "nightly"}}, 409, "conflict")
	if !strings.Contains(string(res.Raw), "pg_dump") {
		t.Errorf("backup refusal: %s", res.Raw)
	}
}

// The database stopped under a running node: every call that needs it
// answers 503 unavailable with Retry-After: 1 (not 500 internal) and
// counts nothing; started again, the same node serves again on its own.
func TestPostgresDatabaseDown(t *testing.T) {
	srv := pgtest.Own(t)
	if srv.External() {
		t.Skip("stops and starts the database: needs a server of its own, not DREAM_TEST_POSTGRES_URL's")
	}
	node := startServer(t, map[string]string{
		"DREAM_STORE":       srv.Database(t),
		"DREAM_MASTER_KEY":  randHex(32),
		"DREAM_ADMIN_TOKEN": "dat_test_" + randHex(16),
	})
	p := node.createPlatform(t, "Database down")
	node.putTiers(t, p.SK, map[string]any{"name": "free", "limit": 100})
	id := str(node.createCustomer(t, p.SK, map[string]any{"email": "down@example.com"}), "id")
	node.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: track(id)}, 200, "")

	calls := []req{
		{Method: "POST", Path: "/api/track", Key: p.SK, Body: track(id)},
		{Method: "POST", Path: "/api/track", Key: p.SK, Body: track(id), Header: map[string]string{"Idempotency-Key": "while-down"}},
		{Method: "POST", Path: "/api/customers", Key: p.SK, Body: map[string]any{"email": "new@example.com"}},
		{Method: "GET", Path: "/api/usage?customerId=" + id, Key: p.SK},
	}
	err := srv.Restart(func() {
		// Twice each: the first call may find a pooled connection that the
		// shutdown ended, the next ones must connect anew.
		for range 2 {
			for _, r := range calls {
				res, err := node.try(t.Context(), r) // held to openapi.yaml
				if err != nil {
					t.Errorf("with the database down: %v", err)
					continue
				}
				if res.Status != 503 || str(res.Body, "code") != "unavailable" || res.Header.Get("Retry-After") != "1" {
					t.Errorf("%s %s with the database down: %d Retry-After %q %s, want 503 unavailable with Retry-After: 1",
						r.Method, r.Path, res.Status, res.Header.Get("Retry-After"), res.Raw)
				} else if !strings.Contains(str(res.Body, "message"), "nothing was changed") {
					t.Errorf("%s %s: message %q", r.Method, r.Path, str(res.Body, "message"))
				}
			}
		}
		// (the harness's rule that a status ≥ 400 carries an error body
		// does not hold for /health: its body is {status, version})
		if res, _ := node.try(t.Context(), req{Method: "GET", Path: "/health"}); res == nil || res.Status != 503 {
			t.Errorf("/health with the database down: %v, want 503", res)
		}
	})
	if err != nil {
		t.Fatal(err)
	}

	// The same node, not restarted, serves again (generous deadline: the
	// outcome is asserted, not the speed).
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := node.try(t.Context(), calls[1])
		if err == nil && res.Status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node does not serve after the database restarted: %v %v", res, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := node.count(t, p.SK, id, "requests"); got != 2 {
		t.Errorf("count = %d, want 2: one track before the outage, one after, none of the refused ones", got)
	}
	node.expect(t, req{Method: "GET", Path: "/health"}, 200, "")
	node.expect(t, req{Method: "POST", Path: "/api/customers", Key: p.SK, Body: map[string]any{"email": "new@example.com"}}, 201, "")
}

// migrate copies between a data dir and a database, in either direction,
// and refuses anything else before touching either.
func TestMigrateRefusals(t *testing.T) {
	for _, tc := range []struct {
		name     string
		from, to string
		want     string
	}{
		{"two databases", "postgres://127.0.0.1:1/a", "postgresql://127.0.0.1:1/b", "pg_dump"},
		{"two data dirs", t.TempDir(), t.TempDir(), "backup and restore"},
		{"no target", t.TempDir(), "", "usage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("DREAM_STORE", "")
			err := migrate(t.Context(), []string{"--from", tc.from, "--to", tc.to}, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("migrate --from %s --to %s: %v, want an error saying %q", tc.from, tc.to, err, tc.want)
			}
		})
	}
}

// Plugins across two server processes on one database. A plugin uploaded
// on A is run by B, which changes B's decision (an exhausted customer is
// allowed by allow_all.wasm): within 10 s at most, the lag logged (the
// nodes poll the change log every 200 ms). Then a policy that keeps state
// (capped.wasm: allows while the units it counted in its state fit in the
// limit) under 32 connections on each node, all on one customer: exactly
// the limit is allowed, and the stored state equals the stored count.
func TestPostgresTwoNodesPlugins(t *testing.T) {
	const (
		workersPerNode = 32
		calls          = 1536
		limit          = 1000
	)
	a, b := startNodes(t, pluginEnv)
	p := a.createPlatform(t, "Two nodes plugins")
	a.putTiers(t, p.SK, map[string]any{"name": "free", "limit": limit})

	// A customer at its limit: B denies it with the built-in limits.
	spent := str(a.createCustomer(t, p.SK, map[string]any{"email": "spent@example.com"}), "id")
	enforces(t, b, p.SK, spent, limit)
	a.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: map[string]any{"customerId": spent, "quantity": limit}}, 200, "")
	check := req{Method: "POST", Path: "/api/check", Key: p.SK, Body: track(spent)}
	if res := b.expect(t, check, 200, ""); res.Body["allowed"] != false || res.Body["plugin"] != nil {
		t.Fatalf("B before any upload: %s, want denied by the built-in limits", res.Raw)
	}
	waitFor := func(what, version string) {
		t.Helper()
		uploaded := time.Now()
		deadline := uploaded.Add(10 * time.Second)
		for {
			res := b.do(t, check)
			if res.Status == 200 && str(res.Body, "plugin", "version") == version {
				t.Logf("B ran %s (uploaded on A) %v after the upload answered", what, time.Since(uploaded).Round(time.Millisecond))
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("B does not run %s uploaded on A within 10 s: %s", what, res.Raw)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	res := a.upload(t, p.SK, wasmFile(t, "allow_all.wasm"), "")
	if res.Status != 201 {
		t.Fatalf("upload: %d %s", res.Status, res.Raw)
	}
	waitFor("allow_all.wasm", str(res.Body, "version"))
	if res := b.expect(t, check, 200, ""); res.Body["allowed"] != true {
		t.Errorf("B with allow_all.wasm: %s, want allowed", res.Raw)
	}

	res = a.upload(t, p.SK, wasmFile(t, "capped.wasm"), "")
	if res.Status != 201 {
		t.Fatalf("upload: %d %s", res.Status, res.Raw)
	}
	capped := str(res.Body, "version")
	waitFor("capped.wasm", capped)

	id := str(a.createCustomer(t, p.SK, map[string]any{"email": "capped@example.com"}), "id")
	hammerBothNodes(t, a, b, p.SK, id, 2*workersPerNode, calls, limit, func(res *response) bool {
		return str(res.Body, "plugin", "version") == capped && get(res.Body, "plugin", "fallback") == false
	})
	state, err := a.Main.store.PolicyState(t.Context(), engine.Tenant{PlatformID: p.ID, Mode: engine.Live}, id, "requests")
	if err != nil || len(state) != 8 {
		t.Fatalf("stored plugin state %x, %v", state, err)
	}
	if got := binary.LittleEndian.Uint64(state); got != limit {
		t.Errorf("the policy's own count = %d, want %d (the stored usage)", got, limit)
	}
}
