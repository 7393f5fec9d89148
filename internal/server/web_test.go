package server_test

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
)

// get fetches path with an optional Accept header and returns the response
// with its body read.
func (h *hub) get(t *testing.T, method, path, accept string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, h.URL+path, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestHomePage: the hub's address is a page saying what the hub is, with a
// way to sign in; signed in, it leads to the person's agents.
func TestHomePage(t *testing.T) {
	h := newHub(t)
	t.Run("signed out", func(t *testing.T) {
		resp, body := h.get(t, http.MethodGet, "/", "text/html")
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("GET /: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("CSP = %q", csp)
		}
		if !strings.Contains(body, `href="/login"`) || !strings.Contains(body, "<h1>") {
			t.Errorf("no sign-in link:\n%s", body)
		}
		for _, private := range []string{`href="/account"`, "Signed in as", servertest.TestUser, "notes.read", "<script"} {
			if strings.Contains(body, private) {
				t.Errorf("a signed-out visitor sees %q", private)
			}
		}
	})
	t.Run("signed in", func(t *testing.T) {
		b := h.Browser()
		b.Login(b.Get(h.URL+"/login"), servertest.TestUser, servertest.TestPassword)
		p := b.Get(h.URL + "/")
		if p.Status != http.StatusOK || !strings.Contains(p.Body, `href="/account"`) || !strings.Contains(p.Body, "Your connected agents") || !strings.Contains(p.Body, servertest.TestUser) {
			t.Fatalf("home signed in: %d\n%s", p.Status, p.Body)
		}
		if !strings.Contains(p.Body, `action="/logout"`) {
			t.Error("no sign-out form")
		}
	})
	t.Run("favicon", func(t *testing.T) {
		resp, body := h.get(t, http.MethodGet, "/favicon.ico", "")
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/x-icon" {
			t.Fatalf("favicon: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if !bytes.HasPrefix([]byte(body), []byte{0, 0, 1, 0}) || len(body) > 4096 {
			t.Fatalf("favicon is not a small ICO (%d bytes)", len(body))
		}
	})
}

// TestStaticFiles: /static/ serves files and never lists a directory.
func TestStaticFiles(t *testing.T) {
	h := newHub(t)
	tests := []struct {
		name, path string
		status     int
	}{
		{"stylesheet", "/static/style.css", http.StatusOK},
		{"directory", "/static/", http.StatusNotFound},
		{"directory without slash", "/static", http.StatusNotFound},
		{"missing file", "/static/nope.css", http.StatusNotFound},
		{"dot dot", "/static/../server.go", http.StatusNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Follow the mux's redirects (/static → /static/): where they
			// lead must not be a listing either.
			req, _ := http.NewRequest(http.MethodGet, h.URL+tc.path, nil)
			req.Header.Set("Accept", "text/html")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			body := string(b)
			if resp.StatusCode != tc.status {
				t.Fatalf("GET %s = %d, want %d", tc.path, resp.StatusCode, tc.status)
			}
			if strings.Contains(body, `href="style.css"`) || strings.Contains(body, "<pre>") {
				t.Fatalf("GET %s lists a directory:\n%s", tc.path, body)
			}
		})
	}
}

// TestUnknownPaths: a path the hub does not serve is 404 — JSON for a
// program, a readable page for a browser — never a 405 allowing OPTIONS.
func TestUnknownPaths(t *testing.T) {
	h := newHub(t)
	tests := []struct {
		name, method, path, accept string
		status                     int
		html                       bool
	}{
		{"program GET", http.MethodGet, "/nope", "application/json", http.StatusNotFound, false},
		{"program without Accept", http.MethodGet, "/.well-known/nope", "", http.StatusNotFound, false},
		{"program POST", http.MethodPost, "/nope", "", http.StatusNotFound, false},
		{"browser GET", http.MethodGet, "/nope", "text/html,application/xhtml+xml,*/*;q=0.8", http.StatusNotFound, true},
		{"under the account page", http.MethodGet, "/account/nope", "text/html", http.StatusNotFound, true},
		{"preflight of an unknown path", http.MethodOptions, "/nope", "", http.StatusNotFound, false},
		{"preflight of the token endpoint", http.MethodOptions, "/token", "", http.StatusNoContent, false},
		{"preflight of discovery", http.MethodOptions, "/.well-known/oauth-authorization-server", "", http.StatusNoContent, false},
		{"preflight of a registration", http.MethodOptions, "/register/abc", "", http.StatusNoContent, false},
		{"wrong method on a known endpoint", http.MethodGet, "/token", "", http.StatusMethodNotAllowed, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := h.get(t, tc.method, tc.path, tc.accept)
			if resp.StatusCode != tc.status {
				t.Fatalf("%s %s = %d (Allow %q), want %d", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"), tc.status)
			}
			if tc.status != http.StatusNotFound {
				return
			}
			if resp.Header.Get("Allow") != "" {
				t.Errorf("a 404 carries Allow: %q", resp.Header.Get("Allow"))
			}
			ct := resp.Header.Get("Content-Type")
			switch {
			case tc.html && (!strings.HasPrefix(ct, "text/html") || !strings.Contains(body, "<h1>Page not found</h1>") || resp.Header.Get("Content-Security-Policy") == ""):
				t.Errorf("browser 404: %s\n%s", ct, body)
			case !tc.html && (ct != "application/json" || !strings.Contains(body, `"error":"invalid_request"`)):
				t.Errorf("program 404: %s\n%s", ct, body)
			}
		})
	}
}

// TestRequestIDs: the hub names every request itself and echoes its own
// id; a well-formed client id is recorded beside it in the audit trail,
// anything else is dropped.
func TestRequestIDs(t *testing.T) { forEachBackend(t, testRequestIDs) }

func testRequestIDs(t *testing.T, h *hub) {
	secret := h.AddClient(&store.Client{ID: "bot", GrantTypes: []string{"client_credentials"}, Tags: []string{"cc:notes.read"}, DefaultResource: h.Resource})
	tests := []struct {
		name, sent, recorded string
	}{
		{"none", "", ""},
		{"well-formed", "trace-01.ABC_z", "trace-01.ABC_z"},
		{"64 characters", strings.Repeat("a", 64), strings.Repeat("a", 64)},
		{"65 characters", strings.Repeat("a", 65), ""},
		{"space", "a b", ""},
		{"markup", "<b>", ""},
		{"tab", "x\ty", ""},
		{"non-ASCII", "ünïcode", ""},
	}
	seen := map[string]bool{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, h.URL+"/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth("bot", secret)
			if tc.sent != "" {
				req.Header["X-Request-Id"] = []string{tc.sent}
			}
			r := h.send(req)
			if r.status != http.StatusOK {
				t.Fatalf("token: %d %v", r.status, r.body)
			}
			id := r.header.Get("X-Request-Id")
			if id == "" || id == tc.sent || seen[id] {
				t.Fatalf("response X-Request-Id = %q (sent %q): want a fresh id of the hub's own", id, tc.sent)
			}
			seen[id] = true
			var ev *store.AuditEvent
			for _, e := range h.auditEvents("token.issued") {
				if e.RequestID == id {
					ev = e
				}
			}
			if ev == nil {
				t.Fatalf("no token.issued event with the hub's request id %q", id)
			}
			if got := ev.Details[store.DetailClientRequestID]; got != tc.recorded {
				t.Fatalf("recorded client request id = %q, want %q", got, tc.recorded)
			}
			if ev.Details["jti"] == "" {
				t.Fatal("recording the client's id lost the event's own details")
			}
		})
	}
}
