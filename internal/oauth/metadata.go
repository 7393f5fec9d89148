package oauth

// GrantProfileIDJAG is the authorization_grant_profiles_supported value of
// identity assertion authorization grants (MCP enterprise-managed
// authorization).
const GrantProfileIDJAG = "urn:ietf:params:oauth:grant-profile:id-jag"

// ServerMetadata is the authorization server metadata document (RFC 8414
// §2), with the RFC 9207 §3 iss flag, the Client ID Metadata Document flag
// and the OpenID Connect Discovery 1.0 §3 fields MCP clients require.
type ServerMetadata struct {
	Issuer                                     string   `json:"issuer,omitempty"`
	AuthorizationEndpoint                      string   `json:"authorization_endpoint,omitempty"`
	TokenEndpoint                              string   `json:"token_endpoint,omitempty"`
	JWKSURI                                    string   `json:"jwks_uri,omitempty"`
	RegistrationEndpoint                       string   `json:"registration_endpoint,omitempty"`
	ScopesSupported                            []string `json:"scopes_supported,omitempty"`
	ResponseTypesSupported                     []string `json:"response_types_supported,omitempty"`
	ResponseModesSupported                     []string `json:"response_modes_supported,omitempty"`
	GrantTypesSupported                        []string `json:"grant_types_supported,omitempty"`
	TokenEndpointAuthMethodsSupported          []string `json:"token_endpoint_auth_methods_supported,omitempty"`
	TokenEndpointAuthSigningAlgValuesSupported []string `json:"token_endpoint_auth_signing_alg_values_supported,omitempty"`
	ServiceDocumentation                       string   `json:"service_documentation,omitempty"`
	RevocationEndpoint                         string   `json:"revocation_endpoint,omitempty"`
	RevocationEndpointAuthMethodsSupported     []string `json:"revocation_endpoint_auth_methods_supported,omitempty"`
	IntrospectionEndpoint                      string   `json:"introspection_endpoint,omitempty"`
	IntrospectionEndpointAuthMethodsSupported  []string `json:"introspection_endpoint_auth_methods_supported,omitempty"`
	CodeChallengeMethodsSupported              []string `json:"code_challenge_methods_supported,omitempty"`
	AuthorizationResponseIssParameterSupported bool     `json:"authorization_response_iss_parameter_supported,omitempty"`
	ClientIDMetadataDocumentSupported          bool     `json:"client_id_metadata_document_supported,omitempty"`
	// AuthorizationGrantProfilesSupported lists the jwt-bearer grant
	// profiles served (ID-JAG draft §6: GrantProfileIDJAG), never which
	// issuers are trusted.
	AuthorizationGrantProfilesSupported []string `json:"authorization_grant_profiles_supported,omitempty"`
	// IdentityChainingRequestedTokenTypesSupported lists the
	// requested_token_type values token exchange issues beyond access
	// tokens (draft-ietf-oauth-identity-chaining; the ID-JAG profile).
	IdentityChainingRequestedTokenTypesSupported []string `json:"identity_chaining_requested_token_types_supported,omitempty"`
	// The OpenID Connect Discovery §3 fields appear in the OpenID Connect
	// discovery document only.
	UserinfoEndpoint                 string   `json:"userinfo_endpoint,omitempty"`
	IDTokenSigningAlgValuesSupported []string `json:"id_token_signing_alg_values_supported,omitempty"`
	SubjectTypesSupported            []string `json:"subject_types_supported,omitempty"`
	ClaimsSupported                  []string `json:"claims_supported,omitempty"`
}
