package server_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
)

var updateWire = flag.Bool("update", false, "rewrite the golden wire transcripts in testdata/wire")

// TestWire pins what agentid sends and answers on the wire, exchange by
// exchange, in testdata/wire/*.txtar: discovery, the authorization code flow
// with PKCE, refresh, client credentials and one error of each kind. Values
// that change from run to run (the hub's address, tokens, codes, secrets,
// timestamps) are replaced by named placeholders; the response headers
// Date, Content-Length and X-Request-Id are left out, every other one is
// shown. Regenerate with
// go test ./internal/server -run TestWire -update.
func TestWire(t *testing.T) {
	const (
		verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk" // RFC 7636 Appendix B
		state    = "af0ifjsldkj"
	)
	tests := []wireCase{
		{"discovery", "Authorization server metadata (RFC 8414); the OIDC discovery document (next case) serves the same fields plus the OpenID Connect ones.", func(w *wireRecorder, h *hub) {
			w.do(http.MethodGet, "/.well-known/oauth-authorization-server", nil, "")
		}},
		{"openid_configuration", "OpenID Connect Discovery 1.0 §4: the RFC 8414 fields plus userinfo_endpoint, id_token_signing_alg_values_supported, subject_types_supported and claims_supported; scopes_supported starts with openid and profile.", func(w *wireRecorder, h *hub) {
			w.do(http.MethodGet, "/.well-known/openid-configuration", nil, "")
		}},
		{"authorization_code", "Authorization code with PKCE (OAuth 2.1 §4.1, RFC 7636) for a public client, once the person has logged in and consented: the redirect back to the client with code, state and iss (RFC 9207), then the code exchange.", func(w *wireRecorder, h *hub) {
			// Tagged skip-continue, so that the recorded re-authorization
			// redirects at once instead of asking the person to continue.
			h.AddClient(&store.Client{ID: "mcp-client", Name: "MCP client", TokenEndpointAuthMethod: "none", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code", "refresh_token"}, Tags: []string{server.TagSkipContinue}})
			b := h.Browser()
			authURL := h.URL + "/authorize?" + url.Values{
				"response_type": {"code"}, "client_id": {"mcp-client"}, "redirect_uri": {redirectURI}, "state": {state},
				"scope": {"notes.read offline_access"}, "resource": {h.Resource},
				"code_challenge": {oauth.S256Challenge(verifier)}, "code_challenge_method": {"S256"},
			}.Encode()
			b.Authorize(authURL, []string{"notes.read"}) // login and consent, not recorded
			back := w.browse(b, authURL)
			w.do(http.MethodPost, "/token", url.Values{
				"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")}, "redirect_uri": {redirectURI},
				"code_verifier": {verifier}, "resource": {h.Resource}, "client_id": {"mcp-client"},
			}, "")
		}},
		{"refresh", "Refresh token rotation (OAuth 2.1 §4.3.1): the refresh answers a new refresh token; the rotated one presented again within the reuse interval (a retry) gets new tokens of the same family; presented after the interval it is refused and revokes the family.", func(w *wireRecorder, h *hub) {
			secret := h.AddClient(&store.Client{ID: "agent", Name: "Notes Agent", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code", "refresh_token"}})
			w.secret(secret, "agent secret")
			tok, err := h.codeFlow(h.Browser(), h.oauth2Config("agent", secret, "notes.read"), []string{"notes.read"})
			if err != nil {
				w.t.Fatal(err)
			}
			w.seen("refresh token", tok.RefreshToken)
			refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}
			w.do(http.MethodPost, "/token", refresh, "agent:"+secret)
			w.do(http.MethodPost, "/token", refresh, "agent:"+secret)
			w.clock.Advance(server.DefaultRefreshReuseInterval + time.Second)
			w.do(http.MethodPost, "/token", refresh, "agent:"+secret)
		}},
		{"client_credentials", "Client credentials (RFC 6749 §4.4) for a confidential client the policy allows notes.read (tag cc:notes.read); the resource is the client's default.", func(w *wireRecorder, h *hub) {
			secret := h.AddClient(&store.Client{ID: "nightly-job", GrantTypes: []string{"client_credentials"}, Tags: []string{"cc:notes.read"}, DefaultResource: h.Resource})
			w.secret(secret, "nightly-job secret")
			w.do(http.MethodPost, "/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"notes.read"}}, "nightly-job:"+secret)
		}},
		{"jwt_bearer_id_jag", "Enterprise-managed authorization, the resource authorization server's side: a confidential client presents an ID-JAG (typ oauth-id-jag+jwt) from a trusted IdP through the RFC 7523 jwt-bearer grant with client_secret_post; the token is the user's, on the resource the ID-JAG is bound to, with the requested scopes it grants, and no refresh token. Presented again, it is refused (jti single use).", func(w *wireRecorder, h *hub) {
			idp := newTrustedIssuer(w.t, idpIssuer)
			h.addIssuer(&store.Issuer{ID: "okta", Issuer: idpIssuer, JWKS: idp.jwks(), Uses: []string{store.IssuerUseIDJAG}})
			secret := h.AddClient(&store.Client{ID: "agent", GrantTypes: []string{oauth.GrantJWTBearer}})
			w.secret(secret, "agent secret")
			now := w.clock.Now()
			idjag := idp.sign("oauth-id-jag+jwt", map[string]any{
				"iss": idpIssuer, "sub": servertest.TestUser, "aud": h.URL, "client_id": "agent", "jti": "idjag-1",
				"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "resource": h.Resource, "scope": "notes.read notes.write",
			})
			w.secret(idjag, "ID-JAG")
			form := url.Values{"grant_type": {oauth.GrantJWTBearer}, "assertion": {idjag}, "scope": {"notes.read"}, "client_id": {"agent"}, "client_secret": {secret}}
			w.do(http.MethodPost, "/token", form, "")
			w.do(http.MethodPost, "/token", form, "")
		}},
		{"error_authorize_redirect", "An authorization request from a client an administrator registered, naming a scope no resource offers: the error goes back to the client with state and iss (RFC 6749 §4.1.2.1, RFC 9207 §2), before any sign-in. (A self-registered client gets the hub's error page instead.)", func(w *wireRecorder, h *hub) {
			h.AddClient(&store.Client{ID: "mcp-client", TokenEndpointAuthMethod: "none", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code"}})
			w.browse(h.Browser(), h.URL+"/authorize?"+url.Values{
				"response_type": {"code"}, "client_id": {"mcp-client"}, "redirect_uri": {redirectURI}, "state": {state},
				"scope": {"mail.send"}, "resource": {h.Resource},
				"code_challenge": {oauth.S256Challenge(verifier)}, "code_challenge_method": {"S256"},
			}.Encode())
		}},
	}
	for _, e := range []struct {
		code, about string
		form        url.Values
		client      string
	}{
		{oauth.CodeInvalidRequest, "A token request without grant_type.", url.Values{"scope": {"notes.read"}}, "job"},
		{oauth.CodeInvalidClient, "A wrong client secret (RFC 6749 §5.2).", url.Values{"grant_type": {"client_credentials"}}, "job:wrong-secret"},
		{oauth.CodeInvalidGrant, "An authorization code that was never issued.", url.Values{"grant_type": {"authorization_code"}, "code": {"no-such-code"}, "code_verifier": {verifier}}, "job"},
		{oauth.CodeUnauthorizedClient, "A client not registered for the refresh_token grant asks for a refresh.", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"no-such-token"}}, "job"},
		{oauth.CodeUnsupportedGrantType, "A grant type the hub does not serve (RFC 8628 device code).", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {"x"}}, "job"},
		{oauth.CodeInvalidScope, "A scope no resource offers.", url.Values{"grant_type": {"client_credentials"}, "scope": {"mail.send"}}, "job"},
		{oauth.CodeInvalidTarget, "A resource that is not registered (RFC 8707 §2).", url.Values{"grant_type": {"client_credentials"}, "resource": {"https://unknown.example/mcp"}}, "job"},
	} {
		tests = append(tests, wireCase{"error_" + e.code, e.about, func(w *wireRecorder, h *hub) {
			secret := h.AddClient(&store.Client{ID: "job", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code", "client_credentials"}, Tags: []string{"cc:notes.read"}, DefaultResource: h.Resource})
			w.secret(secret, "job secret")
			auth := e.client
			if auth == "job" {
				auth += ":" + secret
			}
			w.do(http.MethodPost, "/token", e.form, auth)
		}})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			h := newHub(t, withClock(clk))
			w := newWireRecorder(t, h)
			w.clock = clk
			tc.run(w, h)
			w.check(filepath.Join("testdata", "wire", tc.name+".txtar"), tc.about)
		})
	}
}

// wireCase is one transcript: what it shows and the exchanges that make it.
type wireCase struct {
	name, about string
	run         func(w *wireRecorder, h *hub)
}

// wireRecorder makes HTTP exchanges with a hub and writes them down.
type wireRecorder struct {
	t *testing.T
	h *hub
	// clock is the hub's; a transcript may move it.
	clock *fakeClock
	out   strings.Builder
	n     int
	// names maps each value that changes between runs to its placeholder,
	// in the order the values were first seen.
	names  map[string]string
	order  []string
	counts map[string]int
}

func newWireRecorder(t *testing.T, h *hub) *wireRecorder {
	w := &wireRecorder{t: t, h: h, names: map[string]string{}, counts: map[string]int{}}
	w.secret(h.URL, "issuer")
	// Its escaped form is named apart, so that escaping shows on the wire.
	w.secret(url.QueryEscape(h.URL), "issuer, query-escaped")
	return w
}

// secret names value: it is written as {name} wherever it appears.
func (w *wireRecorder) secret(value, name string) {
	if value == "" || w.names[value] != "" {
		return
	}
	w.names[value] = "{" + name + "}"
	w.order = append(w.order, value)
}

// seen names value by kind, numbered in order of appearance (code 1, code 2).
func (w *wireRecorder) seen(kind, value string) {
	if value == "" || w.names[value] != "" {
		return
	}
	w.counts[kind]++
	w.secret(value, fmt.Sprintf("%s %d", kind, w.counts[kind]))
}

// unrecordedHeaders are the response headers whose values differ from run
// to run.
var unrecordedHeaders = []string{"Date", "Content-Length", "X-Request-Id"}

// changing are the response fields whose values differ from run to run.
var changing = []string{"access_token", "refresh_token", "code", "client_secret", "registration_access_token", "id_token", "connection_id"}

// do sends a request to the hub; auth is "id:secret" for HTTP Basic.
func (w *wireRecorder) do(method, path string, form url.Values, auth string) {
	w.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, w.h.URL+path, body)
	if err != nil {
		w.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if id, secret, ok := strings.Cut(auth, ":"); ok {
		req.SetBasicAuth(id, secret)
	}
	w.exchange(http.DefaultClient, req)
}

// browse follows url with the browser's cookies and returns where the hub
// sent the browser back to the client.
func (w *wireRecorder) browse(b *servertest.Browser, u string) *url.URL {
	w.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	resp := w.exchange(b.Client(), req)
	loc, err := resp.Location()
	if err != nil {
		w.t.Fatalf("the hub did not redirect to the client: %d", resp.StatusCode)
	}
	return loc
}

func (w *wireRecorder) exchange(c *http.Client, req *http.Request) *http.Response {
	w.t.Helper()
	var reqBody []byte
	if req.Body != nil {
		reqBody, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	resp, err := c.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	respBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()

	w.n++
	fmt.Fprintf(&w.out, "-- %d request --\n%s %s\n", w.n, req.Method, req.URL.RequestURI())
	if ct := req.Header.Get("Content-Type"); ct != "" {
		fmt.Fprintf(&w.out, "Content-Type: %s\n", ct)
	}
	if id, secret, ok := req.BasicAuth(); ok {
		// Shown decoded, so that the placeholders stay readable.
		fmt.Fprintf(&w.out, "Authorization: Basic base64(%s:%s)\n", id, secret)
	}
	if len(reqBody) > 0 {
		fmt.Fprintf(&w.out, "\n%s\n", reqBody)
	}

	fmt.Fprintf(&w.out, "-- %d response --\n%s\n", w.n, resp.Status)
	// Every header but those that change from run to run, so that a header
	// added or dropped shows.
	for _, k := range slices.Sorted(maps.Keys(resp.Header)) {
		if !slices.Contains(unrecordedHeaders, k) {
			fmt.Fprintf(&w.out, "%s: %s\n", k, strings.Join(resp.Header[k], ", "))
		}
	}
	if loc, err := resp.Location(); err == nil {
		w.seen("code", loc.Query().Get("code"))
	}
	var fields map[string]any
	if json.Unmarshal(respBody, &fields) == nil {
		for _, k := range changing {
			if v, ok := fields[k].(string); ok {
				w.seen(strings.ReplaceAll(k, "_", " "), v)
			}
		}
		if u, ok := fields["connect_uri"].(string); ok {
			// The sealed intent of a connect URL (retrieval_wire_test.go);
			// the rest of the URL stays readable.
			if _, intent, ok := strings.Cut(u, "intent="); ok {
				w.seen("connect intent", intent)
			}
		}
		var indented bytes.Buffer
		_ = json.Indent(&indented, respBody, "", "  ")
		respBody = indented.Bytes()
	}
	if len(respBody) > 0 {
		fmt.Fprintf(&w.out, "\n%s\n", bytes.TrimRight(respBody, "\n"))
	}
	if _, ok := fields["provider"]; ok && fields["access_token"] != nil {
		// A downstream credential from the vault (retrieval_wire_test.go):
		// opaque to the hub, nothing to decode.
	} else if at, ok := fields["access_token"].(string); ok && fields["token_type"] == oauth.TokenTypeNA {
		// Not an access token of the hub: an ID-JAG (idjag_test.go).
		fmt.Fprintf(&w.out, "-- %d ID-JAG --\n%s\n", w.n, w.idjagOf(at))
	} else if ok {
		fmt.Fprintf(&w.out, "-- %d access token claims --\n%s\n", w.n, w.claimsOf(at))
	}
	return resp
}

// claimsOf shows the claims of an access token, its expiry relative to iat.
func (w *wireRecorder) claimsOf(jwt string) string {
	c := w.h.claims(jwt)
	iat, _ := c["iat"].(float64)
	if exp, ok := c["exp"].(float64); ok {
		c["exp"] = fmt.Sprintf("{iat%+d}", int64(exp-iat))
	}
	if _, ok := c["auth_time"]; ok {
		// The login happened in the unrecorded part, maybe a second earlier.
		c["auth_time"] = "{auth_time}"
	}
	c["iat"] = "{iat}"
	w.seen("jti", c["jti"].(string))
	b, _ := json.MarshalIndent(c, "", "  ")
	return string(b)
}

// normalised replaces every changing value by its placeholder, longest
// first, and timestamps in JSON by {timestamp}.
func (w *wireRecorder) normalised(s string) string {
	values := slices.Clone(w.order)
	slices.SortStableFunc(values, func(a, b string) int { return len(b) - len(a) })
	for _, v := range values {
		s = strings.ReplaceAll(s, v, w.names[v])
	}
	return timestampRe.ReplaceAllString(s, `"$1": "{timestamp}"`)
}

var timestampRe = regexp.MustCompile(`"(client_id_issued_at|iat|exp|auth_time)": [0-9]{9,}`)

// check compares the transcript with the golden file, or writes it with
// -update.
func (w *wireRecorder) check(path, about string) {
	w.t.Helper()
	got := []byte(about + "\nRegenerate: go test ./internal/server -run TestWire -update\n" + w.normalised(w.out.String()))
	if *updateWire {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			w.t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			w.t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		w.t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		w.t.Errorf("%s differs from the wire (run with -update if the change is intended):\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}
