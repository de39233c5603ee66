package http

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dream-api/dream-api/engine"
)

// TestRouterMatchesSpec holds the router to openapi.yaml: every route is in
// the spec and every operation of the spec is routed.
func TestRouterMatchesSpec(t *testing.T) {
	doc := openAPISpecFromFile(t)
	s := NewServer(Config{Engine: engine.New(engine.Config{Store: nil})})

	routed := map[string]bool{}
	err := s.Router().Walk(func(r *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, err := r.GetPathTemplate()
		if err != nil {
			return err
		}
		methods, err := r.GetMethods()
		if err != nil {
			return err
		}
		for _, m := range methods {
			routed[m+" "+tpl] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	inSpec := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			inSpec[strings.ToUpper(method)+" "+path] = true
		}
	}
	for _, op := range sortedKeys(routed) {
		if !inSpec[op] {
			t.Errorf("route %s is not in openapi.yaml", op)
		}
	}
	for _, op := range sortedKeys(inSpec) {
		if !routed[op] {
			t.Errorf("openapi.yaml describes %s, which the router does not serve", op)
		}
	}
	if len(routed) < 20 {
		t.Errorf("only %d routes walked", len(routed))
	}
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestErrorTable checks that every code has a status and a title, and the
// statuses API.md gives.
func TestErrorTable(t *testing.T) {
	want := map[string]int{
		engine.EINVALIDJSON: 400, engine.EINVALIDAPIKEY: 401, engine.EFORBIDDEN: 403,
		engine.ENOTFOUND: 404, engine.EMETHODNOTALLOWED: 405, engine.ECONFLICT: 409, engine.EIDEMPOTENCYCONFLICT: 409,
		engine.EBODYTOOLARGE: 413, engine.EVALIDATION: 422, engine.EUNKNOWNFEATURE: 422, engine.ESTRIPENOTCONNECTED: 424,
		engine.ECLERKNOTCONFIGURED: 424, engine.ETIERLIMIT: 429, engine.ERATELIMITED: 429, engine.EQUOTAEXCEEDED: 429,
		engine.EPLUGINERROR: 503, engine.EUPSTREAM: 502, engine.EUNAVAILABLE: 503, engine.EINTERNAL: 500,
	}
	for code, status := range want {
		if got := ErrorStatus(code); got != status {
			t.Errorf("ErrorStatus(%s) = %d, want %d", code, got, status)
		}
		if titles[code] == "" {
			t.Errorf("no title for %s", code)
		}
	}
	if len(codes) != len(want) {
		t.Errorf("table has %d codes, test knows %d", len(codes), len(want))
	}
	if got := ErrorStatus("no_such_code"); got != 500 {
		t.Errorf("unknown code → %d, want 500", got)
	}
	// A store wraps EUNAVAILABLE with its cause: the code, the message and
	// Retry-After survive the wrapping, the cause does not reach the body.
	wrapped := fmt.Errorf("postgres: dial tcp 10.0.0.9:5432: connection refused: %w",
		&engine.Error{Code: engine.EUNAVAILABLE, Message: "The database cannot be reached.", RetryAfter: 1})
	status, body, e := errorResponse(wrapped, "req_1")
	if status != 503 || body.Code != "unavailable" || body.Message != "The database cannot be reached." || e == nil || e.RetryAfter != 1 {
		t.Errorf("wrapped unavailable → %d %+v %+v", status, body, e)
	}
	// Internal errors never leak their text.
	status, body, _ = errorResponse(errorString("pebble: disk full at /secret/path"), "req_1")
	if status != 500 || strings.Contains(body.Message, "pebble") || body.Code != "internal" {
		t.Errorf("internal error leaked: %d %+v", status, body)
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

// TestStaticRoutesAnswerLikeTheRouter holds ServeHTTP's lookup of the
// routes without variables (Server.route) to gorilla/mux: every static
// route answers as the router itself does, other methods and unclean
// paths still reach the router, and metrics carry the route's template.
func TestStaticRoutesAnswerLikeTheRouter(t *testing.T) {
	st := tempStore(t)
	reg := prometheus.NewRegistry()
	s := NewServer(Config{Engine: engine.New(engine.Config{Store: st}), Store: st, Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	if len(s.static) < 20 {
		t.Fatalf("only %d static routes", len(s.static))
	}
	serve := func(h http.Handler, method, path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(method, path, strings.NewReader(`{}`)))
		return w
	}
	for k := range s.static {
		if k.path == "/metrics" || k.path == "/health" || k.path == "/openapi.json" {
			continue // bodies that change from call to call
		}
		viaServer, viaRouter := serve(s, k.method, k.path), serve(s.Router(), k.method, k.path)
		if viaServer.Code != viaRouter.Code || viaServer.Header().Get("Content-Type") != viaRouter.Header().Get("Content-Type") {
			t.Errorf("%s %s: %d %q through ServeHTTP, %d %q through the router", k.method, k.path,
				viaServer.Code, viaServer.Header().Get("Content-Type"), viaRouter.Code, viaRouter.Header().Get("Content-Type"))
		}
	}
	// A method a static path does not serve: the router's 405, with Allow.
	if w := serve(s, "GET", "/api/track"); w.Code != http.StatusMethodNotAllowed || !strings.Contains(w.Body.String(), `"code":"method_not_allowed"`) ||
		w.Header().Get("Allow") != "POST" {
		t.Errorf("GET /api/track: %d Allow %q %s", w.Code, w.Header().Get("Allow"), w.Body)
	}
	if w := serve(s, "POST", "/api//track"); w.Code != http.StatusMovedPermanently {
		t.Errorf("POST /api//track: %d, want the router's redirect to the clean path", w.Code)
	}
	if w := serve(s, "POST", "/api/track"); w.Code != http.StatusUnauthorized || w.Header().Get("X-Request-Id") == "" {
		t.Errorf("POST /api/track without a key: %d, request id %q", w.Code, w.Header().Get("X-Request-Id"))
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "dream_http_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			found[labels["method"]+" "+labels["route"]+" "+labels["status"]] += m.GetCounter().GetValue()
		}
	}
	// The loop sent one through ServeHTTP and one through the router, then one more.
	if got := found["POST /api/track 401"]; got != 3 {
		t.Errorf(`requests{POST /api/track 401} = %v, want 3 (all: %v)`, got, found)
	}
	if got := found["GET unmatched 405"]; got != 1 {
		t.Errorf(`requests{GET unmatched 405} = %v, want 1`, got)
	}
}
