package policy

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/agentid/agentid/internal/store"
)

// MatchDomain returns the domain of domains that decides host (a Client ID
// Metadata Document's host), or nil when none matches and the host is
// store.DomainAllowed by default. An exact pattern beats every wildcard; of
// wildcards ("*.example.com" matches any subdomain of example.com, not
// example.com itself) the longest wins. Hosts compare case-insensitively.
func MatchDomain(domains []*store.Domain, host string) *store.Domain {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	var best *store.Domain
	for _, d := range domains {
		p := strings.ToLower(d.Pattern)
		if p == host {
			return d
		}
		suffix, ok := strings.CutPrefix(p, "*")
		if !ok || !strings.HasPrefix(suffix, ".") || !strings.HasSuffix(host, suffix) || len(host) == len(suffix) {
			continue
		}
		if best == nil || len(p) > len(best.Pattern) {
			best = d
		}
	}
	return best
}

// DomainTrust is the trust MatchDomain decides for host.
func DomainTrust(domains []*store.Domain, host string) string {
	if d := MatchDomain(domains, host); d != nil {
		return d.Trust
	}
	return store.DomainAllowed
}

// maxDomainPattern bounds a domain pattern (a DNS name is at most 253
// characters, plus "*.").
const maxDomainPattern = 255

// NormalizeDomainPattern checks an administrator's domain pattern and
// returns it as it is stored: a host name ("app.example.com") or a wildcard
// over its subdomains ("*.example.com"), lower-cased, without a trailing
// dot. A scheme, port, path, user info, IP address, a bare "*", a wildcard
// anywhere but as the whole first label, or a label that is not LDH
// (letters, digits, hyphens; not starting or ending with a hyphen) is an
// error that says what is wrong.
func NormalizeDomainPattern(pattern string) (string, error) {
	p := strings.ToLower(strings.TrimSpace(pattern))
	switch {
	case p == "":
		return "", fmt.Errorf("the domain pattern is empty")
	case strings.Contains(p, "://"):
		return "", fmt.Errorf("%q: give a host name, not a URL (no scheme)", pattern)
	case strings.ContainsAny(p, "/?#"):
		return "", fmt.Errorf("%q: give a host name without a path", pattern)
	case strings.Contains(p, "@"):
		return "", fmt.Errorf("%q: give a host name without user info", pattern)
	case strings.Contains(p, ":") || strings.HasPrefix(p, "["):
		if _, err := netip.ParseAddr(strings.Trim(p, "[]")); err == nil {
			return "", fmt.Errorf("%q: IP addresses are not domains (documents are fetched from public host names)", pattern)
		}
		return "", fmt.Errorf("%q: give a host name without a port", pattern)
	}
	p = strings.TrimSuffix(p, ".")
	host, wildcard := strings.CutPrefix(p, "*.")
	if strings.Contains(host, "*") {
		return "", fmt.Errorf("%q: a wildcard must be the whole first label, as in *.example.com", pattern)
	}
	if len(p) > maxDomainPattern {
		return "", fmt.Errorf("%q: longer than %d characters", pattern, maxDomainPattern)
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return "", fmt.Errorf("%q: IP addresses are not domains (documents are fetched from public host names)", pattern)
	}
	labels := strings.Split(host, ".")
	if wildcard && len(labels) < 2 {
		return "", fmt.Errorf("%q: a wildcard needs a domain of at least two labels (*.example.com, not *.com)", pattern)
	}
	for _, l := range labels {
		if !ldhLabel(l) {
			return "", fmt.Errorf("%q: %q is not a valid host name label (letters, digits and hyphens, 1 to 63 characters, no hyphen at either end)", pattern, l)
		}
	}
	return p, nil
}

func ldhLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// ValidDomainTrust reports whether t is a trust level a domain may have.
func ValidDomainTrust(t string) bool {
	return t == store.DomainTrusted || t == store.DomainAllowed || t == store.DomainBlocked
}

// loadDomains re-reads the tenant's domains (Options.Domains). Must be
// called with e.mu held.
func (e *Engine) loadDomains(ctx context.Context) error {
	if e.ds == nil {
		return nil
	}
	list, err := e.ds.ListDomains(ctx, e.tenant)
	if err != nil {
		return fmt.Errorf("policy: load domains: %w", err)
	}
	e.domains.Store(&list)
	return nil
}

// withDomainTrust fills a's DomainTrust from the engine's domains when it
// has a verified domain and no trust yet.
func (e *Engine) withDomainTrust(a Agent) Agent {
	if a.VerifiedDomain == "" || a.DomainTrust != "" {
		return a
	}
	var list []*store.Domain
	if p := e.domains.Load(); p != nil {
		list = *p
	}
	a.DomainTrust = DomainTrust(list, a.VerifiedDomain)
	return a
}

// AgentFromClient is the package function AgentFromClient with the
// agent's domain trust filled in from the domains the engine last read
// (the engine re-reads them with the policy set, every few seconds).
func (e *Engine) AgentFromClient(ctx context.Context, c *store.Client) Agent {
	e.refreshIfDue(ctx)
	return e.withDomainTrust(AgentFromClient(c))
}

// DomainTrust is the trust of host under the domains the engine last read
// (store.DomainAllowed when none decides it).
func (e *Engine) DomainTrust(host string) string {
	return e.withDomainTrust(Agent{VerifiedDomain: host}).DomainTrust
}
