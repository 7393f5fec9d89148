package oauth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	jose "github.com/go-jose/go-jose/v4"
)

func publicJWKS(t testing.TB) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: "k1", Use: "sig", Algorithm: "ES256"}}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func privateJWKS(t testing.TB) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k, KeyID: "k1"}}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseClientMetadata(t *testing.T) {
	tests := []struct {
		name, body string
		code       string
		want       *ClientMetadata
	}{
		{name: "go sdk dcr", body: `{"redirect_uris":["http://localhost:3000/callback"],"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"],"response_types":["code"],"client_name":"MCP client","application_type":"native"}`,
			want: &ClientMetadata{RedirectURIs: []string{"http://localhost:3000/callback"}, TokenEndpointAuthMethod: "none", GrantTypes: []string{"authorization_code", "refresh_token"}, ResponseTypes: []string{"code"}, ClientName: "MCP client", ApplicationType: "native"}},
		{name: "unknown fields ignored", body: `{"redirect_uris":["https://a.example/cb"],"frobnicate":{"x":1},"require_pushed_authorization_requests":true}`,
			want: &ClientMetadata{RedirectURIs: []string{"https://a.example/cb"}}},
		{name: "names are case-sensitive", body: `{"Client_Name":7,"REDIRECT_URIS":"x"}`, want: &ClientMetadata{}},
		{name: "nulls", body: `{"redirect_uris":null,"client_name":null,"jwks":null}`, want: &ClientMetadata{}},
		{name: "jwks kept raw", body: `{"jwks":{"keys":[]}}`, want: &ClientMetadata{JWKS: json.RawMessage(`{"keys":[]}`)}},
		{name: "empty object", body: `{}`, want: &ClientMetadata{}},
		{name: "array body", body: `[]`, code: CodeInvalidClientMetadata},
		{name: "null body", body: `null`, code: CodeInvalidClientMetadata},
		{name: "string body", body: `"x"`, code: CodeInvalidClientMetadata},
		{name: "malformed", body: `{"redirect_uris":[`, code: CodeInvalidClientMetadata},
		{name: "trailing data", body: `{} {}`, code: CodeInvalidClientMetadata},
		{name: "empty body", body: ``, code: CodeInvalidClientMetadata},
		{name: "redirect_uris string", body: `{"redirect_uris":"https://a.example/cb"}`, code: CodeInvalidClientMetadata},
		{name: "redirect_uris numbers", body: `{"redirect_uris":[1]}`, code: CodeInvalidClientMetadata},
		{name: "client_name number", body: `{"client_name":1}`, code: CodeInvalidClientMetadata},
		{name: "scope array", body: `{"scope":["a","b"]}`, code: CodeInvalidClientMetadata},
		{name: "jwks string", body: `{"jwks":"{}"}`, code: CodeInvalidClientMetadata},
		{name: "jwks array", body: `{"jwks":[]}`, code: CodeInvalidClientMetadata},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseClientMetadata([]byte(tt.body))
			wantCode(t, err, tt.code)
			if tt.want != nil && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// servedGrants is what agentid's token endpoint serves today; the server
// passes its own grant table.
var servedGrants = []SupportedGrant{
	{Type: GrantAuthorizationCode, Public: true},
	{Type: GrantRefreshToken, Public: true},
	{Type: GrantClientCredentials},
}

func TestClientMetadataValidate(t *testing.T) {
	jwks := publicJWKS(t)
	withExchange := append(slices.Clone(servedGrants), SupportedGrant{Type: GrantTokenExchange})
	tests := []struct {
		name  string
		body  string
		code  string
		check func(t *testing.T, m *ClientMetadata)
		// grants the server serves; nil: servedGrants.
		grants []SupportedGrant
	}{
		{name: "defaults", body: `{"redirect_uris":["https://app.example.com/cb"]}`, check: func(t *testing.T, m *ClientMetadata) {
			if !slices.Equal(m.GrantTypes, []string{"authorization_code"}) || !slices.Equal(m.ResponseTypes, []string{"code"}) ||
				m.TokenEndpointAuthMethod != "client_secret_basic" || m.ApplicationType != "web" {
				t.Fatalf("defaults not applied: %+v", m)
			}
		}},
		{name: "mcp public native client", body: `{"redirect_uris":["http://127.0.0.1:33418/callback","http://localhost:33418/callback"],"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"],"response_types":["code"],"application_type":"native","client_name":"Claude Code"}`},
		{name: "mcp client without application_type, localhost", body: `{"redirect_uris":["http://localhost:6274/oauth/callback"],"token_endpoint_auth_method":"none","client_name":"Inspector","scope":"mcp:tools"}`},
		{name: "client_credentials only", body: `{"grant_types":["client_credentials"],"token_endpoint_auth_method":"client_secret_post"}`, check: func(t *testing.T, m *ClientMetadata) {
			if len(m.ResponseTypes) != 0 {
				t.Fatalf("response_types = %q, want none", m.ResponseTypes)
			}
		}},
		{name: "private_key_jwt with jwks", body: `{"grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt","jwks":` + jwks + `}`},
		{name: "private_key_jwt with jwks_uri", body: `{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"https://a.example/jwks.json"}`},
		{name: "token exchange where it is served", grants: withExchange, body: `{"grant_types":["urn:ietf:params:oauth:grant-type:token-exchange"],"token_endpoint_auth_method":"client_secret_basic"}`},
		{name: "token exchange where it is not served", body: `{"grant_types":["urn:ietf:params:oauth:grant-type:token-exchange"],"token_endpoint_auth_method":"client_secret_basic"}`, code: CodeInvalidClientMetadata},
		{name: "jwt-bearer where it is not served", grants: withExchange, body: `{"grant_types":["urn:ietf:params:oauth:grant-type:jwt-bearer"],"token_endpoint_auth_method":"client_secret_basic"}`, code: CodeInvalidClientMetadata},
		{name: "public client of a confidential-only served grant", grants: withExchange, body: `{"redirect_uris":["http://127.0.0.1/cb"],"grant_types":["authorization_code","urn:ietf:params:oauth:grant-type:token-exchange"],"token_endpoint_auth_method":"none"}`, code: CodeInvalidClientMetadata},
		{name: "duplicates removed", body: `{"redirect_uris":["https://a.example/cb"],"grant_types":["authorization_code","authorization_code"],"response_types":["code","code"]}`, check: func(t *testing.T, m *ClientMetadata) {
			if len(m.GrantTypes) != 1 || len(m.ResponseTypes) != 1 {
				t.Fatalf("got %+v", m)
			}
		}},
		{name: "all display fields", body: `{"redirect_uris":["https://a.example/cb"],"client_name":"Ünïcode app","client_uri":"https://a.example","logo_uri":"https://a.example/logo.png","tos_uri":"https://a.example/tos","policy_uri":"http://localhost:8080/policy","contacts":["ops@a.example"],"software_id":"4NRB1-0XZABZI9E6-5SM3R","software_version":"2.1"}`},

		{name: "software statement", body: `{"redirect_uris":["https://a.example/cb"],"software_statement":"eyJ.x.y"}`, code: CodeInvalidClientMetadata},
		{name: "unknown application_type", body: `{"redirect_uris":["https://a.example/cb"],"application_type":"desktop"}`, code: CodeInvalidClientMetadata},
		{name: "missing redirect_uris", body: `{"token_endpoint_auth_method":"none"}`, code: CodeInvalidRedirectURI},
		{name: "bad redirect uri", body: `{"redirect_uris":["http://app.example.com/cb"]}`, code: CodeInvalidRedirectURI},
		{name: "private-use scheme for web", body: `{"redirect_uris":["com.example.app:/cb"],"application_type":"web"}`, code: CodeInvalidRedirectURI},
		{name: "loopback and https together default to web", body: `{"redirect_uris":["http://127.0.0.1/cb","https://app.example.com/cb"]}`, code: CodeInvalidRedirectURI},
		{name: "private-use scheme for native", body: `{"redirect_uris":["com.example.app:/cb"],"application_type":"native","token_endpoint_auth_method":"none"}`},
		{name: "too many redirect uris", body: `{"redirect_uris":[` + strings.TrimSuffix(strings.Repeat(`"https://a.example/cb",`, 21), ",") + `]}`, code: CodeInvalidRedirectURI},
		{name: "implicit", body: `{"redirect_uris":["https://a.example/cb"],"grant_types":["implicit"],"response_types":["token"]}`, code: CodeInvalidClientMetadata},
		{name: "password", body: `{"grant_types":["password"]}`, code: CodeInvalidClientMetadata},
		{name: "unknown grant", body: `{"grant_types":["urn:example:magic"]}`, code: CodeInvalidClientMetadata},
		{name: "token response type", body: `{"redirect_uris":["https://a.example/cb"],"response_types":["code","token"]}`, code: CodeInvalidClientMetadata},
		{name: "code without authorization_code", body: `{"grant_types":["client_credentials"],"response_types":["code"]}`, code: CodeInvalidClientMetadata},
		{name: "authorization_code without code", body: `{"redirect_uris":["https://a.example/cb"],"grant_types":["authorization_code"],"response_types":["id_token"]}`, code: CodeInvalidClientMetadata},
		{name: "client_secret_jwt", body: `{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"client_secret_jwt"}`, code: CodeInvalidClientMetadata},
		{name: "tls_client_auth", body: `{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"tls_client_auth"}`, code: CodeInvalidClientMetadata},
		{name: "public client_credentials", body: `{"grant_types":["client_credentials"],"token_endpoint_auth_method":"none"}`, code: CodeInvalidClientMetadata},
		{name: "private_key_jwt without keys", body: `{"grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt"}`, code: CodeInvalidClientMetadata},
		{name: "jwks and jwks_uri", body: `{"grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"https://a.example/jwks","jwks":` + jwks + `}`, code: CodeInvalidClientMetadata},
		{name: "jwks and jwks_uri without private_key_jwt", body: `{"redirect_uris":["https://a.example/cb"],"jwks_uri":"https://a.example/jwks","jwks":` + jwks + `}`, code: CodeInvalidClientMetadata},
		{name: "private jwks", body: `{"grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt","jwks":` + privateJWKS(t) + `}`, code: CodeInvalidClientMetadata},
		{name: "symmetric jwks", body: `{"grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt","jwks":{"keys":[{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0"}]}}`, code: CodeInvalidClientMetadata},
		{name: "empty jwks", body: `{"grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt","jwks":{"keys":[]}}`, code: CodeInvalidClientMetadata},
		{name: "garbage jwks", body: `{"grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt","jwks":{"keys":[{"kty":"EC"}]}}`, code: CodeInvalidClientMetadata},
		{name: "http jwks_uri", body: `{"grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"http://a.example/jwks"}`, code: CodeInvalidClientMetadata},
		{name: "logo data uri", body: `{"redirect_uris":["https://a.example/cb"],"logo_uri":"data:image/png;base64,AAAA"}`, code: CodeInvalidClientMetadata},
		{name: "client_uri javascript", body: `{"redirect_uris":["https://a.example/cb"],"client_uri":"javascript:alert(1)"}`, code: CodeInvalidClientMetadata},
		{name: "tos relative", body: `{"redirect_uris":["https://a.example/cb"],"tos_uri":"/tos"}`, code: CodeInvalidClientMetadata},
		{name: "policy too long", body: `{"redirect_uris":["https://a.example/cb"],"policy_uri":"https://a.example/` + strings.Repeat("p", 2000) + `"}`, code: CodeInvalidClientMetadata},
		{name: "client_name too long", body: `{"redirect_uris":["https://a.example/cb"],"client_name":"` + strings.Repeat("n", 201) + `"}`, code: CodeInvalidClientMetadata},
		{name: "client_name newline", body: `{"redirect_uris":["https://a.example/cb"],"client_name":"Good app\nApprove now"}`, code: CodeInvalidClientMetadata},
		{name: "too many contacts", body: `{"redirect_uris":["https://a.example/cb"],"contacts":[` + strings.TrimSuffix(strings.Repeat(`"a@b.c",`, 11), ",") + `]}`, code: CodeInvalidClientMetadata},
		{name: "empty contact", body: `{"redirect_uris":["https://a.example/cb"],"contacts":[""]}`, code: CodeInvalidClientMetadata},
		{name: "bad scope", body: `{"redirect_uris":["https://a.example/cb"],"scope":"a \"b\""}`, code: CodeInvalidClientMetadata},
		{name: "long software_id", body: `{"redirect_uris":["https://a.example/cb"],"software_id":"` + strings.Repeat("s", 201) + `"}`, code: CodeInvalidClientMetadata},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, perr := ParseClientMetadata([]byte(tt.body))
			if perr != nil {
				t.Fatalf("parse: %v", perr)
			}
			grants := tt.grants
			if grants == nil {
				grants = servedGrants
			}
			wantCode(t, m.Validate(grants), tt.code)
			if tt.check != nil {
				tt.check(t, m)
			}
		})
	}
}

