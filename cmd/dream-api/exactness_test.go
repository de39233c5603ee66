package main

// Exactness under concurrency, over real HTTP: API.md — "Under any
// concurrency, the number of allowed units never exceeds the limit and every
// allowed unit is counted exactly once; a retried request with the same
// Idempotency-Key is never counted twice."

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// race runs fn(worker, i) for n calls spread over workers goroutines.
func race(workers, n int, fn func(worker, i int)) {
	var wg sync.WaitGroup
	var next atomic.Int64
	start := make(chan struct{})
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				fn(w, i)
			}
		}()
	}
	close(start)
	wg.Wait()
}

func TestExactConcurrentTrack(t *testing.T) {
	const (
		workers = 16
		calls   = 320
		limit   = 100
	)
	ts := startServer(t, nil)
	p := ts.createPlatform(t, "Exact")
	ts.putTiers(t, p.SK, map[string]any{"name": "free", "limit": limit})
	id := str(ts.createCustomer(t, p.SK, map[string]any{"email": "exact@example.com"}), "id")

	var allowed, denied, other atomic.Int64
	var seenMu sync.Mutex
	seen := map[int64]bool{} // the counts allowed calls answered
	race(workers, calls, func(_, i int) {
		path := "/api/track"
		r := req{Method: "POST", Path: path, Key: p.SK, Body: track(id)}
		if i%4 == 0 {
			r = req{Method: "POST", Path: "/api/data", Key: p.SK, Header: map[string]string{"X-User-Id": id}}
		}
		res, err := ts.try(t.Context(), r)
		if err != nil {
			t.Error(err)
			other.Add(1)
			return
		}
		switch {
		case res.Status == 200 && res.Body["allowed"] == true:
			allowed.Add(1)
			c := num(res.Body, "usage", "count")
			seenMu.Lock()
			if seen[c] {
				t.Errorf("two allowed calls answered count %d", c)
			}
			seen[c] = true
			seenMu.Unlock()
		case res.Status == 429 && str(res.Body, "code") == "tier_limit_reached":
			denied.Add(1)
			if c := num(res.Body, "usage", "count"); c > limit {
				t.Errorf("denied call reports count %d > limit", c)
			}
		default:
			other.Add(1)
			t.Errorf("unexpected answer %d %s", res.Status, res.Raw)
		}
	})
	if allowed.Load() != limit || denied.Load() != calls-limit || other.Load() != 0 {
		t.Errorf("allowed/denied/other = %d/%d/%d, want %d/%d/0", allowed.Load(), denied.Load(), other.Load(), limit, calls-limit)
	}
	for c := int64(1); c <= limit; c++ {
		if !seen[c] {
			t.Errorf("no allowed call answered count %d", c)
			break
		}
	}
	if got := ts.count(t, p.SK, id, "requests"); got != limit {
		t.Errorf("stored count = %d, want %d", got, limit)
	}
}

func TestExactIdempotentTrack(t *testing.T) {
	const workers = 50
	ts := startServer(t, nil)
	p := ts.createPlatform(t, "Exact idem")
	id := str(ts.createCustomer(t, p.SK, map[string]any{"email": "idem@example.com"}), "id")

	bodies := make([][]byte, workers)
	race(workers, workers, func(_, i int) {
		res, err := ts.try(t.Context(), req{Method: "POST", Path: "/api/track", Key: p.SK,
			Body: map[string]any{"customerId": id, "quantity": 3}, Header: map[string]string{"Idempotency-Key": "same-key"}})
		if err != nil {
			t.Error(err)
			return
		}
		if res.Status != 200 {
			t.Errorf("call %d: %d %s", i, res.Status, res.Raw)
		}
		bodies[i] = res.Raw
	})
	for i := 1; i < workers; i++ {
		if !bytes.Equal(bodies[i], bodies[0]) {
			t.Errorf("body %d differs:\n%s\nfirst:\n%s", i, bodies[i], bodies[0])
		}
	}
	if got := ts.count(t, p.SK, id, "requests"); got != 3 {
		t.Errorf("stored count = %d, want 3 (counted once)", got)
	}
}

// TestExactConcurrentCustomerCreate: one email, one customer.
func TestExactConcurrentCustomerCreate(t *testing.T) {
	const workers = 16
	ts := startServer(t, nil)
	p := ts.createPlatform(t, "Exact email")
	var created, conflicts atomic.Int64
	race(workers, workers, func(_, i int) {
		email := "race@example.com"
		if i%2 == 1 {
			email = "RACE@Example.com"
		}
		res, err := ts.try(t.Context(), req{Method: "POST", Path: "/api/customers", Key: p.SK, Body: map[string]any{"email": email}})
		if err != nil {
			t.Error(err)
			return
		}
		switch {
		case res.Status == 201:
			created.Add(1)
		case res.Status == 409 && str(res.Body, "code") == "conflict":
			conflicts.Add(1)
		default:
			t.Errorf("unexpected answer %d %s", res.Status, res.Raw)
		}
	})
	if created.Load() != 1 || conflicts.Load() != workers-1 {
		t.Errorf("created/conflicts = %d/%d, want 1/%d", created.Load(), conflicts.Load(), workers-1)
	}
	res := ts.expect(t, req{Method: "GET", Path: "/api/customers", Key: p.SK}, 200, "")
	if d := res.Body["data"].([]any); len(d) != 1 {
		t.Errorf("%d customers, want 1", len(d))
	}
}

