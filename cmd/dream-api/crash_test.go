package main

// Crash safety: SIGKILL the server under load, restart it on the same data
// dir, and hold the stored count to what was acknowledged.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// crashChildEnv marks the test binary, re-executed, as the server to kill.
const crashChildEnv = "DREAM_CRASH_CHILD"

// TestCrashChild is the child's side: it serves until killed, or until its
// stdin closes (the parent died). It is skipped in a normal run.
func TestCrashChild(t *testing.T) {
	if os.Getenv(crashChildEnv) != "1" {
		t.Skip("the server side of TestCrashRecovery; runs only as its child process")
	}
	m := NewMain()
	m.Stdout = io.Discard
	m.Stderr = os.Stderr
	if err := m.ParseFlags(context.Background(), []string{"--addr", "127.0.0.1:0", "--data", os.Getenv("DREAM_CRASH_DATA")}); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	if err := m.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	fmt.Printf("DREAM_ADDR=%s\n", m.Addr())
	io.Copy(io.Discard, os.Stdin)
	os.Exit(3) // the parent went away without killing us
}

// crashChild is a server in a child process.
type crashChild struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	addr   string
	stderr *syncBuffer
}

func startCrashChild(t *testing.T, dataDir, adminToken string) *crashChild {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestCrashChild$", "-test.count=1", "-test.timeout=0")
	cmd.Env = append(os.Environ(), crashChildEnv+"=1", "DREAM_CRASH_DATA="+dataDir, "DREAM_ADMIN_TOKEN="+adminToken)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &crashChild{cmd: cmd, stdin: stdin, stderr: &syncBuffer{}}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "DREAM_ADDR="); ok {
				found <- a
			}
		}
		close(found)
	}()
	select {
	case a, ok := <-found:
		if !ok {
			t.Fatalf("the child exited before serving:\n%s", c.stderr)
		}
		c.addr = a
	case <-time.After(30 * time.Second):
		t.Fatalf("the child did not print its address:\n%s", c.stderr)
	}
	return c
}

func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	for round := 1; round <= 3; round++ {
		t.Run(fmt.Sprintf("round%d", round), func(t *testing.T) { crashRound(t) })
	}
}

func crashRound(t *testing.T) {
	const workers = 8
	dataDir := t.TempDir()
	token := "dat_crash_" + randHex(8)
	child := startCrashChild(t, dataDir, token)
	// The child is reached through the same checked client.
	ts := &testServer{URL: "http://" + child.addr, AdminToken: token, client: &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: workers}}}
	defer ts.client.CloseIdleConnections()
	p := ts.createPlatform(t, "Crash")
	ts.putTiers(t, p.SK, map[string]any{"name": "free", "limit": 10_000_000})
	id := str(ts.createCustomer(t, p.SK, map[string]any{"email": "crash@example.com"}), "id")

	var acked, inflight, sent atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				q := int64(1 + i%3)
				sent.Add(1)
				res, err := ts.try(context.Background(), req{Method: "POST", Path: "/api/track", Key: p.SK,
					Body: map[string]any{"customerId": id, "quantity": q}})
				if err != nil && res == nil {
					// No answer: the request may or may not have been counted.
					inflight.Add(q)
					return
				}
				if err != nil || res.Status != 200 {
					t.Errorf("under load: %d %v", res.Status, err)
					return
				}
				acked.Add(q)
			}
		}()
	}
	// Let the load run, then kill the server in the middle of it.
	deadline := time.Now().Add(2 * time.Second)
	for sent.Load() < 200 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	killChild(t, child)
	wg.Wait()
	waitKilled(t, child)
	if acked.Load() == 0 {
		t.Fatalf("nothing was acknowledged before the kill")
	}

	restarted := startServerAt(t, dataDir, map[string]string{"DREAM_ADMIN_TOKEN": token})
	got := restarted.count(t, p.SK, id, "requests")
	t.Logf("acknowledged %d units, %d in flight at the kill, stored %d", acked.Load(), inflight.Load(), got)
	if got < acked.Load() {
		t.Errorf("stored count %d < acknowledged %d: acknowledged usage was lost", got, acked.Load())
	}
	if got > acked.Load()+inflight.Load() {
		t.Errorf("stored count %d > acknowledged %d + in flight %d: usage nobody sent was counted", got, acked.Load(), inflight.Load())
	}
	// The restarted server keeps counting from there.
	res := restarted.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: track(id)}, 200, "")
	if num(res.Body, "usage", "count") != got+1 {
		t.Errorf("track after restart: %s, want count %d", res.Raw, got+1)
	}
}
