package policy

import (
	_ "embed"
	"fmt"
	"iter"
	"maps"
	"slices"

	cedar "github.com/cedar-policy/cedar-go"
	cedarast "github.com/cedar-policy/cedar-go/ast"
	"github.com/cedar-policy/cedar-go/types"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"
)

// DefaultFile is the file name of the embedded default policy set.
const DefaultFile = "default.cedar"

//go:embed default.cedar
var defaultPolicy string

// DefaultFiles returns the embedded default policy set (documented in
// docs/policy.md). It is active while the store holds no policy set for the
// tenant, and it is the starting point for an admin's own set.
func DefaultFiles() map[string]string {
	return map[string]string{DefaultFile: defaultPolicy}
}

// Cedar entity types and the action entity type.
const (
	typeTenant   = types.EntityType("Tenant")
	typeAgent    = types.EntityType("Agent")
	typeUser     = types.EntityType("User")
	typeResource = types.EntityType("Resource")
	typeScope    = types.EntityType("Scope")
	typeService  = types.EntityType("Service")
	typeAction   = types.EntityType("Action")
)

// Action is what a request asks to do with each scope.
type Action string

// Actions; each is a Cedar action Action::"<name>".
const (
	// ActionRegister decides which scopes an agent may ever hold; evaluated
	// at registration and stored as the agent's ceiling.
	ActionRegister Action = "register"
	// ActionGrant decides whether a scope goes into a token at issuance.
	ActionGrant Action = "grant"
	// ActionExchange decides whether a scope is carried across a token
	// exchange.
	ActionExchange Action = "exchange"
	// ActionConnect decides whether a downstream credential may be retrieved.
	ActionConnect Action = "connect"
	// ActionHold is decided for a new dynamic registration on each scope it
	// asks for: a permit on any of them puts the client in pending until
	// an admin approves it (agentid clients approve).
	ActionHold Action = "hold"
	// ActionReject is decided like ActionHold: a permit on any scope
	// refuses the registration, naming the policy.
	ActionReject Action = "reject"
)

var actions = [...]Action{ActionRegister, ActionGrant, ActionExchange, ActionConnect, ActionHold, ActionReject}

func actionIndex(a Action) (int, bool) {
	for i, x := range actions {
		if x == a {
			return i, true
		}
	}
	return 0, false
}

// ScopeEntityID is the Cedar entity id of a scope of a resource:
// Scope::"<resource uri>#<scope name>". RFC 8707 §2 forbids a fragment in a
// resource URI, so '#' cannot be ambiguous.
func ScopeEntityID(resourceURI, scope string) string {
	return resourceURI + "#" + scope
}

// ccTagPrefix marks an agent tag that allows one scope under the
// client_credentials grant ("cc:files:read"); the default policy reads the
// derived attribute cc_scopes.
const ccTagPrefix = "cc:"

// Set is a compiled, validated policy set. It is immutable and safe for
// concurrent use; Decide does no I/O and no parsing.
type Set struct {
	version  int64
	files    map[string]string
	policies []*compiledPolicy
	byID     map[string]*compiledPolicy
	index    [len(actions)]actionPolicies
	cache    entityCache
	// cached: no policy reads the volatile context, so DecideAs results
	// are remembered in decisions (decisions.go).
	cached    bool
	decisions decisionCache
}

type compiledPolicy struct {
	id cedar.PolicyID
	// eval is the policy with every scope constraint that the index and
	// the filters below decide exactly replaced by "any": Cedar then spends
	// no time on entity-hierarchy walks that the request shape answers.
	eval *cedar.Policy
	info PolicyInfo

	// A zero UID means no constraint.
	agentTenant   types.EntityUID // principal in Tenant::…
	scopeTenant   types.EntityUID // resource in Tenant::…
	scopeResource types.EntityUID // resource in Resource::…
	scopeEq       types.EntityUID // resource == Scope::… (or in)
	// scopeName is set (hasName) when a when-condition requires
	// resource.name == scopeName at its top level.
	scopeName string
	hasName   bool
	// invariant: the policy reads the scope only through attributes that
	// all scopes of one request share, so it is evaluated once per request.
	invariant bool
	permit    bool
	order     int // position in the set
}

