package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
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

	dir := filepath.Join(t.TempDir(), "backup")
	if err := backup(ctx, []string{"--server", "http://" + m.Addr(), dir}, io.Discard); err != nil {
		t.Fatal(err)
	}
	// The same directory again is refused, not overwritten.
	if err := backup(ctx, []string{"--server", "http://" + m.Addr(), dir}, io.Discard); err == nil {
		t.Error("a second backup into the same directory succeeded")
	}
	st, err := storage.Open(dir, nil)
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
	pw.Write([]byte(`{"name":`))
	time.Sleep(200 * time.Millisecond)
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
