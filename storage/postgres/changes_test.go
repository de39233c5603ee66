package postgres_test

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/storage/postgres"
	"github.com/dream-api/dream-api/storage/postgres/pgtest"
)

// A change committed after a change that began later is still delivered
// to the other nodes: unit A logs a change, then is held at COMMIT (a
// deferred trigger waits for a lock the test holds); unit B, begun after,
// logs its change and tries to commit; node C polls meanwhile, and again
// once both are done. C must be told of both. (Change-log numbers in
// commit order: B waits for A's number to commit before it takes its
// own, so C never reads past A's.) With and without lock rows.
func TestChangeCommittedLateIsDelivered(t *testing.T) {
	for _, rows := range []bool{false, true} {
		t.Run(map[bool]string{false: "advisory", true: "lockrows"}[rows], func(t *testing.T) {
			changeCommittedLate(t, rows)
		})
	}
}

func changeCommittedLate(t *testing.T, rows bool) {
	url := pgtest.Database(t)
	skipOnCockroach(t, url)
	opts := &postgres.Options{PollInterval: time.Hour, LockRows: rows} // polled by hand
	a, b := open2(t, url, opts), open2(t, url, opts)
	c := open2(t, url, opts)
	var mu sync.Mutex
	var told []string
	c.Watch(func(ch engine.Change) {
		mu.Lock()
		told = append(told, ch.Key.ID)
		mu.Unlock()
	})

	test, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer test.Close(ctx)
	for _, sql := range []string{
		`CREATE FUNCTION hold_slow() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.payload->>'id' = 'key_slow' THEN PERFORM pg_advisory_xact_lock(4242); END IF;
			RETURN NEW;
		END $$`,
		`CREATE CONSTRAINT TRIGGER hold_slow AFTER INSERT ON changes
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION hold_slow()`,
		`SELECT pg_advisory_lock(4242)`,
	} {
		if _, err := test.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	put := func(s *postgres.Store, id, platform string) error {
		k := &engine.Key{ID: id, PlatformID: platform, CreatedAt: time.Now().UTC()}
		_, err := s.Update(ctx, []engine.Lock{{Kind: engine.LockKeys, Platform: platform}}, func(tx engine.Tx) (any, error) {
			tx.PutKey(k)
			return nil, nil
		})
		return err
	}
	// waiting reports how many sessions wait for a lock.
	waiting := func() int {
		var n int
		if err := test.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	errs := make(chan error, 2)
	go func() { errs <- put(a, "key_slow", "plt_a") }()
	eventually(t, "A is held at COMMIT", func() bool { return waiting() == 1 })
	bDone := make(chan struct{})
	go func() { errs <- put(b, "key_fast", "plt_b"); close(bDone) }()
	// B either waits (for A's change-log number) or commits; C polls
	// either way.
	eventually(t, "B waits or is done", func() bool {
		select {
		case <-bDone:
			return true
		default:
			return waiting() == 2
		}
	})
	if err := c.PollNow(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := test.Exec(ctx, `SELECT pg_advisory_unlock(4242)`); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := c.PollNow(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(told)
	if !slices.Equal(told, []string{"key_fast", "key_slow"}) {
		t.Errorf("C was told of %q, want both keys", told)
	}
}

// open2 opens a store with opts on url, closed at the end of t.
func open2(t *testing.T, url string, opts *postgres.Options) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(ctx, url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
