package server_test

import (
	"context"
	"flag"
	"net/http"
	"net/url"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
)

// BenchmarkTokenExchange measures RFC 8693 token exchange through the whole
// HTTP handler on SQLite: client authentication of the resource server,
// verification of the subject token and its record, the chain checks, the
// exchange policy decision (which sees the chain), signing, and the durable
// access-token + audit write (the event carries the chain). It reports
// exchanges/s, the CPU time per exchange, the rate that implies on two
// idle cores, and the 99th percentile latency of one exchange.
//
// distinct-subjects presents a different subject token every time (each
// exchange verifies a signature); same-subject presents one token over and
// over, as a resource server fanning one call out to several next hops
// does (the signature check is then remembered, see verifyAccessToken).
//
// distinct-subjects-eddsa is distinct-subjects with the hub signing with
// EdDSA (tokens.signing_alg), for comparison: the default is ES256.
func BenchmarkTokenExchange(b *testing.B) {
	b.Run("distinct-subjects", func(b *testing.B) { benchExchange(b, 20000) })
	b.Run("same-subject", func(b *testing.B) { benchExchange(b, 1) })
	b.Run("distinct-subjects-eddsa", func(b *testing.B) { benchExchange(b, 20000, signingAlg(b, token.AlgEdDSA)) })
}

// signingAlg makes the hub's keys sign with alg.
func signingAlg(tb testing.TB, alg string) servertest.Option {
	return func(c *server.Config) {
		keys, err := token.NewKeys(context.Background(), token.Options{Store: c.Store, Keyring: c.Keyring, Algorithm: alg, Now: c.Now})
		if err != nil {
			tb.Fatal(err)
		}
		c.Keys = keys
	}
}

func benchExchange(b *testing.B, subjects int, opts ...servertest.Option) {
	h := newHub(b, opts...)
	agentSecret := h.AddClient(&store.Client{ID: "agent", RedirectURIs: []string{redirectURI}, GrantTypes: []string{oauth.GrantAuthorizationCode}})
	mcpSecret := h.AddClient(&store.Client{ID: "mcp-a", GrantTypes: []string{grantExchange}})
	h.LinkResourceServer("mcp-a")
	(&exchangeHub{hub: h}).addResource(exchangeResB, "mcp-b", store.Scope{Name: "notes.read"}, store.Scope{Name: "notes.write"})
	// The first subject token comes from a real code flow; the others are
	// minted and recorded the same way, for the same person and agent.
	// No more than the run presents: the probe run of one exchange (and
	// the once-through of every benchmark in scripts/test.sh) mints one.
	subjects = min(subjects, b.N)
	bodies := make([]string, subjects)
	bodies[0] = exchangeBody(userTokenFor(b, h, "agent", agentSecret, "notes.read", "notes.write"))
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 1 + w; i < subjects; i += 8 {
				bodies[i] = exchangeBody(mintSubject(b, h))
			}
		})
	}
	wg.Wait()
	handler := h.Server.Handler()

	benchTokenPosts(b, handler, h.URL, "mcp-a", mcpSecret, bodies, "exchanges")
}

// timedProfile, when set, is where benchTokenPosts writes a CPU profile of
// its timed loop alone (the last run of a benchmark wins). The standard
// -test.cpuprofile also covers the setup, which for the exchange benchmark
// (20,000 subject tokens minted and recorded) is most of the samples.
var timedProfile = flag.String("timedprofile", "", "write a CPU profile of the timed /token loop of the exchange and retrieval benchmarks to `file`")

// benchTokenPosts posts bodies in turn to /token as clientID through
// handler, from 32 concurrent clients per core (with only GOMAXPROCS
// goroutines the group commit would never batch), and reports what/s,
// the CPU time per request, the rate that implies on two idle cores, and
// the 99th percentile latency of one request. Every answer must be 200.
func benchTokenPosts(b *testing.B, handler http.Handler, hubURL, clientID, secret string, bodies []string, what string) {
	var next atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.SetParallelism(32)
	stopProfile := startTimedProfile(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		mine := make([]time.Duration, 0, 1024)
		for pb.Next() {
			body := bodies[int(next.Add(1)-1)%len(bodies)]
			req, _ := http.NewRequest(http.MethodPost, hubURL+"/token", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(clientID, secret)
			req.RemoteAddr = "127.0.0.1:1234"
			w := &discardWriter{h: http.Header{}}
			start := time.Now()
			handler.ServeHTTP(w, req)
			mine = append(mine, time.Since(start))
			if w.status != 0 && w.status != http.StatusOK {
				b.Fatalf("status %d", w.status)
			}
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	b.StopTimer()
	stopProfile()
	if len(bodies) > 1 && b.N > len(bodies) {
		b.Logf("%d %s over %d subject tokens: some were presented twice", b.N, what, len(bodies))
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), what+"/s")
	cpuPerOp := (cpuTime() - cpu0).Seconds() / float64(b.N)
	b.ReportMetric(cpuPerOp*1e6, "cpu-µs/op")
	b.ReportMetric(2/cpuPerOp, what+"/s@2cores")
	if len(lat) > 0 {
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
}

// startTimedProfile starts the -timedprofile CPU profile and returns what
// stops it.
func startTimedProfile(b *testing.B) func() {
	if *timedProfile == "" {
		return func() {}
	}
	f, err := os.Create(*timedProfile)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Error(err)
		}
	}
}

func exchangeBody(subject string) string {
	return url.Values{
		"grant_type": {grantExchange}, "subject_token": {subject}, "subject_token_type": {typeAccess},
		"resource": {exchangeResB}, "scope": {"notes.read"},
	}.Encode()
}

// mintSubject mints and records an access token of the agent for u-alice
// on the hub's resource, as the code flow issues them.
func mintSubject(tb testing.TB, h *hub) string {
	now := time.Now()
	c := &token.AccessClaims{
		Issuer: h.URL, Subject: "u-alice", Audience: []string{h.Resource}, ClientID: "agent", Scope: "notes.read notes.write",
		JTI: token.NewID(nil), IssuedAt: now.Unix(), Expiry: now.Add(10 * time.Minute).Unix(), AuthTime: now.Unix(),
	}
	raw, err := h.Keys.Mint(c)
	if err != nil {
		tb.Fatal(err)
	}
	if err := h.Store.IssueTokens(context.Background(), &store.Issuance{AccessToken: &store.AccessToken{
		JTI: c.JTI, TenantID: store.DefaultTenant, GrantID: "bench-family", ClientID: "agent", UserID: "u-alice",
		Resource: h.Resource, Scopes: []string{"notes.read", "notes.write"}, ExpiresAt: time.Unix(c.Expiry, 0),
		Digest: token.Hash(raw),
	}}); err != nil {
		tb.Fatal(err)
	}
	return raw
}

// userTokenFor runs a code flow for the hub's resource and returns the
// access token.
func userTokenFor(tb testing.TB, h *hub, clientID, secret string, scopes ...string) string {
	tb.Helper()
	conf := h.oauth2Config(clientID, secret, scopes...)
	tok, err := (&exchangeHub{hub: h}).codeFlowToken(h.Browser(), conf, h.Resource, scopes)
	if err != nil {
		tb.Fatal(err)
	}
	return tok.AccessToken
}
