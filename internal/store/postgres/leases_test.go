package postgres

import (
	"testing"

	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/pgtest"
	"github.com/agentid/agentid/internal/store/storetest"
)

// replicas opens n pools on one fresh, migrated schema, as n hub
// replicas share one database.
func replicas(t *testing.T, n int) []store.Store {
	dsn := pgtest.FreshSchema(t)
	out := make([]store.Store, n)
	for i := range out {
		out[i] = openStore(t, dsn)
		if i == 0 {
			if _, _, err := out[0].Migrate(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
	}
	return out
}

// TestLeasesAcrossReplicas: acquirers on three pools agree on one holder.
func TestLeasesAcrossReplicas(t *testing.T) {
	storetest.LeaseRace(t, replicas(t, 3)...)
}

// TestSweepsAcrossReplicas: the consent-expiry and client-expiry sweeps
// run at once by three replicas record each event once.
func TestSweepsAcrossReplicas(t *testing.T) {
	storetest.SweepsAcrossStores(t, replicas(t, 3)...)
}