// actionPolicies are the policies that can apply to one action: those whose
// principal scope names one agent are kept apart, so a request only
// evaluates its own agent's policies.
type actionPolicies struct {
	general     []*compiledPolicy
	byPrincipal map[types.EntityUID][]*compiledPolicy
}

// PolicyInfo describes one policy of a set.
type PolicyInfo struct {
	ID     string
	Effect string // "permit" or "forbid"
	File   string
	Line   int
	Column int
	// Source is the policy's text as written, annotations included.
	Source string
	// UserReads is what of the person (context.user) the policy's
	// conditions read.
	UserReads UserReads
}

// Compile validates files (see Validate) and compiles them into a Set. The
// set's Version is 0; sets loaded by an Engine carry their store version.
func Compile(files map[string]string) (*Set, error) {
	return compile(files, 0)
}

func compile(files map[string]string, version int64) (*Set, error) {
	parsed, err := parseSet(files)
	if err != nil {
		return nil, err
	}
	s := &Set{
		version: version,
		files:   maps.Clone(files),
		byID:    make(map[string]*compiledPolicy, len(parsed)),
		cached:  true,
	}
	for i := range s.index {
		s.index[i].byPrincipal = map[types.EntityUID][]*compiledPolicy{}
	}
	for _, pp := range parsed {
		pos := pp.policy.Position()
		effect := "permit"
		if pp.policy.Effect() == cedar.Forbid {
			effect = "forbid"
		}
		cp := &compiledPolicy{
			id: cedar.PolicyID(pp.id),
			info: PolicyInfo{
				ID: pp.id, Effect: effect, File: pp.file,
				Line: pos.Line, Column: pos.Column, Source: pp.source,
			},
		}
		orig := (*xast.Policy)(pp.policy.AST())
		cp.info.UserReads = userReads(orig.Conditions)
		if readsVolatileContext(orig.Conditions) {
			s.cached = false
		}
		reduced := *orig
		actionIdx := policyActions(orig.Action)
		reduced.Action = xast.ScopeTypeAll{}
		agent, principalExact := cp.principalFilter(orig.Principal)
		if principalExact {
			reduced.Principal = xast.ScopeTypeAll{}
		}
		resourceExact := cp.resourceFilter(orig.Resource)
		if resourceExact {
			reduced.Resource = xast.ScopeTypeAll{}
		}
		cp.eval = cedar.NewPolicyFromAST((*cedarast.Policy)(&reduced))
		cp.permit = orig.Effect == xast.EffectPermit
		cp.order = len(s.policies)
		cp.scopeName, cp.hasName = requiredScopeName(reduced.Conditions)
		cp.invariant = cp.scopeEq == (types.EntityUID{}) && !cp.hasName &&
			resourceExact && scopeInvariant(reduced.Conditions)

		s.policies = append(s.policies, cp)
		s.byID[pp.id] = cp
		for _, ai := range actionIdx {
			idx := &s.index[ai]
			if agent != (types.EntityUID{}) {
				idx.byPrincipal[agent] = append(idx.byPrincipal[agent], cp)
			} else {
				idx.general = append(idx.general, cp)
			}
		}
	}
	return s, nil
}

// principalFilter reads a policy's principal scope. It returns the agent the
// policy is limited to (zero: none) and whether the index and filter decide
// the scope exactly. An agent's only ancestor is its tenant, which has none.
func (cp *compiledPolicy) principalFilter(scope xast.IsPrincipalScopeNode) (agent types.EntityUID, exact bool) {
	var (
		typ    types.EntityType
		target types.EntityUID
	)
	switch sc := scope.(type) {
	case xast.ScopeTypeAll:
		return agent, true
	case xast.ScopeTypeIs:
		return agent, sc.Type == typeAgent
	case xast.ScopeTypeEq:
		typ, target = typeAgent, sc.Entity
	case xast.ScopeTypeIn:
		typ, target = typeAgent, sc.Entity
	case xast.ScopeTypeIsIn:
		typ, target = sc.Type, sc.Entity
	default:
		return agent, false
	}
	if typ != typeAgent {
		return agent, false
	}
	switch target.Type {
	case typeAgent:
		return target, true
	case typeTenant:
		cp.agentTenant = target
		return agent, true
	}
	return agent, false
}

