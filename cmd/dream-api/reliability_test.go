package main

// Reliability under load, CI-sized (issue 6): kill -9 during concurrent
// load across many customers and features, idempotent retries across a
// kill, and exactness races across many customers and features. The longer
// run is `make soak` (cmd/dream-bench soak).

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// pairKey names one customer's feature.
type pairKey struct{ customer, feature string }

// killChild SIGKILLs a crash child and checks that it died of it.
func killChild(t *testing.T, child *crashChild) {
	t.Helper()
	if err := child.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}

func waitKilled(t *testing.T, child *crashChild) {
	t.Helper()
	child.cmd.Wait()
	if ws, ok := child.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the child was not killed by SIGKILL: %v\n%s", child.cmd.ProcessState, child.stderr)
	}
}

// childClient is a checked client of a crash child.
func childClient(child *crashChild, token string, conns int) *testServer {
	return &testServer{URL: "http://" + child.addr, AdminToken: token, client: &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: conns}}}
}

// waitSent waits until n requests were sent, or for at most d.
func waitSent(sent *atomic.Int64, n int64, d time.Duration) {
	deadline := time.Now().Add(d)
	for sent.Load() < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

// TestCrashManyCustomersAndFeatures kills the server with SIGKILL while
// workers track many customers' features, some of them at their limit.
// After a restart every acknowledged unit is stored, nothing beyond the
// acknowledged plus the in-flight units, and no limit is exceeded.
func TestCrashManyCustomersAndFeatures(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	const (
		workers   = 12
		customers = 10
		capped    = 40 // the limit of the "capped" feature
	)
	features := []string{"requests", "exports", "emails", "capped"}
	limits := map[string]any{"requests": 10_000_000, "exports": 10_000_000, "emails": 10_000_000, "capped": capped}

	dataDir := t.TempDir()
	token := "dat_crash_" + randHex(8)
	child := startCrashChild(t, dataDir, token)
	ts := childClient(child, token, workers)
	defer ts.client.CloseIdleConnections()
	p := ts.createPlatform(t, "Crash many")
	ts.putTiers(t, p.SK, map[string]any{"name": "free", "limits": limits})
	var ids []string
	for i := range customers {
		ids = append(ids, str(ts.createCustomer(t, p.SK, map[string]any{"email": fmt.Sprintf("crash%d@example.com", i)}), "id"))
	}

	var mu sync.Mutex
	acked := map[pairKey]int64{}
	inflight := map[pairKey]int64{}
	var sent atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				k := pairKey{ids[(w*7+i*3)%customers], features[(w+i)%len(features)]}
				q := int64(1 + (w+i)%3)
				sent.Add(1)
				res, err := ts.try(context.Background(), req{Method: "POST", Path: "/api/track", Key: p.SK,
					Body: map[string]any{"customerId": k.customer, "feature": k.feature, "quantity": q}})
				if err != nil && res == nil {
					// No answer: it may or may not have been counted.
					mu.Lock()
					inflight[k] += q
					mu.Unlock()
					return
				}
				switch {
				case err != nil:
					t.Errorf("under load: %v", err)
					return
				case res.Status == 200:
					mu.Lock()
					acked[k] += q
					mu.Unlock()
				case res.Status == 429 && k.feature == "capped" && str(res.Body, "code") == "tier_limit_reached":
				default:
					t.Errorf("under load: %d %s", res.Status, res.Raw)
					return
				}
			}
		}()
	}
	waitSent(&sent, 1500, 5*time.Second)
	killChild(t, child)
	wg.Wait()
	waitKilled(t, child)

	restarted := startServerAt(t, dataDir, map[string]string{"DREAM_ADMIN_TOKEN": token})
	var totalAcked, totalStored int64
	for _, id := range ids {
		for _, f := range features {
			k := pairKey{id, f}
			got := restarted.count(t, p.SK, id, f)
			totalAcked += acked[k]
			totalStored += got
			if got < acked[k] {
				t.Errorf("%s %s: stored %d < acknowledged %d: acknowledged usage was lost", id, f, got, acked[k])
			}
			if got > acked[k]+inflight[k] {
				t.Errorf("%s %s: stored %d > acknowledged %d + in flight %d", id, f, got, acked[k], inflight[k])
			}
			if f == "capped" && got > capped {
				t.Errorf("%s capped: stored %d over the limit %d", id, got, capped)
			}
		}
	}
	if totalAcked == 0 {
		t.Fatal("nothing was acknowledged before the kill")
	}
	t.Logf("%d requests sent; %d units acknowledged, %d stored over %d customer-features", sent.Load(), totalAcked, totalStored, customers*len(features))
	// The restarted server counts on from the stored counts.
	k := pairKey{ids[0], "exports"}
	before := restarted.count(t, p.SK, k.customer, k.feature)
	res := restarted.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK,
		Body: map[string]any{"customerId": k.customer, "feature": k.feature, "quantity": 2}}, 200, "")
	if got := num(res.Body, "usage", "count"); got != before+2 {
		t.Errorf("track after restart: count %d, want %d", got, before+2)
	}
}

