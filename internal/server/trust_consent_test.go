package server_test

import (
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/server/servertest"
)

// cimdAgents provides the metadata-document clients of a test: with
// option among the hub's options, add makes the client id (an https URL
// on a name under example.com) with its document's name and redirect URIs
// known to the hub. The hub fetches each client's document from a docHost.
type cimdAgents struct {
	option servertest.Option
	add    func(h *hub, id, name string, redirects ...string)
}

func newCIMDAgents(t *testing.T) cimdAgents {
	d := newDocHost(t)
	return cimdAgents{
		option: func(c *server.Config) { c.Fetcher = d.fetcher(time.Now) },
		add: func(h *hub, id, name string, redirects ...string) {
			u, err := url.Parse(id)
			if err != nil {
				t.Fatal(err)
			}
			d.put(u.Path, map[string]any{
				"client_id": id, "client_name": name, "redirect_uris": redirects,
				"grant_types": []string{"authorization_code", "refresh_token"}, "token_endpoint_auth_method": "none",
			}, "max-age=3600")
		},
	}
}

var h1Re = regexp.MustCompile(`(?s)<h1>(.*?)</h1>`)

// nameAlwaysBesideHost fails when name appears on the page without host
// within the next few characters: the document's name is never shown
// alone.
func nameAlwaysBesideHost(t *testing.T, body, name, host string) {
	t.Helper()
	n := 0
	for i := 0; ; {
		j := strings.Index(body[i:], name)
		if j < 0 {
			break
		}
		n++
		at := i + j
		after := body[at+len(name) : min(len(body), at+len(name)+200)]
		beside := regexp.MustCompile(`^</bdi>\s*(<span class="from">)?\(from <strong class="host">` + regexp.QuoteMeta(host) + `</strong>\)`)
		if !beside.MatchString(after) {
			t.Errorf("the name %q appears without its host %q beside it: …%s…", name, host, body[max(0, at-60):min(len(body), at+len(name)+200)])
		}
		i = at + len(name)
	}
	if n == 0 {
		t.Errorf("the page does not show the name %q at all", name)
	}
}

