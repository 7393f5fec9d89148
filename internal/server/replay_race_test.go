package server_test

import (
	"context"
	"net/http"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
)

// replayInFlight replays the code right after the first exchange consumed
// it and before that exchange persists its tokens, as a concurrent request
// can.
type replayInFlight struct {
	store.Store
	once sync.Once
}

func (s *replayInFlight) ConsumeAuthCode(ctx context.Context, hash []byte, now time.Time, ev *store.AuditEvent) (*store.AuthCode, error) {
	c, err := s.Store.ConsumeAuthCode(ctx, hash, now, ev)
	if err == nil {
		s.once.Do(func() { _, _ = s.Store.ConsumeAuthCode(ctx, hash, now, nil) })
	}
	return c, err
}

// TestCodeReplayWhileExchanging: RFC 6749 §4.1.2 — everything issued from a
// replayed code is revoked, including what the first exchange was still
// issuing when the replay was detected. The exchange is refused.
func TestCodeReplayWhileExchanging(t *testing.T) {
	for _, backend := range []struct {
		name string
		open func(t *testing.T) store.Store
	}{
		{"sqlite", func(t *testing.T) store.Store { return openSQLiteStore(t, filepath.Join(t.TempDir(), "agentid.db")) }},
		{"postgres", func(t *testing.T) store.Store { return openPostgresStore(t) }},
	} {
		t.Run(backend.name, func(t *testing.T) {
			h := &hub{servertest.NewOn(t, &replayInFlight{Store: backend.open(t)})}
			secret := h.AddClient(&store.Client{ID: "web", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code", "refresh_token"}})
			conf := h.oauth2Config("web", secret, "notes.read")
			v := oauth2.GenerateVerifier()
			back := h.Browser().Authorize(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("resource", h.Resource)), []string{"notes.read"})
			r := h.post("/token", url.Values{"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")}, "code_verifier": {v}}, "web", secret)
			if r.status != http.StatusBadRequest || r.body["error"] != "invalid_grant" {
				t.Fatalf("exchange racing a replay: %d %v, want invalid_grant", r.status, r.body)
			}
		})
	}
}
