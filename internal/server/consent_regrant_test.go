package server_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/agentid/agentid/internal/audit"
)

// TestConsentExpiryAuditedOnRegrant: consent that ran out unnoticed by any
// token request is recorded as expired when the person grants it again.
func TestConsentExpiryAuditedOnRegrant(t *testing.T) {
	consentBackends(t, func(t *testing.T, h *hub, clk *fakeClock) {
		conf, _ := addAgent(h)
		conf.Scopes = []string{"notes.read"}
		b := h.Browser()
		f := h.startFlow(b, conf)
		f.finish(f.decide("allow", conf.Scopes, "1h"))
		clk.Advance(2 * time.Hour)
		f = h.startFlow(b, conf)
		f.finish(f.decide("allow", conf.Scopes, "1h"))
		if ev := h.auditEvents(audit.ConsentExpired); len(ev) != 1 || !slices.Equal(ev[0].Scopes, []string{"notes.read"}) {
			t.Fatalf("consent.expired events = %v, want one for notes.read", ev)
		}
	})
}

// TestConsentUntickOnPromptConsent: unticking an already granted scope on
// a prompt=consent screen takes it back.
func TestConsentUntickOnPromptConsent(t *testing.T) {
	consentBackends(t, func(t *testing.T, h *hub, _ *fakeClock) {
		conf, secret := addAgent(h)
		conf.Scopes = []string{"notes.read", "notes.write"}
		b := h.Browser()
		f := h.startFlow(b, conf)
		first := f.finish(f.decide("allow", conf.Scopes, "revoke"))
		f = h.startFlow(b, conf, oauth2.SetAuthURLParam("prompt", "consent"))
		second := f.finish(f.decide("allow", []string{"notes.read"}, "revoke"))
		if got := h.claims(second.AccessToken)["scope"]; got != "notes.read" {
			t.Fatalf("token after unticking notes.write = %q", got)
		}
		if ev := h.auditEvents(audit.ConsentRevoked); len(ev) != 1 || !slices.Equal(ev[0].Scopes, []string{"notes.write"}) {
			t.Fatalf("consent.revoked events = %v", ev)
		}
		// The earlier token carrying notes.write is revoked with it.
		if h.introspect(first.AccessToken, conf.ClientID, secret)["active"] != false {
			t.Fatal("the access token carrying the withdrawn scope is still active")
		}
		f = h.startFlow(b, conf)
		if f.page.Location != nil {
			t.Fatal("notes.write withdrawn: the screen should ask again for it")
		}
	})
}

// TestConsentExpirySweep: consent whose agent never comes back is recorded
// as expired by the periodic sweep, once.
func TestConsentExpirySweep(t *testing.T) {
	consentBackends(t, func(t *testing.T, h *hub, clk *fakeClock) {
		conf, _ := addAgent(h)
		conf.Scopes = []string{"notes.read", "notes.write"}
		f := h.startFlow(h.Browser(), conf)
		f.finish(f.decide("allow", conf.Scopes, "1h"))
		ctx := context.Background()
		if err := h.Server.SweepExpiredConsent(ctx); err != nil {
			t.Fatal(err)
		}
		if ev := h.auditEvents(audit.ConsentExpired); len(ev) != 0 {
			t.Fatalf("live consent swept: %v", ev)
		}
		clk.Advance(2 * time.Hour)
		for range 2 {
			if err := h.Server.SweepExpiredConsent(ctx); err != nil {
				t.Fatal(err)
			}
		}
		ev := h.auditEvents(audit.ConsentExpired)
		if len(ev) != 1 || !slices.Equal(ev[0].Scopes, []string{"notes.read", "notes.write"}) || ev[0].Details["noticed_by"] != "sweep" {
			t.Fatalf("consent.expired events = %+v, want one for both scopes", ev)
		}
	})
}
