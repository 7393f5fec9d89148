package server

import (
	"fmt"
	"testing"
	"time"
)

// TestFailureLimiterBounded: attacker-chosen keys cannot grow the map past
// its bound, and a key that failed recently keeps its count while the map
// is full of keys that are fresh again.
func TestFailureLimiterBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := newFailureLimiter(2, time.Minute, 100, func() time.Time { return now })
	for i := range 1000 {
		l.fail(fmt.Sprintf("k%d", i))
		if len(l.m) > 100 {
			t.Fatalf("after %d keys the map holds %d, want at most 100", i+1, len(l.m))
		}
	}
	now = now.Add(time.Hour) // every bucket is full again
	l.fail("victim")
	l.fail("victim")
	for i := range 99 {
		l.fail(fmt.Sprintf("new%d", i))
	}
	if _, blocked := l.blocked("victim"); !blocked {
		t.Fatal("a key with recent failures was dropped while fresh keys could go")
	}
	if wait, _ := l.blocked("victim"); wait <= 0 || wait > 30*time.Second {
		t.Fatalf("wait = %v, want (0, 30s] (one failure back every 30 s)", wait)
	}
}
