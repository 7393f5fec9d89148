package main

import (
	"errors"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentid/agentid/internal/config"
	"github.com/agentid/agentid/internal/keyring"
	"github.com/agentid/agentid/internal/store/pgtest"
)

// hubBackends are the stores a hub test runs on: SQLite in its data
// directory, and a fresh PostgreSQL schema (skipped without
// AGENTID_TEST_POSTGRES).
var hubBackends = []struct {
	name string
	env  func(t *testing.T) map[string]string
}{
	{"sqlite", func(t *testing.T) map[string]string { return map[string]string{} }},
	{"postgres", func(t *testing.T) map[string]string {
		return map[string]string{"AGENTID_STORE_DSN": pgtest.FreshSchema(t)}
	}},
}

// TestNoNewKEKOverSealedKeys: a hub started on a store holding signing
// keys sealed by a KEK it is not given — its key file lost, or another
// KEK configured (a replica with the wrong AGENTID_KEK) — refuses to
// start, names the KEK the store needs, and creates no KEK file or key;
// with that KEK configured (as a previous one, mid-rotation) it starts.
func TestNoNewKEKOverSealedKeys(t *testing.T) {
	for _, tc := range hubBackends {
		t.Run(tc.name, func(t *testing.T) {
			base := tc.env(t)
			dir := t.TempDir()
			base["AGENTID_DATA_DIR"] = dir
			withEnv := func(extra map[string]string) *config.Config {
				env := maps.Clone(base)
				maps.Copy(env, extra)
				return loadDeployConfig(t, "test", "", env)
			}
			start := func(extra map[string]string) error {
				h, err := newHub(t.Context(), withEnv(extra), slog.New(slog.DiscardHandler))
				if err != nil {
					return err
				}
				return h.Close()
			}
			keyCount := func() int {
				t.Helper()
				st, err := openStore(t.Context(), withEnv(nil), slog.New(slog.DiscardHandler))
				if err != nil {
					t.Fatal(err)
				}
				defer st.Close()
				keys, err := st.ListSigningKeys(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				return len(keys)
			}

			// The first start creates the KEK file and seals a key with it.
			if err := start(nil); err != nil {
				t.Fatal(err)
			}
			kekFile := filepath.Join(dir, "kek.key")
			orig, err := keyring.ReadKEKFile(kekFile)
			if err != nil {
				t.Fatal(err)
			}
			keys := keyCount()

			// The key file lost: refused, and no new file appears.
			if err := os.Rename(kekFile, kekFile+".saved"); err != nil {
				t.Fatal(err)
			}
			err = start(nil)
			if err == nil || !strings.Contains(err.Error(), "sealed by KEK "+orig.ID) || !strings.Contains(err.Error(), "does not create a new KEK") {
				t.Fatalf("start without the KEK file: %v, want a refusal naming KEK %s", err, orig.ID)
			}
			if _, serr := os.Stat(kekFile); !errors.Is(serr, fs.ErrNotExist) {
				t.Fatalf("a refused start left a KEK file behind (%v)", serr)
			}

			// Another KEK configured: refused too.
			other, err := keyring.GenerateKEK(nil)
			if err != nil {
				t.Fatal(err)
			}
			err = start(map[string]string{"AGENTID_KEK": keyring.FormatKEK(other)})
			if err == nil || !strings.Contains(err.Error(), "sealed by KEK "+orig.ID) || !strings.Contains(err.Error(), "cannot open") {
				t.Fatalf("start with another KEK: %v, want a refusal naming KEK %s", err, orig.ID)
			}
			if n := keyCount(); n != keys {
				t.Fatalf("refused starts left %d signing keys, want the %d there were", n, keys)
			}

			// The new KEK current and the old one previous: it starts.
			if err := start(map[string]string{"AGENTID_KEK": keyring.FormatKEK(other), "AGENTID_KEK_PREVIOUS": keyring.FormatKEK(orig)}); err != nil {
				t.Fatalf("start with the old KEK as previous: %v", err)
			}
			// And with the key file back, as before.
			if err := os.Rename(kekFile+".saved", kekFile); err != nil {
				t.Fatal(err)
			}
			if err := start(nil); err != nil {
				t.Fatalf("start with the key file back: %v", err)
			}
		})
	}
}
