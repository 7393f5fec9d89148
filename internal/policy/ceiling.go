package policy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/store"
)

// Ceiling is the register action's verdict on the scopes a client asked
// for: the scopes it may ever hold.
type Ceiling struct {
	// Scopes is the ceiling to store as store.Client.Scopes: the requested
	// scopes that the register action allows on at least one resource
	// offering them, in the order of the resources and their scopes.
	Scopes []string
	// Bounded is false for a client that asked for no scopes (an admin's
	// registration without a scope list): such a client is bound only by
	// the resources' scopes and policy, and Scopes is empty. A bounded
	// client with an empty Scopes may hold nothing.
	Bounded bool
	// Allowed holds, per scope of the ceiling, the decision of the first
	// resource allowing it.
	Allowed []Decision
	// Denied holds, per requested scope that no resource allowed, the
	// decision of the first resource offering it.
	Denied []Decision
	// Unknown lists requested scopes no resource of the tenant offers.
	Unknown []string
	// Version is the policy set version that decided.
	Version int64
}

// Ceiling decides the scopes c asked for (c.RequestedScopes) under the
// register action, one request per resource of resources that offers any
// of them, with c as the agent as it is now (its tags included). rc.IP
// defaults to the address the client registered from, rc.SoftwareIssuer to
// the issuer of its software statement, and rc.Time to now.
func (s *Set) Ceiling(c *store.Client, resources []*store.Resource, rc Context) (*Ceiling, error) {
	return s.ceiling(c, AgentFromClient(c), resources, rc)
}

// ceiling is Ceiling with agent, c as a principal.
func (s *Set) ceiling(c *store.Client, agent Agent, resources []*store.Resource, rc Context) (*Ceiling, error) {
	out := &Ceiling{Version: s.version}
	requested := uniq(c.RequestedScopes)
	if len(requested) == 0 {
		return out, nil
	}
	out.Bounded = true
	if rc.IP == "" {
		rc.IP = c.CreatedIP
	}
	if rc.SoftwareIssuer == "" {
		// A recomputed ceiling sees the statement the client registered with.
		rc.SoftwareIssuer = c.SoftwareStatementIssuer
	}
	rc.GrantType = ""
	tenant := c.TenantID
	if tenant == "" {
		tenant = store.DefaultTenant
	}
	offered := make(map[string]bool, len(requested))
	denied := make(map[string]Decision)
	for _, r := range resources {
		var scopes []Scope
		for _, sc := range r.Scopes {
			if slices.Contains(requested, sc.Name) {
				scopes = append(scopes, Scope{Name: sc.Name, Sensitive: sc.Sensitive})
				offered[sc.Name] = true
			}
		}
		if len(scopes) == 0 {
			continue
		}
		ctx := rc
		ctx.Resource = r.URI
		res, err := s.Decide(&Request{
			Action: ActionRegister, TenantID: tenant, Agent: agent,
			Resource: ResourceFromStore(r), Scopes: scopes, Context: ctx,
		})
		if err != nil {
			return nil, err
		}
		for _, d := range res.Decisions {
			if d.Allowed {
				if !slices.Contains(out.Scopes, d.Scope) {
					out.Scopes = append(out.Scopes, d.Scope)
					out.Allowed = append(out.Allowed, d)
				}
			} else if _, seen := denied[d.Scope]; !seen {
				denied[d.Scope] = d
			}
		}
	}
	for _, name := range requested {
		switch {
		case !offered[name]:
			out.Unknown = append(out.Unknown, name)
		case !slices.Contains(out.Scopes, name):
			out.Denied = append(out.Denied, denied[name])
		}
	}
	return out, nil
}

// Audit returns the verdict as registration and update events record it:
// the policy set version, the allowed scopes in ceiling order, then the
// denied ones.
func (c *Ceiling) Audit() audit.Decision {
	return audit.Decision{PolicyVersion: c.Version, Scopes: AuditScopes(slices.Concat(c.Allowed, c.Denied))}
}

// Ceiling is Set.Ceiling against the active policy set; a zero rc.Time
// means the engine's clock.
func (e *Engine) Ceiling(ctx context.Context, c *store.Client, resources []*store.Resource, rc Context) (*Ceiling, error) {
	if rc.Time.IsZero() {
		rc.Time = e.now()
	}
	return e.Active(ctx).ceiling(c, e.AgentFromClient(ctx, c), resources, rc)
}

