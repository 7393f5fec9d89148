package scim

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/elimity-com/scim/schema"
	"github.com/scim2/filter-parser/v2"
)

// valueFilters rewrites a list request's filter before the library reads
// it, so that a comparison on a multi-valued complex attribute means what
// RFC 7644 §3.4.2.2 and the identity providers mean, where the library
// matches nothing or gives up:
//
//   - "members eq "2819c223…"" — a complex attribute compared as a whole
//     compares its value sub-attribute; Microsoft Entra ID checks a
//     membership with "id eq "g" and members eq "u"";
//   - "emails.value co "@example.com"" — a sub-attribute of a
//     multi-valued attribute matches when any value's does.
//
// Both become the value path form the library evaluates
// (members[value eq "…"]). A filter that does not parse, or holds neither
// form, is passed on untouched.
func valueFilters(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var s schema.Schema
		switch strings.TrimPrefix(r.URL.Path, "/v2") {
		case "/Users":
			s = userSchema
		case "/Groups":
			s = groupSchema
		default:
			next.ServeHTTP(w, r)
			return
		}
		q := r.URL.Query()
		raw := strings.TrimSpace(q.Get("filter"))
		if r.Method != http.MethodGet || raw == "" {
			next.ServeHTTP(w, r)
			return
		}
		expr, err := filter.ParseFilter([]byte(raw))
		if err != nil {
			next.ServeHTTP(w, r)
			return
		}
		out, changed := rewriteFilter(expr, s)
		if changed {
			q.Set("filter", formatFilter(out))
			r2 := r.Clone(r.Context())
			r2.URL.RawQuery = q.Encode()
			r = r2
		}
		next.ServeHTTP(w, r)
	})
}

// rewriteFilter returns e with the comparisons valueFilters names made
// value paths.
func rewriteFilter(e filter.Expression, s schema.Schema) (filter.Expression, bool) {
	switch e := e.(type) {
	case *filter.LogicalExpression:
		l, lc := rewriteFilter(e.Left, s)
		r, rc := rewriteFilter(e.Right, s)
		return &filter.LogicalExpression{Left: l, Right: r, Operator: e.Operator}, lc || rc
	case *filter.NotExpression:
		x, c := rewriteFilter(e.Expression, s)
		return &filter.NotExpression{Expression: x}, c
	case *filter.AttributeExpression:
		p := e.AttributePath
		if uri := p.URI(); uri != "" && !strings.EqualFold(uri, s.ID) {
			return e, false
		}
		attr, ok := attribute(s, p.AttributeName)
		if !ok || !attr.MultiValued() || !attr.HasSubAttributes() {
			return e, false
		}
		sub := p.SubAttributeName()
		if sub == "" {
			if _, ok := subAttribute(attr, "value"); !ok {
				return e, false
			}
			sub = "value"
		}
		return &filter.ValuePath{
			AttributePath: filter.AttributePath{URIPrefix: p.URIPrefix, AttributeName: p.AttributeName},
			ValueFilter:   &filter.AttributeExpression{AttributePath: filter.AttributePath{AttributeName: sub}, Operator: e.Operator, CompareValue: e.CompareValue},
		}, true
	}
	return e, false
}

// formatFilter writes e back as filter text: every operand of and, or and
// not in parentheses, strings as they were written (RFC 7644 §3.4.2.2's
// grammar). Inside a value path the grammar has no grouping: and binds
// tighter than or there, as the parser read it.
func formatFilter(e filter.Expression) string { return format(e, false) }

func format(e filter.Expression, inValuePath bool) string {
	switch e := e.(type) {
	case *filter.LogicalExpression:
		if inValuePath {
			return format(e.Left, true) + " " + string(e.Operator) + " " + format(e.Right, true)
		}
		return "(" + format(e.Left, false) + ") " + string(e.Operator) + " (" + format(e.Right, false) + ")"
	case *filter.NotExpression:
		return "not (" + format(e.Expression, inValuePath) + ")"
	case *filter.ValuePath:
		return e.AttributePath.String() + "[" + format(e.ValueFilter, true) + "]"
	case *filter.AttributeExpression:
		s := e.AttributePath.String() + " " + string(e.Operator)
		switch v := e.CompareValue.(type) {
		case nil:
			if e.Operator != filter.PR {
				s += " null"
			}
		case string:
			// The parser keeps a string as written between its quotes,
			// escapes and all; so it is written back.
			s += ` "` + v + `"`
		default:
			s += " " + fmt.Sprint(v)
		}
		return s
	}
	return fmt.Sprint(e)
}
