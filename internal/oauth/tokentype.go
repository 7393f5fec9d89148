package oauth

// Token type identifiers (RFC 8693 §3), for subject_token_type,
// actor_token_type, requested_token_type and issued_token_type, and the
// ID-JAG type of the Identity Assertion JWT Authorization Grant draft.
const (
	TokenTypeAccessToken  = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeRefreshToken = "urn:ietf:params:oauth:token-type:refresh_token"
	TokenTypeIDToken      = "urn:ietf:params:oauth:token-type:id_token"
	TokenTypeJWT          = "urn:ietf:params:oauth:token-type:jwt"
	TokenTypeSAML1        = "urn:ietf:params:oauth:token-type:saml1"
	TokenTypeSAML2        = "urn:ietf:params:oauth:token-type:saml2"
	TokenTypeIDJAG        = "urn:ietf:params:oauth:token-type:id-jag"
	// TokenTypeAPIKey is agentid's issued_token_type of a retrieved
	// downstream API key (a static key, not an OAuth access token).
	TokenTypeAPIKey = "urn:agentid:params:oauth:token-type:api_key"
)
