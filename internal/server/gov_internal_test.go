package server

import (
	"fmt"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// TestRegistrationLimiterBounded: the per-address map never grows past its
// bound, refilled buckets go first, and the total limit still holds when
// addresses are evicted early.
func TestRegistrationLimiterBounded(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	l := newRegistrationLimiter(LoginLimit{PerMinute: 1, Burst: 2}, LoginLimit{PerMinute: 60, Burst: 50}, clock, 8)
	for i := range 40 {
		if ok, _ := l.allow(fmt.Sprintf("10.0.0.%d", i)); !ok && i < 8 {
			t.Fatalf("address %d refused", i)
		}
		if len(l.perIP) > 8 {
			t.Fatalf("%d entries, bound 8", len(l.perIP))
		}
	}
	// 40 fresh addresses, 50 in the total bucket: 10 left.
	allowed := 0
	for i := range 40 {
		if ok, _ := l.allow(fmt.Sprintf("10.1.0.%d", i)); ok {
			allowed++
		}
	}
	if allowed != 10 {
		t.Errorf("%d allowed after 40 of 50, want the 10 the total bucket holds", allowed)
	}
	// Refilled buckets are dropped before others.
	now = now.Add(time.Hour)
	l.allow("192.0.2.1")
	l.allow("192.0.2.1")
	if ok, _ := l.allow("192.0.2.1"); ok {
		t.Fatal("a third registration within the burst of 2")
	}
	for i := range 7 {
		l.allow(fmt.Sprintf("10.2.0.%d", i))
	}
	// A minute on, the seven (one used of two) have refilled; the spent
	// address holds one. A new address evicts the refilled ones only.
	now = now.Add(time.Minute)
	if ok, _ := l.allow("198.51.100.1"); !ok {
		t.Fatal("a new address was refused")
	}
	if len(l.perIP) != 2 {
		t.Errorf("%d entries after eviction, want the spent address and the new one", len(l.perIP))
	}
	if ok, _ := l.allow("192.0.2.1"); !ok {
		t.Fatal("the refilled registration was refused")
	}
	if ok, wait := l.allow("192.0.2.1"); ok || wait <= 0 || wait > time.Minute {
		t.Errorf("the spent address was evicted and reset (ok %v, wait %s)", ok, wait)
	}
}

// TestTouchInterval: an issuance touches a client whose last use is older
// than the interval, once per interval however often it is issued to.
func TestTouchInterval(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	s := &Server{tenant: store.DefaultTenant}
	c := &store.Client{ID: "c"}
	tc := s.touch(c, now)
	if tc == nil || !tc.At.Equal(now) || tc.ClientID != "c" {
		t.Fatalf("never-used client: %+v", tc)
	}
	s.touched(tc)
	// The cached row still says never used, but this process wrote it.
	if s.touch(c, now.Add(30*time.Minute)) != nil {
		t.Error("touched again within the hour")
	}
	if s.touch(c, now.Add(61*time.Minute)) == nil {
		t.Error("not touched after an hour")
	}
	c.LastUsedAt = now.Add(50 * time.Minute) // another replica wrote it
	if s.touch(c, now.Add(100*time.Minute)) != nil {
		t.Error("touched although the row says 50 minutes ago")
	}
}
