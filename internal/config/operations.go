package config

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// TLSConfig makes serve terminate TLS itself. Both files or neither; the
// files are read again when they change on disk, so a renewed certificate
// is served without a restart.
type TLSConfig struct {
	// CertFile is the PEM certificate chain, leaf first.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key of the leaf certificate.
	KeyFile string `yaml:"key_file"`
}

// Enabled reports whether serve terminates TLS.
func (t TLSConfig) Enabled() bool { return t.CertFile != "" }

// MetricsConfig governs the Prometheus metrics listener.
type MetricsConfig struct {
	// Listen is the host:port of the metrics listener (GET /metrics);
	// empty turns metrics off. It is separate from listen so that the
	// metrics never reach the hub's public address.
	Listen string `yaml:"listen"`
	// Pprof also serves Go's runtime profiles (net/http/pprof) under
	// /debug/pprof/ on the metrics listener, never on listen. Off by
	// default: a profile shows the process's internals (stacks, command
	// line) to whoever reaches the listener, and a CPU or trace profile
	// costs CPU while it runs.
	Pprof bool `yaml:"pprof"`
}

// maxTrustedProxies bounds the trusted_proxies list.
const maxTrustedProxies = 64

// TrustedProxyPrefixes returns trusted_proxies as prefixes, a bare address
// as its own /32 or /128. Entries Validate refuses are skipped.
func (c *Config) TrustedProxyPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range c.TrustedProxies {
		if p, err := parseProxy(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func parseProxy(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if p.Addr().Is4In6() {
			return netip.Prefix{}, fmt.Errorf("an IPv4-mapped prefix; write it as IPv4")
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// validateOperations checks tls, metrics and trusted_proxies.
func (c *Config) validateOperations(ps *Problems) {
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		if c.TLS.CertFile == "" {
			ps.add("tls.cert_file", 0, "", "required when tls.key_file is set")
		} else {
			ps.add("tls.key_file", 0, "", "required when tls.cert_file is set")
		}
	}
	if m := c.Metrics.Listen; m != "" {
		if _, port, err := net.SplitHostPort(m); err != nil {
			ps.add("metrics.listen", 0, "", fmt.Sprintf("want host:port such as 127.0.0.1:9464, got %q", m))
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			ps.add("metrics.listen", 0, "", fmt.Sprintf("invalid port %q", port))
		} else if m == c.Listen && n != 0 {
			ps.add("metrics.listen", 0, "", "must differ from listen: metrics have a listener of their own")
		}
	}
	if c.Metrics.Pprof && c.Metrics.Listen == "" {
		ps.add("metrics.pprof", 0, "", "needs metrics.listen: profiles are served on the metrics listener only")
	}
	if len(c.TrustedProxies) > maxTrustedProxies {
		ps.add("trusted_proxies", 0, "", fmt.Sprintf("at most %d entries, got %d", maxTrustedProxies, len(c.TrustedProxies)))
	}
	for i, s := range c.TrustedProxies {
		p, err := parseProxy(s)
		switch {
		case err != nil:
			ps.add(fmt.Sprintf("trusted_proxies[%d]", i), 0, "", fmt.Sprintf("want an IP address or CIDR prefix such as 10.0.0.0/8, got %q", s))
		case p.Bits() == 0:
			ps.add(fmt.Sprintf("trusted_proxies[%d]", i), 0, "", fmt.Sprintf("%q trusts every address, so any client could choose its address; list the proxies' addresses", s))
		}
	}
}
