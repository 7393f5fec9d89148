package server

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

type fakeNow struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeNow) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond) // time moves at every reading
	return c.t
}

func (c *fakeNow) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func fail(t *testing.T, th *throttle, key string) bool {
	t.Helper()
	h, ok, _ := th.begin(key)
	if ok {
		th.end(h, true)
	}
	return ok
}

func TestThrottle(t *testing.T) {
	limit := LoginLimit{PerMinute: 5.0 / 15, Burst: 5}
	t.Run("successes cost nothing", func(t *testing.T) {
		clk := &fakeNow{t: time.Unix(1e9, 0)}
		th := newThrottle(limit, clk.now, 100)
		for i := range 50 {
			h, ok, _ := th.begin("alice")
			if !ok {
				t.Fatalf("attempt %d refused after only successes", i+1)
			}
			clk.advance(time.Second)
			th.end(h, false)
		}
		if th.len() != 0 {
			t.Fatalf("successes left %d entries", th.len())
		}
	})
	t.Run("failures lock, the window unlocks", func(t *testing.T) {
		clk := &fakeNow{t: time.Unix(1e9, 0)}
		th := newThrottle(limit, clk.now, 100)
		for i := range 5 {
			if !fail(t, th, "alice") {
				t.Fatalf("failure %d refused", i+1)
			}
		}
		_, ok, retry := th.begin("alice")
		if ok || retry <= 0 || retry > 3*time.Minute+time.Second {
			t.Fatalf("6th attempt: ok=%v retry=%v, want refused for about 3 minutes", ok, retry)
		}
		clk.advance(retry)
		if !fail(t, th, "alice") {
			t.Fatal("refused after the announced wait")
		}
	})
	t.Run("attempts in flight count", func(t *testing.T) {
		clk := &fakeNow{t: time.Unix(1e9, 0)}
		th := newThrottle(limit, clk.now, 100)
		var hs []uint64
		for range 5 {
			h, ok, _ := th.begin("alice")
			if !ok {
				t.Fatal("refused below the burst")
			}
			hs = append(hs, h)
		}
		if _, ok, _ := th.begin("alice"); ok {
			t.Fatal("a 6th parallel attempt passed before any result")
		}
		for _, h := range hs {
			th.end(h, false)
		}
		if _, ok, _ := th.begin("alice"); !ok {
			t.Fatal("refused after five successes")
		}
	})
	t.Run("bounded, and a flood does not evict a spent bucket", func(t *testing.T) {
		clk := &fakeNow{t: time.Unix(1e9, 0)}
		th := newThrottle(limit, clk.now, 100)
		for range 5 {
			fail(t, th, "victim")
		}
		for i := range 3000 {
			fail(t, th, fmt.Sprintf("%0500d", i))
			if th.len() > 100 {
				t.Fatalf("%d entries after %d keys, want ≤ 100", th.len(), i+1)
			}
		}
		if _, ok, _ := th.begin("victim"); ok {
			t.Fatal("a flood of single failures reset a spent bucket")
		}
	})
	t.Run("all in flight: refuse rather than grow", func(t *testing.T) {
		clk := &fakeNow{t: time.Unix(1e9, 0)}
		th := newThrottle(limit, clk.now, 3)
		for i := range 3 {
			if _, ok, _ := th.begin(fmt.Sprint(i)); !ok {
				t.Fatal("refused below the bound")
			}
		}
		if _, ok, _ := th.begin("new"); ok || th.len() != 3 {
			t.Fatalf("ok=%v len=%d, want a refusal and 3 entries", ok, th.len())
		}
	})
}

func TestAddressKey(t *testing.T) {
	tests := []struct{ name, ip, want string }{
		{"IPv4", "192.0.2.1", "192.0.2.1"},
		{"IPv4-mapped", "::ffff:192.0.2.1", "192.0.2.1"},
		{"IPv6 counts as its /64", "2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"},
		{"same /64", "2001:db8:1:2:ffff::9", "2001:db8:1:2::/64"},
		{"not an address", "pipe", "pipe"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := addressKey(tc.ip); got != tc.want {
				t.Fatalf("addressKey(%q) = %q, want %q", tc.ip, got, tc.want)
			}
		})
	}
}

// TestThrottleParallel: of many attempts started at once, no more than the
// burst get through before any result is in.
func TestThrottleParallel(t *testing.T) {
	clk := &fakeNow{t: time.Unix(1e9, 0)}
	th := newThrottle(LoginLimit{PerMinute: 5.0 / 15, Burst: 5}, clk.now, 100)
	var mu sync.Mutex
	var passed []uint64
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if h, ok, _ := th.begin("alice"); ok {
				mu.Lock()
				passed = append(passed, h)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(passed) != 5 {
		t.Fatalf("%d of 50 parallel attempts passed, want the burst of 5", len(passed))
	}
	for _, h := range passed {
		wg.Go(func() { th.end(h, true) })
	}
	wg.Wait()
	if _, ok, _ := th.begin("alice"); ok {
		t.Fatal("a sixth attempt passed after five failures")
	}
}

// TestFailureThrottleIgnoresInFlight: a throttle for client authentication
// lets any number of attempts run at once and refuses only once recorded
// failures reach the burst.
func TestFailureThrottleIgnoresInFlight(t *testing.T) {
	clk := &fakeNow{t: time.Unix(1e9, 0)}
	th := newFailureThrottle(LoginLimit{PerMinute: 10, Burst: 10}, clk.now, 100)
	var hs []uint64
	for i := range 50 {
		h, ok, _ := th.begin("client")
		if !ok {
			t.Fatalf("attempt %d in flight refused", i)
		}
		hs = append(hs, h)
	}
	for i, h := range hs {
		th.end(h, i < 10)
	}
	if _, ok, _ := th.begin("client"); ok {
		t.Fatal("ten recorded failures did not refuse the next attempt")
	}
}
