package server_test

import (
	"context"
	"net/url"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/agentid/agentid/internal/store"
)

// TestGoOIDCInterop: a strict third-party client library discovers the hub
// through OpenID discovery (issuer must match exactly) and verifies an
// access token against the published JWKS, with aud = the resource.
func TestGoOIDCInterop(t *testing.T) {
	h := newHub(t)
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, h.URL)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	if provider.Endpoint().TokenURL != h.URL+"/token" || provider.Endpoint().AuthURL != h.URL+"/authorize" {
		t.Fatalf("endpoints = %+v", provider.Endpoint())
	}
	secret := h.AddClient(&store.Client{ID: "bot", GrantTypes: []string{"client_credentials"}, Tags: []string{"cc:notes.read"}, DefaultResource: h.Resource})
	r := h.post("/token", url.Values{"grant_type": {"client_credentials"}}, "bot", secret)
	at, _ := r.body["access_token"].(string)
	if at == "" {
		t.Fatalf("token: %v", r.body)
	}
	v := provider.Verifier(&oidc.Config{ClientID: h.Resource, SupportedSigningAlgs: []string{oidc.ES256}})
	tok, err := v.Verify(ctx, at)
	if err != nil {
		t.Fatalf("go-oidc rejects the access token: %v", err)
	}
	if tok.Subject != "bot" || tok.Issuer != h.URL {
		t.Fatalf("verified claims: sub=%q iss=%q", tok.Subject, tok.Issuer)
	}
	other := provider.Verifier(&oidc.Config{ClientID: "https://other.example/mcp", SupportedSigningAlgs: []string{oidc.ES256}})
	if _, err := other.Verify(ctx, at); err == nil {
		t.Fatal("a token for another audience verified")
	}
}
