package server_test

import (
	"net/http"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
)

// TestRegisterRefusesInvisibleText: dynamic registration refuses a client
// name with a bidirectional override or a zero-width character, and
// invalid UTF-8, with invalid_client_metadata (RFC 7591 §3.2.2).
func TestRegisterRefusesInvisibleText(t *testing.T) {
	h := newHub(t)
	for name, body := range map[string]string{
		"right-to-left override":  `{"client_name":"Notes ` + "\u202e" + `tnegA","redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"none"}`,
		"zero-width space":        `{"client_name":"Not` + "\u200b" + `es","redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"none"}`,
		"escaped isolate":         `{"client_name":"Notes\u2066x","redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"none"}`,
		"invalid UTF-8":           "{\"client_name\":\"Notes \xff\",\"redirect_uris\":[\"http://127.0.0.1/cb\"],\"token_endpoint_auth_method\":\"none\"}",
		"backslash in client_uri": `{"client_uri":"https://a.example\\@evil.example","redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"none"}`,
	} {
		t.Run(name, func(t *testing.T) {
			r := h.jsonRequest(http.MethodPost, "/register", body, "")
			if r.status != http.StatusBadRequest || r.body["error"] != "invalid_client_metadata" {
				t.Fatalf("register: %d %v, want 400 invalid_client_metadata", r.status, r.body)
			}
		})
	}
}

// TestConsentIsolatesClientName: a name stored before the Unicode rules
// (or by any other path) is isolated with <bdi>, so an override inside it
// cannot reverse the heading or the warning that follows.
func TestConsentIsolatesClientName(t *testing.T) {
	h := newHub(t)
	const name = "Notes \u202etnegA"
	h.AddClient(&store.Client{ID: "legacy", Name: name, RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code"}, RegistrationMethod: store.RegistrationDCR, TokenEndpointAuthMethod: "none"})
	conf := h.oauth2Config("legacy", "", "notes.read")
	b := h.Browser()
	p := b.Get(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("resource", h.Resource)))
	p = b.Login(p, servertest.TestUser, servertest.TestPassword)
	if n := strings.Count(p.Body, "<bdi>"+name+"</bdi>"); n < 2 {
		t.Fatalf("client name isolated %d times, want in the heading and the facts:\n%s", n, p.Body)
	}
	if strings.Contains(strings.ReplaceAll(p.Body, "<bdi>"+name+"</bdi>", ""), name) {
		t.Fatalf("client name shown without <bdi>:\n%s", p.Body)
	}
}
