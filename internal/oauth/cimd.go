package oauth

import (
	"encoding/json"
	"net/url"
	"strings"
	"unicode/utf8"
)

// MaxMetadataDocument is the most bytes of a Client ID Metadata Document the
// hub reads (draft-ietf-oauth-client-id-metadata-document §6.6 recommends
// 5 KB).
const MaxMetadataDocument = 5120

// IsMetadataDocumentClientID reports whether a client_id names a Client ID
// Metadata Document: it is an https URL. Client ids the hub assigns never
// start with "https://" (they are RFC 3986 unreserved characters only), so
// the two kinds cannot be confused. Whether the URL is a valid document
// URL is ValidateMetadataDocumentURL's question.
func IsMetadataDocumentClientID(id string) bool {
	return strings.HasPrefix(id, "https://")
}

// ValidateMetadataDocumentURL applies the rules of a client identifier URL
// (draft-ietf-oauth-client-id-metadata-document §3, MCP 2026-07-28 client
// registration): https, a host, a path other than "/", no "." or ".."
// segment (also percent-encoded), no fragment, no username or password, at
// most 2000 characters of RFC 3986 URI text. A port and a query are
// allowed. The URL is compared with the document's client_id by simple
// string comparison, so it is not normalised here. The error is
// invalid_client: the request named a client the hub cannot resolve.
func ValidateMetadataDocumentURL(id string) *Error {
	bad := func(why string) *Error {
		return ErrInvalidClient("the client_id URL %s", why)
	}
	if !IsMetadataDocumentClientID(id) {
		return bad("must use https")
	}
	if len(id) > maxURILength {
		return bad("is longer than 2000 characters")
	}
	if !uriText(id) {
		return bad("must be an RFC 3986 URI: ASCII without whitespace, quotes or stray percent signs")
	}
	if strings.Contains(id, "#") {
		return bad("must not contain a fragment")
	}
	u, err := url.Parse(id)
	if err != nil || u.Opaque != "" || u.Host == "" {
		return bad("must be an absolute URL with a host")
	}
	if u.User != nil || strings.Contains(u.Host, "@") {
		return bad("must not contain a username or password")
	}
	if _, _, ok := splitAuthority(u.Host); !ok {
		return bad("has an invalid host or port")
	}
	path := u.EscapedPath()
	if path == "" || path == "/" {
		return bad("must have a path (the document's location, e.g. /client.json)")
	}
	for _, seg := range strings.Split(path[1:], "/") {
		if dotSegment(seg) {
			return bad("must not contain . or .. path segments")
		}
	}
	return nil
}

// dotSegment reports whether a raw path segment is "." or "..", counting
// the percent-encoded forms (%2e, %2E) that resolve to them (RFC 3986 §6.2.2.2).
func dotSegment(seg string) bool {
	s := strings.ReplaceAll(strings.ReplaceAll(seg, "%2e", "."), "%2E", ".")
	return s == "." || s == ".."
}

// sharedSecretMethods are token_endpoint_auth_method values built on a
// secret shared with the authorization server, which a document anyone
// can read must never use (draft-ietf-oauth-client-id-metadata-document §4.1).
var sharedSecretMethods = map[string]bool{
	AuthMethodClientSecretBasic: true,
	AuthMethodClientSecretPost:  true,
	"client_secret_jwt":         true,
}

// ParseClientMetadataDocument parses the Client ID Metadata Document
// fetched from docURL (draft-ietf-oauth-client-id-metadata-document §4,
// MCP 2026-07-28 client registration) and returns its client metadata,
// defaults not yet applied (the registrar validates it as any other
// client's, RFC 7591 §2). It checks, in the draft's order:
//   - docURL is a valid client identifier URL (ValidateMetadataDocumentURL);
//   - the body is a UTF-8 JSON object with a string client_id equal to
//     docURL by simple string comparison — no case, port or
//     percent-encoding normalisation (RFC 3986 §6.2.1);
//   - the required client_name and redirect_uris are present and not empty;
//   - no shared secret: no client_secret or client_secret_expires_at, and
//     no token_endpoint_auth_method built on one. An absent method is
//     "none" (the RFC 7591 default, client_secret_basic, cannot apply);
//     private_key_jwt needs jwks or jwks_uri, which the registrar checks.
//
// A software_statement in a document is dropped: nothing about it is
// verified, and the document's own URL is what identifies the client.
// Every failure is invalid_client with a description a developer can act
// on; the caller bounds the body (MaxMetadataDocument).
func ParseClientMetadataDocument(docURL string, body []byte) (*ClientMetadata, *Error) {
	if oe := ValidateMetadataDocumentURL(docURL); oe != nil {
		return nil, oe
	}
	bad := func(format string, args ...any) *Error {
		return ErrInvalidClient("the client metadata document "+format, args...)
	}
	if !utf8.Valid(body) {
		return nil, bad("is not valid UTF-8")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return nil, bad("is not a JSON object")
	}
	raw, ok := fields["client_id"]
	if !ok {
		return nil, bad("has no client_id")
	}
	var id string
	if err := json.Unmarshal(raw, &id); err != nil || loneSurrogate(raw) {
		return nil, bad("has a client_id that is not a string")
	}
	if id != docURL {
		return nil, bad("names client_id %q, which is not the URL it was fetched from", truncateText(id, 100))
	}
	for _, f := range []string{"client_secret", "client_secret_expires_at"} {
		if _, ok := fields[f]; ok {
			return nil, bad("must not contain %s: a public document cannot hold a secret", f)
		}
	}
	m, oe := ParseClientMetadata(body)
	if oe != nil {
		return nil, bad("is invalid: %s", oe.Description)
	}
	if m.ClientName == "" {
		return nil, bad("has no client_name")
	}
	if len(m.RedirectURIs) == 0 {
		return nil, bad("has no redirect_uris")
	}
	switch {
	case m.TokenEndpointAuthMethod == "":
		m.TokenEndpointAuthMethod = AuthMethodNone
	case sharedSecretMethods[m.TokenEndpointAuthMethod]:
		return nil, bad("declares token_endpoint_auth_method %s, a shared-secret method; use none or private_key_jwt", m.TokenEndpointAuthMethod)
	case m.TokenEndpointAuthMethod != AuthMethodNone && m.TokenEndpointAuthMethod != AuthMethodPrivateKeyJWT:
		return nil, bad("declares token_endpoint_auth_method %q; this server accepts none or private_key_jwt", truncateText(m.TokenEndpointAuthMethod, 60))
	}
	m.SoftwareStatement = ""
	return m, nil
}

// truncateText shortens s to n bytes on a rune boundary for an error
// description, marking the cut.
func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// PeekAssertionKeyID returns the unverified kid of a client assertion's
// header, or "" when it has none or is malformed: the server uses it only
// to ask a key set for that key.
func PeekAssertionKeyID(assertion string) string {
	tok, err := parseAssertion(assertion)
	if err != nil {
		return ""
	}
	return tok.Headers[0].KeyID
}
