package policy

import (
	"fmt"
	"strings"
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
			}
		}
		switch {
		case d.Allowed:
			se.Reason = "permitted by " + quoteIDs(d.PolicyIDs)
		case len(d.PolicyIDs) > 0:
			se.Reason = "forbidden by " + quoteIDs(d.PolicyIDs)
		default:
			se.Reason = "no policy permits it (default deny)"
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
