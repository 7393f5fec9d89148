package main

import (
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

func TestKeyState(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		key  store.SigningKey
		now  time.Time
		want string
	}{
		{"active, never retired", store.SigningKey{ActivateAt: t0}, t0, keyActive},
		{"pre-published", store.SigningKey{ActivateAt: t0.Add(10 * time.Minute)}, t0, keyNext},
		{"active until its retirement", store.SigningKey{ActivateAt: t0, RetiredAt: t0.Add(time.Minute), ExpiresAt: t0.Add(time.Hour)}, t0, keyActive},
		{"retired, still published", store.SigningKey{ActivateAt: t0, RetiredAt: t0.Add(-time.Minute), ExpiresAt: t0.Add(time.Hour)}, t0, keyRetired},
		{"retired at this instant", store.SigningKey{ActivateAt: t0.Add(-time.Hour), RetiredAt: t0, ExpiresAt: t0.Add(time.Hour)}, t0, keyRetired},
		{"expired", store.SigningKey{ActivateAt: t0.Add(-2 * time.Hour), RetiredAt: t0.Add(-time.Hour), ExpiresAt: t0}, t0, keyExpired},
		// rotate --now over a pre-published key retires it before it ever signs.
		{"retired before activation", store.SigningKey{ActivateAt: t0.Add(10 * time.Minute), RetiredAt: t0.Add(-time.Second), ExpiresAt: t0.Add(time.Hour)}, t0, keyRetired},
		{"retired at its activation", store.SigningKey{ActivateAt: t0.Add(10 * time.Minute), RetiredAt: t0.Add(10 * time.Minute), ExpiresAt: t0.Add(time.Hour)}, t0, keyRetired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := keyState(&tt.key, tt.now); got != tt.want {
				t.Errorf("keyState = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestKeysRotateReachesRunningHub: `agentid keys rotate --now`, run
// beside a running SQLite hub (its own store handle, as another process
// would be), is published and signs at the hub within 2 s of the command,
// as its help says: through the change feed, not the 30 s re-read.
func TestKeysRotateReachesRunningHub(t *testing.T) {
	addr := freeAddr(t)
	env := map[string]string{"AGENTID_DATA_DIR": filepath.Join(t.TempDir(), "data"), "AGENTID_LISTEN": addr, "AGENTID_ISSUER": "http://" + addr}
	h := startServe(t, env)
	must := func(args ...string) string {
		t.Helper()
		code, out, errOut := runCLI(t, env, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
		return out
	}
	must("resources", "add", "--uri", "https://notes.example/mcp", "--name", "Notes", "--scope", "notes.read=Read")
	out := must("clients", "add", "--name", "job", "--id", "job", "--grant-type", "client_credentials",
		"--resource", "https://notes.example/mcp", "--tag", "cc:notes.read")
	m := regexp.MustCompile(`(?m)^client_secret +(\S+)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no client_secret in:\n%s", out)
	}
	secret := m[1]
	token := func() (string, error) {
		r, err := post(h.url, "/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"notes.read"}, "resource": {"https://notes.example/mcp"}}, "job", secret)
		if err != nil {
			return "", err
		}
		if r.status != http.StatusOK {
			return "", fmt.Errorf("token: %v", r)
		}
		return r.str("access_token"), nil
	}
	before, err := token()
	if err != nil {
		t.Fatal(err)
	}
	since := time.Now()
	out = must("keys", "rotate", "--now")
	m = regexp.MustCompile(`new key (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no new key in:\n%s", out)
	}
	kid := m[1]
	if kidOf(before) == kid {
		t.Fatalf("the token before the rotation has the new key's kid %s", kid)
	}
	atEveryReplicaWithin(t, "a key rotated with --now by the CLI", since, 2*time.Second, []*replica{{name: "hub", url: h.url}}, func(r *replica) error {
		if !slices.Contains(jwksKIDsE(r.url), kid) {
			return fmt.Errorf("JWKS without %s", kid)
		}
		tok, err := token()
		if err != nil {
			return err
		}
		if got := kidOf(tok); got != kid {
			return fmt.Errorf("a new token signed by %s, want %s", got, kid)
		}
		return nil
	})

	// The help says so.
	cmd := (&cli{}).newKeysRotateCmd(new(bool))
	if !strings.Contains(cmd.Long, "within\n2 seconds through the store's change feed") {
		t.Errorf("keys rotate's help does not say the key reaches every hub within 2 s:\n%s", cmd.Long)
	}
}
