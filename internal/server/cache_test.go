package server

import (
	"errors"
	"testing"
)

// fakeFresh is a feed whose freshness the test sets.
type fakeFresh struct{ fresh bool }

func (f *fakeFresh) Fresh() bool { return f.fresh }

// TestFeedCache: an entry lives until invalidated, however long; errors
// are not cached; while the feed is not fresh every get loads and nothing
// is cached; a load that an invalidation overtook is not cached.
func TestFeedCache(t *testing.T) {
	feed := &fakeFresh{fresh: true}
	c := newFeedCache[int](feed)
	loads := 0
	load := func(v int, err error) func() (int, error) {
		return func() (int, error) { loads++; return v, err }
	}
	steps := []struct {
		name      string
		fresh     bool
		invalid   bool
		reset     bool
		load      func() (int, error)
		want      int
		wantErr   bool
		wantLoads int
	}{
		{"first get loads", true, false, false, load(1, nil), 1, false, 1},
		{"the entry is served", true, false, false, load(2, nil), 1, false, 1},
		{"an invalidated entry reloads", true, true, false, load(3, nil), 3, false, 2},
		{"a reset entry reloads", true, false, true, load(4, nil), 4, false, 3},
		{"a stale feed loads", false, false, false, load(5, nil), 5, false, 4},
		{"and caches nothing while stale", false, false, false, load(6, nil), 6, false, 5},
		{"fresh again serves the entry from before", true, false, false, load(7, nil), 4, false, 5},
		{"errors are not cached", true, true, false, load(0, errors.New("down")), 0, true, 6},
		{"after an error the next get loads", true, false, false, load(8, nil), 8, false, 7},
	}
	for _, s := range steps {
		feed.fresh = s.fresh
		if s.invalid {
			c.invalidate("k")
		}
		if s.reset {
			c.reset()
		}
		got, err := c.get("k", s.load)
		if (err != nil) != s.wantErr || (err == nil && got != s.want) || loads != s.wantLoads {
			t.Fatalf("%s: got %d, %v after %d loads; want %d, err=%v, %d loads", s.name, got, err, loads, s.want, s.wantErr, s.wantLoads)
		}
	}

	// An invalidation while a load runs: the load's value is returned but
	// not cached (it may predate the change).
	c.invalidate("r")
	got, _ := c.get("r", func() (int, error) { c.invalidate("r"); return 10, nil })
	if got != 10 {
		t.Fatalf("racing load returned %d", got)
	}
	if got, _ := c.get("r", load(11, nil)); got != 11 {
		t.Fatalf("the load an invalidation overtook was cached: %d", got)
	}
	// Without a feed nothing is cached.
	none := newFeedCache[int](nil)
	none.get("k", load(1, nil))
	if got, _ := none.get("k", load(2, nil)); got != 2 {
		t.Fatalf("a cache without a feed served %d", got)
	}
}
