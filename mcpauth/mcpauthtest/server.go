// Package mcpauthtest is a hub in a box for the tests of MCP servers that use
// [github.com/agentid/agentid/mcpauth]: an httptest server that publishes
// RFC 8414 authorization server metadata and a JWKS, mints RFC 9068 ES256
// access tokens for any resource and scopes, answers RFC 7662 introspection
// (honouring [Server.Revoke]), and issues tokens to its one test client by
// the client-credentials grant and by RFC 8693 token exchange (for
// [mcpauth.Exchanger]), and keeps a vault of downstream credentials that
// it hands out by the hub's retrieval exchange (for
// [mcpauth.Exchanger.Connection]), with a connect page that a test
// "person" opens to connect.
//
//	hub := mcpauthtest.NewServer(t)
//	v, err := mcpauth.NewVerifier(ctx, mcpauth.Config{Issuer: hub.Issuer(), Resource: mcpURL})
//	token := hub.Token(mcpURL, "notes:read")
package mcpauthtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

const (
	testClientID     = "mcpauthtest-client"
	testClientSecret = "mcpauthtest-secret"
	defaultLifetime  = 5 * time.Minute
)

// Server is a running test hub. Its methods are safe for concurrent use.
type Server struct {
	srv        *httptest.Server
	now        func() time.Time
	lifetime   time.Duration
	defaultAud string

	mu      sync.Mutex
	keys    []signingKey // all published; the last one signs
	revoked map[string]bool

	jwksFetches    atomic.Int64
	introspections atomic.Int64

	vaultMu     sync.Mutex
	connections map[connKey]*Connection
	intents     map[string]connKey
	retrievals  atomic.Int64
	forced      atomic.Int64
}

type signingKey struct {
	kid  string
	priv *ecdsa.PrivateKey
}

// Option configures a Server.
type Option func(*Server)

// WithClock sets the clock used for iat/exp of minted tokens and for
// introspection's expiry check. The default is time.Now.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithTokenLifetime sets the lifetime of minted tokens (default 5 minutes).
func WithTokenLifetime(d time.Duration) Option { return func(s *Server) { s.lifetime = d } }

// WithDefaultAudience sets the audience of tokens from the token endpoint
// when the request names no resource (RFC 8707 §2 lets an AS pick a default;
// some clients, like x/oauth2's client-credentials flow, send none).
// Without it such requests fail with invalid_target.
func WithDefaultAudience(resource string) Option {
	return func(s *Server) { s.defaultAud = resource }
}

