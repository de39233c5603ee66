package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dream-api/dream-api/engine"
	dhttp "github.com/dream-api/dream-api/http"
	"github.com/dream-api/dream-api/http/dashboard"
	"github.com/dream-api/dream-api/plugins"
	"github.com/dream-api/dream-api/storage"
	"github.com/dream-api/dream-api/storage/postgres"
)

// Config is everything serve reads from flags and the environment.
type Config struct {
	Addr    string // DREAM_ADDR, --addr
	DataDir string // DREAM_DATA_DIR, --data
	// Store is a postgres:// URL of a database that several nodes share
	// (DREAM_STORE, --store); empty: the Pebble store in the data dir.
	Store string
	// BackupDir is where POST /admin/backup (and `dream-api backup` with
	// a server) writes: DREAM_BACKUP_DIR, --backup-dir. Defaults to
	// "backups" beside the data dir (<data>/../backups).
	BackupDir  string
	AdminToken string // DREAM_ADMIN_TOKEN
	MasterKey  string // DREAM_MASTER_KEY (64 hex characters)
	PublicURL  string // DREAM_PUBLIC_URL
	// Signup is DREAM_SIGNUP: "open" (the default) lets anyone create a
	// developer account at /dashboard/signup; "closed" leaves it to the
	// operator (dream-api developer create, POST /admin/developers).
	Signup    string
	AccessLog bool   // DREAM_ACCESS_LOG, --access-log
	LogLevel  string // DREAM_LOG_LEVEL, --log-level: debug, info, warn, error
	// CacheSize is the most memory, in bytes, the Pebble store keeps of
	// its blocks (DREAM_CACHE_SIZE, --cache-size); its caches of counters,
	// customers and plugin states take up to a quarter of it more
	// (storage.Options). All are used only as they are read, so a store
	// smaller than them takes its own size. Default
	// storage.DefaultCacheSize.
	CacheSize int64
	// CommitDelay is how long the Pebble store's log waits after a sync
	// before the next one while commits come in groups (DREAM_COMMIT_DELAY,
	// --commit-delay; storage.Options.CommitDelay). 0 turns it off.
	// Default storage.DefaultCommitDelay.
	CommitDelay time.Duration
	// DebugAddr serves net/http/pprof on its own listener when set
	// (DREAM_DEBUG_ADDR, --debug-addr). Off by default: profiles show
	// memory and must not be reachable from outside.
	DebugAddr string
	// WebhookAllowPrivate lets outgoing webhooks use http and private or
	// loopback addresses (DREAM_WEBHOOK_ALLOW_PRIVATE=1,
	// --webhook-allow-private); link-local addresses stay refused.
	WebhookAllowPrivate bool
	Plugins             PluginConfig
	HTTP                HTTPConfig // httplimits.go: timeouts, unauthenticated bodies
	// Quotas bound each platform's use of the server (engine.Quotas; 0 is
	// unlimited): DREAM_QUOTA_CUSTOMERS, --quota-customers (per platform
	// and mode); DREAM_QUOTA_RPS, --quota-rps (authenticated calls per
	// second per platform, bursts of twice as many); DREAM_QUOTA_STORED_BYTES,
	// --quota-stored-bytes. Default engine.DefaultQuotas.
	Quotas engine.Quotas
}

// Main is the serve program: ParseFlags, then Run, then Close. Tests run it
// in process on a temporary directory and port :0.
type Main struct {
	Config Config
	// Getenv defaults to os.Getenv.
	Getenv func(string) string
	Stdout io.Writer
	Stderr io.Writer

	log       *slog.Logger
	lock      *dataDirLock
	store     engine.Store
	wasm      *plugins.Runtime
	masterKey []byte
	// keyFromEnv: the master key came from DREAM_MASTER_KEY, so backups
	// do not carry it.
	keyFromEnv bool
	ln         net.Listener
	srv        *http.Server
	served     chan error
	debug      *http.Server
	debugLn    net.Listener
	stopBg     context.CancelFunc
	bgDone     chan struct{}
}

// NewMain returns a Main that reads the real environment.
func NewMain() *Main {
	return &Main{Getenv: os.Getenv, Stdout: os.Stdout, Stderr: os.Stderr}
}

