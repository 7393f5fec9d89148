package server_test

import (
	"context"
	"testing"

	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/pgtest"
	"github.com/agentid/agentid/internal/store/postgres"
)

// hub adds the tests' own helpers to a servertest hub.
type hub struct{ *servertest.Hub }

func newHub(t testing.TB, opts ...servertest.Option) *hub { return &hub{servertest.New(t, opts...)} }

// forEachBackend runs test against a hub on SQLite and on PostgreSQL.
func forEachBackend(t *testing.T, test func(*testing.T, *hub)) {
	t.Run("sqlite", func(t *testing.T) { test(t, newHub(t)) })
	t.Run("postgres", func(t *testing.T) { test(t, newPostgresHub(t)) })
}

func newPostgresHub(t testing.TB) *hub { return &hub{servertest.NewOn(t, openPostgresStore(t))} }

// openPostgresStore opens a migrated store in a fresh PostgreSQL schema.
func openPostgresStore(t testing.TB) store.Store {
	st, err := postgres.Open(context.Background(), pgtest.FreshSchema(t), postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, _, err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return st
}
