package oauth

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

const docURL = "https://app.example.com/oauth/client-metadata.json"

// doc builds a document with the MCP example's fields, changed by edit.
func doc(edit func(m map[string]any)) []byte {
	m := map[string]any{
		"client_id":                  docURL,
		"client_name":                "Example MCP Client",
		"client_uri":                 "https://app.example.com",
		"logo_uri":                   "https://app.example.com/logo.png",
		"redirect_uris":              []string{"http://127.0.0.1:3000/callback", "http://localhost:3000/callback"},
		"grant_types":                []string{"authorization_code"},
		"response_types":             []string{"code"},
		"token_endpoint_auth_method": "none",
	}
	if edit != nil {
		edit(m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

func TestValidateMetadataDocumentURL(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://app.example.com/client.json", true},
		{"https://app.example.com:8443/oauth/client.json", true},
		{"https://127.0.0.1:4443/client.json", true},
		{"https://[::1]:4443/client.json", true},
		{"https://app.example.com/c?v=1", true},
		{"https://app.example.com/a/b/", true},
		{"http://app.example.com/client.json", false},
		{"HTTPS://app.example.com/client.json", false},
		{"https://app.example.com", false},
		{"https://app.example.com/", false},
		{"https://app.example.com/?x=1", false},
		{"https://app.example.com/a/../client.json", false},
		{"https://app.example.com/./client.json", false},
		{"https://app.example.com/a/%2e%2E/client.json", false},
		{"https://app.example.com/a/..", false},
		{"https://app.example.com/client.json#frag", false},
		{"https://user:pw@app.example.com/client.json", false},
		{"https://user@app.example.com/client.json", false},
		{"https:///client.json", false},
		{"https://app.example.com:99999/client.json", false},
		{"https://app example.com/client.json", false},
		{"https://app.example.com/cl ient.json", false},
		{"https://app.example.com/client.json%", false},
		{"https://app.example.com/" + strings.Repeat("a", 2000), false},
		{"app.example.com/client.json", false},
		{"", false},
	} {
		err := ValidateMetadataDocumentURL(tc.url)
		if (err == nil) != tc.ok {
			t.Errorf("%q: err = %v, want ok %v", tc.url, err, tc.ok)
		}
		if err != nil && err.Code != CodeInvalidClient {
			t.Errorf("%q: code %s", tc.url, err.Code)
		}
	}
}

func TestParseClientMetadataDocument(t *testing.T) {
	for _, tc := range []struct {
		name string
		url  string
		body []byte
		want string // substring of the description; "" = valid
	}{
		{"MCP example", docURL, doc(nil), ""},
		{"extra properties allowed", docURL, doc(func(m map[string]any) { m["x-vendor"] = map[string]any{"a": 1} }), ""},
		{"auth method defaults to none", docURL, doc(func(m map[string]any) { delete(m, "token_endpoint_auth_method") }), ""},
		{"private_key_jwt", docURL, doc(func(m map[string]any) {
			m["token_endpoint_auth_method"] = "private_key_jwt"
			m["jwks_uri"] = "https://app.example.com/jwks.json"
		}), ""},
		{"client_id mismatch", docURL, doc(func(m map[string]any) { m["client_id"] = "https://evil.example/client.json" }), "not the URL it was fetched from"},
		{"client_id differs by case", docURL, doc(func(m map[string]any) { m["client_id"] = "https://APP.example.com/oauth/client-metadata.json" }), "not the URL"},
		{"client_id differs by default port", docURL, doc(func(m map[string]any) { m["client_id"] = "https://app.example.com:443/oauth/client-metadata.json" }), "not the URL"},
		{"client_id differs by encoding", docURL, doc(func(m map[string]any) { m["client_id"] = "https://app.example.com/oauth/client%2Dmetadata.json" }), "not the URL"},
		{"client_id trailing slash", docURL, doc(func(m map[string]any) { m["client_id"] = docURL + "/" }), "not the URL"},
		{"client_id missing", docURL, doc(func(m map[string]any) { delete(m, "client_id") }), "has no client_id"},
		{"client_id not a string", docURL, doc(func(m map[string]any) { m["client_id"] = 1 }), "not a string"},
		{"client_name missing", docURL, doc(func(m map[string]any) { delete(m, "client_name") }), "has no client_name"},
		{"redirect_uris missing", docURL, doc(func(m map[string]any) { delete(m, "redirect_uris") }), "has no redirect_uris"},
		{"redirect_uris empty", docURL, doc(func(m map[string]any) { m["redirect_uris"] = []string{} }), "has no redirect_uris"},
		{"client_secret_basic", docURL, doc(func(m map[string]any) { m["token_endpoint_auth_method"] = "client_secret_basic" }), "shared-secret"},
		{"client_secret_post", docURL, doc(func(m map[string]any) { m["token_endpoint_auth_method"] = "client_secret_post" }), "shared-secret"},
		{"client_secret_jwt", docURL, doc(func(m map[string]any) { m["token_endpoint_auth_method"] = "client_secret_jwt" }), "shared-secret"},
		{"tls_client_auth", docURL, doc(func(m map[string]any) { m["token_endpoint_auth_method"] = "tls_client_auth" }), "accepts none or private_key_jwt"},
		{"client_secret present", docURL, doc(func(m map[string]any) { m["client_secret"] = "s3cret" }), "must not contain client_secret"},
		{"client_secret_expires_at present", docURL, doc(func(m map[string]any) { m["client_secret_expires_at"] = 0 }), "client_secret_expires_at"},
		{"wrong field type", docURL, doc(func(m map[string]any) { m["redirect_uris"] = "http://localhost/cb" }), "must be an array of strings"},
		{"array", docURL, []byte(`[]`), "not a JSON object"},
		{"null", docURL, []byte(`null`), "not a JSON object"},
		{"not JSON", docURL, []byte(`<html>`), "not a JSON object"},
		{"invalid UTF-8", docURL, []byte("{\"client_id\":\"" + docURL + "\",\"client_name\":\"\xff\"}"), "UTF-8"},
		{"bad URL", "http://app.example.com/c.json", doc(func(m map[string]any) { m["client_id"] = "http://app.example.com/c.json" }), "must use https"},
		{"root URL", "https://app.example.com/", doc(func(m map[string]any) { m["client_id"] = "https://app.example.com/" }), "must have a path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseClientMetadataDocument(tc.url, tc.body)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want == "":
				if m.ClientName == "" || len(m.RedirectURIs) == 0 || m.TokenEndpointAuthMethod == "" {
					t.Fatalf("metadata = %+v", m)
				}
			case err == nil:
				t.Fatalf("accepted, want %q", tc.want)
			case err.Code != CodeInvalidClient || !strings.Contains(err.Description, tc.want):
				t.Fatalf("error = %s %q, want invalid_client containing %q", err.Code, err.Description, tc.want)
			}
		})
	}
}

