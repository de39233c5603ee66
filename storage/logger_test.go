package storage

import (
	"bytes"
	"context"
	"log"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/dream-api/dream-api/engine"
)

var discard = slog.New(slog.DiscardHandler)

// recorder is a slog.Handler that keeps records.
type recorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, rec)
	return nil
}

func TestPebbleLoggerLevels(t *testing.T) {
	rec := &recorder{}
	l := pebbleLogger{slog.New(rec)}
	l.Infof("flushed %d", 1)
	l.Errorf("background error: %s", "disk")
	func() {
		defer func() {
			if p := recover(); p == nil || !strings.Contains(p.(string), "corrupt") {
				t.Errorf("Fatalf recovered %v, want a panic about corrupt", p)
			}
		}()
		l.Fatalf("corrupt %s", "sstable")
	}()
	want := []struct {
		level slog.Level
		msg   string
	}{
		{slog.LevelDebug, "flushed 1"},
		{slog.LevelError, "background error: disk"},
		{slog.LevelError, "corrupt sstable"},
	}
	if len(rec.records) != len(want) {
		t.Fatalf("%d records, want %d", len(rec.records), len(want))
	}
	for i, w := range want {
		if r := rec.records[i]; r.Level != w.level || r.Message != w.msg {
			t.Errorf("record %d = %v %q, want %v %q", i, r.Level, r.Message, w.level, w.msg)
		}
	}
}

// Pebble writes nothing to the standard logger, which goes to stderr; its
// messages reach Options.Logger.
func TestPebbleIsQuiet(t *testing.T) {
	var stderr bytes.Buffer
	prev := log.Writer()
	log.SetOutput(&stderr)
	defer log.SetOutput(prev)

	dir := t.TempDir()
	rec := &recorder{}
	for range 2 { // create, then recover the log of an existing store
		s, err := Open(dir, &Options{Logger: slog.New(rec)})
		if err != nil {
			t.Fatal(err)
		}
		commit(t, s, func(b engine.Batch) { b.PutPlatform(samplePlatform("plt_a")) })
		if err := s.Checkpoint(t.TempDir() + "/cp"); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if stderr.Len() > 0 {
		t.Errorf("Pebble wrote to the standard logger:\n%s", stderr.String())
	}
}

func TestOptions(t *testing.T) {
	var o Options
	o.EnsureDefaults()
	if o.Logger == nil || o.FS == nil || o.CacheSize != DefaultCacheSize {
		t.Errorf("EnsureDefaults left %+v", o)
	}
	if err := o.Validate(); err != nil {
		t.Errorf("Validate of defaults: %v", err)
	}
	if _, err := Open(t.TempDir(), &Options{CacheSize: -1}); err == nil {
		t.Error("Open with a negative cache size succeeded")
	}
}
