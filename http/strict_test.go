package http

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/storage"
)

// TestDecodeStrict holds decode to the rules of strict.go: unknown fields
// are 422 naming each with its path, wrong types 400 saying what is wanted,
// required fields absent or null "is required", the body an object.
func TestDecodeStrict(t *testing.T) {
	fe := func(field, message string) engine.FieldError {
		return engine.FieldError{Field: field, Message: message}
	}
	tests := []struct {
		name     string
		into     func() any
		body     string
		optional bool
		code     string // "" = accepted
		fields   []engine.FieldError
		message  string // a part of the message, when set
	}{
		{"track plain", track, `{"customerId":"c","feature":"f","quantity":5}`, false, "", nil, ""},
		{"track metadata free-form", track, `{"customerId":"c","metadata":{"any":[1,{"deep":null}],"x":"y"}}`, false, "", nil, ""},
		{"unknown field", track, `{"customerId":"c","quantiy":5}`, false, engine.EVALIDATION, []engine.FieldError{fe("quantiy", "unknown field")}, "quantiy: unknown field"},
		{"every unknown field", track, `{"feture":"x","customerId":"c","quantiy":5}`, false, engine.EVALIDATION,
			[]engine.FieldError{fe("feture", "unknown field"), fe("quantiy", "unknown field")}, "(and 1 more)"},
		{"case matters", track, `{"CustomerId":"c"}`, false, engine.EVALIDATION, []engine.FieldError{fe("CustomerId", "unknown field")}, ""},
		{"quantity 1e23", track, `{"customerId":"c","quantity":1e23}`, false, engine.EINVALIDJSON,
			[]engine.FieldError{fe("quantity", "must be an integer from 1 to 1000000000000")}, "quantity must be an integer from 1 to 1000000000000"},
		{"quantity 1.5", track, `{"customerId":"c","quantity":1.5}`, false, engine.EINVALIDJSON,
			[]engine.FieldError{fe("quantity", "must be an integer from 1 to 1000000000000")}, ""},
		{"quantity string", track, `{"customerId":"c","quantity":"5"}`, false, engine.EINVALIDJSON,
			[]engine.FieldError{fe("quantity", "must be an integer from 1 to 1000000000000")}, ""},
		{"quantity beyond int64", track, `{"customerId":"c","quantity":99999999999999999999}`, false, engine.EINVALIDJSON,
			[]engine.FieldError{fe("quantity", "must be an integer from 1 to 1000000000000")}, ""},
		{"quantity null is absent", track, `{"customerId":"c","quantity":null}`, false, "", nil, ""},
		{"customerId number", track, `{"customerId":5}`, false, engine.EINVALIDJSON, []engine.FieldError{fe("customerId", "must be a string")}, ""},
		{"type errors first, then unknown fields", track, `{"zz":1,"quantity":true}`, false, engine.EINVALIDJSON,
			[]engine.FieldError{fe("quantity", "must be an integer from 1 to 1000000000000"), fe("zz", "unknown field")}, ""},
		{"key given twice", track, `{"customerId":"a","customerId":"b"}`, false, engine.EINVALIDJSON, []engine.FieldError{fe("customerId", "is given more than once")}, ""},
		{"null body", track, `null`, false, engine.EINVALIDJSON, nil, "must be a JSON object, not null"},
		{"null optional body", keyInput, `null`, true, engine.EINVALIDJSON, nil, "must be a JSON object, not null"},
		{"array body", track, `[{"customerId":"c"}]`, false, engine.EINVALIDJSON, nil, "not an array"},
		{"empty body required", track, ``, false, engine.EINVALIDJSON, nil, "A JSON body is required"},
		{"empty body optional", keyInput, " \n", true, "", nil, ""},
		{"not JSON", track, `{"customerId":"c"`, false, engine.EINVALIDJSON, nil, "not valid JSON"},
		{"trailing garbage", track, `{"customerId":"c"} x`, false, engine.EINVALIDJSON, nil, "not valid JSON"},

		{"tiers nested unknown", tiers, `{"tiers":[{"name":"free"},{"name":"pro","limt":3}]}`, false, engine.EVALIDATION,
			[]engine.FieldError{fe("tiers[1].limt", "unknown field")}, ""},
		{"tiers free limit keys", tiers, `{"tiers":[{"name":"free","limits":{"anything_goes":3},"features":{"sso":true}}]}`, false, "", nil, ""},
		{"tier limits values checked", tiers, `{"tiers":[{"name":"free","limits":{"requests":"ten"}}]}`, false, engine.EINVALIDJSON,
			[]engine.FieldError{fe("tiers[0].limits.requests", "must be an integer (-1: unlimited)")}, ""},
		{"tier price", tiers, `{"tiers":[{"name":"free","price":"15.00"}]}`, false, engine.EINVALIDJSON,
			[]engine.FieldError{fe("tiers[0].price", "must be an integer (cents)")}, "tiers[0].price must be an integer (cents)"},
		{"tier features values", tiers, `{"tiers":[{"name":"free","features":{"sso":"yes"}}]}`, false, engine.EINVALIDJSON,
			[]engine.FieldError{fe("tiers[0].features.sso", "must be true or false")}, ""},
		{"tier ids ignored but known", tiers, `{"tiers":[{"name":"free","priceId":null,"productId":"prod_1"}]}`, false, "", nil, ""},
		{"tiers array of the wrong type", tiers, `{"tiers":{"name":"free"}}`, false, engine.EINVALIDJSON, []engine.FieldError{fe("tiers", "must be an array")}, ""},
		{"tiers absent", tiers, `{}`, false, engine.EVALIDATION, []engine.FieldError{fe("tiers", "is required")}, ""},
		{"tiers null", tiers, `{"tiers":null}`, false, engine.EVALIDATION, []engine.FieldError{fe("tiers", "is required")}, ""},

		{"cors empty object", cors, `{}`, false, engine.EVALIDATION, []engine.FieldError{fe("allowedOrigins", "is required")}, ""},
		{"cors null origins", cors, `{"allowedOrigins":null}`, false, engine.EVALIDATION, []engine.FieldError{fe("allowedOrigins", "is required")}, ""},
		{"cors empty list clears", cors, `{"allowedOrigins":[]}`, false, "", nil, ""},
		{"cors origin of the wrong type", cors, `{"allowedOrigins":[5]}`, false, engine.EINVALIDJSON, []engine.FieldError{fe("allowedOrigins[0]", "must be a string")}, ""},

		{"customer plan typo", customer, `{"email":"a@b.co","pln":"pro"}`, false, engine.EVALIDATION, []engine.FieldError{fe("pln", "unknown field")}, ""},
		{"customer metadata free", customer, `{"email":"a@b.co","metadata":{"Any Key":{"x":[1]}}}`, false, "", nil, ""},
		{"customer metadata not an object", customer, `{"email":"a@b.co","metadata":[1]}`, false, engine.EINVALIDJSON, []engine.FieldError{fe("metadata", "must be an object")}, ""},
		{"dry-run state base64", dryRun, `{"state":"AAEC"}`, true, "", nil, ""},
		{"dry-run state not base64", dryRun, `{"state":"***"}`, true, engine.EINVALIDJSON, []engine.FieldError{fe("state", "must be a base64 string")}, ""},
		{"key grace period", keyInput, `{"gracePeriodHours":1.5}`, true, engine.EINVALIDJSON, []engine.FieldError{fe("gracePeriodHours", "must be an integer from 0 to 720")}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := tc.into()
			err := decode([]byte(tc.body), v, tc.optional)
			if got := engine.ErrorCode(err); got != tc.code {
				t.Fatalf("code %q, want %q (err: %v)", got, tc.code, err)
			}
			if err == nil {
				want := tc.into()
				if strings.TrimSpace(tc.body) != "" {
					if err := json.Unmarshal([]byte(tc.body), want); err != nil {
						t.Fatal(err)
					}
				}
				if !reflect.DeepEqual(v, want) {
					t.Errorf("decoded %+v, encoding/json %+v", v, want)
				}
				return
			}
			e := err.(*engine.Error)
			if tc.fields != nil && !reflect.DeepEqual(e.Fields, tc.fields) {
				t.Errorf("fields %+v, want %+v", e.Fields, tc.fields)
			}
			if !strings.Contains(e.Message, tc.message) {
				t.Errorf("message %q, want it to contain %q", e.Message, tc.message)
			}
		})
	}
}

