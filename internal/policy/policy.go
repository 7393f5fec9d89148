// Package policy is agentid's central policy layer. Cedar policies decide,
// scope by scope, what an agent may hold at registration (its ceiling), what
// goes into a token at every issuance, what is carried across a token
// exchange and which downstream credentials may be retrieved. Cedar denies by
// default and a matching forbid overrides every permit.
//
// The principal of every decision is the Agent (an OAuth client); the
// resource is one Scope, a child of its Resource (an MCP server); the user an
// agent acts for, the grant type, address, time and delegation depth are
// context. The schema (Schema) and the default policy set (DefaultFiles) are
// embedded and documented in docs/policy.md.
//
// An Engine keeps the tenant's active policy set from the store and re-reads
// it every few seconds, so a new version reaches every replica without a
// restart. Validate checks a candidate set, Explain says why a decision was
// made, and DryRun replays past issuances against a candidate set.
package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/store"
)

// Agent is the principal of a decision: a registered client.
type Agent struct {
	ID                 string
	RegistrationMethod string // store.RegistrationManual, RegistrationDCR or RegistrationCIMD
	ClientType         string // "public" or "confidential"
	SoftwareID         string
	VerifiedDomain     string // the domain verified for a CIMD client
	// DomainTrust is the administrator's trust in VerifiedDomain
	// (store.DomainTrusted, DomainAllowed or DomainBlocked; agentid domains
	// add). An Engine fills it in for an agent with a verified domain and
	// no trust; "" with a verified domain means DomainAllowed.
	DomainTrust string
	CreatedIP   string
	OwnerUserID string
	// Tags are set by admins: "trusted" lifts the default ban on sensitive
	// scopes for self-registered agents; "cc:<scope>" allows a scope under
	// client_credentials.
	Tags []string
}

// User is the person an agent acts for; it reaches policies as context.user.
type User struct {
	ID       string
	TenantID string
	Roles    []string
	Groups   []string
	// Attributes are the person's attributes (store.User.Attributes);
	// policies read them as the user entity's tags
	// (context.user.getTag("department")).
	Attributes map[string]string
}

// Resource is a protected resource (an MCP server).
type Resource struct {
	URI      string // canonical, RFC 8707
	Name     string
	TenantID string
	Tags     []string
}

// Scope is one requested scope of the request's Resource.
type Scope struct {
	Name      string
	Sensitive bool
}

// Service is a downstream service (a vault connection provider); it is set
// on connect requests.
type Service struct {
	Name     string
	TenantID string
}

// Context is the request context policies see.
type Context struct {
	GrantType  string // the OAuth grant_type; "" at registration
	IP         string
	AuthMethod string // token endpoint authentication method of the agent
	Time       time.Time
	// AuthAge is how long ago the user authenticated (with a user only).
	AuthAge time.Duration
	// ChainDepth is the number of actors in the delegation chain.
	ChainDepth int
	// Actors are the actors of the delegation chain (the act claim of a
	// token exchange), the current actor first: the exchanging client,
	// then each prior hop, the agent last. Empty without delegation.
	Actors []string
	// FirstActor is the innermost actor, the agent the person authorized
	// at the start of the chain; "" without delegation.
	FirstActor string
	// Resource is the request's RFC 8707 resource parameter as sent.
	Resource string
	// SoftwareIssuer is the issuer of the registration's verified software
	// statement (RFC 7591 §2.3); "" when it carried none.
	SoftwareIssuer string
}

// Request asks for a decision on each of Scopes.
type Request struct {
	Action   Action
	TenantID string
	Agent    Agent
	// User is nil for client_credentials and at registration.
	User     *User
	Resource Resource
	Scopes   []Scope
	Context  Context
	// Service is set for connect requests; nil otherwise.
	Service *Service
}

// Decision is the outcome for one scope.
type Decision struct {
	Scope   string `json:"scope"`
	Allowed bool   `json:"allowed"`
	// PolicyIDs are the determining policies: the matching forbids of a
	// denial or the matching permits of an allowance. Empty for a denial
	// means no permit matched (default deny).
	PolicyIDs []string `json:"policies,omitempty"`
	// Errors are policies that failed to evaluate; Cedar skips them.
	Errors []string `json:"errors,omitempty"`
}

