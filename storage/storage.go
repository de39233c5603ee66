// Package storage keeps dream-api's data in an embedded Pebble store. It
// implements engine.Store.
//
// Keys are built in keys.go only; values carry a leading format byte
// (codec.go). Open writes the schema version on a new store and runs the
// migrations of an older one (schema.go). Every read-modify-write is a unit
// of work (Update, update.go): it holds lock stripes while it reads and
// until its batch is applied, and waits for the fsync after releasing them,
// so that Pebble syncs many units' batches with one fsync. The engine's
// caches follow applied batches through Watch.
package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/dream-api/dream-api/engine"
)

// The caches of records in front of Pebble (cache.go) are sized from
// Options.CacheSize when their own size is 0, in entries: counters
// CacheSize/512 (an eighth of it counted at 64 bytes each; they take ~53
// bytes of Go heap), customers CacheSize/3200 (a sixteenth at 200 bytes;
// their records as stored, decoded on every read, take ~290), plugin
// states CacheSize/1600 (a sixteenth at 100 bytes). Full, they take about
// a quarter of CacheSize; like the block cache they take memory only as
// they fill. With the default 256 MiB they hold ~520 000 counters, ~84 000
// customers and ~170 000 states; 100 000 customers each tracked once cost
// ~280 bytes of Go heap each (BenchmarkIdleCustomerMemory). Tracks spread
// over more customers than the caches hold read from Pebble, at 5–10 µs
// of CPU a record; with --cache-size 2GiB a store of 1 000 000 customers
// and 3 000 000 counters is mostly held (docs/performance.md, "A large
// store").
const (
	counterEntryBytes  = 64
	customerEntryBytes = 200
	stateEntryBytes    = 100
)

// DefaultCommitDelay and DefaultCommitSiblings are Options.CommitDelay and
// Options.CommitSiblings when zero. 100 µs measured the least CPU per
// track of 100, 250, 500 µs and 1 ms (docs/performance.md).
const (
	DefaultCommitDelay    = 100 * time.Microsecond
	DefaultCommitSiblings = 4
)

// DefaultCacheSize is the block cache size when Options.CacheSize is 0.
// The cache takes memory only as blocks are read: a store smaller than it
// costs its own size (uncompressed, about twice its size on disk). On a
// store of 1 000 000 customers and 3 000 000 counters (106 MB on disk), a
// random customer and counter read takes 15.6 µs of CPU with 256 MiB and
// 27.2 µs with 64 MiB (docs/performance.md).
const DefaultCacheSize = 256 << 20

// Page sizes of Platforms and Customers.
const (
	defaultPageLimit = 20
	maxPageLimit     = 100
)

// ErrClosed is returned by every method of a closed Store.
var ErrClosed = errors.New("storage: closed")

// Options configure Open. A nil *Options is valid and means all defaults.
type Options struct {
	// Logger receives Pebble's messages: informational ones at Debug,
	// errors at Error. Defaults to discarding everything.
	Logger *slog.Logger
	// CacheSize is the size in bytes of the block cache. Defaults to
	// DefaultCacheSize.
	CacheSize int64
	// CustomerCacheSize is how many customers' records are kept in memory.
	// Defaults to CacheSize/3200 (see the record caches above); -1
	// disables the cache.
	CustomerCacheSize int
	// CounterCacheSize is how many usage counters are kept in memory, so
	// that a track does not look its counter up in Pebble (where the
	// memtable holds every version of a busy counter). Defaults to
	// CacheSize/512; -1 disables the cache.
	CounterCacheSize int
	// PolicyStateCacheSize is how many plugin states are kept in memory, so
	// that a stateful policy reads its state as a track reads its counter.
	// Defaults to CacheSize/1600; -1 disables the cache.
	PolicyStateCacheSize int
	// CommitDelay is how long the log waits after a sync before the next
	// one when at least CommitSiblings commits came since the sync before
	// (PostgreSQL's commit_delay and commit_siblings): under concurrent
	// load the commits of that moment then share one sync, which saves a
	// sync's CPU (the system call, the wake-ups) per commit it adds to the
	// group. A lone client never waits. Defaults to DefaultCommitDelay;
	// -1 turns it off.
	CommitDelay time.Duration
	// CommitSiblings: see CommitDelay. Defaults to DefaultCommitSiblings.
	CommitSiblings int
	// MemTableSize is the size in bytes of Pebble's memtable, and so about
	// that of each log file. Defaults to a quarter of the store's tables
	// when it is opened, between 4 and 64 MiB (memTableSize).
	MemTableSize uint64
	// FS is the filesystem the store lives on. Defaults to the disk;
	// vfs.NewMem() keeps a store in memory. On the disk the store's
	// directories are 0700 and its files 0600, whatever the umask: they
	// hold customers' emails.
	FS vfs.FS
	// MustExist makes Open fail when dir holds no store, instead of
	// creating one. Defaults to false.
	MustExist bool
}

