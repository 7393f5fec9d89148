package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/clients"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
)

// TestCLIAndDynamicRegistrationRefuseAlike: the same bad metadata, given to
// `clients add` as flags and to /register as JSON, is refused with the same
// error code and description, because both go through clients.Register.
func TestCLIAndDynamicRegistrationRefuseAlike(t *testing.T) {
	h := servertest.New(t)
	tests := []struct {
		name string
		spec clientSpec
		dcr  map[string]any
	}{
		{
			name: "http redirect off loopback",
			spec: clientSpec{name: "X", redirectURIs: []string{"http://agent.example.test/cb"}},
			dcr:  map[string]any{"client_name": "X", "redirect_uris": []string{"http://agent.example.test/cb"}, "grant_types": []string{"authorization_code", "refresh_token"}},
		},
		{
			name: "a scope no resource offers",
			spec: clientSpec{name: "X", grantTypes: []string{"client_credentials"}, scopes: []string{"mail.send"}},
			dcr:  map[string]any{"client_name": "X", "grant_types": []string{"client_credentials"}, "scope": "mail.send"},
		},
		{
			name: "a grant the token endpoint does not serve",
			spec: clientSpec{name: "X", grantTypes: []string{deviceCodeGrant}},
			dcr:  map[string]any{"client_name": "X", "grant_types": []string{deviceCodeGrant}},
		},
		{
			name: "implicit",
			spec: clientSpec{name: "X", grantTypes: []string{"implicit"}, redirectURIs: []string{"https://a.example.test/cb"}},
			dcr:  map[string]any{"client_name": "X", "grant_types": []string{"implicit"}, "redirect_uris": []string{"https://a.example.test/cb"}},
		},
		{
			name: "a public client with client credentials",
			spec: clientSpec{name: "X", authMethod: "none", grantTypes: []string{"client_credentials"}},
			dcr:  map[string]any{"client_name": "X", "token_endpoint_auth_method": "none", "grant_types": []string{"client_credentials"}},
		},
		{
			name: "private_key_jwt without keys",
			spec: clientSpec{name: "X", authMethod: "private_key_jwt"},
			dcr:  map[string]any{"client_name": "X", "token_endpoint_auth_method": "private_key_jwt", "grant_types": []string{"client_credentials"}},
		},
		{
			name: "a control character in the name",
			spec: clientSpec{name: "X\x07", grantTypes: []string{"client_credentials"}},
			dcr:  map[string]any{"client_name": "X\x07", "grant_types": []string{"client_credentials"}},
		},
	}
	ctx := context.Background()
	e, err := policy.New(ctx, policy.Options{Store: h.Store})
	if err != nil {
		t.Fatal(err)
	}
	registrar, err := clients.New(clients.Options{Store: h.Store, Policy: e})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg, err := clientRegistration(tc.spec)
			if err != nil {
				t.Fatalf("flags refused before registration: %v", err)
			}
			_, err = registrar.Register(ctx, reg)
			var oe *oauth.Error
			if !errors.As(err, &oe) {
				t.Fatalf("CLI registration: %v, want an *oauth.Error", err)
			}
			if got := registrationError(err, "").Error(); got != "invalid client: "+oe.Description {
				t.Errorf("CLI says %q", got)
			}
			b, _ := json.Marshal(tc.dcr)
			resp, err := http.Post(h.URL+"/register", "application/json", bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				Error       string `json:"error"`
				Description string `json:"error_description"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusBadRequest || body.Error != oe.Code || body.Description != oe.Description {
				t.Errorf("DCR: %d %s %q; CLI: %s %q", resp.StatusCode, body.Error, body.Description, oe.Code, oe.Description)
			}
		})
	}
	if evs, err := h.Store.ListAudit(ctx, store.AuditFilter{Type: audit.ClientRegistered}); err != nil || len(evs) != 0 {
		t.Errorf("refused registrations wrote %d events (%v)", len(evs), err)
	}
}

// TestSeedDemoIsAudited: the demo registers its MCP server's client through
// the registration path, audited as the demo's doing, and a later run's new
// secret is audited too.
func TestSeedDemoIsAudited(t *testing.T) {
	h := servertest.New(t)
	ctx := context.Background()
	since := time.Now().Add(-time.Minute)
	for run := range 2 {
		if _, _, err := seedDemo(ctx, h.Store, "http://127.0.0.1:9/mcp"); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
	}
	c, err := h.Store.GetClient(ctx, store.DefaultTenant, demoServerClientID)
	// Token exchange only: the demo MCP server retrieves the calendar
	// credential from the vault with it.
	if err != nil || c.Public() || !slices.Equal(c.GrantTypes, []string{oauth.GrantTokenExchange}) || c.RegistrationMethod != store.RegistrationManual {
		t.Fatalf("demo server client %+v, %v", c, err)
	}
	evs, err := h.Store.ListAudit(ctx, store.AuditFilter{ClientID: demoServerClientID, Since: since})
	if err != nil || len(evs) != 2 {
		t.Fatalf("events of the demo server client: %d, %v", len(evs), err)
	}
	// Newest first.
	for i, want := range []string{audit.ClientUpdated, audit.ClientRegistered} {
		ev := evs[i]
		if ev.Type != want || ev.Details["actor"] != audit.ActorDemo || audit.Check(ev) != nil {
			t.Errorf("event %d = %+v, want %s by the demo", i, ev, want)
		}
	}
	if evs[0].Details["change"] != audit.ChangeSecret {
		t.Errorf("second run recorded %v", evs[0].Details)
	}
}

// deviceCodeGrant is a grant type the token endpoint does not serve.
const deviceCodeGrant = "urn:ietf:params:oauth:grant-type:device_code"
