// Package fetch is the hub's one outbound HTTP client for URLs that untrusted
// parties choose: Client ID Metadata Documents, clients' jwks_uri, and later
// trusted issuers' keys. It exists so that no other package opens a
// connection to an address a stranger named.
//
// The rules (see docs/design.md, "Outbound fetches"):
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
	"net"
	"net/http"
	"net/netip"
	"sync"
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
	cfg    Config
	client *http.Client

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

// Get fetches req.URL under the package rules. Every refusal is an *Error.
func (f *Fetcher) Get(ctx context.Context, req Request) (*Response, error) {
	return nil, &Error{Reason: ReasonInvalidURL}
}