// TestTierRemovalRacesPlanAssignment: API.md's tier rules mean every
// customer is on a tier of its platform — PUT /api/platform/tiers refuses to
// drop a tier customers are on. Racing that PUT with a create (or a PATCH)
// onto the tier being dropped must not leave a customer on a tier that no
// longer exists.
func TestTierRemovalRacesPlanAssignment(t *testing.T) {
	const rounds = 30
	ts := startServer(t, nil)
	p := ts.createPlatform(t, "Tier race")
	parked := str(ts.createCustomer(t, p.SK, map[string]any{"email": "parked@example.com"}), "id")
	orphans := 0
	for round := 0; round < rounds; round++ {
		ts.putTiers(t, p.SK, map[string]any{"name": "free", "limit": 10}, map[string]any{"name": "gold", "limit": 10})
		email := fmt.Sprintf("r%d@example.com", round)
		viaPatch := round%2 == 1
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			// 200, or 422 when a customer is already on gold.
			ts.try(t.Context(), req{Method: "PUT", Path: "/api/platform/tiers", Key: p.SK,
				Body: map[string]any{"tiers": []any{map[string]any{"name": "free", "limit": 10}}}})
		}()
		go func() {
			defer wg.Done()
			// 201/200, or 422 when gold is already gone.
			if viaPatch {
				ts.try(t.Context(), req{Method: "PATCH", Path: "/api/customers/" + parked, Key: p.SK, Body: map[string]any{"plan": "gold"}})
			} else {
				ts.try(t.Context(), req{Method: "POST", Path: "/api/customers", Key: p.SK, Body: map[string]any{"email": email, "plan": "gold"}})
			}
		}()
		wg.Wait()

		res := ts.expect(t, req{Method: "GET", Path: "/api/platform/tiers", Key: p.SK}, 200, "")
		tiers := map[string]bool{}
		for _, x := range res.Body["tiers"].([]any) {
			tiers[str(x.(map[string]any), "name")] = true
		}
		id := parked
		if !viaPatch {
			list := ts.expect(t, req{Method: "GET", Path: "/api/customers?email=" + email, Key: p.SK}, 200, "")
			d := list.Body["data"].([]any)
			if len(d) == 0 {
				continue
			}
			id = str(d[0].(map[string]any), "id")
		}
		c := ts.expect(t, req{Method: "GET", Path: "/api/customers/" + id, Key: p.SK}, 200, "")
		if plan := str(c.Body, "customer", "plan"); !tiers[plan] {
			orphans++
			if orphans == 1 {
				t.Errorf("round %d (%s): customer is on plan %q, which the tier config %s does not have",
					round, map[bool]string{true: "PATCH", false: "create"}[viaPatch], plan, res.Raw)
				tr := ts.do(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: track(id)})
				t.Logf("such a customer cannot track at all: %d %s", tr.Status, tr.Raw)
			}
		}
		// Back to free, so that the next round starts clean.
		ts.expect(t, req{Method: "PATCH", Path: "/api/customers/" + id, Key: p.SK, Body: map[string]any{"plan": "free"}}, 200, "")
	}
	if orphans > 0 {
		t.Errorf("%d of %d rounds left a customer on a removed tier", orphans, rounds)
	}
}

// TestExactIdempotentCustomerCreate: racing creates with one
// Idempotency-Key make one customer and answer the same bytes.
func TestExactIdempotentCustomerCreate(t *testing.T) {
	const workers = 24
	ts := startServer(t, nil)
	p := ts.createPlatform(t, "Exact idem create")
	bodies := make([][]byte, workers)
	race(workers, workers, func(_, i int) {
		res, err := ts.try(t.Context(), req{Method: "POST", Path: "/api/customers", Key: p.SK,
			Body: map[string]any{"email": "once@example.com", "metadata": map[string]any{"n": 1}}, Header: map[string]string{"Idempotency-Key": "create-once"}})
		if err != nil {
			t.Error(err)
			return
		}
		if res.Status != 201 {
			t.Errorf("call %d: %d %s", i, res.Status, res.Raw)
		}
		bodies[i] = res.Raw
	})
	for i := 1; i < workers; i++ {
		if !bytes.Equal(bodies[i], bodies[0]) {
			t.Errorf("body %d differs:\n%s\nfirst:\n%s", i, bodies[i], bodies[0])
		}
	}
	res := ts.expect(t, req{Method: "GET", Path: "/api/customers", Key: p.SK}, 200, "")
	if d := res.Body["data"].([]any); len(d) != 1 {
		t.Errorf("%d customers, want 1", len(d))
	}
}
