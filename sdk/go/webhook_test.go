package dream

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func sign(secret string, t int64, body string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "%d.%s", t, body)
	return hex.EncodeToString(mac.Sum(nil))
}

func TestVerifyWebhook(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := `{"id":"evt_1","type":"usage.threshold","createdAt":"2027-01-15T08:00:00Z","mode":"test","data":{"customerId":"cus_1","threshold":80}}`
	ts := now.Unix() - 10
	good := fmt.Sprintf("t=%d,v1=%s", ts, sign("whsec_a", ts, body))
	tests := []struct {
		name, header, body, secret string
		ok                         bool
	}{
		{"valid", good, body, "whsec_a", true},
		{"one of two secrets (rotation)", fmt.Sprintf("t=%d,v1=%s,v1=%s", ts, sign("whsec_old", ts, body), sign("whsec_a", ts, body)), body, "whsec_a", true},
		{"other secret", good, body, "whsec_b", false},
		{"changed body", good, body + " ", "whsec_a", false},
		{"too old", fmt.Sprintf("t=%d,v1=%s", ts-600, sign("whsec_a", ts-600, body)), body, "whsec_a", false},
		{"from the future", fmt.Sprintf("t=%d,v1=%s", ts+600, sign("whsec_a", ts+600, body)), body, "whsec_a", false},
		{"no t", "v1=" + sign("whsec_a", ts, body), body, "whsec_a", false},
		{"empty", "", body, "whsec_a", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := verifyWebhook([]byte(tc.body), tc.header, tc.secret, 0, now)
			if tc.ok {
				if err != nil || e.ID != "evt_1" || e.Type != "usage.threshold" || e.Mode != "test" || string(e.Data) == "" {
					t.Fatalf("%+v %v", e, err)
				}
			} else if !errors.Is(err, ErrInvalidSignature) {
				t.Fatalf("%v, want ErrInvalidSignature", err)
			}
		})
	}
}

// TestWebhooksServiceRequests: each Webhooks call's method, path (ids
// escaped) and query, and an Idempotency-Key on every POST.
func TestWebhooksServiceRequests(t *testing.T) {
	type seen struct{ method, uri, idem string }
	var got []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, seen{r.Method, r.URL.RequestURI(), r.Header.Get("Idempotency-Key")})
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"endpoint":{"id":"whe_1"},"secret":"whsec_x","delivery":{"eventId":"evt_1"},"data":[{"id":"whe_1"}],"hasMore":false}`))
	}))
	defer srv.Close()
	c := New(Options{SecretKey: "sk_test_x", BaseURL: srv.URL})
	ctx := t.Context()
	cr, err := c.Webhooks.Create(ctx, WebhookParams{URL: "https://a.test/h", IdempotencyKey: "idk_mine"})
	if err != nil || cr.Secret != "whsec_x" || cr.Endpoint.ID != "whe_1" {
		t.Fatalf("Create: %+v %v", cr, err)
	}
	c.Webhooks.List(ctx)
	c.Webhooks.Get(ctx, "whe/1")
	c.Webhooks.Update(ctx, "whe_1", WebhookUpdate{Enabled: Bool(true)})
	c.Webhooks.Delete(ctx, "whe_1")
	c.Webhooks.RotateSecret(ctx, "whe_1")
	if d, err := c.Webhooks.Test(ctx, "whe_1"); err != nil || d.EventID != "evt_1" {
		t.Fatalf("Test: %+v %v", d, err)
	}
	c.Webhooks.Deliveries(ctx, "whe_1", ListParams{Limit: 5, StartingAfter: "evt_9"})
	c.Webhooks.Retry(ctx, "whe_1", "evt_1")
	want := []seen{
		{"POST", "/api/platform/webhooks", "idk_mine"},
		{"GET", "/api/platform/webhooks", ""},
		{"GET", "/api/platform/webhooks/whe%2F1", ""},
		{"PATCH", "/api/platform/webhooks/whe_1", ""},
		{"DELETE", "/api/platform/webhooks/whe_1", ""},
		{"POST", "/api/platform/webhooks/whe_1/rotate-secret", "*"},
		{"POST", "/api/platform/webhooks/whe_1/test", "*"},
		{"GET", "/api/platform/webhooks/whe_1/deliveries?limit=5&startingAfter=evt_9", ""},
		{"POST", "/api/platform/webhooks/whe_1/deliveries/evt_1/retry", "*"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d requests %+v, want %d", len(got), got, len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.method != w.method || g.uri != w.uri || (w.idem == "*" && !strings.HasPrefix(g.idem, "idk_")) || (w.idem != "*" && g.idem != w.idem) {
			t.Errorf("request %d: %+v, want %+v", i, g, w)
		}
	}
}
