// Package vaulttest runs a small OAuth 2 provider on httptest for tests of
// the vault and of what is built on it (retrieval, the connect pages, the
// CLI): an authorization endpoint that approves at once, a token endpoint
// (authorization code with PKCE, refresh with optional rotation), RFC 7009
// revocation and a protected API, with knobs for token lifetime, refresh
// rotation, forced invalid_grant and forced 500s, and counters that let a
// test prove how often the provider was called.
//
// It is a test double, not an authorization server: tokens live in memory,
// there is no consent and no person.
package vaulttest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// Client authentication methods at the token and revocation endpoints.
const (
	AuthBasic = "client_secret_basic"
	AuthPost  = "client_secret_post"
)

// Options configure a Provider. Zero values mean the documented defaults.
type Options struct {
	// ClientID and ClientSecret are the hub's client at the provider
	// (defaults "hub-client" and a random secret).
	ClientID     string
	ClientSecret string
	// AuthMethod is the one client authentication method the token and
	// revocation endpoints accept (default AuthBasic).
	AuthMethod string
	// Scopes the provider knows (default calendar.read calendar.write).
	Scopes []string
	// RedirectURI, when set, is the only redirect URI /authorize accepts.
	RedirectURI string
	// RequirePKCE makes /authorize refuse a request without an S256
	// code_challenge. Without it a challenge is still checked when sent.
	RequirePKCE bool
	// AccessTokenTTL is the access-token lifetime (default 1h; see also
	// SetAccessTokenTTL).
	AccessTokenTTL time.Duration
	// RotateRefreshTokens: every refresh returns a new refresh token and
	// retires the one presented (see also SetRotateRefreshTokens).
	RotateRefreshTokens bool
	// OmitScope: token responses carry no "scope" (RFC 6749 §5.1 allows
	// that when the grant equals the request).
	OmitScope bool
	// Now is the clock that expires access tokens (nil: time.Now).
	Now func() time.Time
}

// Counts are how often the provider's endpoints were called.
type Counts struct {
	Authorizations int // GET /authorize
	TokenCalls     int // POST /token, any grant, any outcome
	CodeExchanges  int // authorization_code grants that succeeded
	Refreshes      int // refresh_token grants received (any outcome)
	// RefreshReuse counts refresh tokens presented after they were
	// rotated out: a vault that uses one refresh token twice shows here.
	RefreshReuse int
	Revocations  int // POST /revoke
	APICalls     int // requests to /api/ endpoints with a valid credential
}

type grant struct {
	scopes  []string
	revoked bool
}

type codeEntry struct {
	grant       *grant
	redirectURI string
	challenge   string
	used        bool
}

type accessEntry struct {
	grant   *grant
	expires time.Time // zero: never
}

type refreshEntry struct {
	grant   *grant
	retired bool // rotated out
}

// Provider is a running test provider. Its methods are safe for
// concurrent use.
type Provider struct {
	// Server is the httptest server; URL its base URL.
	Server *httptest.Server
	URL    string

	opts Options

	mu          sync.Mutex
	ttl         time.Duration
	rotate      bool
	refreshErr  string
	fail500     bool
	tokenDelay  time.Duration
	codes       map[string]*codeEntry
	access      map[string]*accessEntry
	refresh     map[string]*refreshEntry
	apiKeys     map[string]bool
	counts      Counts
	lastAuthReq url.Values
	lastRevoked []string
}