// resourceFilter reads a policy's resource scope into the filters and
// reports whether they decide it exactly. A scope's ancestors are its
// resource and that resource's tenant.
func (cp *compiledPolicy) resourceFilter(scope xast.IsResourceScopeNode) (exact bool) {
	var (
		typ    types.EntityType
		target types.EntityUID
	)
	switch sc := scope.(type) {
	case xast.ScopeTypeAll:
		return true
	case xast.ScopeTypeIs:
		return sc.Type == typeScope
	case xast.ScopeTypeEq:
		typ, target = typeScope, sc.Entity
	case xast.ScopeTypeIn:
		typ, target = typeScope, sc.Entity
	case xast.ScopeTypeIsIn:
		typ, target = sc.Type, sc.Entity
	default:
		return false
	}
	if typ != typeScope {
		return false
	}
	switch target.Type {
	case typeScope:
		cp.scopeEq = target
	case typeResource:
		cp.scopeResource = target
	case typeTenant:
		cp.scopeTenant = target
	default:
		return false
	}
	return true
}

// sharedScopeAttr reports whether every scope of one request has the same
// value of the Scope attribute: those that come from the request's resource.
func sharedScopeAttr(name types.String) bool { return name == "resource" || name == "tenant" }

// scopeInvariant reports whether conditions read the resource variable only
// as resource.resource or resource.tenant, which are the same for every
// scope of a request.
func scopeInvariant(conds []xast.ConditionType) bool {
	ok := true
	for _, c := range conds {
		xast.Inspect(xast.NewNode(c.Body), func(n xast.IsNode) bool {
			switch n := n.(type) {
			case xast.NodeTypeAccess:
				if v, isVar := n.Arg.(xast.NodeTypeVariable); isVar && v.Name == "resource" && sharedScopeAttr(n.Value) {
					return false
				}
			case xast.NodeTypeVariable:
				if n.Name == "resource" {
					ok = false
				}
			}
			return ok
		})
	}
	return ok
}

// requiredScopeName finds a top-level conjunct `resource.name == "…"` of a
// when-condition: the policy cannot match a scope of any other name.
func requiredScopeName(conds []xast.ConditionType) (string, bool) {
	var find func(n xast.IsNode) (string, bool)
	find = func(n xast.IsNode) (string, bool) {
		switch n := n.(type) {
		case xast.NodeTypeAnd:
			if name, ok := find(n.Left); ok {
				return name, true
			}
			return find(n.Right)
		case xast.NodeTypeEquals:
			if name, ok := scopeNameEquals(n.Left, n.Right); ok {
				return name, true
			}
			return scopeNameEquals(n.Right, n.Left)
		}
		return "", false
	}
	for _, c := range conds {
		if c.Condition != xast.ConditionWhen {
			continue
		}
		if name, ok := find(c.Body); ok {
			return name, true
		}
	}
	return "", false
}

func scopeNameEquals(access, lit xast.IsNode) (string, bool) {
	a, ok := access.(xast.NodeTypeAccess)
	if !ok || a.Value != "name" {
		return "", false
	}
	if v, ok := a.Arg.(xast.NodeTypeVariable); !ok || v.Name != "resource" {
		return "", false
	}
	l, ok := lit.(xast.NodeValue)
	if !ok {
		return "", false
	}
	str, ok := l.Value.(types.String)
	return string(str), ok
}

// policyActions returns the indexes of the actions a policy's action scope
// can match. The schema declares no action groups, so "in" is equality.
func policyActions(scope xast.IsActionScopeNode) []int {
	one := func(uid types.EntityUID) []int {
		if uid.Type != typeAction {
			return nil
		}
		if i, ok := actionIndex(Action(uid.ID)); ok {
			return []int{i}
		}
		return nil
	}
	switch sc := scope.(type) {
	case xast.ScopeTypeEq:
		return one(sc.Entity)
	case xast.ScopeTypeIn:
		return one(sc.Entity)
	case xast.ScopeTypeInSet:
		var out []int
		for _, uid := range sc.Entities {
			out = append(out, one(uid)...)
		}
		return out
	default: // ScopeTypeAll
		out := make([]int, len(actions))
		for i := range out {
			out[i] = i
		}
		return out
	}
}

