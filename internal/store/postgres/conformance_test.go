package postgres

import (
	"testing"

	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/pgtest"
	"github.com/agentid/agentid/internal/store/storetest"
)

// TestConformance runs the store conformance suite, each subtest in its own
// freshly migrated schema.
func TestConformance(t *testing.T) {
	pgtest.DSN(t)
	storetest.Run(t, func(t *testing.T) store.Store { return newStore(t) })
}

// BenchmarkIssueTokens measures concurrent client_credentials issuances
// (one access-token record and one audit event each) through a pool of 16
// connections, as one replica would. Run with:
//
//	AGENTID_TEST_POSTGRES=$(scripts/postgres.sh) go test -bench IssueTokens -run '^$' ./internal/store/postgres
func BenchmarkIssueTokens(b *testing.B) {
	s, err := Open(b.Context(), pgtest.FreshSchema(b), Options{MaxConns: 16})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	if _, _, err := s.Migrate(b.Context()); err != nil {
		b.Fatal(err)
	}
	storetest.Bench(b, s)
}
