package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/dream-api/dream-api/engine"
)

// TestQuotaCustomersE2E: with DREAM_QUOTA_CUSTOMERS=2 a mode of a platform
// holds two customers; a third is 429 quota_exceeded naming the quota
// (as the spec says) and is not created; the other mode and another
// platform have their own counts; a deletion makes room.
func TestQuotaCustomersE2E(t *testing.T) {
	ts := startServer(t, map[string]string{"DREAM_QUOTA_CUSTOMERS": "2"})
	p := ts.createPlatform(t, "Quota One")
	q := ts.createPlatform(t, "Quota Two")
	first := str(ts.createCustomer(t, p.SK, map[string]any{"email": "a@quota.example"}), "id")
	ts.createCustomer(t, p.SK, map[string]any{"email": "b@quota.example"})
	res := ts.expect(t, req{Method: "POST", Path: "/api/customers", Key: p.SK, Body: map[string]any{"email": "c@quota.example"}}, 429, engine.EQUOTAEXCEEDED)
	if msg := str(res.Body, "message"); !strings.Contains(msg, "Customers quota") || !strings.Contains(msg, "2 customers") {
		t.Errorf("the message does not name the quota: %s", res.Raw)
	}
	list := ts.expect(t, req{Method: "GET", Path: "/api/customers?email=c@quota.example", Key: p.SK}, 200, "")
	if data, _ := list.Body["data"].([]any); len(data) != 0 {
		t.Errorf("the refused customer was created: %s", list.Raw)
	}
	ts.createCustomer(t, p.TestSK, map[string]any{"email": "c@quota.example"})
	ts.createCustomer(t, q.SK, map[string]any{"email": "c@quota.example"})
	ts.expect(t, req{Method: "DELETE", Path: "/api/customers/" + first, Key: p.SK}, 200, "")
	ts.createCustomer(t, p.SK, map[string]any{"email": "c@quota.example"})
	stats := ts.expect(t, req{Method: "GET", Path: "/api/platform/stats", Key: p.SK}, 200, "")
	if num(stats.Body, "customers") != 2 || num(stats.Body, "customersPerPlan", "free") != 2 {
		t.Errorf("stats: %s", stats.Raw)
	}
}

// TestQuotaRequestsPerSecondE2E: with DREAM_QUOTA_RPS=1 (bursts of 2) a
// platform's calls beyond the burst are 429 quota_exceeded with
// Retry-After, on any authenticated route; unauthenticated calls and
// another platform's are not refused. Ten calls in a row need more than
// eight seconds to all pass, so the assertion holds on a slow machine.
func TestQuotaRequestsPerSecondE2E(t *testing.T) {
	ts := startServer(t, map[string]string{"DREAM_QUOTA_RPS": "1"})
	p := ts.createPlatform(t, "Busy")
	q := ts.createPlatform(t, "Quiet")
	refused := 0
	for i := range 10 {
		r := req{Method: "GET", Path: "/api/customers", Key: p.SK}
		if i%2 == 1 {
			r = req{Method: "GET", Path: "/api/tiers", Key: p.PK}
		}
		res := ts.do(t, r)
		switch res.Status {
		case 200:
		case 429:
			refused++
			ra, err := strconv.Atoi(res.Header.Get("Retry-After"))
			if str(res.Body, "code") != engine.EQUOTAEXCEEDED || !strings.Contains(str(res.Body, "message"), "Requests-per-second quota") || err != nil || ra < 1 {
				t.Fatalf("call %d: %s, Retry-After %q", i, res.Raw, res.Header.Get("Retry-After"))
			}
		default:
			t.Fatalf("call %d: %d %s", i, res.Status, res.Raw)
		}
	}
	if refused == 0 {
		t.Fatal("ten calls in a row at 1 per second: none refused")
	}
	ts.expect(t, req{Method: "GET", Path: "/api/customers", Key: "sk_live_" + strings.Repeat("0", 48)}, 401, engine.EINVALIDAPIKEY)
	ts.expect(t, req{Method: "GET", Path: "/api/customers", Key: q.SK}, 200, "")
}

