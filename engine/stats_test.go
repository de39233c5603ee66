package engine_test

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/storage"
)

// statsFixture is an engine on a durable store with one platform whose
// tiers are free, pro (monthly, usd) and team (yearly, eur).
type statsFixture struct {
	st  *storage.Store
	eng *engine.Engine
	np  *engine.NewPlatform
	dir string
}

func newStatsFixture(tb testing.TB, cfg engine.Config) *statsFixture {
	tb.Helper()
	f := &statsFixture{dir: tb.TempDir()}
	f.open(tb, cfg)
	np, err := f.eng.Platforms.Create(context.Background(), engine.CreatePlatformInput{Name: "Stats"}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	f.np = np
	for _, m := range []engine.Mode{engine.Live, engine.Test} {
		if _, err := f.eng.Tiers.Put(context.Background(), f.tenant(m), engine.TierConfigInput{Tiers: []engine.TierInput{
			{Name: "free", Limits: map[string]int64{"requests": 10}},
			{Name: "pro", Price: 1900, Currency: "usd", Interval: engine.IntervalMonth, Limits: map[string]int64{"requests": 1000}},
			{Name: "team", Price: 24000, Currency: "eur", Interval: engine.IntervalYear, Limits: map[string]int64{"requests": 10000}},
		}}, nil); err != nil {
			tb.Fatal(err)
		}
	}
	return f
}

func (f *statsFixture) open(tb testing.TB, cfg engine.Config) {
	tb.Helper()
	st, err := storage.Open(f.dir, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	cfg.Store, cfg.Logger = st, slog.New(slog.DiscardHandler)
	f.st, f.eng = st, engine.New(cfg)
}

func (f *statsFixture) tenant(m engine.Mode) engine.Tenant {
	return engine.Tenant{PlatformID: f.np.Platform.ID, Mode: m}
}

// randomSubscription is nil or a subscription of a random status, amount
// and interval; some are known from checkout only (no price, no amount).
func randomSubscription(r *rand.Rand) *engine.Subscription {
	statuses := []string{"active", "active", "trialing", "past_due", "canceled", "incomplete"}
	switch r.IntN(3) {
	case 0:
		return nil
	case 1:
		return &engine.Subscription{ID: "sub_x", Status: statuses[r.IntN(len(statuses))]}
	}
	price := "price_x"
	intervals := []string{engine.IntervalDay, engine.IntervalWeek, engine.IntervalMonth, engine.IntervalYear}
	return &engine.Subscription{ID: "sub_y", Status: statuses[r.IntN(len(statuses))], PriceID: &price,
		Amount: int64(r.IntN(5000)), Currency: []string{"usd", "eur"}[r.IntN(2)],
		Interval: intervals[r.IntN(len(intervals))], IntervalCount: int64(r.IntN(3))}
}

// putRawCustomers writes n customers of t straight into the store, as a
// store from before the aggregates were kept has them.
func (f *statsFixture) putRawCustomers(tb testing.TB, t engine.Tenant, n int, r *rand.Rand) {
	tb.Helper()
	plans := []string{"free", "free", "pro", "team"}
	now := time.Now()
	for done := 0; done < n; {
		b := f.st.NewBatch()
		for i := 0; i < 1000 && done < n; i++ {
			c := &engine.Customer{ID: engine.NewID("cus_", now), Email: fmt.Sprintf("raw%d@stats.example", done),
				Plan: plans[r.IntN(len(plans))], PublishableKey: f.np.PublishableKey, Metadata: map[string]any{},
				CreatedAt: now, Subscription: randomSubscription(r)}
			b.PutCustomer(t, c, "")
			done++
		}
		if err := b.Commit(); err != nil {
			tb.Fatal(err)
		}
		b.Close()
	}
}

// scanStats is what GET /api/platform/stats answered before the aggregates:
// every customer of t read and counted.
func scanStats(tb testing.TB, f *statsFixture, t engine.Tenant) *engine.PlatformStats {
	tb.Helper()
	ctx := context.Background()
	tc, err := f.eng.Tiers.Get(ctx, t)
	if err != nil {
		tb.Fatal(err)
	}
	st := &engine.PlatformStats{Mode: t.Mode, CustomersPerPlan: map[string]int{}, MRR: []engine.Money{}}
	for _, tier := range tc.Tiers {
		st.CustomersPerPlan[tier.Name] = 0
	}
	mrr := map[string]float64{}
	p := engine.Page{Limit: 100}
	for {
		cs, more, err := f.st.Customers(ctx, t, p)
		if err != nil {
			tb.Fatal(err)
		}
		for _, cus := range cs {
			st.Customers++
			st.CustomersPerPlan[cus.Plan]++
			sub := cus.Subscription
			if sub == nil {
				continue
			}
			switch sub.Status {
			case "active":
				st.Subscriptions.Active++
				amount, currency, interval, count := sub.Amount, sub.Currency, sub.Interval, sub.IntervalCount
				if sub.PriceID == nil && amount == 0 {
					if tier := tc.Tier(cus.Plan); tier != nil {
						amount, currency, interval, count = tier.Price, tier.Currency, tier.Interval, 1
					}
				}
				if currency != "" {
					mrr[currency] += monthlyOf(amount, interval, count)
				}
			case "trialing":
				st.Subscriptions.Trialing++
			case "past_due":
				st.Subscriptions.PastDue++
			case "canceled":
				st.Subscriptions.Canceled++
			}
		}
		if !more || len(cs) == 0 {
			break
		}
		p.StartingAfter = cs[len(cs)-1].ID
	}
	for cur, v := range mrr {
		st.MRR = append(st.MRR, engine.Money{Amount: int64(math.Round(v)), Currency: cur})
	}
	sort.Slice(st.MRR, func(i, j int) bool { return st.MRR[i].Currency < st.MRR[j].Currency })
	return st
}

func monthlyOf(amount int64, interval string, count int64) float64 {
	if count < 1 {
		count = 1
	}
	a := float64(amount) / float64(count)
	switch interval {
	case engine.IntervalDay:
		return a * 365 / 12
	case engine.IntervalWeek:
		return a * 52 / 12
	case engine.IntervalYear:
		return a / 12
	}
	return a
}

// sameStats fails unless got is want (GeneratedAt aside; MRR within one
// minor unit: the aggregates sum amounts before bringing them to a month).
func sameStats(tb testing.TB, got, want *engine.PlatformStats) {
	tb.Helper()
	g, w := *got, *want
	g.GeneratedAt, w.GeneratedAt = time.Time{}, time.Time{}
	gm, wm := g.MRR, w.MRR
	g.MRR, w.MRR = nil, nil
	if !reflect.DeepEqual(g, w) || len(gm) != len(wm) {
		tb.Fatalf("stats\n got %+v %v\nwant %+v %v", g, gm, w, wm)
	}
	for i := range gm {
		if gm[i].Currency != wm[i].Currency || gm[i].Amount-wm[i].Amount > 1 || wm[i].Amount-gm[i].Amount > 1 {
			tb.Fatalf("MRR %v, want %v", gm, wm)
		}
	}
}

// BenchmarkStats is GET /api/platform/stats's engine call at 50 000
// customers of one tenant.
func BenchmarkStats(b *testing.B) {
	f := newStatsFixture(b, engine.Config{})
	t := f.tenant(engine.Live)
	f.putRawCustomers(b, t, 50_000, rand.New(rand.NewPCG(1, 2)))
	ctx := context.Background()
	if _, err := f.eng.Customers.Stats(ctx, t); err != nil { // computes the aggregates once, when kept
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.eng.Customers.Stats(ctx, t); err != nil {
			b.Fatal(err)
		}
	}
}

// TestStatsFromAggregatesUnderConcurrency: 16 goroutines create, delete and
// move customers between plans at once, in both modes; the aggregates
// then answer exactly what a scan of every customer does, and the tier
// removal check counts from them.
func TestStatsFromAggregatesUnderConcurrency(t *testing.T) {
	f := newStatsFixture(t, engine.Config{})
	ctx := context.Background()
	plans := []string{"free", "pro", "team"}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 7))
			tn := f.tenant([]engine.Mode{engine.Live, engine.Test}[g%2])
			var mine []string
			for i := range 30 {
				switch op := r.IntN(4); {
				case op <= 1 || len(mine) == 0:
					c, err := f.eng.Customers.Create(ctx, tn, f.np.PublishableKey, engine.CreateCustomerInput{
						Email: fmt.Sprintf("g%d-%d@stats.example", g, i), Plan: plans[r.IntN(3)]}, nil)
					if err != nil {
						t.Error(err)
						return
					}
					mine = append(mine, c.ID)
				case op == 2:
					plan := plans[r.IntN(3)]
					if _, err := f.eng.Customers.Update(ctx, tn, mine[r.IntN(len(mine))], engine.UpdateCustomerInput{Plan: &plan}, nil); err != nil {
						t.Error(err)
						return
					}
				default:
					j := r.IntN(len(mine))
					if err := f.eng.Customers.Delete(ctx, tn, mine[j], nil); err != nil {
						t.Error(err)
						return
					}
					mine = append(mine[:j], mine[j+1:]...)
				}
			}
		}()
	}
	wg.Wait()
	for _, m := range []engine.Mode{engine.Live, engine.Test} {
		got, err := f.eng.Customers.Stats(ctx, f.tenant(m))
		if err != nil {
			t.Fatal(err)
		}
		want := scanStats(t, f, f.tenant(m))
		if want.Customers == 0 {
			t.Fatalf("%v: no customers left: the test tests nothing", m)
		}
		sameStats(t, got, want)
	}
	// The tier removal check counts from the aggregates.
	live, _ := f.eng.Customers.Stats(ctx, f.tenant(engine.Live))
	onPro := live.CustomersPerPlan["pro"]
	_, err := f.eng.Tiers.Put(ctx, f.tenant(engine.Live), engine.TierConfigInput{Tiers: []engine.TierInput{
		{Name: "free", Limits: map[string]int64{"requests": 10}},
		{Name: "team", Price: 24000, Currency: "eur", Interval: engine.IntervalYear, Limits: map[string]int64{"requests": 10000}},
	}}, nil)
	if want := fmt.Sprintf("still has %d customer(s)", onPro); onPro == 0 || engine.ErrorCode(err) != engine.EVALIDATION || !strings.Contains(err.Error(), want) {
		t.Fatalf("removing pro with %d customers on it: %v, want %q", onPro, err, want)
	}
}

