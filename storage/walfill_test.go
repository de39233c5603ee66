package storage

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/record"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/dream-api/dream-api/engine"
)

// TestWALZeroFileKeepsWrites writes a log through walZeroFile in pieces of
// random sizes while it zeroes ahead: the file is what was written, then
// only zeroes, and the zeroes run ahead of the writes.
func TestWALZeroFileKeepsWrites(t *testing.T) {
	dir := t.TempDir()
	fs := walZeroFS{vfs.Default}
	f, err := fs.Create(filepath.Join(dir, "000001.log"), vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	var want []byte
	for len(want) < 3*walZeroAhead {
		p := make([]byte, 1+r.IntN(64<<10))
		for i := range p {
			p[i] = byte(1 + r.IntN(255)) // never zero, so that a stray zero shows
		}
		if _, err := f.Write(p); err != nil {
			t.Fatal(err)
		}
		want = append(want, p...)
		if r.IntN(8) == 0 {
			time.Sleep(time.Millisecond) // let the zeroing run
		}
	}
	if err := f.SyncData(); err != nil {
		t.Fatal(err)
	}
	waitZeroedAhead(t, f.(*walZeroFile))
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "000001.log"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < len(want)+walZeroAhead/2 {
		t.Fatalf("file is %d bytes for %d written: not zeroed ahead", len(got), len(want))
	}
	if !bytes.Equal(got[:len(want)], want) {
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("byte %d of %d is %d, written %d", i, len(want), got[i], want[i])
			}
		}
	}
	if i := bytes.IndexFunc(got[len(want):], func(r rune) bool { return r != 0 }); i >= 0 {
		t.Fatalf("non-zero byte %d past the writes", len(want)+i)
	}
}

