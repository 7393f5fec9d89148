package oauth

import (
	"net/url"
	"slices"
	"strings"
	"testing"
)

// mcpAuthorizeQuery is what the MCP SDK clients send (x/oauth2 AuthCodeURL
// plus resource).
func mcpAuthorizeQuery() url.Values {
	return url.Values{
		"response_type":         {"code"},
		"client_id":             {"client-123"},
		"redirect_uri":          {"http://127.0.0.1:53682/callback"},
		"state":                 {"xyz"},
		"scope":                 {"files:read files:write"},
		"code_challenge":        {rfc7636Challenge},
		"code_challenge_method": {"S256"},
		"resource":              {"https://mcp.example.com/mcp/"},
	}
}

func TestParseAuthorizeRequest(t *testing.T) {
	tests := []struct {
		name   string
		modify func(q url.Values)
		code   string
		check  func(t *testing.T, r *AuthorizeRequest)
	}{
		{name: "mcp client", modify: func(url.Values) {}, check: func(t *testing.T, r *AuthorizeRequest) {
			want := AuthorizeRequest{
				ResponseType: "code", ClientID: "client-123", RedirectURI: "http://127.0.0.1:53682/callback",
				State: "xyz", Scopes: []string{"files:read", "files:write"}, CodeChallenge: rfc7636Challenge,
				CodeChallengeMethod: "S256", Resources: []string{"https://mcp.example.com/mcp/"}, MaxAge: -1,
			}
			if r.ResponseType != want.ResponseType || r.ClientID != want.ClientID || r.RedirectURI != want.RedirectURI ||
				r.State != want.State || !slices.Equal(r.Scopes, want.Scopes) || r.CodeChallenge != want.CodeChallenge ||
				r.CodeChallengeMethod != want.CodeChallengeMethod || !slices.Equal(r.Resources, want.Resources) ||
				r.MaxAge != -1 || r.Prompt != nil || r.Nonce != "" || r.ResponseMode != "" {
				t.Fatalf("got %+v, want %+v", *r, want)
			}
		}},
		{name: "ts client prompt consent offline_access", modify: func(q url.Values) {
			q.Set("prompt", "consent")
			q.Set("scope", "files:read offline_access")
		}, check: func(t *testing.T, r *AuthorizeRequest) {
			if !r.HasPrompt(PromptConsent) || r.HasPrompt(PromptLogin) {
				t.Fatalf("prompt = %q", r.Prompt)
			}
			if !slices.Equal(r.Scopes, []string{"files:read"}) || !r.OfflineAccess {
				t.Fatalf("scopes = %q, offline_access = %v", r.Scopes, r.OfflineAccess)
			}
		}},
		{name: "several resources", modify: func(q url.Values) {
			q["resource"] = []string{"https://a.example/mcp", "https://b.example/mcp"}
		}, check: func(t *testing.T, r *AuthorizeRequest) {
			if len(r.Resources) != 2 {
				t.Fatalf("resources = %q", r.Resources)
			}
		}},
		{name: "no scope no resource no state", modify: func(q url.Values) {
			q.Del("scope")
			q.Del("resource")
			q.Del("state")
		}, check: func(t *testing.T, r *AuthorizeRequest) {
			if r.Scopes != nil || r.Resources != nil || r.State != "" {
				t.Fatalf("got %+v", *r)
			}
		}},
		{name: "empty values absent", modify: func(q url.Values) {
			q.Set("scope", "")
			q.Set("nonce", "")
			q["resource"] = []string{""}
			q["state"] = []string{"", "xyz"}
		}, check: func(t *testing.T, r *AuthorizeRequest) {
			if r.Scopes != nil || r.Resources != nil || r.State != "xyz" {
				t.Fatalf("got %+v", *r)
			}
		}},
		{name: "oidc params", modify: func(q url.Values) {
			q.Set("nonce", "n-0S6_WzA2Mj")
			q.Set("max_age", "300")
			q.Set("prompt", "login consent login")
			q.Set("response_mode", "query")
		}, check: func(t *testing.T, r *AuthorizeRequest) {
			if r.Nonce != "n-0S6_WzA2Mj" || r.MaxAge != 300 || !slices.Equal(r.Prompt, []string{"login", "consent"}) || r.ResponseMode != "query" {
				t.Fatalf("got %+v", *r)
			}
		}},
		{name: "max_age zero", modify: func(q url.Values) { q.Set("max_age", "0") }, check: func(t *testing.T, r *AuthorizeRequest) {
			if r.MaxAge != 0 {
				t.Fatalf("MaxAge = %d", r.MaxAge)
			}
		}},
		{name: "missing client_id", modify: func(q url.Values) { q.Del("client_id") }, code: CodeInvalidRequest},
		{name: "repeated client_id", modify: func(q url.Values) { q.Add("client_id", "other") }, code: CodeInvalidRequest,
			check: func(t *testing.T, r *AuthorizeRequest) {
				if r.ClientID != "" || r.RedirectURI != "" {
					t.Fatalf("ambiguous request kept a redirect target: %+v", *r)
				}
			}},
		{name: "repeated redirect_uri", modify: func(q url.Values) { q.Add("redirect_uri", "https://evil.example/cb") }, code: CodeInvalidRequest,
			check: func(t *testing.T, r *AuthorizeRequest) {
				if r.ClientID != "" || r.RedirectURI != "" {
					t.Fatalf("ambiguous request kept a redirect target: %+v", *r)
				}
			}},
		{name: "repeated state", modify: func(q url.Values) { q.Add("state", "abc") }, code: CodeInvalidRequest,
			check: func(t *testing.T, r *AuthorizeRequest) {
				if r.State != "" || r.ClientID != "client-123" {
					t.Fatalf("got %+v", *r)
				}
			}},
		{name: "repeated scope", modify: func(q url.Values) { q.Add("scope", "x") }, code: CodeInvalidRequest},
		{name: "repeated code_challenge", modify: func(q url.Values) { q.Add("code_challenge", rfc7636Challenge) }, code: CodeInvalidRequest},
		{name: "missing response_type", modify: func(q url.Values) { q.Del("response_type") }, code: CodeInvalidRequest},
		{name: "token response_type", modify: func(q url.Values) { q.Set("response_type", "token") }, code: CodeUnsupportedResponseType},
		{name: "hybrid response_type", modify: func(q url.Values) { q.Set("response_type", "code id_token") }, code: CodeUnsupportedResponseType},
		{name: "missing code_challenge", modify: func(q url.Values) { q.Del("code_challenge") }, code: CodeInvalidRequest,
			check: func(t *testing.T, r *AuthorizeRequest) {
				if r.ClientID != "client-123" || r.RedirectURI == "" || r.State != "xyz" {
					t.Fatalf("request not filled on error: %+v", *r)
				}
			}},
		{name: "absent method means plain", modify: func(q url.Values) { q.Del("code_challenge_method") }, code: CodeInvalidRequest},
		{name: "plain method", modify: func(q url.Values) { q.Set("code_challenge_method", "plain") }, code: CodeInvalidRequest},
		{name: "malformed challenge", modify: func(q url.Values) { q.Set("code_challenge", "short") }, code: CodeInvalidRequest},
		{name: "bad scope", modify: func(q url.Values) { q.Set("scope", `files:read "x"`) }, code: CodeInvalidScope,
			check: func(t *testing.T, r *AuthorizeRequest) {
				if r.State != "xyz" || r.RedirectURI == "" {
					t.Fatalf("request not filled on error: %+v", *r)
				}
			}},
		{name: "fragment response_mode", modify: func(q url.Values) { q.Set("response_mode", "fragment") }, code: CodeInvalidRequest},
		{name: "form_post response_mode", modify: func(q url.Values) { q.Set("response_mode", "form_post") }, code: CodeInvalidRequest},
		{name: "unknown prompt", modify: func(q url.Values) { q.Set("prompt", "bogus") }, code: CodeInvalidRequest},
		{name: "prompt none with login", modify: func(q url.Values) { q.Set("prompt", "none login") }, code: CodeInvalidRequest},
		{name: "negative max_age", modify: func(q url.Values) { q.Set("max_age", "-5") }, code: CodeInvalidRequest},
		{name: "non-numeric max_age", modify: func(q url.Values) { q.Set("max_age", "1h") }, code: CodeInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := mcpAuthorizeQuery()
			tt.modify(q)
			r, err := ParseAuthorizeRequest(q)
			if r == nil {
				t.Fatal("nil request")
			}
			wantCode(t, err, tt.code)
			if tt.check != nil {
				tt.check(t, r)
			}
		})
	}
}