// TestStatsMigratesAStoreWithoutAggregates: customers written by a build
// that kept no aggregates are counted once, from a scan, when stats are
// first asked for (and when a customer is first created), and kept exact
// from then on, across a restart.
func TestStatsMigratesAStoreWithoutAggregates(t *testing.T) {
	for _, first := range []string{"stats", "create"} {
		t.Run(first, func(t *testing.T) {
			f := newStatsFixture(t, engine.Config{})
			ctx := context.Background()
			tn := f.tenant(engine.Live)
			f.putRawCustomers(t, tn, 500, rand.New(rand.NewPCG(3, 4)))
			if _, err := f.st.Aggregates(ctx, tn); engine.ErrorCode(err) != engine.ENOTFOUND {
				t.Fatalf("aggregates before the first use: %v, want none", err)
			}
			if first == "create" {
				if _, err := f.eng.Customers.Create(ctx, tn, f.np.PublishableKey, engine.CreateCustomerInput{Email: "new@stats.example", Plan: "pro"}, nil); err != nil {
					t.Fatal(err)
				}
			}
			got, err := f.eng.Customers.Stats(ctx, tn)
			if err != nil {
				t.Fatal(err)
			}
			want := scanStats(t, f, tn)
			if want.Customers != 500+map[string]int{"stats": 0, "create": 1}[first] || want.Subscriptions.Active == 0 || len(want.MRR) != 2 {
				t.Fatalf("the fixture has %+v", want)
			}
			sameStats(t, got, want)
			if _, err := f.st.Aggregates(ctx, tn); err != nil {
				t.Fatalf("aggregates after the first use: %v", err)
			}
			cs, _, err := f.eng.Customers.List(ctx, tn, engine.Page{Limit: 3}, "")
			if err != nil {
				t.Fatal(err)
			}
			if err := f.eng.Customers.Delete(ctx, tn, cs[0].ID, nil); err != nil {
				t.Fatal(err)
			}
			team := "team"
			if _, err := f.eng.Customers.Update(ctx, tn, cs[1].ID, engine.UpdateCustomerInput{Plan: &team}, nil); err != nil {
				t.Fatal(err)
			}
			f.st.Close()
			f.open(t, engine.Config{})
			got, err = f.eng.Customers.Stats(ctx, tn)
			if err != nil {
				t.Fatal(err)
			}
			sameStats(t, got, scanStats(t, f, tn))
		})
	}
}
