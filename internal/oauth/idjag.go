package oauth

// Token type identifiers of the Identity Assertion JWT Authorization Grant
// (draft-ietf-oauth-identity-assertion-authz-grant §4.3) and RFC 8693 §3.
const (
	// TokenTypeIDJAG is the requested_token_type (and issued_token_type)
	// of an ID-JAG.
	TokenTypeIDJAG = "urn:ietf:params:oauth:token-type:id-jag"
	// TokenTypeIDToken is the subject_token_type of an OpenID Connect ID
	// token.
	TokenTypeIDToken = "urn:ietf:params:oauth:token-type:id_token"
	// TokenTypeNA is the token_type of a token exchange response whose
	// token is not an access token (RFC 8693 §2.2.1).
	TokenTypeNA = "N_A"
)
