package server_test

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/vault"
	"github.com/agentid/agentid/internal/vault/vaulttest"
)

// TestWireRetrieval pins credential retrieval on the wire, like TestWire:
// testdata/wire/token_exchange_connection.txtar. Regenerate with
// go test ./internal/server -run TestWireRetrieval -update.
func TestWireRetrieval(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	h := newHub(t, withClock(clk))
	w := newWireRecorder(t, h)
	w.clock = clk
	agentSecret := h.AddClient(&store.Client{ID: "agent", RedirectURIs: []string{redirectURI}, GrantTypes: []string{oauth.GrantAuthorizationCode}})
	mcpSecret := h.AddClient(&store.Client{ID: "notes-mcp", GrantTypes: []string{grantExchange}})
	w.secret(mcpSecret, "notes-mcp secret")
	h.LinkResourceServer("notes-mcp")

	cal := vaulttest.New(t, vaulttest.Options{Now: clk.Now, Scopes: []string{"calendar.read", "calendar.write"}})
	prov, err := cal.StoreProvider(h.Vault, store.DefaultTenant, "calendar")
	if err != nil {
		t.Fatal(err)
	}
	prov.CreatedAt, prov.UpdatedAt = time.Now(), time.Now()
	if err := h.Store.CreateProvider(ctx, prov, nil); err != nil {
		t.Fatal(err)
	}
	res, err := h.Store.GetResource(ctx, store.DefaultTenant, h.Resource)
	if err != nil {
		t.Fatal(err)
	}
	res.Providers = []store.ResourceProvider{calendarLink}
	if err := h.Store.UpdateResource(ctx, res, nil); err != nil {
		t.Fatal(err)
	}
	tok, err := h.codeFlow(h.Browser(), h.oauth2Config("agent", agentSecret, "notes.read"), []string{"notes.read"})
	if err != nil {
		t.Fatal(err)
	}
	w.secret(tok.AccessToken, "the agent's access token")
	form := subjectForm(tok.AccessToken, "resource", h.URL+"/providers/calendar", "scope", "calendar.read")
	form.Set("grant_type", grantExchange)

	// No connection yet: connection_required.
	w.do(http.MethodPost, "/token", form, "notes-mcp:"+mcpSecret)
	// The person connects (not recorded); the retrieval answers the
	// provider's token.
	ar, err := h.Vault.AuthCodeURL(prov, h.URL+"/connections/callback", []string{"calendar.read"})
	if err != nil {
		t.Fatal(err)
	}
	code, _, err := cal.Authorize(ctx, ar.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Vault.CompleteAuth(ctx, audit.Meta{TenantID: store.DefaultTenant, Time: clk.Now()}, prov,
		vault.Owner{Kind: store.OwnerUser, ID: "u-alice"}, code, ar.Verifier, h.URL+"/connections/callback", ar.Scopes...); err != nil {
		t.Fatal(err)
	}
	w.do(http.MethodPost, "/token", form, "notes-mcp:"+mcpSecret)
	// A provider scope the token's notes.read does not reach.
	form.Set("scope", "calendar.write")
	w.do(http.MethodPost, "/token", form, "notes-mcp:"+mcpSecret)
	w.check(filepath.Join("testdata", "wire", "token_exchange_connection.txtar"),
		"Credential retrieval: the MCP server (notes-mcp, the resource server of the agent's token, HTTP Basic) exchanges the agent's access token (RFC 8693) for the person's calendar credential, naming the provider as the resource <issuer>/providers/calendar. Without a connection: connection_required (an RFC 6749 §8.5 extension error) with the connect_uri the person opens; once connected: the provider's access token itself (issued_token_type access_token, token_type as the provider said, expires_in, scope, provider, connection_id), nothing minted; then a provider scope beyond what notes.read reaches (invalid_scope).")
}
