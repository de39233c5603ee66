package dashboard_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/http/dashboard"
	"github.com/dream-api/dream-api/plugins"
	"github.com/dream-api/dream-api/storage"
)

// stepClock is an engine clock the test moves forward.
type stepClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *stepClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *stepClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestPluginPageShowsBreakerAndFallbacks: with a plugin that traps, the
// plugin page shows an empty state, then the breaker open until the end of
// the cool-down with the fallbacks listed (customer, feature, kind), then
// closed again once the cool-down has passed (engine clock).
func TestPluginPageShowsBreakerAndFallbacks(t *testing.T) {
	ctx := context.Background()
	rt, err := plugins.New(ctx, &plugins.Options{Deadline: time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(ctx) })
	st, err := storage.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clk := &stepClock{now: time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)}
	eng := engine.New(engine.Config{Store: st, PolicyLoader: rt.Loader(), Now: clk.Now, Logger: slog.New(slog.DiscardHandler),
		Developers: engine.DeveloperConfig{Argon2: engine.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1}}})
	srv := httptest.NewServer(dashboard.New(dashboard.Config{Engine: eng, Now: clk.Now}))
	t.Cleanup(srv.Close)
	s := &site{eng: eng, srv: srv}
	b := s.browser(t)
	b.signup("ada@example.com", "Acme")
	ten := engine.Tenant{PlatformID: b.platformID(), Mode: engine.Test} // a new session's mode

	_, page := b.get("/dashboard/plugin")
	if !strings.Contains(page, "breaker closed") || !strings.Contains(page, "No fallbacks since the server started") {
		t.Fatal("the plugin page has no breaker state and empty state before any call")
	}
	wasm, err := os.ReadFile("../../testdata/plugins/grow_on_big.wasm")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Plugins.Upload(ctx, ten, wasm, "", nil); err != nil {
		t.Fatal(err)
	}
	cus, err := eng.Customers.Create(ctx, ten, "pk", engine.CreateCustomerInput{Email: "ann@example.com"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []int64{2000, 2000, 2000, 2000, 2000, 1} { // 5 traps, then one skipped
		if _, err := eng.Meter.Track(ctx, ten, engine.TrackInput{CustomerID: cus.ID, Feature: "requests", Quantity: &q}, nil); err != nil {
			t.Fatal(err)
		}
	}
	_, page = b.get("/dashboard/plugin")
	for _, want := range []string{"breaker open", "until 2 Mar 2026 12:00:30 UTC", "after 5 errors in a row", cus.ID, ">trap<", ">breaker open<", "built-in limits"} {
		if !strings.Contains(page, want) {
			t.Errorf("the plugin page with the breaker open lacks %q", want)
		}
	}
	if n := strings.Count(page, "<code>"+cus.ID+"</code>"); n != 6 {
		t.Errorf("%d fallbacks listed, want 6", n)
	}

	clk.Add(31 * time.Second)
	one := int64(1)
	if _, err := eng.Meter.Track(ctx, ten, engine.TrackInput{CustomerID: cus.ID, Quantity: &one}, nil); err != nil {
		t.Fatal(err)
	}
	_, page = b.get("/dashboard/plugin")
	if !strings.Contains(page, "breaker closed") || !strings.Contains(page, "last opened 2 Mar 2026 12:00:00 UTC") || !strings.Contains(page, "(6 in all)") {
		t.Error("after the cool-down the page does not show the breaker closed with its history")
	}
}