// serveEnv are the environment variables serve reads, for its --help.
var serveEnv = []envVar{
	{"DREAM_ADDR", "--addr"},
	{"DREAM_DATA_DIR", "--data"},
	{"DREAM_STORE", "--store (postgres://…)"},
	{"DREAM_BACKUP_DIR", "--backup-dir"},
	{"DREAM_ACCESS_LOG", "--access-log (1 or true)"},
	{"DREAM_LOG_LEVEL", "--log-level"},
	{"DREAM_DEBUG_ADDR", "--debug-addr"},
	{"DREAM_CACHE_SIZE", "--cache-size (e.g. 512MiB)"},
	{"DREAM_COMMIT_DELAY", "--commit-delay (e.g. 100us; 0: off)"},
	{"DREAM_WEBHOOK_ALLOW_PRIVATE", "--webhook-allow-private (1 or true): webhooks to http, private and loopback addresses"},
	{"DREAM_PLUGIN_DEADLINE", "--plugin-deadline"},
	{"DREAM_PLUGIN_MEMORY_PAGES", "--plugin-memory-pages"},
	{"DREAM_READ_HEADER_TIMEOUT", "--read-header-timeout"},
	{"DREAM_READ_TIMEOUT", "--read-timeout (a request's body)"},
	{"DREAM_WRITE_TIMEOUT", "--write-timeout"},
	{"DREAM_IDLE_TIMEOUT", "--idle-timeout"},
	{"DREAM_MAX_UNAUTHENTICATED_BODIES", "--max-unauthenticated-bodies"},
	{"DREAM_QUOTA_CUSTOMERS", "--quota-customers (0: unlimited)"},
	{"DREAM_QUOTA_RPS", "--quota-rps (0: unlimited)"},
	{"DREAM_QUOTA_STORED_BYTES", "--quota-stored-bytes (0: unlimited)"},
	{"DREAM_ADMIN_TOKEN", "the operator's admin token; generated on first start and printed once when unset"},
	{"DREAM_MASTER_KEY", "64 hex characters: seals Stripe credentials; generated into DATA/master.key when unset"},
	{"DREAM_PUBLIC_URL", "base of return and webhook URLs (default http://<addr>); https makes the dashboard's cookie Secure"},
	{"DREAM_SIGNUP", "open (default): anyone may sign up at /dashboard/signup; closed: only the operator creates accounts"},
	{"STRIPE_SECRET_KEY", "the operator's Stripe key: Connect onboarding, operator billing"},
	{"STRIPE_TEST_SECRET_KEY", "a test-mode operator key as well"},
	{"STRIPE_WEBHOOK_SECRET", "signing secret(s) of /webhook/stripe, comma-separated"},
	{"STRIPE_API_BASE", "Stripe's API (default https://api.stripe.com)"},
	{"DREAM_PLATFORM_PRICE_ID", "operator billing: the platforms' subscription price"},
	{"CLERK_SECRET_KEY", "the shared end-user Clerk app's secret key"},
	{"CLERK_API_URL", "Clerk's Backend API (default https://api.clerk.com/v1)"},
	{"CLERK_ISSUER", "pins the issuer of Clerk session tokens"},
}

