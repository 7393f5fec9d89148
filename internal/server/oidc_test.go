package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/server/servertest"
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

// oidcSignIn runs the code flow as an OpenID Connect relying party with
// x/oauth2 and go-oidc, with the scopes given and a nonce.
func (h *hub) oidcSignIn(t *testing.T, clientID string, scopes ...string) (*oidc.Provider, *oauth2.Config, *oauth2.Token) {
	t.Helper()
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, h.URL)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	secret := h.AddClient(&store.Client{ID: clientID, Name: "Notes Agent", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code", "refresh_token"}})
	conf := &oauth2.Config{ClientID: clientID, ClientSecret: secret, RedirectURL: redirectURI, Endpoint: provider.Endpoint(), Scopes: scopes}
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oidc.Nonce("n-0S6_WzA2Mj"), oauth2.SetAuthURLParam("resource", h.Resource))
	back := h.Browser().Authorize(authURL, []string{"notes.read"})
	if e := back.Query().Get("error"); e != "" {
		t.Fatalf("authorize: %s", back)
	}
	tok, err := conf.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	return provider, conf, tok
}

// person are the profile and email claims of the test user.
type person struct {
	Name              string `json:"name"`
	PreferredUsername string `json:"preferred_username"`
	Email             string `json:"email"`
	EmailVerified     bool   `json:"email_verified"`
}

var alice = person{servertest.TestUserName, servertest.TestUser, servertest.TestUserEmail, true}

// TestOIDCSignIn: go-oidc as a relying party through the real code flow
// verifies the ID token (signature, iss, aud, exp), its nonce and at_hash,
// reads auth_time, acr and amr, and calls /userinfo; a refresh returns a
// new ID token keeping auth_time, without nonce.
func TestOIDCSignIn(t *testing.T) {
	h := newHub(t)
	ctx := context.Background()
	provider, conf, tok := h.oidcSignIn(t, "rp-1", oidc.ScopeOpenID, "profile", "email", "notes.read")
	if tok.Extra("scope") != "openid profile email notes.read" {
		t.Fatalf("scope = %v", tok.Extra("scope"))
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		t.Fatal("no id_token")
	}
	v := provider.Verifier(&oidc.Config{ClientID: "rp-1", SupportedSigningAlgs: []string{oidc.ES256}})
	idt, err := v.Verify(ctx, raw)
	if err != nil {
		t.Fatalf("go-oidc rejects the ID token: %v", err)
	}
	if idt.Subject != "u-alice" || idt.Issuer != h.URL || idt.Nonce != "n-0S6_WzA2Mj" || idt.AccessTokenHash == "" {
		t.Fatalf("ID token: %+v", idt)
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		t.Fatalf("at_hash: %v", err)
	}
	if err := idt.VerifyAccessToken(tok.AccessToken + "x"); err == nil {
		t.Fatal("at_hash matches another access token")
	}
	var c struct {
		AuthTime int64    `json:"auth_time"`
		ACR      string   `json:"acr"`
		AMR      []string `json:"amr"`
		person
	}
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	if c.AuthTime == 0 || c.ACR == "" || !slices.Equal(c.AMR, []string{"pwd"}) {
		t.Fatalf("claims: %+v", c)
	}
	if c.person != alice {
		t.Fatalf("ID token profile and email: %+v, want %+v", c.person, alice)
	}
	// The ID token is not an access token: its typ is JWT, not at+jwt.
	if _, err := h.Keys.Verify(raw, h.URL); err == nil {
		t.Fatal("the hub accepts an ID token as an access token")
	}

	ui, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	var profile person
	if err := ui.Claims(&profile); err != nil {
		t.Fatal(err)
	}
	if ui.Subject != "u-alice" || profile != alice || ui.Email != servertest.TestUserEmail || !ui.EmailVerified {
		t.Fatalf("userinfo: sub=%q %+v", ui.Subject, profile)
	}
	// POST works too, with the token in the header or in the form body
	// (RFC 6750 §2.1, §2.2), but not in both.
	for _, tc := range []struct {
		name, header, body string
		status             int
	}{
		{"header", "Bearer " + tok.AccessToken, "", http.StatusOK},
		{"body", "", url.Values{"access_token": {tok.AccessToken}}.Encode(), http.StatusOK},
		{"both", "Bearer " + tok.AccessToken, url.Values{"access_token": {tok.AccessToken}}.Encode(), http.StatusBadRequest},
		{"body twice", "", "access_token=" + tok.AccessToken + "&access_token=" + tok.AccessToken, http.StatusBadRequest},
		{"body, bad token", "", url.Values{"access_token": {"x" + tok.AccessToken}}.Encode(), http.StatusUnauthorized},
	} {
		req, _ := http.NewRequest(http.MethodPost, h.URL+"/userinfo", strings.NewReader(tc.body))
		if tc.header != "" {
			req.Header.Set("Authorization", tc.header)
		}
		if tc.body != "" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if resp.StatusCode != tc.status || (tc.status == http.StatusOK && m["email"] != servertest.TestUserEmail) {
			t.Fatalf("POST /userinfo, token in %s: %d %v", tc.name, resp.StatusCode, m)
		}
	}

	// Refresh: a new ID token, same auth_time, no nonce (OIDC Core §12.2).
	tok.Expiry = time.Now().Add(-time.Minute)
	next, err := conf.TokenSource(ctx, tok).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	raw2, _ := next.Extra("id_token").(string)
	if raw2 == "" {
		t.Fatal("no id_token on refresh")
	}
	idt2, err := v.Verify(ctx, raw2)
	if err != nil {
		t.Fatalf("refreshed ID token: %v", err)
	}
	var c2 struct {
		AuthTime int64 `json:"auth_time"`
	}
	_ = idt2.Claims(&c2)
	if idt2.Subject != "u-alice" || idt2.Nonce != "" || c2.AuthTime != c.AuthTime {
		t.Fatalf("refreshed ID token: %+v auth_time %d", idt2, c2.AuthTime)
	}
	if err := idt2.VerifyAccessToken(next.AccessToken); err != nil {
		t.Fatalf("refreshed at_hash: %v", err)
	}
}

