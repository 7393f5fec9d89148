package policy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// Explanation tells why a request was decided as it was: the decision per
// scope and the determining policies with their source.
type Explanation struct {
	Request *Request
	Result  *Result
	Scopes  []ScopeExplanation
}

// ScopeExplanation explains the decision on one scope.
type ScopeExplanation struct {
	Decision
	// Reason is a one-line summary: "permitted by …", "forbidden by …" or
	// "no policy permits it (default deny)".
	Reason string
	// Policies are the determining policies, in the order of
	// Decision.PolicyIDs.
	Policies []PolicyInfo
	// UserReads is what of the person the determining policies read: the
	// roles, groups and attributes that decided the scope (for a default
	// deny, what the set's permits read: what could have made one match).
	// String shows them with the user's values.
	UserReads UserReads
	// AboveCeiling: an issuance never asks policy about this scope, since
	// the agent's ceiling (store.Client.Scopes) excludes it. Set only by
	// Engine.ExplainQuery, for every action but register.
	AboveCeiling bool `json:"above_ceiling,omitempty"`
}

// Explain decides req against s and explains each decision. It backs
// `agentid policy explain`; its String form is what that command prints.
func Explain(s *Set, req *Request) (*Explanation, error) {
	res, err := s.Decide(req)
	if err != nil {
		return nil, err
	}
	x := &Explanation{Request: req, Result: res, Scopes: make([]ScopeExplanation, len(res.Decisions))}
	for i, d := range res.Decisions {
		se := ScopeExplanation{Decision: d}
		for _, id := range d.PolicyIDs {
			if info, ok := s.Policy(id); ok {
				se.Policies = append(se.Policies, info)
				se.UserReads = se.UserReads.union(info.UserReads)
			}
		}
		switch {
		case d.Allowed:
			se.Reason = "permitted by " + quoteIDs(d.PolicyIDs)
		case len(d.PolicyIDs) > 0:
			se.Reason = "forbidden by " + quoteIDs(d.PolicyIDs)
		default:
			se.Reason = "no policy permits it (default deny)"
			// No policy determined it: what every permit reads of the
			// person is what could have made one match.
			for _, p := range s.policies {
				if p.permit {
					se.UserReads = se.UserReads.union(p.info.UserReads)
				}
			}
		}
		x.Scopes[i] = se
	}
	return x, nil
}

func quoteIDs(ids []string) string {
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = fmt.Sprintf("%q", id)
	}
	return strings.Join(q, ", ")
}

// String renders the explanation for people:
//
//	policy set: version 3
//	request: grant by agent "a1" (dcr) for user "u1" on https://mcp.example.com/mcp, grant_type authorization_code
//
//	files:read  ALLOW  permitted by "user-consent"
//	  decided on user "u1": groups [eng-oncall], attribute employment="staff"
//	  permit "user-consent" at default.cedar:31:1
//	    @id("user-consent")
//	    permit (…)
func (x *Explanation) String() string {
	var b strings.Builder
	if x.Result.Version == 0 {
		b.WriteString("policy set: built-in default (version 0)\n")
	} else {
		fmt.Fprintf(&b, "policy set: version %d\n", x.Result.Version)
	}
	r := x.Request
	fmt.Fprintf(&b, "request: %s by agent %q", r.Action, r.Agent.ID)
	if r.Agent.RegistrationMethod != "" {
		fmt.Fprintf(&b, " (%s)", r.Agent.RegistrationMethod)
	}
	if len(r.Agent.Tags) > 0 {
		fmt.Fprintf(&b, " tags [%s]", strings.Join(r.Agent.Tags, " "))
	}
	if r.User != nil {
		fmt.Fprintf(&b, " for user %q", r.User.ID)
	} else {
		b.WriteString(" without a user")
	}
	fmt.Fprintf(&b, " on %s", r.Resource.URI)
	if r.Context.GrantType != "" {
		fmt.Fprintf(&b, ", grant_type %s", r.Context.GrantType)
	}
	b.WriteString("\n")
	for _, s := range x.Scopes {
		verdict := "DENY"
		if s.Allowed {
			verdict = "ALLOW"
		}
		fmt.Fprintf(&b, "\n%s  %s  %s\n", s.Scope, verdict, s.Reason)
		if r.User != nil && !s.UserReads.Empty() {
			what := "decided on"
			if len(s.PolicyIDs) == 0 {
				what = "no permit matched; the permits read"
			}
			fmt.Fprintf(&b, "  %s user %q: %s\n", what, r.User.ID, strings.Join(userFacts(r.User, s.UserReads), ", "))
		}
		if s.AboveCeiling {
			b.WriteString("  note: above the agent's ceiling (the scopes its registration was allowed); an issuance drops it before policy is asked\n")
		}
		for _, p := range s.Policies {
			fmt.Fprintf(&b, "  %s %q at %s:%d:%d\n", p.Effect, p.ID, p.File, p.Line, p.Column)
			for _, line := range strings.Split(p.Source, "\n") {
				fmt.Fprintf(&b, "    %s\n", line)
			}
		}
		for _, e := range s.Errors {
			fmt.Fprintf(&b, "  evaluation error (policy skipped): %s\n", e)
		}
	}
	return b.String()
}

