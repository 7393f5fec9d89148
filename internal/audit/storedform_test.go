package audit_test

import (
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/store"
)

// TestVerifyAcrossStoredDetailForms: a trail whose older events store their
// details with the schema's key names (rows written before the short names
// of store.CompactDetails, and sealed so) and whose newer events store short
// names verifies whole and reads back alike; a short name changed in a
// sealed row is a break at that event, and one no version wrote is an error,
// not a silent reading.
func TestVerifyAcrossStoredDetailForms(t *testing.T) {
	eachBackend(t, func(t *testing.T, db *chainDB) {
		s := newSealer(t, db.st, newKeys(t, db.st), nil, 0)
		issued := func(i int) *store.AuditEvent {
			return &store.AuditEvent{TenantID: store.DefaultTenant, Time: t0.Add(time.Duration(i) * time.Minute),
				Type: audit.TokenIssued, RequestID: fmt.Sprint("req-", i), ClientID: "bot", Resource: "https://mcp.example.com/",
				Scopes: []string{"notes.read"}, IP: "192.0.2.7", Outcome: audit.Success,
				Details: map[string]string{"jti": fmt.Sprint("jti-", i), "grant_type": "client_credentials",
					"user_agent": "Go-http-client/1.1", "policy_version": "0", "provider": "calendar"}}
		}
		var evs []*store.AuditEvent
		for i := range 4 {
			ev := issued(i)
			if err := db.st.AppendAudit(t.Context(), ev); err != nil {
				t.Fatal(err)
			}
			db.details(t, ev.ID, ev.Details) // the schema's names, as stored before
			evs = append(evs, ev)
		}
		seal(t, s)
		for i := 4; i < 8; i++ {
			ev := issued(i)
			if err := db.st.AppendAudit(t.Context(), ev); err != nil {
				t.Fatal(err)
			}
			evs = append(evs, ev)
		}
		seal(t, s)
		if r := verify(t, db); r.Break != nil || r.Unsealed != 0 || r.Events != int64(len(evs)) {
			t.Fatalf("verify: %+v (break %v), want %d events sealed, no break", r, r.Break, len(evs))
		}
		got, err := db.st.ListAudit(t.Context(), store.AuditFilter{TenantID: store.DefaultTenant, Ascending: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(evs) {
			t.Fatalf("%d events listed, want %d", len(got), len(evs))
		}
		for i, ev := range got {
			if !maps.Equal(ev.Details, evs[i].Details) {
				t.Errorf("event %d reads back with details %v, want %v", ev.ID, ev.Details, evs[i].Details)
			}
		}
		// The provider filter reads the stored JSON: both forms answer.
		if got, err := db.st.ListAudit(t.Context(), store.AuditFilter{TenantID: store.DefaultTenant, Provider: "calendar"}); err != nil || len(got) != len(evs) {
			t.Errorf("provider filter: %d events (%v), want %d", len(got), err, len(evs))
		}

		// jti's short name swapped for subject_jti's in a sealed new row.
		forged := maps.Clone(evs[5].Details)
		forged["subject_jti"] = forged["jti"]
		delete(forged, "jti")
		stored, _ := store.CompactDetails(forged)
		db.details(t, evs[5].ID, stored)
		if r := verify(t, db); r.Break == nil || r.Break.EventID != evs[5].ID || !strings.Contains(r.Break.Reason, "content") {
			t.Errorf("a changed short name: verify %+v (break %v), want a content break at %d", r, r.Break, evs[5].ID)
		}
		// A short name no version wrote.
		db.details(t, evs[6].ID, map[string]string{"~z": "x"})
		if r, err := audit.Verify(t.Context(), audit.VerifyOptions{Store: db.st, Verifier: verifier(t, db.st)}); err == nil &&
			(r.Break == nil || r.Break.EventID > evs[6].ID) {
			t.Errorf("an unknown short name: verify %+v (break %v), want an error", r, r.Break)
		}
	})
}
