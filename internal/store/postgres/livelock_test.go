package postgres

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/agentid/agentid/internal/store"
)

// TestLiveCheckLocks: an issuance's live check (migration 0007) waits on
// the client's and user's advisory locks, not on their rows. A writer
// holding a row lock does not stall issuances; one holding the exclusive
// live lock does, until it commits, after which the issuance sees what it
// wrote.
func TestLiveCheckLocks(t *testing.T) {
	s := newStore(t)
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	const tn = store.DefaultTenant
	clientID, userID := "c-"+rand.Text()[:8], "u-"+rand.Text()[:8]
	if err := s.CreateClient(t.Context(), &store.Client{TenantID: tn, ID: clientID, Name: "c", CreatedAt: now}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(t.Context(), &store.User{TenantID: tn, ID: userID, Username: userID, PasswordHash: "x",
		CreatedAt: now, UpdatedAt: now}, nil); err != nil {
		t.Fatal(err)
	}
	issue := func(ctx context.Context, user string) error {
		return s.IssueTokens(ctx, &store.Issuance{
			AccessToken: &store.AccessToken{JTI: "jti-" + rand.Text(), TenantID: tn, ClientID: clientID, UserID: user,
				ExpiresAt: now.Add(time.Hour)},
			Check: &store.LiveCheck{TenantID: tn, ClientID: clientID, UserID: user},
		})
	}
	// hold runs lock in a transaction of its own and returns what ends it.
	hold := func(t *testing.T, lock func(pgx.Tx) error) (commit func()) {
		t.Helper()
		tx, err := s.pool.Begin(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
		if err := lock(tx); err != nil {
			t.Fatal(err)
		}
		return func() {
			if err := tx.Commit(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
	}
	stalled := func(t *testing.T, user string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		if err := issue(ctx, user); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("issuance under the exclusive live lock: %v, want it to wait", err)
		}
	}

	t.Run("row locks do not stall issuance", func(t *testing.T) {
		commit := hold(t, func(tx pgx.Tx) error {
			if _, err := tx.Exec(t.Context(), `SELECT 1 FROM clients WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, tn, clientID); err != nil {
				return err
			}
			_, err := tx.Exec(t.Context(), `SELECT 1 FROM users WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, tn, userID)
			return err
		})
		defer commit()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		if err := issue(ctx, userID); err != nil {
			t.Fatalf("issuance while the rows are locked: %v", err)
		}
	})
	t.Run("client lock stalls issuance until the disable commits", func(t *testing.T) {
		commit := hold(t, func(tx pgx.Tx) error {
			if err := lockClient(t.Context(), tx, tn, clientID); err != nil {
				return err
			}
			_, err := tx.Exec(t.Context(), `UPDATE clients SET disabled = true WHERE tenant_id = $1 AND id = $2`, tn, clientID)
			return err
		})
		stalled(t, "")
		commit()
		if err := issue(t.Context(), ""); !errors.Is(err, store.ErrClientGone) {
			t.Fatalf("issuance after the disable: %v, want %v", err, store.ErrClientGone)
		}
		if _, err := s.pool.Exec(t.Context(), `UPDATE clients SET disabled = false WHERE tenant_id = $1 AND id = $2`, tn, clientID); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("user lock stalls issuance until the disable commits", func(t *testing.T) {
		commit := hold(t, func(tx pgx.Tx) error {
			if err := lockUser(t.Context(), tx, tn, userID); err != nil {
				return err
			}
			_, err := tx.Exec(t.Context(), `UPDATE users SET disabled = true WHERE tenant_id = $1 AND id = $2`, tn, userID)
			return err
		})
		if err := issue(t.Context(), ""); err != nil {
			t.Fatalf("issuance without the user: %v", err)
		}
		stalled(t, userID)
		commit()
		if err := issue(t.Context(), userID); !errors.Is(err, store.ErrUserGone) {
			t.Fatalf("issuance after the disable: %v, want %v", err, store.ErrUserGone)
		}
	})
}
