package clients

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/store"
)

// govern applies the registration governance to a new dynamic registration
// c, validated and with its ceiling decided: the policy's reject and hold
// actions (out.Screening), then deduplication. It returns the existing
// client to answer with when c duplicates one (its event recorded), or nil
// to store c; a reject is an *oauth.Error naming the policy.
func (r *Registrar) govern(ctx context.Context, c *store.Client, reg *Registration, out *Registered) (*Registered, error) {
	sc, err := r.policy.Screen(ctx, c, out.resources, policy.Context{IP: reg.IP, Time: r.now(), SoftwareIssuer: c.SoftwareStatementIssuer})
	if err != nil {
		return nil, fmt.Errorf("clients: screen: %w", err)
	}
	out.Screening = sc
	if sc.Reject {
		by := strings.Join(sc.RejectPolicies, ", ")
		if c.SoftwareStatementIssuer != "" {
			// RFC 7591 §3.2.2: the statement is valid, but not approved.
			return nil, oauth.ErrUnapprovedSoftwareStatement("the registration is refused by policy %s", by)
		}
		return nil, oauth.ErrInvalidClientMetadata("the registration is refused by policy %s", by)
	}
	if !c.Public() {
		// A confidential client's secret is shown only once, at its
		// registration: an existing one cannot be handed out again.
		return nil, nil
	}
	name := ""
	if c.SoftwareID == "" {
		name = c.Name
	}
	if c.SoftwareID == "" && c.Name == "" {
		return nil, nil // nothing says which software this is
	}
	candidates, err := r.st.ClientsBySoftware(ctx, r.tenant, c.SoftwareID, name)
	if err != nil {
		return nil, fmt.Errorf("clients: deduplicate: %w", err)
	}
	for _, ex := range candidates {
		// A client held for review is not let out by registering again;
		// one that would no longer be held does not join a pending one.
		if ex.Pending() && !sc.Hold {
			continue
		}
		if !SameRegistration(ex, c) {
			continue
		}
		ev := audit.NewClientRegistrationDeduplicated(reg.Audit.Stamped(r.tenant, r.now()).WithAgent(ex), ex.ID, ex.RegistrationMethod, ex.Name)
		if len(ex.RegistrationTokenHash) > 0 {
			// The client now serves other parties' installations: whoever
			// registered it first must not rewrite or delete it for them
			// (RFC 7592), so its registration access token ends here.
			updated, err := r.st.UpdateClient(ctx, r.tenant, ex.ID, func(c *store.Client) error {
				c.RegistrationTokenHash = nil
				return nil
			}, ev)
			if err != nil {
				return nil, fmt.Errorf("clients: deduplicate: %w", err)
			}
			ex = updated
		} else if err := r.st.AppendAudit(ctx, ev); err != nil {
			return nil, fmt.Errorf("clients: deduplicate: %w", err)
		}
		return &Registered{Client: ex, Ceiling: out.Ceiling, Screening: sc, Deduplicated: true}, nil
	}
	return nil, nil
}

// SameRegistration reports whether the new dynamic registration c is
// identical to the stored client ex: every registered metadata value
// equal, lists compared as sets, and redirect URIs compared as
// installations (oauth.InstallationURI: a loopback redirect's port is
// chosen afresh each time a native client runs, RFC 8252 §7.3). The
// ceiling and the scopes it was asked from must be equal too, so that a
// client answered by an older registration holds no less than a new one
// would.
func SameRegistration(ex, c *store.Client) bool {
	return ex.RegistrationMethod == c.RegistrationMethod &&
		ex.Public() == c.Public() &&
		ex.TokenEndpointAuthMethod == c.TokenEndpointAuthMethod &&
		ex.Name == c.Name && ex.SoftwareID == c.SoftwareID && ex.SoftwareVersion == c.SoftwareVersion &&
		ex.ApplicationType == c.ApplicationType &&
		ex.ClientURI == c.ClientURI && ex.LogoURI == c.LogoURI && ex.TOSURI == c.TOSURI && ex.PolicyURI == c.PolicyURI &&
		ex.JWKS == c.JWKS && ex.JWKSURI == c.JWKSURI &&
		ex.SoftwareStatementIssuer == c.SoftwareStatementIssuer &&
		!ex.Disabled &&
		sameSet(ex.GrantTypes, c.GrantTypes) && sameSet(ex.ResponseTypes, c.ResponseTypes) &&
		sameSet(ex.Contacts, c.Contacts) &&
		sameSet(ex.Scopes, c.Scopes) && sameSet(ex.RequestedScopes, c.RequestedScopes) &&
		sameSet(installations(ex.RedirectURIs), installations(c.RedirectURIs))
}

func installations(uris []string) []string {
	out := make([]string, len(uris))
	for i, u := range uris {
		out[i] = oauth.InstallationURI(u)
	}
	return out
}

// sameSet compares two lists as sets.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// Approve lets the pending client id out of quarantine: its status becomes
// active, with a client.updated event (change approved) in the same
// transaction. Approving an active client changes nothing and records
// nothing; an unknown id is store.ErrNotFound.
func Approve(ctx context.Context, st Approver, tenantID, id string, m audit.Meta) (*store.Client, error) {
	c, err := st.GetClient(ctx, tenantID, id)
	if err != nil {
		return nil, err
	}
	if !c.Pending() {
		return c, nil
	}
	m = m.Stamped(tenantID, time.Now())
	ev := audit.NewClientUpdated(m, audit.ClientUpdatedFields{ClientID: id, Change: audit.ChangeApproved, Method: c.RegistrationMethod})
	return st.UpdateClient(ctx, tenantID, id, func(c *store.Client) error {
		c.Status, c.UpdatedAt = store.ClientActive, m.Time
		return nil
	}, ev)
}

// Approver is what Approve needs of the store.
type Approver interface {
	GetClient(ctx context.Context, tenantID, id string) (*store.Client, error)
	UpdateClient(ctx context.Context, tenantID, id string, update func(*store.Client) error, ev *store.AuditEvent) (*store.Client, error)
}
