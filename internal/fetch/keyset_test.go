package fetch

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// clock is a moving clock for the cache.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// jwksServer serves whatever the test sets and counts requests.
type jwksServer struct {
	mu    sync.Mutex
	body  string
	ct    string
	cc    string
	code  int
	hits  int
	delay time.Duration
}

func (s *jwksServer) set(body, cacheControl string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body, s.cc, s.ct, s.code = body, cacheControl, "application/json", 200
}

func (s *jwksServer) count() int { s.mu.Lock(); defer s.mu.Unlock(); return s.hits }

func (s *jwksServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.hits++
	body, ct, cc, code, delay := s.body, s.ct, s.cc, s.code, s.delay
	s.mu.Unlock()
	time.Sleep(delay)
	w.Header().Set("Content-Type", ct)
	if cc != "" {
		w.Header().Set("Cache-Control", cc)
	}
	w.WriteHeader(code)
	w.Write([]byte(body))
}

func ecKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// jwks renders a set; each key is a public EC key unless given as a jose key.
func jwks(t *testing.T, keys ...jose.JSONWebKey) string {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func pub(t *testing.T, kid string) jose.JSONWebKey {
	return jose.JSONWebKey{Key: &ecKey(t).PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"}
}

const jwksURI = "https://keys.example.com/jwks.json"

func newKeySets(t *testing.T) (*KeySets, *jwksServer, *clock) {
	t.Helper()
	srv := &jwksServer{}
	tg := newTarget(t, srv.ServeHTTP)
	n := newNetwork()
	n.route(publicIP, tg)
	n.name("keys.example.com", publicIP)
	clk := &clock{t: time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)}
	f := n.fetcher(testPool(tg), func(c *Config) { c.Now = clk.now })
	if first := f.KeySets(); first != f.KeySets() {
		t.Fatal("KeySets returns a new cache per call")
	}
	return f.KeySets(), srv, clk
}

func hasKid(set *jose.JSONWebKeySet, kid string) bool { return set != nil && len(set.Key(kid)) > 0 }

// TestKeySetsCache drives the cache with a moving clock: TTL from the
// response, refetch on an unknown kid at most every 30 s, kid "" never
// refetches.
func TestKeySetsCache(t *testing.T) {
	ks, srv, clk := newKeySets(t)
	ctx := context.Background()
	k1, k2, k3 := pub(t, "k1"), pub(t, "k2"), pub(t, "k3")
	srv.set(jwks(t, k1), "max-age=600")

	step := func(name string, d time.Duration, kid string, wantHits int, wantKid bool) {
		t.Helper()
		clk.advance(d)
		set, err := ks.Get(ctx, jwksURI, kid)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := srv.count(); got != wantHits {
			t.Fatalf("%s: %d fetches, want %d", name, got, wantHits)
		}
		if kid != "" && hasKid(set, kid) != wantKid {
			t.Fatalf("%s: kid %s present = %v, want %v", name, kid, !wantKid, wantKid)
		}
	}
	step("first use fetches", 0, "k1", 1, true)
	step("fresh: cached", 4*time.Minute, "k1", 1, true)
	step("still fresh at 9m59s", 5*time.Minute+59*time.Second, "", 1, false)
	step("stale at 10m: refetched", time.Second, "k1", 2, true)

	srv.set(jwks(t, k1, k2), "max-age=600")
	step("unknown kid just after a fetch: no refetch", 0, "k2", 2, false)
	step("unknown kid at +29s: no refetch", 29*time.Second, "k2", 2, false)
	step("unknown kid at +30s: refetched and found", time.Second, "k2", 3, true)
	step("known kid: cached", time.Second, "k1", 3, true)

	srv.set(jwks(t, k3), "max-age=600")
	step("rotation within the gap: not yet", 10*time.Second, "k3", 3, false)
	step("no kid never refetches", 30*time.Second, "", 3, false)
	step("rotation after the gap: refetched", 0, "k3", 4, true)
	step("the old kid is gone, gap again", time.Second, "k1", 4, false)
}

// TestKeySetsTTLClamp: the response's lifetime is clamped to 5m..24h.
func TestKeySetsTTLClamp(t *testing.T) {
	cases := []struct {
		cc        string
		fresh, at time.Duration // still cached at fresh, refetched at `at`
	}{
		{"max-age=10", 5*time.Minute - time.Second, 5 * time.Minute},
		{"no-store", 5*time.Minute - time.Second, 5 * time.Minute},
		{"", 5*time.Minute - time.Second, 5 * time.Minute},
		{"max-age=3600", time.Hour - time.Second, time.Hour},
		{"max-age=31536000", 24*time.Hour - time.Second, 24 * time.Hour},
	}
	for _, c := range cases {
		t.Run(c.cc, func(t *testing.T) {
			ks, srv, clk := newKeySets(t)
			srv.set(jwks(t, pub(t, "k1")), c.cc)
			start := clk.now()
			ctx := context.Background()
			if _, err := ks.Get(ctx, jwksURI, "k1"); err != nil {
				t.Fatal(err)
			}
			clk.t = start.Add(c.fresh)
			ks.Get(ctx, jwksURI, "k1")
			if srv.count() != 1 {
				t.Fatalf("refetched before %v", c.fresh)
			}
			clk.t = start.Add(c.at)
			ks.Get(ctx, jwksURI, "k1")
			if srv.count() != 2 {
				t.Fatalf("not refetched at %v", c.at)
			}
		})
	}
}

// TestKeySetsErrorsNotCached: a failure is returned, and the next Get tries
// again; a stale set is not served when its refetch fails.
func TestKeySetsErrorsNotCached(t *testing.T) {
	ks, srv, clk := newKeySets(t)
	ctx := context.Background()
	srv.set("oops", "max-age=600")
	srv.code = 500
	if _, err := ks.Get(ctx, jwksURI, "k1"); reasonOf(err) != ReasonStatus {
		t.Fatalf("500: %v", err)
	}
	if _, err := ks.Get(ctx, jwksURI, "k1"); reasonOf(err) != ReasonStatus || srv.count() != 2 {
		t.Fatalf("second Get: %v after %d fetches; errors must not be cached", err, srv.count())
	}
	srv.set(jwks(t, pub(t, "k1")), "max-age=600")
	if _, err := ks.Get(ctx, jwksURI, "k1"); err != nil || srv.count() != 3 {
		t.Fatalf("recovery: %v after %d fetches", err, srv.count())
	}
	// An unknown kid while the key server fails: one attempt, then the gap
	// holds even though the attempt failed.
	clk.advance(time.Minute)
	srv.code = 503
	if _, err := ks.Get(ctx, jwksURI, "k9"); reasonOf(err) != ReasonStatus || srv.count() != 4 {
		t.Fatalf("unknown kid, failing server: %v after %d fetches", err, srv.count())
	}
	if set, err := ks.Get(ctx, jwksURI, "k9"); err != nil || !hasKid(set, "k1") || srv.count() != 4 {
		t.Fatalf("within the gap after a failed attempt: %v after %d fetches; want the cached set, no fetch", err, srv.count())
	}
	clk.advance(10 * time.Minute)
	srv.set("{}", "")
	if set, err := ks.Get(ctx, jwksURI, "k1"); reasonOf(err) != ReasonInvalid || set != nil {
		t.Fatalf("stale set with failing refetch: %v, %v", set, err)
	}
}

// TestKeySetsDocuments: what a jwks_uri may serve.
func TestKeySetsDocuments(t *testing.T) {
	priv := ecKey(t)
	big := make([]jose.JSONWebKey, 0, 40)
	for i := range 40 {
		big = append(big, pub(t, "k"+strings.Repeat("x", i)))
	}
	huge := `{"keys":[],"pad":"` + strings.Repeat("x", KeySetMaxBytes) + `"}`
	cases := []struct {
		name, body, ct, want string
	}{
		{"public EC key", jwks(t, pub(t, "k1")), "application/json", ""},
		{"jwk-set+json type", jwks(t, pub(t, "k1")), "application/jwk-set+json", ""},
		{"over 5 KiB but under 64 KiB", jwks(t, big...), "application/json", ""},
		{"over 64 KiB", huge, "application/json", ReasonTooLarge},
		{"unknown key type skipped", `{"keys":[{"kty":"XYZ","kid":"z"},` + strings.TrimPrefix(jwks(t, pub(t, "k1")), `{"keys":[`), "application/json", ""},
		{"private key refused", jwks(t, jose.JSONWebKey{Key: priv, KeyID: "k1"}), "application/json", ReasonInvalid},
		{"symmetric key refused", jwks(t, jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "k1"}), "application/json", ReasonInvalid},
		{"no keys", `{"keys":[]}`, "application/json", ReasonInvalid},
		{"not JSON", `not json`, "application/json", ReasonInvalid},
		{"HTML", jwks(t, pub(t, "k1")), "text/html", ReasonContentType},
		{"text/plain", jwks(t, pub(t, "k1")), "text/plain", ReasonContentType},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ks, srv, _ := newKeySets(t)
			srv.set(c.body, "")
			srv.ct = c.ct
			set, err := ks.Get(context.Background(), jwksURI, "")
			if got := reasonOf(err); got != c.want {
				t.Fatalf("reason = %q (%v), want %q", got, err, c.want)
			}
			if c.want == "" && len(set.Keys) == 0 {
				t.Fatal("no keys")
			}
			if err != nil && !strings.Contains(err.Error(), "keys.example.com") {
				t.Errorf("message %q does not name the host", err)
			}
		})
	}
}

