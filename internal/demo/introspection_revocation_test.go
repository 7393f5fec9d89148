package demo_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/mcpauth"
)

// clientCredentialsToken gets an access token for resource from the real
// hub; an empty resource or scope is left out of the request (the client's
// default resource, its registered scopes).
func clientCredentialsToken(t *testing.T, h *servertest.Hub, id, secret, resource, scope string) string {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}}
	if resource != "" {
		form.Set("resource", resource)
	}
	if scope != "" {
		form.Set("scope", scope)
	}
	req, _ := http.NewRequest(http.MethodPost, h.URL+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.AccessToken == "" {
		t.Fatalf("token endpoint: %d %q %v", resp.StatusCode, body.Error, err)
	}
	return body.AccessToken
}

// TestIntrospectionAgainstHub runs mcpauth's introspection mode
// against the real hub (the mcpauth tests use only mcpauthtest): a token
// revoked at the hub's RFC 7009 endpoint is refused at once with a 401
// invalid_token challenge.
func TestIntrospectionAgainstHub(t *testing.T) {
	h := servertest.New(t)
	ctx := context.Background()
	agentSecret := h.AddClient(&store.Client{ID: "cron-agent", GrantTypes: []string{"client_credentials"}, Tags: []string{"cc:notes.read"}})
	rsSecret := h.AddClient(&store.Client{ID: "notes-rs", GrantTypes: []string{"client_credentials"}})
	h.LinkResourceServer("notes-rs")

	v, err := mcpauth.NewVerifier(ctx, mcpauth.Config{
		Issuer: h.URL, Resource: h.Resource,
		Introspection: &mcpauth.IntrospectionConfig{ClientID: "notes-rs", ClientSecret: rsSecret, CacheTTL: -1},
	})
	if err != nil {
		t.Fatal(err)
	}
	tok := clientCredentialsToken(t, h, "cron-agent", agentSecret, h.Resource, "notes.read")
	c, err := v.Verify(ctx, tok)
	if err != nil {
		t.Fatalf("fresh token: %v", err)
	}
	if !c.HasScopes("notes.read") || c.ClientID != "cron-agent" {
		t.Fatalf("claims = %+v", c)
	}

	form := url.Values{"token": {tok}}
	req, _ := http.NewRequest(http.MethodPost, h.URL+"/revoke", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("cron-agent", agentSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}

	if _, err := v.Verify(ctx, tok); !errors.Is(err, mcpauth.ErrTokenRevoked) {
		t.Fatalf("revoked token: err = %v, want ErrTokenRevoked", err)
	}
	rec := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, h.Resource, strings.NewReader(`{}`))
	r.Header.Set("Authorization", "Bearer "+tok)
	mcpauth.Middleware(v, mcpauth.MiddlewareOptions{})(http.NotFoundHandler()).ServeHTTP(rec, r)
	cs, err := oauthex.ParseWWWAuthenticate(rec.Result().Header.Values("WWW-Authenticate"))
	if rec.Code != http.StatusUnauthorized || err != nil || len(cs) != 1 || cs[0].Params["error"] != "invalid_token" {
		t.Fatalf("revoked token through the middleware: %d %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
}
