package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/sqlite"
)

// sickStore is a store whose Ping can fail and whose schema can lag
// behind the binary's by some versions.
type sickStore struct {
	store.Store
	down atomic.Bool
	lag  atomic.Int32
}

func (s *sickStore) Ping(ctx context.Context) error {
	if s.down.Load() {
		return errors.New("dial tcp 10.1.2.3:5432: connection refused (user agentid)")
	}
	return s.Store.Ping(ctx)
}

func (s *sickStore) SchemaVersion(ctx context.Context) (int, int, error) {
	cur, known, err := s.Store.SchemaVersion(ctx)
	return cur - int(s.lag.Load()), known, err
}

type readyBody struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

func getReady(t *testing.T, h *servertest.Hub) (int, readyBody) {
	t.Helper()
	resp, err := http.Get(h.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var b readyBody
	if err := json.NewDecoder(resp.Body).Decode(&b); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// TestReadiness: /readyz is 200 {"status":"ready"} while the store
// answers, a key may sign and the schema is current, and 503 naming each
// failed check otherwise — without the store's error text; /healthz
// stays 200 throughout.
func TestReadiness(t *testing.T) {
	ctx := context.Background()
	base, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "agentid.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { base.Close() })
	if _, _, err := base.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	st := &sickStore{Store: base}
	h := servertest.NewOn(t, st)

	check := func(t *testing.T, wantCode int, want map[string]string) {
		t.Helper()
		code, b := getReady(t, h)
		if code != wantCode {
			t.Fatalf("/readyz = %d %+v, want %d", code, b, wantCode)
		}
		wantStatus := "ready"
		if wantCode != http.StatusOK {
			wantStatus = "not_ready"
		}
		if b.Status != wantStatus {
			t.Errorf("status %q, want %q", b.Status, wantStatus)
		}
		for k, v := range want {
			if b.Checks[k] != v {
				t.Errorf("checks[%s] = %q, want %q", k, b.Checks[k], v)
			}
		}
		resp, err := http.Get(h.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("/healthz = %d", resp.StatusCode)
		}
	}

	check(t, http.StatusOK, map[string]string{"store": "ok", "keys": "ok", "migrations": "ok"})

	st.down.Store(true)
	check(t, http.StatusServiceUnavailable, map[string]string{"store": "the database does not answer", "keys": "ok", "migrations": "ok"})
	st.down.Store(false)

	_, known, err := base.SchemaVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st.lag.Store(1)
	check(t, http.StatusServiceUnavailable, map[string]string{"store": "ok", "migrations": "the database schema is at version " + strconv.Itoa(known-1) + ", this binary needs " + strconv.Itoa(known)})
	st.lag.Store(0)
	check(t, http.StatusOK, nil)

	// Every key retired (by another replica, say): nothing may sign.
	keys, err := base.ListSigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		k.RetiredAt = time.Now().Add(-time.Second)
		if err := base.UpdateSigningKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Keys.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	check(t, http.StatusServiceUnavailable, map[string]string{"store": "ok", "keys": "no loaded signing key may sign now", "migrations": "ok"})
}
