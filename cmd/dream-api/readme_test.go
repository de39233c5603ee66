package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadmeWalkthrough runs the README's walkthrough, as written, against
// the real server, so that the README stays true.
func TestReadmeWalkthrough(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "<!-- walkthrough:begin -->\n```sh\n")
	block, _, ok2 := strings.Cut(block, "```\n<!-- walkthrough:end -->")
	if !ok || !ok2 {
		t.Fatal("README has no walkthrough block")
	}

	const token = "dev-admin-token-change-me"
	m := NewMain()
	m.Getenv = func(k string) string {
		if k == "DREAM_ADMIN_TOKEN" {
			return token
		}
		return ""
	}
	var stderr bytes.Buffer
	m.Stdout, m.Stderr = &bytes.Buffer{}, &stderr
	ctx := context.Background()
	if err := m.ParseFlags(ctx, []string{"--addr", "127.0.0.1:0", "--data", t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	script := strings.ReplaceAll(block, "http://127.0.0.1:8787", "http://"+m.Addr())
	dir := t.TempDir()
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("walkthrough failed: %v\n%s", err, out)
	}
	got := string(out)
	if !strings.Contains(got, "200\n200\n200\n429\n") {
		t.Errorf("walkthrough did not track to the limit (200 200 200 429):\n%s", got)
	}
	for _, want := range []string{
		`"allowed":false`,                   // the check at the limit
		`"count":3,"limit":3,"remaining":0`, // usage
		`"plan":"pro"`,                      // the upgrade
		`"count":4,"limit":10000`,           // tracked after the upgrade
	} {
		if !strings.Contains(got, want) {
			t.Errorf("walkthrough output lacks %s:\n%s", want, got)
		}
	}
	// The idempotent retry answered exactly the first answer.
	lines := strings.Split(got, "\n")
	n := 0
	for _, l := range lines {
		if strings.Contains(l, `"count":4,"limit":10000`) {
			n++
		}
	}
	if n != 2 {
		t.Errorf("want the tracked answer twice (first call and its replay), got %d:\n%s", n, got)
	}
	if _, err := os.Stat(filepath.Join(dir, "platform.json")); err != nil {
		t.Error(err)
	}
}