// Version is the store version of the set; 0 for the built-in default and
// for sets made by Compile.
func (s *Set) Version() int64 { return s.version }

// Files returns a copy of the set's source files.
func (s *Set) Files() map[string]string { return maps.Clone(s.files) }

// Policies describes every policy of the set, in file-name, then source
// order.
func (s *Set) Policies() []PolicyInfo {
	out := make([]PolicyInfo, len(s.policies))
	for i, p := range s.policies {
		out[i] = p.info
	}
	return out
}

// Policy describes the policy with the given id.
func (s *Set) Policy(id string) (PolicyInfo, bool) {
	p, ok := s.byID[id]
	if !ok {
		return PolicyInfo{}, false
	}
	return p.info, true
}

// Decide evaluates req against the set: one Cedar authorization per scope
// (principal: the agent, action: req.Action, resource: the scope), deny by
// default, a matching forbid overriding every permit. An empty req.TenantID
// means store.DefaultTenant; an empty User or Resource TenantID means the
// request's; a zero Context.Time means time.Now().
func (s *Set) Decide(req *Request) (*Result, error) {
	if req == nil {
		return nil, fmt.Errorf("policy: nil request")
	}
	return s.decideAs(req, req.Action, s.cache.build(req))
}

// DecideAs decides req under each of actions in turn, building the
// request's entities once: an issuance asks both register (the agent's
// ceiling on this resource) and grant. Results are in the order of actions.
//
// A set whose policies do not read the time or the login's age remembers
// the results by everything else of the request (decisions.go) and
// answers an equal request from there. The decisions' PolicyIDs and
// Errors may then be shared with other callers: read them, never write
// their elements.
func (s *Set) DecideAs(req *Request, actions ...Action) ([]*Result, error) {
	if req == nil {
		return nil, fmt.Errorf("policy: nil request")
	}
	if !s.cached {
		return s.decideEach(req, actions)
	}
	var buf [512]byte
	key := appendDecisionKey(buf[:0], req, actions)
	if res, ok := s.decisions.get(key); ok {
		return res, nil
	}
	res, err := s.decideEach(req, actions)
	if err == nil {
		s.decisions.put(key, res)
	}
	return res, err
}

// decideEach is DecideAs without the decision cache.
func (s *Set) decideEach(req *Request, actions []Action) ([]*Result, error) {
	ents := s.cache.build(req)
	out := make([]*Result, len(actions))
	for i, a := range actions {
		r, err := s.decideAs(req, a, ents)
		if err != nil {
			return nil, err
		}
		out[i] = r
	}
	return out, nil
}