// WithinCeiling reports whether c's ceiling lets it hold scope. A client
// that asked for no scopes and was given none is bound only by the
// resources' scopes and policy; any other client holds at most its
// ceiling, which may be empty after the policy or its tags changed.
func WithinCeiling(c *store.Client, scope string) bool {
	if len(c.Scopes) == 0 && len(c.RequestedScopes) == 0 {
		return true
	}
	return slices.Contains(c.Scopes, scope)
}

// ClientChange is what an update of a client's tags or ceiling changed.
type ClientChange struct {
	ClientID string
	// TagsAdded and TagsRemoved are the admin tags that changed.
	TagsAdded, TagsRemoved []string
	// Before and After are the ceilings; Added and Removed their
	// difference.
	Before, After  []string
	Added, Removed []string
	// Ceiling is the verdict the new ceiling came from.
	Ceiling *Ceiling
}

// Changed reports whether anything about the client changed.
func (ch *ClientChange) Changed() bool {
	return len(ch.TagsAdded)+len(ch.TagsRemoved)+len(ch.Added)+len(ch.Removed) > 0
}

// errNoStore: store-backed operations need an engine made with a store.
var errNoStore = errors.New("policy: the engine has no store")

// TagClient adds and removes admin tags of the engine tenant's client
// clientID, recomputes its ceiling from its requested scopes under the
// active policy set (tags are what policy reads: "trusted" lets a
// self-registered agent hold sensitive scopes), and stores the client with
// its client.updated event (change "tag", or "untag" when nothing is
// added) in one transaction, unless nothing changed. m is the event's
// metadata; nil records no event. An unknown client is store.ErrNotFound.
func (e *Engine) TagClient(ctx context.Context, clientID string, add, remove []string, m *audit.Meta) (*store.Client, *ClientChange, error) {
	if e.st == nil {
		return nil, nil, errNoStore
	}
	for _, t := range slices.Concat(add, remove) {
		if t == "" {
			return nil, nil, errors.New("policy: empty tag")
		}
	}
	// Resources and the policy set are read first: the update below runs
	// under the store's write lock, on the client as it is then.
	resources, err := e.st.ListResources(ctx, e.tenant)
	if err != nil {
		return nil, nil, fmt.Errorf("policy: tag client: %w", err)
	}
	set := e.Active(ctx)
	var ch *ClientChange
	var unchanged *store.Client
	// The event is built inside the update, from the client as it is
	// stored; the store writes whatever ev holds when update returns.
	var ev *store.AuditEvent
	if m != nil {
		ev = new(store.AuditEvent)
	}
	c, err := e.st.UpdateClient(ctx, e.tenant, clientID, func(c *store.Client) error {
		ch, unchanged = &ClientChange{ClientID: c.ID}, nil
		tags := slices.Clone(c.Tags)
		for _, t := range uniq(remove) {
			if i := slices.Index(tags, t); i >= 0 {
				tags = slices.Delete(tags, i, i+1)
				ch.TagsRemoved = append(ch.TagsRemoved, t)
			}
		}
		for _, t := range uniq(add) {
			if !slices.Contains(tags, t) && !slices.Contains(remove, t) {
				tags = append(tags, t)
				ch.TagsAdded = append(ch.TagsAdded, t)
			}
		}
		c.Tags = tags
		if err := e.recomputeWith(set, c, resources, e.now(), ch); err != nil {
			return err
		}
		if !ch.Changed() {
			unchanged = c
			return errUnchanged
		}
		c.UpdatedAt = e.now()
		if ev != nil {
			change := audit.ChangeTag
			if len(add) == 0 {
				change = audit.ChangeUntag
			}
			f := changeFields(c, ch, change)
			f.Tags, f.TagsAdded, f.TagsRemoved = slices.Clone(c.Tags), ch.TagsAdded, ch.TagsRemoved
			*ev = *audit.NewClientUpdated(m.Stamped(e.tenant, e.now()), f)
		}
		return nil
	}, ev)
	if errors.Is(err, errUnchanged) {
		return unchanged, ch, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("policy: tag client: %w", err)
	}
	return c, ch, nil
}

