package main

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// pluginEnv gives plugins a deadline that an honest call on a loaded 2-core
// CI machine does not miss (the 10 ms default can be, and 250 ms was, when
// both cores are busy); modules that loop still hit it, a second later.
var pluginEnv = map[string]string{"DREAM_PLUGIN_DEADLINE": "1s"}

// wasmFile reads a committed example module.
func wasmFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "plugins", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// upload sends a module and answers the response.
func (ts *testServer) upload(t *testing.T, sk string, wasm []byte, query string) *response {
	t.Helper()
	return ts.do(t, req{Method: "PUT", Path: "/api/platform/plugin" + query, Key: sk, Body: wasm,
		Header: map[string]string{"Content-Type": "application/wasm"}})
}

func TestPluginLifecycle(t *testing.T) {
	ts := startServer(t, pluginEnv)
	p := ts.createPlatform(t, "Plugged")
	ts.putTiers(t, p.SK,
		map[string]any{"name": "free", "limits": map[string]any{"requests": 100, "exports": 25}},
		map[string]any{"name": "pro", "limit": 1000})
	cus := str(ts.createCustomer(t, p.SK, map[string]any{"email": "wasm@example.com"}), "id")
	trackF := func(feature string, qty int) map[string]any {
		return map[string]any{"customerId": cus, "feature": feature, "quantity": qty}
	}

	// No plugin: built-in limits, plugin null.
	res := ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: trackF("exports", 1)}, 200, "")
	if res.Body["plugin"] != nil {
		t.Fatalf("plugin = %v before any upload", res.Body["plugin"])
	}

	// Upload the weighted policy: an export costs 10.
	res = ts.upload(t, p.SK, wasmFile(t, "weighted.wasm"), "")
	if res.Status != 201 || res.Body["active"] != true || str(res.Body, "onError") != "builtin" ||
		!strings.HasPrefix(str(res.Body, "version"), "plg_") || len(str(res.Body, "sha256")) != 64 {
		t.Fatalf("upload: %d %s", res.Status, res.Raw)
	}
	v1 := str(res.Body, "version")
	res = ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: trackF("exports", 1)}, 200, "")
	if got := num(res.Body, "usage", "count"); got != 11 {
		t.Errorf("count after a weighted export = %d, want 1 + 10", got)
	}
	if got := str(res.Body, "plugin", "version"); got != v1 {
		t.Errorf("plugin.version = %q, want %q", got, v1)
	}
	// The plugin's deny message reaches the caller.
	res = ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: trackF("exports", 2)}, 429, "tier_limit_reached")
	if msg := str(res.Body, "message"); !strings.Contains(msg, "exports") {
		t.Errorf("deny message %q", msg)
	}
	if got := num(res.Body, "usage", "count"); got != 11 {
		t.Errorf("a denied call counted: %d", got)
	}

	// Bad modules are refused with the reason; the active version stays.
	for name, want := range map[string]string{
		"not wasm at all": "",
		"bad_import.wasm": "env.abort",
		"no_decide.wasm":  "decide_v1",
		"loop.wasm":       "deadline",
		"grow.wasm":       "",
	} {
		body := []byte("\x00asm but not really, just garbage bytes")
		if strings.HasSuffix(name, ".wasm") {
			body = wasmFile(t, name)
		}
		res := ts.upload(t, p.SK, body, "")
		if res.Status != 422 || str(res.Body, "code") != "validation_failed" {
			t.Errorf("%s: %d %s, want 422", name, res.Status, res.Raw)
		} else if !strings.Contains(str(res.Body, "message"), want) {
			t.Errorf("%s: message %q does not name %q", name, str(res.Body, "message"), want)
		}
	}
	res = ts.expect(t, req{Method: "GET", Path: "/api/platform/plugin", Key: p.SK}, 200, "")
	if got := str(res.Body, "active", "version"); got != v1 {
		t.Errorf("active after refused uploads = %q, want %q", got, v1)
	}
	ts.expect(t, req{Method: "PUT", Path: "/api/platform/plugin?onError=maybe", Key: p.SK, Body: wasmFile(t, "weighted.wasm"),
		Header: map[string]string{"Content-Type": "application/wasm"}}, 422, "validation_failed")

	// A module that loops on some inputs: stopped at run time, built-in
	// limits decide (fallback), the server stays healthy.
	res = ts.upload(t, p.SK, wasmFile(t, "loop_on_big.wasm"), "?onError=builtin")
	if res.Status != 201 {
		t.Fatalf("loop_on_big upload: %d %s", res.Status, res.Raw)
	}
	v2 := str(res.Body, "version")
	res = ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: trackF("requests", 2000)}, 429, "tier_limit_reached")
	if get(res.Body, "plugin", "fallback") != true {
		t.Errorf("looping plugin: plugin = %v, want fallback", res.Body["plugin"])
	}
	res = ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: trackF("requests", 5)}, 200, "")
	if get(res.Body, "plugin", "fallback") != false || num(res.Body, "usage", "count") != 5 {
		t.Errorf("after a plugin error the next call: %s", res.Raw)
	}
	ts.expect(t, req{Method: "GET", Path: "/health"}, 200, "")

	// onError=deny: a failing plugin is 503 plugin_error, nothing counted.
	res = ts.upload(t, p.SK, wasmFile(t, "loop_on_big.wasm"), "?onError=deny")
	if res.Status != 201 || str(res.Body, "onError") != "deny" {
		t.Fatalf("onError=deny upload: %d %s", res.Status, res.Raw)
	}
	ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: trackF("requests", 2000)}, 503, "plugin_error")
	if got := ts.count(t, p.SK, cus, "requests"); got != 5 {
		t.Errorf("count after a denied plugin error = %d, want 5", got)
	}

	// Rollback to v1, instantly; dry-run a given version.
	res = ts.expect(t, req{Method: "POST", Path: "/api/platform/plugin/rollback", Key: p.SK, Body: map[string]any{"version": v1}}, 200, "")
	if str(res.Body, "version") != v1 || res.Body["active"] != true {
		t.Errorf("rollback: %s", res.Raw)
	}
	ts.expect(t, req{Method: "POST", Path: "/api/platform/plugin/rollback", Key: p.SK, Body: map[string]any{"version": "plg_nope"}}, 404, "not_found")
	res = ts.expect(t, req{Method: "POST", Path: "/api/platform/plugin/dry-run?version=" + v1, Key: p.SK,
		Body: map[string]any{"plan": "free", "feature": "exports", "quantity": 2, "usage": 0, "limit": 25}}, 200, "")
	if res.Body["allowed"] != true || num(res.Body, "cost") != 20 {
		t.Errorf("dry-run: %s", res.Raw)
	}
	if got := ts.count(t, p.SK, cus, "exports"); got != 11 {
		t.Errorf("dry-run counted: exports = %d, want 11", got)
	}
	res = ts.expect(t, req{Method: "GET", Path: "/api/platform/plugin", Key: p.SK}, 200, "")
	if h, _ := res.Body["history"].([]any); len(h) != 3 {
		t.Errorf("history has %d versions, want 3 (v1, v2, v3): %s", len(h), res.Raw)
	}
	_ = v2

	// Versions survive a restart; the active one keeps deciding.
	dir := ts.DataDir
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	ts = startServerAt(t, dir, map[string]string{"DREAM_ADMIN_TOKEN": ts.AdminToken, "DREAM_PLUGIN_DEADLINE": pluginEnv["DREAM_PLUGIN_DEADLINE"]})
	res = ts.expect(t, req{Method: "GET", Path: "/api/platform/plugin", Key: p.SK}, 200, "")
	if str(res.Body, "active", "version") != v1 {
		t.Errorf("active after restart: %s", res.Raw)
	}
	res = ts.expect(t, req{Method: "POST", Path: "/api/check", Key: p.SK, Body: trackF("exports", 1)}, 200, "")
	if str(res.Body, "plugin", "version") != v1 || res.Body["allowed"] != true {
		t.Errorf("check after restart: %s", res.Raw)
	}

	// Back to built-in limits.
	res = ts.expect(t, req{Method: "DELETE", Path: "/api/platform/plugin", Key: p.SK}, 200, "")
	if _, ok := res.Body["active"]; !ok || res.Body["active"] != nil {
		t.Errorf("delete: %s", res.Raw)
	}
	res = ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: trackF("exports", 1)}, 200, "")
	if res.Body["plugin"] != nil || num(res.Body, "usage", "count") != 12 {
		t.Errorf("after delete: %s", res.Raw)
	}
	ts.expect(t, req{Method: "POST", Path: "/api/platform/plugin/dry-run", Key: p.SK, Body: map[string]any{}}, 404, "not_found")
}

