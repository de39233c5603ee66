package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/storage/postgres"
	"github.com/dream-api/dream-api/storage/postgres/pgtest"
	"github.com/dream-api/dream-api/storage/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

var ctx = context.Background()

// open opens a store on url, closed at the end of t.
func open(t *testing.T, url string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(ctx, url, &postgres.Options{PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// The PostgreSQL store passes the store contract's conformance suite, with
// and without group commit.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) engine.Store { return open(t, pgtest.Database(t)) })
}

func TestConformanceGroupCommit(t *testing.T) {
	storetest.Run(t, func(t *testing.T) engine.Store {
		s, err := postgres.Open(ctx, pgtest.Database(t), &postgres.Options{PollInterval: 50 * time.Millisecond, GroupCommit: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// The same with what CockroachDB needs and does: lock rows instead of
// advisory locks, migrations a statement at a time, every transaction
// SERIALIZABLE (so contended ones fail with 40001 and are run again).
func TestConformanceSerializable(t *testing.T) {
	for _, group := range []bool{false, true} {
		t.Run(fmt.Sprintf("group=%v", group), func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) engine.Store {
				s, err := postgres.Open(ctx, pgtest.SerializableDatabase(t), &postgres.Options{PollInterval: 50 * time.Millisecond, LockRows: true, GroupCommit: group})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			})
		})
	}
}

// Nodes starting together on a new database migrate it once; a database
// whose schema is newer than the build is refused.
func TestMigrations(t *testing.T) {
	url := pgtest.Database(t)
	const nodes = 4
	errs := make(chan error, nodes)
	stores := make(chan *postgres.Store, nodes)
	for range nodes {
		go func() {
			s, err := postgres.Open(ctx, url, nil)
			errs <- err
			stores <- s
		}()
	}
	for range nodes {
		if err := <-errs; err != nil {
			t.Fatalf("Open of a node started with others: %v", err)
		}
		s := <-stores
		t.Cleanup(func() { s.Close() })
	}
	s := open(t, url)
	if err := s.Healthy(); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var rows, max int
	if err := conn.QueryRow(ctx, `SELECT count(*), max(version) FROM schema_migrations`).Scan(&rows, &max); err != nil {
		t.Fatal(err)
	}
	if rows != postgres.SchemaVersion() || max != postgres.SchemaVersion() {
		t.Errorf("schema_migrations has %d rows up to %d; want each of %d migrations once", rows, max, postgres.SchemaVersion())
	}
	if _, err := conn.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, 'from the future')`, postgres.SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.Open(ctx, url, nil); err == nil || !strings.Contains(err.Error(), "newer than this build") {
		t.Errorf("Open of a newer database: %v, want a refusal", err)
	}
	if err := s.Healthy(); err == nil {
		t.Error("Healthy on a database whose schema changed under it")
	}
}

// Advisory lock ids are the same in every node and build: they are part of
// what nodes agree on.
func TestLockIDStable(t *testing.T) {
	l := engine.Lock{Kind: engine.LockCounter, Mode: engine.Test, Platform: "plt_a", ID: "cus_a", Feature: "requests"}
	if got, want := postgres.LockID(l), int64(-0x5a6d42919adcb245); got != want {
		t.Errorf("LockID = %#x, want %#x", got, want)
	}
	seen := map[int64]engine.Lock{}
	for _, l := range []engine.Lock{
		l,
		{Kind: engine.LockCounter, Mode: engine.Live, Platform: "plt_a", ID: "cus_a", Feature: "requests"},
		{Kind: engine.LockCustomer, Mode: engine.Test, Platform: "plt_a", ID: "cus_a"},
		{Kind: engine.LockCounter, Mode: engine.Test, Platform: "plt_a", ID: "cus_ar", Feature: "equests"},
		{Kind: engine.LockCounter, Mode: engine.Test, Platform: "plt_", ID: "acus_a", Feature: "requests"},
	} {
		id := postgres.LockID(l)
		if prev, dup := seen[id]; dup {
			t.Errorf("LockID(%+v) = LockID(%+v)", l, prev)
		}
		seen[id] = l
	}
}

// A node is never told of an older change of an object after a newer one:
// B's own write of a key, then B's poll reading A's earlier write of it,
// leaves B's listener with B's write.
func TestChangesDeliveredInOrder(t *testing.T) {
	url := pgtest.Database(t)
	a := open(t, url)
	b, err := postgres.Open(ctx, url, &postgres.Options{PollInterval: time.Hour}) // polled by hand
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	var told []string
	b.Watch(func(ch engine.Change) {
		told = append(told, fmt.Sprintf("%s revoked=%v", ch.Key.ID, ch.Key.RevokedAt != nil))
	})
	key := &engine.Key{ID: "key_1", PlatformID: "plt_a", CreatedAt: time.Now().UTC()}
	lock := []engine.Lock{{Kind: engine.LockKeys, Platform: "plt_a"}}
	put := func(s *postgres.Store, k engine.Key) {
		t.Helper()
		if _, err := s.Update(ctx, lock, func(tx engine.Tx) (any, error) { tx.PutKey(&k); return nil, nil }); err != nil {
			t.Fatal(err)
		}
	}
	put(a, *key)
	revoked := *key
	revoked.RevokedAt = &revoked.CreatedAt
	put(b, revoked)
	if err := b.PollNow(ctx); err != nil {
		t.Fatal(err)
	}
	put(a, *key) // a newer change from A is delivered
	if err := b.PollNow(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"key_1 revoked=true", "key_1 revoked=false"}
	if fmt.Sprint(told) != fmt.Sprint(want) {
		t.Errorf("B was told %q, want %q", told, want)
	}
}

// Under group commit a unit whose writes fail is rolled back alone: the
// units around it, likely in its group, commit.
func TestGroupCommitFailureIsolated(t *testing.T) {
	s, err := postgres.Open(ctx, pgtest.Database(t), &postgres.Options{GroupCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	live := engine.Tenant{PlatformID: "plt_a"}
	now := time.Now().UTC()
	if _, err := s.Update(ctx, nil, func(tx engine.Tx) (any, error) {
		tx.PutIdempotency(live, "taken", &engine.IdemRecord{Status: 200, CreatedAt: now})
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	const n = 40
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			id := fmt.Sprintf("cus_%02d", i)
			k := engine.CounterKey{Tenant: live, CustomerID: id, Feature: "f"}
			_, errs[i] = s.Update(ctx, []engine.Lock{{Kind: engine.LockCounter, Platform: "plt_a", ID: id, Feature: "f"}}, func(tx engine.Tx) (any, error) {
				c, err := tx.Counter(ctx, k)
				if err != nil {
					return nil, err
				}
				c.Count++
				tx.PutCounter(k, c)
				if i%10 == 7 {
					tx.PutIdempotency(live, "taken", &engine.IdemRecord{Status: 201, CreatedAt: now})
				}
				return nil, nil
			})
		}()
	}
	close(start)
	wg.Wait()
	for i := range n {
		c, err := s.Counter(ctx, engine.CounterKey{Tenant: live, CustomerID: fmt.Sprintf("cus_%02d", i), Feature: "f"})
		if err != nil {
			t.Fatal(err)
		}
		if i%10 == 7 {
			if !errors.Is(errs[i], engine.ErrIdempotencyRace) || c.Count != 0 {
				t.Errorf("unit %d rewrote a live idempotency record: %v, its counter %d", i, errs[i], c.Count)
			}
		} else if errs[i] != nil || c.Count != 1 {
			t.Errorf("unit %d: %v, counter %d; want it committed", i, errs[i], c.Count)
		}
	}
	r, err := s.Idempotency(ctx, live, "taken")
	if err != nil || r.Status != 200 {
		t.Errorf("the live record: %+v, %v", r, err)
	}
}

// Migrations as CockroachDB runs them (LockRows: a statement at a time,
// under the lease row): nodes starting together migrate once; a migration
// whose statements ran but whose version row is missing (a node died
// between them) is applied again without error; a lease left by a dead
// node is taken over once it ends, and a live one is waited for.
func TestMigrationsStatementByStatement(t *testing.T) {
	url := pgtest.Database(t)
	opts := &postgres.Options{LockRows: true}
	const nodes = 4
	errs := make(chan error, nodes)
	for range nodes {
		go func() {
			s, err := postgres.Open(ctx, url, opts)
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for range nodes {
		if err := <-errs; err != nil {
			t.Fatalf("Open of a node started with others: %v", err)
		}
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	versions := func() (rows, max int) {
		t.Helper()
		if err := conn.QueryRow(ctx, `SELECT count(*), max(version) FROM schema_migrations`).Scan(&rows, &max); err != nil {
			t.Fatal(err)
		}
		return rows, max
	}
	if rows, max := versions(); rows != postgres.SchemaVersion() || max != postgres.SchemaVersion() {
		t.Fatalf("schema_migrations has %d rows up to %d; want each of %d migrations once", rows, max, postgres.SchemaVersion())
	}

	// Died after the statements of 0003 and 0004, before their rows.
	if _, err := conn.Exec(ctx, `DELETE FROM schema_migrations WHERE version >= 3`); err != nil {
		t.Fatal(err)
	}
	// And left its lease, ended a minute ago.
	if _, err := conn.Exec(ctx, `INSERT INTO schema_lease (id, holder, expires_at) VALUES (1, 'dead', now() - interval '1 minute')`); err != nil {
		t.Fatal(err)
	}
	s, err := postgres.Open(ctx, url, opts)
	if err != nil {
		t.Fatalf("Open after a partial migration: %v", err)
	}
	s.Close()
	if rows, max := versions(); rows != postgres.SchemaVersion() || max != postgres.SchemaVersion() {
		t.Errorf("after the partial migration: %d rows up to %d, want %d", rows, max, postgres.SchemaVersion())
	}

	// A node migrating now holds the lease: Open waits for it.
	if _, err := conn.Exec(ctx, `DELETE FROM schema_migrations WHERE version = 4`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO schema_lease (id, holder, expires_at) VALUES (1, 'alive', now() + interval '1 hour')`); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if s, err := postgres.Open(short, url, opts); err == nil || !strings.Contains(err.Error(), "migration lease") {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open while another node holds the lease: %v, want it to wait for the lease", err)
	}
	if rows, _ := versions(); rows != postgres.SchemaVersion()-1 {
		t.Errorf("a node migrated under another's lease: %d rows", rows)
	}
}