// NewServer starts a test hub and closes it when t ends.
func NewServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s, err := Start(opts...)
	if err != nil {
		t.Fatalf("mcpauthtest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// Start starts a test hub outside a test (in an Example, say); call Close
// when done.
func Start(opts ...Option) (*Server, error) {
	s := &Server{now: time.Now, lifetime: defaultLifetime, revoked: map[string]bool{},
		connections: map[connKey]*Connection{}, intents: map[string]connKey{}}
	for _, o := range opts {
		o(s)
	}
	if err := s.RotateKey(); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", s.serveMetadata)
	mux.HandleFunc("GET /.well-known/openid-configuration", s.serveMetadata)
	mux.HandleFunc("GET /jwks", s.serveJWKS)
	mux.HandleFunc("POST /introspect", s.serveIntrospect)
	mux.HandleFunc("POST /token", s.serveToken)
	mux.HandleFunc("GET /connections/connect/{provider}", s.serveConnect)
	s.srv = httptest.NewServer(mux)
	return s, nil
}

// Close shuts the hub down.
func (s *Server) Close() { s.srv.Close() }

// Issuer is the hub's issuer identifier: its base URL, without a trailing
// slash.
func (s *Server) Issuer() string { return s.srv.URL }

// IntrospectionCredentials are the client credentials the introspection and
// token endpoints accept (HTTP Basic or form fields).
func (s *Server) IntrospectionCredentials() (clientID, clientSecret string) {
	return testClientID, testClientSecret
}

// JWKSFetches counts requests to the key set endpoint, so tests can assert
// caching and rate limiting.
func (s *Server) JWKSFetches() int { return int(s.jwksFetches.Load()) }

// Introspections counts requests to the introspection endpoint.
func (s *Server) Introspections() int { return int(s.introspections.Load()) }

// RotateKey generates a new ES256 signing key with a fresh kid and signs all
// later tokens with it. Earlier keys stay published, as at a real hub during
// rotation.
func (s *Server) RotateKey() error {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.keys = append(s.keys, signingKey{kid: randomString(8), priv: priv})
	s.mu.Unlock()
	return nil
}

// Revoke makes introspection report the token with this jti inactive.
func (s *Server) Revoke(jti string) {
	s.mu.Lock()
	s.revoked[jti] = true
	s.mu.Unlock()
}

// TokenOptions describe a token for TokenWith. Zero fields take the defaults
// noted; the odd values let tests build tokens a verifier must refuse.
type TokenOptions struct {
	// Audience is aud (a single entry is encoded as a string).
	Audience []string
	// Scopes become the space-separated scope claim; nil omits it.
	Scopes []string
	// Subject defaults to "user-1"; ClientID to the test client's ID.
	Subject  string
	ClientID string
	// Issuer defaults to the hub's issuer.
	Issuer string
	// JTI defaults to a random value.
	JTI string
	// Type is the typ header, default "at+jwt"; OmitType leaves it out.
	Type     string
	OmitType bool
	// KeyID overrides the kid header (the token is still signed with the
	// current key), e.g. to make a verifier look up an unknown kid.
	KeyID string
	// IssuedAt defaults to now, ExpiresAt to IssuedAt plus the token
	// lifetime; OmitExpiry leaves exp out. NotBefore is omitted when zero.
	IssuedAt   time.Time
	ExpiresAt  time.Time
	NotBefore  time.Time
	OmitExpiry bool
	// Extra claims are added last and override the ones above.
	Extra map[string]any
}

// Token mints a valid access token for resource with the given scopes.
func (s *Server) Token(resource string, scopes ...string) string {
	return s.TokenWith(TokenOptions{Audience: []string{resource}, Scopes: scopes})
}

// TokenWith mints a token as o describes. It panics only if signing fails,
// which does not happen with the hub's own key.
func (s *Server) TokenWith(o TokenOptions) string {
	tok, err := s.mint(o)
	if err != nil {
		panic(fmt.Sprintf("mcpauthtest: minting token: %v", err))
	}
	return tok
}

func (s *Server) mint(o TokenOptions) (string, error) {
	s.mu.Lock()
	key := s.keys[len(s.keys)-1]
	s.mu.Unlock()

	iat := o.IssuedAt
	if iat.IsZero() {
		iat = s.now()
	}
	claims := map[string]any{
		"iss":       orDefault(o.Issuer, s.Issuer()),
		"sub":       orDefault(o.Subject, "user-1"),
		"client_id": orDefault(o.ClientID, testClientID),
		"jti":       orDefault(o.JTI, randomString(16)),
		"iat":       iat.Unix(),
	}
	switch len(o.Audience) {
	case 0:
	case 1:
		claims["aud"] = o.Audience[0]
	default:
		claims["aud"] = o.Audience
	}
	if o.Scopes != nil {
		claims["scope"] = strings.Join(o.Scopes, " ")
	}
	if !o.OmitExpiry {
		exp := o.ExpiresAt
		if exp.IsZero() {
			exp = iat.Add(s.lifetime)
		}
		claims["exp"] = exp.Unix()
	}
	if !o.NotBefore.IsZero() {
		claims["nbf"] = o.NotBefore.Unix()
	}
	maps.Copy(claims, o.Extra)
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}

	opts := &jose.SignerOptions{}
	if !o.OmitType {
		opts = opts.WithType(jose.ContentType(orDefault(o.Type, "at+jwt")))
	}
	kid := orDefault(o.KeyID, key.kid)
	signer, err := jose.NewSigner(jose.SigningKey{
		Algorithm: jose.ES256,
		Key:       jose.JSONWebKey{Key: key.priv, KeyID: kid, Algorithm: string(jose.ES256)},
	}, opts)
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

func (s *Server) serveMetadata(w http.ResponseWriter, _ *http.Request) {
	iss := s.Issuer()
	// RFC 8414 §2, with what MCP clients require (PKCE S256, code).
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                        iss,
		"token_endpoint":                                iss + "/token",
		"jwks_uri":                                      iss + "/jwks",
		"introspection_endpoint":                        iss + "/introspect",
		"grant_types_supported":                         []string{"client_credentials", grantTokenExchange},
		"response_types_supported":                      []string{"code"},
		"code_challenge_methods_supported":              []string{"S256"},
		"token_endpoint_auth_methods_supported":         []string{"client_secret_basic", "client_secret_post"},
		"introspection_endpoint_auth_methods_supported": []string{"client_secret_basic"},
	})
}

