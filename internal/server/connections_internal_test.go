package server

import (
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/keyring"
)

func TestSafeReturnConnections(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"/connections", "/connections"},
		{"/connections/connect/calendar?intent=v1.k1.abc_-.def%3D", "/connections/connect/calendar?intent=v1.k1.abc_-.def%3D"},
		{"/connections/", "/account"},
		{"/connections?x=1", "/account"},
		{"/connections/connect/calendar", "/account"},
		{"/connections/connect/calendar?intent=", "/account"},
		{"/connections/connect/Calendar?intent=abc", "/account"},
		{"/connections/connect/../account?intent=abc", "/account"},
		{"/connections/connect/calendar?intent=abc&next=//evil.example", "/account"},
		{"/connections/connect/calendar?intent=abc/..", "/account"},
		{"/connections/connect/calendar?intent=a\r\nSet-Cookie:x", "/account"},
		{"/connections/connect/calendar?intent=" + strings.Repeat("a", 4097), "/account"},
		{"//evil.example/connections", "/account"},
		{"https://evil.example/connections", "/account"},
	} {
		if got := safeReturn(tt.in); got != tt.want {
			t.Errorf("safeReturn(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzSafeReturn: whatever a login link carries, the redirect after
// sign-in stays on one of the hub's own pages: a path starting with a
// single slash, without a backslash, line break or second slash at the
// start that a browser would read as another host.
func FuzzSafeReturn(f *testing.F) {
	for _, s := range []string{"/connections", "/connections/connect/calendar?intent=v1.a.b.c", "/authorize?client_id=x", "/account", "//x", "/\\x", "/connections/connect/a?intent=%0d%0a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got := safeReturn(in)
		if got == "/account" {
			return
		}
		if got != in || !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") || strings.ContainsAny(got, "\\\r\n") {
			t.Fatalf("safeReturn(%q) = %q", in, got)
		}
		if strings.HasPrefix(got, "/connections/connect/") {
			_, q, _ := strings.Cut(got, "?intent=")
			if strings.ContainsAny(q, "&#/?=") {
				t.Fatalf("safeReturn(%q) lets %q through", in, got)
			}
		}
	})
}

func TestKeyLabel(t *testing.T) {
	for _, tt := range []struct{ name, key, want string }{
		{"", "sk_live_0123456789abcd", "…abcd"},
		{"Work", "sk_live_0123456789abcd", "Work …abcd"},
		{"", "short_key_1", "…"},
		{"", "twelve_chars", "…hars"},
	} {
		if got := keyLabel(tt.name, tt.key); got != tt.want {
			t.Errorf("keyLabel(%q, %q) = %q, want %q", tt.name, tt.key, got, tt.want)
		}
	}
}

func TestValidAPIKey(t *testing.T) {
	for key, want := range map[string]bool{
		"sk_live_abc":             true,
		"a.b-c_d~e+f/g=":          true,
		"":                        false,
		"with space":              false,
		"tab\there":               false,
		"nl\n":                    false,
		"del\x7f":                 false,
		"é-non-ascii":             false,
		strings.Repeat("k", 4096): true,
		strings.Repeat("k", 4097): false,
	} {
		if got := validAPIKey(key); got != want {
			t.Errorf("validAPIKey(%.20q) = %v, want %v", key, got, want)
		}
	}
}

// TestOpenFlow: a flow cookie opens only under the name of its own state,
// for this tenant, before it expires, and only if the keyring sealed it as
// a flow (a connect intent, same keyring, other purpose, does not pass).
func TestOpenFlow(t *testing.T) {
	kek, err := keyring.GenerateKEK(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := keyring.NewKeyring(kek)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	s := &Server{cfg: Config{Keyring: ring}, issuer: "http://hub.example", tenant: "default", rand: rand.Reader, now: func() time.Time { return now }}
	sealed := func(f connectFlow, aad string) string {
		rec := httptest.NewRecorder()
		if aad == connectFlowAAD {
			if err := s.setFlowCookie(rec, &f); err != nil {
				t.Fatal(err)
			}
			return rec.Result().Cookies()[0].Value
		}
		b, _ := json.Marshal(f)
		ct, err := ring.Seal(rand.Reader, b, aad)
		if err != nil {
			t.Fatal(err)
		}
		return string(ct)
	}
	good := connectFlow{TenantID: "default", State: "state-A", UserID: "u-1", Provider: "calendar"}
	tests := []struct {
		name, state, value string
		later              time.Duration
		ok                 bool
	}{
		{"its own state", "state-A", sealed(good, connectFlowAAD), 0, true},
		{"nine minutes later", "state-A", sealed(good, connectFlowAAD), 9 * time.Minute, true},
		{"ten minutes later", "state-A", sealed(good, connectFlowAAD), 10 * time.Minute, false},
		{"put under another state's name", "state-B", sealed(good, connectFlowAAD), 0, false},
		{"another tenant's", "state-A", sealed(connectFlow{TenantID: "other", State: "state-A", UserID: "u-1"}, connectFlowAAD), 0, false},
		{"no user", "state-A", sealed(connectFlow{TenantID: "default", State: "state-A"}, connectFlowAAD), 0, false},
		{"sealed for another purpose", "state-A", sealed(connectFlow{TenantID: "default", State: "state-A", UserID: "u-1", Expires: now.Add(time.Hour).Unix()}, connectIntentAAD), 0, false},
		{"garbage", "state-A", "v1.x.y.z", 0, false},
		{"too long", "state-A", strings.Repeat("a", maxFlowCookie+1), 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func(at time.Time) { now = at }(now)
			now = now.Add(tt.later)
			r := httptest.NewRequest(http.MethodGet, "/connections/callback", nil)
			r.AddCookie(&http.Cookie{Name: s.flowCookieName(tt.state), Value: tt.value})
			f, err := s.openFlow(r, tt.state)
			if (err == nil) != tt.ok {
				t.Fatalf("openFlow: %v, want ok=%v", err, tt.ok)
			}
			if tt.ok && (f.UserID != "u-1" || f.Provider != "calendar") {
				t.Fatalf("flow %+v", f)
			}
		})
	}
	if s.flowCookieName("state-A") == s.flowCookieName("state-B") {
		t.Fatal("two states share a cookie name")
	}
}
