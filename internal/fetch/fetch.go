// Package fetch is the hub's one outbound HTTP client for URLs that untrusted
// parties choose: Client ID Metadata Documents, clients' jwks_uri, and later
// trusted issuers' keys. It exists so that no other package opens a
// connection to an address a stranger named.
//
// The rules (docs/design.md §8, "Outbound fetches"):
//   - https only, no userinfo, default or explicit port;
//   - the host is resolved once; every address must pass [Classify] (one bad
//     address refuses the whole name), and the connection is dialled to the
//     checked address itself, so a second resolution (DNS rebinding) is never
//     consulted; TLS still verifies the name (SNI and Host are the name);
//   - no redirects, no proxy from the environment, no cookies;
//   - status 200 only; a JSON content type (text/plain only when allowed);
//   - the body is capped (MaxBytes) and the whole exchange, body included,
//     has one deadline.
package fetch

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Defaults applied by New and Get when the corresponding field is zero.
const (
	DefaultTimeout  = 5 * time.Second
	DefaultMaxBytes = 5120
)

// Config configures a Fetcher. The zero value is a production fetcher: the
// system resolver, a plain dialer, system roots, a 5-second deadline.
type Config struct {
	// Resolve returns the addresses of host. nil: net.DefaultResolver.LookupNetIP(ctx, "ip", host).
	Resolve func(ctx context.Context, host string) ([]netip.Addr, error)
	// Dial connects to addr, which is always "ip:port" with an address that
	// already passed Classify. nil: a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// TLS is the client TLS configuration (cloned; ServerName is set per
	// request). nil: system roots.
	TLS *tls.Config
	// AllowLoopback is the development allowance: loopback addresses (and no
	// other non-public address) are allowed too.
	AllowLoopback bool
	// Timeout is the total deadline of one Get, body included. 0: 5s.
	Timeout time.Duration
	// Now is the clock (KeySets' cache). nil: time.Now.
	Now func() time.Time
}

// Fetcher performs SSRF-safe GETs. It is safe for concurrent use.
type Fetcher struct {
	cfg Config

	keysOnce sync.Once
	keys     *KeySets
}

// New returns a Fetcher for cfg.
func New(cfg Config) *Fetcher {
	return &Fetcher{cfg: cfg}
}

// Request is one GET.
type Request struct {
	// URL must be an absolute https URL without userinfo.
	URL string
	// MaxBytes caps the body. 0: DefaultMaxBytes (5 KiB).
	MaxBytes int64
	// AllowTextPlain accepts text/plain besides JSON (raw file hosts serve
	// documents so; an operator allows it per domain).
	AllowTextPlain bool
	// JSONOnly is documented for callers' clarity: a JSON content type
	// (application/json or application/<x>+json) is always required, whatever
	// its value; only AllowTextPlain widens it.
	JSONOnly bool
}

// Response is a successful (200, accepted type, within size) response.
type Response struct {
	Body        []byte
	ContentType string // media type, lower-cased, without parameters
	Header      http.Header
	// TTL is the freshness lifetime from Cache-Control max-age (s-maxage is
	// for shared caches and ignored) or Expires, minus Age; 0 when no-store,
	// no-cache, absent or already stale. Callers clamp it.
	TTL time.Duration
}

