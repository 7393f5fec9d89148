package postgres

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/agentid/agentid/internal/store"
)

// TestIssueLiveOneStatement: an issuance without a grant family (client
// credentials) writes its live check, access token and first event as one
// statement (issueLiveSQL) and the rest after it. Every event gets its id
// and is stored, the client's last use moves; a live check that fails, a
// duplicate jti or a failing later write keeps nothing of the issuance;
// and the check still waits for a disable holding the client's live lock
// and then sees it.
func TestIssueLiveOneStatement(t *testing.T) {
	ctx := t.Context()
	s := newStore(t)
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	const tn = store.DefaultTenant
	clientID := "c-" + rand.Text()[:8]
	if err := s.CreateClient(ctx, &store.Client{TenantID: tn, ID: clientID, Name: "c", CreatedAt: now}, nil); err != nil {
		t.Fatal(err)
	}
	event := func(typ string) *store.AuditEvent {
		return &store.AuditEvent{TenantID: tn, Time: now, Type: typ, ClientID: clientID, Outcome: "success",
			Details: map[string]string{"jti": rand.Text()}}
	}
	issuance := func(jti string, evs ...*store.AuditEvent) *store.Issuance {
		return &store.Issuance{
			AccessToken: &store.AccessToken{JTI: jti, TenantID: tn, ClientID: clientID, Resource: "https://r.example/",
				Scopes: []string{"a"}, ExpiresAt: now.Add(time.Hour), Digest: []byte("digest")},
			Events: evs,
			Check:  &store.LiveCheck{TenantID: tn, ClientID: clientID},
		}
	}
	events := func() int {
		t.Helper()
		evs, err := s.ListAudit(ctx, store.AuditFilter{TenantID: tn, ClientID: clientID, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		return len(evs)
	}
	notIssued := func(t *testing.T, jti string, before int) {
		t.Helper()
		if _, err := s.GetAccessToken(ctx, jti); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("record of the refused token: %v, want ErrNotFound", err)
		}
		if n := events(); n != before {
			t.Errorf("%d events after the refused issuance, want %d", n, before)
		}
	}

	t.Run("written", func(t *testing.T) {
		issued, expired := event("token.issued"), event("consent.expired")
		issued.Scopes = []string{"a", "b"}
		iss := issuance("jti-"+rand.Text(), issued, expired)
		iss.Touch = &store.ClientTouch{TenantID: tn, ClientID: clientID, At: now}
		if err := s.IssueTokens(ctx, iss); err != nil {
			t.Fatal(err)
		}
		if issued.ID == 0 || expired.ID <= issued.ID {
			t.Fatalf("event ids %d, %d: want both set, in order", issued.ID, expired.ID)
		}
		at, err := s.GetAccessToken(ctx, iss.AccessToken.JTI)
		if err != nil || at.ClientID != clientID || string(at.Digest) != "digest" || len(at.Scopes) != 1 {
			t.Fatalf("record %+v, %v", at, err)
		}
		evs, err := s.ListAudit(ctx, store.AuditFilter{TenantID: tn, ClientID: clientID, Limit: 10})
		if err != nil || len(evs) != 2 || evs[1].ID != issued.ID || evs[1].Details["jti"] != issued.Details["jti"] ||
			strings.Join(evs[1].Scopes, ",") != "a,b" {
			t.Fatalf("events %+v, %v", evs, err)
		}
		// The one statement stores scopes as every other insert does
		// (storedScopes, migration 0025): well-formed ones as text.
		for _, q := range []struct{ sql, want string }{
			{`SELECT scopes IS NULL, scope FROM access_tokens WHERE jti = $1`, "a"},
			{`SELECT scopes IS NULL, scope FROM audit_events WHERE id = $1`, "a b"},
		} {
			key := any(iss.AccessToken.JTI)
			if strings.Contains(q.sql, "audit_events") {
				key = issued.ID
			}
			var listNull bool
			var text *string
			if err := s.pool.QueryRow(ctx, q.sql, key).Scan(&listNull, &text); err != nil {
				t.Fatal(err)
			}
			if !listNull || text == nil || *text != q.want {
				t.Errorf("%s: scopes NULL %v, scope %v, want NULL and %q", q.sql, listNull, text, q.want)
			}
		}
		c, err := s.GetClient(ctx, tn, clientID)
		if err != nil || !c.LastUsedAt.Equal(now) {
			t.Fatalf("last use %v (%v), want %v", c.LastUsedAt, err, now)
		}
	})
	t.Run("duplicate jti", func(t *testing.T) {
		jti := "jti-" + rand.Text()
		if err := s.IssueTokens(ctx, issuance(jti, event("token.issued"))); err != nil {
			t.Fatal(err)
		}
		before := events()
		if err := s.IssueTokens(ctx, issuance(jti, event("token.issued"))); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("second issuance of one jti: %v, want ErrConflict", err)
		}
		if n := events(); n != before {
			t.Fatalf("%d events after the refused issuance, want %d", n, before)
		}
	})
	t.Run("a later write fails", func(t *testing.T) {
		before := events()
		iss := issuance("jti-"+rand.Text(), event("token.issued"))
		// A second event whose details cannot be stored (a NUL is not
		// valid in PostgreSQL text) fails after the one statement ran.
		iss.Events = append(iss.Events, &store.AuditEvent{TenantID: tn, Time: now, Type: "bad\x00type", ClientID: clientID})
		err := s.IssueTokens(ctx, iss)
		if _, ok := errors.AsType[*pgconn.PgError](err); !ok {
			t.Fatalf("issuance with an unstorable event: %v, want the database's refusal", err)
		}
		notIssued(t, iss.AccessToken.JTI, before)
	})
	t.Run("disabled under the live lock", func(t *testing.T) {
		before := events()
		tx, err := s.pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback(context.Background()) }()
		if err := lockClient(ctx, tx, tn, clientID); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `UPDATE clients SET disabled = true WHERE tenant_id = $1 AND id = $2`, tn, clientID); err != nil {
			t.Fatal(err)
		}
		waiting := issuance("jti-"+rand.Text(), event("token.issued"))
		done := make(chan error, 1)
		go func() { done <- s.IssueTokens(ctx, waiting) }()
		select {
		case err := <-done:
			t.Fatalf("issuance under the exclusive live lock returned %v, want it to wait", err)
		case <-time.After(300 * time.Millisecond):
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, store.ErrClientGone) {
			t.Fatalf("issuance after the disable: %v, want ErrClientGone", err)
		}
		notIssued(t, waiting.AccessToken.JTI, before)
		later := issuance("jti-"+rand.Text(), event("token.issued"))
		if err := s.IssueTokens(ctx, later); !errors.Is(err, store.ErrClientGone) {
			t.Fatalf("issuance to a disabled client: %v, want ErrClientGone", err)
		}
		notIssued(t, later.AccessToken.JTI, before)
	})
}