func TestSuccessRedirect(t *testing.T) {
	tests := []struct {
		name, uri, code, state, iss, want string
	}{
		{name: "plain", uri: "http://127.0.0.1:53682/callback", code: "c1", state: "xyz", iss: "https://id.example.com",
			want: "http://127.0.0.1:53682/callback?code=c1&iss=https%3A%2F%2Fid.example.com&state=xyz"},
		{name: "no state", uri: "https://app.example.com/cb", code: "c1", iss: "https://id.example.com",
			want: "https://app.example.com/cb?code=c1&iss=https%3A%2F%2Fid.example.com"},
		{name: "existing query kept verbatim", uri: "https://app.example.com/cb?tenant=a%20b&x", code: "c", state: "s&t", iss: "https://id.example.com",
			want: "https://app.example.com/cb?tenant=a%20b&x&code=c&iss=https%3A%2F%2Fid.example.com&state=s%26t"},
		{name: "trailing question mark", uri: "com.example.app:/cb?", code: "c", iss: "https://id.example.com",
			want: "com.example.app:/cb?code=c&iss=https%3A%2F%2Fid.example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SuccessRedirect(tt.uri, tt.code, tt.state, tt.iss); got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestErrorRedirect(t *testing.T) {
	tests := []struct {
		name, uri string
		err       *Error
		state     string
		want      url.Values
	}{
		{name: "access denied", uri: "http://localhost:3000/callback", err: ErrAccessDenied("the user denied the request"), state: "xyz",
			want: url.Values{"error": {"access_denied"}, "error_description": {"the user denied the request"}, "state": {"xyz"}, "iss": {"https://id.example.com"}}},
		{name: "no description no state", uri: "https://app.example.com/cb?keep=1", err: &Error{Code: CodeInvalidScope},
			want: url.Values{"keep": {"1"}, "error": {"invalid_scope"}, "iss": {"https://id.example.com"}}},
		{name: "description sanitised", uri: "https://app.example.com/cb", err: ErrInvalidRequest("bad \"x\"\n\\ é"),
			want: url.Values{"error": {"invalid_request"}, "error_description": {"bad 'x'    "}, "iss": {"https://id.example.com"}}},
		{name: "nil error", uri: "https://app.example.com/cb", err: nil,
			want: url.Values{"error": {"server_error"}, "iss": {"https://id.example.com"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ErrorRedirect(tt.uri, tt.err, tt.state, "https://id.example.com")
			u, err := url.Parse(got)
			if err != nil {
				t.Fatal(err)
			}
			base, _, _ := strings.Cut(tt.uri, "?")
			if u.Scheme+"://"+u.Host+u.Path != base {
				t.Fatalf("redirect %s does not target %s", got, base)
			}
			if q := u.Query(); q.Encode() != tt.want.Encode() {
				t.Fatalf("query = %v, want %v", q, tt.want)
			}
		})
	}
}

// FuzzParseAuthorizeRequest checks that parsing never panics, always returns
// a request, and that a request without error is fully valid.
func FuzzParseAuthorizeRequest(f *testing.F) {
	f.Add(mcpAuthorizeQuery().Encode())
	f.Add("response_type=code&client_id=https%3A%2F%2Fapp.example.com%2Fclient.json&redirect_uri=http%3A%2F%2Flocalhost%3A3000%2Fcallback&code_challenge=" + rfc7636Challenge + "&code_challenge_method=S256&prompt=consent&scope=mcp%3Atools+offline_access&resource=https%3A%2F%2Fmcp.example.com%2F")
	f.Add("response_type=code&client_id=c&state=s&code_challenge=abc&code_challenge_method=plain")
	f.Add("response_type=token&client_id=c&client_id=d&max_age=-1&prompt=none+login")
	f.Add("scope=%22&response_mode=fragment&nonce=&nonce=a")
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		r, e := ParseAuthorizeRequest(q)
		if r == nil {
			t.Fatal("nil request")
		}
		if e != nil {
			return
		}
		if r.ResponseType != "code" || r.ClientID == "" || r.CodeChallengeMethod != "S256" || !ValidCodeChallenge(r.CodeChallenge) {
			t.Fatalf("accepted invalid request %+v", *r)
		}
		if r.ResponseMode != "" && r.ResponseMode != "query" || r.MaxAge < -1 {
			t.Fatalf("accepted invalid request %+v", *r)
		}
		if _, err := ParseScope(FormatScope(r.Scopes)); err != nil {
			t.Fatalf("accepted invalid scopes %q", r.Scopes)
		}
	})
}
