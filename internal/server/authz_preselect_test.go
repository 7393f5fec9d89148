package server_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/store"
)

// TestConsentPreselectByTrust: the consent screen preselects the
// resource's default only for agents an administrator vouched for; one day
// for a self-registered agent, one hour for a step-up to a sensitive scope,
// both configurable, and never more than the resource's maximum. A form
// sent without a duration gets the same preselection.
func TestConsentPreselectByTrust(t *testing.T) {
	tests := []struct {
		name    string
		method  string   // registration method
		tags    []string // admin tags
		granted []string // consent already in force, for a step-up
		scopes  []string // asked for now
		maxTTL  time.Duration
		defTTL  time.Duration
		cfg     server.ConsentPreselect
		want    string
		wantTTL time.Duration
	}{
		{name: "admin-registered: the resource's default", method: store.RegistrationManual, scopes: []string{"notes.read"}, want: "30d", wantTTL: 30 * 24 * time.Hour},
		{name: "admin-registered: the resource's own default", method: store.RegistrationManual, scopes: []string{"notes.read"}, defTTL: time.Hour, want: "1h", wantTTL: time.Hour},
		{name: "self-registered: one day", method: store.RegistrationDCR, scopes: []string{"notes.read"}, want: "1d", wantTTL: 24 * time.Hour},
		{name: "client ID metadata document: one day", method: store.RegistrationCIMD, scopes: []string{"notes.read"}, want: "1d", wantTTL: 24 * time.Hour},
		{name: "self-registered, tagged trusted: the resource's default", method: store.RegistrationDCR, tags: []string{"trusted"}, scopes: []string{"notes.read"}, want: "30d", wantTTL: 30 * 24 * time.Hour},
		{name: "self-registered under a shorter resource default", method: store.RegistrationDCR, scopes: []string{"notes.read"}, defTTL: time.Hour, want: "1h", wantTTL: time.Hour},
		{name: "self-registered, never above the maximum", method: store.RegistrationDCR, scopes: []string{"notes.read"}, maxTTL: 12 * time.Hour, want: "1h", wantTTL: time.Hour},
		{name: "self-registered, configured", method: store.RegistrationDCR, scopes: []string{"notes.read"}, cfg: server.ConsentPreselect{SelfRegistered: 2 * time.Hour}, want: "1h", wantTTL: time.Hour},
		{name: "step-up to a sensitive scope: one hour", method: store.RegistrationManual, granted: []string{"notes.read"}, scopes: []string{"notes.read", "notes.delete"}, want: "1h", wantTTL: time.Hour},
		{name: "step-up to a sensitive scope, configured", method: store.RegistrationManual, granted: []string{"notes.read"}, scopes: []string{"notes.read", "notes.delete"}, cfg: server.ConsentPreselect{StepUpSensitive: 30 * time.Minute}, want: "session", wantTTL: 10 * time.Minute},
		{name: "step-up to a plain scope: the resource's default", method: store.RegistrationManual, granted: []string{"notes.read"}, scopes: []string{"notes.read", "notes.write"}, want: "30d", wantTTL: 30 * 24 * time.Hour},
		{name: "first request with a sensitive scope is not a step-up", method: store.RegistrationManual, scopes: []string{"notes.read", "notes.delete"}, want: "30d", wantTTL: 30 * 24 * time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			cfg := tc.cfg
			h := newHub(t, withClock(clk), func(c *server.Config) { c.ConsentPreselect = cfg })
			ctx := context.Background()
			if tc.maxTTL > 0 || tc.defTTL > 0 {
				res, err := h.Store.GetResource(ctx, store.DefaultTenant, h.Resource)
				if err != nil {
					t.Fatal(err)
				}
				res.ConsentMaxTTL, res.ConsentDefaultTTL = tc.maxTTL, tc.defTTL
				if err := h.Store.UpdateResource(ctx, res, nil); err != nil {
					t.Fatal(err)
				}
			}
			secret := h.AddClient(&store.Client{ID: "agent-1", Name: "Notes Agent", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code", "refresh_token"}, RegistrationMethod: tc.method, Tags: tc.tags})
			b := h.Browser()
			if tc.granted != nil {
				if _, err := h.codeFlow(b, h.oauth2Config("agent-1", secret, tc.granted...), tc.granted); err != nil {
					t.Fatal(err)
				}
			}
			f := h.startFlow(b, h.oauth2Config("agent-1", secret, tc.scopes...))
			offered, checked := durations(f.page.Body)
			if checked != tc.want {
				t.Fatalf("preselected %q of %v, want %q", checked, offered, tc.want)
			}
			f.finish(f.decide("allow", tc.scopes, ""))
			newScope := tc.scopes[len(tc.scopes)-1]
			g := h.grants("u-alice", "agent-1")[newScope]
			if g == nil || !g.ExpiresAt.Equal(clk.Now().Add(tc.wantTTL)) {
				t.Fatalf("consent for %s = %+v, want %v from now (a form without a duration takes the preselection)", newScope, g, tc.wantTTL)
			}
			if tc.maxTTL > 0 && slices.ContainsFunc(offered, func(o string) bool { return o == "1d" || o == "30d" || o == "revoke" }) {
				t.Fatalf("offered %v above the maximum %v", offered, tc.maxTTL)
			}
		})
	}
}
