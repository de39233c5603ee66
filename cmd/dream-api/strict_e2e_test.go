package main

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
)

// TestStrictBodies runs the real program: a body with a member the
// endpoint does not know is refused naming it and changes nothing; a
// number beyond the range says the range; null is not an empty body; a
// wrong method is 405 with Allow.
func TestStrictBodies(t *testing.T) {
	ts := startServer(t, nil)
	p := ts.createPlatform(t, "Strict")
	id := str(ts.createCustomer(t, p.SK, map[string]any{"email": "strict@example.com"}), "id")

	fieldsOf := func(res *response) map[string]string {
		out := map[string]string{}
		list, _ := res.Body["fields"].([]any)
		for _, f := range list {
			m, _ := f.(map[string]any)
			out[str(m, "field")] = str(m, "message")
		}
		return out
	}
	named := func(t *testing.T, res *response, field, message string) {
		t.Helper()
		if got := fieldsOf(res)[field]; got != message {
			t.Errorf("fields %v: want %q: %q\nbody: %s", fieldsOf(res), field, message, res.Raw)
		}
	}

	t.Run("a misspelt quantity counts nothing", func(t *testing.T) {
		res := ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: `{"customerId":"` + id + `","quantiy":5}`}, 422, "validation_failed")
		named(t, res, "quantiy", "unknown field")
		res = ts.expect(t, req{Method: "POST", Path: "/api/check", Key: p.SK, Body: `{"customerId":"` + id + `","feture":"exports"}`}, 422, "validation_failed")
		named(t, res, "feture", "unknown field")
		res = ts.expect(t, req{Method: "POST", Path: "/api/data", Key: p.SK, Body: `{"quantiy":5}`, Header: map[string]string{"X-User-Id": id}}, 422, "validation_failed")
		named(t, res, "quantiy", "unknown field")
		if got := ts.count(t, p.SK, id, "requests"); got != 0 {
			t.Errorf("count = %d after refused tracks, want 0", got)
		}
	})

	t.Run("quantity 1e23 says the range", func(t *testing.T) {
		for _, q := range []string{"1e23", "1.5", `"5"`} {
			res := ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: `{"customerId":"` + id + `","quantity":` + q + `}`}, 400, "invalid_json")
			if msg := str(res.Body, "message"); !strings.Contains(msg, "quantity must be an integer from 1 to 1000000000000") {
				t.Errorf("quantity %s: message %q", q, msg)
			}
		}
		if got := ts.count(t, p.SK, id, "requests"); got != 0 {
			t.Errorf("count = %d, want 0", got)
		}
	})

	t.Run("a misspelt limit leaves the tiers as they were", func(t *testing.T) {
		before := ts.expect(t, req{Method: "GET", Path: "/api/platform/tiers", Key: p.SK}, 200, "").Raw
		res := ts.expect(t, req{Method: "PUT", Path: "/api/platform/tiers", Key: p.SK,
			Body: `{"tiers":[{"name":"free","limt":3},{"name":"pro","limits":{"requests":10}}]}`}, 422, "validation_failed")
		named(t, res, "tiers[0].limt", "unknown field")
		res = ts.expect(t, req{Method: "PUT", Path: "/api/platform/tiers", Key: p.SK,
			Body: `{"tiers":[{"name":"free","price":"15.00"},{"name":"pro"}]}`}, 400, "invalid_json")
		if msg := str(res.Body, "message"); !strings.Contains(msg, "tiers[0].price must be an integer (cents)") {
			t.Errorf("message %q", msg)
		}
		if after := ts.expect(t, req{Method: "GET", Path: "/api/platform/tiers", Key: p.SK}, 200, "").Raw; !bytes.Equal(before, after) {
			t.Errorf("tiers changed:\nbefore %s\nafter  %s", before, after)
		}
	})

	t.Run("a misspelt plan makes no customer", func(t *testing.T) {
		res := ts.expect(t, req{Method: "POST", Path: "/api/customers", Key: p.SK, Body: `{"email":"pln@example.com","pln":"pro"}`}, 422, "validation_failed")
		named(t, res, "pln", "unknown field")
		list := ts.expect(t, req{Method: "GET", Path: "/api/customers?email=pln@example.com", Key: p.SK}, 200, "")
		if d, _ := list.Body["data"].([]any); len(d) != 0 {
			t.Errorf("a customer was made: %s", list.Raw)
		}
	})

	t.Run("CORS {} keeps the origins", func(t *testing.T) {
		ts.expect(t, req{Method: "PUT", Path: "/api/platform/cors", Key: p.SK, Body: `{"allowedOrigins":["https://app.example.com"]}`}, 200, "")
		for _, body := range []string{`{}`, `{"allowedOrigins":null}`} {
			res := ts.expect(t, req{Method: "PUT", Path: "/api/platform/cors", Key: p.SK, Body: body}, 422, "validation_failed")
			named(t, res, "allowedOrigins", "is required")
		}
		ts.expect(t, req{Method: "PUT", Path: "/api/platform/cors", Key: p.SK, Body: `null`}, 400, "invalid_json")
		got := ts.expect(t, req{Method: "GET", Path: "/api/platform/cors", Key: p.SK}, 200, "")
		if o, _ := got.Body["allowedOrigins"].([]any); len(o) != 1 || o[0] != "https://app.example.com" {
			t.Errorf("origins now %s", got.Raw)
		}
	})

	t.Run("POST keys with null makes no key", func(t *testing.T) {
		ts.expect(t, req{Method: "POST", Path: "/api/platform/keys", Key: p.SK, Body: `null`}, 400, "invalid_json")
		res := ts.expect(t, req{Method: "GET", Path: "/api/platform/keys", Key: p.SK}, 200, "")
		if d, _ := res.Body["data"].([]any); len(d) != 1 {
			t.Errorf("%d live keys after POST null, want 1", len(d))
		}
	})

	t.Run("empty Idempotency-Key and ?limit=", func(t *testing.T) {
		res := ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: track(id), Header: map[string]string{"Idempotency-Key": ""}}, 422, "validation_failed")
		named(t, res, "Idempotency-Key", "must not be empty")
		res = ts.expect(t, req{Method: "GET", Path: "/api/customers?limit=", Key: p.SK}, 422, "validation_failed")
		named(t, res, "limit", "must not be empty")
		if got := ts.count(t, p.SK, id, "requests"); got != 0 {
			t.Errorf("count = %d, want 0", got)
		}
	})

	t.Run("DELETE /api/track is 405 with Allow", func(t *testing.T) {
		res := ts.expect(t, req{Method: "DELETE", Path: "/api/track", Key: p.SK}, http.StatusMethodNotAllowed, "method_not_allowed")
		if got := res.Header.Get("Allow"); got != "POST" {
			t.Errorf("Allow %q, want POST", got)
		}
		res = ts.expect(t, req{Method: "POST", Path: "/api/customers/" + id, Key: p.SK, Body: `{}`}, http.StatusMethodNotAllowed, "method_not_allowed")
		if got := res.Header.Get("Allow"); got != "DELETE, GET, PATCH" {
			t.Errorf("Allow %q", got)
		}
	})
}