func TestPluginStateAndBreaker(t *testing.T) {
	ts := startServer(t, pluginEnv)
	p := ts.createPlatform(t, "Stateful")
	cus := str(ts.createCustomer(t, p.SK, map[string]any{"email": "state@example.com"}), "id")

	// counter.wat keeps a call count in the plugin state and reports limit 42.
	if res := ts.upload(t, p.SK, wasmFile(t, "counter.wasm"), ""); res.Status != 201 {
		t.Fatalf("upload counter: %d %s", res.Status, res.Raw)
	}
	for i := 0; i < 3; i++ {
		res := ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: track(cus)}, 200, "")
		if num(res.Body, "usage", "limit") != 42 {
			t.Fatalf("limit = %d, want the plugin's 42", num(res.Body, "usage", "limit"))
		}
	}
	// A check writes nothing: the state after it is what three tracks left.
	ts.expect(t, req{Method: "POST", Path: "/api/check", Key: p.SK, Body: track(cus)}, 200, "")
	res := ts.expect(t, req{Method: "POST", Path: "/api/platform/plugin/dry-run", Key: p.SK,
		Body: map[string]any{"state": base64.StdEncoding.EncodeToString([]byte{3, 0, 0, 0, 0, 0, 0, 0})}}, 200, "")
	state, _ := base64.StdEncoding.DecodeString(str(res.Body, "state"))
	if len(state) != 8 || state[0] != 4 {
		t.Errorf("dry-run from state 3 gave state %v, want 4", state)
	}

	// The breaker: five errors in a row skip the plugin for a cool-down,
	// even for inputs it would handle.
	if res := ts.upload(t, p.SK, wasmFile(t, "loop_on_big.wasm"), ""); res.Status != 201 {
		t.Fatalf("upload loop_on_big: %d", res.Status)
	}
	big := map[string]any{"customerId": cus, "quantity": 5000}
	for i := 0; i < 5; i++ {
		res := ts.do(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: big})
		if get(res.Body, "plugin", "fallback") != true {
			t.Fatalf("error %d: %s", i, res.Raw)
		}
	}
	res = ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: big}, 429, "tier_limit_reached")
	if get(res.Body, "plugin", "fallback") != true {
		t.Errorf("breaker open: %s", res.Raw)
	}
	// That the plugin is skipped, not run into its deadline, shows on an
	// input it handles: built-in limits decide it.
	res = ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: track(cus)}, 200, "")
	if get(res.Body, "plugin", "fallback") != true {
		t.Errorf("a small call while the breaker is open should skip the plugin: %s", res.Raw)
	}
	if !strings.Contains(ts.logs.String(), "circuit breaker open") {
		t.Error("the breaker opening is not in the log")
	}
}

