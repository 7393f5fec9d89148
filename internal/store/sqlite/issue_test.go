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
