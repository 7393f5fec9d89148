package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
)

// OpenID Connect sign-in (OpenID Connect Core 1.0): openid, profile and
// email are protocol scopes. They are split off a request before the resource and
// policy see its scopes, ride along in the code, the refresh token and the
// access token's scope, and make the token endpoint add an ID token and
// /userinfo answer.
const (
	scopeOpenID  = "openid"
	scopeProfile = "profile"
	scopeEmail   = "email"
)

// oidcScopes are the OpenID Connect scopes, in the order metadata lists
// them.
var oidcScopes = []string{scopeOpenID, scopeProfile, scopeEmail}

// acrPassword and amrPassword say how a local user signed in: with a
// password (ISO/IEC 29115 level 1; RFC 8176 §2 "pwd"). A person who came
// through a connector signed in at their own provider by means the hub
// does not know, so their ID tokens carry neither.
const (
	acrPassword = "1"
	amrPassword = "pwd"
)

// splitOIDC separates the OpenID Connect scopes of scopes from the resource
// scopes. profile and email are protocol scopes only beside openid, so that
// a resource may still offer scopes of those names to OAuth-only clients.
func splitOIDC(scopes []string) (oidc, rest []string) {
	if !slices.Contains(scopes, scopeOpenID) {
		return nil, scopes
	}
	for _, sc := range scopes {
		if slices.Contains(oidcScopes, sc) {
			if !slices.Contains(oidc, sc) {
				oidc = append(oidc, sc)
			}
			continue
		}
		rest = append(rest, sc)
	}
	return oidc, rest
}

// oidcOf is the OpenID Connect part of scopes.
func oidcOf(scopes []string) []string {
	oidc, _ := splitOIDC(scopes)
	return oidc
}

// idToken mints the ID token of a token response (OpenID Connect Core
// §3.1.3.3, §12.2) about the person p for client c, bound to the access
// token by at_hash and expiring with it. It is nil without openid or a
// person.
func (s *Server) idToken(now, exp time.Time, c *store.Client, p *principal, a *authorization, accessToken string) (string, error) {
	if !slices.Contains(a.oidc, scopeOpenID) || p.user == nil {
		return "", nil
	}
	claims := &token.IDClaims{
		Issuer: s.issuer, Subject: p.user.ID, Audience: c.ID,
		IssuedAt: now.Unix(), Expiry: exp.Unix(), Nonce: a.nonce,
		UserClaims: userClaims(p.user, a.oidc),
	}
	if p.user.ConnectorID == "" {
		claims.ACR, claims.AMR = acrPassword, []string{amrPassword}
	}
	if !p.authTime.IsZero() {
		claims.AuthTime = p.authTime.Unix()
	}
	return s.keys.MintIDToken(claims, accessToken)
}

// userinfoClaims are the claims /userinfo may return, advertised as
// claims_supported (with the ID token's): profile gives the person's name
// and username, email their address and whether an admin vouched for it
// (OpenID Connect Core §5.4). A claim the hub does not know for a person
// is left out, never sent empty.
var userinfoClaims = []string{"sub", "name", "preferred_username", "email", "email_verified"}

// userClaims are the profile and email claims of u that scopes ask for,
// as both the ID token and /userinfo carry them.
func userClaims(u *store.User, scopes []string) *token.UserClaims {
	var out token.UserClaims
	if slices.Contains(scopes, scopeProfile) {
		out.Name, out.PreferredUsername = u.Name, u.Username
	}
	if slices.Contains(scopes, scopeEmail) && u.Email != "" {
		verified := u.EmailVerified
		out.Email, out.EmailVerified = u.Email, &verified
	}
	if out == (token.UserClaims{}) {
		return nil
	}
	return &out
}

