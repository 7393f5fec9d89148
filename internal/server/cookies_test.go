package server_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/server/servertest"
)

// serve runs one request through the hub's handler with the given cookies.
func serve(h *hub, method, path string, form url.Values, cookies ...*http.Cookie) *http.Response {
	var req *http.Request
	if form != nil {
		req = httptest.NewRequest(method, h.URL+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req = httptest.NewRequest(method, h.URL+path, nil)
	}
	for _, c := range cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	rec := httptest.NewRecorder()
	h.Server.Handler().ServeHTTP(rec, req)
	return rec.Result()
}

func cookieNamed(cs []*http.Cookie, name string) *http.Cookie {
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// signedIn signs a fresh browser in and returns its cookies.
func signedIn(t *testing.T, h *hub, prefix string) []*http.Cookie {
	t.Helper()
	resp := serve(h, http.MethodGet, "/login", nil)
	pre := resp.Cookies()
	body := readBody(resp)
	resp = serve(h, http.MethodPost, "/login", url.Values{"csrf_token": {csrfOf(t, body)}, "username": {servertest.TestUser}, "password": {servertest.TestPassword}}, pre...)
	sess := cookieNamed(resp.Cookies(), prefix+"agentid_session")
	if resp.StatusCode != http.StatusSeeOther || sess == nil {
		t.Fatalf("sign-in: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	return append(pre, sess)
}

func readBody(resp *http.Response) string {
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return string(b)
}

// TestHostPrefixedCookies: over https the hub's cookies carry the __Host-
// prefix, with Secure, Path=/ and no Domain, and the hub reads only them.
func TestHostPrefixedCookies(t *testing.T) {
	tests := []struct {
		name   string
		secure bool
		prefix string
	}{
		{"https", true, "__Host-"},
		{"http on loopback", false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHub(t, func(c *server.Config) { c.SecureCookies = tc.secure })
			cookies := signedIn(t, h, tc.prefix)
			for _, c := range cookies {
				if !strings.HasPrefix(c.Name, tc.prefix+"agentid_") || c.Secure != tc.secure || c.Path != "/" || c.Domain != "" || !c.HttpOnly {
					t.Errorf("cookie %+v", c)
				}
			}
			if resp := serve(h, http.MethodGet, "/account", nil, cookies...); resp.StatusCode != http.StatusOK {
				t.Fatalf("account page with the session cookie: %d", resp.StatusCode)
			}
			if tc.prefix != "" {
				// The unprefixed name, as a sibling subdomain could plant it,
				// is not a session.
				var plain []*http.Cookie
				for _, c := range cookies {
					plain = append(plain, &http.Cookie{Name: strings.TrimPrefix(c.Name, tc.prefix), Value: c.Value})
				}
				if resp := serve(h, http.MethodGet, "/account", nil, plain...); resp.StatusCode != http.StatusSeeOther {
					t.Fatalf("account page with unprefixed cookies: %d, want a redirect to sign in", resp.StatusCode)
				}
			}
		})
	}
}

// TestCSRFBoundToSession: a form token works only with the session (or,
// signed out, the pre-session) it was made for.
func TestCSRFBoundToSession(t *testing.T) {
	h := newHub(t)
	a := signedIn(t, h, "")
	b := signedIn(t, h, "")
	tokenOf := func(cookies []*http.Cookie) string {
		return csrfOf(t, readBody(serve(h, http.MethodGet, "/account", nil, cookies...)))
	}
	revoke := func(tok string, cookies ...*http.Cookie) int {
		return serve(h, http.MethodPost, "/account/revoke", url.Values{"csrf_token": {tok}, "client_id": {"nobody"}}, cookies...).StatusCode
	}
	sessionOf := func(cs []*http.Cookie) *http.Cookie { return cookieNamed(cs, "agentid_session") }
	preOf := func(cs []*http.Cookie) *http.Cookie { return cookieNamed(cs, "agentid_csrf") }
	ta, tb := tokenOf(a), tokenOf(b)

	tests := []struct {
		name    string
		token   string
		cookies []*http.Cookie
		want    int
	}{
		{"own token", tb, b, http.StatusSeeOther},
		{"another session's token", ta, b, http.StatusForbidden},
		{"another session's token with its pre-session cookie", ta, []*http.Cookie{sessionOf(b), preOf(a)}, http.StatusForbidden},
		{"no token", "", b, http.StatusForbidden},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := revoke(tc.token, tc.cookies...); got != tc.want {
				t.Fatalf("revoke: %d, want %d", got, tc.want)
			}
		})
	}
	t.Run("before sign-in, bound to the pre-session cookie", func(t *testing.T) {
		r1 := serve(h, http.MethodGet, "/login", nil)
		r2 := serve(h, http.MethodGet, "/login", nil)
		t2 := csrfOf(t, readBody(r2))
		resp := serve(h, http.MethodPost, "/login", url.Values{"csrf_token": {t2}, "username": {servertest.TestUser}, "password": {servertest.TestPassword}}, r1.Cookies()...)
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("login with another browser's token: %d, want 403", resp.StatusCode)
		}
	})
	t.Run("a token from before sign-in is refused after it", func(t *testing.T) {
		r := serve(h, http.MethodGet, "/login", nil)
		before := csrfOf(t, readBody(r))
		cookies := append(r.Cookies(), sessionOf(a))
		if got := revoke(before, cookies...); got != http.StatusForbidden {
			t.Fatalf("revoke with the pre-sign-in token: %d, want 403", got)
		}
	})
}