// idemCall is one request with an Idempotency-Key.
type idemCall struct {
	key      string
	customer string
	qty      int64
	// raw is the first answer's body; nil when it got none (in flight at
	// the kill).
	raw []byte
}

// TestCrashIdempotentRetries: requests with Idempotency-Keys are in flight
// when the server is killed. After a restart each one is retried with its
// key: an acknowledged one is replayed byte for byte, one in flight is
// either replayed or done now, and in the end every key is counted exactly
// once.
func TestCrashIdempotentRetries(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	const (
		workers   = 8
		customers = 6
	)
	dataDir := t.TempDir()
	token := "dat_crash_" + randHex(8)
	child := startCrashChild(t, dataDir, token)
	ts := childClient(child, token, workers)
	defer ts.client.CloseIdleConnections()
	p := ts.createPlatform(t, "Crash idem")
	ts.putTiers(t, p.SK, map[string]any{"name": "free", "limit": 10_000_000})
	var ids []string
	for i := range customers {
		ids = append(ids, str(ts.createCustomer(t, p.SK, map[string]any{"email": fmt.Sprintf("idem%d@example.com", i)}), "id"))
	}
	body := func(c *idemCall) map[string]any { return map[string]any{"customerId": c.customer, "quantity": c.qty} }
	send := func(ts *testServer, c *idemCall) (*response, error) {
		return ts.try(context.Background(), req{Method: "POST", Path: "/api/track", Key: p.SK, Body: body(c),
			Header: map[string]string{"Idempotency-Key": c.key}})
	}

	var mu sync.Mutex
	var calls []*idemCall
	var sent atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				c := &idemCall{key: fmt.Sprintf("order-%d-%d", w, i), customer: ids[(w+i)%customers], qty: int64(1 + i%3)}
				mu.Lock()
				calls = append(calls, c)
				mu.Unlock()
				sent.Add(1)
				res, err := send(ts, c)
				if err != nil && res == nil {
					return // in flight at the kill
				}
				if err != nil || res.Status != 200 {
					t.Errorf("under load: %d %v", res.Status, err)
					return
				}
				mu.Lock()
				c.raw = res.Raw
				mu.Unlock()
			}
		}()
	}
	waitSent(&sent, 800, 5*time.Second)
	killChild(t, child)
	wg.Wait()
	waitKilled(t, child)

	restarted := startServerAt(t, dataDir, map[string]string{"DREAM_ADMIN_TOKEN": token})
	want := map[string]int64{}
	var ackedN, inflightN, replayedInflight int
	for _, c := range calls {
		want[c.customer] += c.qty
		res := restarted.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: body(c),
			Header: map[string]string{"Idempotency-Key": c.key}}, 200, "")
		replayed := res.Header.Get("Idempotent-Replayed") == "true"
		if c.raw != nil {
			ackedN++
			if !replayed || !bytes.Equal(res.Raw, c.raw) {
				t.Errorf("key %s, acknowledged before the kill: retry answered (replayed %v)\n%s\nwant the first answer\n%s",
					c.key, replayed, res.Raw, c.raw)
			}
		} else {
			inflightN++
			if replayed {
				replayedInflight++
			}
		}
	}
	if ackedN == 0 {
		t.Fatal("nothing was acknowledged before the kill")
	}
	for _, id := range ids {
		if got := restarted.count(t, p.SK, id, "requests"); got != want[id] {
			t.Errorf("%s: stored %d after retrying every key, want %d (each key counted once)", id, got, want[id])
		}
	}
	t.Logf("%d keys acknowledged before the kill, %d in flight (%d of them had been committed)", ackedN, inflightN, replayedInflight)
}