// TestOIDCRefusals: no openid, no ID token and no userinfo; a bad token
// is 401 invalid_token; no token is a bare 401 challenge.
func TestOIDCRefusals(t *testing.T) {
	h := newHub(t)
	_, _, plain := h.oidcSignIn(t, "rp-plain", "notes.read")
	if plain.Extra("id_token") != nil {
		t.Fatalf("id_token without openid: %v", plain.Extra("id_token"))
	}
	_, _, signedIn := h.oidcSignIn(t, "rp-oidc", oidc.ScopeOpenID, "notes.read")
	for _, tc := range []struct {
		name, auth string
		status     int
		errCode    string
	}{
		{"no openid scope", "Bearer " + plain.AccessToken, http.StatusForbidden, "insufficient_scope"},
		{"bad token", "Bearer " + signedIn.AccessToken[:len(signedIn.AccessToken)-4] + "AAAA", http.StatusUnauthorized, "invalid_token"},
		{"garbage", "Bearer x.y.z", http.StatusUnauthorized, "invalid_token"},
		{"no token", "", http.StatusUnauthorized, ""},
		{"basic scheme", "Basic Zm9vOmJhcg==", http.StatusUnauthorized, ""},
		{"openid, no profile", "Bearer " + signedIn.AccessToken, http.StatusOK, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, h.URL+"/userinfo", nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			wa := resp.Header.Get("WWW-Authenticate")
			if tc.status == http.StatusOK {
				var m map[string]any
				_ = json.NewDecoder(resp.Body).Decode(&m)
				if m["sub"] != "u-alice" || len(m) != 1 {
					t.Fatalf("userinfo without profile: %v", m)
				}
				return
			}
			if !strings.HasPrefix(wa, "Bearer ") || (tc.errCode != "" && !strings.Contains(wa, `error="`+tc.errCode+`"`)) || (tc.errCode == "" && strings.Contains(wa, "error=")) {
				t.Fatalf("WWW-Authenticate = %q", wa)
			}
		})
	}
}

