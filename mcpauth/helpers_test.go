package mcpauth_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/mcpauth"
	"github.com/agentid/agentid/mcpauth/mcpauthtest"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

const (
	resource    = "https://mcp.example.com/mcp"
	metadataURL = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
)

// clock is a settable clock shared by the test hub and the verifier.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().Truncate(time.Second)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	hub   *mcpauthtest.Server
	clock *clock
	v     *mcpauth.Verifier
}

func newFixture(t testing.TB, mutate func(*mcpauth.Config, *mcpauthtest.Server)) *fixture {
	t.Helper()
	clk := newClock()
	hub := mcpauthtest.NewServer(t, mcpauthtest.WithClock(clk.Now))
	cfg := mcpauth.Config{Issuer: hub.Issuer(), Resource: resource, Now: clk.Now}
	if mutate != nil {
		mutate(&cfg, hub)
	}
	v, err := mcpauth.NewVerifier(context.Background(), cfg)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return &fixture{hub: hub, clock: clk, v: v}
}

func introspection(ttl time.Duration) func(*mcpauth.Config, *mcpauthtest.Server) {
	return func(c *mcpauth.Config, hub *mcpauthtest.Server) {
		id, secret := hub.IntrospectionCredentials()
		c.Introspection = &mcpauth.IntrospectionConfig{ClientID: id, ClientSecret: secret, CacheTTL: ttl}
	}
}

// serve runs one request through the middleware and records what the
// protected handler saw.
type seen struct {
	called bool
	claims *mcpauth.Claims
	body   string
}

func serve(t *testing.T, h func(http.Handler) http.Handler, r *http.Request) (*httptest.ResponseRecorder, *seen) {
	t.Helper()
	s := &seen{}
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.called = true
		s.claims, _ = mcpauth.ClaimsFromContext(r.Context())
		var b strings.Builder
		buf := make([]byte, 512)
		for {
			n, err := r.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		s.body = b.String()
		w.WriteHeader(http.StatusNoContent)
	})
	rec := httptest.NewRecorder()
	h(next).ServeHTTP(rec, r)
	return rec, s
}

func request(method, token, body string) *http.Request {
	r := httptest.NewRequest(method, resource, strings.NewReader(body))
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	return r
}

// challenge parses the response's Bearer challenge with the MCP Go SDK's
// client-side parser, so the tests see what a real client sees.
func challenge(t *testing.T, rec *httptest.ResponseRecorder) map[string]string {
	t.Helper()
	hdrs := rec.Result().Header.Values("WWW-Authenticate")
	if len(hdrs) == 0 {
		return nil
	}
	cs, err := oauthex.ParseWWWAuthenticate(hdrs)
	if err != nil {
		t.Fatalf("unparseable WWW-Authenticate %q: %v", hdrs, err)
	}
	if len(cs) != 1 || !strings.EqualFold(cs[0].Scheme, "bearer") {
		t.Fatalf("want one Bearer challenge, got %q", hdrs)
	}
	return cs[0].Params
}
