package server_test

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
)

// registerVia posts a registration from peer carrying the given
// X-Forwarded-For headers and returns the status and the IP its audit
// event recorded (empty when refused).
func (h *hub) registerVia(t *testing.T, peer string, xff []string, name string, port int) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.URL+"/register", strings.NewReader(mustJSON(t, nativeClient(name, port))))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(peerHeader, peer)
	for _, v := range xff {
		req.Header.Add("X-Forwarded-For", v)
	}
	r := h.send(req)
	if r.status != http.StatusCreated {
		return r.status, ""
	}
	id, _ := r.body["client_id"].(string)
	evs, err := h.Store.ListAudit(context.Background(), store.AuditFilter{TenantID: store.DefaultTenant, Type: audit.ClientRegistered, ClientID: id})
	if err != nil || len(evs) != 1 {
		t.Fatalf("audit events of %s: %v %v", id, evs, err)
	}
	return r.status, evs[0].IP
}

// TestTrustedProxies: X-Forwarded-For names the client only when the peer
// is a trusted proxy, and then its rightmost untrusted hop; the resolved
// address is what the per-address registration limit counts and what the
// audit trail records. An untrusted peer cannot shed its limit or forge
// its audit address by sending the header.
func TestTrustedProxies(t *testing.T) {
	reg := &server.RegistrationConfig{
		PerIP: server.LoginLimit{PerMinute: 1.0 / 60, Burst: 1},
		Total: server.LoginLimit{PerMinute: 1000, Burst: 1000},
	}
	h := newGovHub(t, reg, func(c *server.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:ffff::/48")}
	})
	port := 7000
	try := func(t *testing.T, peer string, xff []string, wantStatus int, wantIP string) {
		t.Helper()
		port++
		status, ip := h.registerVia(t, peer, xff, fmt.Sprintf("c%d", port), port)
		if status != wantStatus || ip != wantIP {
			t.Fatalf("peer %s X-Forwarded-For %q: %d from %q, want %d from %q", peer, xff, status, ip, wantStatus, wantIP)
		}
	}

	t.Run("untrusted peer cannot spoof", func(t *testing.T) {
		try(t, "192.0.2.9", []string{"203.0.113.1"}, http.StatusCreated, "192.0.2.9")
		// Another claimed address is still the same peer, out of tokens.
		try(t, "192.0.2.9", []string{"203.0.113.2"}, http.StatusTooManyRequests, "")
		try(t, "192.0.2.9", []string{"10.0.0.1"}, http.StatusTooManyRequests, "")
	})
	t.Run("trusted proxy names the client", func(t *testing.T) {
		// The client put 198.51.100.1 in the header itself; the proxy
		// appended the address it saw.
		try(t, "10.0.0.5", []string{"198.51.100.1, 203.0.113.50"}, http.StatusCreated, "203.0.113.50")
		try(t, "10.0.0.5", []string{"203.0.113.50"}, http.StatusTooManyRequests, "")
		// Another client behind the same proxy has its own bucket.
		try(t, "10.0.0.5", []string{"203.0.113.51"}, http.StatusCreated, "203.0.113.51")
		// Through two trusted proxies, over two header lines.
		try(t, "10.0.0.5", []string{"198.51.100.1, 203.0.113.60", "10.9.9.9"}, http.StatusCreated, "203.0.113.60")
		// IPv6 client, IPv4-mapped proxy.
		try(t, "::ffff:10.0.0.6", []string{"2001:db8:1::7"}, http.StatusCreated, "2001:db8:1::7")
		try(t, "2001:db8:ffff::1", []string{"2001:db8:1::8"}, http.StatusTooManyRequests, "") // same /64
	})
	t.Run("malformed entry stops at the proxy", func(t *testing.T) {
		try(t, "10.0.0.8", []string{"203.0.113.70, not-an-ip"}, http.StatusCreated, "10.0.0.8")
	})

	t.Run("no trusted proxies", func(t *testing.T) {
		h := newGovHub(t, reg)
		status, ip := h.registerVia(t, "10.0.0.5", []string{"203.0.113.80"}, "n1", 8001)
		if status != http.StatusCreated || ip != "10.0.0.5" {
			t.Fatalf("%d from %q, want 201 from the peer", status, ip)
		}
		status, _ = h.registerVia(t, "10.0.0.5", []string{"203.0.113.81"}, "n2", 8002)
		if status != http.StatusTooManyRequests {
			t.Fatalf("%d, want 429: the header is ignored", status)
		}
	})
}

