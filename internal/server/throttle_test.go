package server_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/server/servertest"
)

// steppingClock is wall time plus an offset that grows by step at every
// reading, so that time really passes between a sign-in's start and its
// result, and jumps forward on Advance.
type steppingClock struct {
	mu   sync.Mutex
	off  time.Duration
	step time.Duration
}

func (c *steppingClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += c.step
	return time.Now().Add(c.off)
}

func (c *steppingClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

// signInFrom posts the login form as a browser at ip would (its own
// cookies and form token) and returns the response.
func signInFrom(t *testing.T, h *hub, ip, user, pw string) *http.Response {
	t.Helper()
	get := httptest.NewRequest(http.MethodGet, h.URL+"/login", nil)
	get.RemoteAddr = ip + ":40000"
	rec := httptest.NewRecorder()
	h.Server.Handler().ServeHTTP(rec, get)
	form := url.Values{"csrf_token": {csrfOf(t, rec.Body.String())}, "return_to": {"/account"}, "username": {user}, "password": {pw}}
	post := httptest.NewRequest(http.MethodPost, h.URL+"/login", strings.NewReader(form.Encode()))
	post.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	post.RemoteAddr = ip + ":40001"
	for _, c := range rec.Result().Cookies() {
		post.AddCookie(c)
	}
	rec = httptest.NewRecorder()
	h.Server.Handler().ServeHTTP(rec, post)
	return rec.Result()
}

// TestLoginThrottleCountsFailuresOnly: with a clock that moves during every
// sign-in, successes never use up the limit, failures do, per user name and
// address, and the limit recovers after its window.
func TestLoginThrottleCountsFailuresOnly(t *testing.T) {
	clk := &steppingClock{step: 50 * time.Millisecond}
	h := newHub(t, func(c *server.Config) {
		c.Now = clk.Now
		c.LoginAttempts = server.LoginLimit{PerMinute: 5.0 / 15, Burst: 5} // 5 per 15 minutes
		c.LoginAttemptsPerIP = server.LoginLimit{PerMinute: 20.0 / 15, Burst: 20}
	})
	const home, office, stranger = "192.0.2.10", "198.51.100.7", "203.0.113.66"
	ok := func(resp *http.Response) bool { return resp.StatusCode == http.StatusSeeOther }

	t.Run("many successful sign-ins in a row never lock out", func(t *testing.T) {
		for i := range 12 {
			if resp := signInFrom(t, h, home, servertest.TestUser, servertest.TestPassword); !ok(resp) {
				t.Fatalf("sign-in %d: %d, want 303", i+1, resp.StatusCode)
			}
		}
		if resp := signInFrom(t, h, home, servertest.TestUser, "wrong"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("a wrong password after the successes: %d, want 401 (not throttled)", resp.StatusCode)
		}
	})
	t.Run("a stranger's failures do not lock the person out elsewhere", func(t *testing.T) {
		for range 5 {
			if resp := signInFrom(t, h, stranger, servertest.TestUser, "guess"); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("stranger's guess: %d", resp.StatusCode)
			}
		}
		resp := signInFrom(t, h, stranger, servertest.TestUser, servertest.TestPassword)
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("6th attempt from the stranger's address: %d Retry-After=%q, want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		if resp := signInFrom(t, h, office, servertest.TestUser, servertest.TestPassword); !ok(resp) {
			t.Fatalf("the person at the office: %d, want 303", resp.StatusCode)
		}
	})
	t.Run("recovers after the window", func(t *testing.T) {
		clk.Advance(16 * time.Minute)
		if resp := signInFrom(t, h, stranger, servertest.TestUser, servertest.TestPassword); !ok(resp) {
			t.Fatalf("after the window: %d, want 303", resp.StatusCode)
		}
	})
	t.Run("one address trying many names", func(t *testing.T) {
		for i := range 20 {
			signInFrom(t, h, office, fmt.Sprintf("user%d", i), "wrong")
		}
		if resp := signInFrom(t, h, office, servertest.TestUser, servertest.TestPassword); resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("21st failure from one address: %d, want 429", resp.StatusCode)
		}
	})
}

// TestLoginThrottleBoundedMemory: 3,000 refused posts with long, distinct
// user names from one address leave the throttles' maps small, and the
// hub's heap does not grow with the names.
func TestLoginThrottleBoundedMemory(t *testing.T) {
	h := newHub(t, func(c *server.Config) {
		c.LoginAttemptsPerIP = server.LoginLimit{PerMinute: 1, Burst: 3}
	})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	long := strings.Repeat("n", 50_000)
	var last *http.Response
	for i := range 3000 {
		last = signInFrom(t, h, "192.0.2.99", fmt.Sprintf("%s%d", long, i), "wrong")
	}
	if last.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("last post: %d, want 429", last.StatusCode)
	}
	user, addr := h.Server.ThrottleSizes()
	if user > 3 || addr > 1 {
		t.Fatalf("throttle maps hold %d (user, address) and %d address keys after 3,000 refused posts, want ≤ 3 and ≤ 1", user, addr)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 16<<20 {
		t.Fatalf("heap grew by %d MB", grew>>20)
	}
}
