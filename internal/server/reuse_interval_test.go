package server_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/store"
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
// clients send them (retries, two processes), on a clock that moves. Every
// one succeeds, with tokens of the same family, and every refresh token
// handed out stays usable: after the interval each one refreshes (once), and
// the grant survives. The original presented after the interval is reuse
// and ends the family.
func TestRefreshParallel(t *testing.T) {
	reuseBackends(t, func(t *testing.T, h *hub, clk *fakeClock) {
		rs := h.AddClient(&store.Client{ID: "notes-mcp", GrantTypes: []string{"client_credentials"}})
		h.LinkResourceServer("notes-mcp")
		secret, rt := agentTokens(t, h, "agent-1")
		const n = 10
		// refreshAll refreshes every token in rts at once, the clock
		// moving 100 ms before each request.
		refreshAll := func(rts []string) []jsonResp {
			results := make([]jsonResp, len(rts))
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i, rt := range rts {
				wg.Go(func() {
					<-start
					clk.Advance(100 * time.Millisecond)
					results[i] = h.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, "agent-1", secret)
				})
			}
			close(start)
			wg.Wait()
			return results
		}
		// answers checks that every result is a success whose access
		// token is active, and returns their refresh tokens and access
		// tokens.
		answers := func(what string, results []jsonResp) (refresh, access []string) {
			t.Helper()
			for i, r := range results {
				if r.status != http.StatusOK {
					t.Fatalf("%s %d: %d %v", what, i, r.status, r.body)
				}
				at := r.body["access_token"].(string)
				if got := h.introspect(at, "notes-mcp", rs); got["active"] != true {
					t.Fatalf("%s %d: its access token introspects %v", what, i, got)
				}
				refresh, access = append(refresh, r.body["refresh_token"].(string)), append(access, at)
			}
			return refresh, access
		}
		refreshTokens, accessTokens := answers("parallel refresh", refreshAll(slices.Repeat([]string{rt}, n)))
		if n := len(h.auditEvents("refresh.reuse_detected")); n != 0 {
			t.Fatalf("%d refresh.reuse_detected events, want none", n)
		}
		if n := len(h.auditEvents("refresh.reused_within_interval")); n != 9 {
			t.Fatalf("%d refresh.reused_within_interval events, want 9", n)
		}
		// Well after the interval, whichever answer a client kept still
		// works: every refresh token handed out refreshes.
		clk.Advance(time.Minute)
		next, nextAccess := answers("refreshing a parallel answer after the interval", refreshAll(refreshTokens))
		if n := len(h.auditEvents("refresh.reuse_detected")); n != 0 {
			t.Fatalf("%d refresh.reuse_detected events after refreshing every answer, want none", n)
		}
		// The original token now: reuse; the family ends.
		if r := h.refresh(rt, "agent-1", secret); r.status != http.StatusBadRequest || r.body["error"] != "invalid_grant" {
			t.Fatalf("the original token after the interval: %d %v", r.status, r.body)
		}
		if n := len(h.auditEvents("refresh.reuse_detected")); n != 1 {
			t.Fatalf("%d refresh.reuse_detected events, want 1", n)
		}
		for _, at := range append(accessTokens, nextAccess...) {
			if got := h.introspect(at, "notes-mcp", rs); got["active"] != false {
				t.Fatalf("an access token of the revoked family introspects %v", got)
			}
		}
		if r := h.refresh(next[0], "agent-1", secret); r.status != http.StatusBadRequest {
			t.Fatalf("a refresh token of the revoked family: %d %v", r.status, r.body)
		}
	})
}

