package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dream-api/dream-api/storage"
)

// wantPrivate fails unless every directory under root (root included) is
// 0700 and every regular file 0600.
func wantPrivate(t *testing.T, root string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		} else if !d.Type().IsRegular() {
			return nil
		}
		n++
		if got := info.Mode().Perm(); got != want {
			t.Errorf("%s is %o, want %o", path, got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 2 {
		t.Fatalf("%s holds %d files: nothing checked", root, n)
	}
}

// TestBackupRestoreStripe: a backup made through the CLI while serving
// carries the master key, so that a server restored from it (with
// `dream-api restore`) calls Stripe with the platform's key; a store
// restored without its key answers 424 with what to do, never 500; and a
// restored data dir started with another DREAM_MASTER_KEY refuses to start.
func TestBackupRestoreStripe(t *testing.T) {
	ctx := context.Background()
	backups := t.TempDir()
	ts, mock := stripeServer(t, map[string]string{"DREAM_BACKUP_DIR": backups})
	p := ts.createPlatform(t, "Restored Shop")
	ts.stripeConnectByKey(t, p)
	ts.stripeTiers(t, p.TestSK, 1500)
	id := str(ts.createCustomer(t, p.TestSK, map[string]any{"email": "r@example.com"}), "id")

	// dream-api backup NAME --server URL: the server writes into its backup dir.
	t.Setenv("DREAM_ADMIN_TOKEN", ts.AdminToken)
	var out bytes.Buffer
	if err := backup(ctx, []string{"nightly", "--server", ts.URL}, &out); err != nil {
		t.Fatal(err)
	}
	bk := filepath.Join(backups, "nightly")
	if !strings.Contains(out.String(), "backup written to "+bk) || !strings.Contains(out.String(), "contains the master key") {
		t.Errorf("backup printed:\n%s", out.String())
	}
	for _, name := range []string{backupManifestName, masterKeyName, masterCheckName, storeDirName} {
		if _, err := os.Stat(filepath.Join(bk, name)); err != nil {
			t.Errorf("the backup lacks %s: %v", name, err)
		}
	}
	wantPrivate(t, bk)
	ts.Close()

	// restore BACKUP --data DIR (flags after the argument), then serve it.
	data := filepath.Join(t.TempDir(), "restored")
	out.Reset()
	if err := restore(ctx, []string{bk, "--data", data}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "master key came with the backup") {
		t.Errorf("restore printed:\n%s", out.String())
	}
	wantPrivate(t, data)
	env := map[string]string{"STRIPE_API_BASE": mock.URL, "DREAM_ADMIN_TOKEN": ts.AdminToken}
	restored := startServerAt(t, data, env)
	mock.Reset()
	res := restored.expect(t, req{Method: "POST", Path: "/api/create-checkout", Key: p.TestSK,
		Body: map[string]any{"customerId": id, "tier": "pro"}}, 200, "")
	if !strings.HasPrefix(str(res.Body, "sessionId"), "cs_") {
		t.Errorf("checkout after restore: %s", res.Raw)
	}
	if s := mock.Find("POST", "/v1/checkout/sessions"); len(s) != 1 || s[0].Key != stripePlatformKey {
		t.Errorf("Checkout sessions after restore: %+v, want one with the platform's key", s)
	}
	restored.Close()

	// The same data dir with another key: refused at start-up, clearly.
	m := NewMain()
	m.Getenv = func(k string) string {
		if k == "DREAM_MASTER_KEY" {
			return hex.EncodeToString(bytes.Repeat([]byte{7}, 32))
		}
		return env[k]
	}
	m.Stdout, m.Stderr = io.Discard, io.Discard
	if err := m.ParseFlags(ctx, []string{"--addr", "127.0.0.1:0", "--data", data}); err != nil {
		t.Fatal(err)
	}
	err := m.Run(ctx)
	m.Close()
	if err == nil || !strings.Contains(err.Error(), "is not the key this data dir's secrets were sealed with") ||
		!strings.Contains(err.Error(), "DREAM_MASTER_KEY") {
		t.Errorf("start with a wrong master key: %v", err)
	}

	// A store restored by hand without its key (as the README used to
	// say): the server makes a new key, and Stripe calls answer 424 with
	// what to do instead of 500.
	bare := t.TempDir()
	copyDir(t, filepath.Join(bk, storeDirName), filepath.Join(bare, storeDirName))
	keyless := startServerAt(t, bare, env)
	res = keyless.expect(t, req{Method: "POST", Path: "/api/create-checkout", Key: p.TestSK,
		Body: map[string]any{"customerId": id, "tier": "pro"}}, 424, "stripe_not_connected")
	if msg := str(res.Body, "message"); !strings.Contains(msg, "sealed with another master key") || !strings.Contains(msg, "DREAM_MASTER_KEY") {
		t.Errorf("message %q does not say what is wrong", msg)
	}
}

// TestBackupKeptFromEnv: with DREAM_MASTER_KEY the key is not written into
// the backup, the operator is told to keep it, and the restored data dir
// starts with that key only.
func TestBackupKeptFromEnv(t *testing.T) {
	ctx := context.Background()
	key := hex.EncodeToString(bytes.Repeat([]byte{3}, 32))
	backups := t.TempDir()
	ts := startServer(t, map[string]string{"DREAM_BACKUP_DIR": backups, "DREAM_MASTER_KEY": key})
	res := ts.expect(t, req{Method: "POST", Path: "/admin/backup", Key: ts.AdminToken, Body: map[string]any{"dir": "env-kept"}}, 200, "")
	if str(res.Body, "masterKey") != "not_included" {
		t.Errorf("backup answered %s", res.Raw)
	}
	bk := filepath.Join(backups, "env-kept")
	if _, err := os.Stat(filepath.Join(bk, masterKeyName)); err == nil {
		t.Error("a key from DREAM_MASTER_KEY was written into the backup")
	}
	var out bytes.Buffer
	data := filepath.Join(t.TempDir(), "d")
	if err := restore(ctx, []string{"--data", data, bk}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "DREAM_MASTER_KEY") {
		t.Errorf("restore does not say the key is needed:\n%s", out.String())
	}
	// Without the key: refused (no new key is generated over sealed data).
	m := NewMain()
	m.Getenv = func(string) string { return "" }
	m.Stdout, m.Stderr = io.Discard, io.Discard
	m.ParseFlags(ctx, []string{"--addr", "127.0.0.1:0", "--data", data})
	err := m.Run(ctx)
	m.Close()
	if err == nil || !strings.Contains(err.Error(), "set DREAM_MASTER_KEY to the original key") {
		t.Errorf("start without the key: %v", err)
	}
	if _, err := os.Stat(filepath.Join(data, masterKeyName)); err == nil {
		t.Error("a new master key was generated over sealed data")
	}
	startServerAt(t, data, map[string]string{"DREAM_MASTER_KEY": key})
}

// TestRestoreRefuses: a non-empty target, and a directory that is not a
// backup, are refused and left as they were.
func TestRestoreRefuses(t *testing.T) {
	ctx := context.Background()
	ts := startServer(t, map[string]string{"DREAM_BACKUP_DIR": t.TempDir()})
	res := ts.expect(t, req{Method: "POST", Path: "/admin/backup", Key: ts.AdminToken, Body: map[string]any{"dir": "b"}}, 200, "")
	bk := str(res.Body, "dir")

	full := t.TempDir()
	os.WriteFile(filepath.Join(full, "keep.txt"), []byte("x"), 0o600)
	if err := restore(ctx, []string{bk, "--data", full}, io.Discard); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("restore into a non-empty dir: %v", err)
	}
	if entries, _ := os.ReadDir(full); len(entries) != 1 {
		t.Errorf("the non-empty dir was changed: %v", entries)
	}
	notBackup := t.TempDir()
	os.WriteFile(filepath.Join(notBackup, "x"), []byte("x"), 0o600)
	target := filepath.Join(t.TempDir(), "new")
	if err := restore(ctx, []string{notBackup, "--data", target}, io.Discard); err == nil || !strings.Contains(err.Error(), "not a dream-api backup") {
		t.Errorf("restore of a non-backup: %v", err)
	}
	if _, err := os.Stat(target); err == nil {
		t.Error("a refused restore left a data dir behind")
	}
	// An empty directory is fine, and the restored store opens.
	empty := t.TempDir()
	if err := restore(ctx, []string{bk, "--data", empty}, io.Discard); err != nil {
		t.Fatal(err)
	}
	st, err := storage.Open(filepath.Join(empty, storeDirName), &storage.Options{MustExist: true})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
}

