package clients

import (
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
