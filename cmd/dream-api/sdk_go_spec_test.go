package main

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	dream "github.com/dream-api/dream-api/sdk/go"
)

// recorder is an http.RoundTripper that keeps every request and answers
// {} (so that the client's calls return at once).
type recorder struct{ reqs []recorded }

type recorded struct {
	method, path string
	body         map[string]any
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := recorded{method: req.Method, path: req.URL.Path}
	if req.Body != nil {
		b, _ := io.ReadAll(req.Body)
		json.Unmarshal(b, &rec.body)
	}
	r.reqs = append(r.reqs, rec)
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader("{}")), Request: req}, nil
}

// schemaFields are the property names of a schema (through allOf), sorted.
func schemaFields(s *openapi3.Schema) []string {
	var out []string
	for k := range s.Properties {
		out = append(out, k)
	}
	for _, a := range s.AllOf {
		out = append(out, schemaFields(a.Value)...)
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// TestSDKGoRequestFieldsMatchSpec: every Go SDK call with a JSON body, with
// every field of its parameters set, sends exactly the members of the
// operation's request schema in http/openapi.yaml (a new member in the
// spec that the SDK cannot send fails too).
func TestSDKGoRequestFieldsMatchSpec(t *testing.T) {
	v, err := spec()
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	c := dream.New(dream.Options{SecretKey: "sk_test_x", BaseURL: "http://sdk.test", HTTPClient: &http.Client{Transport: rec}})
	ctx := t.Context()
	s, n := "x", int64(1)
	grace := 1
	calls := []struct {
		op   string
		call func()
	}{
		{"createCustomer", func() {
			c.Customers.Create(ctx, dream.CustomerParams{Email: "a@b.co", ClerkUserID: "user_1", FirstName: "A", LastName: "B",
				Plan: "free", Password: "pw", Metadata: map[string]any{"k": 1}})
		}},
		{"updateCustomer", func() {
			c.Customers.Update(ctx, "cus_1", dream.CustomerUpdate{Email: &s, FirstName: &s, LastName: &s, Plan: &s, Metadata: map[string]any{"k": nil}, Password: &s})
		}},
		{"track", func() {
			c.TrackWith(ctx, dream.TrackParams{CustomerID: "cus_1", Feature: "f", Quantity: 2, Metadata: map[string]any{"k": 1}})
		}},
		{"trackBatch", func() {
			c.TrackBatch(ctx, []dream.TrackEvent{{CustomerID: "cus_1", Feature: "f", Quantity: 2, Metadata: map[string]any{"k": 1}, IdempotencyKey: "e"}}, nil)
		}},
		{"check", func() {
			c.CheckWith(ctx, dream.TrackParams{CustomerID: "cus_1", Feature: "f", Quantity: 2, Metadata: map[string]any{"k": 1}})
		}},
		{"putPlatformTiers", func() { c.Tiers.Replace(ctx, []dream.TierInput{{Name: "free"}}) }},
		{"createKey", func() { c.Keys.Create(ctx, &dream.KeyCreateParams{Rotate: "key_1", GracePeriodHours: &grace}) }},
		{"rollbackPlugin", func() { c.Plugin.Rollback(ctx, "plg_1") }},
		{"dryRunPlugin", func() {
			c.Plugin.DryRun(ctx, dream.DryRunParams{Version: "plg_1", Plan: "free", Feature: "f", Quantity: &n, Usage: &n, Limit: &n,
				CustomerID: "cus_1", Metadata: map[string]any{"k": 1}, State: []byte{1}})
		}},
		{"createCheckout", func() {
			c.Checkout(ctx, "cus_1", "pro", &dream.CheckoutOptions{SuccessURL: "https://a.test/s", CancelURL: "https://a.test/c", IdempotencyKey: "k"})
		}},
		{"createCustomerPortal", func() {
			c.Portal(ctx, "cus_1", &dream.PortalOptions{ReturnURL: "https://a.test/r", IdempotencyKey: "k"})
		}},
		{"createWebhook", func() {
			c.Webhooks.Create(ctx, dream.WebhookParams{URL: "https://a.test/h", Events: []string{"*"}, Description: "d", IdempotencyKey: "k"})
		}},
		{"updateWebhook", func() {
			c.Webhooks.Update(ctx, "whe_1", dream.WebhookUpdate{URL: &s, Events: []string{"*"}, Description: &s, Enabled: dream.Bool(false)})
		}},
		// No body: the schema is Empty.
		{"rotateWebhookSecret", func() { c.Webhooks.RotateSecret(ctx, "whe_1") }},
		{"testWebhook", func() { c.Webhooks.Test(ctx, "whe_1") }},
		{"retryWebhookDelivery", func() { c.Webhooks.Retry(ctx, "whe_1", "evt_1") }},
	}
	for _, tc := range calls {
		t.Run(tc.op, func(t *testing.T) {
			var op *openapi3.Operation
			var method string
			for _, item := range v.doc.Paths.Map() {
				for m, o := range item.Operations() {
					if o.OperationID == tc.op {
						op, method = o, m
					}
				}
			}
			if op == nil || op.RequestBody == nil {
				t.Fatalf("%s has no request body in openapi.yaml", tc.op)
			}
			want := schemaFields(op.RequestBody.Value.Content.Get("application/json").Schema.Value)
			rec.reqs = nil
			tc.call()
			if len(rec.reqs) != 1 || rec.reqs[0].method != method {
				t.Fatalf("%d requests (%+v), want one %s", len(rec.reqs), rec.reqs, method)
			}
			var got []string
			for k := range rec.reqs[0].body {
				got = append(got, k)
			}
			sort.Strings(got)
			if !slices.Equal(got, want) {
				t.Errorf("the SDK sends %v, openapi.yaml has %v", got, want)
			}
		})
	}

	// An event of a batch, one level down.
	rec.reqs = nil
	c.TrackBatch(ctx, []dream.TrackEvent{{CustomerID: "cus_1", Feature: "f", Quantity: 2, Metadata: map[string]any{"k": 1}, IdempotencyKey: "e"}}, nil)
	var evGot []string
	for k := range rec.reqs[0].body["events"].([]any)[0].(map[string]any) {
		evGot = append(evGot, k)
	}
	sort.Strings(evGot)
	if want := schemaFields(v.doc.Components.Schemas["TrackBatchEvent"].Value); !slices.Equal(evGot, want) {
		t.Errorf("a batch event: the SDK sends %v, openapi.yaml has %v", evGot, want)
	}

	// A tier, one level down: every member but the two the server ignores.
	rec.reqs = nil
	c.Tiers.Replace(ctx, []dream.TierInput{{Name: "pro", DisplayName: "Pro", Price: 1, Currency: "usd", Interval: "month", Limit: &n,
		Limits: map[string]int64{"requests": 1}, Features: map[string]bool{"sso": true}, RateLimitPerMinute: 1}})
	var got []string
	for k := range rec.reqs[0].body["tiers"].([]any)[0].(map[string]any) {
		got = append(got, k)
	}
	sort.Strings(got)
	var want []string
	for _, f := range schemaFields(v.doc.Components.Schemas["TierInput"].Value) {
		if f != "priceId" && f != "productId" { // "Ignored." in the spec
			want = append(want, f)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("a tier: the SDK sends %v, openapi.yaml has %v (less priceId, productId)", got, want)
	}
}
