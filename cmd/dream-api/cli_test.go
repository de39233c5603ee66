package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/storage"
)

// runMain starts the real server in process on a free port.
func runMain(t *testing.T, dataDir, adminToken string) *Main {
	t.Helper()
	m := NewMain()
	m.Getenv = func(k string) string {
		if k == "DREAM_ADMIN_TOKEN" {
			return adminToken
		}
		return ""
	}
	m.Stdout, m.Stderr = io.Discard, io.Discard
	if err := m.ParseFlags(context.Background(), []string{"--addr", "127.0.0.1:0", "--data", dataDir}); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

type createdPlatform struct {
	PlatformID     string `json:"platformId"`
	PublishableKey string `json:"publishableKey"`
	SecretKey      string `json:"secretKey"`
	Test           struct {
		SecretKey string `json:"secretKey"`
	} `json:"test"`
}

// authenticates reports whether a secret key works on a server.
func authenticates(t *testing.T, addr, sk string) bool {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+"/api/platform/tiers", nil)
	req.Header.Set("Authorization", "Bearer "+sk)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

func TestPlatformCreateCLI(t *testing.T) {
	ctx := context.Background()
	t.Run("opens the data dir when no server answers", func(t *testing.T) {
		data := t.TempDir()
		var out bytes.Buffer
		err := platformCreate(ctx, []string{"--name", "Local Co", "--email", "dev@local.test",
			"--server", "http://127.0.0.1:1", "--data", data}, &out)
		if err != nil {
			t.Fatal(err)
		}
		var p createdPlatform
		if err := json.Unmarshal(out.Bytes(), &p); err != nil {
			t.Fatalf("output is not JSON: %v\n%s", err, out.String())
		}
		if !strings.HasPrefix(p.PlatformID, "plt_") || !strings.HasPrefix(p.PublishableKey, "pk_live_") ||
			!strings.HasPrefix(p.SecretKey, "sk_live_") || !strings.HasPrefix(p.Test.SecretKey, "sk_test_") {
			t.Fatalf("output %+v", p)
		}
		m := runMain(t, data, "")
		if !authenticates(t, m.Addr(), p.SecretKey) {
			t.Error("the printed secret key does not authenticate on the server")
		}
	})
	t.Run("through a running server's admin API", func(t *testing.T) {
		m := runMain(t, t.TempDir(), "admin-token-for-cli")
		t.Setenv("DREAM_ADMIN_TOKEN", "admin-token-for-cli")
		var out bytes.Buffer
		if err := platformCreate(ctx, []string{"--name", "Remote Co", "--server", "http://" + m.Addr()}, &out); err != nil {
			t.Fatal(err)
		}
		var p createdPlatform
		json.Unmarshal(out.Bytes(), &p)
		if !authenticates(t, m.Addr(), p.SecretKey) {
			t.Errorf("secret key from the CLI does not work: %s", out.String())
		}
		t.Setenv("DREAM_ADMIN_TOKEN", "wrong")
		if err := platformCreate(ctx, []string{"--name", "X", "--server", "http://" + m.Addr()}, io.Discard); err == nil || !strings.Contains(err.Error(), "401") {
			t.Errorf("wrong admin token: err = %v, want a 401", err)
		}
	})
	t.Run("name is required", func(t *testing.T) {
		if err := platformCreate(ctx, []string{"--server", "http://127.0.0.1:1", "--data", t.TempDir()}, io.Discard); err == nil {
			t.Error("no error without --name")
		}
	})
}

func TestBackupCLI(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	m := runMain(t, data, "admin-token-for-backup")
	t.Setenv("DREAM_ADMIN_TOKEN", "admin-token-for-backup")
	var out bytes.Buffer
	if err := platformCreate(ctx, []string{"--name", "Backed Up", "--server", "http://" + m.Addr()}, &out); err != nil {
		t.Fatal(err)
	}
	var p createdPlatform
	json.Unmarshal(out.Bytes(), &p)

	// As the README writes it: the flags after the argument. The server
	// writes into its backup dir, by default "backups" beside the data dir.
	out.Reset()
	if err := backup(ctx, []string{"first", "--server", "http://" + m.Addr()}, &out); err != nil {
		t.Fatal(err)
	}
	root, _ := filepath.EvalSymlinks(filepath.Dir(data))
	dir := filepath.Join(root, "backups", "first")
	if !strings.Contains(out.String(), "backup written to "+dir+"\n") {
		t.Errorf("backup printed %q, want the path %s", out.String(), dir)
	}
	// The same directory again is refused, not overwritten.
	if err := backup(ctx, []string{"--server", "http://" + m.Addr(), "first"}, io.Discard); err == nil || !strings.Contains(err.Error(), "422") {
		t.Errorf("a second backup into the same directory: %v", err)
	}
	st, err := storage.Open(filepath.Join(dir, "store"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Platform(ctx, p.PlatformID); err != nil {
		t.Errorf("the backup lacks the platform: %v", err)
	}
	if _, err := st.KeyBySecretHash(ctx, engine.HashSecret(p.SecretKey)); err != nil {
		t.Errorf("the backup lacks the key: %v", err)
	}
}

// TestReadmeWalkthroughsLeaveNoFiles: the README's walkthroughs write the
// answers that hold secret keys into a temporary directory, not into the
// directory they are run from.
func TestReadmeWalkthroughsLeaveNoFiles(t *testing.T) {
	dir := t.TempDir()
	walkthrough(t, "README.md", "walkthrough", dir, nil)
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("the walkthrough left %v in its working directory", entries)
	}
}

// TestDocLinksResolve: every relative link of the README and docs/ names
// a file of the repository (the plugin ABI and the license included).
func TestDocLinksResolve(t *testing.T) {
	root := filepath.Join("..", "..")
	docs, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	docs = append(docs, filepath.Join(root, "README.md"))
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	n := 0
	for _, doc := range docs {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target, _, _ := strings.Cut(m[1], "#")
			if target == "" || strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			n++
			if _, err := os.Stat(filepath.Join(filepath.Dir(doc), target)); err != nil {
				t.Errorf("%s links to %s, which is not in the repository", doc, m[1])
			}
		}
	}
	if n < 10 {
		t.Fatalf("only %d links checked", n)
	}
	for _, f := range []string{"LICENSE", "docs/plugin-abi.md", "docs/deployment.md"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("%s is missing", f)
		}
	}
}