// waitZeroedAhead waits until f's zeroing has stopped at least
// walZeroAhead/2 beyond what was written to it.
func waitZeroedAhead(t *testing.T, f *walZeroFile) {
	t.Helper()
	deadline := time.Now().Add(time.Minute) // generous: a busy machine zeroes slowly
	for {
		f.mu.Lock()
		ahead, zeroing := f.size-f.written, f.zeroing
		f.mu.Unlock()
		if !zeroing && ahead >= walZeroAhead/2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("zeroing did not keep ahead: %d bytes ahead, zeroing %v", ahead, zeroing)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestOpenReadsZeroedWALTail copies a store's files while it is open (as a
// crash would leave them: the log ends in zeroes) and opens the copy: every
// batch that was waited for is there.
func TestOpenReadsZeroedWALTail(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	key := func(i int) engine.CounterKey {
		return engine.CounterKey{Tenant: tenantLive, CustomerID: fmt.Sprint("cus_", i), Feature: "api", PeriodStart: time.Unix(1700000000, 0)}
	}
	const n = 2000
	for i := range n {
		b := s.NewBatch()
		b.PutCounter(key(i), engine.Counter{Count: int64(i + 1), PeriodEnd: time.Unix(1800000000, 0)})
		if err := b.Apply(); err != nil {
			t.Fatal(err)
		}
		if err := b.Wait(); err != nil {
			t.Fatal(err)
		}
		b.Close()
	}
	crashed := t.TempDir()
	logs := 0
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		src, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		dst, err := os.Create(filepath.Join(crashed, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(dst, src); err != nil {
			t.Fatal(err)
		}
		src.Close()
		dst.Close()
		if isWAL(e.Name()) {
			logs++
			data, _ := os.ReadFile(filepath.Join(crashed, e.Name()))
			if len(data) < walZeroAhead/2 || !bytes.Equal(data[len(data)-1024:], make([]byte, 1024)) {
				t.Fatalf("%s: %d bytes, not ending in zeroes", e.Name(), len(data))
			}
		}
	}
	if logs == 0 {
		t.Fatal("no WAL file in the store")
	}
	c := openStore(t, crashed)
	for i := range n {
		got, err := c.Counter(ctx, key(i))
		if err != nil || got.Count != int64(i+1) {
			t.Fatalf("counter %d after the crash: %d, %v", i, got.Count, err)
		}
	}
}

// TestWALZeroFileReused: a WAL file Pebble reuses is overwritten from the
// start; zeroing begins only past its old end, so no old byte is zeroed
// ahead of Pebble's own writes.
func TestWALZeroFileReused(t *testing.T) {
	dir := t.TempDir()
	old := bytes.Repeat([]byte{7}, walZeroAhead+12345)
	if err := os.WriteFile(filepath.Join(dir, "000001.log"), old, 0o600); err != nil {
		t.Fatal(err)
	}
	fs := walZeroFS{vfs.Default}
	f, err := fs.ReuseForWrite(filepath.Join(dir, "000001.log"), filepath.Join(dir, "000002.log"), vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	zf := f.(*walZeroFile)
	if zf.size != int64(len(old)) {
		t.Fatalf("reused file: size %d, want %d", zf.size, len(old))
	}
	data := bytes.Repeat([]byte{9}, 1000)
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	zf.mu.Lock()
	zeroing := zf.zeroing
	zf.mu.Unlock()
	if zeroing {
		t.Fatal("zeroing started while the old file still reaches far ahead of the writes")
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "000002.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:len(data)], data) || !bytes.Equal(got[len(data):], old[len(data):]) {
		t.Fatal("the reused file is not the writes followed by its old bytes")
	}
}

// TestClosedWALReadsToACleanEnd: Pebble replays every WAL but the newest
// strictly (an unclean end is corruption). A WAL that Pebble closed (it
// writes an EOF trailer and syncs before it starts the next one) must
// still end cleanly when zeroes follow the trailer.
func TestClosedWALReadsToACleanEnd(t *testing.T) {
	for _, syncOffsets := range []bool{false, true} {
		t.Run(fmt.Sprintf("syncOffsets=%v", syncOffsets), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "000001.log")
			f, err := walZeroFS{vfs.Default}.Create(path, vfs.WriteCategoryUnspecified)
			if err != nil {
				t.Fatal(err)
			}
			w := record.NewLogWriter(f, 1, record.LogWriterConfig{
				QueueSemChan:        make(chan struct{}, 64),
				WriteWALSyncOffsets: func() bool { return syncOffsets },
			})
			var want [][]byte
			for i := range 300 {
				rec := bytes.Repeat([]byte{byte(1 + i%250)}, 100+i*37)
				if _, err := w.WriteRecord(rec); err != nil {
					t.Fatal(err)
				}
				want = append(want, rec)
			}
			// The trailer lands on zeroes only if the zeroing is ahead
			// (of what is written; what is held is far less than that).
			waitZeroedAhead(t, f.(*walZeroFile))
			if err := w.Close(); err != nil { // writes the EOF trailer, syncs, closes f
				t.Fatal(err)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(data[len(data)-4096:], make([]byte, 4096)) {
				t.Fatalf("the closed WAL (%d bytes) does not end in zeroes: the test tests nothing", len(data))
			}
			r := record.NewReader(bytes.NewReader(data), 1)
			for i := 0; ; i++ {
				rr, err := r.Next()
				if err == io.EOF {
					if i != len(want) {
						t.Fatalf("clean end after %d records, wrote %d", i, len(want))
					}
					return
				} else if err != nil {
					t.Fatalf("record %d: %v (Pebble would call the log corrupt)", i, err)
				}
				got, err := io.ReadAll(rr)
				if err != nil || i >= len(want) || !bytes.Equal(got, want[i]) {
					t.Fatalf("record %d differs (%v)", i, err)
				}
			}
		})
	}
}

// TestWALZeroFileHoldsWritesUntilSync: small writes reach the file at the
// next sync (one write call for many), a write past walHeld goes at once,
// and Stat and Close see everything written.
func TestWALZeroFileHoldsWritesUntilSync(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "000001.log")
	f, err := walZeroFS{vfs.Default}.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	onDisk := func() []byte {
		t.Helper()
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var want []byte
	for i := range 10 {
		p := bytes.Repeat([]byte{byte(1 + i)}, 100)
		if n, err := f.Write(p); n != len(p) || err != nil {
			t.Fatalf("Write: %d, %v", n, err)
		}
		want = append(want, p...)
		clear(p) // Pebble reuses its buffer
	}
	if got := onDisk(); len(got) != 0 {
		t.Fatalf("%d bytes in the file before a sync, want them held", len(got))
	}
	if err := f.SyncData(); err != nil {
		t.Fatal(err)
	}
	if got := onDisk(); len(got) < len(want) || !bytes.Equal(got[:len(want)], want) {
		t.Fatalf("after SyncData the file starts %q…, want the %d bytes written", got[:min(len(got), 16)], len(want))
	}

	big := bytes.Repeat([]byte{9}, walHeld)
	if _, err := f.Write(big); err != nil {
		t.Fatal(err)
	}
	want = append(want, big...)
	if got := onDisk(); len(got) < len(want) || !bytes.Equal(got[:len(want)], want) {
		t.Fatalf("a write of walHeld bytes was held")
	}

	if _, err := f.Write([]byte{7, 7, 7}); err != nil {
		t.Fatal(err)
	}
	want = append(want, 7, 7, 7)
	if st, err := f.Stat(); err != nil || st.Size() < int64(len(want)) {
		t.Fatalf("Stat: %v, %v; want at least %d bytes", st, err, len(want))
	}
	if _, err := f.Write([]byte{8}); err != nil {
		t.Fatal(err)
	}
	want = append(want, 8)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := onDisk(); len(got) < len(want) || !bytes.Equal(got[:len(want)], want) {
		t.Fatalf("Close lost held writes")
	}
}
