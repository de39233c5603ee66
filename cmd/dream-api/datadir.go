package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/storage"
)

// A data dir (--data, DREAM_DATA_DIR) holds:
//
//	store/          the Pebble store
//	master.key      the master key, when it does not come from DREAM_MASTER_KEY
//	master.check    a value sealed with the master key, to tell at start-up
//	                that the key is the one the store's secrets were sealed with
//	dream-api.pid   the pid of the dream-api that has the data dir open (locked)
//	wasm-cache/     compiled plugins
//
// Everything in it is readable by its owner only: directories 0700, files
// 0600.
const (
	storeDirName    = "store"
	masterKeyName   = "master.key"
	masterCheckName = "master.check"
	pidFileName     = "dream-api.pid"
)

// isPebbleDir reports whether dir holds a Pebble store (or checkpoint).
func isPebbleDir(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if n := e.Name(); strings.HasPrefix(n, "MANIFEST-") || strings.HasPrefix(n, "OPTIONS-") {
			return true
		}
	}
	return false
}

// isBackup reports whether dir is a backup (or a bare store checkpoint)
// rather than a data dir.
func isBackup(dir string) bool {
	if _, err := os.Stat(filepath.Join(dir, backupManifestName)); err == nil {
		return true
	}
	return isPebbleDir(dir)
}

// errIsBackup is the error of a backup given where a data dir is wanted.
func errIsBackup(dir string) error {
	return fmt.Errorf("%s is a dream-api backup, not a data dir: restore it into a new data dir with `dream-api restore %s --data NEWDIR`, then use NEWDIR", dir, dir)
}

// existingDataDir checks that dir is a data dir that exists, for the admin
// subcommands that open it without a server: they never create one. With
// needStore, it must hold a store too.
func existingDataDir(dir string, needStore bool) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("the data dir %s does not exist (start `dream-api serve --data %s` once, or pass --data or --server)", dir, dir)
	} else if err != nil {
		return err
	} else if !fi.IsDir() {
		return fmt.Errorf("the data dir %s is not a directory", dir)
	}
	if isBackup(dir) {
		return errIsBackup(dir)
	}
	if needStore && !isPebbleDir(filepath.Join(dir, storeDirName)) {
		return fmt.Errorf("%s is not a dream-api data dir: it has no store (%s)", dir, filepath.Join(dir, storeDirName))
	}
	return nil
}

// prepareDataDir makes the data dir of `serve` (created when absent) and
// makes what is in it readable by its owner only. A backup is refused.
func prepareDataDir(dir string) error {
	if isBackup(dir) {
		return errIsBackup(dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return storage.Tighten(dir)
}

// dataDirLock is a data dir held by this process: an exclusive lock on
// its pid file, which names the holder for anyone who finds it locked.
type dataDirLock struct{ f *os.File }

// lockDataDir takes the data dir for this process. When another process
// (or another Main of this one) holds it, the error names its pid.
func lockDataDir(dir string) (*dataDirLock, error) {
	path := filepath.Join(dir, pidFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := lockFile(f); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, errLocked) {
			pid := strings.TrimSpace(string(b))
			if _, err := strconv.Atoi(pid); err != nil {
				pid = "unknown"
			}
			return nil, fmt.Errorf("the data dir %s is in use by another dream-api (pid %s)", dir, pid)
		}
		return nil, fmt.Errorf("lock the data dir %s: %w", dir, err)
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		f.Close()
		return nil, err
	}
	return &dataDirLock{f: f}, nil
}

// Release empties the pid file and lets the data dir go. The file stays:
// removing it would let two processes lock two different files.
func (l *dataDirLock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := errors.Join(l.f.Truncate(0), l.f.Close())
	l.f = nil
	return err
}

// The master-key check: a constant sealed with the master key, kept in
// the data dir (and in every backup), so that a server started with
// another key refuses to start instead of failing on every Stripe call.
var (
	masterCheckPlain = []byte("dream-api master key check")
	masterCheckAAD   = []byte("dream-api\x00master.check\x00v1")
)

// sealMasterCheck returns the content of a master.check for key.
func sealMasterCheck(key []byte) ([]byte, error) {
	s, err := engine.NewSealer(key)
	if err != nil {
		return nil, err
	}
	return []byte(hex.EncodeToString(s.Seal(masterCheckPlain, masterCheckAAD)) + "\n"), nil
}

// masterCheckOpens reports whether the content of a master.check opens
// with key.
func masterCheckOpens(content, key []byte) bool {
	sealed, err := hex.DecodeString(strings.TrimSpace(string(content)))
	if err != nil {
		return false
	}
	s, err := engine.NewSealer(key)
	if err != nil {
		return false
	}
	plain, err := s.Open(sealed, masterCheckAAD)
	return err == nil && bytes.Equal(plain, masterCheckPlain)
}

// parseMasterKey reads a master key written as 64 hex characters.
func parseMasterKey(s string) ([]byte, bool) {
	k, err := hex.DecodeString(strings.TrimSpace(s))
	return k, err == nil && len(k) == 32
}

// newMasterKey returns a fresh 32-byte key.
func newMasterKey() []byte {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

// writePrivateFile writes a new file readable by its owner only (0600) and
// syncs it. It refuses to overwrite.
func writePrivateFile(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := f.Chmod(0o600); err != nil { // whatever the umask
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}
