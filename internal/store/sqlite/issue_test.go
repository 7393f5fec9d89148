package sqlite

import (
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// TestHotPathStatements pins the statements a client-credentials issuance
// runs: the access-token insert that carries the live check, and the
// client touch only when Issuance.Touch is set.
func TestHotPathStatements(t *testing.T) {
	at := &store.AccessToken{JTI: "j", TenantID: "t", ClientID: "c", RedirectURI: "http://127.0.0.1/cb", ExpiresAt: time.Now()}
	check := &store.LiveCheck{TenantID: "t", ClientID: "c"}
	for _, tc := range []struct {
		name  string
		touch *store.ClientTouch
	}{
		{"no touch", nil},
		{"touch", &store.ClientTouch{TenantID: "t", ClientID: "c", At: time.Now()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := prepIssue(&store.Issuance{AccessToken: at, Check: check, Touch: tc.touch})
			if p.accessLive == nil {
				t.Fatal("the live check does not ride on the insert")
			}
			if got, want := len(p.accessLive), 16; got != want {
				t.Fatalf("qInsertAccessLive gets %d arguments, want %d", got, want)
			}
			if p.accessLive[9] != at.RedirectURI {
				t.Fatalf("redirect_uri argument = %v", p.accessLive[9])
			}
			if (p.touchClient != nil) != (tc.touch != nil) || p.touch != "" || p.refresh != nil {
				t.Fatalf("extra statements: touchClient %v, consent %q, refresh %v", p.touchClient, p.touch, p.refresh)
			}
		})
	}
}

// TestExchangeStatements pins what an exchange's issuance prepares: the
// arguments of qInsertAccessExchanged alone (the subject's record checked
// in the insert), none of the plain or live inserts it never runs.
func TestExchangeStatements(t *testing.T) {
	at := &store.AccessToken{JTI: "j", TenantID: "t", ClientID: "c", UserID: "u", Resource: "https://b.example/mcp", ExpiresAt: time.Now()}
	p := prepIssue(&store.Issuance{AccessToken: at, Check: &store.LiveCheck{TenantID: "t", ClientID: "c", UserID: "u"}, SubjectJTI: "s"})
	if got, want := len(p.accessExchanged), 17; got != want {
		t.Fatalf("qInsertAccessExchanged gets %d arguments, want %d", got, want)
	}
	if p.accessExchanged[2] != "s" || p.subject != "s" || p.subjTen != "t" {
		t.Fatalf("subject arguments %v, %q, %q", p.accessExchanged[2], p.subject, p.subjTen)
	}
	if p.access != nil || p.accessLive != nil || p.accessLiveGrant != nil || p.grant != "" {
		t.Fatalf("arguments of inserts an exchange never runs were built: access %v, live %v, live grant %v, grant %q",
			p.access, p.accessLive, p.accessLiveGrant, p.grant)
	}
}
