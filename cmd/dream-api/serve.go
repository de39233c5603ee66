package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dream-api/dream-api/engine"
	dhttp "github.com/dream-api/dream-api/http"
	"github.com/dream-api/dream-api/plugins"
	"github.com/dream-api/dream-api/storage"
)

// Config is everything serve reads from flags and the environment.
type Config struct {
	Addr       string // DREAM_ADDR, --addr
	DataDir    string // DREAM_DATA_DIR, --data
	AdminToken string // DREAM_ADMIN_TOKEN
	MasterKey  string // DREAM_MASTER_KEY (64 hex characters)
	PublicURL  string // DREAM_PUBLIC_URL
	AccessLog  bool   // DREAM_ACCESS_LOG, --access-log
	LogLevel   string // DREAM_LOG_LEVEL, --log-level: debug, info, warn, error
	// DebugAddr serves net/http/pprof on its own listener when set
	// (DREAM_DEBUG_ADDR, --debug-addr). Off by default: profiles show
	// memory and must not be reachable from outside.
	DebugAddr string
	Plugins   PluginConfig
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
	store     *storage.Store
	wasm      *plugins.Runtime
	masterKey []byte
	ln        net.Listener
	srv       *http.Server
	served    chan error
	debug     *http.Server
	debugLn   net.Listener
	stopBg    context.CancelFunc
	bgDone    chan struct{}
}

// NewMain returns a Main that reads the real environment.
func NewMain() *Main {
	return &Main{Getenv: os.Getenv, Stdout: os.Stdout, Stderr: os.Stderr}
}

// ParseFlags reads the environment, then args; flags win.
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
	fs.BoolVar(&c.AccessLog, "access-log", env("DREAM_ACCESS_LOG", "") == "1" || env("DREAM_ACCESS_LOG", "") == "true", "log every request")
	fs.StringVar(&c.LogLevel, "log-level", env("DREAM_LOG_LEVEL", "info"), "debug, info, warn or error")
	fs.StringVar(&c.DebugAddr, "debug-addr", env("DREAM_DEBUG_ADDR", ""), "serve Go's pprof profiles on this address (e.g. 127.0.0.1:6060); off when empty")
	if err := c.Plugins.register(fs, env); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	c.AdminToken = m.Getenv("DREAM_ADMIN_TOKEN")
	c.MasterKey = m.Getenv("DREAM_MASTER_KEY")
	c.PublicURL = m.Getenv("DREAM_PUBLIC_URL")
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

	if err := os.MkdirAll(m.Config.DataDir, 0o700); err != nil {
		return err
	}
	if err := m.loadMasterKey(); err != nil {
		return err
	}
	st, err := storage.Open(filepath.Join(m.Config.DataDir, "store"), &storage.Options{Logger: m.log.With("component", "pebble")})
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
	eng := engine.New(engine.Config{Store: st, Logger: m.log, PolicyLoader: m.wasm.Loader(), Sealer: sealer, Stripe: stripeCfg})
	eng.Plugins.SetLimits(m.Config.Plugins.engineLimits())

	token, err := eng.Platforms.EnsureAdminToken(ctx, m.Config.AdminToken)
	if err != nil {
		return fmt.Errorf("admin token: %w", err)
	}
	if token != "" {
		// Printed once, to the terminal, never to the log.
		fmt.Fprintf(m.Stdout, "\nAdmin token (shown once; keep it, e.g. export DREAM_ADMIN_TOKEN=%s):\n  %s\n\n", token, token)
	}

	ln, err := net.Listen("tcp", m.Config.Addr)
	if err != nil {
		return err
	}
	m.ln = ln
	if m.Config.PublicURL == "" {
		m.Config.PublicURL = "http://" + ln.Addr().String()
	}
	handler := dhttp.NewServer(dhttp.Config{
		Engine: eng, Store: st, Version: Version, Logger: m.log, AccessLog: m.Config.AccessLog,
	})
	m.srv = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
	}
	bg, stop := context.WithCancel(context.Background())
	m.stopBg, m.bgDone = stop, make(chan struct{})
	go func() { defer close(m.bgDone); eng.RunMaintenance(bg, 0) }()
	if err := m.startClerk(bg, eng); err != nil { // clerk.go: CLERK_SECRET_KEY, CLERK_API_URL
		return err
	}

	if err := m.startDebug(); err != nil {
		return err
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

// loadMasterKey reads DREAM_MASTER_KEY, or the key file in the data dir,
// or makes one there. It encrypts platforms' Stripe credentials at rest.
func (m *Main) loadMasterKey() error {
	if s := m.Config.MasterKey; s != "" {
		k, err := hex.DecodeString(s)
		if err != nil || len(k) != 32 {
			return errors.New("DREAM_MASTER_KEY must be 64 hex characters (32 bytes)")
		}
		m.masterKey = k
		return nil
	}
	path := filepath.Join(m.Config.DataDir, "master.key")
	if b, err := os.ReadFile(path); err == nil {
		k, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(k) != 32 {
			return fmt.Errorf("%s is not 64 hex characters", path)
		}
		m.masterKey = k
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	k := make([]byte, 32)
	rand.Read(k)
	if err := os.WriteFile(path, []byte(hex.EncodeToString(k)+"\n"), 0o600); err != nil {
		return err
	}
	m.masterKey = k
	m.log.Warn("DREAM_MASTER_KEY is not set: generated a master key into the data dir; back it up, or set DREAM_MASTER_KEY in production", "path", path)
	return nil
}
