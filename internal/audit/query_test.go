package audit_test

import (
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/store"
)

func TestQueryFilter(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		q    audit.Query
		want store.AuditFilter
	}{
		{"empty", audit.Query{}, store.AuditFilter{Limit: 50}},
		{"every field", audit.Query{Tenant: "t1", Client: "agent", Agent: "a", User: "u", Type: "token.issued", Resource: "https://r/", Provider: "calendar",
			Outcome: "denied", Since: "2026-12-01T00:00:00Z", Until: "2026-12-02T00:00:00+01:00", Before: "90", After: "10", Limit: "7"},
			store.AuditFilter{TenantID: "t1", ClientID: "agent", Agent: "a", UserID: "u", Type: "token.issued", Resource: "https://r/", Provider: "calendar",
				Outcome: "denied", Since: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), Until: time.Date(2026, 12, 1, 23, 0, 0, 0, time.UTC),
				Before: 90, After: 10, Limit: 7}},
		{"type prefix", audit.Query{Type: "connection.*"}, store.AuditFilter{TypePrefix: "connection.", Limit: 50}},
		{"every type", audit.Query{Type: "*"}, store.AuditFilter{Limit: 50}},
		{"relative since", audit.Query{Since: "90m"}, store.AuditFilter{Since: now.Add(-90 * time.Minute), Limit: 50}},
		{"largest limit", audit.Query{Limit: "1000"}, store.AuditFilter{Limit: 1000}},
		{"oldest first", audit.Query{After: "5", Order: "asc"}, store.AuditFilter{After: 5, Ascending: true, Limit: 50}},
		{"newest first", audit.Query{Order: "desc"}, store.AuditFilter{Limit: 50}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.q.Filter(now, 50)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Filter =\n %+v, want\n %+v", got, tc.want)
			}
		})
	}
}

func TestQueryFilterRefuses(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	long := string(make([]byte, 3000))
	tests := []struct {
		name   string
		q      audit.Query
		params []string
	}{
		{"outcome", audit.Query{Outcome: "ok"}, []string{"outcome"}},
		{"since", audit.Query{Since: "yesterday"}, []string{"since"}},
		{"negative duration", audit.Query{Since: "-1h"}, []string{"since"}},
		{"until before since", audit.Query{Since: "1h", Until: "2h"}, []string{"until"}},
		{"before", audit.Query{Before: "abc"}, []string{"before"}},
		{"after zero", audit.Query{After: "0"}, []string{"after"}},
		{"limit zero", audit.Query{Limit: "0"}, []string{"limit"}},
		{"limit too large", audit.Query{Limit: "1001"}, []string{"limit"}},
		{"order", audit.Query{Order: "up"}, []string{"order"}},
		{"inner wildcard", audit.Query{Type: "token.*.x"}, []string{"type"}},
		{"two wildcards", audit.Query{Type: "to*ken*"}, []string{"type"}},
		{"control character", audit.Query{User: "u\n1"}, []string{"user"}},
		{"too long", audit.Query{Resource: long}, []string{"resource"}},
		{"all at once", audit.Query{Outcome: "x", Limit: "x", Before: "-3"}, []string{"outcome", "before", "limit"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.q.Filter(now, 50)
			var qe *audit.QueryError
			if !errors.As(err, &qe) || !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("Filter = %v, want a QueryError matching ErrInvalid", err)
			}
			var params []string
			for _, p := range qe.Problems {
				params = append(params, p.Param)
			}
			if !slices.Equal(params, tc.params) {
				t.Errorf("problems with %v, want %v", params, tc.params)
			}
		})
	}
}

// FuzzQueryFilter: any query either fails with a QueryError or gives a
// filter the store accepts, with a limit in bounds.
func FuzzQueryFilter(f *testing.F) {
	f.Add("token.*", "success", "24h", "2026-12-01T00:00:00Z", "10", "5", "100", "u")
	f.Add("*", "", "", "", "", "", "", "")
	f.Add("a*b", "denied", "1ns", "bad", "-1", "9223372036854775807", "1000", "\x00")
	f.Fuzz(func(t *testing.T, typ, outcome, since, until, before, after, limit, user string) {
		now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
		q := audit.Query{Type: typ, Outcome: outcome, Since: since, Until: until, Before: before, After: after, Limit: limit, User: user}
		fl, err := q.Filter(now, 100)
		if err != nil {
			var qe *audit.QueryError
			if !errors.As(err, &qe) || len(qe.Problems) == 0 {
				t.Fatalf("Filter error %v is not a QueryError with problems", err)
			}
			return
		}
		if err := fl.Check(); err != nil {
			t.Fatalf("Filter gave a filter the store refuses: %v", err)
		}
		if fl.Limit < 1 || fl.Limit > audit.MaxQueryLimit {
			t.Fatalf("limit %d out of bounds", fl.Limit)
		}
	})
}
