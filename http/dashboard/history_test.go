package dashboard_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/http/dashboard"
	"github.com/dream-api/dream-api/storage"
)

// clock is an engine clock the tests move.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) set(s string) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// newSiteWith is newSite with cfg's clock (and whatever else cfg sets).
func newSiteWith(t *testing.T, cfg engine.Config, publicURL string) *site {
	t.Helper()
	st, err := storage.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg.Store = st
	cfg.Developers = engine.DeveloperConfig{Argon2: engine.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1}}
	eng := engine.New(cfg)
	srv := httptest.NewServer(dashboard.New(dashboard.Config{Engine: eng, PublicURL: publicURL}))
	t.Cleanup(srv.Close)
	return &site{eng: eng, srv: srv}
}

func (b *browser) login(email string) {
	b.t.Helper()
	b.get("/dashboard/login")
	res := b.post("/dashboard/login", url.Values{"email": {email}, "password": {"correct horse battery"}}, nil)
	if res.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("login: %d", res.StatusCode)
	}
}

// TestCustomerPagePastPeriods: the customer page lists the periods that
// have ended (not the current one), newest first, with count / limit, and
// says so when there are none yet.
func TestCustomerPagePastPeriods(t *testing.T) {
	clk := &clock{}
	clk.set("2026-03-15T12:00:00Z")
	s := newSiteWith(t, engine.Config{Now: clk.Now}, "")
	b := s.browser(t)
	b.signup("ada@example.com", "Acme")
	ten := engine.Tenant{PlatformID: b.platformID(), Mode: engine.Test}
	ctx := context.Background()
	cus, err := s.eng.Customers.Create(ctx, ten, "", engine.CreateCustomerInput{Email: "past@example.com"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	track := func(n int64) {
		t.Helper()
		if _, err := s.eng.Meter.Track(ctx, ten, engine.TrackInput{CustomerID: cus.ID, Quantity: &n}, nil); err != nil {
			t.Fatal(err)
		}
	}
	track(3)
	code, body := b.get("/dashboard/customers/" + cus.ID)
	if code != http.StatusOK || !strings.Contains(body, `data-testid="past-periods-empty"`) || strings.Contains(body, `data-testid="past-requests-`) {
		t.Fatalf("in the first period: %d, want the empty state and no rows:\n%s", code, body)
	}
	clk.set("2026-04-10T08:00:00Z")
	track(5)
	clk.set("2026-05-02T00:00:00Z")
	track(1)
	b = s.browser(t) // the first session has expired meanwhile
	b.login("ada@example.com")
	code, body = b.get("/dashboard/customers/" + cus.ID)
	if code != http.StatusOK {
		t.Fatalf("customer page: %d", code)
	}
	rows := regexp.MustCompile(`(?s)data-testid="past-(requests-[0-9-]+)"><td>([^<]*)</td><td>requests</td><td class="num">([^<]*)</td>`).FindAllStringSubmatch(body, -1)
	var got []string
	for _, r := range rows {
		got = append(got, r[1]+" | "+r[2]+" | "+r[3])
	}
	want := []string{
		"requests-2026-04-01 | 1 Apr 2026 – 1 May 2026 | 5 / 100",
		"requests-2026-03-01 | 1 Mar 2026 – 1 Apr 2026 | 3 / 100",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("past periods:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if strings.Contains(body, `data-testid="past-periods-empty"`) {
		t.Error("the empty state is shown next to rows")
	}
}