func TestClientInformationJSON(t *testing.T) {
	zero := int64(0)
	info := ClientInformation{
		ClientID: "c1", ClientSecret: "s", ClientIDIssuedAt: 1700000000, ClientSecretExpiresAt: &zero,
		RegistrationAccessToken: "rat", RegistrationClientURI: "https://id.example.com/register/c1",
		ClientMetadata: ClientMetadata{RedirectURIs: []string{"https://a.example/cb"}, TokenEndpointAuthMethod: "client_secret_basic",
			GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{"code"}, ApplicationType: "web"},
	}
	b, err := json.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"client_id":"c1","client_secret":"s","client_id_issued_at":1700000000,"client_secret_expires_at":0,"registration_access_token":"rat","registration_client_uri":"https://id.example.com/register/c1","redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"client_secret_basic","grant_types":["authorization_code"],"response_types":["code"],"application_type":"web"}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	pub, _ := json.Marshal(ClientInformation{ClientID: "https://app.example.com/client.json"})
	if string(pub) != `{"client_id":"https://app.example.com/client.json"}` {
		t.Fatalf("public client info = %s", pub)
	}
}

// FuzzParseClientMetadata checks that parsing and validation never panic,
// return only registration error codes, and that valid metadata re-marshalled
// and re-parsed validates identically (round trip).
func FuzzParseClientMetadata(f *testing.F) {
	for _, s := range []string{
		`{"redirect_uris":["http://localhost:3000/callback"],"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"],"response_types":["code"],"client_name":"MCP client","application_type":"native"}`,
		`{"redirect_uris":["http://127.0.0.1:53682/callback"],"token_endpoint_auth_method":"none"}`,
		`{"redirect_uris":["https://app.example.com/cb"],"client_uri":"https://app.example.com","logo_uri":"https://app.example.com/l.png","contacts":["a@b.c"],"scope":"mcp:tools"}`,
		`{"grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt","jwks":` + publicJWKS(f) + `}`,
		`{"grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"https://a.example/jwks"}`,
		`{"redirect_uris":["com.example.app:/cb"],"application_type":"native","token_endpoint_auth_method":"none"}`,
		`{"redirect_uris":"x","client_name":1}`, `[]`, `{"jwks":[]}`, `{"software_statement":"x"}`, `{"grant_types":["implicit"]}`,
		`{"redirect_uris":["https://a.example/cb"],"client_name":"Good\u202eppA"}`, `{"client_name":"a\ud800"}`,
		"{\"client_name\":\"\xff\"}", `{"redirect_uris":["https://a.example/cb"],"client_uri":"https://a.example\\@b.example"}`,
	} {
		f.Add([]byte(s))
	}
	codes := map[string]bool{CodeInvalidClientMetadata: true, CodeInvalidRedirectURI: true}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := ParseClientMetadata(body)
		if err != nil {
			if err.Code != CodeInvalidClientMetadata {
				t.Fatalf("parse error code %s", err.Code)
			}
			return
		}
		if err := m.Validate(servedGrants); err != nil {
			if !codes[err.Code] {
				t.Fatalf("validate error code %s", err.Code)
			}
			return
		}
		// Valid metadata is safe to show and to link to: no text a page
		// displays carries a control, format or replacement character, and
		// every URI is absolute and made of RFC 3986 characters only.
		for _, v := range append([]string{m.ClientName, m.SoftwareID, m.SoftwareVersion}, m.Contacts...) {
			for _, r := range v {
				if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError || r == '\u2028' || r == '\u2029' {
					t.Fatalf("valid metadata shows %U in %q", r, v)
				}
			}
		}
		for _, v := range append([]string{m.ClientURI, m.LogoURI, m.TOSURI, m.PolicyURI, m.JWKSURI}, m.RedirectURIs...) {
			if v == "" {
				continue
			}
			if u, err := url.Parse(v); err != nil || u.Scheme == "" {
				t.Fatalf("valid metadata has a URI that is not absolute: %q", v)
			}
			if i := strings.IndexFunc(v, func(r rune) bool {
				return r > 0x7e || r <= 0x20 || strings.ContainsRune("\"<>\\^`{|}", r)
			}); i >= 0 {
				t.Fatalf("valid metadata has a URI with %q: %q", v[i], v)
			}
		}
		again := *m
		if err := again.Validate(servedGrants); err != nil || !reflect.DeepEqual(&again, m) {
			t.Fatalf("Validate is not idempotent: %v\n%+v\n%+v", err, again, *m)
		}
		b, jerr := json.Marshal(m)
		if jerr != nil {
			t.Fatal(jerr)
		}
		m2, err := ParseClientMetadata(b)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", b, err)
		}
		if err := m2.Validate(servedGrants); err != nil {
			t.Fatalf("re-validate of %s: %v", b, err)
		}
		if fmt.Sprint(normalizeJWKS(m2)) != fmt.Sprint(normalizeJWKS(m)) {
			t.Fatalf("round trip changed metadata:\n%+v\n%+v", *m, *m2)
		}
	})
}

