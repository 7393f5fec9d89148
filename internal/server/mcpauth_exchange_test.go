package server_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/mcpauth"
)

// TestMCPAuthExchanger runs the public mcpauth.Exchanger against the real
// hub: the MCP server (client notes-mcp, linked to the notes resource)
// verifies alice's token from agent-1, exchanges it for a downstream
// resource, and the downstream verifier sees alice, the chain
// [notes-mcp, agent-1] and the narrowed scope; the hub's error codes reach
// the server typed.
func TestMCPAuthExchanger(t *testing.T) {
	h := newHub(t)
	ctx := context.Background()
	downstream := h.addSecondResource(t, "notes.read")
	agentSecret := h.AddClient(&store.Client{ID: "agent-1", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code"}})
	mcpSecret := h.AddClient(&store.Client{ID: "notes-mcp", GrantTypes: []string{"urn:ietf:params:oauth:grant-type:token-exchange"}})
	h.LinkResourceServer("notes-mcp")

	tok, err := h.codeFlow(h.Browser(), h.oauth2Config("agent-1", agentSecret, "notes.read", "notes.write"), []string{"notes.read", "notes.write"})
	if err != nil {
		t.Fatal(err)
	}
	va, err := mcpauth.NewVerifier(ctx, mcpauth.Config{Issuer: h.URL, Resource: h.Resource})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := va.Verify(ctx, tok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	ex, err := mcpauth.NewExchanger(ctx, mcpauth.ExchangerConfig{Issuer: h.URL, ClientID: "notes-mcp", ClientSecret: mcpSecret})
	if err != nil {
		t.Fatal(err)
	}
	out, err := ex.Exchange(ctx, ca.Token(), downstream, "notes.read")
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	vb, err := mcpauth.NewVerifier(ctx, mcpauth.Config{
		Issuer: h.URL, Resource: downstream, MaxDelegationDepth: 2, FirstActors: []string{"agent-1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	cb, err := vb.Verify(ctx, out.AccessToken)
	if err != nil {
		t.Fatalf("downstream refused the exchanged token: %v", err)
	}
	wantChain := []mcpauth.Actor{{Subject: "notes-mcp"}, {Subject: "agent-1"}}
	if cb.Subject != ca.Subject || cb.ClientID != "notes-mcp" || !slices.Equal(cb.Actors(), wantChain) ||
		!slices.Equal(cb.Scopes, []string{"notes.read"}) || cb.ExpiresAt.After(ca.ExpiresAt) {
		t.Errorf("downstream sees sub %q client %q actors %+v scopes %q exp %v (subject exp %v)",
			cb.Subject, cb.ClientID, cb.Actors(), cb.Scopes, cb.ExpiresAt, ca.ExpiresAt)
	}
	if again, err := ex.Exchange(ctx, ca.Token(), downstream, "notes.read"); err != nil || again.AccessToken != out.AccessToken {
		t.Errorf("second Exchange not served from the cache: %v", err)
	}
	// A server that accepts only agent-2's delegations refuses it.
	vOnly2, err := mcpauth.NewVerifier(ctx, mcpauth.Config{Issuer: h.URL, Resource: downstream, FirstActors: []string{"agent-2"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vOnly2.Verify(ctx, out.AccessToken); !errors.Is(err, mcpauth.ErrDelegationRefused) {
		t.Errorf("FirstActors agent-2: err = %v, want ErrDelegationRefused", err)
	}

	code := func(err error) string {
		xe, ok := errors.AsType[*mcpauth.ExchangeError](err)
		if !ok {
			return "not an ExchangeError: " + err.Error()
		}
		return xe.Code
	}
	// The exchanged token's audience is the downstream resource, not
	// notes-mcp's: notes-mcp may not exchange it (no confused deputy).
	if _, err := ex.Exchange(ctx, out.AccessToken, h.Resource); code(err) != "invalid_grant" {
		t.Errorf("exchanging a token for another audience: %v, want invalid_grant", err)
	}
	if _, err := ex.Exchange(ctx, ca.Token(), downstream, "notes.delete"); code(err) != "invalid_scope" {
		t.Errorf("widening scope: %v, want invalid_scope", err)
	}
	if _, err := ex.Exchange(ctx, ca.Token(), h.URL+"/unknown-mcp"); code(err) != "invalid_target" {
		t.Errorf("unknown resource: %v, want invalid_target", err)
	}
	bad, err := mcpauth.NewExchanger(ctx, mcpauth.ExchangerConfig{Issuer: h.URL, ClientID: "notes-mcp", ClientSecret: "wrong"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Exchange(ctx, ca.Token(), downstream); code(err) != "invalid_client" {
		t.Errorf("wrong secret: %v, want invalid_client", err)
	}
}
