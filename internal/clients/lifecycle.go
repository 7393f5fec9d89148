package clients

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/store"
)

// DeprovisionStore is what Deprovision needs of the store.
type DeprovisionStore interface {
	GetClient(ctx context.Context, tenantID, id string) (*store.Client, error)
	UpdateClient(ctx context.Context, tenantID, id string, update func(*store.Client) error, ev *store.AuditEvent) (*store.Client, error)
	RevokeConsents(ctx context.Context, f store.ConsentFilter, scopes []string, now time.Time, ev *store.AuditEvent) error
	RevokeClientTokens(ctx context.Context, tenantID, clientID string, now time.Time, ev *store.AuditEvent) error
}

// DeprovisionResult is what Deprovision did.
type DeprovisionResult struct {
	Client *store.Client // as stored afterwards
	// Changed is false when the agent was already deprovisioned: nothing
	// was written.
	Changed bool
}

// ReasonDeprovisioned is the reason of the client.tokens_revoked and
// user.access_revoked events deprovisioning writes.
const ReasonDeprovisioned = "deprovisioned"

// Deprovision switches an agent off for good: it is disabled, every
// consent given to it is revoked (and with them the tokens they carry,
// tokens exchanged from them by resource servers included), every refresh
// token and recorded access token issued to it is revoked (the access
// tokens so denylisted until they expire), and it is marked
// store.ClientDeprovisioned. Its path to the vault's connections is cut by
// the disable: a credential retrieval needs the agent of the subject
// token's chain enabled.
//
// The steps are separate transactions, each with its event, in an order
// that makes the whole safe: the disable commits first, after which the
// store issues the agent nothing more (Issuance.Check), so the revocations
// reach every token it will ever hold; the status is set last, so an
// interrupted run is completed by running again. A client already
// deprovisioned is left as it is (Changed false, no event).
func Deprovision(ctx context.Context, st DeprovisionStore, m audit.Meta, tenantID, clientID string, now time.Time) (*DeprovisionResult, error) {
	tenantID, now, m = lifecycleDefaults(tenantID, now, m)
	cl, err := st.GetClient(ctx, tenantID, clientID)
	if err != nil {
		return nil, fmt.Errorf("clients: deprovision %q: %w", clientID, err)
	}
	if cl.Status == store.ClientDeprovisioned && cl.Disabled {
		return &DeprovisionResult{Client: cl}, nil
	}
	m = m.WithAgent(cl)
	if !cl.Disabled {
		ev := audit.NewClientUpdated(m, audit.ClientUpdatedFields{ClientID: clientID, Change: audit.ChangeDisabled, Reason: ReasonDeprovisioned})
		if _, err := st.UpdateClient(ctx, tenantID, clientID, func(c *store.Client) error {
			c.Disabled, c.UpdatedAt = true, now
			return nil
		}, ev); err != nil {
			return nil, fmt.Errorf("clients: deprovision %q: disabling: %w", clientID, err)
		}
	}
	// Every person's consent, on every resource. The store writes the
	// event only when something was still live.
	revoked := audit.NewConsentRevoked(m, audit.ConsentRevokedFields{
		ConsentKey: audit.ConsentKey{ClientID: clientID}, By: "admin", WholeAgent: true,
	})
	if err := st.RevokeConsents(ctx, store.ConsentFilter{TenantID: tenantID, ClientID: clientID}, nil, now, revoked); err != nil {
		return nil, fmt.Errorf("clients: deprovision %q: revoking consents: %w", clientID, err)
	}
	if err := st.RevokeClientTokens(ctx, tenantID, clientID, now, audit.NewClientTokensRevoked(m, clientID, ReasonDeprovisioned)); err != nil {
		return nil, fmt.Errorf("clients: deprovision %q: revoking tokens: %w", clientID, err)
	}
	ev := audit.NewClientUpdated(m, audit.ClientUpdatedFields{ClientID: clientID, Change: audit.ChangeDeprovisioned})
	cl, err = st.UpdateClient(ctx, tenantID, clientID, func(c *store.Client) error {
		c.Disabled, c.Status, c.UpdatedAt = true, store.ClientDeprovisioned, now
		return nil
	}, ev)
	if err != nil {
		return nil, fmt.Errorf("clients: deprovision %q: %w", clientID, err)
	}
	return &DeprovisionResult{Client: cl, Changed: true}, nil
}

// UserDeprovisionStore is what DeprovisionUser needs of the store.
type UserDeprovisionStore interface {
	GetUser(ctx context.Context, tenantID, id string) (*store.User, error)
	UpdateUser(ctx context.Context, u *store.User, ev *store.AuditEvent) error
	RevokeUserAccess(ctx context.Context, tenantID, userID string, now time.Time, ev *store.AuditEvent) error
	ListConsents(ctx context.Context, f store.ConsentFilter) ([]*store.ConsentGrant, error)
	RevokeConsents(ctx context.Context, f store.ConsentFilter, scopes []string, now time.Time, ev *store.AuditEvent) error
	ListConnections(ctx context.Context, f store.ConnectionFilter) ([]*store.Connection, error)
}

// ConnectionRevoker revokes a vault connection (vault.(*Vault).Revoke).
type ConnectionRevoker interface {
	Revoke(ctx context.Context, m audit.Meta, tenantID, connectionID, reason string) error
}