// Get fetches req.URL under the package rules. Every refusal or failure is an
// *Error; on success the body is complete and within the cap.
func (f *Fetcher) Get(ctx context.Context, req Request) (*Response, error) {
	u, err := url.Parse(req.URL)
	if err != nil || !u.IsAbs() {
		return nil, &Error{Reason: ReasonInvalidURL, Err: err}
	}
	host := u.Hostname()
	if u.Scheme != "https" {
		return nil, &Error{Reason: ReasonScheme, Host: host, Detail: "the scheme is " + u.Scheme}
	}
	if u.User != nil {
		return nil, &Error{Reason: ReasonUserinfo, Host: host}
	}
	if u.Opaque != "" || host == "" {
		return nil, &Error{Reason: ReasonInvalidURL, Host: host}
	}
	for _, c := range host {
		if c > 0x7e || c <= ' ' {
			// An internationalised name must come in its A-label (punycode)
			// form, so that the name resolved, the SNI and the Host agree.
			return nil, &Error{Reason: ReasonInvalidURL, Host: host, Detail: "the host name is not ASCII"}
		}
	}
	port := u.Port()
	if port == "" {
		port = "443"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return nil, &Error{Reason: ReasonInvalidURL, Host: host, Detail: "the port is not valid"}
	}
	maxBytes := req.MaxBytes
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	timeout := f.cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	// One deadline for everything: resolution, connection, TLS, headers and
	// the body, so a server that trickles bytes cannot hold a request.
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	addrs, ferr := f.addresses(ctx, host)
	if ferr != nil {
		return nil, ferr
	}

	// A transport per request: it dials only the checked addresses, so the
	// name is never resolved again (no DNS-rebinding window), and it keeps
	// no connection afterwards.
	var dialErr atomic.Pointer[Error] // written by the transport's dialling goroutine
	tr := &http.Transport{
		Proxy: nil, // never a proxy from the environment
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr != net.JoinHostPort(host, port) {
				// Only the request's own host is ever dialled (redirects
				// are off, so this is a guard, not a path).
				return nil, fmt.Errorf("fetch: unexpected dial to %s", addr)
			}
			conn, err := f.dialTLS(ctx, host, port, addrs)
			if err != nil {
				dialErr.Store(err)
				return nil, err
			}
			return conn, nil
		},
		DisableKeepAlives:      true,
		DisableCompression:     true, // the cap counts the bytes on the wire
		MaxResponseHeaderBytes: 16 << 10,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport: tr,
		// RFC 9110 §15.4: a redirect is an answer, and we do not follow it.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		// No Jar: no cookies are kept or sent.
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, &Error{Reason: ReasonInvalidURL, Host: host, Err: err}
	}
	accept := "application/json"
	if req.AllowTextPlain {
		accept += ", text/plain;q=0.5"
	}
	hreq.Header.Set("Accept", accept)
	hreq.Header.Set("User-Agent", "agentid")

	resp, err := client.Do(hreq)
	if err != nil {
		if ctx.Err() != nil {
			return nil, f.timeout(host, ctx, err)
		}
		if de := dialErr.Load(); de != nil {
			return nil, de
		}
		return nil, &Error{Reason: ReasonConnect, Host: host, Err: err}
	}
	defer resp.Body.Close()
	// Headers that arrive as the deadline passes are a timeout too: the
	// transport can hand back a response it read while the request was
	// being cancelled (a server that answers only once the connection
	// closes under it).
	if ctx.Err() != nil {
		return nil, f.timeout(host, ctx, ctx.Err())
	}

	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return nil, &Error{Reason: ReasonRedirect, Host: host, Status: resp.StatusCode}
	case resp.StatusCode != http.StatusOK:
		return nil, &Error{Reason: ReasonStatus, Host: host, Status: resp.StatusCode}
	}

	ct, ok := acceptType(resp.Header.Get("Content-Type"), req.AllowTextPlain)
	if !ok {
		d := "it is " + strconv.Quote(ct)
		if ct == "" {
			d = "none was given"
		}
		return nil, &Error{Reason: ReasonContentType, Host: host, Detail: d}
	}
	tooLarge := &Error{Reason: ReasonTooLarge, Host: host, Detail: fmt.Sprintf("more than %d bytes", maxBytes)}
	if resp.ContentLength > maxBytes {
		return nil, tooLarge
	}
	// Read one byte more than allowed to tell "exactly the cap" from "over".
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBytes+1))
	// A body cut off by the deadline may end in a clean EOF (the transport
	// closed the connection under it), so the deadline is checked itself.
	if ctx.Err() != nil {
		return nil, f.timeout(host, ctx, err)
	}
	if err != nil {
		return nil, &Error{Reason: ReasonConnect, Host: host, Detail: "the body was cut short", Err: err}
	}
	if int64(len(body)) > maxBytes {
		return nil, tooLarge
	}
	return &Response{
		Body:        body,
		ContentType: ct,
		Header:      resp.Header.Clone(),
		TTL:         freshness(resp.Header, f.now()),
	}, nil
}

func (f *Fetcher) now() time.Time {
	if f.cfg.Now != nil {
		return f.cfg.Now()
	}
	return time.Now()
}

