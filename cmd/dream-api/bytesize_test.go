package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

func TestByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		str  string
	}{
		{"64MiB", 64 << 20, "64MiB"},
		{"64mb", 64 << 20, "64MiB"},
		{"1GiB", 1 << 30, "1GiB"},
		{"2g", 2 << 30, "2GiB"},
		{"512 KiB", 512 << 10, "512KiB"},
		{"1000", 1000, "1000B"},
		{"10B", 10, "10B"},
	} {
		var b byteSize
		if err := b.Set(tc.in); err != nil {
			t.Errorf("Set(%q): %v", tc.in, err)
			continue
		}
		if int64(b) != tc.want || b.String() != tc.str {
			t.Errorf("Set(%q) = %d (%s), want %d (%s)", tc.in, int64(b), b, tc.want, tc.str)
		}
	}
	for _, bad := range []string{"", "MiB", "-1MiB", "1TiB", "1.5GiB", "12 parsecs", "99999999999GiB"} {
		var b byteSize
		if err := b.Set(bad); err == nil {
			t.Errorf("Set(%q) = %d, want an error", bad, int64(b))
		}
	}
}

func TestCacheSizeFlag(t *testing.T) {
	parse := func(env map[string]string, args ...string) (*Main, error) {
		m := &Main{Getenv: func(k string) string { return env[k] }, Stdout: io.Discard, Stderr: io.Discard}
		return m, m.ParseFlags(context.Background(), args)
	}
	m, err := parse(nil)
	if err != nil || m.Config.CacheSize != 256<<20 {
		t.Fatalf("default: %d, %v; want 256MiB", m.Config.CacheSize, err)
	}
	if m, err = parse(map[string]string{"DREAM_CACHE_SIZE": "1GiB"}); err != nil || m.Config.CacheSize != 1<<30 {
		t.Fatalf("DREAM_CACHE_SIZE=1GiB: %d, %v", m.Config.CacheSize, err)
	}
	if m, err = parse(map[string]string{"DREAM_CACHE_SIZE": "1GiB"}, "--cache-size", "96MiB"); err != nil || m.Config.CacheSize != 96<<20 {
		t.Fatalf("--cache-size 96MiB over the environment: %d, %v", m.Config.CacheSize, err)
	}
	if _, err = parse(nil, "--cache-size", "1MiB"); err == nil || !strings.Contains(err.Error(), "at least 8MiB") {
		t.Fatalf("--cache-size 1MiB: %v, want an error naming the minimum", err)
	}
	if _, err = parse(map[string]string{"DREAM_CACHE_SIZE": "lots"}); err == nil || !strings.Contains(err.Error(), "DREAM_CACHE_SIZE") {
		t.Fatalf("DREAM_CACHE_SIZE=lots: %v, want an error naming the variable", err)
	}
}

func TestCommitDelayFlag(t *testing.T) {
	parse := func(env map[string]string, args ...string) (*Main, error) {
		m := &Main{Getenv: func(k string) string { return env[k] }, Stdout: io.Discard, Stderr: io.Discard}
		return m, m.ParseFlags(context.Background(), args)
	}
	m, err := parse(nil)
	if err != nil || m.Config.CommitDelay != 100*time.Microsecond || commitDelayOption(m.Config.CommitDelay) != 100*time.Microsecond {
		t.Fatalf("default: %v, %v; want 100µs", m.Config.CommitDelay, err)
	}
	if m, err = parse(map[string]string{"DREAM_COMMIT_DELAY": "0"}); err != nil || commitDelayOption(m.Config.CommitDelay) != -1 {
		t.Fatalf("DREAM_COMMIT_DELAY=0: %v, %v; want off (-1 for storage)", m.Config.CommitDelay, err)
	}
	if m, err = parse(nil, "--commit-delay", "250us"); err != nil || m.Config.CommitDelay != 250*time.Microsecond {
		t.Fatalf("--commit-delay 250us: %v, %v", m.Config.CommitDelay, err)
	}
	for _, bad := range []string{"-1ms", "1s"} {
		if _, err := parse(nil, "--commit-delay", bad); err == nil {
			t.Errorf("--commit-delay %s accepted", bad)
		}
	}
}
