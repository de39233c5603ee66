package main

// POST /api/track/batch against the real program: answers held to
// openapi.yaml, test and live mode following the key, and every
// acknowledged event on disk after a SIGKILL.

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// results returns the results of a batch answer.
func results(t testing.TB, res *response) []map[string]any {
	t.Helper()
	list, ok := res.Body["results"].([]any)
	if !ok {
		t.Fatalf("no results: %s", truncate(res.Raw))
	}
	out := make([]map[string]any, len(list))
	for i, r := range list {
		out[i], _ = r.(map[string]any)
	}
	return out
}

func TestTrackBatchE2E(t *testing.T) {
	ts := startServer(t, nil)
	p := ts.createPlatform(t, "Batch")
	ts.putTiers(t, p.SK, map[string]any{"name": "free", "limit": 3})
	ts.putTiers(t, p.TestSK, map[string]any{"name": "free", "limit": 100})
	live := str(ts.createCustomer(t, p.SK, map[string]any{"email": "live@example.com"}), "id")
	test := str(ts.createCustomer(t, p.TestSK, map[string]any{"email": "test@example.com"}), "id")

	// Every kind of result, each held to the spec by the client.
	res := ts.expect(t, req{Method: "POST", Path: "/api/track/batch", Key: p.SK, Body: map[string]any{"events": []any{
		map[string]any{"customerId": live, "quantity": 2, "idempotencyKey": "e1"},
		map[string]any{"customerId": live, "quantity": 2},
		map[string]any{"customerId": test},
		map[string]any{"customerId": live, "feature": "typo"},
		map[string]any{"customerId": live, "quantity": 0},
		map[string]any{"customerId": live, "quantity": 2, "idempotencyKey": "e1"},
		map[string]any{"customerId": live, "metadata": map[string]any{"plan": "x"}},
	}}}, 200, "")
	var got []string
	for _, r := range results(t, res) {
		if c := str(r, "code"); c != "" {
			got = append(got, fmt.Sprint(num(r, "status"), " ", c))
		} else {
			got = append(got, fmt.Sprint(num(r, "status"), " ", num(r, "usage", "count")))
		}
	}
	// The test-mode customer is not the live key's: 404.
	if want := "200 2, 429 tier_limit_reached, 404 not_found, 422 unknown_feature, 422 validation_failed, 200 2, 200 3"; strings.Join(got, ", ") != want {
		t.Errorf("results\n got  %s\n want %s", strings.Join(got, ", "), want)
	}
	if n := ts.count(t, p.SK, live, "requests"); n != 3 {
		t.Errorf("live count %d, want 3", n)
	}

	// The test key counts in test mode only.
	res = ts.expect(t, req{Method: "POST", Path: "/api/track/batch", Key: p.TestSK, Body: map[string]any{"events": []any{
		map[string]any{"customerId": test, "quantity": 5}, map[string]any{"customerId": live},
	}}}, 200, "")
	if rs := results(t, res); num(rs[0], "usage", "count") != 5 || str(rs[1], "code") != "not_found" {
		t.Errorf("test-mode batch: %s", truncate(res.Raw))
	}
	if n := ts.count(t, p.TestSK, test, "requests"); n != 5 {
		t.Errorf("test count %d, want 5", n)
	}
	if n := ts.count(t, p.SK, live, "requests"); n != 3 {
		t.Errorf("live count %d after a test-mode batch, want 3", n)
	}

	// Refused as a whole, nothing counted: an unknown member of an event,
	// no events, a body over 1 MiB.
	res = ts.expect(t, req{Method: "POST", Path: "/api/track/batch", Key: p.TestSK,
		Body: `{"events":[{"customerId":"` + test + `"},{"customerId":"` + test + `"},{"customerId":"` + test + `"},{"customerId":"` + test + `","quantiy":5}]}`}, 422, "validation_failed")
	if !strings.Contains(string(res.Raw), `"field":"events[3].quantiy"`) {
		t.Errorf("unknown member not named: %s", res.Raw)
	}
	ts.expect(t, req{Method: "POST", Path: "/api/track/batch", Key: p.TestSK, Body: `{"events":[]}`}, 422, "validation_failed")
	ts.expect(t, req{Method: "POST", Path: "/api/track/batch", Key: p.TestSK,
		Body: `{"events":[{"customerId":"` + test + `","metadata":{"x":"` + strings.Repeat("x", 1<<20) + `"}}]}`}, 413, "body_too_large")
	ts.expect(t, req{Method: "POST", Path: "/api/track/batch", Key: p.PK, Body: `{"events":[{"customerId":"` + test + `"}]}`}, 403, "forbidden")
	if n := ts.count(t, p.TestSK, test, "requests"); n != 5 {
		t.Errorf("test count %d after refused batches, want 5", n)
	}

	// The request's Idempotency-Key replays the whole answer.
	body := `{"events":[{"customerId":"` + test + `"}]}`
	first := ts.expect(t, req{Method: "POST", Path: "/api/track/batch", Key: p.TestSK, Body: body, Header: map[string]string{"Idempotency-Key": "batch-1"}}, 200, "")
	again := ts.expect(t, req{Method: "POST", Path: "/api/track/batch", Key: p.TestSK, Body: body, Header: map[string]string{"Idempotency-Key": "batch-1"}}, 200, "")
	if string(first.Raw) != string(again.Raw) || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay %s\nfirst %s", again.Raw, first.Raw)
	}
	ts.expect(t, req{Method: "POST", Path: "/api/track/batch", Key: p.TestSK, Body: `{"events":[{"customerId":"` + test + `","quantity":2}]}`,
		Header: map[string]string{"Idempotency-Key": "batch-1"}}, 409, "idempotency_conflict")
	if n := ts.count(t, p.TestSK, test, "requests"); n != 6 {
		t.Errorf("test count %d after a replayed batch, want 6", n)
	}
}

