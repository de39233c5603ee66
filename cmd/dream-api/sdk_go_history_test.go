package main

import (
	"fmt"
	"testing"
	"time"

	dream "github.com/dream-api/dream-api/sdk/go"
	"github.com/dream-api/dream-api/storage/postgres/pgtest"
)

// TestSDKGoUsageHistory: Client.UsageHistory against the real program.
// Its clock cannot be moved, so a past period is made by changing the
// tier's interval: this calendar year's count is no longer the current
// period once the tier counts by day (unless today is January 1st). On
// both stores.
func TestSDKGoUsageHistory(t *testing.T) {
	t.Run("pebble", func(t *testing.T) { testSDKGoUsageHistory(t, startServer(t, nil)) })
	t.Run("postgres", func(t *testing.T) {
		testSDKGoUsageHistory(t, startServer(t, map[string]string{"DREAM_STORE": pgtest.Own(t).Database(t), "DREAM_MASTER_KEY": randHex(32)}))
	})
}

func testSDKGoUsageHistory(t *testing.T, ts *testServer) {
	p := ts.createPlatform(t, "History Go")
	c := sdkClient(ts, p.SK)
	ctx := t.Context()
	if _, err := c.Tiers.Replace(ctx, []dream.TierInput{{Name: "free", Interval: "year", Limits: map[string]int64{"requests": 50, "exports": 5}}}); err != nil {
		t.Fatal(err)
	}
	cu, err := c.Customers.Create(ctx, dream.CustomerParams{Email: "history@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range []dream.TrackParams{{CustomerID: cu.ID, Quantity: 4}, {CustomerID: cu.ID, Feature: "exports", Quantity: 2}} {
		if _, err := c.TrackWith(ctx, tp); err != nil {
			t.Fatal(err)
		}
	}
	if h, err := c.UsageHistory(ctx, dream.UsageHistoryParams{CustomerID: cu.ID}); err != nil || len(h.Data) != 0 || h.HasMore {
		t.Fatalf("before any period ended: %+v %v, want none", h, err)
	}
	if _, err := c.Tiers.Replace(ctx, []dream.TierInput{{Name: "free", Interval: "day", Limits: map[string]int64{"requests": 50}}}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	yearStart := time.Date(now.Year(), 1, 1, 0, 0, 0, 0, time.UTC)
	rows := func(p dream.UsageHistoryParams) []string {
		t.Helper()
		p.CustomerID = cu.ID
		h, err := c.UsageHistory(ctx, p)
		if err != nil {
			t.Fatalf("%+v: %v", p, err)
		}
		out := []string{}
		for _, u := range h.Data {
			limit := "nil"
			if u.Limit != nil {
				limit = fmt.Sprintf("%d rem %d", *u.Limit, *u.Remaining)
			}
			out = append(out, fmt.Sprintf("%s %d/%s from %s", u.Feature, u.Count, limit, u.PeriodStart.Format(time.DateOnly)))
		}
		return out
	}
	y := yearStart.Format(time.DateOnly)
	want := fmt.Sprint([]string{"exports 2/nil from " + y, "requests 4/50 rem 46 from " + y})
	if now.YearDay() == 1 {
		want = "[]"
	}
	if got := fmt.Sprint(rows(dream.UsageHistoryParams{})); got != want {
		t.Errorf("UsageHistory: %s, want %s", got, want)
	}
	if now.YearDay() != 1 {
		if got := fmt.Sprint(rows(dream.UsageHistoryParams{Feature: "requests", To: now})); got != "[requests 4/50 rem 46 from "+y+"]" {
			t.Errorf("feature and to: %s", got)
		}
		if got := rows(dream.UsageHistoryParams{From: yearStart.AddDate(1, 0, 0)}); len(got) != 0 {
			t.Errorf("from next year: %v, want none", got)
		}
		if h, err := c.UsageHistory(ctx, dream.UsageHistoryParams{CustomerID: cu.ID, Limit: 1}); err != nil || len(h.Data) != 1 || !h.HasMore {
			t.Errorf("limit 1: %+v %v", h, err)
		}
	}
	if _, err := c.UsageHistory(ctx, dream.UsageHistoryParams{CustomerID: cu.ID, Limit: 101}); !isCode(err, 422, "validation_failed") {
		t.Errorf("limit 101: %v, want 422 validation_failed", err)
	}
	if _, err := sdkClient(ts, p.TestSK).UsageHistory(ctx, dream.UsageHistoryParams{CustomerID: cu.ID}); !isCode(err, 404, "not_found") {
		t.Errorf("the test key: %v, want 404 not_found", err)
	}
}