// TestPluginGarbageOutput runs a module that breaks the ABI in a different
// way for each quantity: every call falls back to built-in limits, nothing
// is half-written, the server stays healthy.
func TestPluginGarbageOutput(t *testing.T) {
	ts := startServer(t, pluginEnv)
	p := ts.createPlatform(t, "Garbage")
	ts.putTiers(t, p.SK, map[string]any{"name": "free", "limit": 1000})
	cus := str(ts.createCustomer(t, p.SK, map[string]any{"email": "garbage@example.com"}), "id")
	if res := ts.upload(t, p.SK, wasmFile(t, "garbage.wasm"), ""); res.Status != 201 {
		t.Fatalf("upload: %d %s", res.Status, res.Raw)
	}
	want := int64(0)
	for q := 2; q <= 15; q++ {
		res := ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK,
			Body: map[string]any{"customerId": cus, "quantity": q}}, 200, "")
		want += int64(q)
		if get(res.Body, "plugin", "fallback") != true {
			t.Errorf("quantity %d: plugin = %v, want fallback", q, res.Body["plugin"])
		}
		if got := num(res.Body, "usage", "count"); got != want {
			t.Errorf("quantity %d: count %d, want %d (built-in cost)", q, got, want)
		}
	}
	ts.expect(t, req{Method: "GET", Path: "/health"}, 200, "")
	if got := ts.count(t, p.SK, cus, "requests"); got != want {
		t.Errorf("stored count %d, want %d", got, want)
	}
}