// TestTrackBatchCrashRecovery: 8 workers send batches of 50 events over 5
// customers; the server is killed with SIGKILL after 200 answers; on the
// restarted server each customer's count holds every acknowledged event
// and nothing that was never sent.
func TestTrackBatchCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	const workers, size, customers = 8, 50, 5
	dataDir := t.TempDir()
	token := "dat_crash_" + randHex(8)
	child := startCrashChild(t, dataDir, token)
	ts := &testServer{URL: "http://" + child.addr, AdminToken: token, client: &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: workers}}}
	defer ts.client.CloseIdleConnections()
	p := ts.createPlatform(t, "Batch crash")
	ts.putTiers(t, p.SK, map[string]any{"name": "free", "limit": 1_000_000_000})
	var ids [customers]string
	for i := range ids {
		ids[i] = str(ts.createCustomer(t, p.SK, map[string]any{"email": fmt.Sprintf("crash%d@example.com", i)}), "id")
	}

	var mu sync.Mutex
	var acked, inflight [customers]int64
	var answers atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				var sent [customers]int64
				events := make([]any, size)
				for e := range events {
					c, q := (w+e)%customers, int64(1+(i+e)%3)
					sent[c] += q
					events[e] = map[string]any{"customerId": ids[c], "quantity": q}
				}
				res, err := ts.try(context.Background(), req{Method: "POST", Path: "/api/track/batch", Key: p.SK, Body: map[string]any{"events": events}})
				mu.Lock()
				if err != nil && res == nil {
					// No answer: the batch may or may not have been committed.
					for c := range sent {
						inflight[c] += sent[c]
					}
					mu.Unlock()
					return
				}
				if err != nil || res.Status != 200 {
					mu.Unlock()
					t.Errorf("under load: %v", err)
					return
				}
				for _, r := range results(t, res) {
					if num(r, "status") != 200 {
						t.Errorf("an event was not allowed: %v", r)
					}
				}
				for c := range sent {
					acked[c] += sent[c]
				}
				mu.Unlock()
				answers.Add(1)
			}
		}()
	}
	deadline := time.Now().Add(20 * time.Second)
	for answers.Load() < 200 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	killChild(t, child)
	wg.Wait()
	waitKilled(t, child)
	if answers.Load() == 0 {
		t.Fatal("no batch was acknowledged before the kill")
	}

	restarted := startServerAt(t, dataDir, map[string]string{"DREAM_ADMIN_TOKEN": token})
	for c, id := range ids {
		got := restarted.count(t, p.SK, id, "requests")
		t.Logf("customer %d: acknowledged %d, in flight %d, stored %d", c, acked[c], inflight[c], got)
		if got < acked[c] {
			t.Errorf("customer %d: stored %d < acknowledged %d: acknowledged usage was lost", c, got, acked[c])
		}
		if got > acked[c]+inflight[c] {
			t.Errorf("customer %d: stored %d > acknowledged %d + in flight %d", c, got, acked[c], inflight[c])
		}
	}
}

