package dashboard_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/http/dashboard"
	"github.com/dream-api/dream-api/storage"
)

// newHookSite is newSite with webhook endpoints on private addresses
// allowed (DREAM_WEBHOOK_ALLOW_PRIVATE=1) when allowPrivate.
func newHookSite(t *testing.T, allowPrivate bool) *site {
	t.Helper()
	st, err := storage.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	eng := engine.New(engine.Config{Store: st, Webhooks: engine.WebhookOptions{AllowPrivate: allowPrivate},
		Developers: engine.DeveloperConfig{Argon2: engine.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1}}})
	srv := httptest.NewServer(dashboard.New(dashboard.Config{Engine: eng}))
	t.Cleanup(srv.Close)
	return &site{eng: eng, srv: srv}
}

// receiver is a webhook endpoint that records the bodies it gets.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []string
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.bodies = append(rc.bodies, string(b))
		rc.mu.Unlock()
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) got() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.bodies...)
}

var whsecRe = regexp.MustCompile(`data-testid="new-whsec">(whsec_[0-9A-Za-z_-]+)<`)

func TestWebhooksAddPingRetryRotateDelete(t *testing.T) {
	s := newHookSite(t, true)
	rc := newReceiver(t)
	b := s.browser(t)
	b.signup("ada@example.com", "Acme")
	ten := engine.Tenant{PlatformID: b.platformID(), Mode: engine.Test}
	ctx := context.Background()

	if _, body := b.get("/dashboard/webhooks"); !strings.Contains(body, `href="/dashboard/webhooks" aria-current="page"`) {
		t.Error("Webhooks is not the current navigation entry")
	}
	xss := `<script>alert(1)</script><img src=x onerror=alert(2)>`
	res := b.post("/dashboard/webhooks", url.Values{"url": {rc.URL + "/hook"}, "events": {engine.EventCustomerCreated, engine.EventPlanChanged},
		"description": {xss}}, nil)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("add: %d", res.StatusCode)
	}
	_, page := b.get("/dashboard/webhooks")
	m := whsecRe.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("the new secret is not shown")
	}
	if !strings.Contains(page, "Store the signing secret now") || !strings.Contains(page, `data-copy="`+m[1]+`"`) {
		t.Error("no store-it-now notice with a copy button")
	}
	_, page = b.get("/dashboard/webhooks")
	if strings.Contains(page, m[1]) || strings.Contains(page, "whsec_") {
		t.Fatal("the secret is shown again on reload")
	}
	eps, _ := s.eng.Webhooks.List(ctx, ten)
	if len(eps) != 1 {
		t.Fatalf("%d endpoints", len(eps))
	}
	e := eps[0]
	for _, want := range []string{rc.URL + "/hook", e.ID, "<code>customer.created</code>, <code>customer.plan_changed</code>", ">enabled<"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script>alert") || strings.Contains(page, "<img src=x") {
		t.Error("the description is rendered as markup")
	}
	if !strings.Contains(page, "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;") {
		t.Error("the description is not shown escaped")
	}

	// Test ping: queued, delivered by the worker, shown in the log.
	if res := b.post("/dashboard/webhooks/"+e.ID+"/test", nil, nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("test ping: %d", res.StatusCode)
	}
	if _, err := s.eng.DeliverWebhooks(ctx); err != nil {
		t.Fatal(err)
	}
	got := rc.got()
	if len(got) != 1 || !strings.Contains(got[0], `"type":"ping"`) {
		t.Fatalf("the receiver got %q", got)
	}
	ds, _, _ := s.eng.Webhooks.Deliveries(ctx, ten, e.ID, engine.Page{Limit: 10})
	if len(ds) != 1 || ds[0].State != engine.DeliveryDelivered {
		t.Fatalf("deliveries %+v", ds)
	}
	evt := ds[0].EventID
	_, page = b.get("/dashboard/webhooks")
	row := regexp.MustCompile(`(?s)<tr data-testid="delivery">.*?</tr>`).FindString(page)
	for _, want := range []string{evt, "<code>ping</code>", ">delivered<", `<td class="num">200</td><td class="num">1</td>`,
		"/dashboard/webhooks/" + e.ID + "/deliveries/" + evt + "/retry"} {
		if !strings.Contains(row, want) {
			t.Errorf("the delivery row lacks %q: %s", want, row)
		}
	}

	// Retry: sent again.
	if res := b.post("/dashboard/webhooks/"+e.ID+"/deliveries/"+evt+"/retry", nil, nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("retry: %d", res.StatusCode)
	}
	s.eng.DeliverWebhooks(ctx)
	if got := rc.got(); len(got) != 2 || got[1] != got[0] {
		t.Errorf("after the retry the receiver got %d bodies", len(got))
	}
	if res := b.post("/dashboard/webhooks/"+e.ID+"/deliveries/evt_nope/retry", nil, nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("retry of an unknown event: %d", res.StatusCode)
	}

	// Rotate: a new secret, shown once.
	if res := b.post("/dashboard/webhooks/"+e.ID+"/rotate", nil, nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("rotate: %d", res.StatusCode)
	}
	_, page = b.get("/dashboard/webhooks")
	if m2 := whsecRe.FindStringSubmatch(page); m2 == nil || m2[1] == m[1] {
		t.Error("the rotated secret is not shown (or is the old one)")
	}

	// Disable, enable.
	if res := b.post("/dashboard/webhooks/"+e.ID+"/disable", nil, nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("disable: %d", res.StatusCode)
	}
	if _, page = b.get("/dashboard/webhooks"); !strings.Contains(page, ">disabled<") || strings.Contains(page, `data-testid="endpoint-test"`) {
		t.Error("the disabled endpoint is not shown disabled")
	}
	if res := b.post("/dashboard/webhooks/"+e.ID+"/enable", nil, nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("enable: %d", res.StatusCode)
	}
	if got, _ := s.eng.Webhooks.Get(ctx, ten, e.ID); !got.Enabled {
		t.Error("not enabled again")
	}

	// Delete, after a confirmation.
	if code, body := b.get("/dashboard/webhooks/" + e.ID + "/delete"); code != 200 || !strings.Contains(body, "Delete endpoint") {
		t.Fatalf("delete confirmation: %d", code)
	}
	if res := b.post("/dashboard/webhooks/"+e.ID+"/delete", nil, nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("delete: %d", res.StatusCode)
	}
	if eps, _ := s.eng.Webhooks.List(ctx, ten); len(eps) != 0 {
		t.Error("not deleted")
	}
	if _, page = b.get("/dashboard/webhooks"); !strings.Contains(page, `data-testid="no-endpoints"`) {
		t.Error("the deleted endpoint is still listed")
	}
}