func (s *Server) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	s.jwksFetches.Add(1)
	s.mu.Lock()
	set := jose.JSONWebKeySet{}
	for _, k := range s.keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{
			Key: &k.priv.PublicKey, KeyID: k.kid, Algorithm: string(jose.ES256), Use: "sig",
		})
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/jwk-set+json")
	_ = json.NewEncoder(w).Encode(set)
}

// serveIntrospect implements RFC 7662 §2 for tokens this hub minted.
func (s *Server) serveIntrospect(w http.ResponseWriter, r *http.Request) {
	s.introspections.Add(1)
	if !s.clientAuthenticated(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="mcpauthtest"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	claims, ok := s.activeClaims(r.PostFormValue("token"))
	if !ok {
		writeJSON(w, http.StatusOK, map[string]any{"active": false})
		return
	}
	claims["active"] = true
	claims["token_type"] = "Bearer"
	writeJSON(w, http.StatusOK, claims)
}

// activeClaims returns the claims of a token this hub signed that is neither
// revoked nor expired.
func (s *Server) activeClaims(token string) (map[string]any, bool) {
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil || len(jws.Signatures) != 1 {
		return nil, false
	}
	s.mu.Lock()
	keys := append([]signingKey(nil), s.keys...)
	s.mu.Unlock()
	var payload []byte
	for _, k := range keys {
		if p, err := jws.Verify(&k.priv.PublicKey); err == nil {
			payload = p
			break
		}
	}
	if payload == nil {
		return nil, false
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, false
	}
	jti, _ := claims["jti"].(string)
	s.mu.Lock()
	revoked := s.revoked[jti]
	s.mu.Unlock()
	if revoked {
		return nil, false
	}
	if exp, ok := claims["exp"].(float64); ok && s.now().Unix() >= int64(exp) {
		return nil, false
	}
	return claims, true
}

// serveToken implements the client-credentials grant (RFC 6749 §4.4) for
// the test client, with RFC 8707 resource as the audience.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if !s.clientAuthenticated(r) {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	switch r.PostFormValue("grant_type") {
	case "client_credentials":
	case grantTokenExchange:
		s.serveExchange(w, r)
		return
	default:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type"})
		return
	}
	resources := r.PostForm["resource"]
	if len(resources) == 0 && s.defaultAud != "" {
		resources = []string{s.defaultAud}
	}
	if len(resources) == 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_target", "error_description": "resource is required"})
		return
	}
	scopes := strings.Fields(r.PostFormValue("scope"))
	tok, err := s.mint(TokenOptions{Audience: resources, Scopes: scopes, Subject: testClientID})
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok,
		"token_type":   "Bearer",
		"expires_in":   int(s.lifetime / time.Second),
		"scope":        strings.Join(scopes, " "),
	})
}

