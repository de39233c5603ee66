package main

// The end-to-end harness: the real Main on 127.0.0.1:0 and a t.TempDir(),
// and a client whose every response is held to http/openapi.yaml.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
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
// spec, or nil. A request to a path the spec does not have must be answered
// 404, and one with a method the spec does not have for the path 405 with
// an Allow header, with an Error body.
func (v *specValidator) validate(method string, u *url.URL, res *response) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	probe, err := http.NewRequest(method, u.String(), nil)
	if err != nil {
		return err
	}
	route, params, err := v.router.FindRoute(probe)
	if errors.Is(err, routers.ErrPathNotFound) || errors.Is(err, routers.ErrMethodNotAllowed) {
		want := http.StatusNotFound
		if errors.Is(err, routers.ErrMethodNotAllowed) {
			want = http.StatusMethodNotAllowed
			if res.Header.Get("Allow") == "" {
				return fmt.Errorf("%s %s answered %d without Allow", method, u.Path, res.Status)
			}
		}
		if res.Status != want {
			return fmt.Errorf("%s %s is not in the spec, yet answered %d (want %d)", method, u.Path, res.Status, want)
		}
		var body any
		if err := json.Unmarshal(res.Raw, &body); err != nil {
			return fmt.Errorf("%d body is not JSON: %v", want, err)
		}
		if err := v.errSchema.VisitJSON(body, openapi3.VisitAsResponse()); err != nil {
			return fmt.Errorf("%d body does not match components.schemas.Error: %v", want, err)
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
		if got, _ := res.Body["requestId"].(string); got != rid {
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

// --- the seed's tests

// TestSeedTest1 is the seed's "Test 1": a tier limit of 3 enforced on
// POST /api/data, the 4th call refused with "Please upgrade…", and
// X-User-Plan never overriding the stored plan.
func TestSeedTest1(t *testing.T) {
	ts := startServer(t, nil)
	p := ts.createPlatform(t, "Seed One")
	ts.putTiers(t, p.SK,
		map[string]any{"name": "free", "limit": 3},
		map[string]any{"name": "pro", "price": 1500, "limit": 10},
	)
	free := ts.createCustomer(t, p.SK, map[string]any{"email": "test@example.com", "plan": "free"})
	data := func(id, plan string) req {
		return req{Method: "POST", Path: "/api/data", Key: p.SK, Header: map[string]string{"X-User-Id": id, "X-User-Plan": plan}}
	}

	for i := int64(1); i <= 3; i++ {
		res := ts.expect(t, data(str(free, "id"), "pro"), 200, "")
		if res.Body["success"] != true || res.Body["allowed"] != true {
			t.Fatalf("call %d: success/allowed = %v/%v", i, res.Body["success"], res.Body["allowed"])
		}
		if got := num(res.Body, "usage", "count"); got != i {
			t.Errorf("call %d: count = %d, want %d", i, got, i)
		}
		if got := num(res.Body, "usage", "limit"); got != 3 {
			t.Errorf("call %d: limit = %d, want 3 (the stored plan free, not X-User-Plan pro)", i, got)
		}
		if got := str(res.Body, "usage", "plan"); got != "free" {
			t.Errorf("call %d: plan = %q, want free", i, got)
		}
	}
	res := ts.expect(t, data(str(free, "id"), "pro"), 429, "tier_limit_reached")
	if got := str(res.Body, "error"); got != "Tier limit reached" {
		t.Errorf("error = %q, want Tier limit reached", got)
	}
	if got := str(res.Body, "message"); !strings.HasPrefix(got, "Please upgrade") {
		t.Errorf("message = %q, want Please upgrade…", got)
	}
	if c, l, r := num(res.Body, "usage", "count"), num(res.Body, "usage", "limit"), num(res.Body, "usage", "remaining"); c != 3 || l != 3 || r != 0 {
		t.Errorf("usage count/limit/remaining = %d/%d/%d, want 3/3/0", c, l, r)
	}
	if got := ts.count(t, p.SK, str(free, "id"), "requests"); got != 3 {
		t.Errorf("stored count after the refused call = %d, want 3", got)
	}

	// The other way round: a pro customer claiming free keeps pro's limit.
	pro := ts.createCustomer(t, p.SK, map[string]any{"email": "pro@example.com", "plan": "pro"})
	for i := 1; i <= 5; i++ {
		res := ts.expect(t, data(str(pro, "id"), "free"), 200, "")
		if got := num(res.Body, "usage", "limit"); got != 10 {
			t.Fatalf("pro customer, X-User-Plan free, call %d: limit = %d, want 10", i, got)
		}
	}

	// The seed's own curl names a customer that does not exist here.
	ts.expect(t, data("test_user_1", "free"), 404, "not_found")
	// X-User-Id is required.
	ts.expect(t, req{Method: "POST", Path: "/api/data", Key: p.SK}, 422, "validation_failed")
}

// TestSeedTest2 is the seed's "Test 2": create a customer with a profile
// and a password.
func TestSeedTest2(t *testing.T) {
	ts := startServer(t, nil)
	p := ts.createPlatform(t, "Seed Two")
	res := ts.expect(t, req{Method: "POST", Path: "/api/customers", Key: p.SK, Body: map[string]any{
		"email": "test@example.com", "firstName": "Test", "lastName": "User", "plan": "free", "password": "UniquePassword123xyz",
	}}, 201, "")
	if res.Body["success"] != true {
		t.Errorf("success = %v, want true", res.Body["success"])
	}
	c, _ := res.Body["customer"].(map[string]any)
	want := map[string]string{"email": "test@example.com", "firstName": "Test", "lastName": "User", "plan": "free", "publishableKey": p.PK}
	for k, v := range want {
		if got := str(c, k); got != v {
			t.Errorf("customer.%s = %q, want %q", k, got, v)
		}
	}
	if !strings.HasPrefix(str(c, "publishableKey"), "pk_live_") {
		t.Errorf("publishableKey = %q, want pk_live_…", str(c, "publishableKey"))
	}
	if md, ok := c["metadata"].(map[string]any); !ok || len(md) != 0 {
		t.Errorf("metadata = %v, want {}", c["metadata"])
	}
	if v, ok := c["stripeCustomerId"]; !ok || v != nil {
		t.Errorf("stripeCustomerId = %v (present %v), want null", v, ok)
	}
	if bytes.Contains(res.Raw, []byte("UniquePassword123xyz")) || bytes.Contains(res.Raw, []byte(`"password"`)) {
		t.Errorf("the password is echoed: %s", res.Raw)
	}

	got := ts.expect(t, req{Method: "GET", Path: "/api/customers/" + str(c, "id"), Key: p.SK}, 200, "")
	if str(got.Body, "customer", "email") != "test@example.com" {
		t.Errorf("GET customer: %s", got.Raw)
	}
	if u, _ := get(got.Body, "customer", "usage").([]any); len(u) != 1 {
		t.Errorf("GET customer: usage = %v, want one Usage (free meters requests)", get(got.Body, "customer", "usage"))
	}

	// A test key makes a customer that carries the test publishable key.
	tc := ts.createCustomer(t, p.TestSK, map[string]any{"email": "test@example.com"})
	if str(tc, "publishableKey") != p.TestPK {
		t.Errorf("test-mode customer publishableKey = %q, want %q", str(tc, "publishableKey"), p.TestPK)
	}
}

// --- errors

// TestErrorCodes sends one request per error the server can produce and
// then checks that none of them changed anything.
func TestErrorCodes(t *testing.T) {
	ts := startServer(t, nil)
	p := ts.createPlatform(t, "Errors")
	cus := ts.createCustomer(t, p.SK, map[string]any{"email": "taken@example.com"})
	id := str(cus, "id")
	ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: track(id)}, 200, "")
	tiersBefore := ts.expect(t, req{Method: "GET", Path: "/api/platform/tiers", Key: p.SK}, 200, "").Raw
	listBefore := ts.expect(t, req{Method: "GET", Path: "/api/customers", Key: p.SK}, 200, "").Raw

	unknownSK := "sk_live_" + randHex(24)
	meta51 := map[string]any{}
	for i := 0; i < 51; i++ {
		meta51[fmt.Sprintf("k%d", i)] = i
	}
	huge := `{"email":"big@example.com","firstName":"` + strings.Repeat("x", dhttp.MaxBodyBytes) + `"}`
	hugeTrack := `{"customerId":"` + id + `","metadata":{"x":"` + strings.Repeat("x", dhttp.MaxBodyBytes) + `"}}`
	tiers := func(ts ...map[string]any) map[string]any { return map[string]any{"tiers": ts} }

	tests := []struct {
		name   string
		r      req
		status int
		code   string
		field  string // with validation_failed: a field `fields` must name
	}{
		{"malformed JSON", req{Method: "POST", Path: "/api/customers", Key: p.SK, Body: `{"email":`}, 400, "invalid_json", ""},
		{"not JSON at all", req{Method: "POST", Path: "/api/track", Key: p.SK, Body: `customerId=cus_1`}, 400, "invalid_json", ""},
		{"empty body", req{Method: "POST", Path: "/api/customers", Key: p.SK, Body: ``}, 400, "invalid_json", ""},
		{"email of the wrong type", req{Method: "POST", Path: "/api/customers", Key: p.SK, Body: `{"email":5}`}, 400, "invalid_json", ""},
		{"quantity of the wrong type", req{Method: "POST", Path: "/api/track", Key: p.SK, Body: `{"customerId":"` + id + `","quantity":"2"}`}, 400, "invalid_json", ""},
		{"fractional quantity", req{Method: "POST", Path: "/api/track", Key: p.SK, Body: `{"customerId":"` + id + `","quantity":1.5}`}, 400, "invalid_json", ""},
		{"array body", req{Method: "POST", Path: "/api/track", Key: p.SK, Body: `[]`}, 400, "invalid_json", ""},
		{"tier limit of the wrong type", req{Method: "PUT", Path: "/api/platform/tiers", Key: p.SK, Body: `{"tiers":[{"name":"free","limit":"ten"}]}`}, 400, "invalid_json", ""},

		{"missing key", req{Method: "GET", Path: "/api/customers"}, 401, "invalid_api_key", ""},
		{"not a bearer token", req{Method: "GET", Path: "/api/customers", Header: map[string]string{"Authorization": "Basic " + p.SK}}, 401, "invalid_api_key", ""},
		{"malformed key", req{Method: "GET", Path: "/api/customers", Key: "sk_live_nothex"}, 401, "invalid_api_key", ""},
		{"unknown key", req{Method: "GET", Path: "/api/customers", Key: unknownSK}, 401, "invalid_api_key", ""},
		{"admin token as a secret key", req{Method: "GET", Path: "/api/customers", Key: ts.AdminToken}, 401, "invalid_api_key", ""},
		{"unknown publishable key", req{Method: "GET", Path: "/api/tiers?pk=pk_live_" + randHex(24)}, 401, "invalid_api_key", ""},
		{"no key on tiers", req{Method: "GET", Path: "/api/tiers"}, 401, "invalid_api_key", ""},

		{"publishable key creating a customer", req{Method: "POST", Path: "/api/customers", Key: p.PK, Body: map[string]any{"email": "pk@example.com"}}, 403, "forbidden", ""},
		{"publishable key listing customers", req{Method: "GET", Path: "/api/customers", Key: p.PK}, 403, "forbidden", ""},
		{"publishable key tracking", req{Method: "POST", Path: "/api/track", Key: p.PK, Body: track(id)}, 403, "forbidden", ""},
		{"publishable key on platform tiers", req{Method: "PUT", Path: "/api/platform/tiers", Key: p.PK, Body: tiers(map[string]any{"name": "free"})}, 403, "forbidden", ""},
		{"publishable key listing keys", req{Method: "GET", Path: "/api/platform/keys", Key: p.PK}, 403, "forbidden", ""},

		{"unknown customer", req{Method: "GET", Path: "/api/customers/cus_00000000000000000000000000", Key: p.SK}, 404, "not_found", ""},
		{"patch unknown customer", req{Method: "PATCH", Path: "/api/customers/cus_nope", Key: p.SK, Body: map[string]any{"firstName": "X"}}, 404, "not_found", ""},
		{"delete unknown customer", req{Method: "DELETE", Path: "/api/customers/cus_nope", Key: p.SK}, 404, "not_found", ""},
		{"track unknown customer", req{Method: "POST", Path: "/api/track", Key: p.SK, Body: track("cus_nope")}, 404, "not_found", ""},
		{"usage of unknown customer", req{Method: "GET", Path: "/api/usage?customerId=cus_nope", Key: p.SK}, 404, "not_found", ""},
		{"unknown route", req{Method: "GET", Path: "/api/nope", Key: p.SK}, 404, "not_found", ""},
		{"unknown method", req{Method: "PUT", Path: "/api/track", Key: p.SK, Body: track(id)}, 405, "method_not_allowed", ""},
		{"unknown key to revoke", req{Method: "DELETE", Path: "/api/platform/keys/key_nope", Key: p.SK}, 404, "not_found", ""},

		{"duplicate email", req{Method: "POST", Path: "/api/customers", Key: p.SK, Body: map[string]any{"email": "taken@example.com"}}, 409, "conflict", ""},
		{"duplicate email in another case", req{Method: "POST", Path: "/api/customers", Key: p.SK, Body: map[string]any{"email": "TAKEN@Example.COM"}}, 409, "conflict", ""},

		{"customer body over 1 MiB", req{Method: "POST", Path: "/api/customers", Key: p.SK, Body: huge}, 413, "body_too_large", ""},
		{"track body over 1 MiB", req{Method: "POST", Path: "/api/track", Key: p.SK, Body: hugeTrack}, 413, "body_too_large", ""},

		{"bad email", req{Method: "POST", Path: "/api/customers", Key: p.SK, Body: map[string]any{"email": "not-an-email"}}, 422, "validation_failed", "email"},
		{"missing email", req{Method: "POST", Path: "/api/customers", Key: p.SK, Body: map[string]any{"firstName": "A"}}, 422, "validation_failed", "email"},
		{"unknown plan", req{Method: "POST", Path: "/api/customers", Key: p.SK, Body: map[string]any{"email": "plan@example.com", "plan": "platinum"}}, 422, "validation_failed", "plan"},
		{"metadata over 50 keys", req{Method: "POST", Path: "/api/customers", Key: p.SK, Body: map[string]any{"email": "md@example.com", "metadata": meta51}}, 422, "validation_failed", "metadata"},
		{"quantity 0", req{Method: "POST", Path: "/api/track", Key: p.SK, Body: map[string]any{"customerId": id, "quantity": 0}}, 422, "validation_failed", "quantity"},
		{"negative quantity", req{Method: "POST", Path: "/api/track", Key: p.SK, Body: map[string]any{"customerId": id, "quantity": -3}}, 422, "validation_failed", "quantity"},
		{"missing customerId", req{Method: "POST", Path: "/api/track", Key: p.SK, Body: map[string]any{"quantity": 1}}, 422, "validation_failed", "customerId"},
		{"feature not a slug", req{Method: "POST", Path: "/api/track", Key: p.SK, Body: map[string]any{"customerId": id, "feature": "Big Files"}}, 422, "validation_failed", "feature"},
		{"check with quantity 0", req{Method: "POST", Path: "/api/check", Key: p.SK, Body: map[string]any{"customerId": id, "quantity": 0}}, 422, "validation_failed", "quantity"},
		{"no tiers", req{Method: "PUT", Path: "/api/platform/tiers", Key: p.SK, Body: tiers()}, 422, "validation_failed", "tiers"},
		{"tier name not a slug", req{Method: "PUT", Path: "/api/platform/tiers", Key: p.SK, Body: tiers(map[string]any{"name": "Free Tier"})}, 422, "validation_failed", "tiers[0].name"},
		{"duplicate tier names", req{Method: "PUT", Path: "/api/platform/tiers", Key: p.SK, Body: tiers(map[string]any{"name": "free"}, map[string]any{"name": "free"})}, 422, "validation_failed", "tiers[1].name"},
		{"tier limit below -1", req{Method: "PUT", Path: "/api/platform/tiers", Key: p.SK, Body: tiers(map[string]any{"name": "free", "limits": map[string]any{"requests": -2}})}, 422, "validation_failed", "tiers[0].limits.requests"},
		{"tier interval unknown", req{Method: "PUT", Path: "/api/platform/tiers", Key: p.SK, Body: tiers(map[string]any{"name": "free", "interval": "hour"})}, 422, "validation_failed", "tiers[0].interval"},
		{"tier currency not ISO", req{Method: "PUT", Path: "/api/platform/tiers", Key: p.SK, Body: tiers(map[string]any{"name": "free", "currency": "dollars"})}, 422, "validation_failed", "tiers[0].currency"},
		{"tier price negative", req{Method: "PUT", Path: "/api/platform/tiers", Key: p.SK, Body: tiers(map[string]any{"name": "free", "price": -1})}, 422, "validation_failed", "tiers[0].price"},
		{"tier limit and limits disagree", req{Method: "PUT", Path: "/api/platform/tiers", Key: p.SK, Body: tiers(map[string]any{"name": "free", "limit": 5, "limits": map[string]any{"requests": 6}})}, 422, "validation_failed", "tiers[0].limit"},
		{"removing a tier with customers", req{Method: "PUT", Path: "/api/platform/tiers", Key: p.SK, Body: tiers(map[string]any{"name": "pro"})}, 422, "validation_failed", "tiers"},
		{"list limit 0", req{Method: "GET", Path: "/api/customers?limit=0", Key: p.SK}, 422, "validation_failed", "limit"},
		{"list limit 101", req{Method: "GET", Path: "/api/customers?limit=101", Key: p.SK}, 422, "validation_failed", "limit"},
		{"list limit not a number", req{Method: "GET", Path: "/api/customers?limit=ten", Key: p.SK}, 422, "validation_failed", "limit"},
		{"usage without customer", req{Method: "GET", Path: "/api/usage", Key: p.SK}, 422, "validation_failed", "customerId"},
		{"grace period too long", req{Method: "POST", Path: "/api/platform/keys", Key: p.SK, Body: map[string]any{"gracePeriodHours": 721}}, 422, "validation_failed", "gracePeriodHours"},
		{"idempotency key too long", req{Method: "POST", Path: "/api/track", Key: p.SK, Body: track(id), Header: map[string]string{"Idempotency-Key": strings.Repeat("k", 256)}}, 422, "validation_failed", "Idempotency-Key"},
		{"platform without a name", req{Method: "POST", Path: "/admin/platforms", Key: ts.AdminToken, Body: map[string]any{"name": " "}}, 422, "validation_failed", "name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := ts.expect(t, tc.r, tc.status, tc.code)
			if str(res.Body, "message") == "" || str(res.Body, "error") == "" {
				t.Errorf("error body without error/message: %s", res.Raw)
			}
			if tc.field == "" {
				return
			}
			fields, _ := res.Body["fields"].([]any)
			var names []string
			for _, f := range fields {
				names = append(names, str(f.(map[string]any), "field"))
			}
			found := false
			for _, n := range names {
				found = found || n == tc.field
			}
			if !found {
				t.Errorf("fields = %v, want one named %q", names, tc.field)
			}
		})
	}

	t.Run("a failed request changes nothing", func(t *testing.T) {
		if got := ts.expect(t, req{Method: "GET", Path: "/api/customers", Key: p.SK}, 200, "").Raw; !bytes.Equal(got, listBefore) {
			t.Errorf("customer list changed:\nbefore %s\nafter  %s", listBefore, got)
		}
		if got := ts.expect(t, req{Method: "GET", Path: "/api/platform/tiers", Key: p.SK}, 200, "").Raw; !bytes.Equal(got, tiersBefore) {
			t.Errorf("tiers changed:\nbefore %s\nafter  %s", tiersBefore, got)
		}
		if got := ts.count(t, p.SK, id, "requests"); got != 1 {
			t.Errorf("count = %d, want 1", got)
		}
		res := ts.expect(t, req{Method: "GET", Path: "/api/platform/keys", Key: p.SK}, 200, "")
		if d, _ := res.Body["data"].([]any); len(d) != 1 {
			t.Errorf("%d live keys after a refused key create, want 1", len(d))
		}
	})
}

