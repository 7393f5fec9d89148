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

// InventoryStore is what the agent inventory reads.
type InventoryStore interface {
	GetClient(ctx context.Context, tenantID, id string) (*store.Client, error)
	ListClients(ctx context.Context, tenantID string) ([]*store.Client, error)
	ListConsents(ctx context.Context, f store.ConsentFilter) ([]*store.ConsentGrant, error)
	ListAudit(ctx context.Context, f store.AuditFilter) ([]*store.AuditEvent, error)
	GetUser(ctx context.Context, tenantID, id string) (*store.User, error)
}

// Agent statuses in the inventory (Agent.Status).
const (
	AgentActive        = "active"
	AgentPending       = "pending"
	AgentDisabled      = "disabled"
	AgentDeprovisioned = "deprovisioned"
)

// Client types in the inventory (Agent.Type).
const (
	TypePublic       = "public"
	TypeConfidential = "confidential"
	TypeWorkload     = "workload" // authenticates with a trusted issuer's JWTs
)

// Agent is one client as the agent inventory shows it.
type Agent struct {
	Client *store.Client
	// Status is one of the Agent… statuses.
	Status string
	// Type is TypePublic, TypeConfidential or TypeWorkload.
	Type string
	// CIMDHost is the host of a Client ID Metadata Document client's
	// document URL (its client id), which the hub fetched and checked.
	CIMDHost string
	// Owner is the username of Client.OwnerUserID ("" when none, the id
	// when the user is gone).
	Owner string
	// ConsentingUsers are the usernames of the people with a live consent
	// for the agent, sorted.
	ConsentingUsers []string
	// LastTokenAt is when a token was last issued to the agent: the later
	// of Client.LastUsedAt (coarse) and its newest token.issued event.
	// Zero: never.
	LastTokenAt time.Time
	// LastToolCallAt is the time of the newest tool call an MCP server
	// reported for the agent (tool.invoked naming it as client or as the
	// agent of a delegation chain), LastTool that call's tool. Zero:
	// none reported.
	LastToolCallAt time.Time
	LastTool       string
}

