package server

import (
	"strconv"
	"testing"
	"time"
)

// TestCIMDCacheEvictsStaleFirst: a flood of unknown document URLs fills
// the freshness table with entries that are not fresh; making room drops
// those and keeps the documents still in use, so a flood does not force
// every known client's document to be fetched again.
func TestCIMDCacheEvictsStaleFirst(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	var c cimdCache
	known := c.entry("https://app.example.com/client.json", now)
	known.fresh.Store(now.Add(time.Hour).UnixNano())
	for i := range cimdMaxEntries {
		c.entry("https://flood.example/"+strconv.Itoa(i), now)
	}
	if len(c.m) > cimdMaxEntries {
		t.Fatalf("table grew to %d entries", len(c.m))
	}
	if got := c.entry("https://app.example.com/client.json", now); got != known {
		t.Fatal("the fresh document's entry was evicted by the flood")
	}
}