// TestKeySetsSharedFetch: concurrent Gets of one uri share one fetch.
func TestKeySetsSharedFetch(t *testing.T) {
	ks, srv, _ := newKeySets(t)
	srv.set(jwks(t, pub(t, "k1")), "max-age=600")
	srv.delay = 100 * time.Millisecond
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if _, err := ks.Get(context.Background(), jwksURI, "k1"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if srv.count() != 1 {
		t.Errorf("%d fetches, want 1", srv.count())
	}
}

// TestKeySetsSSRF: jwks_uri goes through the same rules.
func TestKeySetsSSRF(t *testing.T) {
	n := newNetwork()
	trap := newTarget(t, nil)
	n.route("10.0.0.1", trap)
	n.name("keys.example.com", "10.0.0.1")
	f := n.fetcher(testPool(trap), nil)
	if _, err := f.KeySets().Get(context.Background(), jwksURI, "k1"); reasonOf(err) != ReasonAddress || trap.conns() != 0 {
		t.Fatalf("Get = %v with %d connections; want an address refusal and none", err, trap.conns())
	}
	if _, err := f.KeySets().Get(context.Background(), "http://keys.example.com/jwks", ""); reasonOf(err) != ReasonScheme {
		t.Fatalf("http jwks_uri: %v", err)
	}
}

// FuzzParseKeySet: a key set comes from a stranger; whatever it holds, an
// accepted set is non-empty and holds valid public keys only.
func FuzzParseKeySet(f *testing.F) {
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","kid":"1"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"AAAA"}]}`))
	f.Add([]byte(`{"keys":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		set, err := parseKeySet(b)
		if err != nil {
			if err.Reason != ReasonInvalid || set != nil {
				t.Fatalf("refusal %v with set %v", err, set)
			}
			return
		}
		if len(set.Keys) == 0 {
			t.Fatal("accepted an empty set")
		}
		for _, k := range set.Keys {
			if !k.Valid() || !k.IsPublic() {
				t.Fatalf("accepted key %+v", k)
			}
		}
	})
}
