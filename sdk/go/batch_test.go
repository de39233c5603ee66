package dream

import (
	"errors"
	"net/http"
	"testing"
)

// TrackBatch sends the events as the server takes them, retries under one
// Idempotency-Key, and gives each event's answer as its result: allowed,
// a *TierLimitError, or an *Error with its fields.
func TestTrackBatch(t *testing.T) {
	results := `{"results":[` +
		`{"status":200,` + trackOK[1:] + `,` +
		`{"status":429,"error":"Tier limit reached","code":"tier_limit_reached","message":"m","requestId":"req_b","usage":{"feature":"requests","count":3,"limit":3,"remaining":0,"plan":"free","periodStart":"2026-01-01T00:00:00Z","periodEnd":"2026-02-01T00:00:00Z"},"plugin":null},` +
		`{"status":422,"error":"Validation failed","code":"validation_failed","message":"quantity: must be","requestId":"req_b","fields":[{"field":"quantity","message":"must be"}]}` +
		`]}`
	f := &fake{answers: []func(http.ResponseWriter){answer(503, errBody("unavailable", "x")), answer(200, results)}}
	c, _ := newTestClient(t, f)
	rs, err := c.TrackBatch(t.Context(), []TrackEvent{
		{CustomerID: "cus_1"},
		{CustomerID: "cus_1", Feature: "exports", Quantity: 2, IdempotencyKey: "e1"},
		{CustomerID: "cus_1", Quantity: -1},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	reqs, bodies := f.seen()
	if len(reqs) != 2 || reqs[1].URL.Path != "/api/track/batch" || reqs[0].Header.Get("Idempotency-Key") == "" ||
		reqs[0].Header.Get("Idempotency-Key") != reqs[1].Header.Get("Idempotency-Key") {
		t.Fatalf("requests %v: want two to /api/track/batch with one Idempotency-Key", reqs)
	}
	want := `{"events":[{"customerId":"cus_1"},{"customerId":"cus_1","feature":"exports","quantity":2,"idempotencyKey":"e1"},{"customerId":"cus_1","quantity":-1}]}`
	if bodies[1] != want {
		t.Errorf("body\n got  %s\n want %s", bodies[1], want)
	}
	if len(rs) != 3 {
		t.Fatalf("%d results", len(rs))
	}
	if r := rs[0]; r.Status != 200 || r.Err != nil || r.Result == nil || !r.Result.Allowed || r.Result.Usage.Count != 1 {
		t.Errorf("result 0: %+v", r)
	}
	var tl *TierLimitError
	if r := rs[1]; r.Status != 429 || r.Result != nil || !errors.As(r.Err, &tl) || tl.Usage.Remaining != 0 || tl.RequestID != "req_b" {
		t.Errorf("result 1: %+v", r)
	}
	var e *Error
	if r := rs[2]; r.Status != 422 || !errors.As(r.Err, &e) || e.Code != "validation_failed" || len(e.Fields) != 1 || e.Fields[0].Field != "quantity" {
		t.Errorf("result 2: %+v", r)
	}
}

// A batch refused as a whole is TrackBatch's error.
func TestTrackBatchRefused(t *testing.T) {
	f := &fake{answers: []func(http.ResponseWriter){answer(422, `{"error":"E","code":"validation_failed","message":"m","requestId":"r","fields":[{"field":"events[0].quantiy","message":"unknown field"}]}`)}}
	c, _ := newTestClient(t, f)
	rs, err := c.TrackBatch(t.Context(), []TrackEvent{{CustomerID: "cus_1"}}, &BatchOptions{IdempotencyKey: "mine"})
	var e *Error
	if rs != nil || !errors.As(err, &e) || e.Fields[0].Field != "events[0].quantiy" {
		t.Errorf("TrackBatch = %v, %v", rs, err)
	}
	if got := f.reqs[0].Header.Get("Idempotency-Key"); got != "mine" {
		t.Errorf("Idempotency-Key %q, want the caller's", got)
	}
}
