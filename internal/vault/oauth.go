package vault

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/oauth2"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/store"
)

// The provider side of OAuth 2: the hub is a confidential (or public)
// client of each oauth2 provider and uses golang.org/x/oauth2 for the
// authorization request, the code exchange and refreshes. x/oauth2's own
// clock is not used: expiry is computed from expires_in with Config.Now.

// Token endpoint client authentication methods (RFC 6749 §2.3.1).
const (
	authBasic = "client_secret_basic"
	authPost  = "client_secret_post"
)

// reservedAuthParams are the authorization-request parameters the vault
// sets itself; a provider's AuthParams may not replace them.
var reservedAuthParams = []string{
	"response_type", "client_id", "redirect_uri", "scope", "state",
	"code_challenge", "code_challenge_method",
}

// oauthConfig is p's x/oauth2 configuration with its client secret opened.
func (v *Vault) oauthConfig(p *store.Provider, redirectURI string, scopes []string) (*oauth2.Config, error) {
	if p.Kind != store.ProviderOAuth2 {
		return nil, fmt.Errorf("vault: provider %s is not an OAuth 2 provider", p.ID)
	}
	secret, err := v.providerSecret(p)
	if err != nil {
		return nil, err
	}
	style := oauth2.AuthStyleInHeader
	switch p.TokenAuthMethod {
	case "", authBasic:
		if secret == "" {
			// A public client sends its client_id in the body (RFC 6749 §3.2.1).
			style = oauth2.AuthStyleInParams
		}
	case authPost:
		style = oauth2.AuthStyleInParams
	default:
		return nil, fmt.Errorf("vault: provider %s: unknown token_endpoint_auth_method %q", p.ID, p.TokenAuthMethod)
	}
	return &oauth2.Config{
		ClientID:     p.ClientID,
		ClientSecret: secret,
		Endpoint: oauth2.Endpoint{
			AuthURL:   p.AuthorizationEndpoint,
			TokenURL:  p.TokenEndpoint,
			AuthStyle: style,
		},
		RedirectURL: redirectURI,
		Scopes:      scopes,
	}, nil
}

// clientContext carries the HTTP client x/oauth2 uses.
func (v *Vault) clientContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, v.cfg.HTTPClient)
}