// TestRateLimited: a tier with rateLimitPerMinute 2 refuses the third call
// of a minute with 429 rate_limited and Retry-After.
func TestRateLimited(t *testing.T) {
	ts := startServer(t, nil)
	p := ts.createPlatform(t, "Rate")
	ts.putTiers(t, p.SK, map[string]any{"name": "free", "limit": 100, "rateLimitPerMinute": 2})
	type outcome struct {
		id       string
		calls    []*response // track, track, check, track, data
		metrics0 float64     // rate-limited tracks before
	}
	// The window is the wall-clock minute: judge a run that began and ended
	// in one minute.
	out := inOneMinute(t, func(n int) outcome {
		o := outcome{id: str(ts.createCustomer(t, p.SK, map[string]any{"email": fmt.Sprintf("r%d@example.com", n)}), "id")}
		o.metrics0 = ts.metric(t, `dream_track_decisions_total{call="track",outcome="rate_limited"}`)
		for _, path := range []string{"/api/track", "/api/track", "/api/check", "/api/track"} {
			o.calls = append(o.calls, ts.do(t, req{Method: "POST", Path: path, Key: p.SK, Body: track(o.id)}))
		}
		o.calls = append(o.calls, ts.do(t, req{Method: "POST", Path: "/api/data", Key: p.SK, Header: map[string]string{"X-User-Id": o.id}}))
		return o
	})
	// /api/check counts nothing, rate limits included.
	for i, want := range []struct {
		status int
		code   string
	}{{200, ""}, {200, ""}, {200, ""}, {429, "rate_limited"}, {429, "rate_limited"}} {
		if res := out.calls[i]; res.Status != want.status || str(res.Body, "code") != want.code {
			t.Errorf("call %d: %d %s, want %d %s", i+1, res.Status, truncate(res.Raw), want.status, want.code)
		}
	}
	ra := out.calls[3].Header.Get("Retry-After")
	var secs int
	if _, err := fmt.Sscanf(ra, "%d", &secs); err != nil || secs < 1 || secs > 60 {
		t.Errorf("Retry-After = %q, want 1..60 seconds", ra)
	}
	if got := ts.count(t, p.SK, out.id, "requests"); got != 2 {
		t.Errorf("count = %d, want 2 (rate-limited calls count nothing)", got)
	}
	if got := ts.metric(t, `dream_track_decisions_total{call="track",outcome="rate_limited"}`) - out.metrics0; got != 2 {
		t.Errorf("/metrics counted %v rate-limited tracks, want 2", got)
	}
	// Another customer has a window of its own.
	other := str(ts.createCustomer(t, p.SK, map[string]any{"email": "r2@example.com"}), "id")
	ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: track(other)}, 200, "")
}