// TestAdminBackupConfined: POST /admin/backup writes only inside the
// backup directory: absolute paths outside it, "..", and symbolic links
// leading out are refused with 422 naming dir, and nothing is written.
func TestAdminBackupConfined(t *testing.T) {
	backups := t.TempDir()
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(backups, "link")); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(backups, "nested"), 0o700)
	ts := startServer(t, map[string]string{"DREAM_BACKUP_DIR": backups})
	for _, dir := range []string{
		"/tmp/x", filepath.Join(outside, "x"), "../x", "nested/../../x", "link/x", "", ".",
		"missing/parent", filepath.Join(backups, "..", "x"),
	} {
		res := ts.expect(t, req{Method: "POST", Path: "/admin/backup", Key: ts.AdminToken, Body: map[string]any{"dir": dir}}, 422, "validation_failed")
		if !strings.Contains(string(res.Raw), `"field":"dir"`) {
			t.Errorf("dir %q: %s does not name dir", dir, res.Raw)
		}
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("a backup was written outside the backup dir: %v", entries)
	}
	if _, err := os.Stat("/tmp/x"); err == nil {
		t.Log("/tmp/x exists (not made by this test, as the 422 shows)")
	}
	for dir, want := range map[string]string{
		"plain":                            filepath.Join(backups, "plain"),
		"nested/deep":                      filepath.Join(backups, "nested", "deep"),
		filepath.Join(backups, "absolute"): filepath.Join(backups, "absolute"),
	} {
		res := ts.expect(t, req{Method: "POST", Path: "/admin/backup", Key: ts.AdminToken, Body: map[string]any{"dir": dir}}, 200, "")
		real, _ := filepath.EvalSymlinks(filepath.Dir(want))
		if got := str(res.Body, "dir"); got != filepath.Join(real, filepath.Base(want)) {
			t.Errorf("dir %q written to %s, want %s", dir, got, want)
		}
	}
	ts.expect(t, req{Method: "POST", Path: "/admin/backup", Key: ts.AdminToken, Body: map[string]any{"dir": "plain"}}, 422, "validation_failed")
}

