package server_test

import (
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
)

// reuseBackends runs test on both backends with a hub on a fake clock.
func reuseBackends(t *testing.T, test func(t *testing.T, h *hub, clk *fakeClock)) {
	consentBackends(t, test)
}

// agentTokens signs alice in through a new agent and returns its secret and
// first refresh token.
func agentTokens(t *testing.T, h *hub, id string) (secret, refresh string) {
	t.Helper()
	secret = h.AddClient(&store.Client{ID: id, RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code", "refresh_token"}})
	tok, err := h.codeFlow(h.Browser(), h.oauth2Config(id, secret, "notes.read"), []string{"notes.read"})
	if err != nil {
		t.Fatal(err)
	}
	return secret, tok.RefreshToken
}

// TestRefreshParallel: ten refreshes of one refresh token at once, as MCP
// clients send them (retries, two processes). Every one succeeds, within the
// reuse interval, with tokens of the same family; the grant survives: the
// family's newest refresh token still works afterwards.
func TestRefreshParallel(t *testing.T) {
	reuseBackends(t, func(t *testing.T, h *hub, clk *fakeClock) {
		rs := h.AddClient(&store.Client{ID: "notes-mcp", GrantTypes: []string{"client_credentials"}})
		h.LinkResourceServer("notes-mcp")
		secret, rt := agentTokens(t, h, "agent-1")
		const n = 10
		results := make([]jsonResp, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				results[i] = h.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, "agent-1", secret)
			})
		}
		close(start)
		wg.Wait()
		var refreshTokens []string
		for i, r := range results {
			if r.status != http.StatusOK {
				t.Fatalf("refresh %d: %d %v, want every presentation within the interval accepted", i, r.status, r.body)
			}
			if got := h.introspect(r.body["access_token"].(string), "notes-mcp", rs); got["active"] != true {
				t.Fatalf("refresh %d: its access token introspects %v", i, got)
			}
			refreshTokens = append(refreshTokens, r.body["refresh_token"].(string))
		}
		if n := len(h.auditEvents("refresh.reuse_detected")); n != 0 {
			t.Fatalf("%d refresh.reuse_detected events, want none", n)
		}
		if n := len(h.auditEvents("refresh.reused_within_interval")); n != 9 {
			t.Fatalf("%d refresh.reused_within_interval events, want 9", n)
		}
		// Exactly one of the answers is the family's current token: the
		// grant lives on through it, well after the interval.
		clk.Advance(time.Minute)
		live := 0
		for _, next := range refreshTokens {
			rec, err := h.Store.GetRefreshToken(t.Context(), token.Hash(next))
			if err != nil {
				t.Fatal(err)
			}
			if rec.Active(clk.Now()) {
				live++
				if r := h.refresh(next, "agent-1", secret); r.status != http.StatusOK {
					t.Fatalf("refreshing with the family's current token: %d %v", r.status, r.body)
				}
			}
		}
		if live != 1 {
			t.Fatalf("%d current refresh tokens in the family, want 1", live)
		}
	})
}

// TestRefreshReuseInterval: on a clock that moves, a rotated refresh token
// presented again within the interval is accepted (the family lives on);
// after the interval it revokes the whole family, as reuse of a stolen
// token must. The two are audited apart.
func TestRefreshReuseInterval(t *testing.T) {
	reuseBackends(t, func(t *testing.T, h *hub, clk *fakeClock) {
		rs := h.AddClient(&store.Client{ID: "notes-mcp", GrantTypes: []string{"client_credentials"}})
		h.LinkResourceServer("notes-mcp")
		secret, first := agentTokens(t, h, "agent-1")
		r1 := h.refresh(first, "agent-1", secret)
		if r1.status != http.StatusOK {
			t.Fatalf("refresh: %d %v", r1.status, r1.body)
		}
		// A retry 5 s later (the first answer was lost).
		clk.Advance(5 * time.Second)
		r2 := h.refresh(first, "agent-1", secret)
		if r2.status != http.StatusOK || r2.body["refresh_token"] == r1.body["refresh_token"] {
			t.Fatalf("retry within the interval: %d %v", r2.status, r2.body)
		}
		if evs := h.auditEvents("refresh.reused_within_interval"); len(evs) != 1 || evs[0].ClientID != "agent-1" || evs[0].Details["grant_id"] == "" {
			t.Fatalf("refresh.reused_within_interval events = %+v", evs)
		}
		// Another client presenting the token gets nothing, even now.
		other := h.AddClient(&store.Client{ID: "agent-2", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code", "refresh_token"}})
		if r := h.refresh(first, "agent-2", other); r.status != http.StatusBadRequest || r.body["error"] != "invalid_grant" {
			t.Fatalf("another client within the interval: %d %v", r.status, r.body)
		}
		// The first token 11 s after its rotation: theft; the family ends.
		clk.Advance(6 * time.Second)
		r3 := h.refresh(first, "agent-1", secret)
		if r3.status != http.StatusBadRequest || r3.body["error"] != "invalid_grant" {
			t.Fatalf("presentation after the interval: %d %v", r3.status, r3.body)
		}
		if n := len(h.auditEvents("refresh.reuse_detected")); n != 1 {
			t.Fatalf("%d refresh.reuse_detected events, want 1", n)
		}
		if r := h.refresh(r2.body["refresh_token"].(string), "agent-1", secret); r.status != http.StatusBadRequest {
			t.Fatalf("the family's newest refresh token after reuse: %d %v", r.status, r.body)
		}
		for _, r := range []jsonResp{r1, r2} {
			if got := h.introspect(r.body["access_token"].(string), "notes-mcp", rs); got["active"] != false {
				t.Fatalf("an access token of the revoked family introspects %v", got)
			}
		}
	})
}

// TestRefreshStrict: with the interval off, a second presentation revokes
// the family at once.
func TestRefreshStrict(t *testing.T) {
	h := newHub(t, func(c *server.Config) { c.RefreshReuseInterval = -1 })
	secret, first := agentTokens(t, h, "agent-1")
	r1 := h.refresh(first, "agent-1", secret)
	if r1.status != http.StatusOK {
		t.Fatalf("refresh: %d %v", r1.status, r1.body)
	}
	if r := h.refresh(first, "agent-1", secret); r.status != http.StatusBadRequest {
		t.Fatalf("second presentation: %d %v", r.status, r.body)
	}
	if r := h.refresh(r1.body["refresh_token"].(string), "agent-1", secret); r.status != http.StatusBadRequest {
		t.Fatalf("the family survived strict reuse: %d %v", r.status, r.body)
	}
}
