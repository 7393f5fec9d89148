package server_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// TestIntrospectionAudience pins who may introspect what (RFC 7662 §4): an
// access token is shown to the client it was issued to and to the resource
// server of its audience; a refresh token to its own client only; every
// other confidential client — anyone can become one by registering — gets
// exactly {"active":false}.
func TestIntrospectionAudience(t *testing.T) {
	h := newHub(t)
	agent := h.AddClient(&store.Client{ID: "agent", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code", "refresh_token"}})
	rs := h.AddClient(&store.Client{ID: "notes-mcp", GrantTypes: []string{"client_credentials"}})
	h.LinkResourceServer("notes-mcp")
	stranger := h.AddClient(&store.Client{ID: "stranger", GrantTypes: []string{"client_credentials"}})
	otherRS := h.AddClient(&store.Client{ID: "calendar-mcp", GrantTypes: []string{"client_credentials"}})
	other := h.addSecondResource(t, "calendar.read")
	res, err := h.Store.GetResource(context.Background(), store.DefaultTenant, other)
	if err != nil {
		t.Fatal(err)
	}
	res.ClientID = "calendar-mcp"
	if err := h.Store.UpdateResource(context.Background(), res, nil); err != nil {
		t.Fatal(err)
	}
	bot := h.AddClient(&store.Client{ID: "bot", GrantTypes: []string{"client_credentials"}, Tags: []string{"cc:notes.read"}, DefaultResource: h.Resource})

	tok, err := h.codeFlow(h.Browser(), h.oauth2Config("agent", agent, "notes.read"), []string{"notes.read"})
	if err != nil {
		t.Fatal(err)
	}
	cc := h.tokenRequest(url.Values{"grant_type": {"client_credentials"}}, "bot", bot).body["access_token"].(string)

	type caller struct{ id, secret string }
	var (
		owner    = caller{"agent", agent}
		server   = caller{"notes-mcp", rs}
		outsider = caller{"stranger", stranger}
		otherSrv = caller{"calendar-mcp", otherRS}
		botSelf  = caller{"bot", bot}
	)
	for _, tc := range []struct {
		name       string
		token      string
		by         caller
		wantActive bool
	}{
		{"access token, its own client", tok.AccessToken, owner, true},
		{"access token, the resource server of its aud", tok.AccessToken, server, true},
		{"access token, an unrelated confidential client", tok.AccessToken, outsider, false},
		{"access token, the server of another resource", tok.AccessToken, otherSrv, false},
		{"client-credentials token, its own client", cc, botSelf, true},
		{"client-credentials token, the resource server", cc, server, true},
		{"client-credentials token, another client", cc, owner, false},
		{"refresh token, its own client", tok.RefreshToken, owner, true},
		{"refresh token, the resource server of its grant", tok.RefreshToken, server, false},
		{"refresh token, an unrelated client", tok.RefreshToken, outsider, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := h.introspect(tc.token, tc.by.id, tc.by.secret)
			if tc.wantActive {
				if got["active"] != true {
					t.Fatalf("introspection = %v, want active", got)
				}
				return
			}
			if len(got) != 1 || got["active"] != false {
				t.Fatalf("introspection = %v, want exactly {\"active\":false}", got)
			}
		})
	}
}

// TestIntrospectionRelink: moving a resource to another server client
// moves who may introspect its tokens (after the resource cache's TTL).
func TestIntrospectionRelink(t *testing.T) {
	clk := newFakeClock()
	h := newHub(t, withClock(clk))
	bot := h.AddClient(&store.Client{ID: "bot", GrantTypes: []string{"client_credentials"}, Tags: []string{"cc:notes.read"}, DefaultResource: h.Resource})
	a := h.AddClient(&store.Client{ID: "rs-a", GrantTypes: []string{"client_credentials"}})
	b := h.AddClient(&store.Client{ID: "rs-b", GrantTypes: []string{"client_credentials"}})
	h.LinkResourceServer("rs-a")
	at := h.tokenRequest(url.Values{"grant_type": {"client_credentials"}}, "bot", bot).body["access_token"].(string)
	if got := h.introspect(at, "rs-a", a); got["active"] != true {
		t.Fatalf("linked server: %v", got)
	}
	h.LinkResourceServer("rs-b")
	clk.Advance(3 * time.Second)
	if got := h.introspect(at, "rs-a", a); got["active"] != false {
		t.Fatalf("formerly linked server: %v", got)
	}
	if got := h.introspect(at, "rs-b", b); got["active"] != true {
		t.Fatalf("newly linked server: %v", got)
	}
}
