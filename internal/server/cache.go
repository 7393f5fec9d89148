package server

import (
	"sync"
	"time"
)

// lookupTTL bounds how long the token endpoint trusts a cached client or
// resource: a client disabled or deleted through the admin CLI or another
// replica stops getting tokens within this time. Changes made through this
// process invalidate its entry at once.
const lookupTTL = 2 * time.Second

// ttlCache is a read-through cache of immutable values with a short TTL. It
// keeps the lookups every token request makes (client, resource, the
// person) off the database on the hot path. Cached values must not be
// modified.
type ttlCache[V any] struct {
	now func() time.Time
	mu  sync.RWMutex
	m   map[string]cacheEntry[V]
}

type cacheEntry[V any] struct {
	v  V
	at time.Time
}

// maxCacheEntries bounds memory under a flood of distinct keys.
const maxCacheEntries = 10000

func newTTLCache[V any](now func() time.Time) *ttlCache[V] {
	return &ttlCache[V]{now: now, m: make(map[string]cacheEntry[V])}
}

// get returns the cached value of key, or loads, caches and returns it.
// Errors are not cached.
func (c *ttlCache[V]) get(key string, load func() (V, error)) (V, error) {
	now := c.now()
	c.mu.RLock()
	e, ok := c.m[key]
	c.mu.RUnlock()
	if ok && now.Sub(e.at) < lookupTTL && !now.Before(e.at) {
		return e.v, nil
	}
	v, err := load()
	if err != nil {
		return v, err
	}
	c.mu.Lock()
	if len(c.m) >= maxCacheEntries {
		clear(c.m)
	}
	c.m[key] = cacheEntry[V]{v: v, at: now}
	c.mu.Unlock()
	return v, nil
}

// invalidate drops key, after a change made through this process.
func (c *ttlCache[V]) invalidate(key string) {
	c.mu.Lock()
	delete(c.m, key)
	c.mu.Unlock()
}