// TestOIDCDiscovery: the discovery document advertises exactly the sign-in
// the hub serves.
func TestOIDCDiscovery(t *testing.T) {
	h := newHub(t)
	resp, err := http.Get(h.URL + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m struct {
		Userinfo string   `json:"userinfo_endpoint"`
		Algs     []string `json:"id_token_signing_alg_values_supported"`
		Subjects []string `json:"subject_types_supported"`
		Scopes   []string `json:"scopes_supported"`
		Claims   []string `json:"claims_supported"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	if m.Userinfo != h.URL+"/userinfo" || !slices.Equal(m.Algs, []string{"ES256"}) || !slices.Equal(m.Subjects, []string{"public"}) ||
		!slices.Equal(m.Scopes[:3], []string{"openid", "profile", "email"}) ||
		!slices.Contains(m.Claims, "preferred_username") || !slices.Contains(m.Claims, "email") || !slices.Contains(m.Claims, "name") ||
		!slices.Contains(m.Claims, "email_verified") {
		t.Fatalf("discovery: %+v", m)
	}
	// The OAuth document is unchanged: no OpenID fields there.
	r2, err := http.Get(h.URL + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Body.Close()
	var o map[string]any
	_ = json.NewDecoder(r2.Body).Decode(&o)
	if o["userinfo_endpoint"] != nil || o["id_token_signing_alg_values_supported"] != nil {
		t.Fatalf("OAuth metadata carries OpenID fields: %v", o)
	}
}

// TestOIDCScopeIsNotAResourceScope: openid and profile never reach the
// policy nor resource resolution: a request naming no resource still
// infers it from its resource scopes, the policy decides notes.read
// alone, and an openid request naming no resource scope gets the
// client's registered ones, as without openid.
func TestOIDCScopeIsNotAResourceScope(t *testing.T) {
	h := newPolicyHubOn(t, openSQLiteStore(t, filepath.Join(t.TempDir(), "agentid.db")))
	h.settle()
	secret := h.AddClient(&store.Client{ID: "rp-infer", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code"}})
	conf := h.oauth2Config("rp-infer", secret, "openid", "profile", "notes.read")
	verifier := oauth2.GenerateVerifier()
	back := h.Browser().Authorize(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)), []string{"notes.read"})
	if e := back.Query().Get("error"); e != "" {
		t.Fatalf("authorize without resource: %s", back)
	}
	tok, err := conf.Exchange(context.Background(), back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if tok.Extra("id_token") == nil || tok.Extra("scope") != "openid profile notes.read" {
		t.Fatalf("token: scope %v, id_token %v", tok.Extra("scope"), tok.Extra("id_token") != nil)
	}
	checkDecisions(t, lastIssued(t, h.Store, "rp-infer"), map[string]string{"notes.read": "granted:user-consent"})
}

// TestIdentityNote: the consent screen says in words what signing in tells
// the application, and nothing without openid.
func TestIdentityNote(t *testing.T) {
	for _, tc := range []struct {
		scopes []string
		want   string
	}{
		{nil, ""},
		{[]string{"profile", "email"}, ""},
		{[]string{"openid"}, "Who you are: your account id."},
		{[]string{"openid", "profile"}, "Who you are: your account id and your name and username."},
		{[]string{"openid", "email"}, "Who you are: your account id and your email address."},
		{[]string{"openid", "profile", "email"}, "Who you are: your account id, your name and username, and your email address."},
	} {
		if got := server.IdentityNote(tc.scopes); got != tc.want {
			t.Errorf("IdentityNote(%v) = %q, want %q", tc.scopes, got, tc.want)
		}
	}
}