// Inventory lists the tenant's agents, ordered as ListClients orders them,
// at now (for which consents are live).
func Inventory(ctx context.Context, st InventoryStore, tenantID string, now time.Time) ([]*Agent, error) {
	if tenantID == "" {
		tenantID = store.DefaultTenant
	}
	cls, err := st.ListClients(ctx, tenantID)
	if err != nil {
		return nil, fmt.Errorf("clients: inventory: %w", err)
	}
	grants, err := st.ListConsents(ctx, store.ConsentFilter{TenantID: tenantID})
	if err != nil {
		return nil, fmt.Errorf("clients: inventory: %w", err)
	}
	names := userNames{st: st, tenant: tenantID, m: map[string]string{}}
	consenting := map[string]map[string]bool{}
	for _, g := range grants {
		if !g.Live(now) {
			continue
		}
		if consenting[g.ClientID] == nil {
			consenting[g.ClientID] = map[string]bool{}
		}
		consenting[g.ClientID][g.UserID] = true
	}
	out := make([]*Agent, 0, len(cls))
	for _, c := range cls {
		a, err := agentOf(ctx, st, &names, c, consenting[c.ID])
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// InventoryAgent is the inventory's entry for one agent (store.ErrNotFound
// when there is none).
func InventoryAgent(ctx context.Context, st InventoryStore, tenantID, id string, now time.Time) (*Agent, error) {
	if tenantID == "" {
		tenantID = store.DefaultTenant
	}
	c, err := st.GetClient(ctx, tenantID, id)
	if err != nil {
		return nil, fmt.Errorf("clients: inventory %q: %w", id, err)
	}
	grants, err := st.ListConsents(ctx, store.ConsentFilter{TenantID: tenantID, ClientID: id})
	if err != nil {
		return nil, fmt.Errorf("clients: inventory %q: %w", id, err)
	}
	users := map[string]bool{}
	for _, g := range grants {
		if g.Live(now) {
			users[g.UserID] = true
		}
	}
	names := userNames{st: st, tenant: tenantID, m: map[string]string{}}
	return agentOf(ctx, st, &names, c, users)
}

func agentOf(ctx context.Context, st InventoryStore, names *userNames, c *store.Client, users map[string]bool) (*Agent, error) {
	a := &Agent{Client: c, Status: AgentStatus(c), Type: TypeConfidential, LastTokenAt: c.LastUsedAt}
	switch {
	case c.RegistrationMethod == store.RegistrationWorkload:
		a.Type = TypeWorkload
	case c.Public():
		a.Type = TypePublic
	}
	a.CIMDHost = audit.AgentOf(c).CIMDHost
	var err error
	if c.OwnerUserID != "" {
		if a.Owner, err = names.get(ctx, c.OwnerUserID); err != nil {
			return nil, err
		}
	}
	for id := range users {
		n, err := names.get(ctx, id)
		if err != nil {
			return nil, err
		}
		a.ConsentingUsers = append(a.ConsentingUsers, n)
	}
	slices.Sort(a.ConsentingUsers)
	evs, err := st.ListAudit(ctx, store.AuditFilter{TenantID: c.TenantID, Type: audit.TokenIssued, ClientID: c.ID, Limit: 1})
	if err != nil {
		return nil, fmt.Errorf("clients: inventory %q: %w", c.ID, err)
	}
	if len(evs) > 0 && evs[0].Time.After(a.LastTokenAt) {
		a.LastTokenAt = evs[0].Time
	}
	calls, err := st.ListAudit(ctx, store.AuditFilter{TenantID: c.TenantID, Type: audit.ToolInvoked, Agent: c.ID, Limit: 1})
	if err != nil {
		return nil, fmt.Errorf("clients: inventory %q: %w", c.ID, err)
	}
	if len(calls) > 0 {
		a.LastToolCallAt, a.LastTool = calls[0].Time, calls[0].Details["tool"]
	}
	return a, nil
}

// AgentStatus is the inventory's status of c.
func AgentStatus(c *store.Client) string {
	switch {
	case c.Status == store.ClientDeprovisioned:
		return AgentDeprovisioned
	case c.Disabled:
		return AgentDisabled
	case c.Pending():
		return AgentPending
	}
	return AgentActive
}

// userNames resolves user ids to usernames, once each.
type userNames struct {
	st     InventoryStore
	tenant string
	m      map[string]string
}

func (n *userNames) get(ctx context.Context, id string) (string, error) {
	if s, ok := n.m[id]; ok {
		return s, nil
	}
	u, err := n.st.GetUser(ctx, n.tenant, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		n.m[id] = id // a deleted user shows as the id tokens carried
	case err != nil:
		return "", fmt.Errorf("clients: inventory: reading user %s: %w", id, err)
	default:
		n.m[id] = u.Username
	}
	return n.m[id], nil
}

// Stale-agent actions.
const (
	StaleReport  = ""        // report only
	StaleDisable = "disable" // disable and revoke its tokens
	StaleDelete  = "delete"  // delete (its tokens revoked)
)

// StaleStore is what Stale needs of the store.
type StaleStore interface {
	InventoryStore
	UpdateClient(ctx context.Context, tenantID, id string, update func(*store.Client) error, ev *store.AuditEvent) (*store.Client, error)
	RevokeClientTokens(ctx context.Context, tenantID, clientID string, now time.Time, ev *store.AuditEvent) error
	DeleteClient(ctx context.Context, tenantID, id string, now time.Time, ev *store.AuditEvent) error
}

// StaleOptions select the stale agents and what to do with them.
type StaleOptions struct {
	TenantID string // default store.DefaultTenant
	// UnusedFor: an agent is stale when no token was issued to it (never
	// one: since its registration) for at least this long; required.
	UnusedFor time.Duration
	Now       time.Time // default time.Now()
	// Action is StaleReport, StaleDisable or StaleDelete; DryRun reports
	// what the action would reach and changes nothing.
	Action string
	DryRun bool
	Audit  audit.Meta
}

// ReasonStale is the reason of the events a stale-agent action writes.
const ReasonStale = "stale"

// StaleAgent is one agent Stale found.
type StaleAgent struct {
	*Agent
	// UnusedSince is when it was last used (its last token, or its
	// registration).
	UnusedSince time.Time
	// Acted: the action was applied to it (false in a report, a dry run,
	// or when disabling an agent already disabled).
	Acted bool
}

// Stale reports the agents of every registration method unused for
// opts.UnusedFor, deprovisioned ones left out, oldest use first, and
// applies opts.Action to them unless it is a report or a dry run. Unlike
// Prune (which removes only self-registered clients with nothing live), an
// operator chooses this action, so it reaches every agent it selects.
func Stale(ctx context.Context, st StaleStore, opts StaleOptions) ([]*StaleAgent, error) {
	switch {
	case opts.UnusedFor <= 0:
		return nil, errors.New("clients: stale needs a positive unused-for duration")
	case opts.Action != StaleReport && opts.Action != StaleDisable && opts.Action != StaleDelete:
		return nil, fmt.Errorf("clients: stale action %q: want %q or %q", opts.Action, StaleDisable, StaleDelete)
	}
	if opts.TenantID == "" {
		opts.TenantID = store.DefaultTenant
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	m := opts.Audit
	m.Time = opts.Now
	m = m.Stamped(opts.TenantID, opts.Now)
	agents, err := Inventory(ctx, st, opts.TenantID, opts.Now)
	if err != nil {
		return nil, err
	}
	cutoff := opts.Now.Add(-opts.UnusedFor)
	var out []*StaleAgent
	for _, a := range agents {
		since := a.Client.CreatedAt
		if a.LastTokenAt.After(since) {
			since = a.LastTokenAt
		}
		if a.Status == AgentDeprovisioned || since.After(cutoff) {
			continue
		}
		out = append(out, &StaleAgent{Agent: a, UnusedSince: since})
	}
	slices.SortStableFunc(out, func(a, b *StaleAgent) int { return a.UnusedSince.Compare(b.UnusedSince) })
	if opts.Action == StaleReport || opts.DryRun {
		return out, nil
	}
	for _, s := range out {
		id := s.Client.ID
		m := m.WithAgent(s.Client)
		switch opts.Action {
		case StaleDisable:
			if s.Client.Disabled {
				continue
			}
			ev := audit.NewClientUpdated(m, audit.ClientUpdatedFields{ClientID: id, Change: audit.ChangeDisabled, Reason: ReasonStale})
			c, err := st.UpdateClient(ctx, opts.TenantID, id, func(c *store.Client) error {
				c.Disabled, c.UpdatedAt = true, opts.Now
				return nil
			}, ev)
			if err != nil {
				return out, fmt.Errorf("clients: stale: disabling %q: %w", id, err)
			}
			// As `clients disable`: after the disable nothing more is
			// issued to it, so this reaches every token it holds.
			if err := st.RevokeClientTokens(ctx, opts.TenantID, id, opts.Now, audit.NewClientTokensRevoked(m, id, ReasonStale)); err != nil {
				return out, fmt.Errorf("clients: stale: revoking the tokens of %q: %w", id, err)
			}
			s.Client, s.Status = c, AgentStatus(c)
		case StaleDelete:
			if err := st.DeleteClient(ctx, opts.TenantID, id, opts.Now, audit.NewClientDeleted(m, id)); err != nil && !errors.Is(err, store.ErrNotFound) {
				return out, fmt.Errorf("clients: stale: deleting %q: %w", id, err)
			}
		}
		s.Acted = true
	}
	return out, nil
}
