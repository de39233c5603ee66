package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
)

// dream-api platform suspend|resume: through a running server's admin API
// (the keys stop and start working at once), and on a data dir when no
// server answers (the suspension is there when the server starts).
func TestPlatformSuspendCLI(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	m := runMain(t, data, "admin-token-for-suspend")
	t.Setenv("DREAM_ADMIN_TOKEN", "admin-token-for-suspend")
	server := "http://" + m.Addr()
	var out bytes.Buffer
	if err := platformCreate(ctx, []string{"--name", "Cli Co", "--server", server}, &out); err != nil {
		t.Fatal(err)
	}
	var p createdPlatform
	json.Unmarshal(out.Bytes(), &p)

	out.Reset()
	if err := platformSuspend(ctx, "suspend", []string{p.PlatformID, "--reason", "abuse", "--server", server}, &out); err != nil {
		t.Fatal(err)
	}
	var got platformAnswer
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || got.Platform == nil || got.Platform.SuspendedAt == nil || got.Platform.SuspendedReason != "abuse" {
		t.Fatalf("suspend printed %s (%v)", out.String(), err)
	}
	if authenticates(t, m.Addr(), p.SecretKey) {
		t.Error("the secret key works after the suspension")
	}
	if err := platformSuspend(ctx, "resume", []string{p.PlatformID, "--server", server}, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !authenticates(t, m.Addr(), p.SecretKey) {
		t.Error("the secret key is refused after the resume")
	}
	if err := platformSuspend(ctx, "suspend", []string{"plt_nobody", "--server", server}, io.Discard); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("unknown platform: %v, want a 404", err)
	}
	if err := platformSuspend(ctx, "suspend", nil, io.Discard); err == nil {
		t.Error("no error without an id")
	}

	// No server: the data dir itself.
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := platformSuspend(ctx, "suspend", []string{p.PlatformID, "--server", "http://127.0.0.1:1", "--data", data}, io.Discard); err != nil {
		t.Fatal(err)
	}
	m = runMain(t, data, "admin-token-for-suspend")
	if authenticates(t, m.Addr(), p.SecretKey) {
		t.Error("a suspension made on the data dir does not hold when the server starts")
	}
}

func TestPlatformSuspendHelp(t *testing.T) {
	ctx := context.Background()
	for verb, want := range map[string][]string{
		"suspend": {"--reason", "--server", "--data", "DREAM_ADMIN_TOKEN", "Stripe webhooks still apply"},
		"resume":  {"--server", "--data", "DREAM_ADMIN_TOKEN"},
	} {
		var out bytes.Buffer
		if err := platformSuspend(ctx, verb, []string{"--help"}, &out); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%s --help: %v", verb, err)
		}
		for _, w := range want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%s --help does not list %s:\n%s", verb, w, out.String())
			}
		}
		if err := run(ctx, []string{"platform", verb, "-h"}); err != nil {
			t.Errorf("run platform %s -h: %v, want exit 0", verb, err)
		}
	}
}
