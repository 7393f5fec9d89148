package server

import (
	"sync"
)

// freshness says whether cached copies may be served
// (changefeed.Feed.Fresh); nil: never, every lookup reads the store.
type freshness interface{ Fresh() bool }

// feedCache is a read-through cache of immutable values that the change
// feed invalidates (docs/design.md §5, "Change feed"): an entry lives until
// a change to its row drops it, through this process or any replica, and
// is served only while the feed is fresh, so a change made anywhere stops
// being hidden within the feed's bound. It keeps the lookups every token
// request makes (client, resource, the person) off the database on the
// hot path. Cached values must not be modified.
type feedCache[V any] struct {
	feed freshness
	mu   sync.RWMutex
	m    map[string]V
	// gen counts invalidations: a load that an invalidation overtook is
	// not cached (it may have read the row before the change).
	gen uint64
}

// maxCacheEntries bounds memory under a flood of distinct keys.
const maxCacheEntries = 10000

func newFeedCache[V any](feed freshness) *feedCache[V] {
	return &feedCache[V]{feed: feed, m: make(map[string]V)}
}

// fresh reports whether the feed vouches for cached entries now.
func (c *feedCache[V]) fresh() bool { return c.feed != nil && c.feed.Fresh() }

// get returns the cached value of key, or loads, caches and returns it.
// Errors are not cached. While the feed is not fresh every get loads.
func (c *feedCache[V]) get(key string, load func() (V, error)) (V, error) {
	if !c.fresh() {
		return load()
	}
	c.mu.RLock()
	v, ok := c.m[key]
	gen := c.gen
	c.mu.RUnlock()
	if ok {
		return v, nil
	}
	v, err := load()
	if err != nil {
		return v, err
	}
	c.mu.Lock()
	if c.gen == gen && c.fresh() {
		if len(c.m) >= maxCacheEntries {
			clear(c.m)
		}
		c.m[key] = v
	}
	c.mu.Unlock()
	return v, nil
}

// invalidate drops key.
func (c *feedCache[V]) invalidate(key string) {
	c.mu.Lock()
	delete(c.m, key)
	c.gen++
	c.mu.Unlock()
}

// reset drops everything.
func (c *feedCache[V]) reset() {
	c.mu.Lock()
	clear(c.m)
	c.gen++
	c.mu.Unlock()
}