// inOneMinute runs attempt until a run of it begins and ends within one
// wall-clock minute (the window of per-minute rate limits), so that no run
// has to beat the minute's end; at most three times. attempt gets the
// attempt's number and returns what it saw, for the caller to judge: it
// must not fail the test for what the window decides.
func inOneMinute[T any](t *testing.T, attempt func(n int) T) T {
	t.Helper()
	for n := 1; ; n++ {
		start := time.Now().Truncate(time.Minute)
		out := attempt(n)
		if time.Now().Truncate(time.Minute).Equal(start) {
			return out
		}
		if n == 3 {
			t.Fatal("three attempts in a row straddled the end of a minute")
		}
	}
}

// metric returns the value of one sample of /metrics (its name and labels
// as the text format writes them), 0 when absent.
func (ts *testServer) metric(t *testing.T, sample string) float64 {
	t.Helper()
	res := ts.expect(t, req{Method: "GET", Path: "/metrics"}, 200, "")
	for _, line := range strings.Split(string(res.Raw), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("/metrics: %q: %v", line, err)
			}
			return f
		}
	}
	return 0
}

// --- tenants and keys

func TestTenantIsolation(t *testing.T) {
	ts := startServer(t, nil)
	a := ts.createPlatform(t, "Alpha")
	b := ts.createPlatform(t, "Beta")
	ts.putTiers(t, b.SK, map[string]any{"name": "starter", "limit": 7})
	ac := str(ts.createCustomer(t, a.SK, map[string]any{"email": "same@example.com"}), "id")
	ts.expect(t, req{Method: "POST", Path: "/api/track", Key: a.SK, Body: track(ac)}, 200, "")
	// The same email is free in another platform and in the other mode.
	bc := str(ts.createCustomer(t, b.SK, map[string]any{"email": "same@example.com"}), "id")
	ts.createCustomer(t, a.TestSK, map[string]any{"email": "same@example.com"})

	notFound := []struct {
		name string
		key  string
	}{{"other platform's secret key", b.SK}, {"test key on a live customer", a.TestSK}}
	for _, k := range notFound {
		t.Run(k.name, func(t *testing.T) {
			for _, r := range []req{
				{Method: "GET", Path: "/api/customers/" + ac},
				{Method: "PATCH", Path: "/api/customers/" + ac, Body: map[string]any{"firstName": "Mallory"}},
				{Method: "POST", Path: "/api/track", Body: track(ac)},
				{Method: "POST", Path: "/api/check", Body: track(ac)},
				{Method: "POST", Path: "/api/data", Header: map[string]string{"X-User-Id": ac}},
				{Method: "GET", Path: "/api/usage?customerId=" + ac},
				{Method: "DELETE", Path: "/api/customers/" + ac},
			} {
				r.Key = k.key
				ts.expect(t, r, 404, "not_found")
			}
			res := ts.expect(t, req{Method: "GET", Path: "/api/customers?email=same@example.com", Key: k.key}, 200, "")
			if d, _ := res.Body["data"].([]any); len(d) == 1 && str(d[0].(map[string]any), "id") == ac {
				t.Errorf("email lookup found the other tenant's customer")
			}
		})
	}
	// Nothing the other tenants tried had an effect.
	res := ts.expect(t, req{Method: "GET", Path: "/api/customers/" + ac, Key: a.SK}, 200, "")
	if str(res.Body, "customer", "firstName") == "Mallory" {
		t.Errorf("another tenant's PATCH changed the customer")
	}
	if got := ts.count(t, a.SK, ac, "requests"); got != 1 {
		t.Errorf("count = %d, want 1", got)
	}
	if res := ts.expect(t, req{Method: "GET", Path: "/api/customers", Key: b.SK}, 200, ""); len(res.Body["data"].([]any)) != 1 {
		t.Errorf("platform B lists %d customers, want 1 (its own)", len(res.Body["data"].([]any)))
	}
	ts.expect(t, req{Method: "GET", Path: "/api/customers/" + bc, Key: a.SK}, 404, "not_found")

	t.Run("publishable key on track is forbidden", func(t *testing.T) {
		ts.expect(t, req{Method: "POST", Path: "/api/track", Key: a.PK, Body: track(ac)}, 403, "forbidden")
	})
	t.Run("tiers by publishable key", func(t *testing.T) {
		for _, r := range []req{
			{Method: "GET", Path: "/api/tiers?pk=" + b.PK},
			{Method: "GET", Path: "/api/tiers", Key: b.PK},
			{Method: "GET", Path: "/api/tiers", Key: b.SK},
		} {
			res := ts.expect(t, r, 200, "")
			tiers, _ := res.Body["tiers"].([]any)
			if len(tiers) != 1 || str(tiers[0].(map[string]any), "name") != "starter" {
				t.Errorf("%s (key %v): tiers = %s, want B's single starter tier", r.Path, r.Key != "", res.Raw)
			}
		}
		res := ts.expect(t, req{Method: "GET", Path: "/api/tiers?pk=" + a.TestPK}, 200, "")
		if tiers, _ := res.Body["tiers"].([]any); len(tiers) != 2 {
			t.Errorf("A's test pk: tiers = %s, want A's two default tiers", res.Raw)
		}
	})
}

