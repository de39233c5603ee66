package main

// The end-to-end harness: the real Main on 127.0.0.1:0 and a t.TempDir(),
// and a client whose every response is held to http/openapi.yaml.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	dhttp "github.com/dream-api/dream-api/http"
)

// spec is http/openapi.yaml, loaded once, with a router over its paths.
var spec = sync.OnceValues(func() (*specValidator, error) {
	doc, err := openapi3.NewLoader().LoadFromData(dhttp.OpenAPIYAML())
	if err != nil {
		return nil, fmt.Errorf("load openapi.yaml: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("openapi.yaml does not validate: %w", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("router over openapi.yaml: %w", err)
	}
	errSchema := doc.Components.Schemas["Error"]
	if errSchema == nil || errSchema.Value == nil {
		return nil, errors.New("openapi.yaml has no components.schemas.Error")
	}
	return &specValidator{doc: doc, router: router, errSchema: errSchema.Value}, nil
})

// specValidator holds responses to the spec. Validation is serialized: the
// schema code keeps caches, and the race detector is on in CI.
type specValidator struct {
	mu        sync.Mutex
	doc       *openapi3.T
	router    routers.Router
	errSchema *openapi3.Schema
}

// validate returns why res (the answer to method and u) does not match the
// spec, or nil. A request to a path or method the spec does not have must be
// answered 404 with an Error body.
func (v *specValidator) validate(method string, u *url.URL, res *response) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	probe, err := http.NewRequest(method, u.String(), nil)
	if err != nil {
		return err
	}
	route, params, err := v.router.FindRoute(probe)
	if errors.Is(err, routers.ErrPathNotFound) || errors.Is(err, routers.ErrMethodNotAllowed) {
		if res.Status != http.StatusNotFound {
			return fmt.Errorf("%s %s is not in the spec, yet answered %d (want 404)", method, u.Path, res.Status)
		}
		var body any
		if err := json.Unmarshal(res.Raw, &body); err != nil {
			return fmt.Errorf("404 body is not JSON: %v", err)
		}
		if err := v.errSchema.VisitJSON(body, openapi3.VisitAsResponse()); err != nil {
			return fmt.Errorf("404 body does not match components.schemas.Error: %v", err)
		}
		return nil
	} else if err != nil {
		return fmt.Errorf("find route: %w", err)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: probe, PathParams: params, Route: route,
			Options: &openapi3filter.Options{ExcludeRequestBody: true, AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status:  res.Status,
		Header:  res.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	in.SetBodyBytes(res.Raw)
	return openapi3filter.ValidateResponse(context.Background(), in)
}

// testServer is the real program serving on a port of its own.
type testServer struct {
	Main       *Main
	URL        string
	AdminToken string
	DataDir    string
	logs       *syncBuffer
	client     *http.Client
}

// syncBuffer collects the server's log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServer runs Main on 127.0.0.1:0 with a fresh data dir. env is the
// whole environment the program sees; DREAM_ADMIN_TOKEN is made up when
// absent. The server is closed when the test ends.
func startServer(t *testing.T, env map[string]string) *testServer {
	t.Helper()
	return startServerAt(t, t.TempDir(), env)
}

// startServerAt is startServer on a given data dir.
func startServerAt(t *testing.T, dataDir string, env map[string]string) *testServer {
	t.Helper()
	if _, err := spec(); err != nil {
		t.Fatal(err)
	}
	e := map[string]string{}
	for k, v := range env {
		e[k] = v
	}
	if e["DREAM_ADMIN_TOKEN"] == "" {
		e["DREAM_ADMIN_TOKEN"] = "dat_test_" + randHex(16)
	}
	logs := &syncBuffer{}
	m := NewMain()
	m.Getenv = func(k string) string { return e[k] }
	m.Stdout = logs
	m.Stderr = logs
	if err := m.ParseFlags(t.Context(), []string{"--addr", "127.0.0.1:0", "--data", dataDir}); err != nil {
		t.Fatalf("ParseFlags: %v", err)
	}
	if err := m.Run(context.Background()); err != nil {
		m.Close()
		t.Fatalf("Run: %v\n%s", err, logs)
	}
	ts := &testServer{
		Main: m, URL: "http://" + m.Addr(), AdminToken: e["DREAM_ADMIN_TOKEN"], DataDir: dataDir, logs: logs,
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
	}
	t.Cleanup(func() {
		if err := ts.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", ts.logs)
		}
	})
	return ts
}

// Close shuts the server down; safe to call more than once.
func (ts *testServer) Close() error {
	ts.client.CloseIdleConnections()
	return ts.Main.Close()
}

// response is one answer, checked against the spec.
type response struct {
	Status int
	Header http.Header
	Raw    []byte
	// Body is the decoded JSON object; nil when the body is not one.
	Body map[string]any
}

// req describes one request. Body is JSON-encoded unless it is []byte or
// io.Reader (sent as is); nil sends no body.
type req struct {
	Method string
	Path   string
	Key    string // sent as `Authorization: Bearer <Key>` when set
	Body   any
	Header map[string]string
	// Replay marks a request whose answer may be an idempotent replay of
	// an earlier one: an error body then carries the first request's id.
	Replay bool
}

// try sends r and returns the checked response; the error says what went
// wrong, transport or contract. Safe for concurrent use (no t.Fatal).
func (ts *testServer) try(ctx context.Context, r req) (*response, error) {
	var body io.Reader
	switch b := r.Body.(type) {
	case nil:
	case []byte:
		body = bytes.NewReader(b)
	case string:
		body = strings.NewReader(b)
	case io.Reader:
		body = b
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(j)
	}
	hr, err := http.NewRequestWithContext(ctx, r.Method, ts.URL+r.Path, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if r.Key != "" {
		hr.Header.Set("Authorization", "Bearer "+r.Key)
	}
	for k, v := range r.Header {
		hr.Header.Set(k, v)
	}
	hres, err := ts.client.Do(hr)
	if err != nil {
		return nil, err
	}
	defer hres.Body.Close()
	raw, err := io.ReadAll(hres.Body)
	if err != nil {
		return nil, err
	}
	res := &response{Status: hres.StatusCode, Header: hres.Header, Raw: raw}
	if err := checkResponse(r, hr.URL, res); err != nil {
		return res, fmt.Errorf("%s %s → %d: %w\nbody: %s", r.Method, r.Path, res.Status, err, truncate(raw))
	}
	return res, nil
}

// checkResponse holds every response to the spec and to the request id
// rules: X-Request-Id on every response, and the same id as `requestId` in
// every error body.
func checkResponse(r req, u *url.URL, res *response) error {
	v, err := spec()
	if err != nil {
		return err
	}
	rid := res.Header.Get("X-Request-Id")
	if !strings.HasPrefix(rid, "req_") {
		return fmt.Errorf("X-Request-Id = %q, want req_…", rid)
	}
	if ct := res.Header.Get("Content-Type"); strings.HasPrefix(ct, "application/json") {
		var obj map[string]any
		if err := json.Unmarshal(res.Raw, &obj); err == nil {
			res.Body = obj
		}
	}
	if res.Status >= 400 {
		if res.Body == nil {
			return fmt.Errorf("error response is not a JSON object")
		}
		if code, _ := res.Body["code"].(string); code == "" {
			return fmt.Errorf("error body has no code")
		}
		if got, _ := res.Body["requestId"].(string); got != rid && !r.Replay {
			return fmt.Errorf("error body requestId = %q, X-Request-Id = %q: want them equal", got, rid)
		}
	}
	if err := v.validate(r.Method, u, res); err != nil {
		return fmt.Errorf("response does not match openapi.yaml: %w", err)
	}
	return nil
}

// do is try that fails the test on any error.
func (ts *testServer) do(t testing.TB, r req) *response {
	t.Helper()
	res, err := ts.try(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// expect is do that also checks the status, and for errors the code.
func (ts *testServer) expect(t testing.TB, r req, status int, code string) *response {
	t.Helper()
	res := ts.do(t, r)
	if res.Status != status {
		t.Fatalf("%s %s: status %d, want %d\nbody: %s", r.Method, r.Path, res.Status, status, truncate(res.Raw))
	}
	if code != "" {
		if got := str(res.Body, "code"); got != code {
			t.Fatalf("%s %s: code %q, want %q\nbody: %s", r.Method, r.Path, got, code, truncate(res.Raw))
		}
	}
	return res
}

// platform is a platform's id and keys, as POST /admin/platforms answers.
type platform struct {
	ID, PK, SK, TestPK, TestSK string
}

func (ts *testServer) createPlatform(t testing.TB, name string) platform {
	t.Helper()
	res := ts.expect(t, req{Method: "POST", Path: "/admin/platforms", Key: ts.AdminToken,
		Body: map[string]any{"name": name, "email": "dev@" + strings.ToLower(strings.ReplaceAll(name, " ", "")) + ".test"}}, 201, "")
	p := platform{
		ID: str(res.Body, "platform", "id"), PK: str(res.Body, "publishableKey"), SK: str(res.Body, "secretKey"),
		TestPK: str(res.Body, "test", "publishableKey"), TestSK: str(res.Body, "test", "secretKey"),
	}
	for want, got := range map[string]string{"plt_": p.ID, "pk_live_": p.PK, "sk_live_": p.SK, "pk_test_": p.TestPK, "sk_test_": p.TestSK} {
		if !strings.HasPrefix(got, want) {
			t.Fatalf("created platform: %q does not start with %q: %s", got, want, res.Raw)
		}
	}
	return p
}

// putTiers replaces the tier config and returns the answer.
func (ts *testServer) putTiers(t testing.TB, sk string, tiers ...map[string]any) *response {
	t.Helper()
	return ts.expect(t, req{Method: "PUT", Path: "/api/platform/tiers", Key: sk, Body: map[string]any{"tiers": tiers}}, 200, "")
}

// createCustomer creates a customer and returns it.
func (ts *testServer) createCustomer(t testing.TB, sk string, body map[string]any) map[string]any {
	t.Helper()
	res := ts.expect(t, req{Method: "POST", Path: "/api/customers", Key: sk, Body: body}, 201, "")
	if res.Body["success"] != true {
		t.Fatalf("create customer: success = %v", res.Body["success"])
	}
	c, _ := res.Body["customer"].(map[string]any)
	if !strings.HasPrefix(str(c, "id"), "cus_") {
		t.Fatalf("create customer: id %q", str(c, "id"))
	}
	return c
}

// usage returns a customer's Usage of feature from GET /api/usage; nil when
// the plan does not meter it.
func (ts *testServer) usage(t testing.TB, sk, customerID, feature string) map[string]any {
	t.Helper()
	res := ts.expect(t, req{Method: "GET", Path: "/api/usage?customerId=" + url.QueryEscape(customerID), Key: sk}, 200, "")
	list, _ := res.Body["usage"].([]any)
	for _, u := range list {
		if m, _ := u.(map[string]any); str(m, "feature") == feature {
			return m
		}
	}
	return nil
}

// count is the stored count of feature for a customer.
func (ts *testServer) count(t testing.TB, sk, customerID, feature string) int64 {
	t.Helper()
	u := ts.usage(t, sk, customerID, feature)
	if u == nil {
		t.Fatalf("GET /api/usage: no usage of %q for %s", feature, customerID)
	}
	return num(u, "count")
}

// track posts one unit of requests for a customer.
func track(customerID string) map[string]any {
	return map[string]any{"customerId": customerID}
}

// get walks a decoded JSON object.
func get(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func str(v map[string]any, path ...string) string {
	s, _ := get(v, path...).(string)
	return s
}

// num returns a JSON number as int64; -999999 when absent, so that a missing
// number never passes for 0.
func num(v map[string]any, path ...string) int64 {
	f, ok := get(v, path...).(float64)
	if !ok {
		return -999999
	}
	return int64(f)
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func truncate(b []byte) string {
	if len(b) > 2000 {
		return string(b[:2000]) + "…"
	}
	return string(b)
}

// --- the harness itself

// TestHarnessCatchesOffSpecResponses makes sure the checks every response
// goes through can fail.
func TestHarnessCatchesOffSpecResponses(t *testing.T) {
	hdr := func(kv ...string) http.Header {
		h := http.Header{"Content-Type": {"application/json"}}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	tests := []struct {
		name   string
		method string
		path   string
		res    response
		ok     bool
	}{
		{"health as specified", "GET", "/health", response{Status: 200, Header: hdr("X-Request-Id", "req_1"), Raw: []byte(`{"status":"ok","version":"dev"}`)}, true},
		{"health without request id", "GET", "/health", response{Status: 200, Header: hdr(), Raw: []byte(`{"status":"ok","version":"dev"}`)}, false},
		{"health with an unknown status value", "GET", "/health", response{Status: 200, Header: hdr("X-Request-Id", "req_1"), Raw: []byte(`{"status":"fine","version":"dev"}`)}, false},
		{"health with an undocumented status code", "GET", "/health", response{Status: 201, Header: hdr("X-Request-Id", "req_1"), Raw: []byte(`{"status":"ok","version":"dev"}`)}, false},
		{"error with another request id", "GET", "/api/customers/cus_1", response{Status: 404, Header: hdr("X-Request-Id", "req_1"),
			Raw: []byte(`{"error":"Not found","code":"not_found","message":"x","requestId":"req_2"}`)}, false},
		{"error with an unknown code", "GET", "/api/customers/cus_1", response{Status: 404, Header: hdr("X-Request-Id", "req_1"),
			Raw: []byte(`{"error":"Not found","code":"gone","message":"x","requestId":"req_1"}`)}, false},
		{"track without usage", "POST", "/api/track", response{Status: 200, Header: hdr("X-Request-Id", "req_1"),
			Raw: []byte(`{"success":true,"allowed":true,"plugin":null}`)}, false},
		{"unknown route answered 200", "GET", "/nope", response{Status: 200, Header: hdr("X-Request-Id", "req_1"), Raw: []byte(`{}`)}, false},
		{"unknown route answered 404 with an error", "GET", "/nope", response{Status: 404, Header: hdr("X-Request-Id", "req_1"),
			Raw: []byte(`{"error":"Not found","code":"not_found","message":"x","requestId":"req_1"}`)}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, _ := url.Parse("http://127.0.0.1" + tc.path)
			res := tc.res
			err := checkResponse(req{Method: tc.method, Path: tc.path}, u, &res)
			if got := err == nil; got != tc.ok {
				t.Errorf("checkResponse ok = %v, want %v (err: %v)", got, tc.ok, err)
			}
		})
	}
}
