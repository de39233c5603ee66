package storage

import (
	"bytes"
	"hash/maphash"
	"sync"
)

// cache keeps decoded values of hot keys in memory, in front of Pebble. It
// is bounded (a full shard drops an arbitrary entry) and never holds a value
// older than what Pebble holds, once the write that replaced it has
// returned from Apply:
//
//   - A batch that writes a key either invalidates it (customers) or stores
//     the new value with the batch's sequence number (counters), after the
//     batch is applied and before Apply returns. Of two stores of one key,
//     the later sequence number wins whatever order they arrive in.
//   - A reader that missed fills the entry only if its shard saw no write
//     since the miss (a generation per shard), so a value read before a
//     write cannot land after it.
//   - A stored value forgotten to make room raises the shard's floor: a
//     store with a sequence number at or below it is older than something
//     the cache no longer knows, so it invalidates instead.
//
// Values are shared: callers must not change what get returns or what
// they gave to fill and store.
//
// An entry is found by a 128-bit hash of its Pebble key (two maphash
// values under seeds chosen at random by each process), not by the key:
// the key's bytes and string header were most of an entry's memory (a
// counter took 196 bytes, now ~80; docs/performance.md). Two keys of one
// process share an entry only if both 64-bit hashes collide, a chance of
// about n²/2¹²⁹ for n keys (10⁻²⁶ for 4 million), which nobody outside can
// steer since the seeds are secret.
type cache[V any] struct {
	seeds [2]maphash.Seed
	max   int // entries per shard
	// shards are padded apart: each is locked by unrelated requests.
	shards [64]cacheShard[V]
}

// cacheKey is the 128-bit hash of a Pebble key.
type cacheKey struct{ a, b uint64 }

type cacheShard[V any] struct {
	mu    sync.Mutex
	gen   uint64
	floor uint64
	m     map[cacheKey]cacheEntry[V] // entries inline: no allocation per entry
	_     [24]byte
}

type cacheEntry[V any] struct {
	v   V
	seq uint64 // 0: filled by a reader
}

// newCache returns a cache of about size entries, or nil (no cache) when
// size is not positive.
func newCache[V any](size int) *cache[V] {
	if size <= 0 {
		return nil
	}
	c := &cache[V]{seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}, max: max(1, size/64)}
	for i := range c.shards {
		c.shards[i].m = make(map[cacheKey]cacheEntry[V])
	}
	return c
}

// shard returns the shard of key and its hash there.
func (c *cache[V]) shard(key []byte) (*cacheShard[V], cacheKey) {
	k := cacheKey{maphash.Bytes(c.seeds[0], key), maphash.Bytes(c.seeds[1], key)}
	return &c.shards[k.a%uint64(len(c.shards))], k
}

// get returns the cached value of key and true, or the shard's generation
// to pass to fill.
func (c *cache[V]) get(key []byte) (v V, ok bool, gen uint64) {
	s, k := c.shard(key)
	s.mu.Lock()
	var e cacheEntry[V]
	if e, ok = s.m[k]; ok {
		v = e.v
	}
	gen = s.gen
	s.mu.Unlock()
	return v, ok, gen
}

// readThrough returns the cached value of key, or reads it from Pebble
// with read and caches it. Errors are not cached. A nil cache only reads.
func (c *cache[V]) readThrough(key []byte, read func(key []byte) (V, error)) (V, error) {
	if c == nil {
		return read(bytes.Clone(key))
	}
	v, ok, gen := c.get(key)
	if ok {
		return v, nil
	}
	// read gets a copy: key may be on the caller's stack, and a hit (the
	// common case) should not pay for moving it to the heap.
	v, err := read(bytes.Clone(key))
	if err == nil {
		c.fill(key, v, gen)
	}
	return v, err
}

// fill caches v, read from Pebble after get missed with gen, unless the
// shard was written since. The caller must not change v afterwards.
func (c *cache[V]) fill(key []byte, v V, gen uint64) {
	s, k := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen {
		return
	}
	if _, ok := s.m[k]; !ok {
		s.makeRoom(c.max)
	}
	s.m[k] = cacheEntry[V]{v: v}
}

// store caches v as written by the batch applied with sequence number seq.
func (c *cache[V]) store(key []byte, v V, seq uint64) {
	c.storeHashed(c.hash(key), v, seq)
}

// hash is the cache's hash of key, for storeHashed.
func (c *cache[V]) hash(key []byte) cacheKey {
	_, k := c.shard(key)
	return k
}

// storeHashed is store of the key whose hash is k.
func (c *cache[V]) storeHashed(k cacheKey, v V, seq uint64) {
	s := &c.shards[k.a%uint64(len(c.shards))]
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	e, ok := s.m[k]
	switch {
	case seq <= s.floor:
		delete(s.m, k)
	case ok && e.seq >= seq:
	default:
		if !ok {
			s.makeRoom(c.max)
		}
		s.m[k] = cacheEntry[V]{v: v, seq: seq}
	}
}

// invalidate forgets key, which a batch wrote.
func (c *cache[V]) invalidate(key []byte) {
	s, k := c.shard(key)
	s.mu.Lock()
	s.gen++
	delete(s.m, k)
	s.mu.Unlock()
}

// makeRoom drops an arbitrary entry of a full shard. s.mu is held.
func (s *cacheShard[V]) makeRoom(limit int) {
	if len(s.m) < limit {
		return
	}
	for k, e := range s.m {
		s.floor = max(s.floor, e.seq)
		delete(s.m, k)
		return
	}
}