// TestCIMDConsentText: the consent screen of a Client ID Metadata Document
// client names it by its verified host (the heading is the host, never the
// document's free-text name), shows the document's name only with "(from
// host)" beside it, marks a loopback redirect as returning to a program on
// this computer (TestDisplayName: a name's bidirectional controls, which
// could reorder the host shown after it, are dropped). The Continue page of a later
// authorization and the hub's error page follow the same rule.
func TestCIMDConsentText(t *testing.T) {
	agents := newCIMDAgents(t)
	h := newHub(t, agents.option)
	const (
		loopID = "https://app.example.com/oauth/client.json"
		webID  = "https://tools.example.com/agent/meta.json"
		spoof  = "https://drive-google.example.com/c.json"
	)
	agents.add(h, loopID, "Example MCP Client", "http://127.0.0.1/callback")
	agents.add(h, webID, "Web Agent", "https://tools.example.com/cb")
	agents.add(h, spoof, "Google Drive", "https://drive-google.example.com/cb")
	start := func(clientID, redirect string) *flow {
		t.Helper()
		conf := &oauth2.Config{ClientID: clientID, RedirectURL: redirect, Scopes: []string{"notes.read"}, Endpoint: oauth2.Endpoint{AuthURL: h.URL + "/authorize", TokenURL: h.URL + "/token"}}
		f := h.startFlow(h.Browser(), conf)
		if f.page.Status != 200 || !strings.Contains(f.page.Body, `action="/authorize/decision"`) {
			t.Fatalf("no consent page for %s: %d\n%s", clientID, f.page.Status, f.page.Body)
		}
		return f
	}

	loop := start(loopID, "http://127.0.0.1:53219/callback").page.Body
	t.Run("heading is the verified host", func(t *testing.T) {
		m := h1Re.FindStringSubmatch(loop)
		if m == nil || !strings.Contains(m[1], `<span class="host">app.example.com</span>`) || strings.Contains(m[1], "Example MCP Client") {
			t.Errorf("heading %q: want the host app.example.com and not the document's name", m)
		}
	})
	t.Run("name only beside the host", func(t *testing.T) {
		nameAlwaysBesideHost(t, loop, "Example MCP Client", "app.example.com")
		if !strings.Contains(loop, "verified domain") {
			t.Error("no verified domain badge")
		}
	})
	t.Run("loopback mark", func(t *testing.T) {
		for _, w := range []string{`id="local-only">this computer only<`, "Returns to a program on this computer", "127.0.0.1"} {
			if !strings.Contains(loop, w) {
				t.Errorf("page lacks %q", w)
			}
		}
	})

	web := start(webID, "https://tools.example.com/cb").page.Body
	t.Run("https redirect has no loopback mark", func(t *testing.T) {
		if strings.Contains(web, "this computer only") || strings.Contains(web, "program on this computer") {
			t.Error("an https redirect is marked as loopback")
		}
		nameAlwaysBesideHost(t, web, "Web Agent", "tools.example.com")
	})

	t.Run("a refused sensitive scope points the administrator at the domain", func(t *testing.T) {
		conf := &oauth2.Config{ClientID: webID, RedirectURL: "https://tools.example.com/cb", Scopes: []string{"notes.read", "notes.delete"}, Endpoint: oauth2.Endpoint{AuthURL: h.URL + "/authorize"}}
		p := h.startFlow(h.Browser(), conf).page.Body
		if !strings.Contains(p, "<code>agentid domains add tools.example.com --trust trusted</code>") {
			t.Errorf("no domain command on the refusal:\n%s", p)
		}
	})

	evil := start(spoof, "https://drive-google.example.com/cb").page.Body
	t.Run("a borrowed name is shown with the real host", func(t *testing.T) {
		m := h1Re.FindStringSubmatch(evil)
		if m == nil || !strings.Contains(m[1], "drive-google.example.com") || strings.Contains(m[1], "Google Drive") {
			t.Errorf("heading %q", m)
		}
		nameAlwaysBesideHost(t, evil, "Google Drive", "drive-google.example.com")
	})

	t.Run("continue page", func(t *testing.T) {
		b := h.Browser()
		conf := &oauth2.Config{ClientID: loopID, RedirectURL: "http://127.0.0.1:40001/callback", Scopes: []string{"notes.read"}, Endpoint: oauth2.Endpoint{AuthURL: h.URL + "/authorize", TokenURL: h.URL + "/token"}}
		f := h.startFlow(b, conf)
		if back := f.decide("allow", []string{"notes.read"}, "1d"); back.Location == nil {
			t.Fatalf("no redirect after allow: %d\n%s", back.Status, back.Body)
		}
		again := h.startFlow(b, conf).page.Body
		if !strings.Contains(again, `id="continue"`) {
			t.Fatalf("no Continue page for a public native client:\n%s", again)
		}
		m := h1Re.FindStringSubmatch(again)
		if m == nil || !strings.Contains(m[1], "app.example.com") || strings.Contains(m[1], "Example MCP Client") {
			t.Errorf("heading %q", m)
		}
		if !strings.Contains(again, `Continue to <span class="host">app.example.com</span></button>`) {
			t.Error("the Continue button does not name the host")
		}
		nameAlwaysBesideHost(t, again, "Example MCP Client", "app.example.com")
		if !strings.Contains(again, "this computer only") {
			t.Error("no loopback mark on the Continue page")
		}
	})

	t.Run("error page names the host", func(t *testing.T) {
		b := h.Browser()
		b.Login(b.Get(h.URL+"/login"), servertest.TestUser, servertest.TestPassword)
		conf := &oauth2.Config{ClientID: loopID, RedirectURL: "http://127.0.0.1:40001/callback", Scopes: []string{"no.such.scope"}, Endpoint: oauth2.Endpoint{AuthURL: h.URL + "/authorize"}}
		p := h.startFlow(b, conf).page
		if !strings.Contains(p.Body, `id="back"`) {
			t.Fatalf("no error page with a way back (%d):\n%s", p.Status, p.Body)
		}
		if !strings.Contains(p.Body, "Back to <bdi>app.example.com</bdi>") || strings.Contains(p.Body, "Example MCP Client") {
			t.Errorf("error page:\n%s", p.Body)
		}
	})
}
