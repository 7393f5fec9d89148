package oauth

import (
	"bytes"
	"crypto/rsa"
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	jose "github.com/go-jose/go-jose/v4"
)

// Limits on registered metadata, to keep stored rows and consent screens
// bounded.
const (
	maxRedirectURIs   = 20
	maxClientName     = 200
	maxContacts       = 10
	maxContactLength  = 320 // RFC 5321 §4.5.3.1 address limits
	maxSoftwareString = 200
)

// ClientMetadata is the client metadata of RFC 7591 §2 (plus
// application_type from OpenID Connect Dynamic Client Registration §2), as
// sent in registration and RFC 7592 update requests and echoed back.
type ClientMetadata struct {
	RedirectURIs            []string        `json:"redirect_uris,omitempty"`
	TokenEndpointAuthMethod string          `json:"token_endpoint_auth_method,omitempty"`
	GrantTypes              []string        `json:"grant_types,omitempty"`
	ResponseTypes           []string        `json:"response_types,omitempty"`
	ClientName              string          `json:"client_name,omitempty"`
	ClientURI               string          `json:"client_uri,omitempty"`
	LogoURI                 string          `json:"logo_uri,omitempty"`
	Scope                   string          `json:"scope,omitempty"`
	Contacts                []string        `json:"contacts,omitempty"`
	TOSURI                  string          `json:"tos_uri,omitempty"`
	PolicyURI               string          `json:"policy_uri,omitempty"`
	JWKSURI                 string          `json:"jwks_uri,omitempty"`
	JWKS                    json.RawMessage `json:"jwks,omitempty"`
	SoftwareID              string          `json:"software_id,omitempty"`
	SoftwareVersion         string          `json:"software_version,omitempty"`
	SoftwareStatement       string          `json:"software_statement,omitempty"`
	ApplicationType         string          `json:"application_type,omitempty"`
}

// ParseClientMetadata decodes a registration or update body. The body must
// be a JSON object; a known field of the wrong type is
// invalid_client_metadata; unknown fields are ignored (RFC 7591 §2: the
// server "MUST ignore any client metadata sent by the client that it does
// not understand"). Field names match exactly, not case-insensitively. The
// caller limits the body size.
func ParseClientMetadata(body []byte) (*ClientMetadata, *Error) {
	// RFC 8259 §8.1: JSON text is UTF-8. encoding/json would replace
	// invalid bytes with U+FFFD; a name that is not what the client sent
	// must not reach a consent screen, so the body is refused instead.
	if !utf8.Valid(body) {
		return nil, ErrInvalidClientMetadata("the request body is not valid UTF-8")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return nil, ErrInvalidClientMetadata("the request body must be a JSON object")
	}
	m := &ClientMetadata{}
	strs := map[string]*string{
		"token_endpoint_auth_method": &m.TokenEndpointAuthMethod,
		"client_name":                &m.ClientName,
		"client_uri":                 &m.ClientURI,
		"logo_uri":                   &m.LogoURI,
		"scope":                      &m.Scope,
		"tos_uri":                    &m.TOSURI,
		"policy_uri":                 &m.PolicyURI,
		"jwks_uri":                   &m.JWKSURI,
		"software_id":                &m.SoftwareID,
		"software_version":           &m.SoftwareVersion,
		"software_statement":         &m.SoftwareStatement,
		"application_type":           &m.ApplicationType,
	}
	lists := map[string]*[]string{
		"redirect_uris":  &m.RedirectURIs,
		"grant_types":    &m.GrantTypes,
		"response_types": &m.ResponseTypes,
		"contacts":       &m.Contacts,
	}
	for name, raw := range fields {
		var err error
		switch {
		case strs[name] != nil:
			err = json.Unmarshal(raw, strs[name])
		case lists[name] != nil:
			err = json.Unmarshal(raw, lists[name])
		case name == "jwks":
			raw = bytes.TrimSpace(raw)
			switch {
			case string(raw) == "null":
			case len(raw) > 0 && raw[0] == '{':
				m.JWKS = append(json.RawMessage(nil), raw...)
			default:
				return nil, ErrInvalidClientMetadata("jwks must be a JSON object")
			}
		default:
			continue
		}
		if err == nil && loneSurrogate(raw) {
			// RFC 8259 §8.2: an escaped unpaired surrogate is not a
			// character; encoding/json would decode it as U+FFFD.
			return nil, ErrInvalidClientMetadata("%s contains an unpaired UTF-16 surrogate escape", name)
		}
		if err != nil {
			if lists[name] != nil {
				return nil, ErrInvalidClientMetadata("%s must be an array of strings", name)
			}
			return nil, ErrInvalidClientMetadata("%s must be a string", name)
		}
	}
	return m, nil
}

