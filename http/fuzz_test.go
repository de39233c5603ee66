package http_test

// Fuzz the request bodies of POST /api/customers and POST /api/track: any
// bytes at all get a 2xx or a 4xx, never a 5xx, and every error is the one
// flat JSON error object.
//
// `go test ./http/` runs the seed corpus in testdata/fuzz; to fuzz:
//
//	go test -run='^$' -fuzz=FuzzTrackBody -fuzztime=30s ./http/

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/dream-api/dream-api/engine"
	dhttp "github.com/dream-api/dream-api/http"
	"github.com/dream-api/dream-api/storage"
)

// fuzzServer is a server over a fresh store with one platform and one
// customer.
type fuzzServer struct {
	handler    http.Handler
	secret     string
	customerID string
}

// customerPlaceholder in a track body is replaced by the real customer id,
// so that seeds can reach the metering itself.
const customerPlaceholder = "CUSTOMER"

func newFuzzServer(f *testing.F) *fuzzServer {
	f.Helper()
	ctx := context.Background()
	st, err := storage.Open(f.TempDir(), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	log := slog.New(slog.DiscardHandler)
	eng := engine.New(engine.Config{Store: st, Logger: log})
	np, err := eng.Platforms.Create(ctx, engine.CreatePlatformInput{Name: "Fuzz"}, nil)
	if err != nil {
		f.Fatal(err)
	}
	tenant := engine.Tenant{PlatformID: np.Platform.ID, Mode: engine.Live}
	// Unlimited, so that fuzzing does not run into the limit at once; the
	// "capped" feature has a small limit for the 429 path.
	_, err = eng.Tiers.Put(ctx, tenant, engine.TierConfigInput{Tiers: []engine.TierInput{
		{Name: "free", Limits: map[string]int64{"requests": -1, "exports": -1, "capped": 5}},
		{Name: "pro", Limits: map[string]int64{"requests": 1000}},
	}}, nil)
	if err != nil {
		f.Fatal(err)
	}
	cus, err := eng.Customers.Create(ctx, tenant, np.PublishableKey, engine.CreateCustomerInput{Email: "fuzz@example.com"}, nil)
	if err != nil {
		f.Fatal(err)
	}
	return &fuzzServer{
		handler:    dhttp.NewServer(dhttp.Config{Engine: eng, Store: st, Version: "fuzz", Logger: log}),
		secret:     np.SecretKey,
		customerID: cus.ID,
	}
}

// post sends body and checks the answer: never a 5xx; always a JSON object;
// an error carries a code and the request id of X-Request-Id.
func (s *fuzzServer) post(t *testing.T, path string, body []byte, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest("POST", path, bytes.NewReader(body))
	r.Header.Set("Authorization", "Bearer "+s.secret)
	r.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	s.handler.ServeHTTP(w, r)
	if w.Code >= 500 {
		t.Fatalf("POST %s %q → %d %s", path, body, w.Code, w.Body.Bytes())
	}
	var obj map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &obj); err != nil {
		t.Fatalf("POST %s %q → %d, body is not a JSON object: %v: %q", path, body, w.Code, err, w.Body.Bytes())
	}
	rid := w.Header().Get("X-Request-Id")
	if rid == "" {
		t.Fatalf("POST %s %q → %d without X-Request-Id", path, body, w.Code)
	}
	if w.Code >= 400 {
		if code, _ := obj["code"].(string); code == "" {
			t.Fatalf("POST %s %q → %d, error without code: %s", path, body, w.Code, w.Body.Bytes())
		}
		if got, _ := obj["requestId"].(string); got != rid {
			t.Fatalf("POST %s %q → %d, requestId %q, X-Request-Id %q", path, body, w.Code, got, rid)
		}
		if msg, _ := obj["message"].(string); msg == "" {
			t.Fatalf("POST %s %q → %d, error without message: %s", path, body, w.Code, w.Body.Bytes())
		}
	}
	return w
}