// New starts a provider, closed when the test ends.
func New(t testing.TB, opts Options) *Provider {
	t.Helper()
	if opts.ClientID == "" {
		opts.ClientID = "hub-client"
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = "provider-secret-" + random()
	}
	if opts.AuthMethod == "" {
		opts.AuthMethod = AuthBasic
	}
	if opts.AuthMethod != AuthBasic && opts.AuthMethod != AuthPost {
		t.Fatalf("vaulttest: unknown AuthMethod %q", opts.AuthMethod)
	}
	if len(opts.Scopes) == 0 {
		opts.Scopes = []string{"calendar.read", "calendar.write"}
	}
	if opts.AccessTokenTTL == 0 {
		opts.AccessTokenTTL = time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	p := &Provider{
		opts:    opts,
		ttl:     opts.AccessTokenTTL,
		rotate:  opts.RotateRefreshTokens,
		codes:   map[string]*codeEntry{},
		access:  map[string]*accessEntry{},
		refresh: map[string]*refreshEntry{},
		apiKeys: map[string]bool{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /authorize", p.authorize)
	mux.HandleFunc("POST /token", p.token)
	mux.HandleFunc("POST /revoke", p.revoke)
	mux.HandleFunc("GET /api/events", p.apiEvents)
	mux.HandleFunc("GET /api/keyed", p.apiKeyed)
	p.Server = httptest.NewServer(mux)
	p.URL = p.Server.URL
	t.Cleanup(p.Server.Close)
	return p
}

// ClientID and ClientSecret are the hub's client credentials at the
// provider.
func (p *Provider) ClientID() string     { return p.opts.ClientID }
func (p *Provider) ClientSecret() string { return p.opts.ClientSecret }

// Endpoints.
func (p *Provider) AuthorizationEndpoint() string { return p.URL + "/authorize" }
func (p *Provider) TokenEndpoint() string         { return p.URL + "/token" }
func (p *Provider) RevocationEndpoint() string    { return p.URL + "/revoke" }

// APIURL is the protected API: GET with "Authorization: Bearer <access
// token>" answers 200 with JSON {"events":[…]}; anything else 401 with an
// RFC 6750 challenge.
func (p *Provider) APIURL() string { return p.URL + "/api/events" }

// KeyedAPIURL is an API that takes an API key (SetAPIKeys) in the header
// X-API-Key, as "Authorization: Bearer <key>", or in the query parameter
// api_key.
func (p *Provider) KeyedAPIURL() string { return p.URL + "/api/keyed" }

// SecretSealer seals a provider client secret for store.Provider;
// *vault.Vault is one.
type SecretSealer interface {
	SealProviderSecret(tenantID, providerID, secret string) ([]byte, error)
}

// StoreProvider describes this provider as a store.Provider with the given
// tenant and id, its client secret sealed by sealer (nil: no secret, a
// public client). The caller creates it in the store.
func (p *Provider) StoreProvider(sealer SecretSealer, tenantID, id string) (*store.Provider, error) {
	sp := &store.Provider{
		TenantID:              tenantID,
		ID:                    id,
		Name:                  "Test provider " + id,
		Kind:                  store.ProviderOAuth2,
		AuthorizationEndpoint: p.AuthorizationEndpoint(),
		TokenEndpoint:         p.TokenEndpoint(),
		RevocationEndpoint:    p.RevocationEndpoint(),
		ClientID:              p.opts.ClientID,
		TokenAuthMethod:       p.opts.AuthMethod,
		Scopes:                slices.Clone(p.opts.Scopes),
	}
	if sealer != nil {
		ct, err := sealer.SealProviderSecret(tenantID, id, p.opts.ClientSecret)
		if err != nil {
			return nil, err
		}
		sp.ClientSecret = ct
	}
	return sp, nil
}

// APIKeyProvider describes an API-key provider whose key goes in the
// X-API-Key header of KeyedAPIURL.
func APIKeyProvider(tenantID, id string) *store.Provider {
	return &store.Provider{
		TenantID:  tenantID,
		ID:        id,
		Name:      "Test key provider " + id,
		Kind:      store.ProviderAPIKey,
		KeyHeader: "X-API-Key",
	}
}

// Knobs.

// SetAccessTokenTTL sets the lifetime of access tokens issued from now
// on; zero or less: tokens without expires_in that never expire.
func (p *Provider) SetAccessTokenTTL(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ttl = d
}

// SetRotateRefreshTokens turns refresh-token rotation on or off.
func (p *Provider) SetRotateRefreshTokens(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rotate = on
}

// SetRefreshError makes every refresh_token grant fail with this OAuth
// error code (HTTP 400), for example "invalid_grant"; "" restores success.
func (p *Provider) SetRefreshError(code string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refreshErr = code
}

// SetFail500 makes /token and /revoke answer 500 while on.
func (p *Provider) SetFail500(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fail500 = on
}

// SetTokenDelay makes /token wait d before answering (after counting the
// call), so concurrent callers overlap.
func (p *Provider) SetTokenDelay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tokenDelay = d
}

// SetAPIKeys sets the keys KeyedAPIURL accepts.
func (p *Provider) SetAPIKeys(keys ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.apiKeys = map[string]bool{}
	for _, k := range keys {
		p.apiKeys[k] = true
	}
}

// RevokeAll revokes every grant at the provider, as a person removing the
// app in the provider's settings would: every token stops working and
// refreshes fail with invalid_grant.
func (p *Provider) RevokeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.refresh {
		r.grant.revoked = true
	}
	for _, a := range p.access {
		a.grant.revoked = true
	}
}

// Counts returns the counters.
func (p *Provider) Counts() Counts {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts
}

// LastAuthRequest returns the query of the last /authorize request.
func (p *Provider) LastAuthRequest() url.Values {
	p.mu.Lock()
	defer p.mu.Unlock()
	q := url.Values{}
	for k, v := range p.lastAuthReq {
		q[k] = slices.Clone(v)
	}
	return q
}

// Revoked returns the tokens /revoke was called with, in order.
func (p *Provider) Revoked() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.lastRevoked)
}