func TestKeyRotation(t *testing.T) {
	ts := startServer(t, nil)
	p := ts.createPlatform(t, "Rotate")
	id := str(ts.createCustomer(t, p.SK, map[string]any{"email": "k@example.com"}), "id")
	for i := 0; i < 3; i++ {
		ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: track(id)}, 200, "")
	}
	keys := ts.expect(t, req{Method: "GET", Path: "/api/platform/keys", Key: p.SK}, 200, "")
	data, _ := keys.Body["data"].([]any)
	if len(data) != 1 {
		t.Fatalf("live key records = %d, want 1: %s", len(data), keys.Raw)
	}
	first := data[0].(map[string]any)
	if bytes.Contains(keys.Raw, []byte(p.SK)) {
		t.Fatalf("the key list shows a secret: %s", keys.Raw)
	}
	if str(first, "mode") != "live" || str(first, "publishableKey") != p.PK {
		t.Errorf("key record = %v", first)
	}

	// Rotate with the default grace: both secrets work.
	rot := ts.expect(t, req{Method: "POST", Path: "/api/platform/keys", Key: p.SK, Body: map[string]any{"rotate": str(first, "id")}}, 201, "")
	sk2 := str(rot.Body, "secretKey")
	if !strings.HasPrefix(sk2, "sk_live_") || sk2 == p.SK {
		t.Fatalf("rotated secret = %q", sk2)
	}
	if str(rot.Body, "publishableKey") != p.PK {
		t.Errorf("rotation changed the publishable key: %q, want %q", str(rot.Body, "publishableKey"), p.PK)
	}
	res := ts.expect(t, req{Method: "POST", Path: "/api/track", Key: sk2, Body: track(id)}, 200, "")
	if got := num(res.Body, "usage", "count"); got != 4 {
		t.Errorf("track with the new key: count = %d, want 4 (rotation keeps usage)", got)
	}
	res = ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: track(id)}, 200, "")
	if got := num(res.Body, "usage", "count"); got != 5 {
		t.Errorf("track with the old key in its grace period: count = %d, want 5", got)
	}
	ts.expect(t, req{Method: "GET", Path: "/api/customers/" + id, Key: sk2}, 200, "")
	keys = ts.expect(t, req{Method: "GET", Path: "/api/platform/keys", Key: sk2}, 200, "")
	for _, k := range keys.Body["data"].([]any) {
		k := k.(map[string]any)
		if str(k, "id") == str(first, "id") && k["expiresAt"] == nil {
			t.Errorf("the rotated key has no expiresAt: %v", k)
		}
	}

	// Rotate the new key with no grace: its secret stops at once.
	rot3 := ts.expect(t, req{Method: "POST", Path: "/api/platform/keys", Key: sk2,
		Body: map[string]any{"rotate": str(rot.Body, "key", "id"), "gracePeriodHours": 0}}, 201, "")
	sk3 := str(rot3.Body, "secretKey")
	ts.expect(t, req{Method: "GET", Path: "/api/customers/" + id, Key: sk2}, 401, "invalid_api_key")
	res = ts.expect(t, req{Method: "POST", Path: "/api/track", Key: sk3, Body: track(id)}, 200, "")
	if got := num(res.Body, "usage", "count"); got != 6 {
		t.Errorf("track with the third key: count = %d, want 6", got)
	}
	ts.expect(t, req{Method: "GET", Path: "/api/tiers?pk=" + p.PK}, 200, "")

	// A new pair, revoked: its secret gets 401 at once.
	np := ts.expect(t, req{Method: "POST", Path: "/api/platform/keys", Key: sk3}, 201, "")
	sk4, pk4 := str(np.Body, "secretKey"), str(np.Body, "publishableKey")
	if pk4 == p.PK {
		t.Errorf("a new (not rotated) pair reuses the publishable key")
	}
	ts.expect(t, req{Method: "GET", Path: "/api/customers", Key: sk4}, 200, "")
	rev := ts.expect(t, req{Method: "DELETE", Path: "/api/platform/keys/" + str(np.Body, "key", "id"), Key: sk3}, 200, "")
	if get(rev.Body, "key", "revokedAt") == nil {
		t.Errorf("revoked key has no revokedAt: %s", rev.Raw)
	}
	ts.expect(t, req{Method: "GET", Path: "/api/customers", Key: sk4}, 401, "invalid_api_key")
	ts.expect(t, req{Method: "POST", Path: "/api/track", Key: sk4, Body: track(id)}, 401, "invalid_api_key")
	ts.expect(t, req{Method: "GET", Path: "/api/tiers?pk=" + pk4}, 401, "invalid_api_key")
	// A revoked key cannot be rotated; another platform's or mode's keys are not found.
	ts.expect(t, req{Method: "POST", Path: "/api/platform/keys", Key: sk3, Body: map[string]any{"rotate": str(np.Body, "key", "id")}}, 422, "validation_failed")
	other := ts.createPlatform(t, "Other")
	ts.expect(t, req{Method: "DELETE", Path: "/api/platform/keys/" + str(rot3.Body, "key", "id"), Key: other.SK}, 404, "not_found")
	ts.expect(t, req{Method: "DELETE", Path: "/api/platform/keys/" + str(rot3.Body, "key", "id"), Key: p.TestSK}, 404, "not_found")
	ts.expect(t, req{Method: "POST", Path: "/api/platform/keys", Key: sk3, Body: map[string]any{"rotate": "key_nope"}}, 404, "not_found")
	// A test key makes test keys, listed apart from the live ones.
	tk := ts.expect(t, req{Method: "POST", Path: "/api/platform/keys", Key: p.TestSK}, 201, "")
	if !strings.HasPrefix(str(tk.Body, "secretKey"), "sk_test_") || !strings.HasPrefix(str(tk.Body, "publishableKey"), "pk_test_") || str(tk.Body, "key", "mode") != "test" {
		t.Errorf("key made with a test key: %s", tk.Raw)
	}
	live := ts.expect(t, req{Method: "GET", Path: "/api/platform/keys", Key: sk3}, 200, "")
	for _, k := range live.Body["data"].([]any) {
		if m := str(k.(map[string]any), "mode"); m != "live" {
			t.Errorf("the live key list shows a %s key", m)
		}
	}
	if n := len(live.Body["data"].([]any)); n != 4 {
		t.Errorf("%d live key records, want 4 (first, two rotations, one revoked)", n)
	}
	// The platform's data survived it all.
	if got := ts.count(t, sk3, id, "requests"); got != 6 {
		t.Errorf("count = %d, want 6", got)
	}
}

// --- idempotency, check, customers

func TestIdempotency(t *testing.T) {
	ts := startServer(t, nil)
	p := ts.createPlatform(t, "Idem")
	ts.putTiers(t, p.SK, map[string]any{"name": "free", "limit": 3})
	id := str(ts.createCustomer(t, p.SK, map[string]any{"email": "i@example.com"}), "id")
	idem := func(k string) map[string]string { return map[string]string{"Idempotency-Key": k} }

	t.Run("track", func(t *testing.T) {
		r := req{Method: "POST", Path: "/api/track", Key: p.SK, Body: map[string]any{"customerId": id, "quantity": 2}, Header: idem("track-1")}
		first := ts.expect(t, r, 200, "")
		again := ts.expect(t, r, 200, "")
		if !bytes.Equal(first.Raw, again.Raw) {
			t.Errorf("replay differs:\nfirst  %s\nreplay %s", first.Raw, again.Raw)
		}
		if got := ts.count(t, p.SK, id, "requests"); got != 2 {
			t.Errorf("count = %d, want 2 (counted once)", got)
		}
		r.Body = map[string]any{"customerId": id, "quantity": 1}
		ts.expect(t, r, 409, "idempotency_conflict")
		if got := ts.count(t, p.SK, id, "requests"); got != 2 {
			t.Errorf("count after the conflict = %d, want 2", got)
		}
	})
	t.Run("customer create", func(t *testing.T) {
		r := req{Method: "POST", Path: "/api/customers", Key: p.SK, Body: map[string]any{"email": "once@example.com"}, Header: idem("cus-1")}
		first := ts.expect(t, r, 201, "")
		again := ts.expect(t, r, 201, "")
		if !bytes.Equal(first.Raw, again.Raw) {
			t.Errorf("replay differs:\nfirst  %s\nreplay %s", first.Raw, again.Raw)
		}
		list := ts.expect(t, req{Method: "GET", Path: "/api/customers?email=once@example.com", Key: p.SK}, 200, "")
		if d, _ := list.Body["data"].([]any); len(d) != 1 {
			t.Errorf("customers with the email: %d, want 1", len(d))
		}
		r.Body = map[string]any{"email": "twice@example.com"}
		ts.expect(t, r, 409, "idempotency_conflict")
		list = ts.expect(t, req{Method: "GET", Path: "/api/customers?email=twice@example.com", Key: p.SK}, 200, "")
		if d, _ := list.Body["data"].([]any); len(d) != 0 {
			t.Errorf("the conflicting request created a customer")
		}
	})
	t.Run("keys are per tenant", func(t *testing.T) {
		// The same key in the test mode is another key.
		tid := str(ts.createCustomer(t, p.TestSK, map[string]any{"email": "i@example.com"}), "id")
		ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.TestSK, Body: map[string]any{"customerId": tid, "quantity": 2}, Header: idem("track-1")}, 200, "")
		if got := ts.count(t, p.TestSK, tid, "requests"); got != 2 {
			t.Errorf("test-mode count = %d, want 2", got)
		}
	})
	t.Run("replayed denial", func(t *testing.T) {
		// count is 2 of 3: quantity 2 is refused, and so is its replay.
		r := req{Method: "POST", Path: "/api/track", Key: p.SK, Body: map[string]any{"customerId": id, "quantity": 2}, Header: idem("deny-1")}
		first := ts.expect(t, r, 429, "tier_limit_reached")
		if first.Header.Get("Idempotent-Replayed") == "true" {
			t.Errorf("the first response is marked as a replay")
		}
		again := ts.expect(t, r, 429, "tier_limit_reached")
		if !bytes.Equal(first.Raw, again.Raw) {
			t.Errorf("replay differs:\nfirst  %s\nreplay %s", first.Raw, again.Raw)
		}
		// openapi.yaml: X-Request-Id is "the id of this request; also in
		// every error body as requestId". A replay carries the first
		// request's body, so its X-Request-Id must be that id too.
		if rid := again.Header.Get("X-Request-Id"); str(again.Body, "requestId") != rid {
			t.Errorf("replayed error: body requestId %q, X-Request-Id %q: want them equal", str(again.Body, "requestId"), rid)
		}
		if got := ts.count(t, p.SK, id, "requests"); got != 2 {
			t.Errorf("count = %d, want 2", got)
		}
	})
}

