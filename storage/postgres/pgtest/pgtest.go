// Package pgtest runs a throwaway PostgreSQL server for tests: initdb on a
// temporary directory, postgres on a free port of 127.0.0.1 as a child
// process, a fresh database per test, the server stopped and its directory
// removed at the end.
//
// It finds initdb and postgres on PATH or under /usr/lib/postgresql/*/bin
// (Debian, Ubuntu). When they are absent, tests skip, unless CI or
// DREAM_REQUIRE_POSTGRES=1 is set: then they fail. When the process runs
// as root, the server runs as the postgres user (PostgreSQL refuses root),
// and its directory is owned by that user. DREAM_TEST_POSTGRES_URL points
// the tests at an existing server instead (a database is created on it for
// each test).
//
// The server runs with fsync off (it is for tests only), unless
// DREAM_PGTEST_FSYNC=1, for benchmarks of durable commits.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is a running PostgreSQL server.
type Server struct {
	// URL connects to its maintenance database as a superuser.
	URL string

	cmd  *exec.Cmd // nil for an external server, or while stopped
	dir  string
	done chan error
	logs *os.File
	// How to start postgres again (Restart); empty for an external server.
	bin  string
	args []string
	cred *credential
}

// Required reports whether tests must fail instead of skipping when
// PostgreSQL is absent: CI or DREAM_REQUIRE_POSTGRES=1 is set.
func Required() bool {
	return os.Getenv("CI") != "" || os.Getenv("DREAM_REQUIRE_POSTGRES") == "1"
}

// ErrNotInstalled is returned by Start when initdb or postgres is not found.
var ErrNotInstalled = errors.New("pgtest: PostgreSQL (initdb, postgres) is not installed")

// binDir returns the directory holding initdb and postgres.
func binDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.Sort(dirs) // the highest version last
	for i := len(dirs) - 1; i >= 0; i-- {
		_, e1 := os.Stat(filepath.Join(dirs[i], "initdb"))
		_, e2 := os.Stat(filepath.Join(dirs[i], "postgres"))
		if e1 == nil && e2 == nil {
			return dirs[i], nil
		}
	}
	return "", ErrNotInstalled
}