func FuzzCustomerBody(f *testing.F) {
	s := newFuzzServer(f)
	f.Add([]byte(`{"email":"seed@example.com","firstName":"Seed","lastName":"User","plan":"pro","password":"x","metadata":{"a":1}}`))
	var n atomic.Int64
	f.Fuzz(func(t *testing.T, body []byte) {
		w := s.post(t, "/api/customers", body)
		if w.Code == http.StatusCreated {
			var got struct {
				Success  bool `json:"success"`
				Customer struct {
					ID       string         `json:"id"`
					Plan     string         `json:"plan"`
					Metadata map[string]any `json:"metadata"`
				} `json:"customer"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || !got.Success || got.Customer.ID == "" || got.Customer.Metadata == nil {
				t.Fatalf("201 %s", w.Body.Bytes())
			}
			if got.Customer.Plan != "free" && got.Customer.Plan != "pro" {
				t.Fatalf("created on plan %q: %s", got.Customer.Plan, w.Body.Bytes())
			}
		}
		// The same body again, with an idempotency key of its own: a
		// replay answers byte for byte what the first call did.
		key := fmt.Sprintf("fuzz-%d", n.Add(1))
		first := s.post(t, "/api/customers", body, "Idempotency-Key", key)
		again := s.post(t, "/api/customers", body, "Idempotency-Key", key)
		if first.Code == http.StatusCreated && (again.Code != first.Code || !bytes.Equal(first.Body.Bytes(), again.Body.Bytes())) {
			t.Fatalf("replay of %q: %d %s, first %d %s", body, again.Code, again.Body.Bytes(), first.Code, first.Body.Bytes())
		}
	})
}

func FuzzTrackBody(f *testing.F) {
	s := newFuzzServer(f)
	f.Add([]byte(`{"customerId":"CUSTOMER","feature":"exports","quantity":2,"metadata":{"k":"v"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		body = bytes.ReplaceAll(body, []byte(customerPlaceholder), []byte(s.customerID))
		unknown := unknownTrackKeys(body)
		for _, path := range []string{"/api/track", "/api/check"} {
			w := s.post(t, path, body)
			// Strict bodies: a key the endpoint does not know is never
			// ignored; a 422 for it names it.
			if len(unknown) > 0 && w.Code != http.StatusUnprocessableEntity && w.Code != http.StatusBadRequest {
				t.Fatalf("%s %q with unknown fields %q → %d %s", path, body, unknown, w.Code, w.Body.Bytes())
			}
			if len(unknown) > 0 && w.Code == http.StatusUnprocessableEntity && !bytes.Contains(w.Body.Bytes(), []byte(`"message":"unknown field"`)) {
				t.Fatalf("%s %q with unknown fields %q → 422 naming none: %s", path, body, unknown, w.Body.Bytes())
			}
			if w.Code == http.StatusOK || w.Code == http.StatusTooManyRequests {
				var got struct {
					Code  string `json:"code"`
					Usage *struct {
						Count     int64 `json:"count"`
						Limit     int64 `json:"limit"`
						Remaining int64 `json:"remaining"`
					} `json:"usage"`
				}
				if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
					t.Fatal(err)
				}
				if w.Code == http.StatusTooManyRequests && got.Code != "tier_limit_reached" {
					continue
				}
				if got.Usage == nil {
					t.Fatalf("%s %q → %d without usage: %s", path, body, w.Code, w.Body.Bytes())
				}
				u := got.Usage
				if u.Count < 0 || (u.Limit >= 0 && u.Count > u.Limit && w.Code == http.StatusOK) || (u.Limit < 0) != (u.Remaining < 0) {
					t.Fatalf("%s %q → %d with inconsistent usage: %s", path, body, w.Code, w.Body.Bytes())
				}
			}
		}
		// The seed's form: the same body as the optional body of /api/data.
		if w := s.post(t, "/api/data", body, "X-User-Id", s.customerID); len(unknown) > 0 && w.Code < 400 {
			t.Fatalf("/api/data %q with unknown fields %q → %d %s", body, unknown, w.Code, w.Body.Bytes())
		}
	})
}

// unknownTrackKeys returns the top-level keys of a JSON object body that a
// track body does not have.
func unknownTrackKeys(body []byte) []string {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return nil
	}
	var out []string
	for k := range m {
		switch k {
		case "customerId", "feature", "quantity", "metadata":
		default:
			out = append(out, k)
		}
	}
	return out
}
