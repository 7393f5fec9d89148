package server_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/store"
)

// TestCIMDDomainTrustEndToEnd: the hub's policy sees a CIMD agent's
// domain_trust from the domains an administrator set, re-read with the
// policy set (a moving clock drives the engine's refresh). Allowed by
// default, the agent is never offered the sensitive notes.delete and the
// consent screen preselects a self-registered agent's one day; once its
// domain is trusted the screen offers notes.delete, preselects the
// resource's default as for a "trusted" tag, and the token carries it;
// once blocked, its refresh yields nothing.
func TestCIMDDomainTrustEndToEnd(t *testing.T) {
	clk := newFakeClock()
	agents := newCIMDAgents(t)
	var engine *policy.Engine
	h := newHub(t, agents.option, func(cfg *server.Config) {
		e, err := policy.New(context.Background(), policy.Options{Store: cfg.Store, Domains: cfg.Store, Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Policy, engine = e, e
	})
	const clientID = "https://agents.example.com/notes/client.json"
	agents.add(h, clientID, "Notes Agent", "http://127.0.0.1/callback")
	conf := h.cimdConf(clientID, "http://127.0.0.1:41000/callback")
	conf.Scopes = []string{"notes.read", "notes.delete"}
	ctx := context.Background()
	setTrust := func(trust string) {
		t.Helper()
		if err := h.Store.PutDomain(ctx, &store.Domain{TenantID: store.DefaultTenant, Pattern: "*.example.com", Trust: trust, CreatedAt: time.Now(), UpdatedAt: time.Now()}, nil); err != nil {
			t.Fatal(err)
		}
		clk.Advance(3 * time.Second) // past the engine's refresh interval
		// As agentid domains add does: a client whose ceiling was decided
		// under the old trust gets it recomputed.
		if _, err := engine.RecomputeCeilings(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}

	f := h.startFlow(h.Browser(), conf)
	if strings.Contains(f.page.Body, `value="notes.delete"`) || !strings.Contains(f.page.Body, `value="notes.read"`) {
		t.Fatalf("allowed domain: consent page offers notes.delete or not notes.read:\n%s", f.page.Body)
	}
	if _, checked := durations(f.page.Body); checked != "1d" {
		t.Errorf("allowed domain: preselected %q, want a self-registered agent's 1d", checked)
	}

	setTrust(store.DomainTrusted)
	f = h.startFlow(h.Browser(), conf)
	if !strings.Contains(f.page.Body, `value="notes.delete"`) {
		t.Fatalf("trusted domain: consent page does not offer notes.delete:\n%s", f.page.Body)
	}
	if _, checked := durations(f.page.Body); checked != "30d" {
		t.Errorf("trusted domain: preselected %q, want the resource's default 30d (as for a trusted tag)", checked)
	}
	tok := f.finish(f.decide("allow", conf.Scopes, "1d"))
	if got := h.claims(tok.AccessToken)["scope"]; got != "notes.read notes.delete" {
		t.Fatalf("trusted domain: token scope %v", got)
	}

	setTrust(store.DomainBlocked)
	res := h.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {clientID}}, clientID, "")
	if res.status == http.StatusOK {
		t.Fatalf("blocked domain: refresh succeeded: %v", res.body)
	}
}
