package clients

import (
	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/store"
)

// MatchDomain returns the domain of domains that decides host (a Client ID
// Metadata Document's host), or nil when none matches and the host is
// store.DomainAllowed by default. An exact pattern beats every wildcard; of
// wildcards ("*.example.com" matches any subdomain of example.com, not
// example.com itself) the longest wins. Hosts compare case-insensitively.
// It is policy.MatchDomain: the policy engine decides domain_trust by the
// same rule.
func MatchDomain(domains []*store.Domain, host string) *store.Domain {
	return policy.MatchDomain(domains, host)
}

// DomainTrust is the trust MatchDomain decides for host.
func DomainTrust(domains []*store.Domain, host string) string {
	return policy.DomainTrust(domains, host)
}
