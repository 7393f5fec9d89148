package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestRestoreSaysWhatItReplaces: refusing to replace an existing database
// without --force, restore says what a restore overwrites (all of it, and
// whatever changed since the backup) and that the hub must be stopped.
func TestRestoreSaysWhatItReplaces(t *testing.T) {
	e := newCLIEnv(t)
	e.run("resources", "add", "--uri", backupResource, "--name", "Notes", "--scope", "notes.read=Read")
	out := filepath.Join(t.TempDir(), "b.db")
	e.run("backup", "--out", out)
	code, _, stderr := runCLI(t, e.env, "restore", "--from", out)
	if code != exitError {
		t.Fatalf("restore over a database without --force: exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"replaces all of it", "signing keys", "the audit trail", "changed after the backup", "hub stopped", "--force", ".TIMESTAMP.bak"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("the refusal does not say %q: %s", want, stderr)
		}
	}
}