// timeout turns an error after the deadline into ReasonTimeout (our own
// deadline) or ReasonConnect (the caller's context ended first).
func (f *Fetcher) timeout(host string, ctx context.Context, err error) *Error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t := f.cfg.Timeout
		if t <= 0 {
			t = DefaultTimeout
		}
		return &Error{Reason: ReasonTimeout, Host: host, Detail: "the limit is " + t.String(), Err: err}
	}
	return &Error{Reason: ReasonConnect, Host: host, Detail: "the request was cancelled", Err: err}
}

// addresses resolves host once (or parses an IP literal) and checks every
// address. One address that is not public refuses the whole name: picking the
// good ones would let a name that also points inside be fetched by chance.
func (f *Fetcher) addresses(ctx context.Context, host string) ([]netip.Addr, *Error) {
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		resolve := f.cfg.Resolve
		if resolve == nil {
			resolve = func(ctx context.Context, host string) ([]netip.Addr, error) {
				return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
			}
		}
		addrs, err = resolve(ctx, host)
		if err != nil {
			if ctx.Err() != nil {
				return nil, f.timeout(host, ctx, err)
			}
			return nil, &Error{Reason: ReasonResolve, Host: host, Err: err}
		}
		if len(addrs) == 0 {
			return nil, &Error{Reason: ReasonResolve, Host: host, Detail: "no addresses"}
		}
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if ok, why := f.allowed(a); !ok {
			// The message names the range, not the address: the page that
			// shows it must not become an oracle for internal DNS.
			return nil, &Error{Reason: ReasonAddress, Host: host, Addr: a, Detail: "it resolves to " + why}
		}
		// Dial the IPv4 form of a mapped address: it is what Classify judged.
		out = append(out, a.Unmap())
	}
	return out, nil
}

// allowed is Classify plus the development allowance for loopback.
func (f *Fetcher) allowed(a netip.Addr) (bool, string) {
	ok, why := Classify(a)
	if !ok && f.cfg.AllowLoopback && a.Zone() == "" && a.Unmap().IsLoopback() {
		return true, ""
	}
	return ok, why
}

// dialTLS connects to the first reachable checked address and runs the TLS
// handshake for host (SNI and certificate verification use the name, or the
// IP literal when the URL has one).
func (f *Fetcher) dialTLS(ctx context.Context, host, port string, addrs []netip.Addr) (net.Conn, *Error) {
	dial := f.cfg.Dial
	if dial == nil {
		d := &net.Dialer{
			// Defence in depth: the socket itself refuses an address that
			// is not allowed, whatever path led to it.
			Control: func(_, address string, _ syscall.RawConn) error {
				ap, err := netip.ParseAddrPort(address)
				if err != nil {
					return err
				}
				if ok, why := f.allowed(ap.Addr()); !ok {
					return fmt.Errorf("refusing to connect to %s, %s", ap.Addr(), why)
				}
				return nil
			},
		}
		dial = d.DialContext
	}
	var conn net.Conn
	var err error
	for _, a := range addrs {
		conn, err = dial(ctx, "tcp", net.JoinHostPort(a.String(), port))
		if err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, f.timeout(host, ctx, err)
		}
		return nil, &Error{Reason: ReasonConnect, Host: host, Err: err}
	}
	cfg := &tls.Config{}
	if f.cfg.TLS != nil {
		cfg = f.cfg.TLS.Clone()
	}
	cfg.ServerName = host
	cfg.NextProtos = []string{"http/1.1"} // the transport speaks HTTP/1.1 over this conn
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return nil, f.timeout(host, ctx, err)
		}
		return nil, &Error{Reason: ReasonTLS, Host: host, Detail: err.Error(), Err: err}
	}
	return tc, nil
}

// acceptType returns the media type of a Content-Type value and whether it is
// acceptable: application/json or application/<x>+json (RFC 6839 §3.1), and
// text/plain only when allowed.
func acceptType(v string, allowTextPlain bool) (string, bool) {
	mt, _, err := mime.ParseMediaType(v)
	if err != nil {
		return "", false
	}
	mt = strings.ToLower(mt)
	switch {
	case mt == "application/json":
		return mt, true
	case strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json") && len(mt) > len("application/+json"):
		return mt, true
	case mt == "text/plain" && allowTextPlain:
		return mt, true
	}
	return mt, false
}
