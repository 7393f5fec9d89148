package policy

import (
	_ "embed"
	"fmt"
	"iter"
	"maps"
	"net/netip"
	"strings"
	"time"

	cedar "github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"

	"github.com/agentid/agentid/internal/store"
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
)

var actions = [...]Action{ActionRegister, ActionGrant, ActionExchange, ActionConnect}

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
}

type compiledPolicy struct {
	id     cedar.PolicyID
	policy *cedar.Policy
	info   PolicyInfo
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
			id:     cedar.PolicyID(pp.id),
			policy: pp.policy,
			info: PolicyInfo{
				ID: pp.id, Effect: effect, File: pp.file,
				Line: pos.Line, Column: pos.Column, Source: pp.source,
			},
		}
		s.policies = append(s.policies, cp)
		s.byID[pp.id] = cp
		ast := pp.policy.AST()
		for _, ai := range policyActions(ast.Action) {
			idx := &s.index[ai]
			if eq, ok := ast.Principal.(xast.ScopeTypeEq); ok {
				idx.byPrincipal[eq.Entity] = append(idx.byPrincipal[eq.Entity], cp)
			} else {
				idx.general = append(idx.general, cp)
			}
		}
	}
	return s, nil
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
	ai, ok := actionIndex(req.Action)
	if !ok {
		return nil, fmt.Errorf("policy: unknown action %q", req.Action)
	}
	ents := buildEntities(req)
	idx := &s.index[ai]
	it := policyIter{general: idx.general, own: idx.byPrincipal[ents.agent.UID]}
	actionUID := types.NewEntityUID(typeAction, types.String(req.Action))

	res := &Result{
		Version:   s.version,
		Decisions: make([]Decision, len(req.Scopes)),
		Granted:   make([]string, 0, len(req.Scopes)),
	}
	for i, sc := range req.Scopes {
		dec, diag := cedar.Authorize(it, ents, cedar.Request{
			Principal: ents.agent.UID,
			Action:    actionUID,
			Resource:  ents.scopes[i].UID,
			Context:   ents.context,
		})
		d := Decision{Scope: sc.Name, Allowed: dec == cedar.Allow}
		for _, r := range diag.Reasons {
			d.PolicyIDs = append(d.PolicyIDs, string(r.PolicyID))
		}
		for _, e := range diag.Errors {
			d.Errors = append(d.Errors, fmt.Sprintf("policy %q: %s", e.PolicyID, e.Message))
		}
		res.Decisions[i] = d
		if d.Allowed && !containsString(res.Granted, sc.Name) {
			res.Granted = append(res.Granted, sc.Name)
		}
	}
	return res, nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// policyIter yields the policies that can apply to one request.
type policyIter struct {
	general, own []*compiledPolicy
}

func (it policyIter) All() iter.Seq2[cedar.PolicyID, *cedar.Policy] {
	return func(yield func(cedar.PolicyID, *cedar.Policy) bool) {
		for _, p := range it.general {
			if !yield(p.id, p.policy) {
				return
			}
		}
		for _, p := range it.own {
			if !yield(p.id, p.policy) {
				return
			}
		}
	}
}

// entities holds the Cedar entities of one request. A request has a handful,
// so a linear search beats building a map.
type entities struct {
	agent    types.Entity
	user     types.Entity
	hasUser  bool
	resource types.Entity
	service  types.Entity
	hasSvc   bool
	scopes   []types.Entity
	context  types.Record
}

func (e *entities) Get(uid types.EntityUID) (types.Entity, bool) {
	switch uid.Type {
	case typeAgent:
		if uid == e.agent.UID {
			return e.agent, true
		}
	case typeUser:
		if e.hasUser && uid == e.user.UID {
			return e.user, true
		}
	case typeResource:
		if uid == e.resource.UID {
			return e.resource, true
		}
	case typeService:
		if e.hasSvc && uid == e.service.UID {
			return e.service, true
		}
	case typeScope:
		for _, s := range e.scopes {
			if uid == s.UID {
				return s, true
			}
		}
	case typeTenant:
		// Tenants have neither attributes nor parents.
		return types.Entity{UID: uid}, true
	}
	return types.Entity{}, false
}

func stringSet(list []string) types.Set {
	vals := make([]types.Value, len(list))
	for i, s := range list {
		vals[i] = types.String(s)
	}
	return types.NewSet(vals...)
}

func ipValue(s string) (types.IPAddr, bool) {
	if s == "" {
		return types.IPAddr{}, false
	}
	if _, err := netip.ParseAddr(s); err != nil {
		return types.IPAddr{}, false
	}
	ip, err := types.ParseIPAddr(s)
	if err != nil {
		return types.IPAddr{}, false
	}
	return ip, true
}