// SupportedGrant is a grant type a server serves at its token endpoint, as
// client registration must know it (RFC 7591 §2, grant_types). The server
// passes its own list to Validate, so that registration accepts exactly the
// grants its token endpoint serves.
type SupportedGrant struct {
	Type string
	// Public: public clients (token_endpoint_auth_method none) may use it.
	Public bool
}

// Validate applies the RFC 7591 §2 defaults and checks the metadata,
// returning the first problem with a description a developer can act on.
// grant_types must be among supported. Defaults: grant_types
// [authorization_code]; response_types [code], or none when
// authorization_code is not among the grant types; token_endpoint_auth_method
// client_secret_basic; application_type web. Duplicate grant and response
// types are removed.
func (m *ClientMetadata) Validate(supported []SupportedGrant) *Error {
	// RFC 7591 §2.3: a software statement is verified, and its claims
	// merged, by the registration endpoint before metadata is validated
	// (clients.Statements); one that reaches here came another way.
	if m.SoftwareStatement != "" {
		return ErrInvalidClientMetadata("software_statement is accepted only in a registration request, from an issuer this server trusts")
	}
	if m.ApplicationType == "" {
		// Omitted: a client whose every redirect URI is a loopback or
		// private-use one is a native app (RFC 8252 §7), as MCP clients that
		// listen on localhost are; anything else is a web client.
		m.ApplicationType = ApplicationTypeWeb
		if len(m.RedirectURIs) > 0 && !slices.ContainsFunc(m.RedirectURIs, func(u string) bool { return !IsNativeRedirect(u) }) {
			m.ApplicationType = ApplicationTypeNative
		}
	}
	if m.ApplicationType != ApplicationTypeWeb && m.ApplicationType != ApplicationTypeNative {
		return ErrInvalidClientMetadata("application_type must be web or native")
	}

	if len(m.GrantTypes) == 0 {
		m.GrantTypes = []string{GrantAuthorizationCode}
	}
	m.GrantTypes = dedupe(m.GrantTypes)
	for _, g := range m.GrantTypes {
		switch {
		case g == "implicit" || g == "password":
			// OAuth 2.1 §10.1 and §10.2 remove both grants.
			return ErrInvalidClientMetadata("grant type %s is not supported by OAuth 2.1", g)
		case !slices.ContainsFunc(supported, func(s SupportedGrant) bool { return s.Type == g }):
			return ErrInvalidClientMetadata("grant_types names a grant type this server does not serve (it serves %s)", grantTypeList(supported))
		}
	}
	usesCode := contains(m.GrantTypes, GrantAuthorizationCode)
	if len(m.ResponseTypes) == 0 {
		m.ResponseTypes = nil
		if usesCode {
			m.ResponseTypes = []string{ResponseTypeCode}
		}
	}
	m.ResponseTypes = dedupe(m.ResponseTypes)
	for _, rt := range m.ResponseTypes {
		if rt != ResponseTypeCode {
			return ErrInvalidClientMetadata("only response type code is supported")
		}
	}
	// RFC 7591 §2.1: grant_types and response_types must be consistent;
	// authorization_code goes with code and code with authorization_code.
	if usesCode != contains(m.ResponseTypes, ResponseTypeCode) {
		return ErrInvalidClientMetadata("grant type authorization_code and response type code must be registered together")
	}

	if m.TokenEndpointAuthMethod == "" {
		m.TokenEndpointAuthMethod = AuthMethodClientSecretBasic
	}
	switch m.TokenEndpointAuthMethod {
	case AuthMethodNone, AuthMethodClientSecretBasic, AuthMethodClientSecretPost, AuthMethodPrivateKeyJWT:
	default:
		return ErrInvalidClientMetadata("token_endpoint_auth_method must be none, client_secret_basic, client_secret_post or private_key_jwt")
	}
	// RFC 6749 §4.4: client_credentials, for one, is for confidential
	// clients only.
	if m.TokenEndpointAuthMethod == AuthMethodNone {
		for _, s := range supported {
			if !s.Public && contains(m.GrantTypes, s.Type) {
				return ErrInvalidClientMetadata("%s requires a confidential token_endpoint_auth_method", s.Type)
			}
		}
	}
	// RFC 7591 §2: jwks and jwks_uri MUST NOT both be present.
	if len(m.JWKS) > 0 && m.JWKSURI != "" {
		return ErrInvalidClientMetadata("jwks and jwks_uri must not both be present")
	}
	if m.TokenEndpointAuthMethod == AuthMethodPrivateKeyJWT && len(m.JWKS) == 0 && m.JWKSURI == "" {
		return ErrInvalidClientMetadata("private_key_jwt requires jwks or jwks_uri")
	}
	if len(m.JWKS) > 0 {
		if _, err := ParsePublicJWKS(m.JWKS); err != nil {
			return err
		}
	}

	if usesCode && len(m.RedirectURIs) == 0 {
		return ErrInvalidRedirectURI("redirect_uris is required for the authorization_code grant")
	}
	if len(m.RedirectURIs) > maxRedirectURIs {
		return ErrInvalidRedirectURI("at most %d redirect URIs may be registered", maxRedirectURIs)
	}
	for _, u := range m.RedirectURIs {
		if err := ValidateRedirectURI(u, m.ApplicationType); err != nil {
			return err
		}
	}

	for _, f := range []struct{ name, value string }{
		{"client_uri", m.ClientURI}, {"logo_uri", m.LogoURI}, {"tos_uri", m.TOSURI},
		{"policy_uri", m.PolicyURI}, {"jwks_uri", m.JWKSURI},
	} {
		if f.value == "" {
			continue
		}
		if err := validateMetadataURI(f.value); err != "" {
			return ErrInvalidClientMetadata("%s %s", f.name, err)
		}
	}
	if utf8.RuneCountInString(m.ClientName) > maxClientName {
		return ErrInvalidClientMetadata("client_name is longer than %d characters", maxClientName)
	}
	if !displayText(m.ClientName) {
		return ErrInvalidClientMetadata("client_name must be valid UTF-8 without control, bidirectional or invisible formatting characters")
	}
	if m.ClientName != "" && strings.TrimFunc(m.ClientName, blankRune) == "" {
		// A name of spaces would leave the consent screen's "Allow … to
		// act for you?" without anyone in it.
		return ErrInvalidClientMetadata("client_name must contain a visible character")
	}
	if len(m.Contacts) > maxContacts {
		return ErrInvalidClientMetadata("at most %d contacts may be registered", maxContacts)
	}
	for _, c := range m.Contacts {
		if c == "" || len(c) > maxContactLength || !displayText(c) {
			return ErrInvalidClientMetadata("each contact must be a non-empty string of at most %d characters", maxContactLength)
		}
	}
	if _, err := ParseScope(m.Scope); err != nil {
		return ErrInvalidClientMetadata("scope is not a valid space-separated list of scope tokens")
	}
	for _, f := range []struct{ name, value string }{
		{"software_id", m.SoftwareID}, {"software_version", m.SoftwareVersion},
	} {
		if len(f.value) > maxSoftwareString || !displayText(f.value) {
			return ErrInvalidClientMetadata("%s must be printable text of at most %d characters", f.name, maxSoftwareString)
		}
	}
	return nil
}