// Query names a request by the ids of what it involves, as an admin asks
// `agentid policy explain --agent A --user U --resource R --scope S`.
type Query struct {
	// Action defaults to ActionForGrantType(GrantType).
	Action  Action
	AgentID string
	// User is a user id or username; "" asks without a user.
	User string
	// Resource is the resource's canonical URI.
	Resource string
	// Scopes are the requested scope names; empty means every scope of
	// the resource.
	Scopes []string
	// GrantType defaults to authorization_code with a user and
	// client_credentials without one; it is "" for the register action.
	GrantType string
	IP        string
	// Time defaults to the engine's clock.
	Time time.Time
}

// ExplainQuery loads the agent, user and resource of q from the store as
// they are now and explains how the active policy set decides the request.
// Unknown agents, users and resources are store.ErrNotFound; a scope the
// resource does not offer is an error, as it is at the token endpoint.
func (e *Engine) ExplainQuery(ctx context.Context, q Query) (*Explanation, error) {
	if e.st == nil {
		return nil, errNoStore
	}
	c, err := e.st.GetClient(ctx, e.tenant, q.AgentID)
	if err != nil {
		return nil, fmt.Errorf("policy: agent %q: %w", q.AgentID, err)
	}
	r, err := e.st.GetResource(ctx, e.tenant, q.Resource)
	if err != nil {
		return nil, fmt.Errorf("policy: resource %q: %w", q.Resource, err)
	}
	var user *User
	if q.User != "" {
		u, err := e.st.GetUser(ctx, e.tenant, q.User)
		if errors.Is(err, store.ErrNotFound) {
			u, err = e.st.GetUserByUsername(ctx, e.tenant, q.User)
		}
		if err != nil {
			return nil, fmt.Errorf("policy: user %q: %w", q.User, err)
		}
		user = UserFromStore(u)
	}
	names := uniq(q.Scopes)
	if len(names) == 0 {
		for _, sc := range r.Scopes {
			names = append(names, sc.Name)
		}
	}
	for _, n := range names {
		if !slices.ContainsFunc(r.Scopes, func(sc store.Scope) bool { return sc.Name == n }) {
			return nil, fmt.Errorf("policy: scope %q is not offered by %s", n, r.URI)
		}
	}
	gt, action := q.GrantType, q.Action
	if gt == "" && action != ActionRegister {
		gt = "authorization_code"
		if user == nil {
			gt = "client_credentials"
		}
	}
	if action == "" {
		action = ActionForGrantType(gt)
	}
	if _, ok := actionIndex(action); !ok {
		return nil, fmt.Errorf("policy: unknown action %q", action)
	}
	t := q.Time
	if t.IsZero() {
		t = e.now()
	}
	req := &Request{
		Action: action, TenantID: e.tenant, Agent: e.AgentFromClient(ctx, c), User: user,
		Resource: ResourceFromStore(r), Scopes: ScopesOf(r, names),
		Context: Context{GrantType: gt, IP: q.IP, Time: t, Resource: r.URI},
	}
	if action == ActionRegister {
		req.Context.GrantType = ""
	}
	x, err := Explain(e.Active(ctx), req)
	if err != nil {
		return nil, err
	}
	if action != ActionRegister {
		for i := range x.Scopes {
			x.Scopes[i].AboveCeiling = !WithinCeiling(c, x.Scopes[i].Scope)
		}
	}
	return x, nil
}
