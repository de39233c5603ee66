package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/storage"
)

// setClock sets c (plugin_hardening_test.go's fakeClock) to an RFC 3339 time.
func setClock(c *fakeClock, s string) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// historyFixture is an engine on a fake clock with one platform whose free
// tier meters requests (100) and exports (10) by calendar month, and one
// customer on it that tracked in March, April and May 2026 (now: May).
type historyFixture struct {
	eng   *engine.Engine
	clock *fakeClock
	live  engine.Tenant
	cus   *engine.Customer
}

func newHistoryFixture(t *testing.T) *historyFixture {
	t.Helper()
	st, err := storage.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clock := &fakeClock{}
	setClock(clock, "2026-03-15T12:00:00Z")
	eng := engine.New(engine.Config{Store: st, Now: clock.Now})
	ctx := context.Background()
	np, err := eng.Platforms.Create(ctx, engine.CreatePlatformInput{Name: "Acme"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &historyFixture{eng: eng, clock: clock, live: engine.Tenant{PlatformID: np.Platform.ID, Mode: engine.Live}}
	in := engine.TierConfigInput{Tiers: []engine.TierInput{
		{Name: "free", Limits: map[string]int64{"requests": 100, "exports": 10}}, {Name: "pro"}}}
	if _, err := eng.Tiers.Put(ctx, f.live, in, nil); err != nil {
		t.Fatal(err)
	}
	if f.cus, err = eng.Customers.Create(ctx, f.live, "pk", engine.CreateCustomerInput{Email: "h@example.com"}, nil); err != nil {
		t.Fatal(err)
	}
	f.track(t, "requests", 3)
	f.track(t, "exports", 1)
	setClock(clock, "2026-04-10T08:00:00Z")
	f.track(t, "requests", 5)
	setClock(clock, "2026-05-02T00:00:00Z")
	f.track(t, "requests", 2)
	return f
}

func (f *historyFixture) track(t *testing.T, feature string, n int64) {
	t.Helper()
	r, err := f.eng.Meter.Track(context.Background(), f.live, engine.TrackInput{CustomerID: f.cus.ID, Feature: feature, Quantity: &n}, nil)
	if err != nil || !r.Allowed {
		t.Fatalf("track %s %d: %+v, %v", feature, n, r, err)
	}
}

// rows renders a history as "feature count/limit start..end" lines.
func rows(h *engine.UsageHistory) []string {
	var out []string
	for _, u := range h.Data {
		limit, rem := "null", "null"
		if u.Limit != nil {
			limit, rem = fmt.Sprint(*u.Limit), fmt.Sprint(*u.Remaining)
		}
		out = append(out, fmt.Sprintf("%s %d/%s rem %s %s..%s", u.Feature, u.Count, limit, rem,
			u.PeriodStart.Format(time.DateOnly), u.PeriodEnd.Format(time.DateOnly)))
	}
	return out
}

func TestHistoryPastPeriodsNewestFirst(t *testing.T) {
	f := newHistoryFixture(t)
	ctx := context.Background()
	march := []string{
		"exports 1/10 rem 9 2026-03-01..2026-04-01",
		"requests 3/100 rem 97 2026-03-01..2026-04-01",
	}
	april := "requests 5/100 rem 95 2026-04-01..2026-05-01"
	tests := []struct {
		name string
		in   engine.HistoryInput
		want []string
	}{
		{"all past periods, not May's", engine.HistoryInput{}, append([]string{april}, march...)},
		{"feature", engine.HistoryInput{Feature: "exports"}, march[:1]},
		{"feature never tracked", engine.HistoryInput{Feature: "uploads"}, nil},
		{"from a date: periods that end after it", engine.HistoryInput{From: "2026-04-01"}, []string{april}},
		{"from a time inside March", engine.HistoryInput{From: "2026-03-31T23:59:59Z"}, append([]string{april}, march...)},
		{"to a date: the whole day", engine.HistoryInput{To: "2026-03-31"}, march},
		{"to a date when April starts", engine.HistoryInput{To: "2026-04-01"}, append([]string{april}, march...)},
		{"to a time: periods starting at or before it", engine.HistoryInput{To: "2026-04-01T00:00:00Z"}, append([]string{april}, march...)},
		{"to just before April", engine.HistoryInput{To: "2026-03-31T23:59:59.999+00:00"}, march},
		{"from and to", engine.HistoryInput{From: "2026-04-01", To: "2026-04-30"}, []string{april}},
		{"an offset", engine.HistoryInput{From: "2026-04-01T03:00:00+02:00"}, []string{april}},
		{"an offset whose + came unencoded", engine.HistoryInput{To: "2026-04-01T01:00:00 02:00"}, march},
		{"nothing in range", engine.HistoryInput{From: "2025-01-01", To: "2025-12-31"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.CustomerID = f.cus.ID
			h, err := f.eng.Meter.History(ctx, f.live, tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := rows(h); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if h.Data == nil || h.HasMore {
				t.Errorf("data %v, hasMore %v: want a non-nil list and no more", h.Data, h.HasMore)
			}
		})
	}
}

func TestHistoryLimitCapsRows(t *testing.T) {
	f := newHistoryFixture(t)
	h, err := f.eng.Meter.History(context.Background(), f.live, engine.HistoryInput{CustomerID: f.cus.ID, Limit: "2"})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Data) != 2 || !h.HasMore || h.Data[0].PeriodStart.Month() != time.April {
		t.Errorf("limit 2: %v, hasMore %v; want April's and one of March's rows, hasMore", rows(h), h.HasMore)
	}
}

func TestHistoryPeriodBoundary(t *testing.T) {
	f := newHistoryFixture(t)
	ctx := context.Background()
	months := func() []time.Month {
		t.Helper()
		h, err := f.eng.Meter.History(ctx, f.live, engine.HistoryInput{CustomerID: f.cus.ID, Feature: "requests"})
		if err != nil {
			t.Fatal(err)
		}
		var ms []time.Month
		for _, u := range h.Data {
			ms = append(ms, u.PeriodStart.Month())
		}
		return ms
	}
	setClock(f.clock, "2026-05-31T23:59:59.999999999Z")
	if got := fmt.Sprint(months()); got != "[April March]" {
		t.Errorf("on the last instant of May: %s, want [April March] (May is current)", got)
	}
	setClock(f.clock, "2026-06-01T00:00:00Z")
	if got := fmt.Sprint(months()); got != "[May April March]" {
		t.Errorf("when June starts: %s, want [May April March]", got)
	}
}

func TestHistoryLimitIsTheCurrentPlans(t *testing.T) {
	f := newHistoryFixture(t)
	ctx := context.Background()
	pro := "pro"
	if _, err := f.eng.Customers.Update(ctx, f.live, f.cus.ID, engine.UpdateCustomerInput{Plan: &pro}, nil); err != nil {
		t.Fatal(err)
	}
	h, err := f.eng.Meter.History(ctx, f.live, engine.HistoryInput{CustomerID: f.cus.ID})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"requests 5/null rem null 2026-04-01..2026-05-01",
		"exports 1/null rem null 2026-03-01..2026-04-01",
		"requests 3/null rem null 2026-03-01..2026-04-01",
	}
	if got := rows(h); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("on a plan that meters nothing:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestHistoryIsolation(t *testing.T) {
	f := newHistoryFixture(t)
	ctx := context.Background()
	other, err := f.eng.Platforms.Create(ctx, engine.CreatePlatformInput{Name: "Other"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tn := range []engine.Tenant{
		{PlatformID: f.live.PlatformID, Mode: engine.Test},
		{PlatformID: other.Platform.ID, Mode: engine.Live},
	} {
		_, err := f.eng.Meter.History(ctx, tn, engine.HistoryInput{CustomerID: f.cus.ID})
		if engine.ErrorCode(err) != engine.ENOTFOUND {
			t.Errorf("%+v asks for the customer's history: %v, want not_found", tn, err)
		}
	}
	_, err = f.eng.Meter.History(ctx, f.live, engine.HistoryInput{CustomerID: "cus_nobody"})
	if engine.ErrorCode(err) != engine.ENOTFOUND {
		t.Errorf("unknown customer: %v, want not_found", err)
	}
}

func TestHistoryValidation(t *testing.T) {
	f := newHistoryFixture(t)
	tests := []struct {
		in    engine.HistoryInput
		field string
	}{
		{engine.HistoryInput{}, "customerId"},
		{engine.HistoryInput{CustomerID: f.cus.ID, Feature: "Requests!"}, "feature"},
		{engine.HistoryInput{CustomerID: f.cus.ID, From: "yesterday"}, "from"},
		{engine.HistoryInput{CustomerID: f.cus.ID, From: "2026-13-01"}, "from"},
		{engine.HistoryInput{CustomerID: f.cus.ID, To: "2026-04-01 00:00"}, "to"},
		{engine.HistoryInput{CustomerID: f.cus.ID, From: "2026-04-02", To: "2026-04-01"}, "to"},
		{engine.HistoryInput{CustomerID: f.cus.ID, Limit: "0"}, "limit"},
		{engine.HistoryInput{CustomerID: f.cus.ID, Limit: "101"}, "limit"},
		{engine.HistoryInput{CustomerID: f.cus.ID, Limit: "ten"}, "limit"},
	}
	for _, tt := range tests {
		_, err := f.eng.Meter.History(context.Background(), f.live, tt.in)
		var e *engine.Error
		if !errors.As(err, &e) || e.Code != engine.EVALIDATION || len(e.Fields) != 1 || e.Fields[0].Field != tt.field {
			t.Errorf("%+v: %v, want validation_failed naming %s", tt.in, err, tt.field)
		}
	}
}
