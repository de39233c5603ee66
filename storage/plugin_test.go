package storage

import (
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
)

// TestDeletePluginVersion: a deleted version's record and module are gone,
// the other versions and platforms stay, and deleting in the batch that
// puts a new version keeps the new one.
func TestDeletePluginVersion(t *testing.T) {
	s := openStore(t, t.TempDir())
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ta, tb := engine.Tenant{PlatformID: "plt_a"}, engine.Tenant{PlatformID: "plt_b"}
	v := func(id string) *engine.PluginVersion {
		return &engine.PluginVersion{Version: id, SHA256: "ab", Size: 3, UploadedAt: at}
	}
	commit(t, s, func(b engine.Batch) {
		b.PutPluginVersion(ta, v("plg_1"), []byte("one"))
		b.PutPluginVersion(ta, v("plg_2"), []byte("two"))
		b.PutPluginVersion(tb, v("plg_1"), []byte("bee"))
	})
	commit(t, s, func(b engine.Batch) {
		b.PutPluginVersion(ta, v("plg_3"), []byte("three"))
		b.DeletePluginVersion(ta, "plg_1")
	})
	vs, err := s.PluginVersions(ctx, ta)
	if err != nil || len(vs) != 2 || vs[0].Version != "plg_2" || vs[1].Version != "plg_3" {
		t.Fatalf("PluginVersions: %+v, %v", vs, err)
	}
	_, err = s.PluginModule(ctx, ta, "plg_1")
	wantNotFound(t, "deleted module", err)
	for _, c := range []struct {
		platform      engine.Tenant
		version, want string
	}{
		{ta, "plg_2", "two"}, {ta, "plg_3", "three"}, {tb, "plg_1", "bee"},
	} {
		if got, err := s.PluginModule(ctx, c.platform, c.version); err != nil || string(got) != c.want {
			t.Errorf("PluginModule(%s, %s): %q, %v", c.platform, c.version, got, err)
		}
	}
	// A component unfit for a key fails the batch.
	b := s.NewBatch()
	defer b.Close()
	b.DeletePluginVersion(ta, "bad\x00id")
	if err := b.Commit(); err == nil {
		t.Error("Commit of a bad component: nil error")
	}
}