// validateMetadataURI checks a URL-valued metadata field: absolute https
// (http only on loopback hosts), at most 2000 characters, no userinfo or
// fragment. It returns what is wrong, or "".
func validateMetadataURI(s string) string {
	if len(s) > maxURILength {
		return "is too long"
	}
	if !uriText(s) || strings.Contains(s, "#") {
		return "must be an RFC 3986 URI without whitespace or fragment"
	}
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" || u.Host == "" || u.User != nil {
		return "must be an absolute URI with a host and no userinfo"
	}
	host, _, ok := splitAuthority(u.Host)
	if !ok {
		return "has an invalid host or port"
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
	case "http":
		if !IsLoopbackHost(host) {
			return "must use https (http only on loopback hosts)"
		}
	default:
		return "must use https"
	}
	return ""
}

// Bounds of a client's registered JWK set. Every key is work the hub may do
// for an unauthenticated request (an assertion without kid is tried against
// each), so a self-registered client must not make that work large.
const (
	// MaxClientKeys is the most keys a client may register: enough for a
	// rotation with overlap, far from the hundreds that make every refused
	// assertion cost tens of signature checks.
	MaxClientKeys = 10
	// maxJWKSLength bounds the JSON of the set (x5c chains included).
	maxJWKSLength = 32 << 10
	// minRSABits and maxRSABits bound RSA keys: below 2048 bits is weak
	// (NIST SP 800-131A), above 4096 makes each verification costly.
	minRSABits, maxRSABits = 2048, 4096
)

