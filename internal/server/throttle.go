package server

import (
	"hash/maphash"
	"math"
	"net/netip"
	"sync"
	"time"
)

// throttle counts failed sign-ins per key (a user name with a client
// address, or a client address alone) in leaky buckets: a failure adds one
// to its key's level, the level drains at the limit's rate, and a key whose
// level plus its attempts still in flight would pass the burst is refused.
//
// Only failures are recorded. An attempt holds an in-flight slot from begin
// to end, so that parallel attempts cannot all pass the check before the
// first of them fails; end releases the slot and, for a failure only, raises
// the level. A success therefore costs nothing, whatever the clock did in
// between.
//
// Keys are stored as 64-bit keyed hashes, so an attacker-chosen user name
// costs the same few bytes as any other, and the map holds at most max
// entries (see evictLocked for why eviction cannot cheaply reset a count).
type throttle struct {
	mu    sync.Mutex
	rate  float64 // level drained per second
	burst float64
	max   int
	// inFlight counts attempts still being checked against the limit, so
	// that parallel attempts cannot all pass before the first one fails.
	// Sign-ins need it (a guess costs an argon2id verification that takes a
	// while); client authentication does not: a secret is compared by its
	// SHA-256 in microseconds, and a confidential client legitimately sends
	// many requests at once, which must never be refused for being parallel.
	inFlight bool
	now      func() time.Time
	seed     maphash.Seed
	m        map[uint64]bucket
}

type bucket struct {
	level   float64   // failures, drained to at
	at      time.Time // when level was last brought up to date
	pending int       // attempts between begin and end
}

// throttleMax bounds each throttle's map. An entry is a uint64 key and a
// 40-byte bucket, about 80 bytes with the map's overhead: 64Ki entries are
// about 5 MB per throttle, whatever the names posted.
const throttleMax = 1 << 16

func newThrottle(l LoginLimit, now func() time.Time, max int) *throttle {
	return &throttle{rate: l.PerMinute / 60, burst: float64(l.Burst), max: max, inFlight: true, now: now, seed: maphash.MakeSeed(), m: make(map[uint64]bucket)}
}

// newFailureThrottle is a throttle that counts recorded failures only, not
// attempts in flight (see throttle.inFlight).
func newFailureThrottle(l LoginLimit, now func() time.Time, max int) *throttle {
	t := newThrottle(l, now, max)
	t.inFlight = false
	return t
}

// drained is b's level at now.
func (t *throttle) drained(b bucket, now time.Time) float64 {
	return max(0, b.level-now.Sub(b.at).Seconds()*t.rate)
}

// begin starts an attempt under key. It reports false, with how long until
// an attempt would be allowed, when the key is over its limit; otherwise the
// caller must call end with the returned handle exactly once.
func (t *throttle) begin(key string) (h uint64, ok bool, retry time.Duration) {
	h = maphash.String(t.seed, key)
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	b, found := t.m[h]
	if found {
		b.level, b.at = t.drained(b, now), now
	} else {
		b.at = now
	}
	pending := 0.0
	if t.inFlight {
		pending = float64(b.pending)
	}
	if b.level+pending+1 > t.burst {
		excess := b.level + pending + 1 - t.burst
		retry = time.Minute
		if t.rate > 0 {
			retry = time.Duration(math.Ceil(excess / t.rate * float64(time.Second)))
		}
		return h, false, retry
	}
	if !found && len(t.m) >= t.max && !t.evictLocked(now) {
		// Every entry is an attempt in flight: refuse rather than grow.
		return h, false, time.Minute
	}
	b.pending++
	t.m[h] = b
	return h, true, 0
}

// end finishes an attempt begun under h; failed records a failure.
func (t *throttle) end(h uint64, failed bool) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	b, ok := t.m[h]
	if !ok {
		return
	}
	b.level, b.at = t.drained(b, now), now
	b.pending = max(0, b.pending-1)
	if failed {
		b.level++
	}
	if b.level == 0 && b.pending == 0 {
		delete(t.m, h) // a drained bucket is the same as none
		return
	}
	t.m[h] = b
}

// evictLocked makes room for one entry: first it drops every drained bucket
// with nothing in flight (they are the same as fresh ones); when none is,
// the one with the lowest level. It reports false when every entry has an
// attempt in flight.
//
// Why this cannot be used to reset a counter cheaply: a bucket at level L is
// evicted only when all max−1 others stand above L. A guesser who has spent
// a (user, address) bucket (level ≈ burst, 5 by default) would have to hold
// 64Ki buckets at ≥ 5 failures each, about 330,000 failed sign-ins, each an
// argon2id verification the hub makes at some tens per second in all, and
// from about 16,000 addresses (/64 networks), since one address may fail only
// its own per-address burst (20) per window. That buys five more guesses.
func (t *throttle) evictLocked(now time.Time) bool {
	for k, b := range t.m {
		if b.pending == 0 && t.drained(b, now) == 0 {
			delete(t.m, k)
		}
	}
	if len(t.m) < t.max {
		return true
	}
	var victim uint64
	lowest, found := math.Inf(1), false
	for k, b := range t.m {
		if l := t.drained(b, now); b.pending == 0 && l < lowest {
			victim, lowest, found = k, l, true
		}
	}
	if found {
		delete(t.m, victim)
	}
	return found
}

// len reports the number of keys tracked.
func (t *throttle) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// addressKey is the throttle key of a client address: the address itself
// for IPv4, its /64 network for IPv6 (one host commonly holds a whole /64).
func addressKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}
