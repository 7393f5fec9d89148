package postgres

import (
	"testing"

	"github.com/agentid/agentid/internal/store/pgtest"
	"github.com/agentid/agentid/internal/store/storetest"
)

// TestVaultAcrossReplicas opens one schema through two pools, as two hub
// replicas do: the refresh lease still goes to one caller, and
// compare-and-set updates through both all land.
func TestVaultAcrossReplicas(t *testing.T) {
	dsn := pgtest.FreshSchema(t)
	a := openStore(t, dsn)
	if _, _, err := a.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	b := openStore(t, dsn)
	storetest.VaultAcrossStores(t, a, b)
}

// TestChainAcrossStores: two pools on one database seal at once, as two
// replicas do; the chain does not fork.
func TestChainAcrossStores(t *testing.T) {
	dsn := pgtest.FreshSchema(t)
	a := openStore(t, dsn)
	if _, _, err := a.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	b := openStore(t, dsn)
	storetest.ChainAcrossStores(t, a, b)
}

// TestChangesAcrossReplicas: a change written through one pool is read
// through another, and wakes the other's listener (NOTIFY).
func TestChangesAcrossReplicas(t *testing.T) {
	dsn := pgtest.FreshSchema(t)
	a := openStore(t, dsn)
	if _, _, err := a.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	b := openStore(t, dsn)
	storetest.ChangesAcrossStores(t, a, b, true)
}