// ReasonUserDeprovisioned is the reason of the connection.revoked events
// of a user's deprovisioning.
const ReasonUserDeprovisioned = "user_deprovisioned"

// ErrNoVault: the user owns connections and no vault was given to revoke
// them with (the hub has no keyring configured).
var ErrNoVault = errors.New("clients: the user owns vault connections and no vault is configured to revoke them")

// UserDeprovisionResult is what DeprovisionUser did.
type UserDeprovisionResult struct {
	User *store.User
	// Disabled: the user was enabled before. Consents: how many live
	// consent grants (one per agent, resource and scope) were revoked.
	// Connections: the ids of the connections revoked.
	Disabled    bool
	Consents    int
	Connections []string
}

// Changed reports whether the run changed anything beyond ending sessions
// and tokens again.
func (r *UserDeprovisionResult) Changed() bool {
	return r.Disabled || r.Consents > 0 || len(r.Connections) > 0
}

// DeprovisionUser switches a person off and everything that acts for
// them: the user is disabled (no login, no issuance for them), their
// sessions, pending codes and every token issued for them end
// (RevokeUserAccess), every consent they gave any agent is revoked, and
// every vault connection they own is revoked at its provider and deleted
// (reason ReasonUserDeprovisioned). The disable commits first, so nothing
// new is issued for the user while the rest runs; running it again
// completes an interrupted run. rv may be nil when the user owns no
// connection (ErrNoVault otherwise, after the rest is done).
func DeprovisionUser(ctx context.Context, st UserDeprovisionStore, rv ConnectionRevoker, m audit.Meta, tenantID, userID string, now time.Time) (*UserDeprovisionResult, error) {
	tenantID, now, m = lifecycleDefaults(tenantID, now, m)
	u, err := st.GetUser(ctx, tenantID, userID)
	if err != nil {
		return nil, fmt.Errorf("clients: deprovision user %q: %w", userID, err)
	}
	res := &UserDeprovisionResult{User: u}
	if !u.Disabled {
		u.Disabled, u.UpdatedAt = true, now
		if err := st.UpdateUser(ctx, u, audit.NewUserUpdated(m, u.ID, audit.ChangeDisabled)); err != nil {
			return nil, fmt.Errorf("clients: deprovision user %q: disabling: %w", userID, err)
		}
		res.Disabled = true
	}
	if err := st.RevokeUserAccess(ctx, tenantID, u.ID, now, audit.NewUserAccessRevoked(m, u.ID, ReasonDeprovisioned)); err != nil {
		return nil, fmt.Errorf("clients: deprovision user %q: ending sessions and tokens: %w", userID, err)
	}
	f := store.ConsentFilter{TenantID: tenantID, UserID: u.ID}
	grants, err := st.ListConsents(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("clients: deprovision user %q: %w", userID, err)
	}
	// One revocation per agent, so that each consent.revoked event names
	// the agent as the account page's does.
	agents := map[string]bool{}
	for _, g := range grants {
		if g.Live(now) {
			res.Consents++
			agents[g.ClientID] = true
		}
	}
	for _, id := range sortedKeys(agents) {
		ev := audit.NewConsentRevoked(m, audit.ConsentRevokedFields{
			ConsentKey: audit.ConsentKey{ClientID: id, UserID: u.ID}, By: "admin", WholeAgent: true,
		})
		cf := f
		cf.ClientID = id
		if err := st.RevokeConsents(ctx, cf, nil, now, ev); err != nil {
			return nil, fmt.Errorf("clients: deprovision user %q: revoking consents: %w", userID, err)
		}
	}
	conns, err := ownedConnections(ctx, st, tenantID, u.ID)
	if err != nil {
		return nil, fmt.Errorf("clients: deprovision user %q: %w", userID, err)
	}
	if len(conns) > 0 && rv == nil {
		return res, ErrNoVault
	}
	for _, c := range conns {
		if err := rv.Revoke(ctx, m, tenantID, c.ID, ReasonUserDeprovisioned); err != nil {
			return res, fmt.Errorf("clients: deprovision user %q: revoking connection %s: %w", userID, c.ID, err)
		}
		res.Connections = append(res.Connections, c.ID)
	}
	return res, nil
}

// ownedConnections pages through every connection the user owns.
func ownedConnections(ctx context.Context, st UserDeprovisionStore, tenantID, userID string) ([]*store.Connection, error) {
	const page = 500
	f := store.ConnectionFilter{TenantID: tenantID, OwnerKind: store.OwnerUser, OwnerID: userID, Limit: page}
	var out []*store.Connection
	for {
		cs, err := st.ListConnections(ctx, f)
		if err != nil {
			return nil, fmt.Errorf("listing connections: %w", err)
		}
		out = append(out, cs...)
		if len(cs) < page {
			return out, nil
		}
		f.After = cs[len(cs)-1].ID
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// lifecycleDefaults fills what a lifecycle operation's caller may leave
// out: the default tenant, the current time, and the event metadata
// stamped with both.
func lifecycleDefaults(tenantID string, now time.Time, m audit.Meta) (string, time.Time, audit.Meta) {
	if tenantID == "" {
		tenantID = store.DefaultTenant
	}
	if now.IsZero() {
		now = time.Now()
	}
	m.Time = now
	return tenantID, now, m.Stamped(tenantID, now)
}
