package main

import (
	"testing"
)

// TestTestKeysChangeOnlyTestConfig: tiers and plugins are per mode, so a
// test key (which a developer hands to CI and staging) never changes what
// live traffic is allowed.
func TestTestKeysChangeOnlyTestConfig(t *testing.T) {
	ts := startServer(t, pluginEnv)
	p := ts.createPlatform(t, "Two Worlds")
	live := str(ts.createCustomer(t, p.SK, map[string]any{"email": "live@modes.test"}), "id")
	test := str(ts.createCustomer(t, p.TestSK, map[string]any{"email": "test@modes.test"}), "id")

	// Test mode: a free tier of 1 request.
	ts.putTiers(t, p.TestSK,
		map[string]any{"name": "free", "limits": map[string]any{"requests": 1}},
		map[string]any{"name": "pro", "price": 1500, "limit": 10})
	liveTiers := ts.expect(t, req{Method: "GET", Path: "/api/platform/tiers", Key: p.SK}, 200, "")
	if got := num(liveTiers.Body["tiers"].([]any)[0].(map[string]any), "limits", "requests"); got != 100 {
		t.Fatalf("live free limit %d after a test-mode PUT, want the default 100", got)
	}
	testTiers := ts.expect(t, req{Method: "GET", Path: "/api/tiers", Key: p.TestPK}, 200, "")
	if got := num(testTiers.Body["tiers"].([]any)[0].(map[string]any), "limits", "requests"); got != 1 {
		t.Fatalf("test free limit %d, want 1", got)
	}
	ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.TestSK, Body: track(test)}, 200, "")
	ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.TestSK, Body: track(test)}, 429, "tier_limit_reached")
	for i := 0; i < 3; i++ {
		ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: track(live)}, 200, "")
	}

	// A plugin that allows everything, uploaded with the test key, decides
	// test tracks only.
	if res := ts.upload(t, p.TestSK, wasmFile(t, "allow_all.wasm"), ""); res.Status != 201 && res.Status != 200 {
		t.Fatalf("upload: %d %s", res.Status, res.Raw)
	}
	res := ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.TestSK, Body: track(test)}, 200, "")
	if get(res.Body, "plugin") == nil {
		t.Fatalf("test track not decided by the test plugin: %s", res.Raw)
	}
	ts.putTiers(t, p.SK,
		map[string]any{"name": "free", "limits": map[string]any{"requests": 3}},
		map[string]any{"name": "pro", "price": 1500, "limit": 10})
	res = ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: map[string]any{"customerId": live, "quantity": 1000000}}, 429, "tier_limit_reached")
	if get(res.Body, "plugin") != nil {
		t.Fatalf("a live track was decided by the test-mode plugin: %s", res.Raw)
	}
	livePlugin := ts.expect(t, req{Method: "GET", Path: "/api/platform/plugin", Key: p.SK}, 200, "")
	if get(livePlugin.Body, "active") != nil || len(livePlugin.Body["history"].([]any)) != 0 {
		t.Fatalf("live plugin overview shows the test upload: %s", livePlugin.Raw)
	}
}

// TestRotatedKeyCannotManageKeys: during its grace period a rotated secret
// still calls the API, but cannot list, make or revoke keys: a leaked key
// that was rotated away cannot mint a new pair or revoke its successor.
func TestRotatedKeyCannotManageKeys(t *testing.T) {
	ts := startServer(t, nil)
	p := ts.createPlatform(t, "Rotated")
	keys := ts.expect(t, req{Method: "GET", Path: "/api/platform/keys", Key: p.SK}, 200, "")
	id := str(keys.Body["data"].([]any)[0].(map[string]any), "id")
	rot := ts.expect(t, req{Method: "POST", Path: "/api/platform/keys", Key: p.SK, Body: map[string]any{"rotate": id}}, 201, "")
	successor := str(rot.Body, "key", "id")

	ts.expect(t, req{Method: "GET", Path: "/api/platform/tiers", Key: p.SK}, 200, "")
	ts.expect(t, req{Method: "GET", Path: "/api/platform/keys", Key: p.SK}, 403, "forbidden")
	ts.expect(t, req{Method: "POST", Path: "/api/platform/keys", Key: p.SK}, 403, "forbidden")
	ts.expect(t, req{Method: "DELETE", Path: "/api/platform/keys/" + successor, Key: p.SK}, 403, "forbidden")
	// The successor can.
	newSK := str(rot.Body, "secretKey")
	after := ts.expect(t, req{Method: "GET", Path: "/api/platform/keys", Key: newSK}, 200, "")
	if n := len(after.Body["data"].([]any)); n != 2 {
		t.Fatalf("%d key records, want 2 (nothing made by the rotated key)", n)
	}
	ts.expect(t, req{Method: "DELETE", Path: "/api/platform/keys/" + id, Key: newSK}, 200, "")
}

// TestUnknownFeature: a feature that no tier meters or lists is a mistake
// (422 unknown_feature, nothing counted); one that another tier meters but
// this plan does not is the plan's limit of 0 (429).
func TestUnknownFeature(t *testing.T) {
	ts := startServer(t, nil)
	p := ts.createPlatform(t, "Features")
	ts.putTiers(t, p.SK,
		map[string]any{"name": "free", "limits": map[string]any{"requests": 10}, "features": map[string]any{"sso": false}},
		map[string]any{"name": "pro", "price": 1500, "limits": map[string]any{"requests": 100, "exports": 5}})
	cus := str(ts.createCustomer(t, p.SK, map[string]any{"email": "f@features.test"}), "id")
	// A check answers a denial with 200 and allowed false.
	for path, denied := range map[string]int{"/api/track": 429, "/api/check": 200} {
		res := ts.expect(t, req{Method: "POST", Path: path, Key: p.SK, Body: map[string]any{"customerId": cus, "feature": "reqests"}}, 422, "unknown_feature")
		if str(res.Body, "message") == "" {
			t.Fatalf("%s: no message", path)
		}
		res = ts.expect(t, req{Method: "POST", Path: path, Key: p.SK, Body: map[string]any{"customerId": cus, "feature": "exports"}}, denied, "")
		if num(res.Body, "usage", "limit") != 0 {
			t.Fatalf("%s exports: %s, want limit 0", path, res.Raw)
		}
	}
	// A feature a tier lists (boolean features) is known: limit 0, not 422.
	ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: map[string]any{"customerId": cus, "feature": "sso"}}, 429, "tier_limit_reached")
	if n := ts.count(t, p.SK, cus, "requests"); n != 0 {
		t.Fatalf("requests counted %d", n)
	}
}
