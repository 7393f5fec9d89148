package server

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// maxForwardedHops bounds how many X-Forwarded-For entries are walked: a
// real chain of proxies is a handful, a longer list is someone padding.
const maxForwardedHops = 16

// clientIP is the address of the party that sent the request: the peer,
// or, when the peer is a trusted proxy, the rightmost address in
// X-Forwarded-For that is not itself a trusted proxy (resolveClientIP).
// It keys the per-address limits (login, client authentication,
// registration), feeds policy's IP condition and is the audit events' IP.
func clientIP(r *http.Request) string {
	if ri := requestInfoOf(r.Context()); ri != nil {
		return ri.ip
	}
	return peerIP(r)
}

// peerIP is the address the connection comes from.
func peerIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// resolveIP is the request's client address, resolved once by the
// middleware (requestInfo) for clientIP.
func (s *Server) resolveIP(r *http.Request) string {
	if len(s.cfg.TrustedProxies) == 0 {
		return peerIP(r)
	}
	return resolveClientIP(peerIP(r), r.Header.Values("X-Forwarded-For"), s.cfg.TrustedProxies)
}

// resolveClientIP walks X-Forwarded-For from the right while the hop that
// handed the request on is a trusted proxy: each trusted proxy appends the
// address it received the connection from, so the rightmost entry added
// by a trusted proxy about an untrusted party is the client. Entries left
// of that point are whatever the client chose to send and are ignored, so
// an untrusted peer cannot choose its address by sending the header. A
// malformed entry (or one with an IPv6 zone) stops the walk at the proxy
// that passed it on.
func resolveClientIP(peer string, xff []string, trusted []netip.Prefix) string {
	cur, err := netip.ParseAddr(peer)
	if err != nil || len(trusted) == 0 || len(xff) == 0 {
		return peer
	}
	cur = cur.Unmap()
	if !isTrusted(cur, trusted) {
		return peer
	}
	hops := strings.Split(strings.Join(xff, ","), ",")
	for i, n := len(hops)-1, 0; i >= 0 && n < maxForwardedHops && isTrusted(cur, trusted); i, n = i-1, n+1 {
		next, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil || next.Zone() != "" {
			break // a zone names an interface of the sender, not a client
		}
		cur = next.Unmap()
	}
	return cur.String()
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
