package main

import (
	"strconv"
	"strings"
	"testing"
)

// manyFunctionsModule is a valid wasm module of n empty functions: at two
// million, 8 MB that took a GiB and 14–52 s of CPU to compile, inside the
// upload request (issue 10, item 1).
func manyFunctionsModule(n int) []byte {
	leb := func(b []byte, v uint64) []byte {
		for {
			c := byte(v & 0x7f)
			v >>= 7
			if v == 0 {
				return append(b, c)
			}
			b = append(b, c|0x80)
		}
	}
	section := func(b []byte, id byte, body []byte) []byte {
		return append(leb(append(b, id), uint64(len(body))), body...)
	}
	funcs := leb(nil, uint64(n))
	code := leb(nil, uint64(n))
	for range n {
		funcs = append(funcs, 0)        // type 0
		code = append(code, 2, 0, 0x0b) // body of 2 bytes: no locals, end
	}
	b := []byte("\x00asm\x01\x00\x00\x00")
	b = section(b, 1, []byte{1, 0x60, 0, 0}) // one type: () -> ()
	b = section(b, 3, funcs)
	return section(b, 10, code)
}

// TestPluginHardeningCompileBomb: the compile bomb is refused with a 422
// naming the limit (checked before compiling), and the server stays healthy:
// the same platform uploads a real module next, and it decides.
func TestPluginHardeningCompileBomb(t *testing.T) {
	ts := startServer(t, pluginEnv)
	p := ts.createPlatform(t, "Bomber")
	ts.putTiers(t, p.SK, map[string]any{"name": "free", "limits": map[string]any{"requests": 100, "exports": 25}})

	bomb := manyFunctionsModule(2_000_000)
	res := ts.upload(t, p.SK, bomb, "")
	if res.Status != 422 || str(res.Body, "code") != "validation_failed" ||
		!strings.Contains(str(res.Body, "message"), "module declares 2000000 functions; the limit is 10000") {
		t.Fatalf("bomb upload (%d bytes): %d %s", len(bomb), res.Status, res.Raw)
	}

	ts.expect(t, req{Method: "GET", Path: "/health"}, 200, "")
	ov := ts.expect(t, req{Method: "GET", Path: "/api/platform/plugin", Key: p.SK}, 200, "")
	if ov.Body["active"] != nil || len(ov.Body["history"].([]any)) != 0 {
		t.Errorf("the refused bomb left a trace: %s", ov.Raw)
	}
	if res := ts.upload(t, p.SK, wasmFile(t, "weighted.wasm"), ""); res.Status != 201 {
		t.Fatalf("upload after the bomb: %d %s", res.Status, res.Raw)
	}
	cus := str(ts.createCustomer(t, p.SK, map[string]any{"email": "bomb@example.com"}), "id")
	res = ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK,
		Body: map[string]any{"customerId": cus, "feature": "exports"}}, 200, "")
	if got := num(res.Body, "usage", "count"); got != 10 {
		t.Errorf("a weighted export counted %d, want 10", got)
	}
}

// TestPluginHardeningQuotas: the operator's plugin quotas, from the
// environment, reach the API: a module over the storage quota is 429
// quota_exceeded naming it, and uploads beyond the per-minute budget are
// 429 rate_limited with Retry-After.
func TestPluginHardeningQuotas(t *testing.T) {
	env := map[string]string{
		"DREAM_QUOTA_PLUGIN_BYTES":   "400", // builtin.wasm is 342 bytes, weighted.wasm 411
		"DREAM_QUOTA_PLUGIN_UPLOADS": "2",
	}
	for k, v := range pluginEnv {
		env[k] = v
	}
	ts := startServer(t, env)
	p := ts.createPlatform(t, "Quota")

	res := ts.upload(t, p.SK, wasmFile(t, "weighted.wasm"), "")
	if res.Status != 429 || str(res.Body, "code") != "quota_exceeded" || !strings.Contains(str(res.Body, "message"), "storage quota") {
		t.Fatalf("upload over the storage quota: %d %s", res.Status, res.Raw)
	}
	if res := ts.upload(t, p.SK, wasmFile(t, "builtin.wasm"), ""); res.Status != 201 {
		t.Fatalf("upload within the quota: %d %s", res.Status, res.Raw)
	}
	res = ts.upload(t, p.SK, wasmFile(t, "builtin.wasm"), "")
	if res.Status != 429 || str(res.Body, "code") != "rate_limited" {
		t.Fatalf("third upload in a minute: %d %s", res.Status, res.Raw)
	}
	if s, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || s < 1 || s > 30 {
		t.Errorf("Retry-After %q, want 1..30 s (2 a minute)", res.Header.Get("Retry-After"))
	}
}
