package oauth

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
)

func formRequest(body string, header map[string]string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "https://id.example.com/token", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		if v == "" {
			r.Header.Del(k)
			continue
		}
		r.Header.Set(k, v)
	}
	return r
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func TestParseForm(t *testing.T) {
	tests := []struct {
		name, method, ctype, body, target string
		limit                             int64
		code                              string
		want                              url.Values
	}{
		{name: "token request", body: "grant_type=authorization_code&code=abc&resource=https%3A%2F%2Fa.example%2F",
			want: url.Values{"grant_type": {"authorization_code"}, "code": {"abc"}, "resource": {"https://a.example/"}}},
		{name: "content-type params", ctype: "application/x-www-form-urlencoded; charset=UTF-8", body: "a=1",
			want: url.Values{"a": {"1"}}},
		{name: "empty values dropped", body: "code=&grant_type=refresh_token&refresh_token=r&scope=",
			want: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"r"}}},
		{name: "empty plus value repeated is fine", body: "code=&code=abc", want: url.Values{"code": {"abc"}}},
		{name: "resource and audience repeat", body: "resource=a&resource=b&audience=x&audience=y",
			want: url.Values{"resource": {"a", "b"}, "audience": {"x", "y"}}},
		{name: "query ignored", target: "https://id.example.com/token?client_secret=leak&code=q", body: "code=b",
			want: url.Values{"code": {"b"}}},
		{name: "empty body", body: "", want: url.Values{}},
		{name: "repeated code", body: "code=a&code=b", code: CodeInvalidRequest},
		{name: "repeated grant_type", body: "grant_type=a&grant_type=b", code: CodeInvalidRequest},
		{name: "get", method: http.MethodGet, body: "", code: CodeInvalidRequest},
		{name: "json body", ctype: "application/json", body: `{"grant_type":"x"}`, code: CodeInvalidRequest},
		{name: "no content type", ctype: "-", body: "a=1", code: CodeInvalidRequest},
		{name: "malformed escape", body: "a=%zz", code: CodeInvalidRequest},
		{name: "semicolon", body: "a=1;b=2", code: CodeInvalidRequest},
		{name: "too large", body: "code=" + strings.Repeat("a", 100), limit: 50, code: CodeInvalidRequest},
		{name: "content-type in other case", ctype: "Application/X-WWW-Form-URLEncoded", body: "a=1", want: url.Values{"a": {"1"}}},
		{name: "content-type with a suffix", ctype: "application/x-www-form-urlencodedx", body: "a=1", code: CodeInvalidRequest},
		// Larger than the buffer Content-Length sizes: read to the end.
		{name: "large body", body: "token=" + strings.Repeat("t", 40<<10) + "&a=1",
			want: url.Values{"token": {strings.Repeat("t", 40<<10)}, "a": {"1"}}},
		// No Content-Length: read to the end all the same.
		{name: "unknown length", body: "token=" + strings.Repeat("t", 3000) + "&a=1", limit: -1,
			want: url.Values{"token": {strings.Repeat("t", 3000)}, "a": {"1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method, target := tt.method, tt.target
			if method == "" {
				method = http.MethodPost
			}
			if target == "" {
				target = "https://id.example.com/token"
			}
			r := httptest.NewRequest(method, target, strings.NewReader(tt.body))
			switch tt.ctype {
			case "":
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			case "-":
			default:
				r.Header.Set("Content-Type", tt.ctype)
			}
			switch {
			case tt.limit > 0:
				r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, tt.limit)
			case tt.limit < 0:
				r.ContentLength = -1
			}
			got, err := ParseForm(r)
			wantCode(t, err, tt.code)
			if tt.code == "" && got.Encode() != tt.want.Encode() {
				t.Fatalf("form = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseClientAuth(t *testing.T) {
	tests := []struct {
		name, body, auth string
		want             ClientAuth
		code             string
	}{
		{name: "basic", auth: basic("client-1", "s3cret"),
			want: ClientAuth{ClientID: "client-1", ClientSecret: "s3cret", Method: AuthMethodClientSecretBasic}},
		{name: "basic form-urlencoded (x/oauth2)", auth: basic(url.QueryEscape("id:with/odd"), url.QueryEscape("p@ss:w+rd")),
			want: ClientAuth{ClientID: "id:with/odd", ClientSecret: "p@ss:w+rd", Method: AuthMethodClientSecretBasic}},
		{name: "basic raw undecodable kept raw", auth: basic("client-1", "100%"),
			want: ClientAuth{ClientID: "client-1", ClientSecret: "100%", Method: AuthMethodClientSecretBasic}},
		{name: "basic empty password is a public client (x/oauth2 auto-detect)", auth: basic(url.QueryEscape("https://app.example.com/client.json"), ""),
			want: ClientAuth{ClientID: "https://app.example.com/client.json", Method: AuthMethodNone}},
		{name: "basic lowercase scheme", auth: "basic " + base64.StdEncoding.EncodeToString([]byte("c:s")),
			want: ClientAuth{ClientID: "c", ClientSecret: "s", Method: AuthMethodClientSecretBasic}},
		{name: "basic with same body client_id", auth: basic("c", "s"), body: "client_id=c",
			want: ClientAuth{ClientID: "c", ClientSecret: "s", Method: AuthMethodClientSecretBasic}},
		{name: "post", body: "client_id=c&client_secret=s",
			want: ClientAuth{ClientID: "c", ClientSecret: "s", Method: AuthMethodClientSecretPost}},
		{name: "none", body: "client_id=c",
			want: ClientAuth{ClientID: "c", Method: AuthMethodNone}},
		{name: "none with empty secret", body: "client_id=c&client_secret=",
			want: ClientAuth{ClientID: "c", Method: AuthMethodNone}},
		{name: "private_key_jwt", body: "client_assertion_type=" + url.QueryEscape(ClientAssertionTypeJWTBearer) + "&client_assertion=a.b.c",
			want: ClientAuth{AssertionType: ClientAssertionTypeJWTBearer, Assertion: "a.b.c", Method: AuthMethodPrivateKeyJWT}},
		{name: "private_key_jwt with client_id", body: "client_id=c&client_assertion_type=" + url.QueryEscape(ClientAssertionTypeJWTBearer) + "&client_assertion=a.b.c",
			want: ClientAuth{ClientID: "c", AssertionType: ClientAssertionTypeJWTBearer, Assertion: "a.b.c", Method: AuthMethodPrivateKeyJWT}},
		{name: "bearer header ignored", auth: "Bearer tok", body: "client_id=c",
			want: ClientAuth{ClientID: "c", Method: AuthMethodNone}},
		{name: "nothing", code: CodeInvalidClient},
		{name: "basic and post", auth: basic("c", "s"), body: "client_id=c&client_secret=s", code: CodeInvalidRequest},
		{name: "basic and assertion", auth: basic("c", "s"), body: "client_assertion_type=" + url.QueryEscape(ClientAssertionTypeJWTBearer) + "&client_assertion=x", code: CodeInvalidRequest},
		{name: "post and assertion", body: "client_id=c&client_secret=s&client_assertion_type=" + url.QueryEscape(ClientAssertionTypeJWTBearer) + "&client_assertion=x", code: CodeInvalidRequest},
		{name: "basic and different body client_id", auth: basic("c", "s"), body: "client_id=d", code: CodeInvalidRequest},
		{name: "secret without client_id", body: "client_secret=s", code: CodeInvalidRequest},
		{name: "assertion without type", body: "client_assertion=x", code: CodeInvalidRequest},
		{name: "type without assertion", body: "client_assertion_type=" + url.QueryEscape(ClientAssertionTypeJWTBearer), code: CodeInvalidRequest},
		{name: "unsupported assertion type", body: "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Asaml2-bearer&client_assertion=x", code: CodeInvalidClient},
		{name: "basic bad base64", auth: "Basic !!!", code: CodeInvalidClient},
		{name: "basic without colon", auth: "Basic " + base64.StdEncoding.EncodeToString([]byte("nocolon")), code: CodeInvalidClient},
		{name: "basic empty user", auth: basic("", "s"), code: CodeInvalidClient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := formRequest(tt.body, map[string]string{"Authorization": tt.auth})
			form, ferr := ParseForm(r)
			if ferr != nil {
				t.Fatal(ferr)
			}
			got, err := ParseClientAuth(r, form)
			wantCode(t, err, tt.code)
			if tt.code == "" && got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	t.Run("two authorization headers", func(t *testing.T) {
		r := formRequest("", nil)
		r.Header.Add("Authorization", basic("a", "s"))
		r.Header.Add("Authorization", basic("b", "s"))
		_, err := ParseClientAuth(r, url.Values{})
		wantCode(t, err, CodeInvalidRequest)
	})
}

func TestParseTokenRequest(t *testing.T) {
	verifier := rfc7636Verifier
	tests := []struct {
		name, body, auth string
		code             string
		check            func(t *testing.T, r *TokenRequest)
	}{
		{name: "authorization_code (go sdk)",
			body: "grant_type=authorization_code&code=abc&redirect_uri=http%3A%2F%2F127.0.0.1%3A53682%2Fcallback&code_verifier=" + verifier + "&resource=https%3A%2F%2Fmcp.example.com%2Fmcp",
			auth: basic("client-1", ""),
			check: func(t *testing.T, r *TokenRequest) {
				if r.GrantType != GrantAuthorizationCode || r.Code != "abc" || r.CodeVerifier != verifier ||
					r.RedirectURI != "http://127.0.0.1:53682/callback" || !slices.Equal(r.Resources, []string{"https://mcp.example.com/mcp"}) ||
					r.Client.ClientID != "client-1" || r.Client.Method != AuthMethodNone || r.Scopes != nil {
					t.Fatalf("got %+v", *r)
				}
			}},
		{name: "refresh without resource (x/oauth2)", body: "grant_type=refresh_token&refresh_token=rt&client_id=c",
			check: func(t *testing.T, r *TokenRequest) {
				if r.RefreshToken != "rt" || r.Resources != nil || r.Scopes != nil {
					t.Fatalf("got %+v", *r)
				}
			}},
		{name: "refresh narrowing scope", body: "grant_type=refresh_token&refresh_token=rt&client_id=c&scope=a+b+a",
			check: func(t *testing.T, r *TokenRequest) {
				if !slices.Equal(r.Scopes, []string{"a", "b"}) {
					t.Fatalf("scopes = %q", r.Scopes)
				}
			}},
		{name: "offline_access apart from the scopes", body: "grant_type=refresh_token&refresh_token=rt&client_id=c&scope=offline_access+a",
			check: func(t *testing.T, r *TokenRequest) {
				if !slices.Equal(r.Scopes, []string{"a"}) || !r.OfflineAccess {
					t.Fatalf("scopes = %q, offline_access = %v", r.Scopes, r.OfflineAccess)
				}
			}},
		{name: "offline_access alone asks no scope", body: "grant_type=refresh_token&refresh_token=rt&client_id=c&scope=offline_access",
			check: func(t *testing.T, r *TokenRequest) {
				if r.Scopes != nil || !r.OfflineAccess {
					t.Fatalf("scopes = %q, offline_access = %v", r.Scopes, r.OfflineAccess)
				}
			}},
		{name: "client_credentials", body: "grant_type=client_credentials&scope=mcp%3Atools", auth: basic("svc", "secret"),
			check: func(t *testing.T, r *TokenRequest) {
				if r.Client.Method != AuthMethodClientSecretBasic || !slices.Equal(r.Scopes, []string{"mcp:tools"}) {
					t.Fatalf("got %+v", *r)
				}
			}},
		{name: "jwt-bearer with empty code (go sdk enterprise)", body: "code=&grant_type=" + url.QueryEscape(GrantJWTBearer) + "&assertion=eyJ.x.y&client_id=c&client_secret=s",
			check: func(t *testing.T, r *TokenRequest) {
				if r.Assertion != "eyJ.x.y" || r.Code != "" || r.Client.Method != AuthMethodClientSecretPost {
					t.Fatalf("got %+v", *r)
				}
			}},
		{name: "token exchange", body: "grant_type=" + url.QueryEscape(GrantTokenExchange) + "&subject_token=st&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aid_token&requested_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aid-jag&audience=https%3A%2F%2Fas.example&audience=b&resource=r&client_id=c&client_secret=s",
			check: func(t *testing.T, r *TokenRequest) {
				if r.SubjectToken != "st" || !slices.Equal(r.Audiences, []string{"https://as.example", "b"}) || r.RequestedTokenType == "" || r.ActorToken != "" {
					t.Fatalf("got %+v", *r)
				}
			}},
		{name: "retrieval with force_refresh", body: "grant_type=" + url.QueryEscape(GrantTokenExchange) + "&subject_token=st&subject_token_type=t&resource=https%3A%2F%2Fhub.example%2Fproviders%2Fcalendar&force_refresh=true&client_id=c",
			check: func(t *testing.T, r *TokenRequest) {
				if !r.ForceRefresh {
					t.Fatalf("got %+v", *r)
				}
			}},
		{name: "force_refresh false", body: "grant_type=" + url.QueryEscape(GrantTokenExchange) + "&subject_token=st&subject_token_type=t&force_refresh=false&client_id=c",
			check: func(t *testing.T, r *TokenRequest) {
				if r.ForceRefresh {
					t.Fatalf("got %+v", *r)
				}
			}},
		{name: "force_refresh other than true", body: "grant_type=" + url.QueryEscape(GrantTokenExchange) + "&subject_token=st&subject_token_type=t&force_refresh=1&client_id=c",
			check: func(t *testing.T, r *TokenRequest) {
				if r.ForceRefresh {
					t.Fatalf("got %+v", *r)
				}
			}},
		{name: "force_refresh on another grant is ignored", body: "grant_type=refresh_token&refresh_token=rt&client_id=c&force_refresh=true",
			check: func(t *testing.T, r *TokenRequest) {
				if r.ForceRefresh {
					t.Fatalf("got %+v", *r)
				}
			}},
		{name: "unknown grant passes through", body: "grant_type=password&username=u&password=p&client_id=c",
			check: func(t *testing.T, r *TokenRequest) {
				if r.GrantType != "password" {
					t.Fatalf("got %+v", *r)
				}
			}},
		{name: "missing grant_type", body: "code=abc&client_id=c", code: CodeInvalidRequest},
		{name: "missing code", body: "grant_type=authorization_code&code_verifier=" + verifier + "&client_id=c", code: CodeInvalidRequest},
		{name: "empty code", body: "grant_type=authorization_code&code=&code_verifier=" + verifier + "&client_id=c", code: CodeInvalidRequest},
		{name: "missing code_verifier", body: "grant_type=authorization_code&code=abc&client_id=c", code: CodeInvalidRequest},
		{name: "malformed code_verifier", body: "grant_type=authorization_code&code=abc&code_verifier=short&client_id=c", code: CodeInvalidGrant},
		{name: "missing refresh_token", body: "grant_type=refresh_token&client_id=c", code: CodeInvalidRequest},
		{name: "missing assertion", body: "grant_type=" + url.QueryEscape(GrantJWTBearer) + "&client_id=c", code: CodeInvalidRequest},
		{name: "jwt-bearer without client authentication (workload identity)", body: "grant_type=" + url.QueryEscape(GrantJWTBearer) + "&assertion=eyJ.x.y",
			check: func(t *testing.T, r *TokenRequest) {
				if r.Assertion != "eyJ.x.y" || r.Client != (ClientAuth{}) {
					t.Fatalf("got %+v", *r)
				}
			}},
		{name: "client credentials without client authentication", body: "grant_type=client_credentials", code: CodeInvalidClient},
		{name: "exchange without subject_token_type", body: "grant_type=" + url.QueryEscape(GrantTokenExchange) + "&subject_token=st&client_id=c", code: CodeInvalidRequest},
		{name: "exchange actor without type", body: "grant_type=" + url.QueryEscape(GrantTokenExchange) + "&subject_token=st&subject_token_type=t&actor_token=a&client_id=c", code: CodeInvalidRequest},
		{name: "bad scope", body: "grant_type=client_credentials&scope=%22x%22", auth: basic("c", "s"), code: CodeInvalidScope},
		{name: "no client", body: "grant_type=refresh_token&refresh_token=rt", code: CodeInvalidClient},
		{name: "repeated code", body: "grant_type=authorization_code&code=a&code=b&client_id=c", code: CodeInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseTokenRequest(formRequest(tt.body, map[string]string{"Authorization": tt.auth}))
			wantCode(t, err, tt.code)
			if tt.check != nil {
				tt.check(t, r)
			}
		})
	}
}

func TestWriteTokenResponse(t *testing.T) {
	tests := []struct {
		name string
		resp TokenResponse
		want string
	}{
		{name: "defaults to Bearer", resp: TokenResponse{AccessToken: "at", ExpiresIn: 600, Scope: "a b"},
			want: `{"access_token":"at","token_type":"Bearer","expires_in":600,"scope":"a b"}`},
		{name: "exchange", resp: TokenResponse{AccessToken: "jag", TokenType: "N_A", IssuedTokenType: "urn:ietf:params:oauth:token-type:id-jag"},
			want: `{"access_token":"jag","token_type":"N_A","issued_token_type":"urn:ietf:params:oauth:token-type:id-jag"}`},
		{name: "with refresh", resp: TokenResponse{AccessToken: "at", TokenType: "Bearer", RefreshToken: "rt"},
			want: `{"access_token":"at","token_type":"Bearer","refresh_token":"rt"}`},
		{name: "retrieved API key", resp: TokenResponse{AccessToken: "k", TokenType: TokenTypeNA, IssuedTokenType: TokenTypeAPIKey, Provider: "search", ConnectionID: "conn_1", KeyHeader: "X-API-Key", KeyHeaderValue: "Bearer k"},
			want: `{"access_token":"k","token_type":"N_A","issued_token_type":"urn:agentid:params:oauth:token-type:api_key","provider":"search","connection_id":"conn_1","key_header":"X-API-Key","key_header_value":"Bearer k"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			in := tt.resp
			WriteTokenResponse(w, &in)
			if w.Code != http.StatusOK || w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("status %d headers %v", w.Code, w.Header())
			}
			if got := strings.TrimSpace(w.Body.String()); got != tt.want {
				t.Fatalf("body %s, want %s", got, tt.want)
			}
			if in != tt.resp {
				t.Fatal("WriteTokenResponse modified its argument")
			}
			var back TokenResponse
			if err := json.Unmarshal(w.Body.Bytes(), &back); err != nil || back.AccessToken != tt.resp.AccessToken {
				t.Fatalf("round trip: %v %+v", err, back)
			}
		})
	}
}

// FuzzParseTokenRequest builds a request from a fuzzed body and
// Authorization header and checks that parsing never panics, that errors
// carry known codes, and that a parsed request honours the form rules.
func FuzzParseTokenRequest(f *testing.F) {
	seeds := []struct{ body, auth string }{
		{"grant_type=authorization_code&code=abc&redirect_uri=http%3A%2F%2F127.0.0.1%3A53682%2Fcallback&code_verifier=" + rfc7636Verifier + "&resource=https%3A%2F%2Fmcp.example.com%2F", basic("client-1", "")},
		{"grant_type=authorization_code&code=abc&code_verifier=" + rfc7636Verifier + "&client_id=c", ""},
		{"grant_type=refresh_token&refresh_token=rt", basic("c", "s")},
		{"code=&grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=x&client_id=c&client_secret=s", ""},
		{"grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=a.b.c", ""},
		{"grant_type=x&resource=a&resource=b&audience=c", "Basic !!"},
		{"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=s&subject_token_type=t&force_refresh=true&client_id=c", ""},
		{"a=%zz&b=1;c", "Basic " + base64.StdEncoding.EncodeToString([]byte("%41:%"))},
	}
	for _, s := range seeds {
		f.Add(s.body, s.auth)
	}
	known := map[string]bool{CodeInvalidRequest: true, CodeInvalidClient: true, CodeInvalidGrant: true, CodeInvalidScope: true}
	f.Fuzz(func(t *testing.T, body, auth string) {
		r := formRequest(body, nil)
		if auth != "" {
			r.Header["Authorization"] = []string{auth}
		}
		req, err := ParseTokenRequest(r)
		if err != nil {
			if !known[err.Code] {
				t.Fatalf("unexpected error code %s", err.Code)
			}
			return
		}
		if req.GrantType == "" || req.Client.Method == "" {
			t.Fatalf("incomplete request %+v", *req)
		}
		if req.Client.ClientID == "" && req.Client.Method != AuthMethodPrivateKeyJWT {
			t.Fatalf("no client_id for method %s", req.Client.Method)
		}
		if req.GrantType == GrantAuthorizationCode && (req.Code == "" || !ValidCodeVerifier(req.CodeVerifier)) {
			t.Fatalf("accepted incomplete authorization_code request %+v", *req)
		}
		for _, v := range append(slices.Clone(req.Resources), req.Audiences...) {
			if v == "" {
				t.Fatal("empty resource or audience kept")
			}
		}
	})
}