// normalizeJWKS compacts the raw jwks so whitespace differences from
// re-marshalling do not count as a change.
func normalizeJWKS(m *ClientMetadata) ClientMetadata {
	c := *m
	if len(c.JWKS) > 0 {
		var v any
		if json.Unmarshal(c.JWKS, &v) == nil {
			c.JWKS, _ = json.Marshal(v)
		}
	}
	return c
}

// TestApplicationTypeInferred: an omitted application_type is native when
// every redirect URI is a loopback or private-use one (MCP clients that
// listen on localhost), web otherwise.
func TestApplicationTypeInferred(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"localhost only", `{"redirect_uris":["http://localhost:6274/oauth/callback"],"token_endpoint_auth_method":"none"}`, ApplicationTypeNative},
		{"loopback and private-use", `{"redirect_uris":["http://127.0.0.1/cb","com.example.app:/cb"],"token_endpoint_auth_method":"none"}`, ApplicationTypeNative},
		{"https", `{"redirect_uris":["https://app.example.com/cb"]}`, ApplicationTypeWeb},
		{"no redirect URIs", `{"grant_types":["client_credentials"],"response_types":[]}`, ApplicationTypeWeb},
		{"explicit web is kept", `{"redirect_uris":["https://app.example.com/cb"],"application_type":"web"}`, ApplicationTypeWeb},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, oe := ParseClientMetadata([]byte(tc.body))
			if oe != nil {
				t.Fatal(oe)
			}
			if oe := m.Validate(servedGrants); oe != nil {
				t.Fatal(oe)
			}
			if m.ApplicationType != tc.want {
				t.Fatalf("application_type = %q, want %q", m.ApplicationType, tc.want)
			}
		})
	}
}

