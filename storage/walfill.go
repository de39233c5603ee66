package storage

import (
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// The write-ahead log is zeroed ahead of Pebble's writes, as PostgreSQL
// zero-fills its WAL segments: an fdatasync of bytes written over blocks
// that the file already holds (and that were synced) flushes only the data,
// while one of bytes appended past the end of the file also commits the
// file system's journal for the new size and blocks. On the machine of
// docs/performance.md that is 140 µs against 200 µs per sync, and the
// track path waits for a sync on every call. Pebble reads a zeroed tail as
// the end of the log: its recycled WAL files end the same way.
//
// Pebble reuses its old WAL files, which gives the same in a server that
// has run for a while; zeroing ahead also covers a new store and a log that
// outgrows the file it reuses.
const (
	walZeroAhead = 1 << 20   // keep this much zeroed beyond Pebble's writes
	walZeroChunk = 256 << 10 // zeroes written at a time, under the file's lock
)

var walZeros = make([]byte, walZeroChunk)

// walZeroFS is a vfs.FS whose WAL files (*.log) are zeroed ahead.
type walZeroFS struct{ vfs.FS }

func isWAL(name string) bool { return strings.HasSuffix(name, ".log") }

func (fs walZeroFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	if err != nil || !isWAL(name) {
		return f, err
	}
	return &walZeroFile{File: f}, nil
}

func (fs walZeroFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	if err != nil || !isWAL(newname) {
		return f, err
	}
	zf := &walZeroFile{File: f}
	if st, err := f.Stat(); err == nil {
		zf.size = st.Size() // a reused file is overwritten from the start
	}
	return zf, nil
}

// walZeroFile is a WAL file that a goroutine keeps zeroed (and synced)
// walZeroAhead bytes beyond Pebble's writes. Pebble writes a WAL file
// sequentially from one goroutine; the lock keeps the zeroes from ever
// landing on bytes Pebble wrote, and the zeroing from ever being the only
// thing that holds the log up: a failure to zero just stops zeroing.
//
// It also holds Pebble's writes back until the next sync (or walHeld
// bytes): while the commit delay holds a sync back, Pebble writes the log
// out every time a commit arrives, 2.8 write calls a sync at 32 concurrent
// tracks, where one does the same (docs/performance.md). Every track syncs,
// so what waits is at most a commit delay's worth; only a batch committed
// without a sync (the expiry of idempotency records, which a restart
// repeats) waits for the next one.
type walZeroFile struct {
	vfs.File

	mu      sync.Mutex
	held    []byte // Pebble's writes not yet written to the file
	heldErr error  // the first failed write of held, returned from then on
	written int64  // end of Pebble's writes in the file
	size    int64  // end of the file: Pebble's writes, then zeroes
	zeroing bool
	stopped bool // closed, or zeroing failed
}

// walHeld is how much of Pebble's writes walZeroFile holds back at most.
const walHeld = 256 << 10

// Preallocate does nothing for a WAL file: Pebble asks for 110 % of the
// memtable size with FALLOC_FL_KEEP_SIZE, which takes that much disk per
// WAL file (recycled ones included) whatever little it holds, and gains
// nothing over the zeroes written ahead, which already give the file its
// blocks.
func (f *walZeroFile) Preallocate(offset, length int64) error { return nil }

// Write holds p (Pebble reuses it) until the next sync, or writes what is
// held when that passes walHeld.
func (f *walZeroFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	if f.heldErr != nil {
		f.mu.Unlock()
		return 0, f.heldErr
	}
	f.held = append(f.held, p...)
	var err error
	if len(f.held) >= walHeld {
		err = f.writeHeldLocked()
	}
	f.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// writeHeld writes what Write held back. Every other method of the file
// calls it first, so that the file is always seen with all of Pebble's
// writes.
func (f *walZeroFile) writeHeld() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.writeHeldLocked()
}

func (f *walZeroFile) writeHeldLocked() error {
	if f.heldErr != nil || len(f.held) == 0 {
		return f.heldErr
	}
	n, err := f.File.Write(f.held)
	f.written += int64(n)
	f.size = max(f.size, f.written)
	if err != nil {
		f.heldErr = err
		return err
	}
	if cap(f.held) > 4*walHeld {
		f.held = nil // a large batch passed: do not keep its buffer
	} else {
		f.held = f.held[:0]
	}
	if !f.zeroing && !f.stopped && f.size-f.written < walZeroAhead/2 {
		f.zeroing = true
		go f.zeroAhead()
	}
	return nil
}

func (f *walZeroFile) Sync() error {
	if err := f.writeHeld(); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *walZeroFile) SyncData() error {
	if err := f.writeHeld(); err != nil {
		return err
	}
	return f.File.SyncData()
}

func (f *walZeroFile) SyncTo(length int64) (bool, error) {
	if err := f.writeHeld(); err != nil {
		return false, err
	}
	return f.File.SyncTo(length)
}

func (f *walZeroFile) Stat() (vfs.FileInfo, error) {
	if err := f.writeHeld(); err != nil {
		return nil, err
	}
	return f.File.Stat()
}

func (f *walZeroFile) Read(p []byte) (int, error) {
	if err := f.writeHeld(); err != nil {
		return 0, err
	}
	return f.File.Read(p)
}

func (f *walZeroFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.writeHeld(); err != nil {
		return 0, err
	}
	return f.File.ReadAt(p, off)
}

// zeroAhead zeroes the file up to walZeroAhead beyond Pebble's writes, then
// syncs it so that the new size is durable before Pebble's data arrives.
func (f *walZeroFile) zeroAhead() {
	for {
		f.mu.Lock()
		if f.stopped || f.size-f.written >= walZeroAhead {
			f.zeroing = false
			stopped := f.stopped
			f.mu.Unlock()
			if !stopped {
				_ = f.File.SyncData() // a failure shows in Pebble's own next sync
			}
			return
		}
		if _, err := f.File.WriteAt(walZeros, f.size); err != nil {
			f.stopped, f.zeroing = true, false
			f.mu.Unlock()
			return
		}
		f.size += walZeroChunk
		f.mu.Unlock()
	}
}

func (f *walZeroFile) Close() error {
	f.mu.Lock()
	err := f.writeHeldLocked()
	f.stopped = true
	f.mu.Unlock()
	if cerr := f.File.Close(); err == nil {
		err = cerr
	}
	return err
}
