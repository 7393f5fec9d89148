package server_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// TestCIMDHostFromClientID pins that the consent screen shows the host
// of a CIMD client's client_id (not just the redirect host): the redirect
// URI here lives on another host, so the client_id host can only come from
// the Application row.
func TestCIMDHostFromClientID(t *testing.T) {
	d := newDocHost(t)
	h, _ := cimdHub(t, d)
	d.put("/meta.json", map[string]any{"client_id": "https://agents.example.com/meta.json", "client_name": "Hosted agent", "redirect_uris": []string{"https://callback.example.net/cb"}}, "")
	conf := &oauth2.Config{ClientID: "https://agents.example.com/meta.json", RedirectURL: "https://callback.example.net/cb", Scopes: []string{"notes.read"}, Endpoint: oauth2.Endpoint{AuthURL: h.URL + "/authorize"}}
	f := h.startFlow(h.Browser(), conf)
	app := regexp.MustCompile(`(?s)<dt>Application</dt>\s*<dd>(.*?)</dd>`).FindStringSubmatch(f.page.Body)
	if app == nil {
		t.Fatalf("no Application row:\n%s", f.page.Body)
	}
	for _, tc := range []struct {
		name, want string
	}{
		{"badge", "verified domain"},
		{"client_id host", "agents.example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(app[1], tc.want) {
				t.Errorf("Application row %q lacks %q", app[1], tc.want)
			}
		})
	}
	if strings.Contains(app[1], "callback.example.net") {
		t.Errorf("Application row shows the redirect host: %q", app[1])
	}
}

// TestRevokeBeforeCodeExchange: a code issued before the person
// revokes the agent on /account yields no token, on both backends.
func TestRevokeBeforeCodeExchange(t *testing.T) {
	consentBackends(t, func(t *testing.T, h *hub, _ *fakeClock) {
		conf, _ := addAgent(h)
		conf.Scopes = []string{"notes.read", "notes.write"}
		b := h.Browser()
		f := h.startFlow(b, conf)
		back := f.decide("allow", conf.Scopes, "1d")
		if back.Location == nil || back.Location.Query().Get("code") == "" {
			t.Fatalf("no code: %d\n%s", back.Status, back.Body)
		}
		p := h.account(b)
		if r := h.revoke(b, cfField(t, cfCSRF, p.Body), map[string][]string{"client_id": {"agent-1"}}); r.URL.Query().Get("done") != "revoked" {
			t.Fatalf("revoke: %s", r.URL)
		}
		_, err := conf.Exchange(context.Background(), back.Location.Query().Get("code"), oauth2.VerifierOption(f.verifier))
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
			t.Fatalf("exchange after revocation: %v, want invalid_grant", err)
		}
	})
}

// TestPageHeaders checks the headers on the consent page and the
// account page themselves (the existing header test looks at an error page
// only): a CSP that allows no script and no framing, X-Frame-Options, no
// caching.
func TestPageHeaders(t *testing.T) {
	h := newHub(t)
	conf, _ := addAgent(h)
	conf.Scopes = []string{"notes.read"}
	b := h.Browser()
	f := h.startFlow(b, conf)
	if !strings.Contains(f.page.Body, `action="/authorize/decision"`) {
		t.Fatalf("no consent page:\n%s", f.page.Body)
	}
	for _, tc := range []struct{ name, path string }{{"consent", f.page.URL.String()}, {"account", h.URL + "/account"}} {
		path := tc.path
		t.Run(tc.name, func(t *testing.T) {
			resp, err := b.Client().Get(path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("%s: %d", path, resp.StatusCode)
			}
			csp := resp.Header.Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("CSP %q lacks %q", csp, want)
				}
			}
			for _, bad := range []string{"script-src", "unsafe-inline", "unsafe-eval", "*"} {
				if strings.Contains(csp, bad) {
					t.Errorf("CSP %q has %q", csp, bad)
				}
			}
			if got := resp.Header.Get("X-Frame-Options"); got != "DENY" {
				t.Errorf("X-Frame-Options = %q", got)
			}
			if got := resp.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q", got)
			}
		})
	}
}