// idTokenClaims are the claims of the ID token, for claims_supported.
var idTokenClaims = []string{"iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "at_hash"}

// handleUserinfo is the UserInfo endpoint (OpenID Connect Core §5.3), GET
// and POST, for an access token of the hub whose scope has openid, sent as
// a bearer token in the Authorization header (RFC 6750 §2.1) or, on POST,
// in a form body (§2.2). Errors are RFC 6750 §3 challenges.
func (s *Server) handleUserinfo(w http.ResponseWriter, r *http.Request) {
	raw, ok, bad := userinfoToken(r)
	if bad != "" {
		bearerError(w, http.StatusBadRequest, "invalid_request", bad)
		return
	}
	if !ok {
		bearerError(w, http.StatusUnauthorized, "", "")
		return
	}
	ctx := r.Context()
	claims, err := s.keys.Verify(raw, s.issuer)
	if err != nil || s.now().Unix() >= claims.Expiry {
		bearerError(w, http.StatusUnauthorized, "invalid_token", "the access token is invalid or expired")
		return
	}
	revoked, err := s.st.AccessTokenRevoked(ctx, claims.JTI)
	if err != nil {
		s.writeProtocolError(w, r, err)
		return
	}
	if revoked {
		bearerError(w, http.StatusUnauthorized, "invalid_token", "the access token was revoked")
		return
	}
	scopes := strings.Fields(claims.Scope)
	if !slices.Contains(scopes, scopeOpenID) || claims.Subject == claims.ClientID {
		bearerError(w, http.StatusForbidden, "insufficient_scope", "the access token was not granted the openid scope")
		return
	}
	if alive, err := s.alive(ctx, claims.ClientID, claims.Subject); err != nil || !alive {
		if err != nil {
			s.writeProtocolError(w, r, err)
			return
		}
		bearerError(w, http.StatusUnauthorized, "invalid_token", "the access token is no longer valid")
		return
	}
	u, err := s.st.GetUser(ctx, s.tenant, claims.Subject)
	if errors.Is(err, store.ErrNotFound) {
		bearerError(w, http.StatusUnauthorized, "invalid_token", "the access token is no longer valid")
		return
	}
	if err != nil {
		s.writeProtocolError(w, r, err)
		return
	}
	out := struct {
		Subject string `json:"sub"`
		*token.UserClaims
	}{u.ID, userClaims(u, scopes)}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(out)
}

// userinfoToken is the access token of a /userinfo request: from the
// Authorization header, or from the access_token field of a POST form
// body. bad describes a request that sends it more than once (RFC 6750
// §2: one method only) or in a body that cannot be read.
func userinfoToken(r *http.Request) (tok string, ok bool, bad string) {
	tok, ok = bearerToken(r)
	hasHeader := r.Header.Get("Authorization") != ""
	if r.Method != http.MethodPost {
		return tok, ok, ""
	}
	ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	if !strings.EqualFold(strings.TrimSpace(ct), "application/x-www-form-urlencoded") {
		return tok, ok, ""
	}
	r.Body = http.MaxBytesReader(nil, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		return "", false, "the request body is not a readable form"
	}
	vals, inBody := r.PostForm["access_token"]
	switch {
	case !inBody:
		return tok, ok, ""
	case hasHeader || len(vals) != 1:
		return "", false, "send the access token once, in the Authorization header or the body"
	case vals[0] == "":
		return "", false, ""
	}
	return vals[0], true, ""
}

// bearerToken is the token of an Authorization: Bearer header.
func bearerToken(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// bearerError writes an RFC 6750 §3 challenge; a request without
// credentials gets no error code (§3.1).
func bearerError(w http.ResponseWriter, status int, code, desc string) {
	v := `Bearer realm="agentid"`
	if code != "" {
		v += `, error="` + code + `", error_description="` + desc + `"`
		if code == "insufficient_scope" {
			v += `, scope="` + scopeOpenID + `"`
		}
	}
	w.Header().Set("WWW-Authenticate", v)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
}

// signingAlgs are the algorithms of the hub's published keys, the ID
// token signing algorithms.
func (s *Server) signingAlgs() []string {
	var algs []string
	for _, k := range s.keys.List() {
		if !slices.Contains(algs, k.Algorithm) {
			algs = append(algs, k.Algorithm)
		}
	}
	slices.Sort(algs)
	return algs
}
