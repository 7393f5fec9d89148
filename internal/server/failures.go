package server

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// failureLimiter counts failures per key in token buckets: each failure
// spends a token, tokens come back at a steady rate, and a key with no token
// left is refused until one is back. Only failures are recorded, never
// attempts, so a client that authenticates correctly is never slowed by its
// own traffic. The map is bounded: at maxKeys, keys whose bucket is full
// again (equivalent to a fresh key) are dropped, then an arbitrary one.
type failureLimiter struct {
	mu      sync.Mutex
	every   rate.Limit
	burst   int
	maxKeys int
	now     func() time.Time
	m       map[string]*rate.Limiter
}

// newFailureLimiter allows burst failures per key, refilled at burst per
// window.
func newFailureLimiter(burst int, window time.Duration, maxKeys int, now func() time.Time) *failureLimiter {
	return &failureLimiter{
		every: rate.Limit(float64(burst) / window.Seconds()), burst: burst, maxKeys: maxKeys, now: now,
		m: make(map[string]*rate.Limiter),
	}
}

// blocked reports whether key has no failure left, and if so how long until
// it has one.
func (l *failureLimiter) blocked(key string) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.m[key]
	if !ok {
		return 0, false
	}
	tokens := lim.TokensAt(l.now())
	if tokens >= 1 {
		return 0, false
	}
	wait := time.Duration((1 - tokens) / float64(l.every) * float64(time.Second))
	return wait, true
}

// fail records one failure of key.
func (l *failureLimiter) fail(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	lim, ok := l.m[key]
	if !ok {
		if len(l.m) >= l.maxKeys {
			l.evict(now)
		}
		lim = rate.NewLimiter(l.every, l.burst)
		l.m[key] = lim
	}
	// ReserveN records the failure even when no token is left (the debt
	// lengthens the wait), and is never cancelled.
	lim.ReserveN(now, 1)
}

// evict makes room for one key.
func (l *failureLimiter) evict(now time.Time) {
	for k, lim := range l.m {
		if lim.TokensAt(now) >= float64(l.burst) {
			delete(l.m, k)
		}
	}
	for k := range l.m {
		if len(l.m) < l.maxKeys {
			return
		}
		delete(l.m, k)
	}
}
