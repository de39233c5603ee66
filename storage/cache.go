package storage

import (
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
type cache[V any] struct {
	seed maphash.Seed
	max  int // entries per shard
	// shards are padded apart: each is locked by unrelated requests.
	shards [64]cacheShard[V]
}

type cacheShard[V any] struct {
	mu    sync.Mutex
	gen   uint64
	floor uint64
	m     map[string]*cacheEntry[V] // pointers: a store updates in place, without a new key
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
	c := &cache[V]{seed: maphash.MakeSeed(), max: max(1, size/64)}
	for i := range c.shards {
		c.shards[i].m = make(map[string]*cacheEntry[V])
	}
	return c
}

func (c *cache[V]) shard(key []byte) *cacheShard[V] {
	return &c.shards[maphash.Bytes(c.seed, key)%uint64(len(c.shards))]
}

// get returns the cached value of key and true, or the shard's generation
// to pass to fill.
func (c *cache[V]) get(key []byte) (v V, ok bool, gen uint64) {
	s := c.shard(key)
	s.mu.Lock()
	if e := s.m[string(key)]; e != nil {
		v, ok = e.v, true
	}
	gen = s.gen
	s.mu.Unlock()
	return v, ok, gen
}

// readThrough returns the cached value of key, or reads it from Pebble
// with read and caches it. Errors are not cached. A nil cache only reads.
func (c *cache[V]) readThrough(key []byte, read func(key []byte) (V, error)) (V, error) {
	if c == nil {
		return read(key)
	}
	v, ok, gen := c.get(key)
	if ok {
		return v, nil
	}
	v, err := read(key)
	if err == nil {
		c.fill(key, v, gen)
	}
	return v, err
}

// fill caches v, read from Pebble after get missed with gen, unless the
// shard was written since. The caller must not change v afterwards.
func (c *cache[V]) fill(key []byte, v V, gen uint64) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen {
		return
	}
	if e := s.m[string(key)]; e != nil {
		*e = cacheEntry[V]{v: v}
		return
	}
	s.makeRoom(c.max)
	s.m[string(key)] = &cacheEntry[V]{v: v}
}

// store caches v as written by the batch applied with sequence number seq.
func (c *cache[V]) store(key []byte, v V, seq uint64) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	e := s.m[string(key)]
	switch {
	case seq <= s.floor:
		delete(s.m, string(key))
	case e != nil && e.seq >= seq:
	case e != nil:
		e.v, e.seq = v, seq
	default:
		s.makeRoom(c.max)
		s.m[string(key)] = &cacheEntry[V]{v: v, seq: seq}
	}
}

// invalidate forgets key, which a batch wrote.
func (c *cache[V]) invalidate(key []byte) {
	s := c.shard(key)
	s.mu.Lock()
	s.gen++
	delete(s.m, string(key))
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
