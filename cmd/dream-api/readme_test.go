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

// walkthrough runs the sh block between the markers <!-- name:begin --> and
// <!-- name:end --> of a document, as written, against a real server (admin
// token dev-admin-token-change-me, plus env) in dir, and returns what it
// printed.
func walkthrough(t *testing.T, doc, name, dir string, env map[string]string) string {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	text, err := os.ReadFile(filepath.Join("..", "..", doc))
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(text), "<!-- "+name+":begin -->\n```sh\n")
	block, _, ok2 := strings.Cut(block, "```\n<!-- "+name+":end -->")
	if !ok || !ok2 {
		t.Fatalf("%s has no %s block", doc, name)
	}

	m := NewMain()
	m.Getenv = func(k string) string {
		if k == "DREAM_ADMIN_TOKEN" {
			return "dev-admin-token-change-me"
		}
		return env[k]
	}
	var logs bytes.Buffer
	m.Stdout, m.Stderr = &bytes.Buffer{}, &logs
	ctx := context.Background()
	if err := m.ParseFlags(ctx, []string{"--addr", "127.0.0.1:0", "--data", t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	script := strings.ReplaceAll(block, "http://127.0.0.1:8787", "http://"+m.Addr())
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s failed: %v\n%s\nserver log:\n%s", doc, name, err, out, logs.String())
	}
	return string(out)
}

// TestReadmeWalkthrough runs the README's walkthrough, so that it stays true.
func TestReadmeWalkthrough(t *testing.T) {
	got := walkthrough(t, "README.md", "walkthrough", t.TempDir(), nil) // it writes files
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
}

// TestPluginsGuideWalkthrough runs docs/plugins.md's walkthrough.
func TestPluginsGuideWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go plugin")
	}
	// From the repository's root, where testdata/ is.
	// An honest plugin call meets 1 s on a busy machine; the 10 ms default
	// it may miss. The looping module still runs into it. The Go example
	// (2.6 MB) may take longer than the 20 s default to compile under -race
	// on a busy machine.
	got := walkthrough(t, "docs/plugins.md", "walkthrough", filepath.Join("..", ".."),
		map[string]string{"DREAM_PLUGIN_DEADLINE": "1s", "DREAM_PLUGIN_COMPILE_DEADLINE": "5m"})
	for _, want := range []string{
		`"active":true,"onError":"builtin"`,              // the upload
		`"count":10,"limit":25`, `"count":20,"limit":25`, // weighted tracks
		`"code":"tier_limit_reached","message":"Please upgrade to unlock more exports"`,
		`"allowed":true,"cost":20`,   // dry-run
		`"code":"validation_failed"`, // the looping module
		`{"active":null}`,            // back to built-in
	} {
		if !strings.Contains(got, want) {
			t.Errorf("walkthrough output lacks %s:\n%s", want, got)
		}
	}
	// Three uploads or rollbacks answer an active version: weighted, the
	// Go example (which must compile), the rollback.
	if n := strings.Count(got, `"active":true,"onError":"builtin"`); n != 3 {
		t.Errorf("%d answers of an active version, want 3 (was the Go example refused?):\n%s", n, got)
	}
}