// ParseFlags reads the environment, then args; flags win. --help writes
// the flags and environment variables to Stdout and returns flag.ErrHelp.
func (m *Main) ParseFlags(ctx context.Context, args []string) error {
	env := func(k, def string) string {
		if v := m.Getenv(k); v != "" {
			return v
		}
		return def
	}
	c := &m.Config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	fs.StringVar(&c.Addr, "addr", env("DREAM_ADDR", "127.0.0.1:8787"), "address to listen on")
	fs.StringVar(&c.DataDir, "data", env("DREAM_DATA_DIR", "./data"), "data directory (Pebble store, created if absent)")
	fs.StringVar(&c.Store, "store", env("DREAM_STORE", ""), "postgres://… URL of a PostgreSQL database shared by several nodes (default: the Pebble store in the data dir)")
	fs.StringVar(&c.BackupDir, "backup-dir", env("DREAM_BACKUP_DIR", ""), "directory POST /admin/backup writes into (default: backups beside the data dir)")
	fs.BoolVar(&c.AccessLog, "access-log", env("DREAM_ACCESS_LOG", "") == "1" || env("DREAM_ACCESS_LOG", "") == "true", "log every request")
	fs.StringVar(&c.LogLevel, "log-level", env("DREAM_LOG_LEVEL", "info"), "debug, info, warn or error")
	fs.StringVar(&c.DebugAddr, "debug-addr", env("DREAM_DEBUG_ADDR", ""), "serve Go's pprof profiles on this address (e.g. 127.0.0.1:6060); off when empty")
	cacheSize := byteSize(storage.DefaultCacheSize)
	if v := env("DREAM_CACHE_SIZE", ""); v != "" {
		if err := cacheSize.Set(v); err != nil {
			return fmt.Errorf("DREAM_CACHE_SIZE: %w", err)
		}
	}
	commitDelay, err := time.ParseDuration(env("DREAM_COMMIT_DELAY", storage.DefaultCommitDelay.String()))
	if err != nil {
		return fmt.Errorf("DREAM_COMMIT_DELAY: %w", err)
	}
	fs.DurationVar(&c.CommitDelay, "commit-delay", commitDelay, "after a sync that followed 4 or more commits, how long the log waits for more before the next sync (0: off)")
	fs.Var(&cacheSize, "cache-size", "memory the Pebble store may keep of its blocks, and a quarter of it more for its caches of counters, customers and plugin states, used as they are read (a size: 64MiB, 1GiB; at least 8MiB)")
	fs.BoolVar(&c.WebhookAllowPrivate, "webhook-allow-private", env("DREAM_WEBHOOK_ALLOW_PRIVATE", "") == "1" || env("DREAM_WEBHOOK_ALLOW_PRIVATE", "") == "true",
		"let outgoing webhooks use http and private or loopback addresses (never link-local)")
	if err := c.Plugins.register(fs, env); err != nil {
		return err
	}
	if err := c.HTTP.register(fs, env); err != nil {
		return err
	}
	if err := registerQuotas(fs, env, &c.Quotas); err != nil {
		return err
	}
	pos, err := parseArgs(fs, args, m.Stdout, "dream-api serve [flags]",
		"Serves the API from the data dir (created if absent).", serveEnv)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("unexpected arguments: %s (see dream-api serve --help)", strings.Join(pos, " "))
	}
	if c.CacheSize = int64(cacheSize); c.CacheSize < 8<<20 {
		return fmt.Errorf("--cache-size %s: must be at least 8MiB", cacheSize)
	}
	if c.CommitDelay < 0 || c.CommitDelay > 10*time.Millisecond {
		return fmt.Errorf("--commit-delay %s: must be from 0 (off) to 10ms", c.CommitDelay)
	}
	if err := c.HTTP.validate(); err != nil {
		return err
	}
	if c.BackupDir == "" {
		c.BackupDir = filepath.Join(c.DataDir, "..", "backups")
	}
	if err := checkQuotas(&c.Quotas); err != nil {
		return err
	}
	c.AdminToken = m.Getenv("DREAM_ADMIN_TOKEN")
	c.MasterKey = m.Getenv("DREAM_MASTER_KEY")
	c.PublicURL = m.Getenv("DREAM_PUBLIC_URL")
	switch c.Signup = env("DREAM_SIGNUP", "open"); c.Signup {
	case "open", "closed":
	default:
		return fmt.Errorf("DREAM_SIGNUP must be open or closed, not %q", c.Signup)
	}
	return nil
}