// EnsureDefaults fills in the zero fields of o.
func (o *Options) EnsureDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.CacheSize == 0 {
		o.CacheSize = DefaultCacheSize
	}
	if o.CustomerCacheSize == 0 {
		o.CustomerCacheSize = int(o.CacheSize / 16 / customerEntryBytes)
	}
	if o.CounterCacheSize == 0 {
		o.CounterCacheSize = int(o.CacheSize / 8 / counterEntryBytes)
	}
	if o.PolicyStateCacheSize == 0 {
		o.PolicyStateCacheSize = int(o.CacheSize / 16 / stateEntryBytes)
	}
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.CommitDelay == 0 {
		o.CommitDelay = DefaultCommitDelay
	}
	if o.CommitSiblings == 0 {
		o.CommitSiblings = DefaultCommitSiblings
	}
}

// Validate reports every problem of o at once.
func (o *Options) Validate() error {
	var errs []error
	if o.CacheSize < 0 {
		errs = append(errs, fmt.Errorf("storage: CacheSize is %d, must not be negative", o.CacheSize))
	}
	return errors.Join(errs...)
}

// Store is the Pebble implementation of engine.Store. It is safe for
// concurrent use. The caller MUST call Close.
type Store struct {
	// mu guards db against Close: every use of db holds mu for reading,
	// Close holds it for writing. Readers never wait for each other, and
	// no lock serialises commits.
	mu sync.RWMutex
	db *pebble.DB // nil once closed

	// Customers' records (as stored) and decoded counters in front of
	// Pebble (cache.go); nil when disabled. Customers are invalidated by
	// the batches that write them, counters stored by them.
	customers *cache[[]byte]
	counters  *cache[cachedCounter]
	// states are plugin states, stored by the batches that write them
	// like counters (nil when absent).
	states *cache[[]byte]

	// commits counts the batches committed between syncs of the log.
	commits commitDelay

	// locks are the stripes units of work hold (update.go).
	locks *stripes
	// watch is told of the changes every applied batch makes to state the
	// engine keeps in memory; nil when nobody watches.
	watch func(engine.Change)
}

