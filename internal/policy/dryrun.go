package policy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/store"
)

// EventTokenIssued is the audit event type DryRun replays.
const EventTokenIssued = "token.issued"

// DryRunMaxEvents caps how many events one dry run replays; a report that
// hit it says Truncated.
const DryRunMaxEvents = 100000

// DryRunReport says which past grants a candidate policy set would change.
type DryRunReport struct {
	TenantID string
	Since    time.Time
	// Events is the number of token.issued events found; Evaluated those
	// replayed, Skipped those that could not be (see Skips).
	Events    int
	Evaluated int
	Skipped   int
	Skips     []DryRunSkip
	// Truncated: DryRunMaxEvents were read; older events were not replayed.
	Truncated bool
	Changes   []GrantChange
}

// DryRunSkip is an event that could not be replayed, and why.
type DryRunSkip struct {
	EventID int64
	Reason  string
}

// GrantChange is one past issuance whose scopes the candidate set decides
// differently.
type GrantChange struct {
	EventID   int64
	Time      time.Time
	ClientID  string
	UserID    string
	Resource  string
	GrantType string
	// Before is what was granted; After what the candidate would grant.
	Before, After []string
	// Removed were granted and the candidate denies them. Added were denied
	// by the policy of the time (known only from events that recorded their
	// policy decisions) and the candidate permits them; they would still be
	// subject to the user's consent.
	Removed, Added []string
	// Decisions are the candidate's decisions on the changed scopes.
	Decisions []Decision
}

// DryRun replays the default tenant's token.issued audit events since the
// given time against a candidate policy set; see DryRunTenant.
func DryRun(ctx context.Context, st store.Store, candidate map[string]string, since time.Time) (*DryRunReport, error) {
	return DryRunTenant(ctx, st, store.DefaultTenant, candidate, since)
}

// DryRunTenant validates the candidate set (an invalid one is a
// *ValidationError) and replays the tenant's token.issued audit events since
// the given time against it. Each request is rebuilt from the event (client,
// user, resource, scopes, grant_type, auth method, auth age, IP, time) with the client, user and
// resource (and a CIMD client's domain trust) as they are now in the store, and its requested scopes come from
// the policy decisions the event recorded (see audit.DecisionOf), or are
// the granted scopes when it recorded none. The report lists every event
// whose grant would change.
func DryRunTenant(ctx context.Context, st store.Store, tenantID string, candidate map[string]string, since time.Time) (*DryRunReport, error) {
	set, err := Compile(candidate)
	if err != nil {
		return nil, err
	}
	events, err := st.ListAudit(ctx, store.AuditFilter{
		TenantID: tenantID,
		Type:     EventTokenIssued,
		Since:    since,
		Limit:    DryRunMaxEvents,
	})
	if err != nil {
		return nil, fmt.Errorf("policy: dry run: list audit events: %w", err)
	}
	rep := &DryRunReport{
		TenantID:  tenantID,
		Since:     since,
		Events:    len(events),
		Truncated: len(events) >= DryRunMaxEvents,
	}
	rb := &rebuilder{st: st, tenant: tenantID,
		clients: map[string]*store.Client{}, users: map[string]*store.User{}, resources: map[string]*store.Resource{}}
	if rb.domains, err = st.ListDomains(ctx, tenantID); err != nil {
		return nil, fmt.Errorf("policy: dry run: list domains: %w", err)
	}
	// Events come newest first; report oldest first.
	for _, ev := range slices.Backward(events) {
		if ev.Type != EventTokenIssued || (ev.Outcome != "" && ev.Outcome != "success") {
			rep.Events--
			continue
		}
		req, before, wasAllowed, err := rb.request(ctx, ev)
		if err != nil {
			var skip skipError
			if errors.As(err, &skip) {
				rep.Skipped++
				rep.Skips = append(rep.Skips, DryRunSkip{EventID: ev.ID, Reason: string(skip)})
				continue
			}
			return nil, err
		}
		res, err := set.Decide(req)
		if err != nil {
			return nil, err
		}
		rep.Evaluated++
		ch := GrantChange{
			EventID: ev.ID, Time: ev.Time, ClientID: ev.ClientID, UserID: ev.UserID,
			Resource: ev.Resource, GrantType: req.Context.GrantType, Before: before,
		}
		for _, d := range res.Decisions {
			granted := slices.Contains(before, d.Scope)
			switch {
			case granted && !d.Allowed:
				ch.Removed = append(ch.Removed, d.Scope)
				ch.Decisions = append(ch.Decisions, d)
			case !granted && d.Allowed && !wasAllowed[d.Scope]:
				ch.Added = append(ch.Added, d.Scope)
				ch.Decisions = append(ch.Decisions, d)
			}
		}
		if len(ch.Removed) == 0 && len(ch.Added) == 0 {
			continue
		}
		for _, s := range before {
			if !slices.Contains(ch.Removed, s) {
				ch.After = append(ch.After, s)
			}
		}
		ch.After = append(ch.After, ch.Added...)
		rep.Changes = append(rep.Changes, ch)
	}
	return rep, nil
}

// skipError is why an event cannot be replayed.
type skipError string

func (e skipError) Error() string { return string(e) }

// rebuilder reconstructs requests from audit events, caching store reads.
type rebuilder struct {
	st        store.Store
	tenant    string
	clients   map[string]*store.Client
	users     map[string]*store.User
	resources map[string]*store.Resource
	// domains give CIMD agents their domain_trust as it is now.
	domains []*store.Domain
}