// TestLocalBackup: without a server, backup opens the data dir itself and
// writes DIR where given, with the key; restore then serves it.
func TestLocalBackup(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	ts := startServerAt(t, data, nil)
	p := ts.createPlatform(t, "Local Backup")
	ts.Close()

	dir := filepath.Join(t.TempDir(), "offline")
	var out bytes.Buffer
	if err := backup(ctx, []string{dir, "--server", "http://127.0.0.1:1", "--data", data}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "contains the master key") {
		t.Errorf("backup printed:\n%s", out.String())
	}
	wantPrivate(t, dir)
	restored := filepath.Join(t.TempDir(), "r")
	if err := restore(ctx, []string{dir, "--data", restored}, io.Discard); err != nil {
		t.Fatal(err)
	}
	rs := startServerAt(t, restored, map[string]string{"DREAM_ADMIN_TOKEN": ts.AdminToken})
	if !authenticates(t, rs.Main.Addr(), p.SK) {
		t.Error("the restored server does not know the platform")
	}
}

// TestDataDirModes: a data dir made world-readable (as before 0700/0600)
// is tightened at start, and what the server writes later is private too.
func TestDataDirModes(t *testing.T) {
	data := t.TempDir()
	ts := startServerAt(t, data, nil)
	p := ts.createPlatform(t, "Modes")
	ts.Close()
	filepath.WalkDir(data, func(path string, d fs.DirEntry, err error) error {
		if d.IsDir() {
			return os.Chmod(path, 0o755)
		}
		return os.Chmod(path, 0o644)
	})
	ts = startServerAt(t, data, nil)
	id := str(ts.createCustomer(t, p.SK, map[string]any{"email": "m@example.com"}), "id")
	for i := 0; i < 3; i++ {
		ts.expect(t, req{Method: "POST", Path: "/api/track", Key: p.SK, Body: track(id)}, 200, "")
	}
	wantPrivate(t, data)
	ts.Close()
	wantPrivate(t, data)
}