// Open opens the store in dir, creating it when it does not exist (unless
// Options.MustExist), and brings its schema to the current version. On the
// disk, an existing store's directories and files are first made readable
// by their owner only (0700/0600), and every file written later is too.
func Open(dir string, opts *Options) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	fs := o.FS
	if fs == vfs.Default {
		if err := Tighten(dir); err != nil {
			return nil, fmt.Errorf("storage: open %s: %w", dir, err)
		}
		fs = privateFS{fs}
	}
	po := &pebble.Options{
		FS:                 walZeroFS{fs}, // walfill.go
		ErrorIfNotExists:   o.MustExist,
		CacheSize:          o.CacheSize,
		Logger:             pebbleLogger{o.Logger},
		FormatMajorVersion: pebble.FormatNewest,
		MemTableSize:       o.MemTableSize, // memTableSize
	}
	if po.MemTableSize == 0 {
		po.MemTableSize = memTableSize(fs, dir)
	}
	s := &Store{
		customers: newCache[[]byte](o.CustomerCacheSize),
		counters:  newCache[cachedCounter](o.CounterCacheSize),
		states:    newCache[[]byte](o.PolicyStateCacheSize),
		locks:     newStripes(lockStripes),
	}
	if o.CommitDelay > 0 {
		s.commits.delay, s.commits.siblings = o.CommitDelay, int64(o.CommitSiblings)
		po.WALMinSyncInterval = s.commits.next
	}
	// Bloom filters on every level: most point reads on the track path
	// (a new period's counter, an absent plugin state or idempotency
	// record) are for keys that do not exist, which without a filter read
	// a block of every level.
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}

	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", dir, err)
	}
	if err := migrate(db, schemaVersion, migrations); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	s.db = db
	return s, nil
}

// Memtable sizes (memTableSize). A memtable is also about the size of
// each log file, and Pebble keeps a few recycled ones, so its size sets a
// store's floor on disk: a small store keeps minMemTable. A large store
// gets a larger one, up to maxMemTable: every flush of a memtable of
// counter updates spread over the whole store makes a compaction rewrite
// most of it, so 16 times fewer flushes cut compaction writes about 10
// times (docs/performance.md, "A large store").
const (
	minMemTable = 4 << 20
	maxMemTable = 64 << 20
)

// memTableSize sizes the memtable of the store in dir from its tables: a
// quarter of their bytes, rounded up to a power of two, between
// minMemTable and maxMemTable. A store that grows keeps its size until it
// is opened again.
func memTableSize(fs vfs.FS, dir string) uint64 {
	names, err := fs.List(dir)
	if err != nil {
		return minMemTable // a new store
	}
	var tables int64
	for _, name := range names {
		if filepath.Ext(name) != ".sst" {
			continue
		}
		if fi, err := fs.Stat(fs.PathJoin(dir, name)); err == nil {
			tables += fi.Size()
		}
	}
	size := uint64(minMemTable)
	for size < maxMemTable && int64(size) < tables/4 {
		size *= 2
	}
	return size
}

// Close closes the store. It waits for reads and commits in progress; later
// calls to any method return ErrClosed. Closing a closed store does nothing.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	if err != nil {
		return fmt.Errorf("storage: close: %w", err)
	}
	return nil
}

// Healthy returns an error when the store is closed or cannot read its
// schema version.
func (s *Store) Healthy() error {
	var v uint64
	found, err := s.get(schemaKey(), func(val []byte) (err error) {
		v, err = decodeSchema(val)
		return err
	})
	if err != nil {
		return err
	} else if !found {
		return errors.New("storage: schema version missing")
	} else if v != schemaVersion {
		return fmt.Errorf("storage: schema version is %d, want %d", v, schemaVersion)
	}
	return nil
}

// Checkpoint writes a consistent copy of the store into dir, which must not
// exist, after syncing the log so that every applied batch is in it. The
// copy is a store that Open reads. On the disk its directories are 0700
// and its files 0600 (files hard-linked from the store already are). Safe
// while serving.
func (s *Store) Checkpoint(dir string) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	if err := s.db.Checkpoint(dir, pebble.WithFlushedWAL()); err != nil {
		return fmt.Errorf("storage: checkpoint %s: %w", dir, err)
	}
	return nil
}

// privateFS is the disk, with every directory it makes 0700 and every file
// it creates or reopens for writing 0600, whatever the process's umask.
type privateFS struct{ vfs.FS }

func (fs privateFS) private(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return f, err
	}
	if err := os.Chmod(name, 0o600); err != nil {
		return nil, errors.Join(err, f.Close())
	}
	return f, nil
}

func (fs privateFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	return fs.private(name, f, err)
}

