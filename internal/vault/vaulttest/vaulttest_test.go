package vaulttest

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// TestProviderFlow drives the provider with golang.org/x/oauth2 as a real
// client would: code with PKCE, API call, refresh with and without
// rotation, invalid_grant, 500, revocation.
func TestProviderFlow(t *testing.T) {
	for _, method := range []string{AuthBasic, AuthPost} {
		t.Run(method, func(t *testing.T) {
			now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
			p := New(t, Options{AuthMethod: method, RequirePKCE: true, Now: func() time.Time { return now }})
			style := oauth2.AuthStyleInHeader
			if method == AuthPost {
				style = oauth2.AuthStyleInParams
			}
			cfg := &oauth2.Config{
				ClientID: p.ClientID(), ClientSecret: p.ClientSecret(),
				Endpoint:    oauth2.Endpoint{AuthURL: p.AuthorizationEndpoint(), TokenURL: p.TokenEndpoint(), AuthStyle: style},
				RedirectURL: "https://hub.example/connections/callback",
				Scopes:      []string{"calendar.read"},
			}
			ctx := context.Background()
			verifier := oauth2.GenerateVerifier()
			code, state, err := p.Authorize(ctx, cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("prompt", "consent")))
			if err != nil || state != "st" {
				t.Fatalf("Authorize = %q, %q, %v", code, state, err)
			}
			if got := p.LastAuthRequest().Get("prompt"); got != "consent" {
				t.Errorf("prompt = %q", got)
			}
			if _, err := cfg.Exchange(ctx, code, oauth2.VerifierOption("wrong-"+rand.Text())); err == nil {
				t.Fatal("wrong verifier accepted")
			}
			code, _, _ = p.Authorize(ctx, cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)))
			tok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatal(err)
			}
			if tok.Extra("scope") != "calendar.read" || tok.RefreshToken == "" {
				t.Fatalf("token: scope %v refresh %q", tok.Extra("scope"), tok.RefreshToken)
			}
			if _, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(verifier)); err == nil {
				t.Fatal("code replay accepted")
			}
			if p.AccessTokenValid(tok.AccessToken) {
				t.Fatal("replayed code left its tokens valid")
			}

			code, _, _ = p.Authorize(ctx, cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)))
			tok, _ = cfg.Exchange(ctx, code, oauth2.VerifierOption(verifier))
			resp, err := http.Get(p.APIURL())
			if err != nil || resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("API without token: %v %v", resp.StatusCode, err)
			}
			req, _ := http.NewRequest("GET", p.APIURL(), nil)
			tok.SetAuthHeader(req)
			if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
				t.Fatalf("API with token: %v %v", resp.StatusCode, err)
			}

			// Refresh without rotation keeps the refresh token.
			src := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken})
			t2, err := src.Token()
			if err != nil || t2.RefreshToken != tok.RefreshToken {
				t.Fatalf("refresh: %v, rotated=%v", err, t2 != nil && t2.RefreshToken != tok.RefreshToken)
			}
			p.SetRotateRefreshTokens(true)
			t3, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
			if err != nil || t3.RefreshToken == tok.RefreshToken {
				t.Fatalf("rotating refresh: %v", err)
			}
			if _, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
				t.Fatal("rotated-out refresh token accepted")
			}
			if c := p.Counts(); c.RefreshReuse != 1 || c.Refreshes != 3 {
				t.Fatalf("counts = %+v", c)
			}

			// Expiry follows the clock.
			now = now.Add(2 * time.Hour)
			if p.AccessTokenValid(t3.AccessToken) {
				t.Fatal("expired access token valid")
			}

			p.SetRefreshError("invalid_grant")
			_, err = cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: t3.RefreshToken}).Token()
			var re *oauth2.RetrieveError
			if !asRetrieve(err, &re) || re.ErrorCode != "invalid_grant" {
				t.Fatalf("forced invalid_grant: %v", err)
			}
			p.SetRefreshError("")
			p.SetFail500(true)
			_, err = cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: t3.RefreshToken}).Token()
			if !asRetrieve(err, &re) || re.Response.StatusCode != 500 {
				t.Fatalf("forced 500: %v", err)
			}
			p.SetFail500(false)

			// RFC 7009 revocation of the refresh token ends the grant.
			form := url.Values{"token": {t3.RefreshToken}, "token_type_hint": {"refresh_token"}}
			if method == AuthPost {
				form.Set("client_id", p.ClientID())
				form.Set("client_secret", p.ClientSecret())
			}
			rreq, _ := http.NewRequest("POST", p.RevocationEndpoint(), strings.NewReader(form.Encode()))
			rreq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if method == AuthBasic {
				rreq.SetBasicAuth(p.ClientID(), p.ClientSecret())
			}
			if resp, err := http.DefaultClient.Do(rreq); err != nil || resp.StatusCode != 200 {
				t.Fatalf("revoke: %v %v", resp, err)
			}
			if p.RefreshTokenValid(t3.RefreshToken) || p.Counts().Revocations != 1 || p.Revoked()[0] != t3.RefreshToken {
				t.Fatal("revocation did not end the grant")
			}
			p.RevokeAll()
			if p.RefreshTokenValid(t3.RefreshToken) {
				t.Fatal("RevokeAll left a refresh token")
			}
		})
	}
}

func asRetrieve(err error, re **oauth2.RetrieveError) bool { return errors.As(err, re) }