func TestCheckCountsNothing(t *testing.T) {
	ts := startServer(t, nil)
	p := ts.createPlatform(t, "Check")
	ts.putTiers(t, p.SK, map[string]any{"name": "free", "limit": 2})
	id := str(ts.createCustomer(t, p.SK, map[string]any{"email": "c@example.com"}), "id")
	for i := 0; i < 5; i++ {
		res := ts.expect(t, req{Method: "POST", Path: "/api/check", Key: p.SK, Body: track(id)}, 200, "")
		if res.Body["allowed"] != true || num(res.Body, "usage", "count") != 0 {
			t.Fatalf("check %d: %s", i, res.Raw)
		}
	}
	if got := ts.count(t, p.SK, id, "requests"); got != 0 {
		t.Errorf("count after checks = %d, want 0", got)
	}
	ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: map[string]any{"customerId": id, "quantity": 2}}, 200, "")
	res := ts.expect(t, req{Method: "POST", Path: "/api/check", Key: p.SK, Body: track(id)}, 200, "")
	if res.Body["allowed"] != false || num(res.Body, "usage", "remaining") != 0 {
		t.Errorf("check at the limit: %s, want 200 allowed false remaining 0", res.Raw)
	}
	if got := ts.count(t, p.SK, id, "requests"); got != 2 {
		t.Errorf("count = %d, want 2", got)
	}
}

func TestCustomersList(t *testing.T) {
	ts := startServer(t, nil)
	p := ts.createPlatform(t, "List")
	want := map[string]bool{}
	for i := 0; i < 5; i++ {
		want[str(ts.createCustomer(t, p.SK, map[string]any{"email": fmt.Sprintf("user%d@example.com", i)}), "id")] = true
	}
	var ids []string
	after := ""
	for page := 0; page < 10; page++ {
		path := "/api/customers?limit=2"
		if after != "" {
			path += "&startingAfter=" + after
		}
		res := ts.expect(t, req{Method: "GET", Path: path, Key: p.SK}, 200, "")
		data, _ := res.Body["data"].([]any)
		more := res.Body["hasMore"] == true
		if len(data) > 2 {
			t.Fatalf("page of %d with limit 2", len(data))
		}
		for _, c := range data {
			ids = append(ids, str(c.(map[string]any), "id"))
		}
		if wantMore := len(ids) < 5; more != wantMore {
			t.Errorf("page %d: hasMore = %v after %d of 5", page, more, len(ids))
		}
		if !more {
			break
		}
		after = ids[len(ids)-1]
	}
	if len(ids) != 5 {
		t.Fatalf("paged through %d customers, want 5: %v", len(ids), ids)
	}
	for i, id := range ids {
		if !want[id] {
			t.Errorf("unexpected or repeated id %s", id)
		}
		delete(want, id)
		if i > 0 && ids[i-1] >= id {
			t.Errorf("ids out of order: %s before %s", ids[i-1], id)
		}
	}
	res := ts.expect(t, req{Method: "GET", Path: "/api/customers", Key: p.SK}, 200, "")
	if d := res.Body["data"].([]any); len(d) != 5 || res.Body["hasMore"] != false {
		t.Errorf("default page: %d customers, hasMore %v; want 5, false", len(d), res.Body["hasMore"])
	}

	for _, tc := range []struct {
		email string
		want  int
	}{{"user3@example.com", 1}, {"USER3@Example.com", 1}, {"nobody@example.com", 0}, {"not-an-email", 0}} {
		t.Run("email="+tc.email, func(t *testing.T) {
			res := ts.expect(t, req{Method: "GET", Path: "/api/customers?email=" + url.QueryEscape(tc.email), Key: p.SK}, 200, "")
			d, _ := res.Body["data"].([]any)
			if len(d) != tc.want {
				t.Fatalf("%d customers, want %d", len(d), tc.want)
			}
			if tc.want == 1 && str(d[0].(map[string]any), "email") != "user3@example.com" {
				t.Errorf("found %v", d[0])
			}
		})
	}
}

func TestCustomerUpdate(t *testing.T) {
	ts := startServer(t, nil)
	p := ts.createPlatform(t, "Update")
	c := ts.createCustomer(t, p.SK, map[string]any{"email": "u@example.com", "metadata": map[string]any{"team": "core", "seats": 3}})
	id := str(c, "id")
	ts.createCustomer(t, p.SK, map[string]any{"email": "other@example.com"})
	patch := func(body any) req { return req{Method: "PATCH", Path: "/api/customers/" + id, Key: p.SK, Body: body} }

	res := ts.expect(t, patch(map[string]any{"plan": "pro"}), 200, "")
	if str(res.Body, "customer", "plan") != "pro" || res.Body["success"] != true {
		t.Fatalf("plan change: %s", res.Raw)
	}
	tr := ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: track(id)}, 200, "")
	if num(tr.Body, "usage", "limit") != 10000 || str(tr.Body, "usage", "plan") != "pro" {
		t.Errorf("after the plan change, track says %s; want pro's limit 10000", tr.Raw)
	}

	before := ts.expect(t, req{Method: "GET", Path: "/api/customers/" + id, Key: p.SK}, 200, "")
	ts.expect(t, patch(map[string]any{"plan": "platinum"}), 422, "validation_failed")
	ts.expect(t, patch(map[string]any{"plan": "platinum", "firstName": "Changed"}), 422, "validation_failed")
	ts.expect(t, patch(map[string]any{"email": "OTHER@example.com"}), 409, "conflict")
	ts.expect(t, patch(map[string]any{"email": "nope"}), 422, "validation_failed")
	ts.expect(t, patch(`{"plan": 5}`), 400, "invalid_json")
	after := ts.expect(t, req{Method: "GET", Path: "/api/customers/" + id, Key: p.SK}, 200, "")
	if !bytes.Equal(before.Raw, after.Raw) {
		t.Errorf("refused PATCHes changed the customer:\nbefore %s\nafter  %s", before.Raw, after.Raw)
	}

	res = ts.expect(t, patch(map[string]any{"firstName": "Ada", "metadata": map[string]any{"team": nil, "seats": 5, "beta": true}}), 200, "")
	md, _ := get(res.Body, "customer", "metadata").(map[string]any)
	if _, ok := md["team"]; ok || md["seats"] != float64(5) || md["beta"] != true || len(md) != 2 {
		t.Errorf("metadata after merge = %v, want {seats:5, beta:true}", md)
	}
	if str(res.Body, "customer", "firstName") != "Ada" || str(res.Body, "customer", "email") != "u@example.com" {
		t.Errorf("profile after PATCH: %s", res.Raw)
	}
	got := ts.expect(t, req{Method: "GET", Path: "/api/customers/" + id, Key: p.SK}, 200, "")
	if md2, _ := get(got.Body, "customer", "metadata").(map[string]any); len(md2) != 2 || md2["beta"] != true {
		t.Errorf("stored metadata = %v", md2)
	}

	res = ts.expect(t, patch(map[string]any{"email": "New@Example.com"}), 200, "")
	if str(res.Body, "customer", "email") != "new@example.com" {
		t.Errorf("email = %q, want new@example.com", str(res.Body, "customer", "email"))
	}
	// The old email is free again; the new one is taken.
	ts.createCustomer(t, p.SK, map[string]any{"email": "u@example.com"})
	ts.expect(t, req{Method: "POST", Path: "/api/customers", Key: p.SK, Body: map[string]any{"email": "new@example.com"}}, 409, "conflict")
}