// Run opens the store, listens and serves in the background. It returns
// once the server accepts connections.
func (m *Main) Run(ctx context.Context) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(m.Config.LogLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	m.log = slog.New(slog.NewJSONHandler(m.Stderr, &slog.HandlerOptions{Level: level}))

	// No key, store or admin token is made, and nothing is printed,
	// before the data dir is ours and the addresses are bound: a start
	// that fails to bind leaves at most an empty data dir.
	if err := prepareDataDir(m.Config.DataDir); err != nil {
		return err
	}
	lock, err := lockDataDir(m.Config.DataDir)
	if err != nil {
		return err
	}
	m.lock = lock
	ln, err := net.Listen("tcp", m.Config.Addr)
	if err != nil {
		return err
	}
	m.ln = ln
	if m.Config.PublicURL == "" {
		m.Config.PublicURL = "http://" + ln.Addr().String()
	}
	if err := m.startDebug(); err != nil {
		return err
	}

	if m.masterKey, m.keyFromEnv, err = dataDirMasterKey(m.Config.DataDir, m.Config.MasterKey, true, m.log); err != nil {
		return err
	}
	st, err := m.openStore(ctx)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	m.store = st
	if m.wasm, err = openPlugins(ctx, m.Config.Plugins, m.Config.DataDir, m.log); err != nil {
		return fmt.Errorf("plugins: %w", err)
	}
	sealer, err := engine.NewSealer(m.masterKey)
	if err != nil {
		return err
	}
	stripeCfg, err := m.stripeConfig(sealer) // stripe.go
	if err != nil {
		return err
	}
	// Without Clerk, dream-api signs end users in itself (engine/auth.go):
	// its signing keys live in the store, sealed with the master key.
	authCfg := engine.AuthConfig{Enabled: m.Getenv("CLERK_SECRET_KEY") == "", Issuer: m.Config.PublicURL}
	eng := engine.New(engine.Config{Store: st, Logger: m.log, PolicyLoader: m.wasm.Loader(), Sealer: sealer, Stripe: stripeCfg,
		Quotas: m.Config.Quotas, Webhooks: engine.WebhookOptions{AllowPrivate: m.Config.WebhookAllowPrivate}, Auth: authCfg})
	if err := eng.Auth.EnsureSigningKey(ctx); err != nil {
		return fmt.Errorf("end-user signing key: %w", err)
	}
	eng.Plugins.SetLimits(m.Config.Plugins.engineLimits())

	handler := dhttp.NewServer(dhttp.Config{
		Engine: eng, Store: st, Version: Version, Logger: m.log, AccessLog: m.Config.AccessLog,
		Backup: m.backup,
		Limits: m.Config.HTTP.limits(), // the body's timeout, unauthenticated bodies
		Dashboard: dashboard.New(dashboard.Config{Engine: eng, PublicURL: m.Config.PublicURL,
			SignupClosed: m.Config.Signup == "closed", Logger: m.log.With("component", "dashboard")}),
	})
	m.srv = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: m.Config.HTTP.ReadHeaderTimeout,
		WriteTimeout:      m.Config.HTTP.WriteTimeout,
		IdleTimeout:       m.Config.HTTP.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
	}
	bg, stop := context.WithCancel(context.Background())
	m.stopBg, m.bgDone = stop, make(chan struct{})
	go func() {
		defer close(m.bgDone)
		var wg sync.WaitGroup
		wg.Go(func() { eng.RunWebhooks(bg) })     // outgoing webhooks, pending ones from before included
		wg.Go(func() { eng.RunUsageDays(bg, 0) }) // usage per day, flushed every 5 s and at the end
		eng.RunMaintenance(bg, 0)
		wg.Wait()
	}()
	if err := m.startClerk(bg, eng); err != nil { // clerk.go: CLERK_SECRET_KEY, CLERK_API_URL
		return err
	}

	// Last, so that a start that fails never consumes the one showing.
	token, err := eng.Platforms.EnsureAdminToken(ctx, m.Config.AdminToken)
	if err != nil {
		return fmt.Errorf("admin token: %w", err)
	}
	if token != "" {
		// Printed once, to the terminal, never to the log.
		fmt.Fprintf(m.Stdout, "\nAdmin token (shown once; keep it, e.g. export DREAM_ADMIN_TOKEN=%s):\n  %s\n\n", token, token)
	}
	m.served = make(chan error, 1)
	go func() { m.served <- m.srv.Serve(ln) }()
	m.log.Info("serving", "addr", ln.Addr().String(), "data", m.Config.DataDir, "version", Version)
	return nil
}

// Addr is the address the server listens on (useful with port 0).
func (m *Main) Addr() string { return m.ln.Addr().String() }

// DebugAddr is the address pprof is served on, or "" without --debug-addr.
func (m *Main) DebugAddr() string {
	if m.debugLn == nil {
		return ""
	}
	return m.debugLn.Addr().String()
}

// Close stops accepting, lets in-flight requests finish (10 s at most),
// then closes the store.
func (m *Main) Close() error {
	var errs []error
	if m.srv == nil || m.served == nil {
		// Run failed before serving: only the listener is open.
		if m.ln != nil {
			m.ln.Close()
		}
		m.srv = nil
	}
	if m.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.srv.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
		if err := <-m.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
		m.srv = nil
	}
	if m.debug != nil {
		_ = m.debug.Close()
		m.debug = nil
	}
	if m.stopBg != nil {
		m.stopBg()
		<-m.bgDone
		m.stopBg = nil
	}
	if m.wasm != nil {
		if err := m.wasm.Close(context.Background()); err != nil {
			errs = append(errs, err)
		}
		m.wasm = nil
	}
	if m.store != nil {
		if err := m.store.Close(); err != nil {
			errs = append(errs, err)
		}
		m.store = nil
		m.log.Info("stopped")
	}
	if err := m.lock.Release(); err != nil {
		errs = append(errs, err)
	}
	m.lock = nil
	return errors.Join(errs...)
}

