package fetch

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingListener records every connection it accepts: a refused fetch must
// leave its target's count at zero, which proves no connection reached it.
type countingListener struct {
	net.Listener
	n atomic.Int32
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// target is an https server standing for one address of the test network.
type target struct {
	srv  *httptest.Server
	ln   *countingListener
	host atomic.Value // the Host header of the last request
}

func (tg *target) conns() int { return int(tg.ln.n.Load()) }

// newTarget starts a TLS server (httptest's certificate: 127.0.0.1, ::1,
// example.com, *.example.com) with a counting listener. A nil handler serves
// a small JSON document.
func newTarget(t *testing.T, h http.HandlerFunc) *target {
	t.Helper()
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"ok":true}`)
		}
	}
	tg := &target{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tg.host.Store(r.Host)
		h(w, r)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are expected
	tg.ln = &countingListener{Listener: srv.Listener}
	srv.Listener = tg.ln
	srv.StartTLS()
	tg.srv = srv
	t.Cleanup(srv.Close)
	return tg
}

// testPool is the pool that trusts httptest's certificate.
func testPool(tg *target) *x509.CertPool {
	return tg.srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
}

// network is the test's DNS and routing. A name resolves to its answers in
// turn (the last repeats), so a test can change the answer between
// resolutions; a dial to an address reaches the target routed to it, or
// fails like an unreachable host.
type network struct {
	mu       sync.Mutex
	answers  map[string][][]netip.Addr
	resolves map[string]int
	routes   map[netip.Addr]*target
	dials    []string
}

func newNetwork() *network {
	return &network{answers: map[string][][]netip.Addr{}, resolves: map[string]int{}, routes: map[netip.Addr]*target{}}
}

func (n *network) name(host string, answers ...string) {
	var as []netip.Addr
	for _, a := range answers {
		as = append(as, netip.MustParseAddr(a))
	}
	n.answers[host] = append(n.answers[host], as)
}

func (n *network) route(addr string, tg *target) { n.routes[netip.MustParseAddr(addr)] = tg }

func (n *network) resolve(_ context.Context, host string) ([]netip.Addr, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	i := n.resolves[host]
	n.resolves[host]++
	as := n.answers[host]
	if len(as) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return as[min(i, len(as)-1)], nil
}

func (n *network) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	n.mu.Lock()
	n.dials = append(n.dials, addr)
	ap, err := netip.ParseAddrPort(addr)
	tg := n.routes[ap.Addr()]
	n.mu.Unlock()
	if err != nil || tg == nil {
		return nil, fmt.Errorf("dial %s: no route to host", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, tg.srv.Listener.Addr().String())
}

func (n *network) dialed() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.dials...)
}

func (n *network) fetcher(pool *x509.CertPool, mod func(*Config)) *Fetcher {
	cfg := Config{Resolve: n.resolve, Dial: n.dial, TLS: &tls.Config{RootCAs: pool}, Timeout: 2 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	return New(cfg)
}

func reasonOf(err error) string {
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Reason
	}
	if err == nil {
		return ""
	}
	return "not a *fetch.Error: " + err.Error()
}

const publicIP = "93.184.216.34"

// TestSSRF is the table: every document on a non-public address is
// refused with a clear error and no connection reaches the address's server.
// The control cases show that the same network would deliver the connection
// if the fetcher allowed it.
func TestSSRF(t *testing.T) {
	cases := []struct {
		name    string
		url     string
		answers map[string][]string // name → addresses (one resolution)
		forbid  string              // the non-public address routed to the trap
		wantIn  string              // expected in the message
	}{
		{"loopback v4", "https://127.0.0.1/doc", nil, "127.0.0.1", "127.0.0.1: only public addresses are fetched: it resolves to a loopback address (RFC 1122)"},
		{"private 10/8", "https://10.0.0.1/doc", nil, "10.0.0.1", "private address (RFC 1918)"},
		{"private 172.16/12", "https://172.16.5.4/doc", nil, "172.16.5.4", "RFC 1918"},
		{"private 192.168/16", "https://192.168.1.1/doc", nil, "192.168.1.1", "RFC 1918"},
		{"carrier-grade NAT", "https://100.64.0.1/doc", nil, "100.64.0.1", "RFC 6598"},
		{"cloud metadata", "https://169.254.169.254/latest/meta-data", nil, "169.254.169.254", "link-local"},
		{"loopback v6", "https://[::1]/doc", nil, "::1", "loopback"},
		{"unique local v6", "https://[fd00::1]/doc", nil, "fd00::1", "RFC 4193"},
		{"IPv4-mapped private", "https://[::ffff:10.0.0.1]/doc", nil, "10.0.0.1", "IPv4-mapped"},
		{"NAT64 of private", "https://[64:ff9b::a00:1]/doc", nil, "64:ff9b::a00:1", "NAT64"},
		{"unspecified", "https://0.0.0.0/doc", nil, "0.0.0.0", "this network"},
		{"name resolving to private", "https://internal.example.com/doc",
			map[string][]string{"internal.example.com": {"10.1.2.3"}}, "10.1.2.3", "internal.example.com: only public addresses are fetched: it resolves to a private address (RFC 1918)"},
		{"name resolving to public and private", "https://mixed.example.com/doc",
			map[string][]string{"mixed.example.com": {publicIP, "192.168.0.10"}}, "192.168.0.10", "RFC 1918"},
		{"name resolving to IPv4-mapped loopback", "https://mapped.example.com/doc",
			map[string][]string{"mapped.example.com": {"::ffff:127.0.0.1"}}, "127.0.0.1", "IPv4-mapped form of a loopback"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := newNetwork()
			trap := newTarget(t, nil)
			public := newTarget(t, nil)
			n.route(c.forbid, trap)
			n.route(netip.MustParseAddr(c.forbid).Unmap().String(), trap)
			n.route(publicIP, public)
			for h, as := range c.answers {
				n.name(h, as...)
			}
			f := n.fetcher(testPool(trap), nil)
			_, err := f.Get(context.Background(), Request{URL: c.url})
			if got := reasonOf(err); got != ReasonAddress {
				t.Fatalf("Get(%s) reason = %q (%v), want %q", c.url, got, err, ReasonAddress)
			}
			if !strings.Contains(err.Error(), c.wantIn) {
				t.Errorf("message %q does not contain %q", err, c.wantIn)
			}
			var fe *Error
			errors.As(err, &fe)
			if fe.Addr.Unmap() != netip.MustParseAddr(c.forbid).Unmap() {
				t.Errorf("Addr = %v, want %s", fe.Addr, c.forbid)
			}
			if strings.Contains(err.Error(), fe.Addr.Unmap().String()) && !strings.Contains(c.url, fe.Addr.Unmap().String()) {
				t.Errorf("message %q reveals the resolved address", err)
			}
			if d := n.dialed(); len(d) != 0 {
				t.Errorf("dialled %v, want nothing", d)
			}
			if trap.conns() != 0 || public.conns() != 0 {
				t.Errorf("connections reached the servers: trap %d, public %d", trap.conns(), public.conns())
			}

			// Control: with the same network, a fetcher that allowed every
			// address would have reached the trap (for loopback, the
			// development allowance does exactly that).
			if netip.MustParseAddr(c.forbid).Unmap().IsLoopback() {
				f := n.fetcher(testPool(trap), func(c *Config) { c.AllowLoopback = true })
				if _, err := f.Get(context.Background(), Request{URL: c.url}); err != nil {
					t.Fatalf("with AllowLoopback: %v", err)
				}
				if trap.conns() != 1 {
					t.Errorf("with AllowLoopback the trap saw %d connections, want 1", trap.conns())
				}
			}
		})
	}
}

// TestAllowLoopbackOnlyLoopback: the development allowance lets loopback
// through and nothing else that is not public.
func TestAllowLoopbackOnlyLoopback(t *testing.T) {
	for _, a := range []string{"10.0.0.1", "169.254.169.254", "fd00::1", "192.168.1.1", "0.0.0.0", "fe80::1"} {
		n := newNetwork()
		trap := newTarget(t, nil)
		n.route(a, trap)
		f := n.fetcher(testPool(trap), func(c *Config) { c.AllowLoopback = true })
		u := "https://" + netip.AddrPortFrom(netip.MustParseAddr(a), 443).String() + "/doc"
		_, err := f.Get(context.Background(), Request{URL: u})
		if reasonOf(err) != ReasonAddress || trap.conns() != 0 {
			t.Errorf("%s with AllowLoopback: reason %q, %d connections; want address, 0", a, reasonOf(err), trap.conns())
		}
	}
}

// TestRealDialer runs without injection against a real loopback listener:
// refused by default, reached with the allowance.
func TestRealDialer(t *testing.T) {
	tg := newTarget(t, nil)
	u := tg.srv.URL + "/doc" // https://127.0.0.1:port/doc
	f := New(Config{TLS: &tls.Config{RootCAs: testPool(tg)}})
	if _, err := f.Get(context.Background(), Request{URL: u}); reasonOf(err) != ReasonAddress {
		t.Fatalf("Get(%s) = %v, want an address refusal", u, err)
	}
	if tg.conns() != 0 {
		t.Fatalf("%d connections reached the loopback server", tg.conns())
	}
	f = New(Config{TLS: &tls.Config{RootCAs: testPool(tg)}, AllowLoopback: true})
	resp, err := f.Get(context.Background(), Request{URL: u})
	if err != nil || string(resp.Body) != `{"ok":true}` {
		t.Fatalf("with AllowLoopback: %v", err)
	}
}

// TestDialerRefusesAtSocket: the default dialer checks the address again at
// the socket (defence in depth), even if a checked list were wrong.
func TestDialerRefusesAtSocket(t *testing.T) {
	tg := newTarget(t, nil)
	ap := netip.MustParseAddrPort(tg.srv.Listener.Addr().String())
	f := New(Config{TLS: &tls.Config{RootCAs: testPool(tg)}})
	_, ferr := f.dialTLS(context.Background(), "127.0.0.1", fmt.Sprint(ap.Port()), []netip.Addr{ap.Addr()})
	if ferr == nil || ferr.Reason != ReasonConnect {
		t.Fatalf("dialTLS = %v, want a connect refusal", ferr)
	}
	if tg.conns() != 0 {
		t.Fatalf("%d connections reached the server", tg.conns())
	}
}

// TestRebinding: the name is resolved once per Get and the connection goes
// to the checked address; a later answer pointing inside is never used, and
// the next Get, which resolves again, is refused.
func TestRebinding(t *testing.T) {
	n := newNetwork()
	public := newTarget(t, nil)
	trap := newTarget(t, nil)
	n.route(publicIP, public)
	n.route("10.0.0.1", trap)
	n.name("rebind.example.com", publicIP)
	n.name("rebind.example.com", "10.0.0.1")
	f := n.fetcher(testPool(public), nil)

	if _, err := f.Get(context.Background(), Request{URL: "https://rebind.example.com/doc"}); err != nil {
		t.Fatalf("first Get: %v", err)
	}
	if n.resolves["rebind.example.com"] != 1 {
		t.Errorf("resolved %d times in one Get, want 1", n.resolves["rebind.example.com"])
	}
	if d := n.dialed(); len(d) != 1 || d[0] != publicIP+":443" {
		t.Errorf("dialled %v, want [%s:443]", d, publicIP)
	}
	if got := public.host.Load(); got != "rebind.example.com" {
		t.Errorf("Host = %v, want the name", got)
	}
	_, err := f.Get(context.Background(), Request{URL: "https://rebind.example.com/doc"})
	if reasonOf(err) != ReasonAddress {
		t.Fatalf("second Get = %v, want an address refusal", err)
	}
	if trap.conns() != 0 || public.conns() != 1 {
		t.Errorf("connections: trap %d, public %d; want 0, 1", trap.conns(), public.conns())
	}
}

// TestRedirectNotFollowed: a redirect, here to a private address, is an
// error and the Location is never visited.
func TestRedirectNotFollowed(t *testing.T) {
	for _, code := range []int{301, 302, 303, 307, 308} {
		n := newNetwork()
		trap := newTarget(t, nil)
		public := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://10.0.0.1/doc", code)
		})
		n.route(publicIP, public)
		n.route("10.0.0.1", trap)
		n.name("app.example.com", publicIP)
		f := n.fetcher(testPool(public), nil)
		_, err := f.Get(context.Background(), Request{URL: "https://app.example.com/doc"})
		var fe *Error
		if !errors.As(err, &fe) || fe.Reason != ReasonRedirect || fe.Status != code {
			t.Errorf("%d: Get = %v, want a redirect error with status %d", code, err, code)
		}
		if trap.conns() != 0 {
			t.Errorf("%d: the redirect target saw %d connections", code, trap.conns())
		}
	}
}

// TestResponses covers what a reachable public server may answer.
func TestResponses(t *testing.T) {
	doc := func(ct string, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if ct == "-" {
				w.Header()["Content-Type"] = nil // no sniffing: no type at all
			} else {
				w.Header().Set("Content-Type", ct)
			}
			fmt.Fprint(w, body)
		}
	}
	exact := `{"a":"` + strings.Repeat("x", DefaultMaxBytes-8) + `"}`
	cases := []struct {
		name     string
		h        http.HandlerFunc
		req      Request
		want     string // reason, "" for success
		wantBody string
	}{
		{"json", doc("application/json", `{"ok":1}`), Request{}, "", `{"ok":1}`},
		{"json with charset", doc("application/json; charset=utf-8", `{}`), Request{}, "", `{}`},
		{"+json type", doc("application/jwk-set+json", `{}`), Request{}, "", `{}`},
		{"upper-case type", doc("Application/JSON", `{}`), Request{}, "", `{}`},
		{"exactly the cap", doc("application/json", exact), Request{}, "", exact},
		{"over the cap with length", doc("application/json", exact+" "), Request{}, ReasonTooLarge, ""},
		{"over the cap chunked", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			for range 10 {
				fmt.Fprint(w, strings.Repeat(" ", 1000))
				w.(http.Flusher).Flush()
			}
		}, Request{}, ReasonTooLarge, ""},
		{"larger cap", doc("application/json", exact+" "), Request{MaxBytes: 64 << 10}, "", exact + " "},
		{"html", doc("text/html", `<html></html>`), Request{}, ReasonContentType, ""},
		{"text/plain refused", doc("text/plain", `{}`), Request{}, ReasonContentType, ""},
		{"text/plain allowed", doc("text/plain; charset=utf-8", `{}`), Request{AllowTextPlain: true}, "", `{}`},
		{"html with text/plain allowed", doc("text/html", `{}`), Request{AllowTextPlain: true}, ReasonContentType, ""},
		{"no content type", doc("-", `{}`), Request{}, ReasonContentType, ""},
		{"bare +json", doc("application/+json", `{}`), Request{}, ReasonContentType, ""},
		{"json-ish text", doc("text/json", `{}`), Request{}, ReasonContentType, ""},
		{"404", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, Request{}, ReasonStatus, ""},
		{"500", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "x", 500) }, Request{}, ReasonStatus, ""},
		{"204", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }, Request{}, ReasonStatus, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := newNetwork()
			tg := newTarget(t, c.h)
			n.route(publicIP, tg)
			n.name("app.example.com", publicIP)
			f := n.fetcher(testPool(tg), nil)
			req := c.req
			req.URL = "https://app.example.com/doc"
			resp, err := f.Get(context.Background(), req)
			if got := reasonOf(err); got != c.want {
				t.Fatalf("reason = %q (%v), want %q", got, err, c.want)
			}
			if c.want == "" && string(resp.Body) != c.wantBody {
				t.Errorf("body = %.40q…, want %.40q…", resp.Body, c.wantBody)
			}
		})
	}
}

// TestURLRules: nothing is resolved or dialled for a URL the rules refuse.
func TestURLRules(t *testing.T) {
	cases := []struct{ url, want string }{
		{"http://app.example.com/doc", ReasonScheme},
		{"HTTP://app.example.com/doc", ReasonScheme},
		{"ftp://app.example.com/doc", ReasonScheme},
		{"file:///etc/passwd", ReasonScheme},
		{"https://user:pw@app.example.com/doc", ReasonUserinfo},
		{"https://user@app.example.com/doc", ReasonUserinfo},
		{"/doc", ReasonInvalidURL},
		{"app.example.com/doc", ReasonInvalidURL},
		{"https:///doc", ReasonInvalidURL},
		{"https://app.example.com:0/doc", ReasonInvalidURL},
		{"https://app.example.com:99999/doc", ReasonInvalidURL},
		{"https://[::1/doc", ReasonInvalidURL},
		{"https://nowhere.example.com/doc", ReasonResolve},
		{"https://bücher.example.com/doc", ReasonInvalidURL},
	}
	for _, c := range cases {
		n := newNetwork()
		f := n.fetcher(nil, nil)
		_, err := f.Get(context.Background(), Request{URL: c.url})
		if got := reasonOf(err); got != c.want {
			t.Errorf("Get(%q) reason = %q (%v), want %q", c.url, got, err, c.want)
		}
		if d := n.dialed(); len(d) != 0 {
			t.Errorf("Get(%q) dialled %v", c.url, d)
		}
	}
}

// TestTLSAndPort: the certificate is checked for the name (not the address),
// and an explicit port is dialled on the checked address.
func TestTLSAndPort(t *testing.T) {
	n := newNetwork()
	tg := newTarget(t, nil)
	n.route(publicIP, tg)
	n.name("app.example.com", publicIP)
	n.name("app.other.test", publicIP)
	f := n.fetcher(testPool(tg), nil)
	if _, err := f.Get(context.Background(), Request{URL: "https://app.other.test/doc"}); reasonOf(err) != ReasonTLS {
		t.Errorf("name outside the certificate: %v, want a tls error", err)
	}
	untrusted := n.fetcher(x509.NewCertPool(), nil)
	if _, err := untrusted.Get(context.Background(), Request{URL: "https://app.example.com/doc"}); reasonOf(err) != ReasonTLS {
		t.Errorf("untrusted root: %v, want a tls error", err)
	}
	if _, err := f.Get(context.Background(), Request{URL: "https://app.example.com:8443/doc"}); err != nil {
		t.Fatal(err)
	}
	d := n.dialed()
	if last := d[len(d)-1]; last != publicIP+":8443" {
		t.Errorf("dialled %s, want %s:8443", last, publicIP)
	}
	if got := tg.host.Load(); got != "app.example.com:8443" {
		t.Errorf("Host = %v", got)
	}
}

// TestDeadline: one deadline covers a slow header and a slow body.
func TestDeadline(t *testing.T) {
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	wait := func(r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		case <-time.After(10 * time.Second):
		}
	}
	cases := map[string]http.HandlerFunc{
		"slow body": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", "100")
			fmt.Fprint(w, `{"a":`)
			w.(http.Flusher).Flush()
			wait(r)
		},
		"trickling body": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			for range 100 {
				fmt.Fprint(w, " ")
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		},
		"slow headers": func(w http.ResponseWriter, r *http.Request) { wait(r) },
	}
	for name, h := range cases {
		t.Run(name, func(t *testing.T) {
			n := newNetwork()
			tg := newTarget(t, h)
			n.route(publicIP, tg)
			n.name("app.example.com", publicIP)
			f := n.fetcher(testPool(tg), func(c *Config) { c.Timeout = 300 * time.Millisecond })
			start := time.Now()
			_, err := f.Get(context.Background(), Request{URL: "https://app.example.com/doc"})
			if reasonOf(err) != ReasonTimeout {
				t.Fatalf("Get = %v, want a timeout", err)
			}
			if el := time.Since(start); el > 2*time.Second {
				t.Errorf("took %v with a 300ms deadline", el)
			}
		})
	}
}

// TestNoProxyFromEnvironment: HTTPS_PROXY is ignored.
func TestNoProxyFromEnvironment(t *testing.T) {
	proxy := newTarget(t, nil)
	t.Setenv("HTTPS_PROXY", proxy.srv.URL)
	t.Setenv("HTTP_PROXY", proxy.srv.URL)
	n := newNetwork()
	tg := newTarget(t, nil)
	n.route(publicIP, tg)
	n.name("app.example.com", publicIP)
	if _, err := n.fetcher(testPool(tg), nil).Get(context.Background(), Request{URL: "https://app.example.com/doc"}); err != nil {
		t.Fatal(err)
	}
	if proxy.conns() != 0 || tg.conns() != 1 {
		t.Errorf("proxy %d, target %d connections; want 0, 1", proxy.conns(), tg.conns())
	}
}

// TestErrorMessages: each message names the host and reads as a sentence.
func TestErrorMessages(t *testing.T) {
	cases := []struct {
		e    *Error
		want string
	}{
		{&Error{Reason: ReasonAddress, Host: "a.example", Detail: "it resolves to a private address (RFC 1918)"},
			"fetching from a.example: only public addresses are fetched: it resolves to a private address (RFC 1918)"},
		{&Error{Reason: ReasonRedirect, Host: "a.example", Status: 302}, "fetching from a.example: answered 302 Found; redirects are not followed"},
		{&Error{Reason: ReasonScheme, Host: "a.example", Detail: "the scheme is http"}, "fetching from a.example: only https URLs are fetched: the scheme is http"},
		{&Error{Reason: ReasonInvalidURL}, "fetching from the URL: not an absolute URL"},
	}
	for _, c := range cases {
		if got := c.e.Error(); got != c.want {
			t.Errorf("Error() = %q, want %q", got, c.want)
		}
	}
}