func TestCustomerDelete(t *testing.T) {
	ts := startServer(t, nil)
	p := ts.createPlatform(t, "Delete")
	id := str(ts.createCustomer(t, p.SK, map[string]any{"email": "d@example.com"}), "id")
	ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: track(id)}, 200, "")
	res := ts.expect(t, req{Method: "DELETE", Path: "/api/customers/" + id, Key: p.SK}, 200, "")
	if res.Body["deleted"] != true || str(res.Body, "id") != id {
		t.Errorf("delete answered %s", res.Raw)
	}
	ts.expect(t, req{Method: "GET", Path: "/api/customers/" + id, Key: p.SK}, 404, "not_found")
	ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: track(id)}, 404, "not_found")
	ts.expect(t, req{Method: "POST", Path: "/api/data", Key: p.SK, Header: map[string]string{"X-User-Id": id}}, 404, "not_found")
	ts.expect(t, req{Method: "GET", Path: "/api/usage?customerId=" + id, Key: p.SK}, 404, "not_found")
	ts.expect(t, req{Method: "DELETE", Path: "/api/customers/" + id, Key: p.SK}, 404, "not_found")
	if res := ts.expect(t, req{Method: "GET", Path: "/api/customers", Key: p.SK}, 200, ""); len(res.Body["data"].([]any)) != 0 {
		t.Errorf("list after delete: %s", res.Raw)
	}
	// The email can be used again, by a new customer with a new id.
	if nid := str(ts.createCustomer(t, p.SK, map[string]any{"email": "d@example.com"}), "id"); nid == id {
		t.Errorf("the new customer has the deleted one's id")
	}
}

// --- metering

func TestMultiFeatureTiers(t *testing.T) {
	ts := startServer(t, nil)
	p := ts.createPlatform(t, "Features")
	res := ts.putTiers(t, p.SK,
		map[string]any{"name": "free", "limits": map[string]any{"requests": 10, "exports": -1}, "features": map[string]any{"sso": false}},
		map[string]any{"name": "pro", "displayName": "Pro", "price": 1500, "currency": "USD", "interval": "month", "limit": 100,
			"limits": map[string]any{"exports": 5}, "features": map[string]any{"sso": true}, "rateLimitPerMinute": 600},
	)
	tiers, _ := res.Body["tiers"].([]any)
	if len(tiers) != 2 || str(tiers[0].(map[string]any), "name") != "free" || str(tiers[1].(map[string]any), "name") != "pro" {
		t.Fatalf("tiers out of order: %s", res.Raw)
	}
	pro := tiers[1].(map[string]any)
	if num(pro, "limits", "requests") != 100 || num(pro, "limits", "exports") != 5 || str(pro, "currency") != "usd" || get(pro, "features", "sso") != true {
		t.Errorf("pro tier = %v", pro)
	}
	if free := tiers[0].(map[string]any); str(free, "displayName") == "" || str(free, "interval") != "month" || free["priceId"] != nil {
		t.Errorf("free tier defaults = %v", free)
	}
	got := ts.expect(t, req{Method: "GET", Path: "/api/platform/tiers", Key: p.SK}, 200, "")
	if !bytes.Equal(got.Raw, res.Raw) {
		t.Errorf("GET tiers differs from the PUT answer:\nput %s\nget %s", res.Raw, got.Raw)
	}

	id := str(ts.createCustomer(t, p.SK, map[string]any{"email": "f@example.com"}), "id")
	feature := func(f string, q int) req {
		return req{Method: "POST", Path: "/api/track", Key: p.SK, Body: map[string]any{"customerId": id, "feature": f, "quantity": q}}
	}
	for i := int64(1); i <= 3; i++ {
		res := ts.expect(t, feature("exports", 1000), 200, "")
		if c, l, r := num(res.Body, "usage", "count"), num(res.Body, "usage", "limit"), num(res.Body, "usage", "remaining"); c != 1000*i || l != -1 || r != -1 {
			t.Errorf("unlimited exports: count/limit/remaining = %d/%d/%d, want %d/-1/-1", c, l, r, 1000*i)
		}
	}
	// A feature no tier meters or lists is a mistake, not a denial (API.md v1.1).
	ts.expect(t, feature("uploads", 1), 422, "unknown_feature")
	// One that a tier lists but this plan does not meter is its limit of 0.
	res = ts.expect(t, feature("sso", 1), 429, "tier_limit_reached")
	if num(res.Body, "usage", "limit") != 0 || num(res.Body, "usage", "count") != 0 || str(res.Body, "usage", "feature") != "sso" {
		t.Errorf("unmetered feature: %s", res.Raw)
	}
	// Quantities count against the limit as a whole.
	ts.expect(t, feature("requests", 4), 200, "")
	ts.expect(t, feature("requests", 4), 200, "")
	res = ts.expect(t, feature("requests", 4), 429, "tier_limit_reached")
	if num(res.Body, "usage", "count") != 8 || num(res.Body, "usage", "remaining") != 2 {
		t.Errorf("refused quantity 4 at 8/10: %s", res.Raw)
	}
	res = ts.expect(t, feature("requests", 2), 200, "")
	if num(res.Body, "usage", "count") != 10 || num(res.Body, "usage", "remaining") != 0 {
		t.Errorf("quantity 2 at 8/10: %s", res.Raw)
	}
	ts.expect(t, feature("requests", 1), 429, "tier_limit_reached")

	u := ts.expect(t, req{Method: "GET", Path: "/api/usage", Key: p.SK, Header: map[string]string{"X-User-Id": id}}, 200, "")
	list, _ := u.Body["usage"].([]any)
	if len(list) != 2 || str(u.Body, "plan") != "free" || str(u.Body, "customerId") != id {
		t.Fatalf("usage report = %s, want exports and requests", u.Raw)
	}
	byFeature := map[string]map[string]any{}
	for _, x := range list {
		byFeature[str(x.(map[string]any), "feature")] = x.(map[string]any)
	}
	if num(byFeature["exports"], "count") != 3000 || num(byFeature["exports"], "limit") != -1 || num(byFeature["requests"], "count") != 10 {
		t.Errorf("usage report = %s", u.Raw)
	}
}

func TestPeriods(t *testing.T) {
	ts := startServer(t, nil)
	p := ts.createPlatform(t, "Periods")
	var tiers []map[string]any
	for _, iv := range []string{"day", "week", "month", "year"} {
		tiers = append(tiers, map[string]any{"name": iv, "interval": iv, "limit": 10})
	}
	ts.putTiers(t, p.SK, tiers...)
	calendar := func(interval string, now time.Time) (time.Time, time.Time) {
		y, m, d := now.UTC().Date()
		day := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
		switch interval {
		case "day":
			return day, day.AddDate(0, 0, 1)
		case "week":
			mon := day.AddDate(0, 0, -((int(day.Weekday()) + 6) % 7))
			return mon, mon.AddDate(0, 0, 7)
		case "year":
			return time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(y+1, 1, 1, 0, 0, 0, 0, time.UTC)
		}
		return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC), time.Date(y, m+1, 1, 0, 0, 0, 0, time.UTC)
	}
	for _, iv := range []string{"day", "week", "month", "year"} {
		t.Run(iv, func(t *testing.T) {
			id := str(ts.createCustomer(t, p.SK, map[string]any{"email": iv + "@example.com", "plan": iv}), "id")
			before := time.Now()
			res := ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: track(id)}, 200, "")
			after := time.Now()
			gotStart, err1 := time.Parse(time.RFC3339, str(res.Body, "usage", "periodStart"))
			gotEnd, err2 := time.Parse(time.RFC3339, str(res.Body, "usage", "periodEnd"))
			if err1 != nil || err2 != nil {
				t.Fatalf("period is not RFC 3339: %s", res.Raw)
			}
			if !strings.HasSuffix(str(res.Body, "usage", "periodStart"), "Z") {
				t.Errorf("periodStart %q is not UTC", str(res.Body, "usage", "periodStart"))
			}
			ok := false
			for _, now := range []time.Time{before, after} {
				s, e := calendar(iv, now)
				ok = ok || (gotStart.Equal(s) && gotEnd.Equal(e))
			}
			if !ok {
				s, e := calendar(iv, before)
				t.Errorf("period = [%s, %s), want [%s, %s)", gotStart, gotEnd, s, e)
			}
			u := ts.usage(t, p.SK, id, "requests")
			if str(u, "periodStart") != str(res.Body, "usage", "periodStart") || str(u, "periodEnd") != str(res.Body, "usage", "periodEnd") {
				t.Errorf("GET /api/usage period %v differs from track's %v", u, res.Body["usage"])
			}
		})
	}
}

// --- system and admin