// Start runs initdb on a new temporary directory and starts postgres on
// it, and returns once it accepts connections (60 s at most). The caller
// MUST Stop it.
func Start() (*Server, error) {
	if u := os.Getenv("DREAM_TEST_POSTGRES_URL"); u != "" {
		return &Server{URL: u}, nil
	}
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "dream-pgtest-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir}
	ok := false
	defer func() {
		if !ok {
			s.Stop()
		}
	}()
	cred, err := serverUser(dir)
	if err != nil {
		return nil, err
	}
	data, sock := filepath.Join(dir, "data"), filepath.Join(dir, "sock")
	if err := os.Mkdir(sock, 0o700); err != nil {
		return nil, err
	}
	if err := chown(sock, cred); err != nil {
		return nil, err
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
	initdb.Dir = dir
	setUser(initdb, cred)
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("pgtest: initdb: %v\n%s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	if s.logs, err = os.Create(filepath.Join(dir, "postgres.log")); err != nil {
		return nil, err
	}
	args := []string{"-D", data, "-p", strconv.Itoa(port), "-k", sock, "-h", "127.0.0.1", "-c", "max_connections=300"}
	if os.Getenv("DREAM_PGTEST_FSYNC") != "1" {
		args = append(args, "-c", "fsync=off", "-c", "full_page_writes=off")
	}
	s.bin, s.args, s.cred = bin, args, cred
	s.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	if err := s.launch(); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// launch starts postgres and waits until it accepts connections (60 s at
// most).
func (s *Server) launch() error {
	s.cmd = exec.Command(filepath.Join(s.bin, "postgres"), s.args...)
	s.cmd.Dir = s.dir
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	setUser(s.cmd, s.cred)
	if err := s.cmd.Start(); err != nil {
		s.cmd = nil
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	s.done = make(chan error, 1)
	go func() { s.done <- s.cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, s.URL)
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		select {
		case werr := <-s.done:
			s.done <- werr
			logs, _ := os.ReadFile(s.logs.Name())
			return fmt.Errorf("pgtest: postgres exited: %v\n%s", werr, logs)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pgtest: postgres does not accept connections: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// halt stops the server process (fast shutdown, then a kill after 30 s).
func (s *Server) halt() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(os.Interrupt) // fast shutdown
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// External reports whether s is the server of DREAM_TEST_POSTGRES_URL,
// which tests neither start, stop nor restart.
func (s *Server) External() bool { return s.bin == "" }

// Restart stops the server, runs down (still stopped) until down returns,
// then starts it again on the same port and data: a database restart.
// Not for a server of DREAM_TEST_POSTGRES_URL.
func (s *Server) Restart(down func()) error {
	if s.bin == "" {
		return errors.New("pgtest: cannot restart an external server")
	}
	s.halt()
	if down != nil {
		down()
	}
	return s.launch()
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// NewDatabase creates an empty database and returns its URL.
func (s *Server) NewDatabase(ctx context.Context) (string, error) {
	b := make([]byte, 6)
	rand.Read(b)
	name := "dream_test_" + hex.EncodeToString(b)
	conn, err := pgx.Connect(ctx, s.URL)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("pgtest: create database: %w", err)
	}
	u, err := url.Parse(s.URL)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	return u.String(), nil
}

// Stop stops the server (fast shutdown, then a kill after 30 s) and
// removes its directory. Safe on a server that failed to start.
func (s *Server) Stop() {
	s.halt()
	if s.logs != nil {
		s.logs.Close()
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

// Logs returns what the server wrote so far.
func (s *Server) Logs() string {
	if s.logs == nil {
		return ""
	}
	b, _ := os.ReadFile(s.logs.Name())
	return string(b)
}

var shared struct {
	mu  sync.Mutex
	srv *Server
	err error
}

// Database returns the URL of a fresh database on the package's shared
// server, started on first use (stopped by Main). It skips t when
// PostgreSQL is absent, or fails it when Required.
func Database(t testing.TB) string {
	t.Helper()
	shared.mu.Lock()
	if shared.srv == nil && shared.err == nil {
		shared.srv, shared.err = Start()
	}
	srv, err := shared.srv, shared.err
	shared.mu.Unlock()
	if errors.Is(err, ErrNotInstalled) && !Required() {
		t.Skip("PostgreSQL is not installed (set CI or DREAM_REQUIRE_POSTGRES=1 to fail instead)")
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	u, err := srv.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// SerializableDatabase is Database with default_transaction_isolation set
// to serializable on the database, as CockroachDB runs every transaction:
// contended transactions fail with 40001 serialization_failure and must
// be run again.
func SerializableDatabase(t testing.TB) string {
	t.Helper()
	u := Database(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := setDefaultIsolation(ctx, u, "serializable"); err != nil {
		t.Fatal(err)
	}
	return u
}

// setDefaultIsolation sets the default transaction isolation of the
// database at u, for sessions opened from now on.
func setDefaultIsolation(ctx context.Context, u, level string) error {
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var name, version string
	if err := conn.QueryRow(ctx, `SELECT current_database(), version()`).Scan(&name, &version); err != nil {
		return err
	}
	if strings.Contains(version, "CockroachDB") {
		return nil // SERIALIZABLE is CockroachDB's default
	}
	_, err = conn.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s SET default_transaction_isolation = '%s'",
		pgx.Identifier{name}.Sanitize(), level))
	if err != nil {
		return fmt.Errorf("pgtest: set isolation: %w", err)
	}
	return nil
}

// Main runs a test binary's tests, then stops the shared server. Call it
// from TestMain: os.Exit(pgtest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	shared.mu.Lock()
	if shared.srv != nil {
		shared.srv.Stop()
		shared.srv = nil
	}
	shared.mu.Unlock()
	return code
}

// Own starts a server for t alone, stopped at its end. It skips t when
// PostgreSQL is absent, or fails it when Required.
func Own(t testing.TB) *Server {
	t.Helper()
	srv, err := Start()
	if errors.Is(err, ErrNotInstalled) && !Required() {
		t.Skip("PostgreSQL is not installed (set CI or DREAM_REQUIRE_POSTGRES=1 to fail instead)")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv
}

// Database returns the URL of a fresh database on s.
func (s *Server) Database(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	u, err := s.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