// ParsePublicJWKS parses a client's JWK set (RFC 7517 §5) and requires
// every key to be a valid public asymmetric key: a client registers keys to
// verify its signatures, so a private or symmetric key is a mistake that must
// not be stored. An empty set is refused, and so is a set over the bounds:
// more than MaxClientKeys keys, more than 32 KiB, an RSA key outside
// 2048–4096 bits, or two keys with the same kid (RFC 7517 §4.5: kids
// distinguish the keys of a set, and an assertion naming a kid is checked
// against that one key only).
func ParsePublicJWKS(raw []byte) (*jose.JSONWebKeySet, *Error) {
	if len(raw) > maxJWKSLength {
		return nil, ErrInvalidClientMetadata("jwks must be at most %d KiB", maxJWKSLength>>10)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, ErrInvalidClientMetadata("jwks is not a valid JWK set")
	}
	if len(set.Keys) == 0 {
		return nil, ErrInvalidClientMetadata("jwks must contain at least one key")
	}
	if len(set.Keys) > MaxClientKeys {
		return nil, ErrInvalidClientMetadata("jwks must contain at most %d keys", MaxClientKeys)
	}
	kids := make(map[string]bool, len(set.Keys))
	for i := range set.Keys {
		k := &set.Keys[i]
		if !k.Valid() || !k.IsPublic() {
			return nil, ErrInvalidClientMetadata("jwks must contain only public asymmetric keys")
		}
		if rk, ok := k.Key.(*rsa.PublicKey); ok {
			if n := rk.N.BitLen(); n < minRSABits || n > maxRSABits {
				return nil, ErrInvalidClientMetadata("jwks RSA keys must have %d to %d bits", minRSABits, maxRSABits)
			}
		}
		if k.KeyID != "" {
			if kids[k.KeyID] {
				return nil, ErrInvalidClientMetadata("jwks must not contain two keys with the same kid")
			}
			kids[k.KeyID] = true
		}
	}
	return &set, nil
}

// displayText reports whether s can be shown on a page as the one line it
// appears to be: valid UTF-8 with no control characters (Cc), no line or
// paragraph separators, and no format characters (Cf) — the bidirectional
// embeddings, overrides and isolates (U+202A–202E, U+2066–2069), the marks
// U+200E, U+200F and U+061C, the zero-width characters (U+200B–200D,
// U+2060, U+FEFF) and the invisible tag characters, nor the other
// default-ignorable characters, which render as nothing (U+034F, U+17B4,
// U+17B5 and the Hangul fillers U+115F, U+1160, U+3164, U+FFA0: a name of
// fillers looks empty); variation selectors stay, emoji use them. A
// right-to-left override in a client name would reverse the rest of a consent screen's
// heading; zero-width characters make two names that look the same differ.
// The replacement character U+FFFD is refused too: it only appears where
// text was broken before it reached us.
func displayText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !displayRune(r) {
			return false
		}
	}
	return true
}

func displayRune(r rune) bool {
	return !unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Other_Default_Ignorable_Code_Point) && r != utf8.RuneError
}

// blankRune reports whether r shows as empty space: a space separator
// (U+0020, U+00A0, U+2000–200A, U+3000, …) or the blank braille pattern U+2800.
func blankRune(r rune) bool {
	return unicode.Is(unicode.Zs, r) || r == '\u2800'
}

// loneSurrogate reports whether the raw JSON value escapes a UTF-16
// surrogate (\uD800–\uDFFF) that is not part of a high-low pair.
func loneSurrogate(raw []byte) bool {
	hex4 := func(i int) (rune, bool) {
		if i+6 > len(raw) || raw[i] != '\\' || raw[i+1] != 'u' {
			return 0, false
		}
		n, err := strconv.ParseUint(string(raw[i+2:i+6]), 16, 16)
		return rune(n), err == nil
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		r, ok := hex4(i)
		if !ok {
			i++ // skip the escaped character, which may be a backslash
			continue
		}
		switch {
		case r >= 0xd800 && r < 0xdc00:
			low, ok := hex4(i + 6)
			if !ok || low < 0xdc00 || low > 0xdfff {
				return true
			}
			i += 11
		case r >= 0xdc00 && r <= 0xdfff:
			return true
		default:
			i += 5
		}
	}
	return false
}

// grantTypeList names the supported grant types for an error description.
func grantTypeList(supported []SupportedGrant) string {
	names := make([]string, len(supported))
	for i, s := range supported {
		names[i] = s.Type
	}
	return strings.Join(names, ", ")
}

func dedupe(xs []string) []string {
	var out []string
	for _, x := range xs {
		if !contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// ClientInformation is the registration response (RFC 7591 §3.2.1, RFC 7592
// §3): the issued identifiers plus all registered metadata inlined.
type ClientInformation struct {
	ClientID         string `json:"client_id"`
	ClientSecret     string `json:"client_secret,omitempty"`
	ClientIDIssuedAt int64  `json:"client_id_issued_at,omitempty"`
	// ClientSecretExpiresAt is REQUIRED when a secret is issued; 0 means
	// it never expires (RFC 7591 §3.2.1).
	ClientSecretExpiresAt   *int64 `json:"client_secret_expires_at,omitempty"`
	RegistrationAccessToken string `json:"registration_access_token,omitempty"`
	RegistrationClientURI   string `json:"registration_client_uri,omitempty"`
	ClientMetadata
}
