package server_test

import (
	"context"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/sqlite"
)

// interleavingStore runs meanwhile once, just before the next UpdateClient,
// as if another writer got there first.
type interleavingStore struct {
	store.Store
	mu        sync.Mutex
	meanwhile func()
}

func (s *interleavingStore) UpdateClient(ctx context.Context, tenantID, id string, update func(*store.Client) error, ev *store.AuditEvent) (*store.Client, error) {
	s.mu.Lock()
	f := s.meanwhile
	s.meanwhile = nil
	s.mu.Unlock()
	if f != nil {
		f()
	}
	return s.Store.UpdateClient(ctx, tenantID, id, update, ev)
}

// TestRegistrationUpdateRacesTag: an admin tags a self-registered client
// trusted while its RFC 7592 update is being computed. Both changes land,
// and the update's ceiling is computed with the tag (the sensitive scope
// it asked for is allowed), not from the client as it was before.
func TestRegistrationUpdateRacesTag(t *testing.T) {
	ctx := context.Background()
	backends := map[string]func(t *testing.T) store.Store{
		"sqlite": func(t *testing.T) store.Store {
			st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "agentid.db"), sqlite.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			if _, _, err := st.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			return st
		},
		"postgres": func(t *testing.T) store.Store { return openPostgresStore(t) },
	}
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			st := &interleavingStore{Store: open(t)}
			h := &hub{servertest.NewOn(t, st)}
			r := h.jsonRequest(http.MethodPost, "/register", map[string]any{
				"client_name": "agent", "redirect_uris": []string{"http://127.0.0.1/cb"}, "scope": "notes.read",
			}, "")
			if r.status != http.StatusCreated {
				t.Fatalf("register: %d %v", r.status, r.body)
			}
			id, _ := r.body["client_id"].(string)
			regToken, _ := r.body["registration_access_token"].(string)

			st.meanwhile = func() {
				e, err := policy.New(ctx, policy.Options{Store: st.Store})
				if err != nil {
					t.Error(err)
					return
				}
				if _, _, err := e.TagClient(ctx, id, []string{"trusted"}, nil, nil); err != nil {
					t.Error(err)
				}
			}
			u := h.jsonRequest(http.MethodPut, "/register/"+id, map[string]any{
				"client_id": id, "client_name": "renamed", "redirect_uris": []string{"http://127.0.0.1/cb"},
				"scope": "notes.read notes.delete",
			}, regToken)
			if u.status != http.StatusOK {
				t.Fatalf("update: %d %v", u.status, u.body)
			}
			c, err := st.GetClient(ctx, store.DefaultTenant, id)
			if err != nil {
				t.Fatal(err)
			}
			if c.Name != "renamed" || !slices.Contains(c.Tags, "trusted") || !slices.Contains(c.Scopes, "notes.delete") {
				t.Fatalf("after the race: name %q, tags %v, ceiling %v; want the update, the tag and notes.delete", c.Name, c.Tags, c.Scopes)
			}
			if scope, _ := u.body["scope"].(string); !slices.Contains(strings.Fields(scope), "notes.delete") {
				t.Fatalf("update answered scope %q, want notes.delete allowed for a trusted client", scope)
			}
		})
	}
}
