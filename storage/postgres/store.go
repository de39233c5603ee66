// Package postgres keeps dream-api's data in PostgreSQL (or CockroachDB
// v24.1+: see below). It implements engine.Store, so that several
// stateless `dream-api serve` nodes can share one database and stay exact.
//
// # Layout
//
// One table per kind of record (migrations/*.sql): platforms, api_keys,
// tiers, customers, counters, policy_state, idempotency, plugin_settings,
// plugin_versions, outbox, cors, cors_origins, the stripe_* tables,
// platform_billing, meta (the admin token), changes (the change log) and
// change_seq (its numbering), dream_locks (lock rows). Config-like records
// are jsonb; counters, idempotency records and index columns are plain
// columns. Open runs the embedded, versioned, up-only migrations under a
// lease row (schema_lease; migrate explains it), so that nodes starting
// together migrate once.
//
// # Units of work across nodes
//
// Update is one transaction: BEGIN, the locks of its engine.Locks — each a
// stable 64-bit hash (LockID, FNV-1a of its fields), taken in hash order so
// that two units never deadlock on them — fn reading through the
// transaction, its writes sent as one pipelined batch, COMMIT. On
// PostgreSQL the locks are pg_advisory_xact_lock; with Options.LockRows
// (forced on CockroachDB, which has no advisory locks) they are rows of
// dream_locks upserted in one statement (takeLocks). The same locks are
// also held in-process (striped mutexes) so that units of one node queue
// in memory rather than on the database, and so that this node's Watch
// listener is told of a unit's changes before its locks are released. A
// track's read–decide–write of a counter (and of plugin state) under the
// lock of (platform, mode, customer, feature) is therefore exact across
// nodes. Idempotency records are unique by (platform, mode, key): a unit
// that would replace a record younger than engine.IdempotencyTTL fails
// with engine.ErrIdempotencyRace and writes nothing, and the engine
// replays the stored record.
//
// A transaction the database aborts with 40001 (serialization_failure:
// CockroachDB's "restart transaction", PostgreSQL's under SERIALIZABLE) or
// 40P01 is run again from BEGIN, fn included (Update, runGroup,
// batch.Commit), a bounded number of times, then answers EUNAVAILABLE. fn
// must have no effect outside its tx; the engine's unit functions were
// audited for it: TrackBatch's kept state from a first run and took the
// per-minute rate again (fixed in engine/batch.go); EndUserAuth.Refresh's
// "token reused" flag could outlive a run (reset per run); the others
// build what they write from what they read through tx, and what a run
// that is retried leaves behind is not durable: a log line, a WASM policy
// call counted again by its metrics and its error breaker, a webhook
// worker woken early.
//
// # Caches across nodes
//
// Every applied change that the engine caches (tier configs, keys, plugin
// settings, platform billing, platform quotas) is appended to the changes
// table in the same transaction as the write, numbered from the one row of
// change_seq (writer.flush): its row lock, held to COMMIT, puts numbers in
// commit order, so a node that has read number n has seen every change
// below n. Every node polls the table (Options.PollInterval, 200 ms by
// default) and feeds its Watch listener; a change is delivered at most
// once per node and never after a newer change of the same object, so a
// key revoked on one node is refused by every node within about one poll.
// Rows older than Options.ChangeRetention are deleted.
//
// # PostgreSQL and CockroachDB
//
// Written for PostgreSQL 13 or later (tested with 15) and CockroachDB
// v24.1 or later (not run there: docs/deployment.md, "CockroachDB", lists
// the statements used, their support and what was tested in its stead).
// Open asks SELECT version() and, on CockroachDB, sets Options.LockRows:
// lock rows instead of advisory locks, migrations a statement at a time.
// The SQL otherwise sticks to what both run: no extensions, no
// LISTEN/NOTIFY, INSERT … ON CONFLICT, UPDATE … RETURNING, jsonb, arrays,
// FOR UPDATE SKIP LOCKED. CockroachDB's 40003 (an ambiguous result) is
// EUNAVAILABLE with the outcome-unknown message (errors.go).
//
// Outbox entries are leased to the node that delivers them
// (engine.OutboxLeaser, outbox.go). Group commit (Options.GroupCommit,
// group.go) is off by default here; dream-api serve turns it on.
// Checkpoint is not supported (use pg_dump). A database that cannot be
// reached answers engine.EUNAVAILABLE (errors.go); a unit or group is
// bounded by Options.UnitTimeout and a read outside one by
// Options.ReadTimeout. CopyTo copies the database into another store
// (export.go); PlatformBytes sizes a platform for the stored-bytes quota
// (sizer.go).
package postgres

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dream-api/dream-api/engine"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Defaults of Options.
const (
	DefaultPollInterval    = 200 * time.Millisecond
	DefaultChangeRetention = 10 * time.Minute
	DefaultMaxConns        = 32
	// DefaultConnectTimeout bounds a new connection unless the URL sets
	// connect_timeout.
	DefaultConnectTimeout = 5 * time.Second
	// DefaultUnitTimeout bounds a unit of work (or a group of them) in the
	// database, from BEGIN to COMMIT, retries included.
	DefaultUnitTimeout = 10 * time.Second
	// DefaultReadTimeout bounds a read made outside a unit of work.
	DefaultReadTimeout = 10 * time.Second
)

