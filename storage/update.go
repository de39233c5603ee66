package storage

import (
	"context"
	"hash/maphash"
	"slices"
	"sync"

	"github.com/dream-api/dream-api/engine"
)

// lockStripes is the number of mutexes units of work lock by a hash of
// their engine.Locks: unrelated objects rarely share one, and no lock is
// global.
const lockStripes = 4096

// stripes is a fixed array of mutexes indexed by a hash of what they guard.
type stripes struct {
	seed maphash.Seed
	mu   []paddedMutex
}

type paddedMutex struct {
	sync.Mutex
	_ [56]byte // one cache line each
}

func newStripes(n int) *stripes {
	return &stripes{seed: maphash.MakeSeed(), mu: make([]paddedMutex, n)}
}

func (s *stripes) index(l *engine.Lock) int {
	var h maphash.Hash
	h.SetSeed(s.seed)
	h.WriteByte(byte(l.Kind))
	h.WriteByte(byte(l.Mode))
	h.WriteString(l.Platform)
	h.WriteByte(0)
	h.WriteString(l.ID)
	h.WriteByte(0)
	h.WriteString(l.Feature)
	return int(h.Sum64() % uint64(len(s.mu)))
}

// lock locks the stripes of locks, in stripe order so that no two units
// deadlock, each stripe once when locks share one, and returns the
// indexes to unlock.
func (s *stripes) lock(locks []engine.Lock, buf []int) []int {
	idx := buf[:0]
	for i := range locks {
		idx = append(idx, s.index(&locks[i]))
	}
	if len(idx) > 1 {
		slices.Sort(idx)
		idx = slices.Compact(idx)
	}
	for _, i := range idx {
		s.mu[i].Lock()
	}
	return idx
}

func (s *stripes) unlock(idx []int) {
	for j := len(idx) - 1; j >= 0; j-- {
		s.mu[idx[j]].Unlock()
	}
}

// Update runs fn as one unit of work (engine.Store): the stripes of locks
// are held while fn reads and writes and until its batch is applied (and
// the Watch listener told of its changes); the fsync is waited for after
// they are released, so that Pebble syncs the batches of many units at
// once.
func (s *Store) Update(ctx context.Context, locks []engine.Lock, fn func(tx engine.Tx) (any, error)) (any, error) {
	b := batchPool.Get().(*batch)
	s.initBatch(b)
	defer releaseBatch(b)
	var buf [4]int
	idx := s.locks.lock(locks, buf[:])
	res, err := fn(&b.tx)
	if err != nil {
		s.locks.unlock(idx)
		return nil, err
	}
	if b.Empty() && (b.err == nil || b.err == ErrClosed) {
		// Nothing to apply: a denial, a check, a no-op.
		s.locks.unlock(idx)
		return res, nil
	}
	err = b.Apply()
	s.locks.unlock(idx)
	if err != nil {
		return nil, err
	}
	if err := b.Wait(); err != nil {
		return nil, err
	}
	return res, nil
}

// batchPool holds the batches of finished units of work (Update): a unit
// that returned keeps no reference to its tx, so its batch can serve the
// next one. Batches from NewBatch are not pooled: their callers may call
// Close more than once.
var batchPool = sync.Pool{New: func() any { return new(batch) }}

// releaseBatch closes b and pools it.
func releaseBatch(b *batch) {
	b.Close()
	*b = batch{}
	batchPool.Put(b)
}

// Watch sets the listener of changes to cached state (engine.Store). It
// must be called before the store serves.
func (s *Store) Watch(fn func(engine.Change)) { s.watch = fn }

// tx is a batch seen as an engine.Tx: reads go to the store, writes into
// the batch.
type tx struct {
	*Store
	*batch
}

var _ engine.Tx = (*tx)(nil)
