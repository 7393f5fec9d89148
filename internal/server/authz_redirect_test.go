package server_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
)

// TestSelfRegisteredErrorsNotRedirected: a hub link that fails validation
// must not bounce a browser to a redirect URI anyone could register (RFC
// 9700 §4.11.2). For a self-registered client the hub shows its own error
// page, with a link back only for a signed-in person; a client an
// administrator registered keeps the RFC 6749 §4.1.2.1 redirect.
func TestSelfRegisteredErrorsNotRedirected(t *testing.T) {
	h := newHub(t)
	const evil = "https://evil.example/cb"
	reg := h.jsonRequest(http.MethodPost, "/register", map[string]any{"client_name": "Innocent", "redirect_uris": []string{evil}}, "")
	if reg.status != http.StatusCreated {
		t.Fatalf("register: %d %v", reg.status, reg.body)
	}
	dcr := reg.body["client_id"].(string)
	h.AddClient(&store.Client{ID: "admin-app", RedirectURIs: []string{evil}, GrantTypes: []string{"authorization_code"}})

	signedIn := h.Browser()
	p := signedIn.Get(h.URL + "/login")
	if p = signedIn.Login(p, servertest.TestUser, servertest.TestPassword); p.Status != http.StatusOK {
		t.Fatalf("login: %d", p.Status)
	}

	errs := []struct {
		name  string
		query url.Values
		code  string
	}{
		{"unknown scope", url.Values{"scope": {"admin.everything"}}, "invalid_scope"},
		{"unknown resource", url.Values{"resource": {"https://nowhere.example/mcp"}}, "invalid_target"},
		{"bad resource", url.Values{"resource": {"not a uri"}}, "invalid_target"},
		{"token response type", url.Values{"response_type": {"token"}}, "unsupported_response_type"},
		{"no PKCE", url.Values{"code_challenge": nil}, "invalid_request"},
		{"prompt none signed out", url.Values{"prompt": {"none"}}, "login_required"},
	}
	authURL := func(clientID string, over url.Values) string {
		q := url.Values{
			"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {evil}, "state": {"st"},
			"scope": {"notes.read"}, "resource": {h.Resource},
			"code_challenge": {"E9Melhoe2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"},
		}
		for k, v := range over {
			if v == nil {
				q.Del(k)
			} else {
				q[k] = v
			}
		}
		return h.URL + "/authorize?" + q.Encode()
	}
	for _, tc := range errs {
		t.Run(tc.name+"/self-registered, signed out", func(t *testing.T) {
			p := h.Browser().Get(authURL(dcr, tc.query))
			if p.Location != nil || p.Status != http.StatusBadRequest {
				t.Fatalf("got %d to %v, want the hub's error page", p.Status, p.Location)
			}
			if strings.Contains(p.Body, "evil.example") || servertest.BackLink(p.Body) != nil {
				t.Fatalf("a signed-out page links to the client:\n%s", p.Body)
			}
			if !strings.Contains(p.Body, tc.code) {
				t.Fatalf("page does not name %s:\n%s", tc.code, p.Body)
			}
		})
		if tc.code == "login_required" {
			continue
		}
		t.Run(tc.name+"/self-registered, signed in", func(t *testing.T) {
			p := signedIn.Get(authURL(dcr, tc.query))
			if p.Location != nil || p.Status != http.StatusBadRequest {
				t.Fatalf("got %d to %v, want the hub's error page", p.Status, p.Location)
			}
			back := servertest.BackLink(p.Body)
			if back == nil || !strings.HasPrefix(back.String(), evil+"?") {
				t.Fatalf("no link back to the client:\n%s", p.Body)
			}
			if q := back.Query(); q.Get("error") != tc.code || q.Get("state") != "st" || q.Get("iss") != h.URL {
				t.Fatalf("link back carries %v", q)
			}
			if !strings.Contains(p.Body, "Innocent") || !strings.Contains(p.Body, "evil.example") {
				t.Fatalf("page does not say where the link leads:\n%s", p.Body)
			}
		})
		t.Run(tc.name+"/admin-registered", func(t *testing.T) {
			p := h.Browser().Get(authURL("admin-app", tc.query))
			if p.Location == nil || !strings.HasPrefix(p.Location.String(), evil+"?") {
				t.Fatalf("got %d %v, want a redirect to the client", p.Status, p.Location)
			}
			if q := p.Location.Query(); q.Get("error") != tc.code || q.Get("state") != "st" || q.Get("iss") != h.URL {
				t.Fatalf("redirect carries %v", q)
			}
		})
	}
}