// agent is c as the principal, with its domain's trust as it is now.
func (rb *rebuilder) agent(c *store.Client) Agent {
	a := AgentFromClient(c)
	if a.VerifiedDomain != "" {
		a.DomainTrust = DomainTrust(rb.domains, a.VerifiedDomain)
	}
	return a
}

func cached[T any](ctx context.Context, m map[string]*T, key string, get func(context.Context, string, string) (*T, error), tenant string) (*T, error) {
	if v, ok := m[key]; ok {
		return v, nil
	}
	v, err := get(ctx, tenant, key)
	if errors.Is(err, store.ErrNotFound) {
		m[key] = nil
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	m[key] = v
	return v, nil
}

// request rebuilds the request of a token.issued event. It returns the
// request, the scopes the event granted and which scopes the policy of the
// time allowed (as far as the event recorded it).
func (rb *rebuilder) request(ctx context.Context, ev *store.AuditEvent) (*Request, []string, map[string]bool, error) {
	if ev.ClientID == "" || ev.Resource == "" {
		return nil, nil, nil, skipError("the event names no client or no resource")
	}
	c, err := cached(ctx, rb.clients, ev.ClientID, rb.st.GetClient, rb.tenant)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("policy: dry run: load client: %w", err)
	}
	if c == nil {
		return nil, nil, nil, skipError(fmt.Sprintf("client %q no longer exists", ev.ClientID))
	}
	r, err := cached(ctx, rb.resources, ev.Resource, rb.st.GetResource, rb.tenant)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("policy: dry run: load resource: %w", err)
	}
	if r == nil {
		return nil, nil, nil, skipError(fmt.Sprintf("resource %q no longer exists", ev.Resource))
	}
	var user *User
	if ev.UserID != "" {
		u, err := cached(ctx, rb.users, ev.UserID, rb.st.GetUser, rb.tenant)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("policy: dry run: load user: %w", err)
		}
		if u == nil {
			return nil, nil, nil, skipError(fmt.Sprintf("user %q no longer exists", ev.UserID))
		}
		user = UserFromStore(u)
	}

	before := slices.Clone(ev.Scopes)
	requested := before
	wasAllowed := make(map[string]bool, len(before))
	for _, s := range before {
		wasAllowed[s] = true
	}
	decision, ok, err := audit.DecisionOf(ev)
	if err != nil {
		return nil, nil, nil, skipError(err.Error())
	}
	if ok {
		requested = nil
		for _, d := range decision.Scopes {
			if !slices.Contains(requested, d.Scope) {
				requested = append(requested, d.Scope)
			}
			wasAllowed[d.Scope] = wasAllowed[d.Scope] || d.Allowed
		}
		// A granted scope the decisions do not mention is still replayed.
		for _, s := range before {
			if !slices.Contains(requested, s) {
				requested = append(requested, s)
			}
		}
	}

	gt := ev.Details["grant_type"]
	var authAge time.Duration
	if v, ok := ev.Details[audit.DetailAuthAgeSeconds]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, nil, nil, skipError(fmt.Sprintf("detail %s: not a number: %q", audit.DetailAuthAgeSeconds, v))
		}
		authAge = time.Duration(n) * time.Second
	}
	req := &Request{
		Action:   ActionForGrantType(gt),
		TenantID: rb.tenant,
		Agent:    rb.agent(c),
		User:     user,
		Resource: ResourceFromStore(r),
		Scopes:   ScopesOf(r, requested),
		Context: Context{
			GrantType:  gt,
			IP:         ev.IP,
			AuthMethod: ev.Details[audit.DetailAuthMethod],
			AuthAge:    authAge,
			Time:       ev.Time,
			Resource:   ev.Resource,
		},
	}
	if chain := strings.Fields(ev.Details[audit.DetailActChain]); len(chain) > 0 {
		// A token exchange records its delegation chain, current actor
		// first.
		req.Context.Actors = chain
		req.Context.ChainDepth = len(chain)
		req.Context.FirstActor = chain[len(chain)-1]
	}
	return req, before, wasAllowed, nil
}

// String renders the report for people.
func (r *DryRunReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "dry run over %d token.issued events since %s: %d replayed, %d skipped, %d would change\n",
		r.Events, r.Since.UTC().Format(time.RFC3339), r.Evaluated, r.Skipped, len(r.Changes))
	if r.Truncated {
		fmt.Fprintf(&b, "only the newest %d events were read\n", DryRunMaxEvents)
	}
	for _, c := range r.Changes {
		fmt.Fprintf(&b, "\nevent %d at %s: client %q", c.EventID, c.Time.UTC().Format(time.RFC3339), c.ClientID)
		if c.UserID != "" {
			fmt.Fprintf(&b, " user %q", c.UserID)
		}
		fmt.Fprintf(&b, " resource %s grant_type %s\n", c.Resource, c.GrantType)
		fmt.Fprintf(&b, "  before: %s\n  after:  %s\n", strings.Join(c.Before, " "), strings.Join(c.After, " "))
		for _, d := range c.Decisions {
			verdict := "no longer granted"
			if d.Allowed {
				verdict = "now permitted"
			}
			ids := "no permit (default deny)"
			if len(d.PolicyIDs) > 0 {
				ids = quoteIDs(d.PolicyIDs)
			}
			fmt.Fprintf(&b, "  %s: %s by %s\n", d.Scope, verdict, ids)
		}
	}
	for _, s := range r.Skips {
		fmt.Fprintf(&b, "skipped event %d: %s\n", s.EventID, s.Reason)
	}
	return b.String()
}
