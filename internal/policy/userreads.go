package policy

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/cedar-policy/cedar-go/types"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"
)

// UserReads is what of the person a policy reads: their roles, their
// groups, and which attributes (the User entity's tags). It is found in
// the policy's conditions when the set is compiled, so that an explanation
// can show the facts about the user that decided a scope.
type UserReads struct {
	Roles  bool `json:"roles,omitempty"`
	Groups bool `json:"groups,omitempty"`
	// Attributes are the tag keys read by literal name, sorted.
	Attributes []string `json:"attributes,omitempty"`
	// AnyAttribute: a tag is read by a computed key, so any attribute
	// may have mattered.
	AnyAttribute bool `json:"any_attribute,omitempty"`
}

// Empty reports whether nothing of the user is read.
func (r UserReads) Empty() bool {
	return !r.Roles && !r.Groups && len(r.Attributes) == 0 && !r.AnyAttribute
}

// union returns what r or o reads.
func (r UserReads) union(o UserReads) UserReads {
	out := UserReads{Roles: r.Roles || o.Roles, Groups: r.Groups || o.Groups, AnyAttribute: r.AnyAttribute || o.AnyAttribute}
	out.Attributes = slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(r.Attributes), o.Attributes...))))
	if len(out.Attributes) == 0 {
		out.Attributes = nil
	}
	return out
}

// userReads finds what conds read of context.user: the roles and groups
// attributes and the tags (hasTag, getTag). The user is only reachable as
// context.user, so that is the expression looked for.
func userReads(conds []xast.ConditionType) UserReads {
	var r UserReads
	keys := map[string]bool{}
	for _, c := range conds {
		xast.Inspect(xast.NewNode(c.Body), func(n xast.IsNode) bool {
			switch n := n.(type) {
			case xast.NodeTypeAccess:
				r.attrRead(n.StrOpNode)
			case xast.NodeTypeHas:
				r.attrRead(n.StrOpNode)
			case xast.NodeTypeGetTag:
				tagRead(n.Left, n.Right, keys, &r)
			case xast.NodeTypeHasTag:
				tagRead(n.Left, n.Right, keys, &r)
			}
			return true
		})
	}
	if len(keys) > 0 {
		r.Attributes = slices.Sorted(maps.Keys(keys))
	}
	return r
}

// attrRead notes context.user.roles or .groups (read, or tested with has).
func (r *UserReads) attrRead(n xast.StrOpNode) {
	if !isContextUser(n.Arg) {
		return
	}
	switch n.Value {
	case "roles":
		r.Roles = true
	case "groups":
		r.Groups = true
	}
}

func tagRead(entity, key xast.IsNode, keys map[string]bool, r *UserReads) {
	if !isContextUser(entity) {
		return
	}
	if v, ok := key.(xast.NodeValue); ok {
		if s, ok := v.Value.(types.String); ok {
			keys[string(s)] = true
			return
		}
	}
	r.AnyAttribute = true
}

// isContextUser reports whether n is the expression context.user.
func isContextUser(n xast.IsNode) bool {
	a, ok := n.(xast.NodeTypeAccess)
	if !ok || a.Value != "user" {
		return false
	}
	v, ok := a.Arg.(xast.NodeTypeVariable)
	return ok && v.Name == "context"
}

// userFacts renders what reads names of u, with u's values: the facts
// about the person a decision rested on. Attributes the user lacks show
// as "(not set)", which is a fact too (a hasTag that failed).
func userFacts(u *User, reads UserReads) []string {
	var out []string
	if reads.Roles {
		out = append(out, "roles "+listText(u.Roles))
	}
	if reads.Groups {
		out = append(out, "groups "+listText(u.Groups))
	}
	keys := reads.Attributes
	if reads.AnyAttribute {
		keys = slices.Sorted(maps.Keys(u.Attributes))
		keys = slices.Compact(slices.Sorted(slices.Values(append(keys, reads.Attributes...))))
	}
	for _, k := range keys {
		if v, ok := u.Attributes[k]; ok {
			out = append(out, fmt.Sprintf("attribute %s=%q", k, v))
		} else {
			out = append(out, fmt.Sprintf("attribute %s (not set)", k))
		}
	}
	return out
}

// listText shows a list of names, each quoted only when it needs to be.
func listText(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		if s == "" || strings.ContainsAny(s, " \t\"[]") {
			q[i] = fmt.Sprintf("%q", s)
		} else {
			q[i] = s
		}
	}
	return "[" + strings.Join(q, " ") + "]"
}
