package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
)

// TestPluginHealth: a plugin that traps on big quantities opens its breaker
// after 5 errors in a row; Health shows it open until the end of the
// cool-down (engine clock), with the fallbacks newest first (trap, then
// breaker open); after the cool-down a good call closes it. Nothing is
// recorded for calls the plugin decided.
func TestPluginHealth(t *testing.T) {
	ctx := context.Background()
	f := newPluginFixture(t, nil)
	if _, err := f.eng.Plugins.Upload(ctx, f.live, readWasm(t, "grow_on_big"), "", nil); err != nil {
		t.Fatal(err)
	}
	cus, err := f.eng.Customers.Create(ctx, f.live, "pk", engine.CreateCustomerInput{Email: "a@example.com"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	check := func(q int64) *engine.TrackResult {
		t.Helper()
		res, err := f.eng.Meter.Check(ctx, f.live, engine.TrackInput{CustomerID: cus.ID, Quantity: &q}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if h := f.eng.Plugins.Health(f.live); h.State != "closed" || len(h.Fallbacks) != 0 || h.Total != 0 {
		t.Fatalf("before any call: %+v", h)
	}
	check(1)
	if h := f.eng.Plugins.Health(f.live); !h.Loaded || h.State != "closed" || h.Total != 0 {
		t.Fatalf("after a good call: %+v", h)
	}

	opened := f.clock.Now()
	for range 5 {
		if res := check(2000); res.Plugin == nil || !res.Plugin.Fallback {
			t.Fatalf("a trapping call did not fall back: %+v", res)
		}
	}
	f.clock.Add(time.Second)
	check(1) // skipped: the breaker is open
	h := f.eng.Plugins.Health(f.live)
	if h.State != "open" || h.OpenUntil == nil || !h.OpenUntil.Equal(opened.Add(30*time.Second)) ||
		h.LastOpenedAt == nil || !h.LastOpenedAt.Equal(opened) || h.Threshold != 5 {
		t.Fatalf("after 5 traps: state %s until %v, opened %v (want until %v)", h.State, h.OpenUntil, h.LastOpenedAt, opened.Add(30*time.Second))
	}
	if h.Total != 6 || len(h.Fallbacks) != 6 {
		t.Fatalf("fallbacks: total %d, listed %d, want 6", h.Total, len(h.Fallbacks))
	}
	if got := h.Fallbacks[0]; got.Kind != engine.FallbackBreakerOpen || got.CustomerID != cus.ID || got.Feature != "requests" || !got.At.Equal(opened.Add(time.Second)) {
		t.Errorf("newest fallback %+v, want breaker open for %s", got, cus.ID)
	}
	if got := h.Fallbacks[5]; got.Kind != engine.FallbackTrap || got.Detail == "" || got.Denied {
		t.Errorf("oldest fallback %+v, want a trap", got)
	}

	// The cool-down passes; a good call closes the breaker.
	f.clock.Add(30 * time.Second)
	if res := check(1); res.Plugin == nil || res.Plugin.Fallback {
		t.Fatalf("after the cool-down: %+v", res)
	}
	if h := f.eng.Plugins.Health(f.live); h.State != "closed" || h.OpenUntil != nil || h.Total != 6 {
		t.Errorf("after the cool-down: %+v", h)
	}

	// At most 20 are kept, newest first.
	for range 30 {
		check(2000)
		f.clock.Add(31 * time.Second) // each sees a closed breaker or a cool-down to pass
	}
	if h := f.eng.Plugins.Health(f.live); len(h.Fallbacks) != 20 || h.Total != 36 || !h.Fallbacks[0].At.After(h.Fallbacks[19].At) {
		t.Errorf("after 36 fallbacks: %d listed, total %d", len(h.Fallbacks), h.Total)
	}
	other := engine.Tenant{PlatformID: f.live.PlatformID, Mode: engine.Test}
	if h := f.eng.Plugins.Health(other); h.Total != 0 || h.Loaded {
		t.Errorf("the test mode shares the live mode's health: %+v", h)
	}
}
