package postgres_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/storage/postgres"
	"github.com/dream-api/dream-api/storage/postgres/pgtest"
)

// skipOnCockroach skips t when the database at url is CockroachDB: the
// test injects failures with PostgreSQL's triggers or advisory locks.
func skipOnCockroach(t *testing.T, url string) {
	t.Helper()
	if isCockroach(t, url) {
		t.Skip("injects failures with PostgreSQL triggers")
	}
}

// isCockroach reports whether the database at url is CockroachDB, as Open
// tells (SELECT version()).
func isCockroach(t *testing.T, url string) bool {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v string
	if err := conn.QueryRow(ctx, `SELECT version()`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return strings.Contains(v, "CockroachDB")
}

// injector makes the database answer 40001 (serialization_failure) to the
// next n writes of a counter (or of another table: newInjectorOn) — at the
// write (when) or at COMMIT (a deferred constraint trigger) — as a
// contended SERIALIZABLE transaction is answered. A sequence counts the
// writes: it is not rolled back with the transaction it failed.
type injector struct {
	t    *testing.T
	conn *pgx.Conn
}

func newInjector(t *testing.T, url, when string) *injector {
	t.Helper()
	return newInjectorOn(t, url, "counters", when)
}

func newInjectorOn(t *testing.T, url, table, when string) *injector {
	t.Helper()
	skipOnCockroach(t, url)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	trigger := `CREATE TRIGGER inject_40001 BEFORE INSERT OR UPDATE ON ` + table + ` FOR EACH ROW EXECUTE FUNCTION inject_40001()`
	if when == "commit" {
		trigger = `CREATE CONSTRAINT TRIGGER inject_40001 AFTER INSERT OR UPDATE ON ` + table + `
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION inject_40001()`
	}
	for _, sql := range []string{
		`CREATE SEQUENCE inject_seq`,
		`CREATE TABLE inject_n (n bigint NOT NULL)`,
		`INSERT INTO inject_n VALUES (0)`,
		`CREATE FUNCTION inject_40001() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF nextval('inject_seq') <= (SELECT n FROM inject_n) THEN
				RAISE EXCEPTION 'injected serialization failure' USING ERRCODE = '40001';
			END IF;
			RETURN NEW;
		END $$`,
		trigger,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	return &injector{t: t, conn: conn}
}

// fail makes the next n counter writes fail.
func (in *injector) fail(n int) {
	in.t.Helper()
	if _, err := in.conn.Exec(ctx, `UPDATE inject_n SET n = $1`, n); err != nil {
		in.t.Fatal(err)
	}
	if _, err := in.conn.Exec(ctx, `ALTER SEQUENCE inject_seq RESTART`); err != nil {
		in.t.Fatal(err)
	}
}

// bump is a unit of work adding one to a counter, counting its runs.
func bump(s *postgres.Store, id string, runs *atomic.Int64) error {
	k := engine.CounterKey{Tenant: engine.Tenant{PlatformID: "plt_a"}, CustomerID: id, Feature: "f"}
	_, err := s.Update(ctx, []engine.Lock{{Kind: engine.LockCounter, Platform: "plt_a", ID: id, Feature: "f"}}, func(tx engine.Tx) (any, error) {
		runs.Add(1)
		c, err := tx.Counter(ctx, k)
		if err != nil {
			return nil, err
		}
		c.Count++
		tx.PutCounter(k, c)
		return nil, nil
	})
	return err
}

func count(t *testing.T, s *postgres.Store, id string) int64 {
	t.Helper()
	c, err := s.Counter(ctx, engine.CounterKey{Tenant: engine.Tenant{PlatformID: "plt_a"}, CustomerID: id, Feature: "f"})
	if err != nil {
		t.Fatal(err)
	}
	return c.Count
}

// A unit whose transaction the database aborts with 40001 — at a write or
// at COMMIT — is run again from BEGIN and counted once; one that keeps
// failing answers EUNAVAILABLE ("busy"), having written nothing.
func TestUpdateRetriedOnSerializationFailure(t *testing.T) {
	for _, when := range []string{"write", "commit"} {
		t.Run(when, func(t *testing.T) {
			url := pgtest.Database(t)
			s := open(t, url)
			inj := newInjector(t, url, when)
			var runs atomic.Int64

			inj.fail(1)
			if err := bump(s, "cus_1", &runs); err != nil {
				t.Fatalf("a unit aborted once: %v", err)
			}
			if runs.Load() != 2 || count(t, s, "cus_1") != 1 || s.Retries() != 1 {
				t.Errorf("aborted once: %d runs, count %d, %d retries; want 2 runs, count 1, 1 retry", runs.Load(), count(t, s, "cus_1"), s.Retries())
			}

			inj.fail(3)
			runs.Store(0)
			if err := bump(s, "cus_1", &runs); err != nil {
				t.Fatalf("a unit aborted three times: %v", err)
			}
			if runs.Load() != 4 || count(t, s, "cus_1") != 2 {
				t.Errorf("aborted three times: %d runs, count %d; want 4 runs, count 2", runs.Load(), count(t, s, "cus_1"))
			}

			inj.fail(1 << 30)
			err := bump(s, "cus_1", &runs)
			var e *engine.Error
			if !errors.As(err, &e) || e.Code != engine.EUNAVAILABLE || !strings.Contains(e.Message, "nothing was changed") {
				t.Fatalf("a unit always aborted: %v, want EUNAVAILABLE saying nothing was changed", err)
			}
			if got := count(t, s, "cus_1"); got != 2 {
				t.Errorf("count after a unit that gave up = %d, want 2", got)
			}
		})
	}
}

// Under group commit a 40001 aborts the whole group's transaction: every
// unit of it is run again, and each is counted once.
func TestGroupRetriedOnSerializationFailure(t *testing.T) {
	url := pgtest.Database(t)
	s, err := postgres.Open(ctx, url, &postgres.Options{GroupCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	inj := newInjector(t, url, "write")
	const n = 24
	for round := 1; round <= 3; round++ {
		inj.fail(2)
		var runs atomic.Int64
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = bump(s, fmt.Sprintf("cus_%02d", i), &runs)
			}()
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("round %d, unit %d: %v", round, i, errs[i])
			}
			if got := count(t, s, fmt.Sprintf("cus_%02d", i)); got != int64(round) {
				t.Errorf("round %d: unit %d's counter = %d, want %d", round, i, got, round)
			}
		}
		if runs.Load() <= n {
			t.Errorf("round %d: %d runs of %d units; want some run again", round, runs.Load(), n)
		}
	}
	if s.Retries() < 3 {
		t.Errorf("%d retries, want at least one a round", s.Retries())
	}
}

// A batch of tracks (engine.Meter.TrackBatch) whose unit is run again
// decides from the store, not from its first run: 3 events counted 3 (not
// on top of the first run's counts), and the per-minute rate of 5 taken
// once per event (not 6 times, which would refuse the last).
func TestTrackBatchRetried(t *testing.T) {
	url := pgtest.Database(t)
	n := newNode(t, "A", url, nil)
	np, err := n.eng.Platforms.Create(ctx, engine.CreatePlatformInput{Name: "Batch"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tenant := engine.Tenant{PlatformID: np.Platform.ID, Mode: engine.Live}
	tiers := limitTiers(100)
	tiers.Tiers[0].RateLimitPerMinute = 5
	if _, err := n.eng.Tiers.Put(ctx, tenant, tiers, nil); err != nil {
		t.Fatal(err)
	}
	cus, err := n.eng.Customers.Create(ctx, tenant, np.PublishableKey, engine.CreateCustomerInput{Email: "batch@example.com", Plan: "free"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	inj := newInjector(t, url, "write")
	inj.fail(1)
	one := int64(1)
	events := make([]engine.BatchEvent, 3)
	for i := range events {
		events[i] = engine.BatchEvent{TrackInput: engine.TrackInput{CustomerID: cus.ID, Feature: "requests", Quantity: &one}}
	}
	res, err := n.eng.Meter.TrackBatch(ctx, tenant, events, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n.store.Retries() != 1 {
		t.Errorf("%d retries, want 1: the injected failure did not hit the batch", n.store.Retries())
	}
	for i, r := range res {
		if r.Err != nil || r.Result == nil || !r.Result.Allowed || r.Result.Usage.Count != int64(i+1) {
			t.Errorf("event %d: %+v (err %v), want allowed with a count of %d", i, r.Result, r.Err, i+1)
		}
	}
	u, err := n.eng.Meter.Usage(ctx, tenant, cus.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(u.Usage) != 1 || u.Usage[0].Count != 3 {
		t.Errorf("stored usage %+v, want a count of 3", u.Usage)
	}
}

// An outbox lease whose transaction the database aborts (another node
// leased or wrote an entry meanwhile) is tried again: leased, not an
// error; one that keeps being aborted is reported as not leased.
func TestLeaseOutboxRetried(t *testing.T) {
	url := pgtest.Database(t)
	s := open(t, url)
	b := s.NewBatch()
	for _, id := range []string{"obx_1", "obx_2"} {
		b.PutOutbox(&engine.OutboxEntry{ID: id, Kind: engine.OutboxSyncPlan, PlatformID: "plt_a", CustomerID: "cus_1", CreatedAt: time.Now().UTC()})
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	inj := newInjectorOn(t, url, "outbox", "write")
	inj.fail(1)
	if got, err := s.LeaseOutbox(ctx, []string{"obx_1"}, time.Minute); err != nil || !got {
		t.Fatalf("a lease aborted once: got %v, %v; want it leased", got, err)
	}
	inj.fail(1 << 30)
	if got, err := s.LeaseOutbox(ctx, []string{"obx_2"}, time.Minute); err != nil || got {
		t.Fatalf("a lease always aborted: got %v, %v; want not leased, no error", got, err)
	}
}