// TestClientMetadataDisplayText: every field a page may show refuses
// control, bidirectional and zero-width characters, and text that is not
// what the client sent (invalid UTF-8, unpaired surrogate escapes) is
// refused rather than replaced with U+FFFD.
func TestClientMetadataDisplayText(t *testing.T) {
	bad := map[string]string{
		"RLO U+202E":              "\u202e",
		"LRE U+202A":              "\u202a",
		"PDF U+202C":              "\u202c",
		"LRI U+2066":              "\u2066",
		"PDI U+2069":              "\u2069",
		"LRM U+200E":              "\u200e",
		"RLM U+200F":              "\u200f",
		"ALM U+061C":              "\u061c",
		"ZWSP U+200B":             "\u200b",
		"ZWNJ U+200C":             "\u200c",
		"ZWJ U+200D":              "\u200d",
		"word joiner U+2060":      "\u2060",
		"BOM U+FEFF":              "\ufeff",
		"tag U+E0041":             "\U000e0041",
		"NUL":                     "\x00",
		"tab":                     "\t",
		"DEL":                     "\x7f",
		"C1 U+0085":               "\u0085",
		"line separator":          "\u2028",
		"replacement U+FFFD":      "\ufffd",
		"CGJ U+034F":              "\u034f",
		"Hangul filler U+3164":    "\u3164",
		"Hangul filler U+115F":    "\u115f",
		"halfwidth filler U+FFA0": "\uffa0",
		"Khmer U+17B4":            "\u17b4",
	}
	fields := []struct {
		name string
		body func(v string) string
	}{
		{"client_name", func(v string) string { return `{"client_name":` + jsonString(v) + `}` }},
		{"contacts", func(v string) string { return `{"contacts":[` + jsonString("ops"+v+"@a.example") + `]}` }},
		{"software_id", func(v string) string { return `{"software_id":` + jsonString(v) + `}` }},
		{"software_version", func(v string) string { return `{"software_version":` + jsonString(v) + `}` }},
	}
	const base = `"redirect_uris":["https://a.example/cb"],`
	for _, f := range fields {
		for name, ch := range bad {
			t.Run(f.name+"/"+name, func(t *testing.T) {
				body := f.body("Good" + ch + "App")
				body = "{" + base + body[1:]
				m, perr := ParseClientMetadata([]byte(body))
				if perr != nil {
					t.Fatalf("parse: %v", perr)
				}
				wantCode(t, m.Validate(servedGrants), CodeInvalidClientMetadata)
			})
		}
		t.Run(f.name+"/plain", func(t *testing.T) {
			body := "{" + base + f.body("Ünïcode 名前 مرحبا 한글 ❤️")[1:]
			m, perr := ParseClientMetadata([]byte(body))
			if perr != nil {
				t.Fatalf("parse: %v", perr)
			}
			wantCode(t, m.Validate(servedGrants), "")
		})
	}

	for name, v := range map[string]string{"spaces": "   ", "ideographic space U+3000": "\u3000", "braille blank U+2800": "\u2800\u2800", "no-break space": "\u00a0"} {
		t.Run("client_name/blank/"+name, func(t *testing.T) {
			m, perr := ParseClientMetadata([]byte(`{"redirect_uris":["https://a.example/cb"],"client_name":` + jsonString(v) + `}`))
			if perr != nil {
				t.Fatalf("parse: %v", perr)
			}
			wantCode(t, m.Validate(servedGrants), CodeInvalidClientMetadata)
		})
	}

	broken := []struct{ name, body string }{
		{"invalid UTF-8 in client_name", "{\"client_name\":\"Good\xffApp\"}"},
		{"truncated sequence", "{\"client_name\":\"Good\xe2\x80App\"}"},
		{"overlong encoding", "{\"client_name\":\"\xc0\xafApp\"}"},
		{"invalid UTF-8 in an unknown field", "{\"x\":\"\xff\"}"},
		{"lone high surrogate", `{"client_name":"Good\ud800App"}`},
		{"lone low surrogate", `{"client_name":"Good\udc00App"}`},
		{"reversed pair", `{"client_name":"\udc00\ud800"}`},
		{"high surrogate at end", `{"contacts":["a@b.c\uD83D"]}`},
	}
	for _, tt := range broken {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseClientMetadata([]byte(tt.body))
			wantCode(t, err, CodeInvalidClientMetadata)
		})
	}
	for _, tt := range []struct{ name, body, want string }{
		{"surrogate pair", `{"client_name":"App \ud83d\ude80"}`, "App 🚀"},
		{"escaped backslash before u", `{"client_name":"a\\ud800"}`, `a\ud800`},
		{"escaped quote", `{"client_name":"a\"b"}`, `a"b`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseClientMetadata([]byte(tt.body))
			if err != nil || m.ClientName != tt.want {
				t.Fatalf("got %q, %v; want %q", m.ClientName, err, tt.want)
			}
		})
	}
}