// startDebug serves net/http/pprof on Config.DebugAddr, when set.
func (m *Main) startDebug() error {
	if m.Config.DebugAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", m.Config.DebugAddr)
	if err != nil {
		return fmt.Errorf("--debug-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	m.debug, m.debugLn = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, ln
	go func() { _ = m.debug.Serve(ln) }()
	m.log.Info("serving pprof", "addr", ln.Addr().String())
	return nil
}

// dataDirMasterKey finds the master key of a data dir: envKey
// (DREAM_MASTER_KEY) when set, else DATA/master.key. With create, a data
// dir that has neither gets a new key file (logged loudly to log); without,
// it returns a nil key. The key is then checked against DATA/master.check,
// the value sealed with it on first start (written now when absent and
// create): a key that does not open it is refused with what to do, since
// every sealed Stripe credential would fail to open too.
func dataDirMasterKey(dataDir, envKey string, create bool, log *slog.Logger) (key []byte, fromEnv bool, err error) {
	keyPath := filepath.Join(dataDir, masterKeyName)
	checkPath := filepath.Join(dataDir, masterCheckName)
	check, err := os.ReadFile(checkPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	source := "DREAM_MASTER_KEY"
	if envKey != "" {
		var ok bool
		if key, ok = parseMasterKey(envKey); !ok {
			return nil, false, errors.New("DREAM_MASTER_KEY must be 64 hex characters (32 bytes)")
		}
		fromEnv = true
	} else if b, err := os.ReadFile(keyPath); err == nil {
		var ok bool
		if key, ok = parseMasterKey(string(b)); !ok {
			return nil, false, fmt.Errorf("%s is not 64 hex characters", keyPath)
		}
		source = keyPath
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	} else if check != nil {
		return nil, false, fmt.Errorf("the data dir %s was sealed with a master key that is not here (no DREAM_MASTER_KEY, no %s): set DREAM_MASTER_KEY to the original key, or put the original master.key (it is in backups that carry it) into the data dir", dataDir, masterKeyName)
	} else if !create {
		return nil, false, nil
	} else {
		key = newMasterKey()
		if err := writePrivateFile(keyPath, []byte(hex.EncodeToString(key)+"\n")); err != nil {
			return nil, false, err
		}
		log.Warn("DREAM_MASTER_KEY is not set: generated a master key into the data dir; it is in every backup, or set DREAM_MASTER_KEY in production", "path", keyPath)
		if isPebbleDir(filepath.Join(dataDir, storeDirName)) {
			log.Warn("the data dir has a store but had no master key: Stripe credentials sealed with the old key cannot be opened; set DREAM_MASTER_KEY to the old key, or platforms must reconnect Stripe", "path", keyPath)
		}
	}
	switch {
	case check != nil && !masterCheckOpens(check, key):
		return nil, false, fmt.Errorf("the master key from %s is not the key this data dir's secrets were sealed with (it does not open %s): set DREAM_MASTER_KEY to the original key, or put the original master.key into the data dir", source, checkPath)
	case check == nil && create:
		c, err := sealMasterCheck(key)
		if err != nil {
			return nil, false, err
		}
		if err := writePrivateFile(checkPath, c); err != nil {
			return nil, false, err
		}
	}
	return key, fromEnv, nil
}

// backup writes POST /admin/backup's backups: only into the backup
// directory (backupTarget), with the master key unless it came from
// DREAM_MASTER_KEY.
func (m *Main) backup(ctx context.Context, dir string) (string, bool, error) {
	path, err := backupTarget(m.Config.BackupDir, dir)
	if err != nil {
		return "", false, err
	}
	pebble, ok := m.store.(*storage.Store)
	if !ok {
		return "", false, engine.Errorf(engine.ECONFLICT, "This server keeps its data in PostgreSQL: back it up with pg_dump.")
	}
	if err := writeBackup(pebble, path, m.masterKey, !m.keyFromEnv); err != nil {
		return "", false, err
	}
	m.log.Info("backup written", "dir", path, "masterKeyIncluded", !m.keyFromEnv)
	return path, !m.keyFromEnv, nil
}

// registerQuotas adds the --quota-customers, --quota-rps and
// --quota-stored-bytes flags, defaulting to their environment variables,
// else to engine.DefaultQuotas. checkQuotas refuses what was given.
func registerQuotas(fs *flag.FlagSet, env func(k, def string) string, q *engine.Quotas) error {
	def := engine.DefaultQuotas()
	customers, err1 := strconv.ParseInt(env("DREAM_QUOTA_CUSTOMERS", strconv.FormatInt(def.Customers, 10)), 10, 64)
	rps, err2 := strconv.ParseFloat(env("DREAM_QUOTA_RPS", strconv.FormatFloat(def.RPS, 'f', -1, 64)), 64)
	stored, err3 := strconv.ParseInt(env("DREAM_QUOTA_STORED_BYTES", strconv.FormatInt(def.StoredBytes, 10)), 10, 64)
	var errs []error
	for key, err := range map[string]error{"DREAM_QUOTA_CUSTOMERS": err1, "DREAM_QUOTA_RPS": err2, "DREAM_QUOTA_STORED_BYTES": err3} {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
	}
	fs.Int64Var(&q.Customers, "quota-customers", customers, "customers per platform and mode (0: unlimited)")
	fs.Float64Var(&q.RPS, "quota-rps", rps, "authenticated API calls per second per platform, bursts of twice as many (0: unlimited)")
	fs.Int64Var(&q.StoredBytes, "quota-stored-bytes", stored, "bytes a platform's records may take on disk, as estimated (0: unlimited)")
	return errors.Join(errs...)
}

// checkQuotas refuses negative or infinite quotas and sets the burst of
// the requests-per-second quota: twice the rate.
func checkQuotas(q *engine.Quotas) error {
	if q.Customers < 0 || q.StoredBytes < 0 || q.RPS < 0 || math.IsNaN(q.RPS) || math.IsInf(q.RPS, 0) {
		return fmt.Errorf("quotas must be 0 (unlimited) or more: --quota-customers %d, --quota-rps %g, --quota-stored-bytes %d",
			q.Customers, q.RPS, q.StoredBytes)
	}
	q.Burst = 0
	if q.RPS > 0 {
		q.Burst = max(int64(math.Ceil(min(2*q.RPS, 1e12))), 1)
	}
	return nil
}

// openStore opens the Pebble store in the data dir, or with --store the
// PostgreSQL database, which needs DREAM_MASTER_KEY: every node sharing it
// must seal secrets with the same key. The URL is never logged (it may
// hold a password).
func (m *Main) openStore(ctx context.Context) (engine.Store, error) {
	u := m.Config.Store
	if u == "" {
		return storage.Open(filepath.Join(m.Config.DataDir, storeDirName), &storage.Options{
			Logger: m.log.With("component", "pebble"), CacheSize: m.Config.CacheSize, CommitDelay: commitDelayOption(m.Config.CommitDelay)})
	}
	if !strings.HasPrefix(u, "postgres://") && !strings.HasPrefix(u, "postgresql://") {
		return nil, errors.New("--store: want a postgres:// URL")
	}
	if !m.keyFromEnv {
		return nil, errors.New("--store postgres://… needs DREAM_MASTER_KEY: every node sharing the database must seal secrets with the same key")
	}
	// Group commit: concurrent units of this node share a transaction and
	// its COMMIT (storage/postgres/group.go; measured in docs/postgres.md).
	return postgres.Open(ctx, u, &postgres.Options{Logger: m.log.With("component", "postgres"), GroupCommit: true})
}

// byteSize is a flag.Value of a size in bytes written as a number with an
// optional unit: B, KiB, MiB, GiB (also KB, MB, GB, meaning the same).
type byteSize int64

func (b byteSize) String() string {
	switch n := int64(b); {
	case n >= 1<<30 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "GiB"
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "KiB"
	default:
		return strconv.FormatInt(n, 10) + "B"
	}
}

func (b *byteSize) Set(s string) error {
	num := strings.TrimRight(s, "KMGiBkmgib ")
	unit := strings.ToLower(strings.TrimSpace(s[len(num):]))
	shift, ok := map[string]uint{"": 0, "b": 0, "k": 10, "kb": 10, "kib": 10, "m": 20, "mb": 20, "mib": 20, "g": 30, "gb": 30, "gib": 30}[unit]
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if !ok || err != nil || n < 0 || n > (1<<62)>>shift {
		return fmt.Errorf("%q is not a size (e.g. 256MiB, 1GiB)", s)
	}
	*b = byteSize(n << shift)
	return nil
}

// commitDelayOption is storage.Options.CommitDelay for --commit-delay d,
// where 0 means off (the option's -1).
func commitDelayOption(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