// requestedScopes checks scopes ⊆ p.Scopes; none means all of p's.
func requestedScopes(p *store.Provider, scopes []string) ([]string, error) {
	if len(scopes) == 0 {
		return slices.Clone(p.Scopes), nil
	}
	out := make([]string, 0, len(scopes))
	for _, s := range scopes {
		if !slices.Contains(p.Scopes, s) {
			return nil, fmt.Errorf("vault: scope %q is not one of provider %s's scopes", s, p.ID)
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

func checkRedirectURI(redirectURI string) error {
	u, err := url.Parse(redirectURI)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Fragment != "" || (u.Scheme != "https" && u.Scheme != "http") {
		// RFC 6749 §3.1.2: absolute, no fragment.
		return errors.New("vault: the redirect URI must be an absolute http(s) URI without fragment")
	}
	return nil
}

// randomToken returns n random bytes from Config.Rand, base64url.
func (v *Vault) randomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(v.cfg.Rand, b); err != nil {
		return "", fmt.Errorf("vault: reading randomness: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// AuthCodeURL builds the authorization request to provider p for scopes
// (a subset of p.Scopes; none: all), with PKCE S256 unless p disables it,
// state, p.AuthParams and the exact redirectURI.
func (v *Vault) AuthCodeURL(p *store.Provider, redirectURI string, scopes []string) (*AuthRequest, error) {
	if p.Disabled {
		return nil, fmt.Errorf("vault: provider %s is disabled", p.ID)
	}
	if p.AuthorizationEndpoint == "" || p.TokenEndpoint == "" {
		return nil, fmt.Errorf("vault: provider %s lacks its authorization or token endpoint", p.ID)
	}
	if err := checkRedirectURI(redirectURI); err != nil {
		return nil, err
	}
	scopes, err := requestedScopes(p, scopes)
	if err != nil {
		return nil, err
	}
	cfg, err := v.oauthConfig(p, redirectURI, scopes)
	if err != nil {
		return nil, err
	}
	cfg.ClientSecret = "" // not needed to build a URL
	// 256 bits of state: RFC 6749 §10.12, RFC 9700 §4.7.1.
	state, err := v.randomToken(32)
	if err != nil {
		return nil, err
	}
	var opts []oauth2.AuthCodeOption
	keys := make([]string, 0, len(p.AuthParams))
	for k := range p.AuthParams {
		if slices.Contains(reservedAuthParams, k) {
			return nil, fmt.Errorf("vault: provider %s: auth param %q is set by the vault", p.ID, k)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		opts = append(opts, oauth2.SetAuthURLParam(k, p.AuthParams[k]))
	}
	req := &AuthRequest{State: state}
	if !p.DisablePKCE {
		// RFC 7636 §4.1: 32 random octets, base64url: 43 characters.
		req.Verifier, err = v.randomToken(32)
		if err != nil {
			return nil, err
		}
		opts = append(opts, oauth2.S256ChallengeOption(req.Verifier))
	}
	req.URL = cfg.AuthCodeURL(state, opts...)
	req.Scopes = scopes
	return req, nil
}

// CompleteAuth exchanges the authorization code at p's token endpoint and
// stores the tokens as a new connection of owner (connection.created in
// the same transaction). The caller has checked state.
//
// requested are the scopes the authorization request asked for (what
// AuthRequest was built with; none: all of p's, as AuthCodeURL reads
// none). The connection's scopes are those the token response grants, or
// these when it names none (RFC 6749 §5.1: scope is omitted when it is
// what was asked).
func (v *Vault) CompleteAuth(ctx context.Context, m audit.Meta, p *store.Provider, owner Owner, code, verifier, redirectURI string, requested ...string) (*store.Connection, error) {
	if p.Disabled {
		return nil, fmt.Errorf("vault: provider %s is disabled", p.ID)
	}
	if err := checkOwner(p.TenantID, owner); err != nil {
		return nil, err
	}
	if code == "" {
		return nil, errors.New("vault: no authorization code")
	}
	requested, err := requestedScopes(p, requested)
	if err != nil {
		return nil, err
	}
	cfg, err := v.oauthConfig(p, redirectURI, requested)
	if err != nil {
		return nil, err
	}
	var opts []oauth2.AuthCodeOption
	if verifier != "" {
		opts = append(opts, oauth2.VerifierOption(verifier))
	}
	tok, err := cfg.Exchange(v.clientContext(ctx), code, opts...)
	if err != nil {
		return nil, providerError(p, "code exchange", err)
	}
	now := v.cfg.Now()
	granted := grantedScopes(p, tok, requested)
	id, err := v.randomToken(20)
	if err != nil {
		return nil, err
	}
	c := &store.Connection{
		TenantID:        p.TenantID,
		ID:              "conn_" + id,
		ProviderID:      p.ID,
		OwnerKind:       owner.Kind,
		OwnerID:         owner.ID,
		Label:           tokenLabel(tok, p),
		Status:          store.ConnectionActive,
		Scopes:          granted,
		ExpiresAt:       expiry(tok, now),
		LastRefreshedAt: now,
		CreatedAt:       now,
		UpdatedAt:       now,
	}
	s := &secret{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, TokenType: tok.Type()}
	defer s.clear()
	if err := v.sealNew(c, s); err != nil {
		return nil, err
	}
	ev := audit.NewConnectionCreated(v.meta(m, c.TenantID), connFields(c, ""))
	if err := v.cfg.Store.CreateConnection(ctx, c, ev); err != nil {
		return nil, fmt.Errorf("vault: storing connection: %w", err)
	}
	return c, nil
}

func checkOwner(tenantID string, o Owner) error {
	switch o.Kind {
	case store.OwnerUser:
		if o.ID == "" {
			return errors.New("vault: a user owner needs the user id")
		}
	case store.OwnerTenant:
		if o.ID != tenantID {
			return errors.New("vault: a tenant owner's id is the provider's tenant")
		}
	default:
		return fmt.Errorf("vault: unknown owner kind %q", o.Kind)
	}
	return nil
}

// grantedScopes reads the response's scope (RFC 6749 §5.1), else the
// requested ones. A provider granting scopes it was not configured with is
// not an error, but only configured scopes are recorded: retrieval never
// hands out more than the provider's configuration names.
func grantedScopes(p *store.Provider, tok *oauth2.Token, requested []string) []string {
	raw, _ := tok.Extra("scope").(string)
	fields := splitScopes(raw)
	if len(fields) == 0 {
		return slices.Clone(requested)
	}
	var out []string
	for _, s := range fields {
		if slices.Contains(p.Scopes, s) && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// splitScopes splits a scope response: space-delimited (RFC 6749 §3.3),
// and comma-delimited as some providers send it.
func splitScopes(raw string) []string {
	return strings.FieldsFunc(raw, func(r rune) bool { return r == ' ' || r == ',' })
}

// expiry is when tok's access token expires, by the vault's clock; zero
// when the provider did not say.
func expiry(tok *oauth2.Token, now time.Time) time.Time {
	if tok.ExpiresIn <= 0 {
		return time.Time{}
	}
	// Bound absurd values (a year) so the arithmetic cannot overflow.
	secs := min(tok.ExpiresIn, int64(365*24*3600))
	return now.Add(time.Duration(secs) * time.Second)
}

// tokenLabel names the account from an ID token the token endpoint
// returned (OpenID Connect: email, else preferred_username, else name),
// else the provider's name. The ID token came straight from the token
// endpoint over TLS (OpenID Connect Core §3.1.3.7 item 6), and the label
// is only a display string, so its claims are read without verifying the
// signature; nothing is decided on them.
func tokenLabel(tok *oauth2.Token, p *store.Provider) string {
	fallback := p.Name
	if fallback == "" {
		fallback = p.ID
	}
	idt, _ := tok.Extra("id_token").(string)
	parts := strings.Split(idt, ".")
	if len(parts) != 3 || len(parts[1]) > 8192 {
		return fallback
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return fallback
	}
	var claims struct {
		Email             string `json:"email"`
		PreferredUsername string `json:"preferred_username"`
		Name              string `json:"name"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return fallback
	}
	for _, l := range []string{claims.Email, claims.PreferredUsername, claims.Name} {
		if l = cleanLabel(l); l != "" {
			return l
		}
	}
	return fallback
}

// cleanLabel keeps printable text and caps it at 100 bytes.
func cleanLabel(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, strings.TrimSpace(s))
	if len(s) > 100 {
		s = s[:100]
		for len(s) > 0 && !utf8.ValidString(s) { // a rune cut in half
			s = s[:len(s)-1]
		}
	}
	return s
}

// refreshError sorts a failed refresh.
type refreshError struct {
	// invalidGrant: the provider says the grant is gone (RFC 6749 §5.2).
	invalidGrant bool
	// reason is a short, secret-free word for events and logs:
	// "invalid_grant", "http_503", "oauth_<code>", "network".
	reason string
	err    error
}

func (e *refreshError) Error() string { return e.err.Error() }
func (e *refreshError) Unwrap() error { return e.err }

// providerError turns an x/oauth2 error into one that carries the OAuth
// error code and HTTP status but never the response body (which may echo
// what was sent).
func providerError(p *store.Provider, what string, err error) *refreshError {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		code := re.ErrorCode
		if !validErrorCode(code) {
			code = ""
		}
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		switch {
		case code == "invalid_grant":
			return &refreshError{invalidGrant: true, reason: "invalid_grant",
				err: fmt.Errorf("vault: provider %s refused the %s: invalid_grant", p.ID, what)}
		case code != "":
			return &refreshError{reason: "oauth_" + code,
				err: fmt.Errorf("vault: provider %s refused the %s: %s (HTTP %d)", p.ID, what, code, status)}
		default:
			return &refreshError{reason: fmt.Sprintf("http_%d", status),
				err: fmt.Errorf("vault: provider %s failed the %s: HTTP %d", p.ID, what, status)}
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &refreshError{reason: "timeout", err: fmt.Errorf("vault: provider %s: %s timed out: %w", p.ID, what, context.DeadlineExceeded)}
	}
	// Transport errors name the URL, which is configuration, not a secret;
	// x/oauth2's other errors (a response without access_token, bad JSON)
	// carry no body either.
	return &refreshError{reason: "network", err: fmt.Errorf("vault: provider %s: %s failed: %w", p.ID, what, err)}
}

// validErrorCode: RFC 6749 §5.2 error codes are %x20-21 / %x23-5B /
// %x5D-7E; anything else is not echoed.
func validErrorCode(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// exchangeRefresh uses refreshToken at p's token endpoint.
func (v *Vault) exchangeRefresh(ctx context.Context, p *store.Provider, refreshToken string) (*oauth2.Token, error) {
	cfg, err := v.oauthConfig(p, "", nil)
	if err != nil {
		return nil, err
	}
	tok, err := cfg.TokenSource(v.clientContext(ctx), &oauth2.Token{RefreshToken: refreshToken}).Token()
	if err != nil {
		return nil, providerError(p, "refresh", err)
	}
	return tok, nil
}

// revokeAtProvider calls p's RFC 7009 revocation endpoint for token.
func (v *Vault) revokeAtProvider(ctx context.Context, p *store.Provider, token, hint string) error {
	cfg, err := v.oauthConfig(p, "", nil)
	if err != nil {
		return err
	}
	form := url.Values{"token": {token}, "token_type_hint": {hint}}
	if cfg.Endpoint.AuthStyle == oauth2.AuthStyleInParams {
		form.Set("client_id", cfg.ClientID)
		if cfg.ClientSecret != "" {
			form.Set("client_secret", cfg.ClientSecret)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.RevocationEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("vault: provider %s revocation endpoint: %w", p.ID, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if cfg.Endpoint.AuthStyle == oauth2.AuthStyleInHeader {
		// RFC 6749 §2.3.1: form-encode before Basic.
		req.SetBasicAuth(url.QueryEscape(cfg.ClientID), url.QueryEscape(cfg.ClientSecret))
	}
	resp, err := v.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("vault: provider %s revocation: %w", p.ID, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	// RFC 7009 §2.2: 200 for success (also for an unknown token).
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("vault: provider %s revocation: HTTP %d", p.ID, resp.StatusCode)
	}
	return nil
}