// TestRefreshReuseInterval: on a clock that moves, a rotated refresh token
// presented again within the interval is accepted while the client has not
// moved on (the family lives on, the earlier answer too); after the
// interval, or once a successor was itself refreshed, it revokes the whole
// family, as reuse of a stolen token must. The two are audited apart.
func TestRefreshReuseInterval(t *testing.T) {
	reuseBackends(t, func(t *testing.T, h *hub, clk *fakeClock) {
		rs := h.AddClient(&store.Client{ID: "notes-mcp", GrantTypes: []string{"client_credentials"}})
		h.LinkResourceServer("notes-mcp")
		other := h.AddClient(&store.Client{ID: "agent-2", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code", "refresh_token"}})
		for i, tc := range []struct {
			name string
			// replay runs before the first token is presented again: its
			// rotation answered r1, its retry within the interval r2. It
			// returns every answer of the family so far.
			replay func(t *testing.T, client, secret string, r1, r2 jsonResp) []jsonResp
		}{
			{"after the interval", func(t *testing.T, client, secret string, r1, r2 jsonResp) []jsonResp {
				clk.Advance(6 * time.Second) // 11 s after the rotation
				return []jsonResp{r1, r2}
			}},
			{"moved on", func(t *testing.T, client, secret string, r1, r2 jsonResp) []jsonResp {
				// The client refreshes with the first answer: it has moved
				// on, and the first token, still within its own interval,
				// is two rotations old.
				clk.Advance(time.Second)
				r3 := h.refresh(r1.body["refresh_token"].(string), client, secret)
				if r3.status != http.StatusOK {
					t.Fatalf("refreshing the first answer: %d %v", r3.status, r3.body)
				}
				clk.Advance(time.Second) // 7 s after the rotation
				return []jsonResp{r1, r2, r3}
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				client := fmt.Sprintf("agent-%d", i+3)
				secret, first := agentTokens(t, h, client)
				r1 := h.refresh(first, client, secret)
				if r1.status != http.StatusOK {
					t.Fatalf("refresh: %d %v", r1.status, r1.body)
				}
				// A retry 5 s later (the first answer was lost).
				clk.Advance(5 * time.Second)
				r2 := h.refresh(first, client, secret)
				if r2.status != http.StatusOK || r2.body["refresh_token"] == r1.body["refresh_token"] {
					t.Fatalf("retry within the interval: %d %v", r2.status, r2.body)
				}
				if evs := reusedWithin(h, client); len(evs) != 1 || evs[0].Details["grant_id"] == "" {
					t.Fatalf("refresh.reused_within_interval events = %+v", evs)
				}
				// Another client presenting the token gets nothing, even now.
				if r := h.refresh(first, "agent-2", other); r.status != http.StatusBadRequest || r.body["error"] != "invalid_grant" {
					t.Fatalf("another client within the interval: %d %v", r.status, r.body)
				}
				issued := tc.replay(t, client, secret, r1, r2)
				before := len(h.auditEvents("refresh.reuse_detected"))
				if r := h.refresh(first, client, secret); r.status != http.StatusBadRequest || r.body["error"] != "invalid_grant" {
					t.Fatalf("replay: %d %v", r.status, r.body)
				}
				if n := len(h.auditEvents("refresh.reuse_detected")) - before; n != 1 {
					t.Fatalf("%d refresh.reuse_detected events, want 1", n)
				}
				if n := len(reusedWithin(h, client)); n != 1 {
					t.Fatalf("%d refresh.reused_within_interval events after the replay, want still 1", n)
				}
				for _, r := range issued {
					if got := h.introspect(r.body["access_token"].(string), "notes-mcp", rs); got["active"] != false {
						t.Fatalf("an access token of the revoked family introspects %v", got)
					}
				}
				if r := h.refresh(issued[len(issued)-1].body["refresh_token"].(string), client, secret); r.status != http.StatusBadRequest {
					t.Fatalf("the family's newest refresh token after reuse: %d %v", r.status, r.body)
				}
			})
		}
	})
}

// reusedWithin returns the refresh.reused_within_interval events of client.
func reusedWithin(h *hub, client string) []*store.AuditEvent {
	var out []*store.AuditEvent
	for _, ev := range h.auditEvents("refresh.reused_within_interval") {
		if ev.ClientID == client {
			out = append(out, ev)
		}
	}
	return out
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
