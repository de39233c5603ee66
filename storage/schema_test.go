package storage

import (
	"errors"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/dream-api/dream-api/engine"
)

func openPebble(t *testing.T, dir string) *pebble.DB {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{Logger: pebbleLogger{discard}})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func schemaOf(t *testing.T, db *pebble.DB) uint64 {
	t.Helper()
	v, err := storedSchema(db)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestOpenWritesSchemaVersion(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db := openPebble(t, dir)
	defer db.Close()
	if v := schemaOf(t, db); v != schemaVersion {
		t.Errorf("schema version %d, want %d", v, schemaVersion)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	dir := t.TempDir()
	db := openPebble(t, dir)
	if err := db.Set(schemaKey(), encodeSchema(schemaVersion+1), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(dir, nil); err == nil {
		s.Close()
		t.Fatal("Open of a newer schema succeeded")
	} else if !strings.Contains(err.Error(), "newer") {
		t.Errorf("error %v, want one about a newer schema", err)
	}
}

func TestMigrate(t *testing.T) {
	ran := []uint64{}
	step := func(v uint64) migration {
		return migration{version: v, run: func(db *pebble.DB, b *pebble.Batch) error {
			ran = append(ran, v)
			return b.Set([]byte("migrated"), encodeSchema(v), nil)
		}}
	}
	db := openPebble(t, t.TempDir())
	defer db.Close()
	if err := migrate(db, 1, nil); err != nil {
		t.Fatal(err)
	}

	if err := migrate(db, 3, []migration{step(2), step(3), step(4)}); err != nil {
		t.Fatal(err)
	}
	if got := schemaOf(t, db); got != 3 {
		t.Errorf("schema version %d, want 3", got)
	}
	wantEqual(t, "migrations run", ran, []uint64{2, 3})
	if _, closer, err := db.Get([]byte("migrated")); err != nil {
		t.Errorf("migration's write missing: %v", err)
	} else {
		closer.Close()
	}

	// Current already: nothing runs.
	ran = ran[:0]
	if err := migrate(db, 3, []migration{step(2), step(3)}); err != nil || len(ran) != 0 {
		t.Errorf("migrate at the current version ran %v, err %v", ran, err)
	}

	// A gap is an error and leaves the version alone.
	if err := migrate(db, 5, []migration{step(5)}); err == nil {
		t.Error("migrate over a missing migration succeeded")
	}
	if got := schemaOf(t, db); got != 3 {
		t.Errorf("schema version after a failed migrate %d, want 3", got)
	}

	// A failing migration writes nothing, not even its version.
	boom := errors.New("boom")
	failing := migration{version: 4, run: func(db *pebble.DB, b *pebble.Batch) error {
		_ = b.Set([]byte("half done"), []byte{formatV1}, nil)
		return boom
	}}
	if err := migrate(db, 4, []migration{failing}); !errors.Is(err, boom) {
		t.Errorf("migrate = %v, want boom", err)
	}
	if got := schemaOf(t, db); got != 3 {
		t.Errorf("schema version after a failed migration %d, want 3", got)
	}
	if _, _, err := db.Get([]byte("half done")); !errors.Is(err, pebble.ErrNotFound) {
		t.Errorf("a failed migration's write is visible: %v", err)
	}
}

// TestConfigPerModeMigration: a version 1 store's tier config and plugin
// settings, versions and modules were the platform's; after Open each mode
// has its own copy and the old keys are gone.
func TestConfigPerModeMigration(t *testing.T) {
	dir := t.TempDir()
	db := openPebble(t, dir)
	tiers, _ := encodeJSON(&engine.TierConfig{Tiers: []engine.Tier{{Name: "solo", Limits: map[string]int64{"requests": 7}}}})
	settings, _ := encodeJSON(&engine.PluginSettings{Active: "plg_1", OnError: "deny"})
	version, _ := encodeJSON(&engine.PluginVersion{Version: "plg_1", SHA256: "ab", Size: 4})
	old := map[string][]byte{
		string(makeKey(prefixTiers, "plt_a")):              tiers,
		string(makeKey(prefixPluginSet, "plt_a")):          settings,
		string(makeKey(prefixPluginVer, "plt_a", "plg_1")): version,
		string(makeKey(prefixPluginMod, "plt_a", "plg_1")): append([]byte{formatV1}, "wasm"...),
	}
	for k, v := range old {
		if err := db.Set([]byte(k), v, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Set(schemaKey(), encodeSchema(1), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, dir)
	for _, m := range []engine.Mode{engine.Live, engine.Test} {
		tn := engine.Tenant{PlatformID: "plt_a", Mode: m}
		tc, err := s.Tiers(ctx, tn)
		if err != nil || len(tc.Tiers) != 1 || tc.Tiers[0].Limits["requests"] != 7 {
			t.Errorf("%s tiers: %+v, %v", m, tc, err)
		}
		ps, err := s.PluginSettings(ctx, tn)
		if err != nil || ps.Active != "plg_1" || ps.OnError != "deny" {
			t.Errorf("%s plugin settings: %+v, %v", m, ps, err)
		}
		vs, err := s.PluginVersions(ctx, tn)
		if err != nil || len(vs) != 1 || vs[0].Version != "plg_1" {
			t.Errorf("%s plugin versions: %+v, %v", m, vs, err)
		}
		if wasm, err := s.PluginModule(ctx, tn, "plg_1"); err != nil || string(wasm) != "wasm" {
			t.Errorf("%s plugin module: %q, %v", m, wasm, err)
		}
	}
	for k := range old {
		if found, err := s.get([]byte(k), func([]byte) error { return nil }); err != nil || found {
			t.Errorf("old key %q still there (%v)", k, err)
		}
	}
}