func track() any    { return new(engine.TrackInput) }
func tiers() any    { return new(engine.TierConfigInput) }
func cors() any     { return new(engine.CORSConfig) }
func customer() any { return new(engine.CreateCustomerInput) }
func dryRun() any   { return new(engine.DryRunInput) }
func keyInput() any { return new(engine.CreateKeyInput) }

// TestDecodeStrictCapsProblems: a body of many unknown keys gets a short
// answer that still counts them.
func TestDecodeStrictCapsProblems(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"customerId":"c"`)
	for i := 0; i < 1000; i++ {
		b.WriteString(`,"k` + strings.Repeat("x", i%7) + `":1`)
	}
	b.WriteString("}")
	err := decode([]byte(b.String()), new(engine.TrackInput), false)
	e, ok := err.(*engine.Error)
	if !ok || e.Code != engine.EVALIDATION || len(e.Fields) != maxBodyProblems || !strings.Contains(e.Message, "(and 999 more)") {
		t.Fatalf("%v", err)
	}
}

// strictServer is a Server over a fresh store with one platform and its

// tempStore opens a store in a temporary directory, closed when tb ends.
func tempStore(tb testing.TB) *storage.Store {
	tb.Helper()
	st, err := storage.Open(tb.TempDir(), nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

// live secret key.
func strictServer(t *testing.T) (*Server, string, *engine.Engine, engine.Tenant) {
	t.Helper()
	st := tempStore(t)
	log := slog.New(slog.DiscardHandler)
	eng := engine.New(engine.Config{Store: st, Logger: log})
	np, err := eng.Platforms.Create(context.Background(), engine.CreatePlatformInput{Name: "Strict"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return NewServer(Config{Engine: eng, Store: st, Logger: log}), np.SecretKey,
		eng, engine.Tenant{PlatformID: np.Platform.ID, Mode: engine.Live}
}

func call(t *testing.T, h http.Handler, method, path, key, body string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	var r *http.Request
	if body == "" {
		r = httptest.NewRequest(method, path, nil)
	} else {
		r = httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		r.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header[hdr[i]] = []string{hdr[i+1]}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// errorOf decodes an error body and fails unless it has status and code.
func errorOf(t *testing.T, w *httptest.ResponseRecorder, status int, code string) errorBody {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || w.Code != status || e.Code != code {
		t.Fatalf("%d %s, want %d %s", w.Code, w.Body, status, code)
	}
	return e
}

func namesField(e errorBody, field string) bool {
	for _, f := range e.Fields {
		if f.Field == field {
			return true
		}
	}
	return false
}

// TestMethodNotAllowed: a path served with other methods answers 405
// method_not_allowed with Allow, through the static map and the router
// alike; unknown paths stay 404 and preflights are answered as before.
func TestMethodNotAllowed(t *testing.T) {
	s, sk, _, _ := strictServer(t)
	tests := []struct {
		method, path, allow string
	}{
		{"DELETE", "/api/track", "POST"},
		{"GET", "/api/track", "POST"},
		{"PUT", "/api/customers", "GET, POST"},
		{"POST", "/api/customers/cus_1", "DELETE, GET, PATCH"},
		{"POST", "/api/platform/tiers", "GET, PUT"},
		{"PUT", "/api/tiers", "GET, OPTIONS"},
		{"GET", "/webhook/stripe/plt_1", "POST"},
		{"OPTIONS", "/api/track", "POST"},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			for name, h := range map[string]http.Handler{"server": s, "router": s.Router()} {
				w := call(t, h, tc.method, tc.path, sk, "")
				e := errorOf(t, w, http.StatusMethodNotAllowed, engine.EMETHODNOTALLOWED)
				if got := w.Header().Get("Allow"); got != tc.allow {
					t.Errorf("%s: Allow %q, want %q", name, got, tc.allow)
				}
				if e.Message == "" || (name == "server" && e.RequestID == "") || e.Error != "Method not allowed" {
					t.Errorf("%s: %s", name, w.Body)
				}
			}
		})
	}
	errorOf(t, call(t, s, "GET", "/api/nope", sk, ""), http.StatusNotFound, engine.ENOTFOUND)
	errorOf(t, call(t, s, "DELETE", "/api/customers/cus_1/x", sk, ""), http.StatusNotFound, engine.ENOTFOUND)
	// Preflights of the CORS routes answer for themselves.
	if w := call(t, s, "OPTIONS", "/api/tiers", "", ""); w.Code != http.StatusNoContent || w.Header().Get("Allow") != "GET, OPTIONS" {
		t.Errorf("OPTIONS /api/tiers: %d Allow %q", w.Code, w.Header().Get("Allow"))
	}
	w := call(t, s, "OPTIONS", "/api/me", "", "", "Origin", "https://nobody.example")
	errorOf(t, w, http.StatusForbidden, engine.EFORBIDDEN)
}

// TestGivenButEmpty: an empty Idempotency-Key header and an empty query
// parameter are refused, naming them, not taken as absent.
func TestGivenButEmpty(t *testing.T) {
	s, sk, eng, tenant := strictServer(t)
	cus, err := eng.Customers.Create(context.Background(), tenant, "", engine.CreateCustomerInput{Email: "e@example.com"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	body := `{"customerId":"` + cus.ID + `"}`
	tests := []struct {
		method, path, body, field string
		hdr                       []string
	}{
		{"POST", "/api/track", body, "Idempotency-Key", []string{"Idempotency-Key", ""}},
		{"POST", "/api/customers", `{"email":"x@example.com"}`, "Idempotency-Key", []string{"Idempotency-Key", ""}},
		{"PUT", "/api/platform/tiers", `{"tiers":[{"name":"free"}]}`, "Idempotency-Key", []string{"Idempotency-Key", ""}},
		{"GET", "/api/customers?limit=", "", "limit", nil},
		{"GET", "/api/customers?startingAfter=", "", "startingAfter", nil},
		{"GET", "/api/customers?email=", "", "email", nil},
		{"GET", "/api/usage?customerId=", "", "customerId", []string{"X-User-Id", cus.ID}},
		{"POST", "/api/platform/plugin/dry-run?version=", "", "version", nil},
		{"POST", "/api/platform/plugin/dry-run", "", "Idempotency-Key", []string{"Idempotency-Key", ""}},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path+" "+tc.field, func(t *testing.T) {
			e := errorOf(t, call(t, s, tc.method, tc.path, sk, tc.body, tc.hdr...), http.StatusUnprocessableEntity, engine.EVALIDATION)
			if !namesField(e, tc.field) {
				t.Errorf("fields %+v do not name %s", e.Fields, tc.field)
			}
		})
	}
	u, err := eng.Meter.Usage(context.Background(), tenant, cus.ID)
	if err != nil || u.Usage[0].Count != 0 {
		t.Errorf("usage after refused tracks: %+v %v", u, err)
	}
	// Absent stays absent.
	if w := call(t, s, "GET", "/api/customers", sk, ""); w.Code != http.StatusOK {
		t.Errorf("GET /api/customers: %d %s", w.Code, w.Body)
	}
}

// TestNullBodies: `null` is not an empty body: POST /api/platform/keys
// with it makes no key pair; PUT /api/platform/cors with {} or null keeps
// the origins, [] clears them.
func TestNullBodies(t *testing.T) {
	s, sk, eng, tenant := strictServer(t)
	ctx := context.Background()
	keys := func() int {
		ks, err := eng.Keys.List(ctx, tenant)
		if err != nil {
			t.Fatal(err)
		}
		return len(ks)
	}
	errorOf(t, call(t, s, "POST", "/api/platform/keys", sk, `null`), http.StatusBadRequest, engine.EINVALIDJSON)
	if n := keys(); n != 1 {
		t.Errorf("%d keys after POST null, want 1", n)
	}
	if w := call(t, s, "POST", "/api/platform/keys", sk, ""); w.Code != http.StatusCreated {
		t.Errorf("POST /api/platform/keys without a body: %d %s", w.Code, w.Body)
	}

	if w := call(t, s, "PUT", "/api/platform/cors", sk, `{"allowedOrigins":["https://app.example.com"]}`); w.Code != http.StatusOK {
		t.Fatalf("PUT cors: %d %s", w.Code, w.Body)
	}
	origins := func() []string {
		c, err := eng.Platforms.CORS(ctx, tenant.PlatformID)
		if err != nil {
			t.Fatal(err)
		}
		return c.AllowedOrigins
	}
	for _, body := range []string{`{}`, `{"allowedOrigins":null}`} {
		e := errorOf(t, call(t, s, "PUT", "/api/platform/cors", sk, body), http.StatusUnprocessableEntity, engine.EVALIDATION)
		if !namesField(e, "allowedOrigins") {
			t.Errorf("%s: fields %+v", body, e.Fields)
		}
	}
	errorOf(t, call(t, s, "PUT", "/api/platform/cors", sk, `null`), http.StatusBadRequest, engine.EINVALIDJSON)
	if got := origins(); len(got) != 1 {
		t.Errorf("origins after refused PUTs: %v", got)
	}
	if w := call(t, s, "PUT", "/api/platform/cors", sk, `{"allowedOrigins":[]}`); w.Code != http.StatusOK || len(origins()) != 0 {
		t.Errorf("PUT [] : %d %s, origins %v", w.Code, w.Body, origins())
	}
	e := errorOf(t, call(t, s, "POST", "/api/platform/plugin/rollback", sk, `{"version":null}`), http.StatusUnprocessableEntity, engine.EVALIDATION)
	if !namesField(e, "version") {
		t.Errorf("rollback null version: %+v", e.Fields)
	}
}