// Result is the outcome of a request.
type Result struct {
	// Granted lists the allowed scopes in the order of the request.
	Granted   []string
	Decisions []Decision
	// Version is the policy set version used; 0 is the built-in default.
	Version int64
}

// Audit returns the decision as a decision event records it: the policy
// set version and each scope's verdict, decided by policy.
func (r *Result) Audit() audit.Decision {
	return audit.Decision{PolicyVersion: r.Version, Scopes: AuditScopes(r.Decisions)}
}

// AuditScopes converts policy decisions into the verdicts audit events
// carry (reason: policy).
func AuditScopes(ds []Decision) []audit.ScopeDecision {
	if len(ds) == 0 {
		return nil
	}
	out := make([]audit.ScopeDecision, len(ds))
	for i, d := range ds {
		out[i] = audit.ScopeDecision{
			Scope: d.Scope, Allowed: d.Allowed, Reason: audit.ReasonPolicy,
			PolicyIDs: slices.Clone(d.PolicyIDs), Errors: slices.Clone(d.Errors),
		}
	}
	return out
}

// Store is what an Engine reads and writes: the policy sets, and the
// clients, resources and users its decisions and ceilings are about. Any
// store.Store will do.
type Store interface {
	store.Policies
	store.Clients
	store.Resources
	store.Users
}

// Options configure an Engine. Zero values mean the documented defaults.
type Options struct {
	// Store holds the versioned policy sets. Nil: the engine uses the
	// embedded default set and never reloads.
	Store Store
	// Domains, when set (any store.Store will do), are read with the
	// policy set, every RefreshInterval: they give agents with a verified
	// domain (Client ID Metadata Document clients) their domain_trust.
	// Nil: every verified domain is store.DomainAllowed.
	Domains store.Domains
	// TenantID whose policy set is loaded; default store.DefaultTenant.
	TenantID string
	// RefreshInterval is how often the active policy set is re-read from the
	// store, so that every replica picks up a new version within a few
	// seconds; default 2s.
	RefreshInterval time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
	// Decided, when set, is told each result of Decide and DecideAs: the
	// action and how many scopes it allowed and denied (metrics).
	Decided func(action string, allowed, denied int)
}

// DefaultRefreshInterval is the default Options.RefreshInterval.
const DefaultRefreshInterval = 2 * time.Second

// refreshTimeout bounds the store read of a periodic refresh.
const refreshTimeout = 5 * time.Second

// Engine decides requests against a tenant's active policy set. It is safe
// for concurrent use.
type Engine struct {
	st       Store
	ds       store.Domains
	tenant   string
	interval time.Duration
	now      func() time.Time
	log      *slog.Logger
	decided  func(action string, allowed, denied int)

	cur atomic.Pointer[Set]
	// domains are the tenant's Client ID Metadata Document domains, read
	// with the policy set; agents with a verified domain get their
	// domain_trust from them.
	domains atomic.Pointer[[]*store.Domain]
	// due is when (unix nanoseconds) the store should next be asked for the
	// active set; a Decide that finds it past re-reads the set itself, so no
	// background goroutine has to be stopped.
	due atomic.Int64
	mu  sync.Mutex // serialises loads
}