func (s *Set) decideAs(req *Request, action Action, ents *entities) (*Result, error) {
	ai, ok := actionIndex(action)
	if !ok {
		return nil, fmt.Errorf("policy: unknown action %q", action)
	}
	res := &Result{
		Version:   s.version,
		Decisions: make([]Decision, len(req.Scopes)),
		Granted:   make([]string, 0, len(req.Scopes)),
	}
	if len(req.Scopes) == 0 {
		return res, nil
	}
	// Keep the policies whose scope constraints this request meets (the
	// rest cannot match any of its scopes), split by whether their outcome
	// can differ between the request's scopes.
	idx := &s.index[ai]
	var inv, perScope []*compiledPolicy
	for _, list := range [2][]*compiledPolicy{idx.general, idx.byPrincipal[ents.agent.UID]} {
		for _, p := range list {
			if (p.agentTenant == types.EntityUID{} || p.agentTenant == ents.agentTenant) &&
				(p.scopeTenant == types.EntityUID{} || p.scopeTenant == ents.resourceTenant) &&
				(p.scopeResource == types.EntityUID{} || p.scopeResource == ents.resource.UID) {
				if p.invariant {
					inv = append(inv, p)
				} else {
					perScope = append(perScope, p)
				}
			}
		}
	}
	ev := evaluator{ents: ents, req: cedar.Request{
		Principal: ents.agent.UID,
		Action:    types.NewEntityUID(typeAction, types.String(action)),
		Context:   ents.context,
	}}
	// Scope-invariant policies are evaluated once, against the first scope.
	ev.at(0)
	invOut := ev.run(inv)
	for i, sc := range req.Scopes {
		ev.at(i)
		out := ev.run(perScope)
		// Cedar: deny by default, and any matching forbid overrides every
		// permit. Each outcome holds its matching forbids if there are any,
		// else its matching permits, so the two combine exactly.
		var deciding []*compiledPolicy
		allowed := false
		switch {
		case invOut.forbid || out.forbid:
			if invOut.forbid {
				deciding = append(deciding, invOut.matched...)
			}
			if out.forbid {
				deciding = append(deciding, out.matched...)
			}
		default:
			deciding = append(slices.Clone(invOut.matched), out.matched...)
			allowed = len(deciding) > 0
		}
		d := Decision{Scope: sc.Name, Allowed: allowed}
		slices.SortFunc(deciding, func(a, b *compiledPolicy) int { return a.order - b.order })
		for _, p := range deciding {
			d.PolicyIDs = append(d.PolicyIDs, p.info.ID)
		}
		if n := len(invOut.errors) + len(out.errors); n > 0 {
			d.Errors = append(make([]string, 0, n), invOut.errors...)
			d.Errors = append(d.Errors, out.errors...)
		}
		res.Decisions[i] = d
		if d.Allowed && !containsString(res.Granted, sc.Name) {
			res.Granted = append(res.Granted, sc.Name)
		}
	}
	return res, nil
}

// evaluator runs policies against one scope of a request.
type evaluator struct {
	ents *entities
	req  cedar.Request
	it   policyIter
}

func (ev *evaluator) at(i int) {
	ev.ents.cur = i
	ev.req.Resource = ev.ents.scopes[i].UID
	ev.it.scope = ev.ents.scopes[i].UID
	ev.it.name = ev.ents.names[i]
}

// outcome is what Cedar reports for a list of policies: the matching
// forbids (forbid true) if any matched, else the matching permits.
type outcome struct {
	forbid  bool
	matched []*compiledPolicy
	errors  []string
}

func (ev *evaluator) run(list []*compiledPolicy) outcome {
	if len(list) == 0 {
		return outcome{}
	}
	ev.it.cands = list
	dec, diag := cedar.Authorize(&ev.it, ev.ents, ev.req)
	out := outcome{forbid: dec == cedar.Deny && len(diag.Reasons) > 0}
	if len(diag.Reasons) > 0 {
		out.matched = make([]*compiledPolicy, len(diag.Reasons))
		out.matched = out.matched[:0]
		for _, r := range diag.Reasons {
			if p := ev.it.byID(r.PolicyID); p != nil {
				out.matched = append(out.matched, p)
			}
		}
	}
	for _, e := range diag.Errors {
		out.errors = append(out.errors, fmt.Sprintf("policy %q: %s", e.PolicyID, e.Message))
	}
	return out
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// policyIter yields the candidate policies that can apply to one scope.
type policyIter struct {
	cands []*compiledPolicy
	scope types.EntityUID
	name  string
}

func (it *policyIter) All() iter.Seq2[cedar.PolicyID, *cedar.Policy] {
	return func(yield func(cedar.PolicyID, *cedar.Policy) bool) {
		for _, p := range it.cands {
			if p.scopeEq != (types.EntityUID{}) && p.scopeEq != it.scope {
				continue
			}
			if p.hasName && p.scopeName != it.name {
				continue
			}
			if !yield(p.id, p.eval) {
				return
			}
		}
	}
}

func (it *policyIter) byID(id cedar.PolicyID) *compiledPolicy {
	for _, p := range it.cands {
		if p.id == id {
			return p
		}
	}
	return nil // Cedar reports only policies it was given
}
