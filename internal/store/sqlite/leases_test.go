package sqlite

import (
	"path/filepath"
	"testing"

	"github.com/agentid/agentid/internal/store/storetest"
)

// TestLeasesAcrossProcesses: acquirers on two handles of one file, as two
// processes on one data directory, agree on one holder.
func TestLeasesAcrossProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agentid.db")
	a := openAt(t, path, defaultMaxBatch)
	migrateStore(t, a)
	b := openAt(t, path, defaultMaxBatch)
	storetest.LeaseRace(t, a, b)
}

// TestSweepsAcrossProcesses: the consent-expiry and client-expiry sweeps
// run at once through two handles of one file record each event once.
func TestSweepsAcrossProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agentid.db")
	a := openAt(t, path, defaultMaxBatch)
	migrateStore(t, a)
	b := openAt(t, path, defaultMaxBatch)
	storetest.SweepsAcrossStores(t, a, b)
}