// Page sizes of Platforms, Customers and Outbox, as in the Pebble store.
const (
	defaultPageLimit = 20
	maxPageLimit     = 100
)

// ErrClosed is returned by the methods of a closed Store.
var ErrClosed = errors.New("postgres: closed")

// Options configure Open. A nil *Options means all defaults.
type Options struct {
	// Logger receives the poller's problems. Defaults to discarding.
	Logger *slog.Logger
	// PollInterval is how often the change log is read. Defaults to
	// DefaultPollInterval.
	PollInterval time.Duration
	// ChangeRetention is how long change-log rows are kept. Defaults to
	// DefaultChangeRetention; a node whose poller falls further behind
	// misses changes.
	ChangeRetention time.Duration
	// GroupCommit runs the units of work of this node that arrive while a
	// transaction runs together in the next one, with one COMMIT
	// (group.go). Defaults to false: one transaction a unit.
	GroupCommit bool
	// UnitTimeout is the most a unit of work (a group of them with
	// GroupCommit) may spend in the database, BEGIN to COMMIT, before it
	// is abandoned with EUNAVAILABLE: a database that stops answering
	// without closing its connections (a partition, a hung server) holds
	// a call that long, not until the system's TCP timeout. Defaults to
	// DefaultUnitTimeout.
	UnitTimeout time.Duration
	// ReadTimeout is the most a read made outside a unit of work (a
	// Store's Reader call) may take before it is abandoned with
	// EUNAVAILABLE, as UnitTimeout is for units. Defaults to
	// DefaultReadTimeout.
	ReadTimeout time.Duration
	// LockRows takes a unit's locks as rows of dream_locks (upserted, so
	// row-locked to COMMIT) instead of PostgreSQL advisory locks, and runs migrations a
	// statement at a time: what CockroachDB, which has no advisory locks
	// and no transactional DDL, needs. Defaults to false; always on when
	// the server is CockroachDB (Open asks SELECT version()). Set it to
	// run that path on PostgreSQL (tests).
	LockRows bool
	// MaxConns is the connection pool's size, unless the URL sets
	// pool_max_conns. Defaults to DefaultMaxConns. Units of work use at
	// most half of it at once.
	MaxConns int32
}

func (o *Options) ensureDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.ChangeRetention <= 0 {
		o.ChangeRetention = DefaultChangeRetention
	}
	if o.MaxConns <= 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.UnitTimeout <= 0 {
		o.UnitTimeout = DefaultUnitTimeout
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
}