// TestTrustedProxiesLoginThrottle: the per-address login limit counts the
// client a trusted proxy names, so one client behind the proxy cannot lock
// out the others; without the proxy trusted, the header changes nothing.
func TestTrustedProxiesLoginThrottle(t *testing.T) {
	for _, trusted := range []bool{true, false} {
		t.Run(map[bool]string{true: "trusted", false: "untrusted"}[trusted], func(t *testing.T) {
			h := newHub(t, func(c *server.Config) {
				c.LoginAttemptsPerIP = server.LoginLimit{PerMinute: 3, Burst: 3}
				if trusted {
					c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
				}
			})
			// The test's requests come from 127.0.0.1, as if through a
			// proxy there that appends the client's address.
			var client atomic.Pointer[string]
			h.Wrap(func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					r.Header.Set("X-Forwarded-For", *client.Load())
					next.ServeHTTP(w, r)
				})
			})
			first, second := "203.0.113.1", "203.0.113.2"
			client.Store(&first)
			b := h.Browser()
			var last *servertest.Page
			for i := range 4 {
				last = b.Login(b.Get(h.URL+"/login"), "user"+string(rune('a'+i)), "wrong")
			}
			if last.Status != http.StatusTooManyRequests {
				t.Fatalf("4th failure from one client: %d, want 429", last.Status)
			}
			client.Store(&second)
			last = b.Login(b.Get(h.URL+"/login"), "usere", "wrong")
			if limited := last.Status == http.StatusTooManyRequests; limited == trusted {
				t.Fatalf("another client behind the proxy: %d (trusted proxy: %v)", last.Status, trusted)
			}
		})
	}
}

// TestProxyRequestIDs: a trusted proxy's X-Request-Id names the request —
// in the response, the audit trail and (through the request's context)
// the log — when it is one header of at most 128 safe characters; any
// other, and any id from a peer that is not a trusted proxy, is replaced
// by a fresh id of the hub's own (a client's well-formed one is kept
// beside it, as before).
func TestProxyRequestIDs(t *testing.T) {
	reg := &server.RegistrationConfig{Total: server.LoginLimit{PerMinute: 1000, Burst: 1000}}
	h := newGovHub(t, reg, func(c *server.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	})
	long := strings.Repeat("a", 128)
	seen := map[string]bool{}
	for i, tc := range []struct {
		name, peer string
		sent       []string
		adopted    bool   // the request is named by the sent id
		client     string // the client request id recorded beside the hub's
	}{
		{"trusted proxy", "10.0.0.5", []string{"3f2a9c0e4b1d4e6f8a7b5c3d2e1f0a9b"}, true, ""},
		{"trusted proxy, colons and dots", "10.0.0.5", []string{"lb-1:req.42_x"}, true, ""},
		{"trusted proxy, 128 characters", "10.0.0.5", []string{long}, true, ""},
		{"trusted proxy, 129 characters", "10.0.0.5", []string{long + "a"}, false, ""},
		{"trusted proxy, tab", "10.0.0.5", []string{"a\tlevel=ERROR"}, false, ""},
		{"trusted proxy, quote", "10.0.0.5", []string{`a","msg":"forged`}, false, ""},
		{"trusted proxy, space", "10.0.0.5", []string{"a b"}, false, ""},
		{"trusted proxy, two headers", "10.0.0.5", []string{"one", "two"}, false, "one"},
		{"trusted proxy, none", "10.0.0.5", nil, false, ""},
		{"untrusted peer", "192.0.2.9", []string{"client-chosen-1"}, false, "client-chosen-1"},
		{"untrusted peer, colon", "192.0.2.9", []string{"client:chosen"}, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := 9000 + i
			req, _ := http.NewRequest(http.MethodPost, h.URL+"/register", strings.NewReader(mustJSON(t, nativeClient(fmt.Sprintf("r%d", port), port))))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set(peerHeader, tc.peer)
			req.Header["X-Request-Id"] = tc.sent
			r := h.send(req)
			if r.status != http.StatusCreated {
				t.Fatalf("register: %d %v", r.status, r.body)
			}
			id := r.header.Get("X-Request-Id")
			switch {
			case tc.adopted && id != tc.sent[0]:
				t.Fatalf("response X-Request-Id = %q, want the trusted proxy's %q", id, tc.sent[0])
			case !tc.adopted && (id == "" || slices.Contains(tc.sent, id) || seen[id]):
				t.Fatalf("response X-Request-Id = %q (sent %q), want a fresh id of the hub's own", id, tc.sent)
			}
			seen[id] = true
			clientID, _ := r.body["client_id"].(string)
			evs, err := h.Store.ListAudit(context.Background(), store.AuditFilter{TenantID: store.DefaultTenant, Type: audit.ClientRegistered, ClientID: clientID})
			if err != nil || len(evs) != 1 {
				t.Fatalf("audit events of %s: %v %v", clientID, evs, err)
			}
			if evs[0].RequestID != id {
				t.Errorf("the event's request id is %q, the response's %q", evs[0].RequestID, id)
			}
			if got := evs[0].Details[store.DetailClientRequestID]; got != tc.client {
				t.Errorf("recorded client request id %q, want %q", got, tc.client)
			}
		})
	}
}