func tenantUID(id string) types.EntityUID {
	return types.NewEntityUID(typeTenant, types.String(id))
}

func buildEntities(req *Request) *entities {
	tenant := req.TenantID
	if tenant == "" {
		tenant = store.DefaultTenant
	}
	tUID := tenantUID(tenant)
	e := &entities{}

	a := req.Agent
	var cc []string
	for _, t := range a.Tags {
		if name, ok := strings.CutPrefix(t, ccTagPrefix); ok && name != "" {
			cc = append(cc, name)
		}
	}
	agentAttrs := types.RecordMap{
		"tenant":              tUID,
		"registration_method": types.String(a.RegistrationMethod),
		"client_type":         types.String(a.ClientType),
		"software_id":         types.String(a.SoftwareID),
		"verified_domain":     types.String(a.VerifiedDomain),
		"owner":               types.String(a.OwnerUserID),
		"tags":                stringSet(a.Tags),
		"cc_scopes":           stringSet(cc),
	}
	if ip, ok := ipValue(a.CreatedIP); ok {
		agentAttrs["created_ip"] = ip
	}
	e.agent = types.Entity{
		UID:        types.NewEntityUID(typeAgent, types.String(a.ID)),
		Parents:    types.NewEntityUIDSet(tUID),
		Attributes: types.NewRecord(agentAttrs),
	}

	ctx := types.RecordMap{
		"tenant":      tUID,
		"grant_type":  types.String(req.Context.GrantType),
		"auth_method": types.String(req.Context.AuthMethod),
		"time":        types.NewDatetime(orNow(req.Context.Time)),
		"chain_depth": types.Long(req.Context.ChainDepth),
		"resource":    types.String(req.Context.Resource),
	}
	if ip, ok := ipValue(req.Context.IP); ok {
		ctx["ip"] = ip
	}
	if u := req.User; u != nil {
		ut := u.TenantID
		if ut == "" {
			ut = tenant
		}
		tags := make(types.RecordMap, len(u.Claims))
		for k, v := range u.Claims {
			tags[types.String(k)] = types.String(v)
		}
		e.user = types.Entity{
			UID:     types.NewEntityUID(typeUser, types.String(u.ID)),
			Parents: types.NewEntityUIDSet(tenantUID(ut)),
			Attributes: types.NewRecord(types.RecordMap{
				"tenant": tenantUID(ut),
				"roles":  stringSet(u.Roles),
				"groups": stringSet(u.Groups),
			}),
			Tags: types.NewRecord(tags),
		}
		e.hasUser = true
		ctx["user"] = e.user.UID
		ctx["auth_age_seconds"] = types.Long(req.Context.AuthAge / time.Second)
	}
	if sv := req.Service; sv != nil {
		st := sv.TenantID
		if st == "" {
			st = tenant
		}
		e.service = types.Entity{
			UID:     types.NewEntityUID(typeService, types.String(sv.Name)),
			Parents: types.NewEntityUIDSet(tenantUID(st)),
			Attributes: types.NewRecord(types.RecordMap{
				"tenant": tenantUID(st),
				"name":   types.String(sv.Name),
			}),
		}
		e.hasSvc = true
		ctx["service"] = e.service.UID
	}
	e.context = types.NewRecord(ctx)

	r := req.Resource
	rt := r.TenantID
	if rt == "" {
		rt = tenant
	}
	rtUID := tenantUID(rt)
	e.resource = types.Entity{
		UID:     types.NewEntityUID(typeResource, types.String(r.URI)),
		Parents: types.NewEntityUIDSet(rtUID),
		Attributes: types.NewRecord(types.RecordMap{
			"tenant": rtUID,
			"uri":    types.String(r.URI),
			"name":   types.String(r.Name),
			"tags":   stringSet(r.Tags),
		}),
	}
	parents := types.NewEntityUIDSet(e.resource.UID)
	e.scopes = make([]types.Entity, len(req.Scopes))
	for i, sc := range req.Scopes {
		e.scopes[i] = types.Entity{
			UID:     types.NewEntityUID(typeScope, types.String(ScopeEntityID(r.URI, sc.Name))),
			Parents: parents,
			Attributes: types.NewRecord(types.RecordMap{
				"tenant":    rtUID,
				"name":      types.String(sc.Name),
				"sensitive": types.Boolean(sc.Sensitive),
				"resource":  e.resource.UID,
			}),
		}
	}
	return e
}

func orNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}
