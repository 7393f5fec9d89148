package audit

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// Query is an audit query as an administrator types it: the flags of
// `agentid audit list` and the parameters of GET /admin/api/audit, as
// strings. Filter turns it into a store.AuditFilter.
type Query struct {
	Tenant string
	Client string // the client id
	// Agent is an agent's client id: its own events and those an MCP
	// server recorded for it (store.AuditFilter.Agent).
	Agent    string
	User     string
	Type     string // an event type, or a prefix ending in "*" ("token.*")
	Resource string
	Provider string
	Outcome  string
	// Since and Until are RFC 3339 times or durations before now ("24h").
	Since, Until string
	// Before and After are event ids (the cursors).
	Before, After string
	Limit         string
	// Order is "desc" (newest first, the default) or "asc" (oldest
	// first: for reading the trail forward from a cursor).
	Order string
}

// MaxQueryLimit bounds a query's page.
const MaxQueryLimit = 1000

// maxQueryText bounds every text parameter.
const maxQueryText = 2048

// QueryProblem is one bad parameter of a Query.
type QueryProblem struct {
	Param  string `json:"name"`
	Reason string `json:"reason"`
}

// QueryError reports every bad parameter of a Query at once.
type QueryError struct{ Problems []QueryProblem }

func (e *QueryError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Param + ": " + p.Reason
	}
	return "audit query: " + strings.Join(parts, "; ")
}

// Is makes a QueryError match store.ErrInvalid.
func (e *QueryError) Is(target error) bool { return target == store.ErrInvalid }

// Filter parses q, with relative times counted back from now. The limit
// defaults to defaultLimit and is at most MaxQueryLimit. Every problem is
// reported in one *QueryError.
func (q Query) Filter(now time.Time, defaultLimit int) (store.AuditFilter, error) {
	var f store.AuditFilter
	var ps []QueryProblem
	bad := func(param, format string, args ...any) {
		ps = append(ps, QueryProblem{param, fmt.Sprintf(format, args...)})
	}
	text := func(param, v string) string {
		if len(v) > maxQueryText {
			bad(param, "longer than %d bytes", maxQueryText)
			return ""
		}
		if strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			bad(param, "contains a control character")
			return ""
		}
		return v
	}
	f.TenantID = text("tenant", q.Tenant)
	f.ClientID = text("client", q.Client)
	f.Agent = text("agent", q.Agent)
	f.UserID = text("user", q.User)
	f.Resource = text("resource", q.Resource)
	f.Provider = text("provider", q.Provider)
	if typ := text("type", q.Type); strings.HasSuffix(typ, "*") {
		f.TypePrefix = strings.TrimSuffix(typ, "*")
		if strings.Contains(f.TypePrefix, "*") {
			bad("type", "only a trailing * is a wildcard")
		}
	} else if strings.Contains(typ, "*") {
		bad("type", "only a trailing * is a wildcard")
	} else {
		f.Type = typ
	}
	switch q.Outcome {
	case "", Success, Failure, Denied:
		f.Outcome = q.Outcome
	default:
		bad("outcome", "must be success, failure or denied")
	}
	f.Since = queryTime(q.Since, now, func(r string) { bad("since", "%s", r) })
	f.Until = queryTime(q.Until, now, func(r string) { bad("until", "%s", r) })
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		bad("until", "must be after since")
	}
	f.Before = queryID(q.Before, func(r string) { bad("before", "%s", r) })
	f.After = queryID(q.After, func(r string) { bad("after", "%s", r) })
	switch q.Order {
	case "", "desc":
	case "asc":
		f.Ascending = true
	default:
		bad("order", "must be asc or desc")
	}
	f.Limit = defaultLimit
	if q.Limit != "" {
		n, err := strconv.Atoi(q.Limit)
		if err != nil || n < 1 || n > MaxQueryLimit {
			bad("limit", "must be a number from 1 to %d", MaxQueryLimit)
		} else {
			f.Limit = n
		}
	}
	if len(ps) > 0 {
		return store.AuditFilter{}, &QueryError{ps}
	}
	return f, nil
}

// queryTime parses an RFC 3339 time or a duration before now.
func queryTime(v string, now time.Time, bad func(string)) time.Time {
	if v == "" {
		return time.Time{}
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.UTC()
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return now.Add(-d).UTC()
	}
	bad("must be an RFC 3339 time (2026-12-01T09:00:00Z) or a positive duration before now (24h)")
	return time.Time{}
}

func queryID(v string, bad func(string)) int64 {
	if v == "" {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		bad("must be an event id (a positive integer)")
		return 0
	}
	return n
}