// AccessTokenValid reports whether tok is a live access token.
func (p *Provider) AccessTokenValid(tok string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accessValidLocked(tok)
}

// RefreshTokenValid reports whether tok is a live refresh token (issued,
// not rotated out, grant not revoked).
func (p *Provider) RefreshTokenValid(tok string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.refresh[tok]
	return ok && !r.retired && !r.grant.revoked
}

// Authorize follows an authorization URL the way a browser would, up to
// the redirect back to the client, and returns the code and state of that
// redirect (or the provider's error as an error).
func (p *Provider) Authorize(ctx context.Context, authURL string) (code, state string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
	if err != nil {
		return "", "", err
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		return "", "", err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		return "", "", fmt.Errorf("vaulttest: /authorize answered %s", resp.Status)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		return "", "", err
	}
	q := loc.Query()
	if e := q.Get("error"); e != "" {
		return "", "", fmt.Errorf("vaulttest: authorization error %s: %s", e, q.Get("error_description"))
	}
	return q.Get("code"), q.Get("state"), nil
}

// Handlers.

func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p.mu.Lock()
	p.counts.Authorizations++
	p.lastAuthReq = q
	p.mu.Unlock()

	if q.Get("client_id") != p.opts.ClientID {
		http.Error(w, "unknown client_id", http.StatusBadRequest)
		return
	}
	redirect := q.Get("redirect_uri")
	ru, err := url.Parse(redirect)
	if err != nil || !ru.IsAbs() || ru.Fragment != "" || (p.opts.RedirectURI != "" && redirect != p.opts.RedirectURI) {
		// RFC 6749 §4.1.2.1: never redirect to an unchecked URI.
		http.Error(w, "redirect_uri not registered", http.StatusBadRequest)
		return
	}
	fail := func(code, desc string) {
		v := ru.Query()
		v.Set("error", code)
		v.Set("error_description", desc)
		if s := q.Get("state"); s != "" {
			v.Set("state", s)
		}
		ru.RawQuery = v.Encode()
		http.Redirect(w, r, ru.String(), http.StatusFound)
	}
	if q.Get("response_type") != "code" {
		fail("unsupported_response_type", "only code")
		return
	}
	scopes := strings.Fields(q.Get("scope"))
	for _, s := range scopes {
		if !slices.Contains(p.opts.Scopes, s) {
			fail("invalid_scope", "unknown scope")
			return
		}
	}
	if len(scopes) == 0 {
		scopes = slices.Clone(p.opts.Scopes)
	}
	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")
	switch {
	case challenge == "" && p.opts.RequirePKCE:
		fail("invalid_request", "code_challenge required")
		return
	case challenge != "" && method != "S256":
		fail("invalid_request", "code_challenge_method must be S256")
		return
	case challenge != "" && len(challenge) != 43:
		fail("invalid_request", "malformed code_challenge")
		return
	}
	code := "code_" + random()
	p.mu.Lock()
	p.codes[code] = &codeEntry{grant: &grant{scopes: scopes}, redirectURI: redirect, challenge: challenge}
	p.mu.Unlock()
	v := ru.Query()
	v.Set("code", code)
	if s := q.Get("state"); s != "" {
		v.Set("state", s)
	}
	ru.RawQuery = v.Encode()
	http.Redirect(w, r, ru.String(), http.StatusFound)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func oauthError(w http.ResponseWriter, status int, code string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="vaulttest"`)
	}
	writeJSON(w, status, map[string]string{"error": code})
}

// clientAuth checks the client's credentials by the one configured method
// (RFC 6749 §2.3.1).
func (p *Provider) clientAuth(r *http.Request) bool {
	id, secret, basic := r.BasicAuth()
	if basic {
		if p.opts.AuthMethod != AuthBasic || r.PostForm.Get("client_secret") != "" {
			return false
		}
		// RFC 6749 §2.3.1: the credentials are form-urlencoded first.
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return false
		}
	} else {
		if p.opts.AuthMethod != AuthPost {
			return false
		}
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	return id == p.opts.ClientID &&
		subtle.ConstantTimeCompare([]byte(secret), []byte(p.opts.ClientSecret)) == 1
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	p.mu.Lock()
	p.counts.TokenCalls++
	isRefresh := r.PostForm.Get("grant_type") == "refresh_token"
	if isRefresh {
		p.counts.Refreshes++
	}
	delay, fail500, refreshErr := p.tokenDelay, p.fail500, p.refreshErr
	p.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if fail500 {
		http.Error(w, "provider down", http.StatusInternalServerError)
		return
	}
	if !p.clientAuth(r) {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		p.codeGrant(w, r)
	case "refresh_token":
		if refreshErr != "" {
			oauthError(w, http.StatusBadRequest, refreshErr)
			return
		}
		p.refreshGrant(w, r)
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
	}
}

func (p *Provider) codeGrant(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.codes[r.PostForm.Get("code")]
	if !ok || c.used {
		if ok {
			c.grant.revoked = true // RFC 6749 §4.1.2: a replayed code revokes its tokens
		}
		oauthError(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	c.used = true
	if r.PostForm.Get("redirect_uri") != c.redirectURI { // RFC 6749 §4.1.3
		oauthError(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	verifier := r.PostForm.Get("code_verifier")
	switch {
	case c.challenge == "" && verifier != "":
		oauthError(w, http.StatusBadRequest, "invalid_grant")
		return
	case c.challenge != "":
		sum := sha256.Sum256([]byte(verifier)) // RFC 7636 §4.6
		if subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(c.challenge)) != 1 {
			oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
	}
	p.counts.CodeExchanges++
	resp := p.issueLocked(c.grant, true)
	writeJSON(w, http.StatusOK, resp)
}

func (p *Provider) refreshGrant(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	rt, ok := p.refresh[r.PostForm.Get("refresh_token")]
	if !ok || rt.grant.revoked {
		oauthError(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	if rt.retired {
		p.counts.RefreshReuse++
		oauthError(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	if s := r.PostForm.Get("scope"); s != "" {
		for _, sc := range strings.Fields(s) {
			if !slices.Contains(rt.grant.scopes, sc) {
				oauthError(w, http.StatusBadRequest, "invalid_scope")
				return
			}
		}
	}
	if p.rotate {
		rt.retired = true
	}
	writeJSON(w, http.StatusOK, p.issueLocked(rt.grant, p.rotate))
}

func (p *Provider) issueLocked(g *grant, withRefresh bool) tokenResponse {
	at := "at_" + random()
	ae := &accessEntry{grant: g}
	resp := tokenResponse{AccessToken: at, TokenType: "Bearer"}
	if p.ttl > 0 {
		ae.expires = p.opts.Now().Add(p.ttl)
		resp.ExpiresIn = int64(p.ttl / time.Second)
	}
	p.access[at] = ae
	if withRefresh {
		rt := "rt_" + random()
		p.refresh[rt] = &refreshEntry{grant: g}
		resp.RefreshToken = rt
	}
	if !p.opts.OmitScope {
		resp.Scope = strings.Join(g.scopes, " ")
	}
	return resp
}

// revoke is RFC 7009: the client authenticates; an unknown token is still
// 200 (§2.2); revoking a refresh token ends its whole grant.
func (p *Provider) revoke(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts.Revocations++
	if p.fail500 {
		http.Error(w, "provider down", http.StatusInternalServerError)
		return
	}
	if !p.clientAuth(r) {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	tok := r.PostForm.Get("token")
	if tok == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	p.lastRevoked = append(p.lastRevoked, tok)
	if rt, ok := p.refresh[tok]; ok {
		rt.grant.revoked = true
	}
	delete(p.access, tok)
	w.WriteHeader(http.StatusOK)
}

func (p *Provider) accessValidLocked(tok string) bool {
	a, ok := p.access[tok]
	return ok && !a.grant.revoked && (a.expires.IsZero() || p.opts.Now().Before(a.expires))
}

func (p *Provider) apiEvents(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Authorization")
	scheme, tok, _ := strings.Cut(auth, " ")
	p.mu.Lock()
	ok := strings.EqualFold(scheme, "Bearer") && p.accessValidLocked(tok)
	var scopes []string
	if ok {
		p.counts.APICalls++
		scopes = p.access[tok].grant.scopes
	}
	p.mu.Unlock()
	if !ok {
		// RFC 6750 §3.1
		w.Header().Set("WWW-Authenticate", `Bearer realm="vaulttest", error="invalid_token"`)
		http.Error(w, "invalid token", http.StatusUnauthorized)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"events": []map[string]string{
			{"id": "ev1", "title": "Standup", "start": "2026-12-07T09:00:00Z"},
			{"id": "ev2", "title": "Review", "start": "2026-12-07T14:00:00Z"},
		},
		"scope": strings.Join(scopes, " "),
	})
}

func (p *Provider) apiKeyed(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("X-API-Key")
	if key == "" {
		if scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
			key = tok
		}
	}
	if key == "" {
		key = r.URL.Query().Get("api_key")
	}
	p.mu.Lock()
	ok := key != "" && p.apiKeys[key]
	if ok {
		p.counts.APICalls++
	}
	p.mu.Unlock()
	if !ok {
		http.Error(w, "invalid key", http.StatusUnauthorized)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true})
}

func random() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
