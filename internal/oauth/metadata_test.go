package oauth

import (
	"encoding/json"
	"testing"
)

func TestServerMetadataJSON(t *testing.T) {
	tests := []struct {
		name string
		m    ServerMetadata
		want string
	}{
		{name: "empty", m: ServerMetadata{}, want: `{}`},
		{name: "mcp hub", m: ServerMetadata{
			Issuer:                            "https://id.example.com",
			AuthorizationEndpoint:             "https://id.example.com/authorize",
			TokenEndpoint:                     "https://id.example.com/token",
			JWKSURI:                           "https://id.example.com/jwks.json",
			RegistrationEndpoint:              "https://id.example.com/register",
			ScopesSupported:                   []string{"openid", "offline_access"},
			ResponseTypesSupported:            []string{"code"},
			ResponseModesSupported:            []string{"query"},
			GrantTypesSupported:               []string{"authorization_code", "refresh_token"},
			TokenEndpointAuthMethodsSupported: []string{"none", "client_secret_basic"},
			TokenEndpointAuthSigningAlgValuesSupported: []string{"ES256"},
			ServiceDocumentation:                       "https://docs.example.com",
			RevocationEndpoint:                         "https://id.example.com/revoke",
			RevocationEndpointAuthMethodsSupported:     []string{"none"},
			IntrospectionEndpoint:                      "https://id.example.com/introspect",
			IntrospectionEndpointAuthMethodsSupported:  []string{"client_secret_basic"},
			CodeChallengeMethodsSupported:              []string{"S256"},
			AuthorizationResponseIssParameterSupported: true,
			ClientIDMetadataDocumentSupported:          true,
			SubjectTypesSupported:                      []string{"public"},
		}, want: `{"issuer":"https://id.example.com","authorization_endpoint":"https://id.example.com/authorize","token_endpoint":"https://id.example.com/token","jwks_uri":"https://id.example.com/jwks.json","registration_endpoint":"https://id.example.com/register","scopes_supported":["openid","offline_access"],"response_types_supported":["code"],"response_modes_supported":["query"],"grant_types_supported":["authorization_code","refresh_token"],"token_endpoint_auth_methods_supported":["none","client_secret_basic"],"token_endpoint_auth_signing_alg_values_supported":["ES256"],"service_documentation":"https://docs.example.com","revocation_endpoint":"https://id.example.com/revoke","revocation_endpoint_auth_methods_supported":["none"],"introspection_endpoint":"https://id.example.com/introspect","introspection_endpoint_auth_methods_supported":["client_secret_basic"],"code_challenge_methods_supported":["S256"],"authorization_response_iss_parameter_supported":true,"client_id_metadata_document_supported":true,"subject_types_supported":["public"]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.m)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Fatalf("got  %s\nwant %s", b, tt.want)
			}
		})
	}
}

func TestIntrospectionResponseJSON(t *testing.T) {
	tests := []struct {
		name string
		r    IntrospectionResponse
		want string
	}{
		{name: "inactive", r: IntrospectionResponse{}, want: `{"active":false}`},
		{name: "inactive hides fields", r: IntrospectionResponse{Sub: "user", Scope: "a", Exp: 1}, want: `{"active":false}`},
		{name: "active", r: IntrospectionResponse{Active: true, Scope: "a b", ClientID: "c", TokenType: "Bearer", Exp: 2, Iat: 1, Sub: "u", Aud: []string{"https://mcp.example.com/mcp"}, Iss: "https://id.example.com", Jti: "j"},
			want: `{"active":true,"scope":"a b","client_id":"c","token_type":"Bearer","exp":2,"iat":1,"sub":"u","aud":["https://mcp.example.com/mcp"],"iss":"https://id.example.com","jti":"j"}`},
		{name: "inactive hides extra members", r: IntrospectionResponse{Extra: map[string]json.RawMessage{"groups": json.RawMessage(`["eng"]`)}}, want: `{"active":false}`},
		// The token's user claims join the members; one never replaces a
		// member the response sets itself.
		{name: "extra members", r: IntrospectionResponse{Active: true, Sub: "u", Extra: map[string]json.RawMessage{
			"groups": json.RawMessage(`["eng"]`), "department": json.RawMessage(`"R&D"`), "sub": json.RawMessage(`"mallory"`)}},
			want: `{"active":true,"department":"R\u0026D","groups":["eng"],"sub":"u"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, v := range []any{tt.r, &tt.r} {
				b, err := json.Marshal(v)
				if err != nil {
					t.Fatal(err)
				}
				if string(b) != tt.want {
					t.Fatalf("got  %s\nwant %s", b, tt.want)
				}
			}
		})
	}
}
