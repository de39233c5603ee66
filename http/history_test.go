package http

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/dream-api/dream-api/engine"
)

// TestUsageHistory: GET /api/usage/history answers a customer's ended
// periods newest first, through customerId or X-User-Id, filters by
// feature, from and to, refuses a bad parameter with 422 naming it, and
// does not find another platform's or the other mode's customer. Every
// answer matches openapi.yaml.
func TestUsageHistory(t *testing.T) {
	doc := openAPISpecFromFile(t)
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{now: time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)}
	srv, _, eng, np := quotaServer(t, engine.Config{Now: clock.Now})
	ctx := context.Background()
	live := engine.Tenant{PlatformID: np.Platform.ID, Mode: engine.Live}
	cus, err := eng.Customers.Create(ctx, live, np.PublishableKey, engine.CreateCustomerInput{Email: "h@example.com"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := eng.Platforms.Create(ctx, engine.CreatePlatformInput{Name: "Other"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int64{3, 5} { // 3 in March, 5 in April; now May
		if _, err := eng.Meter.Track(ctx, live, engine.TrackInput{CustomerID: cus.ID, Quantity: &n}, nil); err != nil {
			t.Fatal(err)
		}
		clock.Add(31 * 24 * time.Hour)
	}
	get := func(t *testing.T, key, query string, hdr ...string) *httptest.ResponseRecorder {
		t.Helper()
		path := "/api/usage/history" + query
		w := call(t, srv, "GET", path, key, "", hdr...)
		u, _ := url.Parse("http://localhost" + path)
		probe := &http.Request{Method: "GET", URL: u, Header: http.Header{}}
		route, params, err := router.FindRoute(probe)
		if err != nil {
			t.Fatal(err)
		}
		in := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: &openapi3filter.RequestValidationInput{Request: probe, PathParams: params, Route: route,
				Options: &openapi3filter.Options{ExcludeRequestBody: true, AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}},
			Status: w.Code, Header: w.Header(),
			Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
		}
		in.SetBodyBytes(w.Body.Bytes())
		if err := openapi3filter.ValidateResponse(ctx, in); err != nil {
			t.Errorf("%s: %d %s does not match openapi.yaml: %v", path, w.Code, w.Body, err)
		}
		return w
	}
	type row struct {
		Feature     string
		Count       int64
		Limit       *int64
		PeriodStart time.Time
	}
	months := func(t *testing.T, w *httptest.ResponseRecorder) []string {
		t.Helper()
		var h struct {
			Data    []row
			HasMore bool
		}
		if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &h) != nil {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		out := []string{}
		for _, r := range h.Data {
			out = append(out, r.PeriodStart.Format("2006-01"))
		}
		return out
	}
	id := url.QueryEscape(cus.ID)
	tests := []struct {
		name, query string
		hdr         []string
		want        []string
	}{
		{"customerId", "?customerId=" + id, nil, []string{"2026-04", "2026-03"}},
		{"X-User-Id", "", []string{"X-User-Id", cus.ID}, []string{"2026-04", "2026-03"}},
		{"feature", "?customerId=" + id + "&feature=exports", nil, []string{}},
		{"from a date", "?customerId=" + id + "&from=2026-04-01", nil, []string{"2026-04"}},
		{"to a date", "?customerId=" + id + "&to=2026-03-31", nil, []string{"2026-03"}},
		{"to a time", "?customerId=" + id + "&to=2026-04-01T00:00:00Z", nil, []string{"2026-04", "2026-03"}},
		{"limit", "?customerId=" + id + "&limit=1", nil, []string{"2026-04"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := months(t, get(t, np.SecretKey, tt.query, tt.hdr...)); len(got) != len(tt.want) || (len(got) > 0 && got[0] != tt.want[0]) {
				t.Errorf("periods %v, want %v", got, tt.want)
			}
		})
	}
	bad := []struct{ query, field string }{
		{"", "customerId"},
		{"?customerId=" + id + "&from=last-week", "from"},
		{"?customerId=" + id + "&to=2026-02-30", "to"},
		{"?customerId=" + id + "&from=2026-04-02&to=2026-04-01", "to"},
		{"?customerId=" + id + "&from=", "from"},
		{"?customerId=" + id + "&limit=101", "limit"},
	}
	for _, b := range bad {
		if e := errorOf(t, get(t, np.SecretKey, b.query), http.StatusUnprocessableEntity, engine.EVALIDATION); !namesField(e, b.field) {
			t.Errorf("%s: %+v does not name %s", b.query, e, b.field)
		}
	}
	for name, key := range map[string]string{"the test key": np.Test.SecretKey, "another platform": other.SecretKey} {
		if w := get(t, key, "?customerId="+id); w.Code != http.StatusNotFound {
			t.Errorf("%s asks for the live customer's history: %d %s, want 404", name, w.Code, w.Body)
		}
	}
	errorOf(t, get(t, np.SecretKey, "?customerId=cus_nobody"), http.StatusNotFound, engine.ENOTFOUND)
	errorOf(t, get(t, np.PublishableKey, "?customerId="+id), http.StatusForbidden, engine.EFORBIDDEN)
}