// Store is the PostgreSQL implementation of engine.Store. Safe for
// concurrent use; the caller MUST call Close.
type Store struct {
	reader
	pool  *pgxpool.Pool
	opts  Options
	locks *stripes
	// units admits at most half the pool's connections to units of work,
	// so that a read made outside a unit's transaction (by the engine,
	// even while it runs a unit) always finds a connection.
	units chan struct{}
	// groups queues the units of work under GroupCommit.
	groups *grouper

	// watch is the Watch listener; delivery (deliver) keeps the sequence
	// number of the last change told of each object, under watchMu.
	watch   func(engine.Change)
	watchMu sync.Mutex
	lastSeq map[string]int64
	cursor  int64 // highest change-log seq read by the poller

	// retries counts the runs of units (and groups, and batches) again
	// after the database aborted their transaction (Retries).
	retries atomic.Int64

	stop     context.CancelFunc
	pollDone chan struct{}
	closeMu  sync.Mutex
	closed   bool
}

// Open connects to the database at url (a postgres:// URL or a libpq
// key=value string), runs the migrations it lacks and starts polling the
// change log.
func Open(ctx context.Context, url string, opts *Options) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	o.ensureDefaults()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = o.MaxConns
	}
	if !strings.Contains(url, "connect_timeout") {
		// A database that does not answer is EUNAVAILABLE after this,
		// rather than after the system's TCP timeout (minutes).
		cfg.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	var version string
	if err := pool.QueryRow(ctx, `SELECT version()`).Scan(&version); err != nil {
		pool.Close()
		return nil, classify(fmt.Errorf("postgres: connect: %w", err))
	}
	if strings.Contains(version, "CockroachDB") {
		o.LockRows = true
	}
	if err := migrate(ctx, pool, o.LockRows); err != nil {
		pool.Close()
		return nil, err
	}
	s := &Store{
		reader:  reader{q: guarded{timed{pool, o.ReadTimeout}}},
		pool:    pool,
		opts:    o,
		locks:   newStripes(lockStripes),
		units:   make(chan struct{}, max(1, cfg.MaxConns/2)),
		groups:  &grouper{max: max(1, min(maxGroups, int(cfg.MaxConns/2)))},
		lastSeq: make(map[string]int64),
	}
	// Changes before now are in the tables every cache fills from.
	if err := pool.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM changes`).Scan(&s.cursor); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: read the change log: %w", err)
	}
	bg, stop := context.WithCancel(context.Background())
	s.stop, s.pollDone = stop, make(chan struct{})
	go s.poll(bg)
	return s, nil
}

// SchemaVersion is the newest migration this build has.
func SchemaVersion() int {
	v, _ := latestMigration()
	return v
}

func latestMigration() (int, error) {
	files, err := migrationFiles()
	if err != nil || len(files) == 0 {
		return 0, err
	}
	return files[len(files)-1].version, nil
}

type migrationFile struct {
	version int
	name    string
}

// migrationFiles lists the embedded migrations by version: NNNN_name.sql.
func migrationFiles() ([]migrationFile, error) {
	entries, err := fs.ReadDir(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	var files []migrationFile
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("postgres: migration %s is not named NNNN_name.sql", e.Name())
		}
		files = append(files, migrationFile{version: v, name: e.Name()})
	}
	slices.SortFunc(files, func(a, b migrationFile) int { return a.version - b.version })
	return files, nil
}

// Migrations take no advisory lock (CockroachDB has none) and run DDL the
// way CockroachDB allows it:
//
//   - The lease. schema_lease holds one row naming the node that migrates
//     and until when (the database's clock). A node takes it with one
//     INSERT … ON CONFLICT DO UPDATE … WHERE the lease ended (a single
//     statement, so two nodes cannot both take it), waits while another
//     node holds it, renews it before each migration and deletes it when
//     done. A node that dies while migrating holds it migrationLease at
//     most. The lease's table and schema_migrations are made with CREATE
//     TABLE IF NOT EXISTS before it, retried when two nodes race on it.
//   - Version rows are the truth: under the lease a node reads the
//     applied versions and applies the rest in order, each followed by
//     its row; a version row is inserted by the migration that made it,
//     so a second run of a migration fails on the primary key rather than
//     being recorded twice.
//   - PostgreSQL runs each migration and its version row as one
//     transaction (its DDL is transactional). CockroachDB does not support
//     DDL in explicit transactions with full atomicity (and a transaction
//     mixing DDL with writes may fail), so there each statement runs alone
//     (an implicit transaction), an "already exists" answer counts as done
//     (a node that died mid-migration left it), and the version row comes
//     last. Migrations from 0004 on are written to be re-runnable (IF NOT
//     EXISTS, ON CONFLICT DO NOTHING).

// migrationLease is how long a node may migrate before another node may
// take the lease over; renewed before each migration.
const migrationLease = 2 * time.Minute

// migrate applies the migrations the database lacks under the migration
// lease, so that nodes starting together migrate once. A database newer
// than this build is refused. perStatement runs each statement alone
// (CockroachDB) instead of a transaction per migration.
func migrate(ctx context.Context, pool *pgxpool.Pool, perStatement bool) error {
	files, err := migrationFiles()
	if err != nil {
		return err
	}
	for _, ddl := range []string{
		`CREATE TABLE IF NOT EXISTS schema_migrations (
			version integer PRIMARY KEY,
			name text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now())`,
		`CREATE TABLE IF NOT EXISTS schema_lease (
			id integer PRIMARY KEY,
			holder text NOT NULL,
			expires_at timestamptz NOT NULL)`,
	} {
		if err := execRacing(ctx, pool, ddl); err != nil {
			return fmt.Errorf("postgres: schema bookkeeping: %w", err)
		}
	}
	latest := files[len(files)-1].version
	var have int
	if err := pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return fmt.Errorf("postgres: schema version: %w", err)
	}
	if have == latest {
		return nil // nothing to do: no lease needed
	}
	holder := randomHolder()
	if err := takeLease(ctx, pool, holder); err != nil {
		return err
	}
	defer func() {
		// A lease not deleted ends on its own.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		pool.Exec(ctx, `DELETE FROM schema_lease WHERE id = 1 AND holder = $1`, holder)
	}()
	// Again under the lease: another node may have migrated meanwhile.
	if err := pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return fmt.Errorf("postgres: schema version: %w", err)
	}
	if have > latest {
		return fmt.Errorf("postgres: the database has schema version %d, newer than this build's %d: run a newer dream-api", have, latest)
	}
	for _, f := range files {
		if f.version <= have {
			continue
		}
		sql, err := migrations.ReadFile("migrations/" + f.name)
		if err != nil {
			return err
		}
		if err := renewLease(ctx, pool, holder); err != nil {
			return err
		}
		if perStatement {
			err = migrateStatements(ctx, pool, string(sql), f)
		} else {
			err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, string(sql)); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, f.version, f.name)
				return err
			})
		}
		if err != nil {
			return fmt.Errorf("postgres: migration %s: %w", f.name, err)
		}
	}
	return nil
}

// migrateStatements applies one migration a statement at a time, each its
// own implicit transaction, then inserts its version row. A statement
// answered "already exists" (42P07 duplicate_table, 42701
// duplicate_column, 42710 duplicate_object) was applied by a run that
// died before the version row.
func migrateStatements(ctx context.Context, pool *pgxpool.Pool, sql string, f migrationFile) error {
	for _, stmt := range splitStatements(sql) {
		if _, err := pool.Exec(ctx, stmt); err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) && (pe.Code == "42P07" || pe.Code == "42701" || pe.Code == "42710") {
				continue
			}
			return err
		}
	}
	_, err := pool.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, f.version, f.name)
	return err
}

// splitStatements splits a migration file into its statements: at each
// ';' that ends a line, "--" comments dropped. The migrations hold no
// function bodies or strings with such a ';'.
func splitStatements(sql string) []string {
	var out []string
	var cur strings.Builder
	for line := range strings.Lines(sql) {
		if t := strings.TrimSpace(line); t == "" || strings.HasPrefix(t, "--") {
			continue
		}
		cur.WriteString(line)
		if strings.HasSuffix(strings.TrimSpace(line), ";") {
			if st := strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"); st != "" {
				out = append(out, st)
			}
			cur.Reset()
		}
	}
	if st := strings.TrimSpace(cur.String()); st != "" {
		out = append(out, st)
	}
	return out
}

// execRacing runs an idempotent DDL statement, again when a concurrent
// run of it made it fail (PostgreSQL's CREATE TABLE IF NOT EXISTS may
// answer 23505 unique_violation, 42710 duplicate_object or 42P07
// duplicate_table when two sessions race).
func execRacing(ctx context.Context, pool *pgxpool.Pool, ddl string) error {
	var err error
	for range 5 {
		_, err = pool.Exec(ctx, ddl)
		var pe *pgconn.PgError
		if err == nil || !(isUniqueViolation(err) || isRetryable(err) || errors.As(err, &pe) && (pe.Code == "42710" || pe.Code == "42P07")) {
			return err
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
	return err
}

// takeLease waits until this node holds the migration lease, polling
// every 50 ms, until ctx ends.
func takeLease(ctx context.Context, pool *pgxpool.Pool, holder string) error {
	for {
		var got string
		err := pool.QueryRow(ctx, `INSERT INTO schema_lease (id, holder, expires_at)
			VALUES (1, $1, now() + $2::int * interval '1 second')
			ON CONFLICT (id) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
			WHERE schema_lease.expires_at < now()
			RETURNING holder`, holder, int(migrationLease/time.Second)).Scan(&got)
		switch {
		case err == nil && got == holder:
			return nil
		case err != nil && !errors.Is(err, pgx.ErrNoRows) && !isRetryable(err):
			return fmt.Errorf("postgres: migration lease: %w", err)
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return fmt.Errorf("postgres: waiting for the migration lease: %w", err)
		}
	}
}

// renewLease extends this node's migration lease, failing when another
// node took it over (this node was too slow: it must not migrate on).
func renewLease(ctx context.Context, pool *pgxpool.Pool, holder string) error {
	tag, err := pool.Exec(ctx, `UPDATE schema_lease SET expires_at = now() + $2::int * interval '1 second' WHERE id = 1 AND holder = $1`,
		holder, int(migrationLease/time.Second))
	if err == nil && tag.RowsAffected() != 1 {
		err = errors.New("lost to another node")
	}
	if err != nil {
		return fmt.Errorf("postgres: migration lease: %w", err)
	}
	return nil
}

func randomHolder() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// sleepCtx sleeps d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Watch sets the listener of changes to cached state (engine.Store): told
// of this node's units before their locks are released, and of other
// nodes' units by the change-log poller. Call it before the store serves.
func (s *Store) Watch(fn func(engine.Change)) {
	s.watchMu.Lock()
	s.watch = fn
	s.watchMu.Unlock()
}

// deliver tells the listener of ch, the change-log row seq, unless a
// change of the same object at seq or later was told already.
func (s *Store) deliver(seq int64, ch engine.Change) {
	obj := objectOf(ch)
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	if s.lastSeq[obj] >= seq {
		return
	}
	s.lastSeq[obj] = seq
	if s.watch != nil {
		s.watch(ch)
	}
}

// tell tells the listener of changes that are not logged (engine.Change
// of a pending webhook delivery).
func (s *Store) tell(chs []engine.Change) {
	if len(chs) == 0 {
		return
	}
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	if s.watch != nil {
		for _, ch := range chs {
			s.watch(ch)
		}
	}
}

// poll reads the change log every PollInterval until ctx ends, and
// deletes old rows now and then.
func (s *Store) poll(ctx context.Context) {
	defer close(s.pollDone)
	t := time.NewTicker(s.opts.PollInterval)
	defer t.Stop()
	lastTrim := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.pollOnce(ctx); err != nil && ctx.Err() == nil {
			s.opts.Logger.Warn("postgres: reading the change log failed", "err", err)
		}
		if time.Since(lastTrim) > time.Minute {
			lastTrim = time.Now()
			cutoff := time.Now().Add(-s.opts.ChangeRetention)
			if _, err := s.pool.Exec(ctx, `DELETE FROM changes WHERE created_at < $1`, cutoff); err != nil && ctx.Err() == nil {
				s.opts.Logger.Warn("postgres: trimming the change log failed", "err", err)
			}
		}
	}
}

// PollNow reads the change log once, as the poller does: for tests and
// for callers that want other nodes' changes now.
func (s *Store) PollNow(ctx context.Context) error { return s.pollOnce(ctx) }

func (s *Store) pollOnce(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.ReadTimeout)
	defer cancel()
	for {
		s.watchMu.Lock()
		cursor := s.cursor
		s.watchMu.Unlock()
		rows, err := s.pool.Query(ctx, `SELECT seq, kind, platform, mode, payload FROM changes WHERE seq > $1 ORDER BY seq LIMIT 500`, cursor)
		if err != nil {
			return err
		}
		type row struct {
			seq int64
			ch  engine.Change
			ok  bool
		}
		var batch []row
		for rows.Next() {
			var (
				seq      int64
				kind     string
				platform string
				mode     int16
				payload  []byte
			)
			if err := rows.Scan(&seq, &kind, &platform, &mode, &payload); err != nil {
				rows.Close()
				return err
			}
			ch, err := decodeChange(kind, platform, engine.Mode(mode), payload)
			if err != nil {
				s.opts.Logger.Error("postgres: undecodable change-log row", "seq", seq, "err", err)
				batch = append(batch, row{seq: seq})
				continue
			}
			batch = append(batch, row{seq, ch, true})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, r := range batch {
			if r.ok {
				s.deliver(r.seq, r.ch)
			}
			s.watchMu.Lock()
			s.cursor = max(s.cursor, r.seq)
			s.watchMu.Unlock()
		}
		if len(batch) < 500 {
			return nil
		}
	}
}

// Retries returns how many times a unit of work, a group or a batch was
// run again because the database aborted its transaction (40001, 40P01),
// since Open.
func (s *Store) Retries() int64 { return s.retries.Load() }

// Shared reports true: other nodes write the database too
// (engine.SharedStore).
func (s *Store) Shared() bool { return true }

// NewBatch starts a batch of writes outside a unit of work. The caller
// MUST Close it. Not safe for concurrent use.
func (s *Store) NewBatch() engine.Batch { return &batch{writer: newWriter(), s: s} }

// Checkpoint is not supported: back up a PostgreSQL store with pg_dump.
func (s *Store) Checkpoint(dir string) error {
	return errors.New("postgres: Checkpoint is not supported on PostgreSQL; back up with pg_dump")
}

// Healthy returns an error when the database cannot be reached within 5 s
// or its schema is not this build's.
func (s *Store) Healthy() error {
	if s.isClosed() {
		return ErrClosed
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var v int
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if want := SchemaVersion(); v != want {
		return fmt.Errorf("postgres: schema version is %d, want %d", v, want)
	}
	return nil
}

func (s *Store) isClosed() bool {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	return s.closed
}

// Close stops the poller and closes the connections. Closing twice does
// nothing.
func (s *Store) Close() error {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return nil
	}
	s.closed = true
	s.closeMu.Unlock()
	s.stop()
	<-s.pollDone
	s.pool.Close()
	return nil
}

// isUniqueViolation reports whether err is PostgreSQL's unique_violation.
func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

var _ engine.SharedStore = (*Store)(nil)