func (fs privateFS) OpenReadWrite(name string, category vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, category, opts...)
	return fs.private(name, f, err)
}

func (fs privateFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	return fs.private(newname, f, err)
}

func (fs privateFS) Lock(name string) (io.Closer, error) {
	l, err := fs.FS.Lock(name)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(name, 0o600); err != nil {
		return nil, errors.Join(err, l.Close())
	}
	return l, nil
}

func (fs privateFS) MkdirAll(dir string, _ os.FileMode) error {
	return fs.FS.MkdirAll(dir, 0o700)
}

// Tighten makes an existing tree readable by its owner only: directories
// 0700, regular files 0600. Stores written before Open did so, or copied
// under a umask of 022, were world-readable. A missing dir is left alone.
func Tighten(dir string) error {
	err := filepath.WalkDir(dir, func(path string, d iofs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		want := iofs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		} else if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode().Perm() != want {
			return os.Chmod(path, want)
		}
		return nil
	})
	if errors.Is(err, iofs.ErrNotExist) {
		return nil
	}
	return err
}

// NewBatch starts a batch. The caller MUST Close it. A batch is not safe for
// concurrent use; many batches may be used concurrently.
func (s *Store) NewBatch() engine.Batch { return s.newBatch() }

func (s *Store) newBatch() *batch {
	b := new(batch)
	s.initBatch(b)
	return b
}

// initBatch makes b a new batch of s.
func (s *Store) initBatch(b *batch) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	*b = batch{s: s}
	b.counters = b.counterBuf[:0]
	b.tx = tx{Store: s, batch: b}
	if s.db == nil {
		b.err = ErrClosed
	} else {
		b.pb = s.db.NewBatch()
	}
}

// AdminTokenHash returns the stored hash of the admin token, or ENOTFOUND.
func (s *Store) AdminTokenHash(ctx context.Context) ([32]byte, error) {
	var h [32]byte
	found, err := s.get(adminTokenKey(), func(val []byte) (err error) {
		h, err = decodeHash("admin token hash", val)
		return err
	})
	if err == nil && !found {
		err = engine.Errorf(engine.ENOTFOUND, "No admin token is set.")
	}
	return h, err
}

// Platform returns the platform id, or ENOTFOUND.
func (s *Store) Platform(ctx context.Context, id string) (*engine.Platform, error) {
	var p *engine.Platform
	found, err := s.get(platformKey(id), func(val []byte) (err error) {
		p, err = decodePlatform(val)
		return err
	})
	if err == nil && !found {
		err = engine.Errorf(engine.ENOTFOUND, "No such platform: %s", id)
	}
	return p, err
}

// Platforms lists platforms by id. It reports whether more follow the page.
func (s *Store) Platforms(ctx context.Context, p engine.Page) ([]*engine.Platform, bool, error) {
	start := platformsPrefix()
	if p.StartingAfter != "" {
		start = after(platformKey(p.StartingAfter))
	}
	return list(ctx, s, start, prefixEnd(platformsPrefix()), p.Limit, decodePlatform)
}

// KeyBySecretHash returns the key record whose secret hashes to h, or
// ENOTFOUND.
func (s *Store) KeyBySecretHash(ctx context.Context, h [32]byte) (*engine.Key, error) {
	var ref keyRef
	found, err := s.get(secretIndexKey(h), func(val []byte) (err error) {
		ref, err = decodeKeyRef(val)
		return err
	})
	if err != nil {
		return nil, err
	}
	var k *engine.Key
	if found {
		k, err = s.Key(ctx, ref.platformID, ref.id)
		if engine.ErrorCode(err) == engine.ENOTFOUND {
			found, err = false, nil
		} else if err != nil {
			return nil, err
		}
	}
	// A stale index entry does not authenticate.
	if !found || k.SecretHash != h {
		return nil, engine.Errorf(engine.ENOTFOUND, "No such key.")
	}
	return k, nil
}