// TestParseClientMetadataDocumentDropsSoftwareStatement: an unverified
// statement in a public document must not reach the registrar.
func TestParseClientMetadataDocumentDropsSoftwareStatement(t *testing.T) {
	m, err := ParseClientMetadataDocument(docURL, doc(func(m map[string]any) { m["software_statement"] = "eyJ.x.y" }))
	if err != nil || m.SoftwareStatement != "" {
		t.Fatalf("m = %+v, err = %v", m, err)
	}
}

func FuzzParseClientMetadataDocument(f *testing.F) {
	f.Add(docURL, doc(nil))
	f.Add(docURL, doc(func(m map[string]any) { m["token_endpoint_auth_method"] = "client_secret_basic" }))
	f.Add(docURL, doc(func(m map[string]any) { m["client_secret"] = "x" }))
	f.Add(docURL, doc(func(m map[string]any) {
		m["token_endpoint_auth_method"] = "private_key_jwt"
		m["jwks"] = json.RawMessage(publicJWKS(f))
	}))
	f.Add("https://a.example/c", []byte(`{"client_id":"https://a.example/c","client_name":"x","redirect_uris":["http://[::1]/cb"]}`))
	f.Add("https://a.example/%2e%2e", []byte(`{"client_id":"https://a.example/%2e%2e"}`))
	f.Add("https://a.example/c", []byte(`{"client_id":"https://a.example/c\ud800"}`))
	f.Fuzz(func(t *testing.T, u string, body []byte) {
		m, err := ParseClientMetadataDocument(u, body)
		if err != nil {
			if err.Code != CodeInvalidClient || err.Description == "" || !utf8.ValidString(err.Description) {
				t.Fatalf("error %s %q", err.Code, err.Description)
			}
			return
		}
		// A parsed document came from a valid https URL with a path and no
		// fragment or userinfo, names it exactly, and holds no secret.
		pu, perr := url.Parse(u)
		if perr != nil || pu.Scheme != "https" || pu.User != nil || pu.Fragment != "" || pu.EscapedPath() == "" || pu.EscapedPath() == "/" {
			t.Fatalf("accepted document URL %q", u)
		}
		var fields map[string]json.RawMessage
		if json.Unmarshal(body, &fields) != nil {
			t.Fatalf("accepted a body that is not a JSON object")
		}
		var id string
		if json.Unmarshal(fields["client_id"], &id) != nil || id != u {
			t.Fatalf("client_id %q accepted for %q", id, u)
		}
		if _, ok := fields["client_secret"]; ok {
			t.Fatal("accepted a client_secret")
		}
		if sharedSecretMethods[m.TokenEndpointAuthMethod] || m.TokenEndpointAuthMethod != AuthMethodNone && m.TokenEndpointAuthMethod != AuthMethodPrivateKeyJWT {
			t.Fatalf("accepted method %q", m.TokenEndpointAuthMethod)
		}
		if m.ClientName == "" || len(m.RedirectURIs) == 0 || m.SoftwareStatement != "" {
			t.Fatalf("metadata = %+v", m)
		}
		// What the registrar then accepts is as safe as any registration.
		if err := m.Validate(servedGrants); err == nil {
			if !displayText(m.ClientName) {
				t.Fatalf("client_name %q accepted", m.ClientName)
			}
			if m.TokenEndpointAuthMethod == AuthMethodPrivateKeyJWT && len(m.JWKS) == 0 && m.JWKSURI == "" {
				t.Fatal("private_key_jwt without keys accepted")
			}
		}
	})
}