const (
	grantTokenExchange   = "urn:ietf:params:oauth:grant-type:token-exchange"
	tokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
)

// serveExchange implements RFC 8693 token exchange the way the hub does for
// access tokens, for the test client: the subject token must be an active
// token of this hub; the new token keeps its sub, is issued to the test
// client for the one resource named, with the requested scopes (which must
// be among the subject token's; none requested means all of them), expires
// no later than the subject token, and carries act = {sub: test client}
// nesting the subject token's act, or {sub: its client_id} when it had none.
// Unlike the hub, it does not check that the test client is the subject
// token's audience.
func (s *Server) serveExchange(w http.ResponseWriter, r *http.Request) {
	fail := func(code, desc string) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": code, "error_description": desc})
	}
	if r.PostFormValue("subject_token_type") != tokenTypeAccessToken {
		fail("unsupported_token_type", "subject_token_type must be access_token")
		return
	}
	if t := r.PostFormValue("requested_token_type"); t != "" && t != tokenTypeAccessToken {
		fail("unsupported_token_type", "requested_token_type must be access_token")
		return
	}
	subject, ok := s.activeClaims(r.PostFormValue("subject_token"))
	if !ok {
		fail("invalid_grant", "subject token is not active")
		return
	}
	if len(r.PostForm["resource"]) != 1 {
		fail("invalid_target", "exactly one resource is required")
		return
	}
	if provider, ok := strings.CutPrefix(r.PostFormValue("resource"), s.Issuer()+"/providers/"); ok {
		s.serveRetrieval(w, r, subject, provider)
		return
	}
	granted, _ := subject["scope"].(string)
	have := strings.Fields(granted)
	scopes := strings.Fields(r.PostFormValue("scope"))
	for _, sc := range scopes {
		if !slices.Contains(have, sc) {
			fail("invalid_scope", "scope exceeds the subject token's")
			return
		}
	}
	if len(scopes) == 0 {
		scopes = have
	}
	prior, _ := subject["act"].(map[string]any)
	if prior == nil {
		prior = map[string]any{"sub": subject["client_id"]}
	}
	now := s.now()
	exp := now.Add(s.lifetime)
	if e, ok := subject["exp"].(float64); ok && time.Unix(int64(e), 0).Before(exp) {
		exp = time.Unix(int64(e), 0)
	}
	sub, _ := subject["sub"].(string)
	tok, err := s.mint(TokenOptions{
		Audience: r.PostForm["resource"], Scopes: scopes, Subject: sub, IssuedAt: now, ExpiresAt: exp,
		Extra: map[string]any{"act": map[string]any{"sub": testClientID, "act": prior}},
	})
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token":      tok,
		"issued_token_type": tokenTypeAccessToken,
		"token_type":        "Bearer",
		"expires_in":        int(exp.Sub(now) / time.Second),
		"scope":             strings.Join(scopes, " "),
	})
}

// clientAuthenticated accepts client_secret_basic (either raw or
// form-urlencoded credentials, RFC 6749 §2.3.1) or client_secret_post.
func (s *Server) clientAuthenticated(r *http.Request) bool {
	id, secret, ok := r.BasicAuth()
	if ok {
		if uid, err := url.QueryUnescape(id); err == nil {
			id = uid
		}
		if usecret, err := url.QueryUnescape(secret); err == nil {
			secret = usecret
		}
	} else {
		id, secret = r.PostFormValue("client_id"), r.PostFormValue("client_secret")
	}
	return subtle.ConstantTimeCompare([]byte(id), []byte(testClientID)) == 1 &&
		subtle.ConstantTimeCompare([]byte(secret), []byte(testClientSecret)) == 1
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(errors.Join(errors.New("mcpauthtest: no randomness"), err))
	}
	if n >= 16 {
		return hex.EncodeToString(b)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