// TestInterspersedFlags: every subcommand takes its flags before, between
// and after its arguments; "--" ends them.
func TestInterspersedFlags(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		want    []string
		wantErr bool
	}{
		{[]string{"DIR", "--server", "URL"}, []string{"DIR"}, false},
		{[]string{"--server", "URL", "DIR"}, []string{"DIR"}, false},
		{[]string{"A", "--server=URL", "B"}, []string{"A", "B"}, false},
		{[]string{"A", "--", "--server", "B"}, []string{"A", "--server", "B"}, false},
		{[]string{"DIR", "--nonsense"}, nil, true},
	} {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		server := fs.String("server", "", "")
		got, err := parseArgs(fs, tc.args, io.Discard, "x", "", nil)
		if (err != nil) != tc.wantErr || strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%q: %q, %v; want %q", tc.args, got, err, tc.want)
		}
		if !tc.wantErr && tc.args[1] != "--" && *server != "URL" {
			t.Errorf("%q: --server = %q", tc.args, *server)
		}
	}
	// Through the real subcommands.
	data := t.TempDir()
	var out bytes.Buffer
	if err := platformCreate(context.Background(), []string{"--server", "http://127.0.0.1:1", "--data", data, "--name", "Late Flag"}, &out); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "bk")
	if err := backup(context.Background(), []string{dir, "--server", "http://127.0.0.1:1", "--data", data}, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := restore(context.Background(), []string{dir, "--data", filepath.Join(t.TempDir(), "r")}, io.Discard); err != nil {
		t.Fatal(err)
	}
}

// TestSubcommandHelp: --help and -h exit 0 (run returns nil) and list the
// subcommand's flags and the environment variables it reads.
func TestSubcommandHelp(t *testing.T) {
	ctx := context.Background()
	cmds := map[string]struct {
		f    func(args []string, w io.Writer) error
		want []string
	}{
		"serve": {func(args []string, w io.Writer) error {
			m := NewMain()
			m.Stdout, m.Stderr = w, io.Discard
			return m.ParseFlags(ctx, args)
		}, []string{"--addr", "--data", "--backup-dir", "--plugin-deadline", "--debug-addr", "DREAM_DATA_DIR", "DREAM_BACKUP_DIR",
			"DREAM_MASTER_KEY", "DREAM_LOG_LEVEL", "STRIPE_SECRET_KEY", "CLERK_SECRET_KEY"}},
		"platform create": {func(args []string, w io.Writer) error { return platformCreate(ctx, args, w) },
			[]string{"--name", "--email", "--server", "--data", "DREAM_ADMIN_TOKEN", "DREAM_ADDR", "DREAM_DATA_DIR"}},
		"backup": {func(args []string, w io.Writer) error { return backup(ctx, args, w) },
			[]string{"--server", "--data", "DREAM_ADMIN_TOKEN", "DREAM_DATA_DIR", "DREAM_MASTER_KEY", "restore"}},
		"restore": {func(args []string, w io.Writer) error { return restore(ctx, args, w) },
			[]string{"--data", "DREAM_DATA_DIR"}},
	}
	for name, c := range cmds {
		for _, h := range []string{"--help", "-h"} {
			var out bytes.Buffer
			err := c.f([]string{"x", h}, &out)
			if !errors.Is(err, flag.ErrHelp) {
				t.Errorf("%s %s: %v, want flag.ErrHelp", name, h, err)
			}
			for _, w := range c.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("%s %s does not list %s:\n%s", name, h, w, out.String())
				}
			}
			if err := run(ctx, append(strings.Fields(name), h)); err != nil {
				t.Errorf("run %s %s: %v, want exit 0", name, h, err)
			}
		}
	}
}