// errUnchanged ends a client update that would change nothing, so that
// nothing (no event either) is written.
var errUnchanged = errors.New("policy: client unchanged")

// RecomputeCeilings re-reads the active policy set and recomputes the
// ceiling of every client of the engine's tenant from its requested
// scopes. Each client whose ceiling changes is stored, in one transaction
// with its client.updated event (change "ceiling") made with m (nil: no
// event; a zero m.Time is the engine's clock at each change). Run it
// whenever the active set changes (apply, rollback). It returns the
// changes made.
func (e *Engine) RecomputeCeilings(ctx context.Context, m *audit.Meta) ([]ClientChange, error) {
	if e.st == nil {
		return nil, errNoStore
	}
	if err := e.Reload(ctx); err != nil {
		return nil, err
	}
	clients, err := e.st.ListClients(ctx, e.tenant)
	if err != nil {
		return nil, fmt.Errorf("policy: recompute ceilings: %w", err)
	}
	resources, err := e.st.ListResources(ctx, e.tenant)
	if err != nil {
		return nil, fmt.Errorf("policy: recompute ceilings: %w", err)
	}
	set := e.cur.Load()
	var changes []ClientChange
	for _, c := range clients {
		ch := &ClientChange{ClientID: c.ID}
		if err := e.recomputeWith(set, c, resources, e.now(), ch); err != nil {
			return changes, err
		}
		if !ch.Changed() {
			continue
		}
		var ev *store.AuditEvent
		if m != nil {
			ev = new(store.AuditEvent)
		}
		// Recompute on the client as it is under the update's lock, so
		// that a change made meanwhile (say, an RFC 7592 update) is kept.
		_, err := e.st.UpdateClient(ctx, e.tenant, c.ID, func(fresh *store.Client) error {
			ch = &ClientChange{ClientID: c.ID}
			if err := e.recomputeWith(set, fresh, resources, e.now(), ch); err != nil {
				return err
			}
			if !ch.Changed() {
				return errUnchanged
			}
			fresh.UpdatedAt = e.now()
			if ev != nil {
				f := changeFields(fresh, ch, audit.ChangeCeiling)
				f.Reason = fmt.Sprintf("policy set version %d", set.version)
				*ev = *audit.NewClientUpdated(m.Stamped(e.tenant, e.now()), f)
			}
			return nil
		}, ev)
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, errUnchanged) {
			continue
		}
		if err != nil {
			return changes, fmt.Errorf("policy: recompute ceilings: %w", err)
		}
		changes = append(changes, *ch)
	}
	return changes, nil
}

func (e *Engine) recomputeWith(s *Set, c *store.Client, resources []*store.Resource, now time.Time, ch *ClientChange) error {
	cl, err := s.ceiling(c, e.withDomainTrust(AgentFromClient(c)), resources, Context{Time: now})
	if err != nil {
		return err
	}
	ch.Ceiling = cl
	ch.Before, ch.After = slices.Clone(c.Scopes), slices.Clone(cl.Scopes)
	ch.Added, ch.Removed = nil, nil
	for _, sc := range cl.Scopes {
		if !slices.Contains(c.Scopes, sc) {
			ch.Added = append(ch.Added, sc)
		}
	}
	for _, sc := range c.Scopes {
		if !slices.Contains(cl.Scopes, sc) {
			ch.Removed = append(ch.Removed, sc)
		}
	}
	c.Scopes = cl.Scopes
	return nil
}

// changeFields is what a client.updated event says about ch.
func changeFields(c *store.Client, ch *ClientChange, change string) audit.ClientUpdatedFields {
	f := audit.ClientUpdatedFields{ClientID: c.ID, Change: change, CeilingAdded: ch.Added, CeilingRemoved: ch.Removed}
	if ch.Ceiling != nil {
		d := ch.Ceiling.Audit()
		f.Ceiling, f.Policy = slices.Clone(c.Scopes), &d
	}
	return f
}

// uniq returns xs without empty strings and repeats, in first-seen order.
func uniq(xs []string) []string {
	var out []string
	for _, x := range xs {
		if x != "" && !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}