func TestWebhookURLErrorsNextToTheField(t *testing.T) {
	s := newHookSite(t, false)
	b := s.browser(t)
	b.signup("ada@example.com", "Acme")
	ten := engine.Tenant{PlatformID: b.platformID(), Mode: engine.Test}
	b.get("/dashboard/webhooks")
	for _, tc := range []struct{ url, want string }{
		{"http://example.com/hook", "must be https"},
		{"https://169.254.169.254/latest", "link-local"},
		{"https://10.0.0.1/hook", "DREAM_WEBHOOK_ALLOW_PRIVATE"},
		{"", "is required"},
	} {
		req, _ := http.NewRequest("POST", s.srv.URL+"/dashboard/webhooks", strings.NewReader(withCSRF(b, url.Values{"url": {tc.url}, "events": {engine.EventCustomerDeleted}}).Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		res, err := b.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(res)
		if res.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("%q: status %d", tc.url, res.StatusCode)
			continue
		}
		i := strings.Index(body, `name="url"`)
		j := strings.Index(body, `data-testid="url-error"`)
		if i < 0 || j < i || !strings.Contains(body[j:], tc.want) || strings.Index(body[j:], tc.want) > 200 {
			t.Errorf("%q: no error %q next to the url field", tc.url, tc.want)
		}
		if !strings.Contains(body, `value="`+tc.url+`"`) || !strings.Contains(body, `value="customer.deleted" checked`) {
			t.Errorf("%q: what was typed is not kept", tc.url)
		}
	}
	if eps, _ := s.eng.Webhooks.List(context.Background(), ten); len(eps) != 0 {
		t.Errorf("%d endpoints created from bad input", len(eps))
	}
}

func TestWebhookOfAnotherPlatformIsNotFound(t *testing.T) {
	s := newHookSite(t, true)
	rc := newReceiver(t)
	ctx := context.Background()
	ada := s.browser(t)
	ada.signup("ada@example.com", "Acme")
	ten := engine.Tenant{PlatformID: ada.platformID(), Mode: engine.Test}
	cw, err := s.eng.Webhooks.Create(ctx, ten, engine.CreateWebhookInput{URL: rc.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	id := cw.Endpoint.ID
	sent, err := s.eng.Webhooks.Test(ctx, ten, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	evt := sent.Delivery.EventID

	eve := s.browser(t)
	eve.signup("eve@example.com", "Evil")
	if _, page := eve.get("/dashboard/webhooks"); strings.Contains(page, id) || strings.Contains(page, rc.URL) {
		t.Error("another platform's endpoint is listed")
	}
	if code, _ := eve.get("/dashboard/webhooks/" + id + "/delete"); code != http.StatusNotFound {
		t.Errorf("delete confirmation: %d", code)
	}
	for _, action := range []string{"test", "rotate", "disable", "enable", "delete", "deliveries/" + evt + "/retry"} {
		if res := eve.post("/dashboard/webhooks/"+id+"/"+action, nil, nil); res.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d", action, res.StatusCode)
		}
	}
	// Ada's own live mode does not see her test endpoint either.
	if res := ada.post("/dashboard/switch", url.Values{"mode": {"live"}, "back": {"/dashboard/webhooks"}}, nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("switch: %d", res.StatusCode)
	}
	if _, page := ada.get("/dashboard/webhooks"); strings.Contains(page, id) || !strings.Contains(page, "live mode") {
		t.Error("the test endpoint shows in live mode")
	}
	if res := ada.post("/dashboard/webhooks/"+id+"/disable", nil, nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("live-mode disable of a test endpoint: %d", res.StatusCode)
	}

	e, err := s.eng.Webhooks.Get(ctx, ten, id)
	if err != nil || !e.Enabled || string(e.Secret) != string(cw.Endpoint.Secret) {
		t.Fatalf("the endpoint changed: %+v, %v", e, err)
	}
	ds, _, _ := s.eng.Webhooks.Deliveries(ctx, ten, id, engine.Page{Limit: 10})
	if len(ds) != 1 || ds[0].EventID != evt {
		t.Errorf("deliveries changed: %+v", ds)
	}
}
