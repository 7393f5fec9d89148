package server

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/agentid/agentid/internal/oauth"
)

// metadataTTL bounds how stale scopes_supported may be after a resource
// changes; the rest of the document is static.
const metadataTTL = 5 * time.Second

// metadata builds the RFC 8414 document (oidc false) or the OpenID
// Connect discovery document (oidc true). Both carry one issuer (RFC 8414
// §3.3, OpenID Connect Discovery §4.3) and the same values wherever their
// fields overlap. Until the hub issues ID tokens, the OIDC document
// advertises nothing about them: it is the RFC 8414 document plus the
// subject type of the sub the hub issues.
func (s *Server) metadata(r *http.Request, oidc bool) ([]byte, error) {
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	now := s.now()
	if s.metaJSON != nil && now.Sub(s.metaAt) < metadataTTL {
		if oidc {
			return s.oidcJSON, nil
		}
		return s.metaJSON, nil
	}
	resources, err := s.st.ListResources(r.Context(), s.tenant)
	if err != nil {
		return nil, err
	}
	var scopes []string
	for _, res := range resources {
		for _, sc := range res.Scopes {
			scopes = append(scopes, sc.Name)
		}
	}
	slices.Sort(scopes)
	scopes = slices.Compact(scopes)
	// The OpenID Connect scopes (oidc.go) come first, in both documents:
	// they share every field they have in common.
	scopes = append(slices.Clone(oidcScopes), slices.DeleteFunc(scopes, func(sc string) bool { return slices.Contains(oidcScopes, sc) })...)
	authMethods := []string{"none", "client_secret_basic", "client_secret_post", "private_key_jwt"}
	m := oauth.ServerMetadata{
		Issuer:                            s.issuer,
		AuthorizationEndpoint:             s.issuer + "/authorize",
		TokenEndpoint:                     s.issuer + "/token",
		JWKSURI:                           s.issuer + "/jwks.json",
		ScopesSupported:                   scopes,
		ResponseTypesSupported:            []string{"code"},
		ResponseModesSupported:            []string{"query"},
		GrantTypesSupported:               grantTypeNames(s.grants),
		TokenEndpointAuthMethodsSupported: authMethods,
		TokenEndpointAuthSigningAlgValuesSupported: assertionAlgs,
		RevocationEndpoint:                         s.issuer + "/revoke",
		RevocationEndpointAuthMethodsSupported:     authMethods,
		IntrospectionEndpoint:                      s.issuer + "/introspect",
		IntrospectionEndpointAuthMethodsSupported:  authMethods[1:],
		CodeChallengeMethodsSupported:              []string{"S256"},
		AuthorizationResponseIssParameterSupported: true,
		// draft-ietf-oauth-client-id-metadata-document §5: an https
		// client_id is resolved by fetching it (cimd.go).
		ClientIDMetadataDocumentSupported: !s.cfg.DisableCIMD,
		// The hub as an enterprise IdP (grant_idjag.go).
		IdentityChainingRequestedTokenTypesSupported: s.identityChainingTypes(),
	}
	if slices.Contains(m.GrantTypesSupported, oauth.GrantJWTBearer) {
		// The resource authorization server's side of enterprise-managed
		// authorization (grant_jwtbearer.go).
		m.AuthorizationGrantProfilesSupported = []string{oauth.GrantProfileIDJAG}
	}
	if !s.cfg.Registration.Disabled {
		m.RegistrationEndpoint = s.issuer + "/register"
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	// OpenID Connect Discovery 1.0 §3: sign-in with openid and profile
	// (oidc.go), ID tokens signed by the hub's keys, a sub the same for
	// every client.
	m.UserinfoEndpoint = s.issuer + "/userinfo"
	m.IDTokenSigningAlgValuesSupported = s.signingAlgs()
	m.SubjectTypesSupported = []string{"public"}
	m.ClaimsSupported = append(slices.Clone(userinfoClaims), idTokenClaims...)
	o, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	s.metaJSON, s.oidcJSON, s.metaAt = b, o, now
	if oidc {
		return o, nil
	}
	return b, nil
}

// assertionAlgs are the private_key_jwt signing algorithms accepted.
var assertionAlgs = []string{"ES256", "ES384", "EdDSA", "RS256", "PS256"}

// metadataPaths are the paths the metadata documents are served at besides
// the root well-known ones: for an issuer with a path
// (https://hub.example.com/tenant1) RFC 8414 §3.1 inserts the well-known
// segment before the path, OpenID Connect Discovery §4 appends it, and
// MCP clients try, in order (MCP 2026-07-28 authorization server metadata
// discovery): /.well-known/oauth-authorization-server/tenant1,
// /.well-known/openid-configuration/tenant1 and
// /tenant1/.well-known/openid-configuration. Some clients turn Client ID
// Metadata Documents off when they find none of them. Each serves the
// same document (same issuer) as its root counterpart. Nothing is added
// for an issuer without a path, or with one a route pattern cannot
// carry literally.
func metadataPaths(issuer string) (oauthAS, oidc []string) {
	u, err := url.Parse(issuer)
	if err != nil {
		return nil, nil
	}
	p := strings.TrimSuffix(u.EscapedPath(), "/")
	if p == "" || strings.ContainsAny(p, "{} \t") {
		return nil, nil
	}
	return []string{"/.well-known/oauth-authorization-server" + p},
		[]string{"/.well-known/openid-configuration" + p, p + "/.well-known/openid-configuration"}
}

func (s *Server) handleMetadata(w http.ResponseWriter, r *http.Request) {
	s.serveMetadata(w, r, false)
}

func (s *Server) handleOIDCMetadata(w http.ResponseWriter, r *http.Request) {
	s.serveMetadata(w, r, true)
}

func (s *Server) serveMetadata(w http.ResponseWriter, r *http.Request, oidc bool) {
	b, err := s.metadata(r, oidc)
	if err != nil {
		s.writeProtocolError(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Cache-Control", "public, max-age=5")
	_, _ = w.Write(b)
}

func (s *Server) handleJWKS(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Cache-Control", "public, max-age=60")
	_, _ = w.Write(s.keys.JWKS())
}