// TestClientMetadataURIs: URL-valued metadata and redirect URIs are
// absolute RFC 3986 URIs; characters a browser would rewrite are refused.
func TestClientMetadataURIs(t *testing.T) {
	fields := []string{"client_uri", "logo_uri", "tos_uri", "policy_uri"}
	tests := []struct {
		name, uri string
		ok        bool
	}{
		{"https", "https://a.example/x?y=1", true},
		{"percent-encoded", "https://a.example/%E2%9C%93", true},
		{"backslash", `https://a.example\@evil.example/`, false},
		{"backslash in path", `https://a.example/\\evil.example`, false},
		{"stray percent", "https://a.example/100%", false},
		{"bad percent", "https://a.example/%zz", false},
		{"percent in query", "https://a.example/?q=%g1", false},
		{"quote", `https://a.example/"x"`, false},
		{"angle brackets", "https://a.example/<x>", false},
		{"pipe", "https://a.example/a|b", false},
		{"braces", "https://a.example/{x}", false},
		{"caret", "https://a.example/^", false},
		{"backtick", "https://a.example/`", false},
		{"non-ASCII", "https://a.example/ü", false},
		{"bidi override", "https://a.example/\u202egpj.exe", false},
		{"relative", "/tos", false},
		{"no host", "https:///x", false},
		{"opaque", "https:a.example", false},
		{"mailto", "mailto:a@b.c", false},
	}
	bodies := map[string]string{"jwks_uri": `{"grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt","jwks_uri":%s}`}
	for _, f := range fields {
		bodies[f] = `{"redirect_uris":["https://a.example/cb"],"` + f + `":%s}`
	}
	for _, tt := range tests {
		for f, body := range bodies {
			t.Run(f+"/"+tt.name, func(t *testing.T) {
				m, perr := ParseClientMetadata(fmt.Appendf(nil, body, jsonString(tt.uri)))
				if perr != nil {
					t.Fatalf("parse: %v", perr)
				}
				want := CodeInvalidClientMetadata
				if tt.ok {
					want = ""
				}
				wantCode(t, m.Validate(servedGrants), want)
			})
		}
		t.Run("redirect_uris/"+tt.name, func(t *testing.T) {
			want := CodeInvalidRedirectURI
			if tt.ok {
				want = ""
			}
			wantCode(t, ValidateRedirectURI(tt.uri, ApplicationTypeWeb), want)
		})
	}
}

func jsonString(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}
