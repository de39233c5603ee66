package http

import (
	"sort"
	"strings"
	"testing"

	"github.com/gorilla/mux"

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
		engine.ENOTFOUND: 404, engine.ECONFLICT: 409, engine.EIDEMPOTENCYCONFLICT: 409,
		engine.EBODYTOOLARGE: 413, engine.EVALIDATION: 422, engine.ESTRIPENOTCONNECTED: 424,
		engine.ECLERKNOTCONFIGURED: 424, engine.ETIERLIMIT: 429, engine.ERATELIMITED: 429,
		engine.EPLUGINERROR: 503, engine.EUPSTREAM: 502, engine.EINTERNAL: 500,
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
	// Internal errors never leak their text.
	status, body, _ := errorResponse(errorString("pebble: disk full at /secret/path"), "req_1")
	if status != 500 || strings.Contains(body.Message, "pebble") || body.Code != "internal" {
		t.Errorf("internal error leaked: %d %+v", status, body)
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }
