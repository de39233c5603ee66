package storage

import (
	"slices"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
)

func TestOutboxRoundTripPagesAndDeletes(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	t0 := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	var ids []string
	commit(t, s, func(b engine.Batch) {
		for i := range 5 {
			e := &engine.OutboxEntry{
				ID: engine.NewID("obx_", t0.Add(time.Duration(i)*time.Millisecond)), Kind: engine.OutboxSyncPlan,
				PlatformID: "plt_a", Mode: engine.Test, CustomerID: "user_2abcXYZ", CreatedAt: t0,
			}
			ids = append(ids, e.ID)
			b.PutOutbox(e)
		}
	})
	got, more, err := s.Outbox(ctx, engine.Page{Limit: 3})
	if err != nil || !more || len(got) != 3 || got[0].ID != ids[0] || got[2].ID != ids[2] {
		t.Fatalf("first page: %v, more %v, %v", got, more, err)
	}
	if e := got[0]; e.Kind != engine.OutboxSyncPlan || e.Tenant() != tenantTest || e.CustomerID != "user_2abcXYZ" || !e.CreatedAt.Equal(t0) {
		t.Errorf("entry %+v", e)
	}
	got, more, err = s.Outbox(ctx, engine.Page{Limit: 3, StartingAfter: ids[2]})
	if err != nil || more || len(got) != 2 || got[0].ID != ids[3] {
		t.Fatalf("second page: %v, more %v, %v", got, more, err)
	}

	// A rewrite after a failed delivery, and deletes; it all survives a reopen.
	next := t0.Add(time.Minute)
	commit(t, s, func(b engine.Batch) {
		b.PutOutbox(&engine.OutboxEntry{ID: ids[1], Kind: engine.OutboxDeleteUser, PlatformID: "plt_a", Mode: engine.Live,
			CustomerID: "user_b", Attempts: 2, NextAttemptAt: next, LastError: "upstream_error"})
		b.DeleteOutbox(ids[0])
		b.DeleteOutbox(ids[4])
		b.DeleteOutbox("obx_never_there")
	})
	s = reopen(t, s, dir)
	got, _, err = s.Outbox(ctx, engine.Page{Limit: 100})
	if err != nil || len(got) != 3 || got[0].ID != ids[1] {
		t.Fatalf("after rewrite and deletes: %v, %v", got, err)
	}
	if e := got[0]; e.Attempts != 2 || !e.NextAttemptAt.Equal(next) || e.LastError == "" || e.Kind != engine.OutboxDeleteUser {
		t.Errorf("rewritten entry %+v", e)
	}
}

func TestAllowedOriginsAndIndex(t *testing.T) {
	s := openStore(t, t.TempDir())
	origins, err := s.AllowedOrigins(ctx, "plt_a")
	if err != nil || origins != nil {
		t.Fatalf("no origins: %v, %v", origins, err)
	}
	anywhere := func(o string) bool {
		t.Helper()
		ok, err := s.OriginAllowedAnywhere(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	commit(t, s, func(b engine.Batch) {
		b.PutAllowedOrigins("plt_a", []string{"https://a.example.com", "http://localhost:5173"}, nil)
		b.PutAllowedOrigins("plt_b", []string{"https://b.example.com", "http://localhost:5173"}, nil)
	})
	if got, _ := s.AllowedOrigins(ctx, "plt_a"); !slices.Equal(got, []string{"https://a.example.com", "http://localhost:5173"}) {
		t.Errorf("plt_a origins %v", got)
	}
	// An origin that extends another is not it.
	for o, want := range map[string]bool{
		"https://a.example.com": true, "https://b.example.com": true, "http://localhost:5173": true,
		"https://a.example.co": false, "https://a.example.com.evil": false, "http://localhost": false,
	} {
		if got := anywhere(o); got != want {
			t.Errorf("anywhere(%s) = %v, want %v", o, got, want)
		}
	}
	// Replacing plt_a's list drops its index entries, not plt_b's.
	commit(t, s, func(b engine.Batch) {
		b.PutAllowedOrigins("plt_a", []string{"http://localhost:5173"}, []string{"https://a.example.com", "http://localhost:5173"})
	})
	if anywhere("https://a.example.com") || !anywhere("http://localhost:5173") || !anywhere("https://b.example.com") {
		t.Error("index not replaced")
	}
	commit(t, s, func(b engine.Batch) {
		b.PutAllowedOrigins("plt_b", []string{}, []string{"https://b.example.com", "http://localhost:5173"})
	})
	if anywhere("https://b.example.com") || !anywhere("http://localhost:5173") {
		t.Error("plt_b's index entries outlived its list")
	}
	commit(t, s, func(b engine.Batch) { b.PutAllowedOrigins("plt_c", []string{"*"}, nil) })
	if !anywhere("https://whatever.example.com") {
		t.Error(`"*" does not allow every origin`)
	}
}