// TestAdminCommandsNeedDataDir: without a server, backup and platform
// create refuse a data dir that does not exist instead of making an empty
// one, and refuse a backup given as the data dir.
func TestAdminCommandsNeedDataDir(t *testing.T) {
	ctx := context.Background()
	missing := filepath.Join(t.TempDir(), "typo")
	for name, f := range map[string]func() error{
		"platform create": func() error {
			return platformCreate(ctx, []string{"--name", "X", "--server", "http://127.0.0.1:1", "--data", missing}, io.Discard)
		},
		"backup": func() error {
			return backup(ctx, []string{filepath.Join(t.TempDir(), "bk"), "--server", "http://127.0.0.1:1", "--data", missing}, io.Discard)
		},
	} {
		if err := f(); err == nil || !strings.Contains(err.Error(), "does not exist") {
			t.Errorf("%s: %v, want the data dir does not exist", name, err)
		}
		if _, err := os.Stat(missing); err == nil {
			t.Fatalf("%s made the data dir", name)
		}
	}
	// An existing dir without a store is no data dir to back up.
	if err := backup(ctx, []string{filepath.Join(t.TempDir(), "bk"), "--server", "http://127.0.0.1:1", "--data", t.TempDir()}, io.Discard); err == nil || !strings.Contains(err.Error(), "no store") {
		t.Errorf("backup of an empty dir: %v", err)
	}
	bk := localBackup(t)
	if err := platformCreate(ctx, []string{"--name", "X", "--server", "http://127.0.0.1:1", "--data", bk}, io.Discard); err == nil || !strings.Contains(err.Error(), "dream-api restore") {
		t.Errorf("platform create on a backup: %v", err)
	}
}

// localBackup makes a data dir with a store and backs it up without a
// server; it returns the backup.
func localBackup(t *testing.T) string {
	t.Helper()
	data := t.TempDir()
	if err := platformCreate(context.Background(), []string{"--name", "B", "--server", "http://127.0.0.1:1", "--data", data}, io.Discard); err != nil {
		t.Fatal(err)
	}
	bk := filepath.Join(t.TempDir(), "bk")
	if err := backup(context.Background(), []string{bk, "--server", "http://127.0.0.1:1", "--data", data}, io.Discard); err != nil {
		t.Fatal(err)
	}
	return bk
}

// startMain runs Run on a fresh Main and returns its error and what it
// printed; a Main that started is closed at the end of the test.
func startMain(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	m := NewMain()
	m.Getenv = func(k string) string { return env[k] }
	var out bytes.Buffer
	m.Stdout, m.Stderr = &out, io.Discard
	if err := m.ParseFlags(context.Background(), args); err != nil {
		t.Fatal(err)
	}
	err := m.Run(context.Background())
	if err != nil {
		m.Close()
	} else {
		t.Cleanup(func() { m.Close() })
	}
	return out.String(), err
}

// TestServeRefusesBackup: serve --data BACKUP refuses, pointing at restore,
// instead of starting an empty instance; so does a bare store checkpoint.
func TestServeRefusesBackup(t *testing.T) {
	bk := localBackup(t)
	for _, dir := range []string{bk, filepath.Join(bk, "store")} {
		_, err := startMain(t, nil, "--addr", "127.0.0.1:0", "--data", dir)
		if err == nil || !strings.Contains(err.Error(), "dream-api restore") {
			t.Errorf("serve --data %s: %v, want a pointer at restore", dir, err)
		}
	}
	if _, err := os.Stat(filepath.Join(bk, "store", "store")); err == nil {
		t.Error("serve made a store inside the backup")
	}
}

// TestAdminTokenAfterBind: a start that cannot bind its address (or its
// debug address) prints no admin token and keeps the first showing for
// the start that succeeds.
func TestAdminTokenAfterBind(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	data := t.TempDir()
	for _, args := range [][]string{
		{"--addr", busy.Addr().String(), "--data", data},
		{"--addr", "127.0.0.1:0", "--debug-addr", busy.Addr().String(), "--data", data},
	} {
		out, err := startMain(t, nil, args...)
		if err == nil {
			t.Fatalf("%v: started on a busy address", args)
		}
		if strings.Contains(out, "Admin token") {
			t.Errorf("%v: a failed start printed the admin token:\n%s", args, out)
		}
	}
	out, err := startMain(t, nil, "--addr", "127.0.0.1:0", "--data", data)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Admin token (shown once") {
		t.Errorf("the first successful start did not show the admin token:\n%s", out)
	}
}