// KeysByPublishable returns the key records that carry pk, oldest first, or
// ENOTFOUND when there is none.
func (s *Store) KeysByPublishable(ctx context.Context, pk string) ([]*engine.Key, error) {
	var refs []keyRef
	prefix := publishableIndexPrefix(pk)
	err := s.scan(ctx, prefix, prefixEnd(prefix), func(_, val []byte) error {
		ref, err := decodeKeyRef(val)
		refs = append(refs, ref)
		return err
	})
	if err != nil {
		return nil, err
	}
	var keys []*engine.Key
	for _, ref := range refs {
		k, err := s.Key(ctx, ref.platformID, ref.id)
		if engine.ErrorCode(err) == engine.ENOTFOUND {
			continue
		} else if err != nil {
			return nil, err
		}
		if k.PublishableKey == pk {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, engine.Errorf(engine.ENOTFOUND, "No such publishable key: %s", pk)
	}
	sortKeys(keys)
	return keys, nil
}

// Key returns a platform's key record, or ENOTFOUND.
func (s *Store) Key(ctx context.Context, platformID, id string) (*engine.Key, error) {
	var k *engine.Key
	found, err := s.get(keyKey(platformID, id), func(val []byte) (err error) {
		k, err = decodeKey(val)
		return err
	})
	if err == nil && !found {
		err = engine.Errorf(engine.ENOTFOUND, "No such key: %s", id)
	}
	return k, err
}

// Keys lists a platform's key records, oldest first.
func (s *Store) Keys(ctx context.Context, platformID string) ([]*engine.Key, error) {
	var keys []*engine.Key
	prefix := keysPrefix(platformID)
	err := s.scan(ctx, prefix, prefixEnd(prefix), func(_, val []byte) error {
		k, err := decodeKey(val)
		keys = append(keys, k)
		return err
	})
	if err != nil {
		return nil, err
	}
	sortKeys(keys)
	return keys, nil
}

// sortKeys orders keys oldest first, then by id.
func sortKeys(keys []*engine.Key) {
	slices.SortStableFunc(keys, func(a, b *engine.Key) int {
		return a.CreatedAt.Compare(b.CreatedAt)
	})
}

// Tiers returns a platform's tier config, or ENOTFOUND.
func (s *Store) Tiers(ctx context.Context, t engine.Tenant) (*engine.TierConfig, error) {
	var c *engine.TierConfig
	found, err := s.get(tiersKey(t), func(val []byte) error {
		c = new(engine.TierConfig)
		return decodeJSON("tiers", val, c)
	})
	if err == nil && !found {
		err = engine.Errorf(engine.ENOTFOUND, "No tiers for platform %s in %s mode", t.PlatformID, t.Mode)
	}
	return c, err
}

// Customer returns a customer, or ENOTFOUND.
func (s *Store) Customer(ctx context.Context, t engine.Tenant, id string) (*engine.Customer, error) {
	return s.CustomerShared(ctx, t, id)
}

// CustomerShared returns a customer that the caller must not change, or
// ENOTFOUND. (Each call decodes its own: the cache keeps records as
// stored, which take about a third of the memory of decoded customers.)
func (s *Store) CustomerShared(ctx context.Context, t engine.Tenant, id string) (*engine.Customer, error) {
	var buf keyBuf
	val, err := s.customers.readThrough(appendCustomerKey(buf[:0], t, id), func(key []byte) (v []byte, err error) {
		found, err := s.get(key, func(val []byte) error {
			v = bytes.Clone(val)
			return nil
		})
		if err == nil && !found {
			err = engine.Errorf(engine.ENOTFOUND, "No such customer: %s", id)
		}
		return v, err
	})
	if err != nil {
		return nil, err
	}
	return decodeCustomer(val)
}

// CustomerIDByEmail returns the id of the tenant's customer with email, in
// any case, or ENOTFOUND.
func (s *Store) CustomerIDByEmail(ctx context.Context, t engine.Tenant, email string) (string, error) {
	var id []byte
	found, err := s.get(emailIndexKey(t, email), func(val []byte) (err error) {
		id, err = decodeBytes("email index", val)
		return err
	})
	if err == nil && (!found || len(id) == 0) {
		err = engine.Errorf(engine.ENOTFOUND, "No customer with email %s", email)
	}
	return string(id), err
}

// Customers lists a tenant's customers by id. It reports whether more follow
// the page.
func (s *Store) Customers(ctx context.Context, t engine.Tenant, p engine.Page) ([]*engine.Customer, bool, error) {
	prefix := customersPrefix(t)
	start := prefix
	if p.StartingAfter != "" {
		start = after(customerKey(t, p.StartingAfter))
	}
	return list(ctx, s, start, prefixEnd(prefix), p.Limit, decodeCustomer)
}

// Counter returns a usage counter; the zero Counter when there is none.
func (s *Store) Counter(ctx context.Context, k engine.CounterKey) (engine.Counter, error) {
	var buf keyBuf
	cc, err := s.counters.readThrough(appendCounterKey(buf[:0], k), func(key []byte) (cc cachedCounter, err error) {
		_, err = s.get(key, func(val []byte) error {
			c, err := decodeCounter(val)
			cc = compactCounter(c)
			return err
		})
		return cc, err
	})
	return cc.counter(), err
}

// cachedCounter is a counter as the cache keeps it: its count and the end
// of its period in Unix milliseconds (as stored), 16 bytes instead of
// engine.Counter's 32; endMs 0 is the zero time.
type cachedCounter struct{ count, endMs int64 }

func compactCounter(c engine.Counter) cachedCounter {
	if c.PeriodEnd.IsZero() {
		return cachedCounter{count: c.Count}
	}
	return cachedCounter{c.Count, c.PeriodEnd.UnixMilli()}
}

func (c cachedCounter) counter() engine.Counter {
	if c.endMs == 0 {
		return engine.Counter{Count: c.count}
	}
	return engine.Counter{Count: c.count, PeriodEnd: time.UnixMilli(c.endMs).UTC()}
}

// Periods lists every counter of a customer, by feature then period start.
func (s *Store) Periods(ctx context.Context, t engine.Tenant, customerID string) ([]engine.Period, error) {
	var periods []engine.Period
	prefix := countersPrefix(t, customerID)
	err := s.scan(ctx, prefix, prefixEnd(prefix), func(key, val []byte) error {
		feature, start, err := parseCounterKey(prefix, key)
		if err != nil {
			return err
		}
		c, err := decodeCounter(val)
		if err != nil {
			return err
		}
		periods = append(periods, engine.Period{
			Feature: feature, Count: c.Count, PeriodStart: start, PeriodEnd: c.PeriodEnd,
		})
		return nil
	})
	return periods, err
}

// PolicyState returns a customer's plugin state for feature; nil when there
// is none or it is empty.
//
// The state returned may be shared with other callers (it comes from the
// cache): the caller MUST NOT change it.
func (s *Store) PolicyState(ctx context.Context, t engine.Tenant, customerID, feature string) ([]byte, error) {
	var buf keyBuf
	return s.states.readThrough(appendPolicyStateKey(buf[:0], t, customerID, feature), func(key []byte) (state []byte, err error) {
		_, err = s.get(key, func(val []byte) (err error) {
			state, err = decodeBytes("policy state", val)
			return err
		})
		return state, err
	})
}

// Idempotency returns the record stored under key, or ENOTFOUND.
func (s *Store) Idempotency(ctx context.Context, t engine.Tenant, key string) (*engine.IdemRecord, error) {
	var r *engine.IdemRecord
	found, err := s.get(idempotencyKey(t, key), func(val []byte) (err error) {
		r, err = decodeIdempotency(val)
		return err
	})
	if err == nil && !found {
		err = engine.Errorf(engine.ENOTFOUND, "No idempotency record for key %q", key)
	}
	return r, err
}

// ExpireIdempotency deletes the idempotency records created before before
// and returns how many it deleted. It writes in batches of at most 1000
// deletions, so it never holds up other writers for long.
func (s *Store) ExpireIdempotency(ctx context.Context, before time.Time) (int, error) {
	n := 0
	for {
		var expired [][]byte
		err := s.scan(ctx, idempotencyPrefix(), prefixEnd(idempotencyPrefix()), func(key, val []byte) error {
			r, err := decodeIdempotency(val)
			if err != nil || r.CreatedAt.Before(before) {
				// An undecodable record can never be replayed: drop it too.
				expired = append(expired, append([]byte(nil), key...))
			}
			if len(expired) == 1000 {
				return errStop
			}
			return nil
		})
		if err != nil || len(expired) == 0 {
			return n, err
		}
		if err := s.deleteKeys(expired, "idempotency records"); err != nil {
			return n, err
		}
		n += len(expired)
		if len(expired) < 1000 {
			return n, nil
		}
	}
}

// get calls decode with the value stored under key and reports whether there
// was one. decode must copy what it keeps: the value is valid only during the
// call.
func (s *Store) get(key []byte, decode func(val []byte) error) (bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return false, ErrClosed
	}
	val, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("storage: get: %w", err)
	}
	defer closer.Close()
	return true, decode(val)
}

