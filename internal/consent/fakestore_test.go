package consent_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/consent"
	"github.com/agentid/agentid/internal/store"
)

// failingConsents is a store.Consents whose writes fail: the ledger needs
// no more of a store than this role.
type failingConsents struct {
	grants  []*store.ConsentGrant
	revokes int
}

var errDown = errors.New("database down")

func (f *failingConsents) UpsertConsents(context.Context, []*store.ConsentGrant, *store.AuditEvent) error {
	return errDown
}

func (f *failingConsents) ListConsents(context.Context, store.ConsentFilter) ([]*store.ConsentGrant, error) {
	return f.grants, nil
}

func (f *failingConsents) RevokeConsents(context.Context, store.ConsentFilter, []string, time.Time, *store.AuditEvent) error {
	f.revokes++
	return errDown
}

func (f *failingConsents) ExpireConsents(context.Context, string, time.Time, func(store.ConsentFilter, []string) *store.AuditEvent) (int, error) {
	return 0, errDown
}

// TestLedgerOnAFakeStore runs the ledger on its store role alone: a failed
// write reaches the caller, and a revocation with nothing live does not
// call the store at all.
func TestLedgerOnAFakeStore(t *testing.T) {
	now := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	k := consent.Key{UserID: "u1", ClientID: "c1", Resource: "https://files.example.com/mcp"}
	expired := &store.ConsentGrant{TenantID: store.DefaultTenant, UserID: k.UserID, ClientID: k.ClientID,
		Resource: k.Resource, Scope: "files:read", GrantedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(-time.Hour)}
	live := *expired
	live.Scope, live.ExpiresAt = "files:write", now.Add(time.Hour)
	tests := []struct {
		name        string
		grants      []*store.ConsentGrant
		wantErr     error
		wantRevokes int
	}{
		{"nothing recorded", nil, nil, 0},
		{"only expired", []*store.ConsentGrant{expired}, nil, 0},
		{"live", []*store.ConsentGrant{expired, &live}, errDown, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := &failingConsents{grants: tc.grants}
			l, err := consent.New(consent.Options{Store: fake, Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			_, err = l.Revoke(t.Context(), k, nil, nil, "")
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("Revoke: %v, want %v", err, tc.wantErr)
			}
			if fake.revokes != tc.wantRevokes {
				t.Fatalf("RevokeConsents called %d times, want %d", fake.revokes, tc.wantRevokes)
			}
			if err := l.Grant(t.Context(), k, []string{"files:read"}, time.Time{}, nil); !errors.Is(err, errDown) {
				t.Fatalf("Grant on a failing store: %v, want %v", err, errDown)
			}
		})
	}
}