// TestExactManyCustomersAndFeatures races tracks over many customers and
// features at their limits, through /api/track and /api/data, with some
// Idempotency-Keys sent several times at once. Per customer and feature:
// the allowed units never exceed the limit, every allowed unit is stored
// once, a keyed call is counted once and answered the same every time, and
// a denial is only given when the call did not fit.
func TestExactManyCustomersAndFeatures(t *testing.T) {
	const (
		workers   = 24
		customers = 6
		dups      = 3 // sends of a keyed call
	)
	limits := map[string]int64{"requests": 40, "exports": 25, "emails": 30}
	attempts := map[string]int{"requests": 60, "exports": 30, "emails": 30} // logical calls per customer
	ts := startServer(t, nil)
	p := ts.createPlatform(t, "Exact many")
	ts.putTiers(t, p.SK, map[string]any{"name": "free", "limits": limits})
	var ids []string
	for i := range customers {
		ids = append(ids, str(ts.createCustomer(t, p.SK, map[string]any{"email": fmt.Sprintf("many%d@example.com", i)}), "id"))
	}

	// The logical calls, and the physical sends (keyed calls several
	// times, spread through the order).
	type call struct {
		k      pairKey
		qty    int64
		data   bool   // through /api/data with X-User-Id
		key    string // Idempotency-Key, or ""
		mu     sync.Mutex
		status int
		raw    []byte
		count  int64
	}
	var logical []*call
	for _, f := range []string{"requests", "exports", "emails"} {
		for _, id := range ids {
			for j := range attempts[f] {
				c := &call{k: pairKey{id, f}, qty: 1}
				if f != "requests" {
					c.qty = int64(1 + j%3)
				}
				c.data = j%4 == 1
				if j%5 == 2 {
					c.key = fmt.Sprintf("k-%s-%s-%d", id, f, j)
				}
				logical = append(logical, c)
			}
		}
	}
	var sends []*call
	for i := 0; i < len(logical); i++ {
		// Interleave: customer and feature change from one send to the next.
		c := logical[(i*7919)%len(logical)]
		n := 1
		if c.key != "" {
			n = dups
		}
		for range n {
			sends = append(sends, c)
		}
	}
	if len(logical)%7919 == 0 {
		t.Fatal("the interleaving does not visit every call")
	}

	race(workers, len(sends), func(_, i int) {
		c := sends[i]
		r := req{Method: "POST", Path: "/api/track", Key: p.SK,
			Body: map[string]any{"customerId": c.k.customer, "feature": c.k.feature, "quantity": c.qty}}
		if c.data {
			r.Path = "/api/data"
			r.Header = map[string]string{"X-User-Id": c.k.customer}
			r.Body = map[string]any{"feature": c.k.feature, "quantity": c.qty}
		}
		if c.key != "" {
			if r.Header == nil {
				r.Header = map[string]string{}
			}
			r.Header["Idempotency-Key"] = c.key
		}
		res, err := ts.try(context.Background(), r)
		if err != nil {
			t.Error(err)
			return
		}
		if res.Status != 200 && !(res.Status == 429 && str(res.Body, "code") == "tier_limit_reached") {
			t.Errorf("unexpected answer %d %s", res.Status, res.Raw)
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.raw != nil {
			if c.status != res.Status || !bytes.Equal(c.raw, res.Raw) {
				t.Errorf("key %s answered differently:\n%d %s\n%d %s", c.key, c.status, c.raw, res.Status, res.Raw)
			}
			return
		}
		c.status, c.raw, c.count = res.Status, res.Raw, num(res.Body, "usage", "count")
	})

	allowed := map[pairKey]int64{}
	seen := map[pairKey]map[int64]bool{}
	for _, c := range logical {
		limit := limits[c.k.feature]
		switch c.status {
		case 200:
			allowed[c.k] += c.qty
			if seen[c.k] == nil {
				seen[c.k] = map[int64]bool{}
			}
			if seen[c.k][c.count] {
				t.Errorf("%v: two allowed calls answered count %d", c.k, c.count)
			}
			seen[c.k][c.count] = true
		case 429:
			if c.count+c.qty <= limit {
				t.Errorf("%v: a call of %d was denied at count %d, limit %d", c.k, c.qty, c.count, limit)
			}
		}
	}
	for _, id := range ids {
		for f, limit := range limits {
			k := pairKey{id, f}
			got := ts.count(t, p.SK, id, f)
			if got != allowed[k] {
				t.Errorf("%v: stored %d, allowed %d", k, got, allowed[k])
			}
			if got > limit {
				t.Errorf("%v: stored %d over the limit %d", k, got, limit)
			}
			if f == "requests" && got != limit {
				t.Errorf("%v: %d calls of 1 against a limit of %d stored %d, want the limit", k, attempts[f], limit, got)
			}
		}
	}
	t.Logf("%d logical calls, %d sends", len(logical), len(sends))
}
