package storage

import (
	"hash/maphash"
	"sync"

	"github.com/dream-api/dream-api/engine"
)

// customerCache keeps decoded customers in memory, so that a track does not
// read and decode a customer record every time (that was a fifth of the
// server's CPU under load). It is bounded; callers get copies.
//
// Every write of a customer goes through a batch, which invalidates the
// customer after the batch is applied. A generation per shard keeps a
// reader that raced such a write from caching what it read before it.
type customerCache struct {
	seed   maphash.Seed
	max    int // entries per shard
	shards [64]cacheShard
}

type cacheShard struct {
	mu  sync.Mutex
	gen uint64
	m   map[string]*engine.Customer
}

// newCustomerCache returns a cache of about size customers; 0 disables it.
func newCustomerCache(size int) *customerCache {
	if size <= 0 {
		return nil
	}
	c := &customerCache{seed: maphash.MakeSeed(), max: max(1, size/64)}
	for i := range c.shards {
		c.shards[i].m = make(map[string]*engine.Customer)
	}
	return c
}

func (c *customerCache) shard(key []byte) *cacheShard {
	return &c.shards[maphash.Bytes(c.seed, key)%uint64(len(c.shards))]
}

// get returns a copy of the cached customer, or the shard's generation to
// pass to put.
func (c *customerCache) get(key []byte) (*engine.Customer, uint64) {
	s := c.shard(key)
	s.mu.Lock()
	cu, gen := s.m[string(key)], s.gen
	s.mu.Unlock()
	if cu != nil {
		return cu.Clone(), gen
	}
	return nil, gen
}

// put caches cu (which the caller must not change afterwards) unless the
// shard was written since gen. A full shard drops an arbitrary entry.
func (c *customerCache) put(key []byte, cu *engine.Customer, gen uint64) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen {
		return
	}
	if len(s.m) >= c.max {
		for k := range s.m {
			delete(s.m, k)
			break
		}
	}
	s.m[string(key)] = cu
}

// invalidate forgets a customer that a batch wrote.
func (c *customerCache) invalidate(key []byte) {
	s := c.shard(key)
	s.mu.Lock()
	s.gen++
	delete(s.m, string(key))
	s.mu.Unlock()
}
