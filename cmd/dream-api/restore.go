package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/storage"
)

// A backup is a directory that stands on its own:
//
//	dream-api-backup.json  what it is (backupManifest); written last
//	store/                 a consistent Pebble checkpoint of DATA/store
//	master.check           the master-key check of the data dir
//	master.key             the master key, unless the server's came from
//	                       DREAM_MASTER_KEY (then the operator keeps it)
//
// Directories are 0700, files 0600. `dream-api restore BACKUP --data DIR`
// makes a data dir of it. A bare store checkpoint (what dream-api wrote
// before backups carried their key) restores too, without a key.
const backupManifestName = "dream-api-backup.json"

// backupFormat is backupManifest.Format.
const backupFormat = "dream-api backup"

// backupManifest is dream-api-backup.json.
type backupManifest struct {
	Format    string    `json:"format"`
	Version   int       `json:"version"`
	CreatedAt time.Time `json:"createdAt"`
	// MasterKey is "included" (master.key is in the backup) or
	// "DREAM_MASTER_KEY" (the operator keeps the key).
	MasterKey string `json:"masterKey"`
}

// masterKeyNote tells the operator where the key of a backup is.
func masterKeyNote(included bool) string {
	if included {
		return "This backup contains the master key (master.key), which opens the platforms' Stripe credentials: protect it like the data."
	}
	return "The master key is not in this backup (the server's comes from DREAM_MASTER_KEY): keep that key; a server restored from this backup starts only with it."
}

// writeBackup writes a backup of st into dir, which must not exist (its
// parent must). key is the master key (nil when there is none); it goes
// into the backup when keyIncluded. A failed backup leaves nothing behind.
func writeBackup(st *storage.Store, dir string, key []byte, keyIncluded bool) (err error) {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	if err := os.Chmod(dir, 0o700); err != nil { // whatever the umask
		return err
	}
	if err := st.Checkpoint(filepath.Join(dir, storeDirName)); err != nil {
		return err
	}
	m := backupManifest{Format: backupFormat, Version: 1, CreatedAt: time.Now().UTC(), MasterKey: "DREAM_MASTER_KEY"}
	if key != nil {
		check, err := sealMasterCheck(key)
		if err != nil {
			return err
		}
		if err := writePrivateFile(filepath.Join(dir, masterCheckName), check); err != nil {
			return err
		}
		if keyIncluded {
			if err := writePrivateFile(filepath.Join(dir, masterKeyName), []byte(hex.EncodeToString(key)+"\n")); err != nil {
				return err
			}
			m.MasterKey = "included"
		}
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	if err := writePrivateFile(filepath.Join(dir, backupManifestName), append(b, '\n')); err != nil {
		return err
	}
	return syncDir(dir)
}

// backupTarget returns where the backup named name goes inside root, the
// operator's backup directory (made 0700 when absent). name is a relative
// path without "..", or an absolute path inside root; symbolic links are
// resolved before the check, so that none leads out. Returns EVALIDATION
// naming dir for anything else, and for a target that exists.
func backupTarget(root, name string) (string, error) {
	invalid := func(format string, args ...any) error {
		var v engine.Validation
		v.Add("dir", format, args...)
		return v.Err()
	}
	if name == "" {
		return "", invalid("is required: a name for the backup inside the backup directory")
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return "", fmt.Errorf("backup directory: %w", err)
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", fmt.Errorf("backup directory: %w", err)
	}
	target := name
	if !filepath.IsAbs(name) {
		if !filepath.IsLocal(name) {
			return "", invalid("must be a name inside the backup directory (no \"..\")")
		}
		target = filepath.Join(realRoot, name)
	}
	target = filepath.Clean(target)
	parent, err := filepath.EvalSymlinks(filepath.Dir(target))
	if err != nil {
		return "", invalid("must be inside the backup directory %s, in a directory that exists", realRoot)
	}
	target = filepath.Join(parent, filepath.Base(target))
	if rel, err := filepath.Rel(realRoot, target); err != nil || rel == "." || !filepath.IsLocal(rel) {
		return "", invalid("must be inside the backup directory %s", realRoot)
	}
	if _, err := os.Lstat(target); err == nil {
		return "", invalid("%s already exists; a backup goes into a new directory", target)
	}
	return target, nil
}

// restore is `dream-api restore BACKUP --data DIR`.
func restore(ctx context.Context, args []string, stdout io.Writer) error {
	flags := flag.NewFlagSet("restore", flag.ContinueOnError)
	data := flags.String("data", envOr("DREAM_DATA_DIR", "./data"), "the new data dir: absent or empty")
	pos, err := parseArgs(flags, args, stdout, "dream-api restore BACKUP --data DIR",
		"Makes a data dir of a backup (dream-api backup, POST /admin/backup): copies its store and its\n"+
			"master key, files 0600 and directories 0700, and checks that the store opens. DIR must be\n"+
			"absent or empty. Then serve it with `dream-api serve --data DIR`.",
		[]envVar{{"DREAM_DATA_DIR", "default of --data"}})
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: dream-api restore BACKUP --data DIR (see --help)")
	}
	src, dst := pos[0], *data

	// What the backup is.
	var m backupManifest
	srcStore := filepath.Join(src, storeDirName)
	if b, err := os.ReadFile(filepath.Join(src, backupManifestName)); err == nil {
		if err := json.Unmarshal(b, &m); err != nil || m.Format != backupFormat {
			return fmt.Errorf("%s is not a dream-api backup: its %s is not one", src, backupManifestName)
		}
		if !isPebbleDir(srcStore) {
			return fmt.Errorf("%s is not a complete dream-api backup: it has no store checkpoint (%s)", src, srcStore)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	} else if isPebbleDir(src) {
		srcStore = src // a bare checkpoint, as written before backups carried their key
	} else {
		return fmt.Errorf("%s is not a dream-api backup (no %s and no store checkpoint)", src, backupManifestName)
	}

	// Where it goes: a new or empty directory only.
	entries, err := os.ReadDir(dst)
	created := false
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dst, 0o700); err != nil {
			return err
		}
		created = true
	case err != nil:
		return err
	case len(entries) > 0:
		return fmt.Errorf("refusing to restore into %s: it is not empty (restore into a new directory)", dst)
	}
	if err := os.Chmod(dst, 0o700); err != nil {
		return err
	}
	if err := restoreInto(srcStore, src, dst); err != nil {
		// Leave the target as it was found.
		if created {
			os.RemoveAll(dst)
		} else {
			os.RemoveAll(filepath.Join(dst, storeDirName))
			os.Remove(filepath.Join(dst, masterKeyName))
			os.Remove(filepath.Join(dst, masterCheckName))
		}
		return err
	}

	fmt.Fprintf(stdout, "restored %s into the data dir %s\n", src, dst)
	_, keyErr := os.Stat(filepath.Join(dst, masterKeyName))
	switch {
	case keyErr == nil:
		fmt.Fprintf(stdout, "The master key came with the backup (%s, 0600): protect it like the data.\n", filepath.Join(dst, masterKeyName))
	case m.Format == "":
		fmt.Fprintln(stdout, "This is a bare store checkpoint without the master key: start the server with DREAM_MASTER_KEY set to the key the backed-up server used (or copy its master.key into the data dir); with another key, platforms connected to Stripe by key must connect again.")
	default:
		fmt.Fprintln(stdout, "The master key is not in this backup: start the server with DREAM_MASTER_KEY set to the key the backed-up server used; it refuses to start with another.")
	}
	fmt.Fprintf(stdout, "Serve it with: dream-api serve --data %s\n", dst)
	return nil
}

