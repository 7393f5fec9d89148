package sqlite

import (
	"path/filepath"
	"testing"

	"github.com/agentid/agentid/internal/store/storetest"
)

// TestVaultAcrossProcesses opens one database file twice, each with its
// own writer, as two hub processes do: the refresh lease still goes to one
// caller, and compare-and-set updates through both all land.
func TestVaultAcrossProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agentid.db")
	a := openAt(t, path, defaultMaxBatch)
	migrateStore(t, a)
	b := openAt(t, path, defaultMaxBatch)
	storetest.VaultAcrossStores(t, a, b)
}

// TestChainAcrossProcesses: two handles on one file seal at once, as two
// processes would; the chain does not fork.
func TestChainAcrossProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agentid.db")
	a := openAt(t, path, defaultMaxBatch)
	migrateStore(t, a)
	b := openAt(t, path, defaultMaxBatch)
	storetest.ChainAcrossStores(t, a, b)
}

// TestChangesAcrossProcesses: a change written through one handle on the
// file is read through another; a handle's listener wakes at its own
// writes only (other processes' are found by reading).
func TestChangesAcrossProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agentid.db")
	a := openAt(t, path, defaultMaxBatch)
	migrateStore(t, a)
	b := openAt(t, path, defaultMaxBatch)
	storetest.ChangesAcrossStores(t, a, b, false)
}
