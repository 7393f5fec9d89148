package policy_test

import (
	"testing"

	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/store"
)

// TestVerifiedDomainCanonical: verified_domain is what policies compare
// with string equality, and what the consent page shows; it must be the
// canonical host MatchDomain uses (lower case, no trailing dot), or
// `forbid ... principal.verified_domain == "evil.example"` is bypassed by
// https://EVIL.example./client.json, a distinct, fetchable client_id.
func TestVerifiedDomainCanonical(t *testing.T) {
	for _, id := range []string{"https://EVIL.example/c.json", "https://evil.example./c.json", "https://Evil.Example.:8443/c.json"} {
		a := policy.AgentFromClient(&store.Client{ID: id, RegistrationMethod: store.RegistrationCIMD, TokenEndpointAuthMethod: "none"})
		if a.VerifiedDomain != "evil.example" {
			t.Errorf("%s: verified_domain %q, want evil.example", id, a.VerifiedDomain)
		}
	}
}