// TestPostgresTwoNodesBatch: two servers on one PostgreSQL database.
// Batches sent to both at once decide exactly (a limit of 300 allows 300
// of 800 events, answered once each), and the same event keys sent to
// both nodes at once count once.
func TestPostgresTwoNodesBatch(t *testing.T) {
	a, b := startNodes(t)
	p := a.createPlatform(t, "Two nodes batch")
	a.putTiers(t, p.SK, map[string]any{"name": "free", "limit": 300})
	id := str(a.createCustomer(t, p.SK, map[string]any{"email": "batch-hot@example.com"}), "id")
	other := str(a.createCustomer(t, p.SK, map[string]any{"email": "batch-keys@example.com"}), "id")
	enforces(t, b, p.SK, id, 300)

	const batches, size = 40, 20
	nodes := []*testServer{a, b}
	var mu sync.Mutex
	counts := map[int64]int{}
	var allowed, denied int
	race(8, batches, func(w, i int) {
		events := make([]any, size)
		for e := range events {
			events[e] = map[string]any{"customerId": id}
		}
		res, err := nodes[w%2].try(t.Context(), req{Method: "POST", Path: "/api/track/batch", Key: p.SK, Body: map[string]any{"events": events}})
		if err != nil || res.Status != 200 {
			t.Errorf("batch: %v", err)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, r := range results(t, res) {
			switch {
			case num(r, "status") == 200:
				allowed++
				counts[num(r, "usage", "count")]++
			case str(r, "code") == "tier_limit_reached":
				denied++
			default:
				t.Errorf("unexpected result %v", r)
			}
		}
	})
	if allowed != 300 || denied != batches*size-300 {
		t.Errorf("allowed/denied = %d/%d, want 300/%d", allowed, denied, batches*size-300)
	}
	for n := int64(1); n <= 300; n++ {
		if counts[n] != 1 {
			t.Fatalf("count %d answered %d times, want once", n, counts[n])
		}
	}
	if got := b.count(t, p.SK, id, "requests"); got != 300 {
		t.Errorf("stored %d, want 300", got)
	}

	// The same keyed events to both nodes at once: each counted once.
	const keys = 10
	for k := range keys {
		var wg sync.WaitGroup
		for _, n := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n.expect(t, req{Method: "POST", Path: "/api/track/batch", Key: p.SK, Body: map[string]any{"events": []any{
					map[string]any{"customerId": other, "idempotencyKey": fmt.Sprintf("k%d", k)},
					map[string]any{"customerId": other, "quantity": 2, "idempotencyKey": fmt.Sprintf("j%d", k)},
				}}}, 200, "")
			}()
		}
		wg.Wait()
	}
	if got := a.count(t, p.SK, other, "requests"); got != 3*keys {
		t.Errorf("stored %d after %d key pairs sent to both nodes, want %d", got, keys, 3*keys)
	}
}