// TestDataDirInUse: a second server (or a local admin command) on a data
// dir in use says so, with the holder's pid; once the first stops, the
// data dir can be used again.
func TestDataDirInUse(t *testing.T) {
	data := t.TempDir()
	first := runMain(t, data, "in-use-token")
	want := fmt.Sprintf("the data dir %s is in use by another dream-api (pid %d)", data, os.Getpid())
	if _, err := startMain(t, nil, "--addr", "127.0.0.1:0", "--data", data); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("second server: %v, want %q", err, want)
	}
	err := platformCreate(context.Background(), []string{"--name", "X", "--server", "http://127.0.0.1:1", "--data", data}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("platform create on a data dir in use: %v, want %q", err, want)
	}
	first.Close()
	if _, err := startMain(t, nil, "--addr", "127.0.0.1:0", "--data", data); err != nil {
		t.Errorf("start after the first stopped: %v", err)
	}
}

func TestVersionCommand(t *testing.T) {
	if err := run(context.Background(), []string{"version"}); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"nonsense"}); err == nil {
		t.Error("unknown command accepted")
	}
}

// TestSIGTERM runs the real binary: SIGTERM while a request is in flight
// lets it finish, closes the store and exits 0.
func TestSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "dream-api")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	data := t.TempDir()
	cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--data", data)
	cmd.Env = append(os.Environ(), "DREAM_ADMIN_TOKEN=sigterm-admin-token")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	// The address is in the "serving" log line.
	var addr string
	logs := bufio.NewScanner(stderr)
	for logs.Scan() {
		var l struct{ Msg, Addr string }
		if json.Unmarshal(logs.Bytes(), &l) == nil && l.Msg == "serving" {
			addr = l.Addr
			break
		}
	}
	if addr == "" {
		t.Fatal("server did not log its address")
	}
	var rest bytes.Buffer
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); io.Copy(&rest, stderr) }()

	// A slow request: its body trickles in, so it is in flight at SIGTERM.
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", "http://"+addr+"/admin/platforms", pr)
	req.Header.Set("Authorization", "Bearer sigterm-admin-token")
	type result struct {
		status int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		resp.Body.Close()
		done <- result{status: resp.StatusCode}
	}()
	pw.Write([]byte(`{"name":`)) // returns once the request's connection is open
	waitAccepted(t, addr)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	pw.Write([]byte(`"Late Co"}`))
	pw.Close()
	if r := <-done; r.err != nil || r.status != 201 {
		t.Errorf("in-flight request: status %d, err %v; want 201", r.status, r.err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit: %v, want 0", err)
	}
	wg.Wait()
	if !strings.Contains(rest.String(), `"msg":"stopped"`) {
		t.Errorf("no clean stop in the log:\n%s", rest.String())
	}
	// New connections are refused after shutdown, and the store reopens.
	st, err := storage.Open(filepath.Join(data, "store"), nil)
	if err != nil {
		t.Fatalf("store after SIGTERM: %v", err)
	}
	ps, _, _ := st.Platforms(context.Background(), engine.Page{Limit: 10})
	st.Close()
	if len(ps) != 1 || ps[0].Name != "Late Co" {
		t.Errorf("platforms after SIGTERM: %+v", ps)
	}
}

// TestDebugAddr: --debug-addr (DREAM_DEBUG_ADDR) serves Go's pprof on its
// own listener, never on the API's; without it nothing listens.
func TestDebugAddr(t *testing.T) {
	get := func(url string) (int, string) {
		t.Helper()
		res, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	ts := startServer(t, map[string]string{"DREAM_DEBUG_ADDR": "127.0.0.1:0"})
	if ts.Main.DebugAddr() == "" {
		t.Fatal("no debug listener")
	}
	if status, body := get("http://" + ts.Main.DebugAddr() + "/debug/pprof/"); status != 200 || !strings.Contains(body, "goroutine") {
		t.Fatalf("pprof index: %d %.200s", status, body)
	}
	if status, body := get("http://" + ts.Main.DebugAddr() + "/debug/pprof/goroutine?debug=1"); status != 200 || !strings.Contains(body, "goroutine profile") {
		t.Fatalf("goroutine profile: %d %.200s", status, body)
	}
	if status, _ := get(ts.URL + "/debug/pprof/"); status != 404 {
		t.Fatalf("pprof on the API's listener: %d", status)
	}
	if plain := startServer(t, nil); plain.Main.DebugAddr() != "" {
		t.Fatalf("a debug listener without DREAM_DEBUG_ADDR: %s", plain.Main.DebugAddr())
	}
}
