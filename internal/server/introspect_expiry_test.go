package server_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
)

// TestIntrospectionExpiryRecordedToken: a token the hub recorded, judged
// by its record's digest and not its signature, is active up to the last
// second before its exp and exactly {"active":false} from exp on (RFC 7662
// §2.2), on both backends, with a clock that moves.
func TestIntrospectionExpiryRecordedToken(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			clk := &testClock{}
			var h *hub
			opt := func(c *server.Config) { c.Now = clk.Now }
			if backend == "sqlite" {
				h = newHub(t, opt)
			} else {
				h = &hub{servertest.NewOn(t, openPostgresStore(t), opt)}
			}
			bot := h.AddClient(&store.Client{ID: "bot", GrantTypes: []string{"client_credentials"}, Tags: []string{"cc:notes.read"}, DefaultResource: h.Resource})
			r := h.tokenRequest(url.Values{"grant_type": {"client_credentials"}}, "bot", bot)
			if r.status != 200 {
				t.Fatalf("client credentials: %d %v", r.status, r.body)
			}
			at := r.body["access_token"].(string)
			got := h.introspect(at, "bot", bot)
			exp, ok := got["exp"].(float64)
			if got["active"] != true || !ok {
				t.Fatalf("fresh token: %v, want active with exp", got)
			}
			before := h.Keys.SignatureChecks()
			clk.Advance(time.Unix(int64(exp), 0).Add(-time.Second).Sub(clk.Now()))
			if got := h.introspect(at, "bot", bot); got["active"] != true {
				t.Fatalf("a second before exp: %v, want active", got)
			}
			clk.Advance(time.Second)
			if got := h.introspect(at, "bot", bot); len(got) != 1 || got["active"] != false {
				t.Fatalf("at exp: %v, want exactly {\"active\":false}", got)
			}
			clk.Advance(time.Hour)
			if got := h.introspect(at, "bot", bot); len(got) != 1 || got["active"] != false {
				t.Fatalf("an hour after exp: %v, want exactly {\"active\":false}", got)
			}
			if n := h.Keys.SignatureChecks() - before; n != 0 {
				t.Errorf("%d signature checks: the recorded path was not the one tested", n)
			}
		})
	}
}
