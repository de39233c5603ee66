package http

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/dream-api/dream-api/engine"
)

// defineEmailFormat makes kin-openapi check `format: email` (it knows the
// format but checks only byte, date and date-time unless told).
var defineEmailFormat = sync.OnceFunc(func() {
	openapi3.DefineStringFormatValidator("email", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForEmail))
})

// TestSpecRequestsAgreeWithServer holds the request side of openapi.yaml
// to the server: for each request of the table, kin-openapi's request
// validation says what the table says, and the server agrees — a request
// the spec refuses is refused by the server (4xx, nothing done), one the
// spec accepts is not refused for its shape (400 or 422).
func TestSpecRequestsAgreeWithServer(t *testing.T) {
	defineEmailFormat()
	doc := openAPISpecFromFile(t)
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	s, sk, eng, tenant := strictServer(t)
	ctx := context.Background()
	cus, err := eng.Customers.Create(ctx, tenant, "", engine.CreateCustomerInput{Email: "agree@example.com"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	id := cus.ID
	long := strings.Repeat("k", 256)
	meta51 := `{`
	for i := range 51 {
		if i > 0 {
			meta51 += ","
		}
		meta51 += `"k` + strings.Repeat("x", i) + `":1`
	}
	meta51 += `}`

	tests := []struct {
		name         string
		method, path string
		body         string
		hdr          []string
		specOK       bool
	}{
		{"track", "POST", "/api/track", `{"customerId":"` + id + `","feature":"requests","quantity":2,"metadata":{"any":[1]}}`, nil, true},
		{"track null optional members", "POST", "/api/track", `{"customerId":"` + id + `","feature":null,"quantity":null,"metadata":null}`, nil, true},
		{"track unknown member", "POST", "/api/track", `{"customerId":"` + id + `","quantiy":5}`, nil, false},
		{"track quantity 1e23", "POST", "/api/track", `{"customerId":"` + id + `","quantity":1e23}`, nil, false},
		{"track quantity over the maximum", "POST", "/api/track", `{"customerId":"` + id + `","quantity":1000000000001}`, nil, false},
		{"track quantity 0", "POST", "/api/track", `{"customerId":"` + id + `","quantity":0}`, nil, false},
		{"track quantity 1.5", "POST", "/api/track", `{"customerId":"` + id + `","quantity":1.5}`, nil, false},
		{"track quantity a string", "POST", "/api/track", `{"customerId":"` + id + `","quantity":"5"}`, nil, false},
		{"track feature not a slug", "POST", "/api/track", `{"customerId":"` + id + `","feature":"Big Files"}`, nil, false},
		{"track empty customerId", "POST", "/api/track", `{"customerId":""}`, nil, false},
		{"track no customerId", "POST", "/api/track", `{"quantity":1}`, nil, false},
		{"track customerId too long", "POST", "/api/track", `{"customerId":"` + strings.Repeat("c", 101) + `"}`, nil, false},
		{"track metadata not an object", "POST", "/api/track", `{"customerId":"` + id + `","metadata":5}`, nil, false},
		{"track null body", "POST", "/api/track", `null`, nil, false},
		{"track array body", "POST", "/api/track", `[]`, nil, false},
		{"track Idempotency-Key too long", "POST", "/api/track", `{"customerId":"` + id + `"}`, []string{"Idempotency-Key", long}, false},
		{"track empty Idempotency-Key", "POST", "/api/track", `{"customerId":"` + id + `"}`, []string{"Idempotency-Key", ""}, false},
		{"track batch", "POST", "/api/track/batch", `{"events":[{"customerId":"` + id + `","feature":"requests","quantity":2,"metadata":{"a":[1]},"idempotencyKey":"k1"},{"customerId":"` + id + `","feature":null,"quantity":null,"metadata":null,"idempotencyKey":null}]}`, nil, true},
		{"track batch unknown member of an event", "POST", "/api/track/batch", `{"events":[{"customerId":"` + id + `","quantiy":5}]}`, nil, false},
		{"track batch unknown member", "POST", "/api/track/batch", `{"events":[{"customerId":"` + id + `"}],"evnts":[]}`, nil, false},
		{"track batch without events", "POST", "/api/track/batch", `{}`, nil, false},
		{"track batch quantity a string", "POST", "/api/track/batch", `{"events":[{"customerId":"` + id + `","quantity":"5"}]}`, nil, false},
		{"track batch Idempotency-Key too long", "POST", "/api/track/batch", `{"events":[{"customerId":"` + id + `"}]}`, []string{"Idempotency-Key", long}, false},
		{"check unknown member", "POST", "/api/check", `{"customerId":"` + id + `","feture":"x"}`, nil, false},
		{"data", "POST", "/api/data", `{"quantity":1,"customerId":"ignored"}`, []string{"X-User-Id", id}, true},
		{"data without a body", "POST", "/api/data", ``, []string{"X-User-Id", id}, true},
		{"data unknown member", "POST", "/api/data", `{"quantiy":1}`, []string{"X-User-Id", id}, false},

		{"customer", "POST", "/api/customers", `{"email":"new@example.com","firstName":"N","plan":"free","metadata":{"Any key":{"x":1}}}`, nil, true},
		{"customer plan typo", "POST", "/api/customers", `{"email":"pln@example.com","pln":"pro"}`, nil, false},
		{"customer without email", "POST", "/api/customers", `{"firstName":"A"}`, nil, false},
		{"customer null email", "POST", "/api/customers", `{"email":null}`, nil, false},
		{"customer bad email", "POST", "/api/customers", `{"email":"not-an-email"}`, nil, false},
		{"customer plan not a slug", "POST", "/api/customers", `{"email":"plan@example.com","plan":"Platinum Plan"}`, nil, false},
		{"customer 51 metadata keys", "POST", "/api/customers", `{"email":"md@example.com","metadata":` + meta51 + `}`, nil, false},
		{"customer first name too long", "POST", "/api/customers", `{"email":"fn@example.com","firstName":"` + strings.Repeat("ä", 101) + `"}`, nil, false},
		{"customer update", "PATCH", "/api/customers/" + id, `{"plan":"pro","email":null,"metadata":{"team":null}}`, nil, true},
		{"customer update typo", "PATCH", "/api/customers/" + id, `{"pln":"pro"}`, nil, false},
		{"customer list empty limit", "GET", "/api/customers?limit=", ``, nil, false},
		{"customer list limit 101", "GET", "/api/customers?limit=101", ``, nil, false},

		{"tiers", "PUT", "/api/platform/tiers", `{"tiers":[{"name":"free","limit":3,"price":0},{"name":"pro","price":1500,"currency":"EUR","interval":"year","limits":{"requests":10,"exports":-1},"features":{"sso":true},"rateLimitPerMinute":60,"priceId":null}]}`, nil, true},
		{"tiers unknown member", "PUT", "/api/platform/tiers", `{"tiers":[{"name":"free","limt":3},{"name":"pro"}]}`, nil, false},
		{"tiers empty", "PUT", "/api/platform/tiers", `{"tiers":[]}`, nil, false},
		{"tiers absent", "PUT", "/api/platform/tiers", `{}`, nil, false},
		{"tier name not a slug", "PUT", "/api/platform/tiers", `{"tiers":[{"name":"Free Tier"}]}`, nil, false},
		{"tier price negative", "PUT", "/api/platform/tiers", `{"tiers":[{"name":"free","price":-1},{"name":"pro"}]}`, nil, false},
		{"tier price a string", "PUT", "/api/platform/tiers", `{"tiers":[{"name":"free","price":"15.00"},{"name":"pro"}]}`, nil, false},
		{"tier limit below -1", "PUT", "/api/platform/tiers", `{"tiers":[{"name":"free","limits":{"requests":-2}},{"name":"pro"}]}`, nil, false},
		{"tier currency", "PUT", "/api/platform/tiers", `{"tiers":[{"name":"free","currency":"dollars"},{"name":"pro"}]}`, nil, false},
		{"tier interval", "PUT", "/api/platform/tiers", `{"tiers":[{"name":"free","interval":"hour"},{"name":"pro"}]}`, nil, false},
		{"tiers Idempotency-Key too long", "PUT", "/api/platform/tiers", `{"tiers":[{"name":"free"},{"name":"pro"}]}`, []string{"Idempotency-Key", long}, false},

		{"cors", "PUT", "/api/platform/cors", `{"allowedOrigins":["https://app.example.com","http://localhost:5173","*"]}`, nil, true},
		{"cors clear", "PUT", "/api/platform/cors", `{"allowedOrigins":[]}`, nil, true},
		{"cors empty object", "PUT", "/api/platform/cors", `{}`, nil, false},
		{"cors null origins", "PUT", "/api/platform/cors", `{"allowedOrigins":null}`, nil, false},
		{"cors null body", "PUT", "/api/platform/cors", `null`, nil, false},
		{"cors origin with a path", "PUT", "/api/platform/cors", `{"allowedOrigins":["https://app.example.com/app"]}`, nil, false},
		{"cors origin of another scheme", "PUT", "/api/platform/cors", `{"allowedOrigins":["ftp://files.example.com"]}`, nil, false},
		{"cors unknown member", "PUT", "/api/platform/cors", `{"allowedOrigins":[],"origins":["https://a.example"]}`, nil, false},

		{"key", "POST", "/api/platform/keys", `{}`, nil, true},
		{"key without a body", "POST", "/api/platform/keys", ``, nil, true},
		{"key null body", "POST", "/api/platform/keys", `null`, nil, false},
		{"key grace period too long", "POST", "/api/platform/keys", `{"gracePeriodHours":721}`, nil, false},
		{"key unknown member", "POST", "/api/platform/keys", `{"rotate":null,"grace":1}`, nil, false},

		{"checkout", "POST", "/api/create-checkout", `{"customerId":"` + id + `","tier":"pro","successUrl":"https://app.example.com/ok","cancelUrl":"HTTP://app.example.com/no"}`, nil, true},
		{"checkout relative URL", "POST", "/api/create-checkout", `{"customerId":"` + id + `","tier":"pro","successUrl":"/ok"}`, nil, false},
		{"checkout URL of another scheme", "POST", "/api/create-checkout", `{"customerId":"` + id + `","tier":"pro","cancelUrl":"javascript:alert(1)"}`, nil, false},
		{"checkout without tier", "POST", "/api/create-checkout", `{"customerId":"` + id + `"}`, nil, false},
		{"checkout unknown member", "POST", "/api/create-checkout", `{"customerId":"` + id + `","tier":"pro","plan":"pro"}`, nil, false},
		{"portal", "POST", "/api/customer-portal", `{"customerId":"` + id + `","returnUrl":"https://app.example.com/account"}`, nil, true},
		{"portal relative URL", "POST", "/api/customer-portal", `{"customerId":"` + id + `","returnUrl":"account"}`, nil, false},
		{"connect by key of the wrong kind", "POST", "/api/platform/stripe/connect", `{"secretKey":"pk_test_123","webhookSecret":"whsec_1"}`, nil, false},
		{"connect webhook secret of the wrong kind", "POST", "/api/platform/stripe/connect", `{"secretKey":"sk_test_123","webhookSecret":"secret"}`, nil, false},
		{"connect unknown member", "POST", "/api/platform/stripe/connect", `{"apiKey":"sk_test_123"}`, nil, false},
		{"connect onboarding", "POST", "/api/platform/stripe/connect", `{"returnUrl":"https://app.example.com/back"}`, nil, true},

		{"rollback without version", "POST", "/api/platform/plugin/rollback", `{}`, nil, false},
		{"rollback null version", "POST", "/api/platform/plugin/rollback", `{"version":null}`, nil, false},
		{"rollback unknown member", "POST", "/api/platform/plugin/rollback", `{"version":"plg_1","to":"x"}`, nil, false},
	}
	var specOK, specRefused int
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			newReq := func(url string) *http.Request {
				var body *bytes.Reader
				if tc.body != "" {
					body = bytes.NewReader([]byte(tc.body))
				}
				var r *http.Request
				if body != nil {
					r = httptest.NewRequest(tc.method, url, body)
					r.Header.Set("Content-Type", "application/json")
				} else {
					r = httptest.NewRequest(tc.method, url, nil)
				}
				r.Header.Set("Authorization", "Bearer "+sk)
				for i := 0; i+1 < len(tc.hdr); i += 2 {
					r.Header[tc.hdr[i]] = []string{tc.hdr[i+1]}
				}
				return r
			}
			probe := newReq("http://localhost" + tc.path)
			route, params, err := router.FindRoute(probe)
			if err != nil {
				t.Fatalf("find route: %v", err)
			}
			specErr := openapi3filter.ValidateRequest(ctx, &openapi3filter.RequestValidationInput{
				Request: probe, PathParams: params, Route: route,
				Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
			})
			if got := specErr == nil; got != tc.specOK {
				t.Fatalf("the spec accepts it: %v, want %v (%v)", got, tc.specOK, specErr)
			}
			w := httptest.NewRecorder()
			s.ServeHTTP(w, newReq(tc.path))
			switch {
			case tc.specOK && (w.Code == http.StatusBadRequest || w.Code == http.StatusUnprocessableEntity):
				t.Errorf("the spec accepts it; the server refuses it: %d %s", w.Code, w.Body)
			case !tc.specOK && (w.Code < 400 || w.Code >= 500):
				t.Errorf("the spec refuses it (%v); the server answers %d %s", specErr, w.Code, w.Body)
			}
		})
		if tc.specOK {
			specOK++
		} else {
			specRefused++
		}
	}
	if specOK < 10 || specRefused < 30 {
		t.Errorf("%d accepted and %d refused requests: the table is too small to mean much", specOK, specRefused)
	}
}

