package vault

import (
	"slices"
	"sync"
	"testing"

	"github.com/agentid/agentid/internal/audit"
)

// TestRefreshedOutcomes: Config.Refreshed hears each refresh this process
// ran, with its outcome: a provider exchange, a provider failure, and a
// refresh token the provider refused (the person must connect again).
func TestRefreshedOutcomes(t *testing.T) {
	run := func(t *testing.T, steps ...func(*env)) []string {
		var mu sync.Mutex
		var got []string
		e := newEnv(t, envOptions{cfg: func(c *Config) {
			c.Refreshed = func(outcome string) {
				mu.Lock()
				defer mu.Unlock()
				got = append(got, outcome)
			}
		}})
		c := e.connect("u1")
		for _, step := range steps {
			step(e)
			e.expireSoon(e.get(c.ID))
			_, _ = e.v.Credential(e.ctx, audit.Meta{}, e.get(c.ID), false)
		}
		mu.Lock()
		defer mu.Unlock()
		return got
	}
	nothing := func(*env) {}
	check := func(t *testing.T, got []string, want ...string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Fatalf("outcomes %v, want %v", got, want)
		}
	}
	t.Run("refreshed then failed", func(t *testing.T) {
		check(t, run(t, nothing, func(e *env) { e.prov.SetFail500(true) }), RefreshRefreshed, RefreshFailed)
	})
	t.Run("needs reauth", func(t *testing.T) {
		check(t, run(t, func(e *env) { e.prov.SetRefreshError("invalid_grant") }), RefreshNeedsReauth)
	})
}