// New loads the tenant's active policy set from the store; with none stored
// (store.ErrNotFound) the embedded default set is active. An active set that
// does not validate is an error: the engine never silently falls back to
// different rules.
func New(ctx context.Context, opts Options) (*Engine, error) {
	e := &Engine{
		st:       opts.Store,
		ds:       opts.Domains,
		tenant:   opts.TenantID,
		interval: opts.RefreshInterval,
		now:      opts.Now,
		log:      opts.Logger,
		decided:  opts.Decided,
	}
	if e.tenant == "" {
		e.tenant = store.DefaultTenant
	}
	if e.interval <= 0 {
		e.interval = DefaultRefreshInterval
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if err := e.Reload(ctx); err != nil {
		return nil, err
	}
	return e, nil
}

// Reload re-reads the active policy set from the store now. If the store
// fails or the stored set does not validate, the previous set stays active
// and the error is returned.
func (e *Engine) Reload(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.load(ctx)
}

// load must be called with e.mu held.
func (e *Engine) load(ctx context.Context) error {
	e.due.Store(e.now().Add(e.interval).UnixNano())
	if e.st == nil {
		if e.cur.Load() == nil {
			s, err := compile(DefaultFiles(), 0)
			if err != nil {
				return err
			}
			e.cur.Store(s)
		}
		return nil
	}
	if err := e.loadDomains(ctx); err != nil {
		return err
	}
	ps, err := e.st.ActivePolicySet(ctx, e.tenant)
	var (
		files   map[string]string
		version int64
	)
	switch {
	case errors.Is(err, store.ErrNotFound):
		files, version = DefaultFiles(), 0
	case err != nil:
		return fmt.Errorf("policy: load active policy set: %w", err)
	default:
		files, version = ps.Files, ps.Version
	}
	if cur := e.cur.Load(); cur != nil && cur.version == version {
		return nil
	}
	s, err := compile(files, version)
	if err != nil {
		return fmt.Errorf("policy: active policy set version %d is invalid: %w", version, err)
	}
	if prev := e.cur.Load(); prev != nil {
		e.log.InfoContext(ctx, "policy set activated", "tenant_id", e.tenant, "version", version, "previous_version", prev.version)
	}
	e.cur.Store(s)
	return nil
}

// refreshIfDue re-reads the active set when the refresh interval has
// passed. Only one caller loads; the others keep deciding with the current
// set meanwhile. Failures are logged and retried after the next interval.
func (e *Engine) refreshIfDue(ctx context.Context) {
	if e.st == nil || e.now().UnixNano() < e.due.Load() {
		return
	}
	if !e.mu.TryLock() {
		return
	}
	defer e.mu.Unlock()
	if e.now().UnixNano() < e.due.Load() {
		return
	}
	// The refresh serves every request, not only this one: a client that
	// hangs up must not make it fail.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
	defer cancel()
	if err := e.load(ctx); err != nil {
		e.log.ErrorContext(ctx, "policy reload failed; keeping the current policy set",
			"tenant_id", e.tenant, "version", e.cur.Load().version, "err", err)
	}
}

// Active returns the active policy set, re-reading it first if the refresh
// interval has passed.
func (e *Engine) Active(ctx context.Context) *Set {
	e.refreshIfDue(ctx)
	return e.cur.Load()
}

// Decide filters req.Scopes through the active policy set: one Cedar
// authorization per scope (principal: the agent, action: req.Action,
// resource: the scope, with the context), deny by default, forbid overriding
// permit. An empty req.TenantID means the engine's tenant and a zero
// Context.Time the engine's clock. The caller intersects Granted with the
// user's consent.
func (e *Engine) Decide(ctx context.Context, req *Request) (*Result, error) {
	s, req, err := e.prepare(ctx, req)
	if err != nil {
		return nil, err
	}
	res, err := s.Decide(req)
	if err == nil {
		e.report(req.Action, res)
	}
	return res, err
}

// DecideAs is Decide under each of actions, with the request's entities
// built once (see Set.DecideAs).
func (e *Engine) DecideAs(ctx context.Context, req *Request, actions ...Action) ([]*Result, error) {
	s, req, err := e.prepare(ctx, req)
	if err != nil {
		return nil, err
	}
	res, err := s.DecideAs(req, actions...)
	if err == nil {
		for i, r := range res {
			e.report(actions[i], r)
		}
	}
	return res, err
}

// report tells Options.Decided about a result.
func (e *Engine) report(a Action, r *Result) {
	if e.decided == nil {
		return
	}
	allowed := 0
	for _, d := range r.Decisions {
		if d.Allowed {
			allowed++
		}
	}
	e.decided(string(a), allowed, len(r.Decisions)-allowed)
}

// prepare picks the active set and fills the request's tenant and time.
func (e *Engine) prepare(ctx context.Context, req *Request) (*Set, *Request, error) {
	if req == nil {
		return nil, nil, fmt.Errorf("policy: nil request")
	}
	s := e.Active(ctx)
	if req.TenantID == "" || req.Context.Time.IsZero() || (req.Agent.VerifiedDomain != "" && req.Agent.DomainTrust == "") {
		r := *req
		if r.TenantID == "" {
			r.TenantID = e.tenant
		}
		if r.Context.Time.IsZero() {
			r.Context.Time = e.now()
		}
		r.Agent = e.withDomainTrust(r.Agent)
		req = &r
	}
	return s, req, nil
}