// TestSpecRequestRules: every JSON request body of the spec is strict
// (additionalProperties: false, but for Stripe's events), and every call
// that honours an Idempotency-Key (every POST but the webhooks, PUT tiers
// and PUT cors) documents it and its 409.
func TestSpecRequestRules(t *testing.T) {
	doc := openAPISpecFromFile(t)
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			where := method + " " + path
			webhook := strings.HasPrefix(path, "/webhook/")
			if op.RequestBody != nil && op.RequestBody.Value != nil && !webhook {
				if mt := op.RequestBody.Value.Content.Get("application/json"); mt != nil {
					if sc := mt.Schema.Value; sc.AdditionalProperties.Has == nil || *sc.AdditionalProperties.Has {
						t.Errorf("%s: the request body does not say additionalProperties: false", where)
					}
				}
			}
			if webhook || !(method == "POST" || path == "/api/platform/tiers" && method == "PUT" || path == "/api/platform/cors" && method == "PUT") {
				continue
			}
			found := false
			for _, p := range op.Parameters {
				found = found || p.Value.Name == "Idempotency-Key"
			}
			if !found {
				t.Errorf("%s: no Idempotency-Key parameter", where)
			}
			// A check changes nothing: its key is accepted and ignored (no
			// 409); end-user sign-in checks the header but never replays
			// (authn.go).
			if op.Responses.Status(409) == nil && path != "/api/check" && !strings.HasPrefix(path, "/api/auth/") {
				t.Errorf("%s: no 409 response", where)
			}
		}
	}
	if doc.Components.Responses["MethodNotAllowed"] == nil {
		t.Error("no MethodNotAllowed response")
	}
}