// TestQuotaFlagsE2E: serve --help lists the quota flags and variables;
// flags win over the environment; bad or negative values are refused.
func TestQuotaFlagsE2E(t *testing.T) {
	ctx := context.Background()
	parse := func(env map[string]string, args ...string) (*Main, error) {
		m := NewMain()
		var out bytes.Buffer
		m.Stdout, m.Stderr = &out, io.Discard
		m.Getenv = func(k string) string { return env[k] }
		err := m.ParseFlags(ctx, args)
		if errors.Is(err, flag.ErrHelp) {
			for _, w := range []string{"--quota-customers", "--quota-rps", "--quota-stored-bytes", "DREAM_QUOTA_CUSTOMERS", "DREAM_QUOTA_RPS", "DREAM_QUOTA_STORED_BYTES"} {
				if !strings.Contains(out.String(), w) {
					t.Errorf("serve --help does not list %s", w)
				}
			}
		}
		return m, err
	}
	if _, err := parse(nil, "--help"); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	m, err := parse(nil)
	if err != nil || m.Config.Quotas != (engine.Quotas{Customers: 1_000_000, RPS: 1000, Burst: 2000, StoredBytes: 1 << 30}) {
		t.Fatalf("default quotas %+v %v", m.Config.Quotas, err)
	}
	m, err = parse(map[string]string{"DREAM_QUOTA_CUSTOMERS": "5", "DREAM_QUOTA_RPS": "0", "DREAM_QUOTA_STORED_BYTES": "100"}, "--quota-customers", "7")
	if err != nil || m.Config.Quotas != (engine.Quotas{Customers: 7, StoredBytes: 100}) {
		t.Fatalf("quotas from env and flags %+v %v", m.Config.Quotas, err)
	}
	for _, c := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{"DREAM_QUOTA_RPS": "lots"}, nil, "DREAM_QUOTA_RPS"},
		{map[string]string{"DREAM_QUOTA_CUSTOMERS": "1e3"}, nil, "DREAM_QUOTA_CUSTOMERS"},
		{nil, []string{"--quota-stored-bytes", "-1"}, "0 (unlimited) or more"},
		{nil, []string{"--quota-rps", "+Inf"}, "0 (unlimited) or more"},
	} {
		if _, err := parse(c.env, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %v: %v, want an error naming %s", c.env, c.args, err, c.want)
		}
	}
}

// TestCheckKeepsNoIdempotencyRecordE2E: an Idempotency-Key on /api/check
// is accepted and ignored: the same key with another body is answered, not
// 409, and nothing is replayed.
func TestCheckKeepsNoIdempotencyRecordE2E(t *testing.T) {
	ts := startServer(t, nil)
	p := ts.createPlatform(t, "Checker")
	ts.putTiers(t, p.SK, map[string]any{"name": "free", "limits": map[string]any{"requests": 5, "exports": 1}})
	id := str(ts.createCustomer(t, p.SK, map[string]any{"email": "c@check.example"}), "id")
	key := map[string]string{"Idempotency-Key": "same-key"}
	for i, feature := range []string{"requests", "exports", "requests"} {
		res := ts.expect(t, req{Method: "POST", Path: "/api/check", Key: p.SK, Header: key,
			Body: map[string]any{"customerId": id, "feature": feature}}, 200, "")
		if res.Header.Get("Idempotent-Replayed") != "" || str(res.Body, "usage", "feature") != feature {
			t.Fatalf("check %d (%s): replayed %q, %s", i, feature, res.Header.Get("Idempotent-Replayed"), res.Raw)
		}
	}
	// A check after a track sees the track: nothing was kept of the first.
	ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: map[string]any{"customerId": id, "quantity": 3}}, 200, "")
	res := ts.expect(t, req{Method: "POST", Path: "/api/check", Key: p.SK, Header: key, Body: map[string]any{"customerId": id, "feature": "requests"}}, 200, "")
	if num(res.Body, "usage", "count") != 3 {
		t.Fatalf("check after a track: %s", res.Raw)
	}
}

