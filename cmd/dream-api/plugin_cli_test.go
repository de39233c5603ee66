package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"path/filepath"
	"strings"
	"testing"

	dream "github.com/dream-api/dream-api/sdk/go"
)

// pluginCLI runs `dream-api plugin args…` and decodes its JSON output.
func pluginCLI(t *testing.T, args ...string) (map[string]any, error) {
	t.Helper()
	var out bytes.Buffer
	err := pluginCommand(context.Background(), args, &out)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if jerr := json.Unmarshal(out.Bytes(), &m); jerr != nil {
		t.Fatalf("plugin %s printed no JSON object: %v\n%s", strings.Join(args, " "), jerr, out.String())
	}
	return m, nil
}

func TestPluginCLI(t *testing.T) {
	ts := startServer(t, pluginEnv)
	p := ts.createPlatform(t, "CLI Co")
	plugins := filepath.Join("..", "..", "testdata", "plugins")
	flags := []string{"--server", ts.URL, "--key", p.SK}

	st, err := pluginCLI(t, append([]string{"status"}, flags...)...)
	if err != nil || st["active"] != nil || str(st, "onError") != "builtin" {
		t.Fatalf("status before any upload: %v %v", st, err)
	}

	// push: flags after the file work too.
	v1, err := pluginCLI(t, append([]string{"push", filepath.Join(plugins, "builtin.wasm")}, flags...)...)
	if err != nil || v1["active"] != true || !strings.HasPrefix(str(v1, "version"), "plg_") || str(v1, "onError") != "builtin" {
		t.Fatalf("push: %v %v", v1, err)
	}
	v2, err := pluginCLI(t, append([]string{"push", "--on-error", "deny", filepath.Join(plugins, "allow_all.wasm")}, flags...)...)
	if err != nil || str(v2, "onError") != "deny" || str(v2, "version") == str(v1, "version") {
		t.Fatalf("push --on-error deny: %v %v", v2, err)
	}

	// dry-run: allow_all allows past the limit; builtin (by --version) does not.
	in := `{"plan":"free","usage":100,"quantity":1}`
	dr, err := pluginCLI(t, append([]string{"dry-run", "--input", in}, flags...)...)
	if err != nil || dr["allowed"] != true {
		t.Fatalf("dry-run of allow_all: %v %v", dr, err)
	}
	dr, err = pluginCLI(t, append([]string{"dry-run", "--version", str(v1, "version"), "--input", in}, flags...)...)
	if err != nil || dr["allowed"] != false {
		t.Fatalf("dry-run of builtin at the limit: %v %v", dr, err)
	}

	rb, err := pluginCLI(t, append([]string{"rollback", str(v1, "version")}, flags...)...)
	if err != nil || rb["active"] != true || str(rb, "version") != str(v1, "version") {
		t.Fatalf("rollback: %v %v", rb, err)
	}
	st, err = pluginCLI(t, append([]string{"status"}, flags...)...)
	if err != nil || str(st, "active", "version") != str(v1, "version") || len(st["history"].([]any)) != 2 {
		t.Fatalf("status after rollback: %v %v", st, err)
	}

	// The key from the environment.
	t.Setenv("DREAM_SECRET_KEY", p.SK)
	t.Setenv("DREAM_API_URL", ts.URL)
	if st, err := pluginCLI(t, "status"); err != nil || str(st, "active", "version") != str(v1, "version") {
		t.Fatalf("status with the environment's key: %v %v", st, err)
	}

	// Errors: the server's, as a *dream.Error; and the CLI's own.
	var e *dream.Error
	_, err = pluginCLI(t, "push", filepath.Join(plugins, "loop.wasm"))
	if !errors.As(err, &e) || e.Status != 422 || e.Code != "validation_failed" {
		t.Errorf("push of a module that loops: %v, want 422 validation_failed", err)
	}
	_, err = pluginCLI(t, "rollback", "plg_nope")
	if !errors.As(err, &e) || e.Status != 404 {
		t.Errorf("rollback to an unknown version: %v, want 404", err)
	}
	_, err = pluginCLI(t, "status", "--key", "sk_test_wrong")
	if !errors.As(err, &e) || e.Code != "invalid_api_key" {
		t.Errorf("status with a wrong key: %v, want invalid_api_key", err)
	}
	for _, args := range [][]string{
		{"push"}, {"push", "a.wasm", "b.wasm"}, {"push", "--on-error", "maybe", filepath.Join(plugins, "builtin.wasm")},
		{"rollback"}, {"dry-run", "--input", `{"quantiy":1}`}, {"dry-run", "--input", "{"}, {"frobnicate"}, {},
	} {
		if _, err := pluginCLI(t, args...); err == nil {
			t.Errorf("plugin %q: no error", args)
		}
	}
	t.Setenv("DREAM_SECRET_KEY", "")
	if _, err := pluginCLI(t, "status"); err == nil || !strings.Contains(err.Error(), "DREAM_SECRET_KEY") {
		t.Errorf("status without a key: %v", err)
	}
	for _, sub := range []string{"push", "dry-run", "rollback", "status"} {
		var out bytes.Buffer
		if err := pluginCommand(context.Background(), []string{sub, "--help"}, &out); !errors.Is(err, flag.ErrHelp) ||
			!strings.Contains(out.String(), "--server") || !strings.Contains(out.String(), "DREAM_SECRET_KEY") {
			t.Errorf("plugin %s --help: %v\n%s", sub, err, out.String())
		}
		if err := run(context.Background(), []string{"plugin", sub, "--help"}); err != nil {
			t.Errorf("run plugin %s --help: %v, want exit 0", sub, err)
		}
	}
}