// restoreInto copies a backup's store and key files into the data dir dst
// and checks that the copy opens as a dream-api store.
func restoreInto(srcStore, src, dst string) error {
	if err := copyTree(srcStore, filepath.Join(dst, storeDirName)); err != nil {
		return fmt.Errorf("copy the store: %w", err)
	}
	if srcStore != src {
		for _, name := range []string{masterKeyName, masterCheckName} {
			b, err := os.ReadFile(filepath.Join(src, name))
			if errors.Is(err, fs.ErrNotExist) {
				continue
			} else if err != nil {
				return err
			}
			if name == masterKeyName {
				if _, ok := parseMasterKey(string(b)); !ok {
					return fmt.Errorf("the backup's %s is not 64 hex characters", name)
				}
			}
			if err := writePrivateFile(filepath.Join(dst, name), b); err != nil {
				return err
			}
		}
	}
	st, err := storage.Open(filepath.Join(dst, storeDirName), &storage.Options{MustExist: true})
	if err != nil {
		return fmt.Errorf("the backup's store does not open: %w", err)
	}
	if err := st.Healthy(); err != nil {
		st.Close()
		return fmt.Errorf("the backup's store is not a dream-api store: %w", err)
	}
	if err := st.Close(); err != nil {
		return err
	}
	return syncDir(dst)
}

// copyTree copies the directories and regular files under src to dst
// (which must not exist): directories 0700, files 0600, each synced.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.Mkdir(target, 0o700)
		case !d.Type().IsRegular():
			return nil
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return errors.Join(out.Chmod(0o600), out.Sync(), out.Close())
	})
}

// syncDir makes a directory's entries durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