// TestStatsSurviveRestartE2E: stats kept as aggregates follow creates,
// plan changes and deletes, and are the same after a restart.
func TestStatsSurviveRestartE2E(t *testing.T) {
	dir := t.TempDir()
	ts := startServerAt(t, dir, nil)
	p := ts.createPlatform(t, "Counted")
	ts.putTiers(t, p.SK, map[string]any{"name": "free", "limit": 10}, map[string]any{"name": "pro", "price": 900, "currency": "usd", "limit": 100})
	var ids []string
	for i := range 6 {
		ids = append(ids, str(ts.createCustomer(t, p.SK, map[string]any{"email": fmt.Sprintf("c%d@stats.example", i)}), "id"))
	}
	for _, id := range ids[:3] {
		ts.expect(t, req{Method: "PATCH", Path: "/api/customers/" + id, Key: p.SK, Body: map[string]any{"plan": "pro"}}, 200, "")
	}
	ts.expect(t, req{Method: "DELETE", Path: "/api/customers/" + ids[0], Key: p.SK}, 200, "")
	ts.expect(t, req{Method: "DELETE", Path: "/api/customers/" + ids[5], Key: p.SK}, 200, "")
	check := func(ts *testServer) {
		t.Helper()
		stats := ts.expect(t, req{Method: "GET", Path: "/api/platform/stats", Key: p.SK}, 200, "")
		if num(stats.Body, "customers") != 4 || num(stats.Body, "customersPerPlan", "pro") != 2 || num(stats.Body, "customersPerPlan", "free") != 2 {
			t.Fatalf("stats: %s", stats.Raw)
		}
	}
	check(ts)
	// Removing pro is refused while customers are on it (counted from the aggregates).
	res := ts.expect(t, req{Method: "PUT", Path: "/api/platform/tiers", Key: p.SK, Body: map[string]any{"tiers": []any{map[string]any{"name": "free", "limit": 10}}}}, 422, engine.EVALIDATION)
	if !strings.Contains(string(res.Raw), "still has 2 customer(s)") {
		t.Fatalf("removing a tier in use: %s", res.Raw)
	}
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	check(startServerAt(t, dir, map[string]string{"DREAM_ADMIN_TOKEN": ts.AdminToken}))
}

// TestPlatformQuotasSurviveRestartE2E: a platform's own quotas, set by the
// operator, are stored: after a restart they are in force again.
func TestPlatformQuotasSurviveRestartE2E(t *testing.T) {
	dir := t.TempDir()
	ts := startServerAt(t, dir, nil)
	p := ts.createPlatform(t, "Own quotas")
	path := "/admin/platforms/" + p.ID + "/quotas"
	res := ts.expect(t, req{Method: "PUT", Path: path, Key: ts.AdminToken, Body: map[string]any{"customers": 1}}, 200, "")
	if num(res.Body, "quotas", "customers") != 1 || num(res.Body, "quotas", "requestsPerSecond") != 1000 {
		t.Fatalf("PUT: %s", res.Raw)
	}
	ts.createCustomer(t, p.SK, map[string]any{"email": "a@own.example"})
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	ts = startServerAt(t, dir, map[string]string{"DREAM_ADMIN_TOKEN": ts.AdminToken})
	ts.expect(t, req{Method: "POST", Path: "/api/customers", Key: p.SK, Body: map[string]any{"email": "b@own.example"}}, 429, engine.EQUOTAEXCEEDED)
	ts.createCustomer(t, p.TestSK, map[string]any{"email": "b@own.example"})
	res = ts.expect(t, req{Method: "GET", Path: path, Key: ts.AdminToken}, 200, "")
	if get(res.Body, "overrides", "customers") != float64(1) || get(res.Body, "overrides", "storedBytes") != nil {
		t.Fatalf("GET after a restart: %s", res.Raw)
	}
}