// errStop ends a scan early without an error.
var errStop = errors.New("storage: stop scan")

// scan calls fn for every key in [lower, upper) in order, until fn returns
// an error; errStop ends the scan without one. fn must copy what it keeps,
// and must not call methods of s.
func (s *Store) scan(ctx context.Context, lower, upper []byte, fn func(key, val []byte) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("storage: scan: %w", err)
	}
	for valid := it.First(); valid && err == nil; valid = it.Next() {
		if err = ctx.Err(); err != nil {
			break
		}
		var val []byte
		if val, err = it.ValueAndErr(); err == nil {
			err = fn(it.Key(), val)
		}
	}
	if errors.Is(err, errStop) {
		err = nil
	}
	if cerr := it.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("storage: scan: %w", cerr)
	}
	return err
}

// list returns up to limit decoded values of [start, end) and whether more
// follow. A limit of 0 means defaultPageLimit.
func list[T any](ctx context.Context, s *Store, start, end []byte, limit int, decode func([]byte) (T, error)) ([]T, bool, error) {
	if limit <= 0 {
		limit = defaultPageLimit
	}
	limit = min(limit, maxPageLimit)
	var items []T
	more := false
	err := s.scan(ctx, start, end, func(_, val []byte) error {
		if len(items) == limit {
			more = true
			return errStop
		}
		v, err := decode(val)
		items = append(items, v)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return items, more, nil
}

var _ engine.Store = (*Store)(nil)

// deleteKeys deletes keys in one batch without waiting for a sync: what
// expires may come back after a crash and expire again. what names them
// in the error.
func (s *Store) deleteKeys(keys [][]byte, what string) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	pb := s.db.NewBatch()
	defer pb.Close()
	for _, k := range keys {
		_ = pb.Delete(k, nil) // cannot fail on a batch without an index
	}
	if err := pb.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("storage: expire %s: %w", what, err)
	}
	return nil
}

// commitDelay holds a sync of the log back while commits come in groups
// (Options.CommitDelay).
type commitDelay struct {
	n        atomic.Int64 // batches committed since the last call of next
	delay    time.Duration
	siblings int64
}

func (c *commitDelay) committed() { c.n.Add(1) }

// next is Pebble's WALMinSyncInterval, called after each sync of the log:
// the delay when at least siblings batches were committed since the
// previous sync, else 0.
func (c *commitDelay) next() time.Duration {
	if c.n.Swap(0) >= c.siblings {
		return c.delay
	}
	return 0
}
