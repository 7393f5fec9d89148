package policy

import (
	"maps"
	"net/url"
	"slices"
	"strings"

	"github.com/agentid/agentid/internal/store"
)

// Grant types that map to an action other than grant.
const grantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"

// ActionForGrantType returns the action an issuance with this grant_type is
// decided under: exchange for RFC 8693 token exchange, grant otherwise.
func ActionForGrantType(grantType string) Action {
	if grantType == grantTypeTokenExchange {
		return ActionExchange
	}
	return ActionGrant
}

// AgentFromClient describes a stored client as the principal of a request.
func AgentFromClient(c *store.Client) Agent {
	ct := "confidential"
	if c.Public() {
		ct = "public"
	}
	a := Agent{
		ID:                 c.ID,
		RegistrationMethod: c.RegistrationMethod,
		ClientType:         ct,
		SoftwareID:         c.SoftwareID,
		CreatedIP:          c.CreatedIP,
		OwnerUserID:        c.OwnerUserID,
		Tags:               slices.Clone(c.Tags),
	}
	if c.RegistrationMethod == store.RegistrationCIMD {
		// A CIMD client's id is the https URL of its metadata document, so
		// its host is the domain that was verified by fetching it.
		// A URL with user info (https://good.example@evil.example/…) names
		// no verified domain at all.
		if u, err := url.Parse(c.ID); err == nil && u.Scheme == "https" && u.User == nil && u.Hostname() != "" && u.Path != "" {
			// Canonical, as MatchDomain compares it: policies test it with
			// string equality, so EVIL.example. must not differ from evil.example.
			a.VerifiedDomain = strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
		}
	}
	return a
}

// UserFromStore describes a stored user for a request's context: its
// roles, groups and attributes as they are stored now.
func UserFromStore(u *store.User) *User {
	return &User{
		ID:         u.ID,
		TenantID:   u.TenantID,
		Roles:      slices.Clone(u.Roles),
		Groups:     slices.Clone(u.Groups),
		Attributes: maps.Clone(u.Attributes),
	}
}

// ResourceFromStore describes a stored resource.
func ResourceFromStore(r *store.Resource) Resource {
	return Resource{URI: r.URI, Name: r.Name, TenantID: r.TenantID, Tags: slices.Clone(r.Tags)}
}

// ScopesOf returns the named scopes of r with their sensitive flags, in the
// order of names. A name the resource does not define is returned as a
// non-sensitive scope; rejecting unknown scopes is the caller's part.
func ScopesOf(r *store.Resource, names []string) []Scope {
	out := make([]Scope, len(names))
	for i, n := range names {
		out[i] = Scope{Name: n}
		for _, s := range r.Scopes {
			if s.Name == n {
				out[i].Sensitive = s.Sensitive
				break
			}
		}
	}
	return out
}