func TestSystemEndpoints(t *testing.T) {
	ts := startServer(t, nil)
	res := ts.expect(t, req{Method: "GET", Path: "/health"}, 200, "")
	if str(res.Body, "status") != "ok" || str(res.Body, "version") == "" {
		t.Errorf("/health = %s", res.Raw)
	}

	p := ts.createPlatform(t, "System")
	ts.putTiers(t, p.SK, map[string]any{"name": "free", "limit": 1})
	id := str(ts.createCustomer(t, p.SK, map[string]any{"email": "s@example.com"}), "id")
	ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: track(id)}, 200, "")
	ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: track(id)}, 429, "tier_limit_reached")
	res = ts.expect(t, req{Method: "GET", Path: "/metrics"}, 200, "")
	body := string(res.Raw)
	for _, want := range []string{
		`dream_track_decisions_total{call="track",outcome="allowed"} 1`,
		`dream_track_decisions_total{call="track",outcome="denied"} 1`,
		`dream_http_requests_total{method="POST",route="/api/track",status="200"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	res = ts.expect(t, req{Method: "GET", Path: "/openapi.json"}, 200, "")
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(res.Raw, &doc); err != nil {
		t.Fatalf("/openapi.json is not JSON: %v", err)
	}
	for _, path := range []string{"/api/track", "/api/customers", "/api/customers/{id}", "/admin/platforms"} {
		if doc.Paths[path] == nil {
			t.Errorf("/openapi.json has no path %s", path)
		}
	}
	if doc.OpenAPI == "" {
		t.Errorf("/openapi.json has no openapi version")
	}
}

func TestAdmin(t *testing.T) {
	ts := startServer(t, map[string]string{"DREAM_ADMIN_TOKEN": "dat_e2e_admin"})
	if ts.AdminToken != "dat_e2e_admin" {
		t.Fatalf("admin token %q", ts.AdminToken)
	}
	a := ts.createPlatform(t, "Admin A")
	b := ts.createPlatform(t, "Admin B")
	for _, tc := range []struct {
		name string
		key  string
	}{{"no token", ""}, {"wrong token", "dat_e2e_wrong"}, {"a secret key", a.SK}, {"a publishable key", a.PK}} {
		t.Run(tc.name, func(t *testing.T) {
			ts.expect(t, req{Method: "GET", Path: "/admin/platforms", Key: tc.key}, 401, "invalid_api_key")
			ts.expect(t, req{Method: "POST", Path: "/admin/platforms", Key: tc.key, Body: map[string]any{"name": "Sneaky"}}, 401, "invalid_api_key")
			ts.expect(t, req{Method: "POST", Path: "/admin/backup", Key: tc.key, Body: map[string]any{"dir": t.TempDir() + "/bk"}}, 401, "invalid_api_key")
		})
	}
	res := ts.expect(t, req{Method: "GET", Path: "/admin/platforms", Key: ts.AdminToken}, 200, "")
	data, _ := res.Body["data"].([]any)
	ids := map[string]string{}
	for _, d := range data {
		ids[str(d.(map[string]any), "id")] = str(d.(map[string]any), "name")
	}
	if len(data) != 2 || ids[a.ID] != "Admin A" || ids[b.ID] != "Admin B" || res.Body["hasMore"] != false {
		t.Errorf("platforms = %s, want A and B only (the failed creates made none)", res.Raw)
	}
	if bytes.Contains(res.Raw, []byte("sk_live_")) {
		t.Errorf("the platform list shows secrets")
	}
	res = ts.expect(t, req{Method: "GET", Path: "/admin/platforms?limit=1", Key: ts.AdminToken}, 200, "")
	if d := res.Body["data"].([]any); len(d) != 1 || res.Body["hasMore"] != true {
		t.Errorf("limit=1: %s, want one platform and hasMore", res.Raw)
	}
	// A new platform starts with the default tiers.
	tiers := ts.expect(t, req{Method: "GET", Path: "/api/tiers?pk=" + a.PK}, 200, "")
	tl, _ := tiers.Body["tiers"].([]any)
	if len(tl) != 2 {
		t.Fatalf("default tiers = %s", tiers.Raw)
	}
	free, pro := tl[0].(map[string]any), tl[1].(map[string]any)
	if str(free, "name") != "free" || num(free, "limits", "requests") != 100 || num(free, "price") != 0 ||
		str(pro, "name") != "pro" || num(pro, "limits", "requests") != 10000 || num(pro, "price") != 1500 || str(pro, "currency") != "usd" {
		t.Errorf("default tiers = %s", tiers.Raw)
	}
}

// TestBackupRestore takes a backup through the admin API while serving and
// starts a new server on a copy of it.
func TestBackupRestore(t *testing.T) {
	backups := t.TempDir()
	env := map[string]string{"DREAM_ADMIN_TOKEN": "dat_e2e_backup", "DREAM_BACKUP_DIR": backups}
	ts := startServer(t, env)
	p := ts.createPlatform(t, "Backup")
	id := str(ts.createCustomer(t, p.SK, map[string]any{"email": "b@example.com", "firstName": "Bea"}), "id")
	for i := 0; i < 4; i++ {
		ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: track(id)}, 200, "")
	}
	bk := filepath.Join(backups, "backup")
	res := ts.expect(t, req{Method: "POST", Path: "/admin/backup", Key: ts.AdminToken, Body: map[string]any{"dir": "backup"}}, 200, "")
	if str(res.Body, "dir") != bk {
		t.Errorf("backup answered %s", res.Raw)
	}
	ts.expect(t, req{Method: "POST", Path: "/admin/backup", Key: ts.AdminToken, Body: map[string]any{"dir": "backup"}}, 422, "validation_failed")
	ts.expect(t, req{Method: "POST", Path: "/admin/backup", Key: ts.AdminToken, Body: map[string]any{"dir": "relative/dir"}}, 422, "validation_failed")
	// Written after the backup: not in it.
	late := str(ts.createCustomer(t, p.SK, map[string]any{"email": "late@example.com"}), "id")

	data := filepath.Join(t.TempDir(), "restored")
	if err := restore(context.Background(), []string{bk, "--data", data}, io.Discard); err != nil {
		t.Fatal(err)
	}
	restored := startServerAt(t, data, env)
	got := restored.expect(t, req{Method: "GET", Path: "/api/customers/" + id, Key: p.SK}, 200, "")
	if str(got.Body, "customer", "firstName") != "Bea" {
		t.Errorf("restored customer = %s", got.Raw)
	}
	if c := restored.count(t, p.SK, id, "requests"); c != 4 {
		t.Errorf("restored count = %d, want 4", c)
	}
	restored.expect(t, req{Method: "GET", Path: "/api/customers/" + late, Key: p.SK}, 404, "not_found")
	restored.expect(t, req{Method: "GET", Path: "/admin/platforms", Key: restored.AdminToken}, 200, "")
	// The original keeps serving.
	ts.expect(t, req{Method: "GET", Path: "/api/customers/" + late, Key: p.SK}, 200, "")
}

// copyDir copies the regular files of a directory tree.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o600)
	})
	if err != nil {
		t.Fatalf("copy %s to %s: %v", src, dst, err)
	}
}

// TestGracefulClose: Close waits for a request in flight, which then
// completes, durably.
func TestGracefulClose(t *testing.T) {
	env := map[string]string{"DREAM_ADMIN_TOKEN": "dat_e2e_close"}
	ts := startServer(t, env)
	p := ts.createPlatform(t, "Close")
	id := str(ts.createCustomer(t, p.SK, map[string]any{"email": "g@example.com"}), "id")
	ts.client.CloseIdleConnections()

	body := `{"customerId":"` + id + `","quantity":7}`
	conn, err := net.Dial("tcp", ts.Main.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	head := "POST /api/track HTTP/1.1\r\nHost: " + ts.Main.Addr() + "\r\nAuthorization: Bearer " + p.SK +
		"\r\nContent-Type: application/json\r\nContent-Length: " + fmt.Sprint(len(body)) + "\r\n\r\n"
	// Headers and half the body: the request is in flight once the server
	// has accepted its connection.
	if _, err := io.WriteString(conn, head+body[:len(body)/2]); err != nil {
		t.Fatal(err)
	}
	waitAccepted(t, ts.Main.Addr())

	closed := make(chan error, 1)
	go func() { closed <- ts.Main.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a request was in flight", err)
	case <-time.After(300 * time.Millisecond):
	}
	// No new connections meanwhile.
	if c, err := net.DialTimeout("tcp", ts.Main.Addr(), time.Second); err == nil {
		c.Close()
		t.Errorf("a new connection was accepted during Close")
	}
	if _, err := io.WriteString(conn, body[len(body)/2:]); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	hres, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the in-flight request got no answer: %v", err)
	}
	raw, _ := io.ReadAll(hres.Body)
	hres.Body.Close()
	res := &response{Status: hres.StatusCode, Header: hres.Header, Raw: raw}
	u, _ := url.Parse(ts.URL + "/api/track")
	if err := checkResponse(req{Method: "POST", Path: "/api/track"}, u, res); err != nil {
		t.Error(err)
	}
	if res.Status != 200 || num(res.Body, "usage", "count") != 7 {
		t.Fatalf("in-flight request answered %d %s, want 200 with count 7", res.Status, raw)
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Close did not return after the request finished")
	}

	again := startServerAt(t, ts.DataDir, env)
	if got := again.count(t, p.SK, id, "requests"); got != 7 {
		t.Errorf("count after restart = %d, want 7", got)
	}
}

// waitAccepted returns once the server on addr has accepted every
// connection dialed to it before: it answers a request on a connection
// dialed after them, and a listener accepts in the order of arrival.
func waitAccepted(t *testing.T, addr string) {
	t.Helper()
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := c.Get("http://" + addr + "/health")
	if err != nil {
		t.Fatalf("GET /health: %v", err)
	}
	res.Body.Close()
}

// TestTierChanges: a new tier config applies to the current period at
// once; usage is kept.
func TestTierChanges(t *testing.T) {
	ts := startServer(t, nil)
	p := ts.createPlatform(t, "Tier changes")
	ts.putTiers(t, p.SK, map[string]any{"name": "free", "limit": 3})
	id := str(ts.createCustomer(t, p.SK, map[string]any{"email": "t@example.com"}), "id")
	for i := 0; i < 3; i++ {
		ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: track(id)}, 200, "")
	}
	ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: track(id)}, 429, "tier_limit_reached")

	ts.putTiers(t, p.SK, map[string]any{"name": "free", "limit": 5})
	for i := 4; i <= 5; i++ {
		res := ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: track(id)}, 200, "")
		if num(res.Body, "usage", "count") != int64(i) || num(res.Body, "usage", "limit") != 5 {
			t.Errorf("after raising the limit: %s", res.Raw)
		}
	}
	ts.putTiers(t, p.SK, map[string]any{"name": "free", "limit": 2})
	res := ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: track(id)}, 429, "tier_limit_reached")
	if num(res.Body, "usage", "count") != 5 || num(res.Body, "usage", "limit") != 2 || num(res.Body, "usage", "remaining") != 0 {
		t.Errorf("over a lowered limit: %s, want count 5 limit 2 remaining 0", res.Raw)
	}
	if u := ts.usage(t, p.SK, id, "requests"); num(u, "remaining") != 0 || num(u, "count") != 5 {
		t.Errorf("usage over a lowered limit = %v", u)
	}
	// A tier nobody is on can go; the one customers are on cannot.
	ts.putTiers(t, p.SK, map[string]any{"name": "free", "limit": 2}, map[string]any{"name": "gold", "limit": 9})
	ts.putTiers(t, p.SK, map[string]any{"name": "free", "limit": 2})
	ts.expect(t, req{Method: "PUT", Path: "/api/platform/tiers", Key: p.SK, Body: map[string]any{"tiers": []any{map[string]any{"name": "gold"}}}}, 422, "validation_failed")
}

// TestDataTakesTheCustomerFromTheHeader: /api/data counts for X-User-Id,
// whatever customerId the optional body names.
func TestDataTakesTheCustomerFromTheHeader(t *testing.T) {
	ts := startServer(t, nil)
	p := ts.createPlatform(t, "Data")
	a := str(ts.createCustomer(t, p.SK, map[string]any{"email": "a@example.com"}), "id")
	b := str(ts.createCustomer(t, p.SK, map[string]any{"email": "b@example.com"}), "id")
	res := ts.expect(t, req{Method: "POST", Path: "/api/data", Key: p.SK, Header: map[string]string{"X-User-Id": a},
		Body: map[string]any{"customerId": b, "quantity": 3}}, 200, "")
	if num(res.Body, "usage", "count") != 3 {
		t.Errorf("data: %s", res.Raw)
	}
	if ca, cb := ts.count(t, p.SK, a, "requests"), ts.count(t, p.SK, b, "requests"); ca != 3 || cb != 0 {
		t.Errorf("counts a/b = %d/%d, want 3/0", ca, cb)
	}
	ts.expect(t, req{Method: "POST", Path: "/api/data", Key: p.SK, Header: map[string]string{"X-User-Id": a}, Body: `{"quantity":`}, 400, "invalid_json")
	ts.expect(t, req{Method: "POST", Path: "/api/data", Key: p.SK, Header: map[string]string{"X-User-Id": a}, Body: map[string]any{"quantity": 0}}, 422, "validation_failed")
	// The idempotency of /api/data covers the header: another customer is another request.
	ts.expect(t, req{Method: "POST", Path: "/api/data", Key: p.SK, Header: map[string]string{"X-User-Id": a, "Idempotency-Key": "d-1"}}, 200, "")
	ts.expect(t, req{Method: "POST", Path: "/api/data", Key: p.SK, Header: map[string]string{"X-User-Id": b, "Idempotency-Key": "d-1"}}, 409, "idempotency_conflict")
}

// TestIdempotentReplayIgnoresLaterState: API.md — "A replay within 24 h with
// the same key and the same body returns the first response, byte for byte,
// and does nothing again." Neither a later delete of the customer nor the
// per-minute rate limit may change the replay.
func TestIdempotentReplayIgnoresLaterState(t *testing.T) {
	ts := startServer(t, nil)
	p := ts.createPlatform(t, "Replay")
	ts.putTiers(t, p.SK, map[string]any{"name": "free", "limit": 100, "rateLimitPerMinute": 2})
	idem := func(k string) map[string]string { return map[string]string{"Idempotency-Key": k} }

	t.Run("after the customer was deleted", func(t *testing.T) {
		id := str(ts.createCustomer(t, p.SK, map[string]any{"email": "gone@example.com"}), "id")
		r := req{Method: "POST", Path: "/api/track", Key: p.SK, Body: track(id), Header: idem("gone-1")}
		first := ts.expect(t, r, 200, "")
		ts.expect(t, req{Method: "DELETE", Path: "/api/customers/" + id, Key: p.SK}, 200, "")
		again := ts.do(t, r)
		if again.Status != 200 || !bytes.Equal(first.Raw, again.Raw) {
			t.Errorf("replay after delete: %d %s\nwant the first response: 200 %s", again.Status, again.Raw, first.Raw)
		}
	})
	t.Run("under the per-minute limit", func(t *testing.T) {
		if s := time.Now().Second(); s >= 57 {
			time.Sleep(time.Duration(61-s) * time.Second)
		}
		id := str(ts.createCustomer(t, p.SK, map[string]any{"email": "busy@example.com"}), "id")
		r := req{Method: "POST", Path: "/api/track", Key: p.SK, Body: track(id), Header: idem("busy-1")}
		first := ts.expect(t, r, 200, "")
		again := ts.do(t, r)
		if again.Status != 200 || !bytes.Equal(first.Raw, again.Raw) {
			t.Errorf("replay: %d %s\nwant the first response: 200 %s", again.Status, again.Raw, first.Raw)
		}
		// The replay did nothing, so the second real call of the minute is allowed.
		res := ts.do(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: track(id)})
		if res.Status != 200 {
			t.Errorf("second real call of the minute after a replay: %d %s, want 200 (a replay must not use the rate limit)", res.Status, res.Raw)
		}
		if got := ts.count(t, p.SK, id, "requests"); got != 2 {
			t.Errorf("count = %d, want 2", got)
		}
	})
}

// TestSecretsNeverStoredInPlaintext: API.md — secret keys are "Stored only
// as SHA-256", the admin token is "stored hashed". That holds for keys made
// with an Idempotency-Key too: the recorded first response must not keep
// the secret readable in the data dir.
func TestSecretsNeverStoredInPlaintext(t *testing.T) {
	ts := startServer(t, nil)
	idem := func(k string) map[string]string { return map[string]string{"Idempotency-Key": k} }
	plain := ts.createPlatform(t, "Plain")
	secrets := map[string]string{"admin token": ts.AdminToken, "platform secret": plain.SK, "platform test secret": plain.TestSK}

	res := ts.expect(t, req{Method: "POST", Path: "/admin/platforms", Key: ts.AdminToken, Body: map[string]any{"name": "Idem"}, Header: idem("plt-1")}, 201, "")
	secrets["platform secret (Idempotency-Key)"] = str(res.Body, "secretKey")
	secrets["platform test secret (Idempotency-Key)"] = str(res.Body, "test", "secretKey")
	sk := str(res.Body, "secretKey")
	res = ts.expect(t, req{Method: "POST", Path: "/api/platform/keys", Key: sk}, 201, "")
	secrets["new key secret"] = str(res.Body, "secretKey")
	res = ts.expect(t, req{Method: "POST", Path: "/api/platform/keys", Key: sk, Header: idem("key-1")}, 201, "")
	secrets["new key secret (Idempotency-Key)"] = str(res.Body, "secretKey")
	keys := ts.expect(t, req{Method: "GET", Path: "/api/platform/keys", Key: sk}, 200, "")
	first := str(keys.Body["data"].([]any)[0].(map[string]any), "id")
	res = ts.expect(t, req{Method: "POST", Path: "/api/platform/keys", Key: sk, Body: map[string]any{"rotate": first}, Header: idem("rot-1")}, 201, "")
	secrets["rotated key secret (Idempotency-Key)"] = str(res.Body, "secretKey")
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}

	for name, secret := range secrets {
		t.Run(name, func(t *testing.T) {
			if len(secret) < 20 {
				t.Fatalf("secret %q too short to search for", secret)
			}
			err := filepath.WalkDir(ts.DataDir, func(path string, d os.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				b, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				if bytes.Contains(b, []byte(secret)) {
					rel, _ := filepath.Rel(ts.DataDir, path)
					t.Errorf("the secret is stored in plaintext in %s", rel)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}
