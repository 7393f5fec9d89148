package postgres

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/migrate"
	"github.com/agentid/agentid/internal/store/pgtest"
)

// beforeRuns returns the migrations before the audit runs' one (found by
// name, so that the test does not depend on the number of the migration
// before it) and all of them.
func beforeRuns(t *testing.T) (before, all []migrate.Migration) {
	t.Helper()
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(ms, func(m migrate.Migration) bool { return strings.HasSuffix(m.Name, "_audit_runs.sql") })
	if i < 0 {
		t.Fatal("no audit runs migration")
	}
	return ms[:i], ms
}

// walkChain checks the tenant's chain link by link from the genesis (or
// from first's prev_hash) and returns its links.
func walkChain(t *testing.T, s *Store, tenant string, first []byte) []*store.AuditLink {
	t.Helper()
	links, err := s.AuditLinks(t.Context(), tenant, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	prev := first
	for _, l := range links {
		if !l.Sealed() {
			t.Fatalf("event %d is not sealed", l.Event.ID)
		}
		if !bytes.Equal(l.PrevHash, prev) || !bytes.Equal(l.Hash, store.ChainHash(prev, l.Event)) {
			t.Fatalf("event %d: the chain breaks", l.Event.ID)
		}
		prev = l.Hash
	}
	h, err := s.AuditHead(t.Context(), tenant)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(h.Hash, prev) || h.ID != links[len(links)-1].Event.ID {
		t.Fatalf("head %d is not the chain's last event", h.ID)
	}
	return links
}

// TestMigration0025AcrossForms: a trail and access tokens written before
// the audit runs migration (links a row per event, scopes in text[]) and
// after it (links per run, well-formed scopes as text) read back the same
// and form one chain; the sinks' read and a prune whose anchor lies inside
// a run see the same links; scopes that cannot be text stay in text[].
func TestMigration0025AcrossForms(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, pgtest.FreshSchema(t))
	before, all := beforeRuns(t)
	if _, _, err := migrate.Run(ctx, dialect{s}, before, nil); err != nil {
		t.Fatal(err)
	}
	scopeLists := [][]string{nil, {"notes.read"}, {"notes.read", "notes.write"}, {"a b"}, {"", "x"}, {}}
	// Rows as the binary before the migration wrote them.
	for i := range 12 {
		if _, err := s.pool.Exec(ctx, `INSERT INTO audit_events (tenant_id, time, type, request_id, client_id, user_id,
			resource, scopes, ip, outcome, details) VALUES ('default', $1, 'token.issued', $2, 'bot', '', 'https://r', $3,
			'192.0.2.1', 'success', '{"jti":"x"}')`, time.Unix(1700000000+int64(i), 0), fmt.Sprint("old-", i), scopeLists[i%len(scopeLists)]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO access_tokens (jti, tenant_id, grant_id, client_id, user_id, resource, scopes, expires_at)
		VALUES ('old-token', 'default', '', 'bot', '', 'https://r', '{notes.read,notes.write}', now() + interval '1 hour')`); err != nil {
		t.Fatal(err)
	}
	if _, to, err := migrate.Run(ctx, dialect{s}, all, nil); err != nil || to != len(all) {
		t.Fatalf("migrate: version %d, %v", to, err)
	}

	// The old sealer's form: a link row per event, the head and the mark.
	old, err := s.AuditLinks(ctx, store.DefaultTenant, 0, 0)
	if err != nil || len(old) != 12 {
		t.Fatalf("%d old events (%v)", len(old), err)
	}
	prev := store.ChainGenesis
	for _, l := range old {
		h := store.ChainHash(prev, l.Event)
		if _, err := s.pool.Exec(ctx, `INSERT INTO audit_links (id, tenant_id, prev_hash, hash) VALUES ($1, 'default', $2, $3)`,
			l.Event.ID, prev, h); err != nil {
			t.Fatal(err)
		}
		prev = h
	}
	last := old[len(old)-1].Event.ID
	if _, err := s.pool.Exec(ctx, `INSERT INTO audit_chain (tenant_id, head_id, head_hash) VALUES ('default', $1, $2)`, last, prev); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `UPDATE audit_seal SET through = $1`, last); err != nil {
		t.Fatal(err)
	}

	// New events through the store, sealed in two rounds (two runs).
	write := func(from, n int) {
		for i := from; i < from+n; i++ {
			ev := &store.AuditEvent{TenantID: store.DefaultTenant, Time: time.Unix(1700001000+int64(i), 0).UTC(), Type: "token.issued",
				RequestID: fmt.Sprint("new-", i), ClientID: "bot", Resource: "https://r", Scopes: scopeLists[i%len(scopeLists)],
				IP: "192.0.2.1", Outcome: "success", Details: map[string]string{"jti": fmt.Sprint("j", i)}}
			if err := s.AppendAudit(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	sealAllTo := func() {
		w, err := s.AuditWatermark(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.SealAudit(ctx, w, 0); err != nil {
			t.Fatal(err)
		}
	}
	write(0, 12)
	sealAllTo()
	write(12, 12)
	sealAllTo()
	var runs, links int
	if err := s.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM audit_runs), (SELECT count(*) FROM audit_links)`).Scan(&runs, &links); err != nil {
		t.Fatal(err)
	}
	if runs != 2 || links != 12 {
		t.Fatalf("%d runs and %d link rows, want 2 and 12", runs, links)
	}
	chain := walkChain(t, s, store.DefaultTenant, store.ChainGenesis)
	if len(chain) != 36 {
		t.Fatalf("%d events in the chain, want 36", len(chain))
	}
	for i, l := range chain {
		want := scopeLists[(i%12)%len(scopeLists)]
		if len(want) == 0 {
			want = nil
		}
		got := l.Event.Scopes
		if len(got) == 0 {
			got = nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("event %d: scopes %q, want %q", l.Event.ID, got, want)
		}
	}
	// Which form each new event's scopes took.
	var asText, asList int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE scope IS NOT NULL AND scopes IS NULL),
		count(*) FILTER (WHERE scope IS NULL AND scopes IS NOT NULL) FROM audit_events WHERE request_id LIKE 'new-%'`).Scan(&asText, &asList); err != nil {
		t.Fatal(err)
	}
	if asText != 8 || asList != 12 { // {"notes.read"}, two scopes: text; "a b", "" and {}: text[]; nil: neither
		t.Errorf("%d new events with text scopes and %d with text[], want 8 and 12", asText, asList)
	}

	// The sinks' read hands out the same links, across both forms.
	sealed, _, err := s.SealedAudit(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(sealed) != len(chain) {
		t.Fatalf("SealedAudit: %d events, want %d", len(sealed), len(chain))
	}
	for i, l := range sealed {
		if !bytes.Equal(l.Hash, chain[i].Hash) || !bytes.Equal(l.PrevHash, chain[i].PrevHash) {
			t.Fatalf("SealedAudit: event %d's link differs from AuditLinks'", l.Event.ID)
		}
	}

	// An access token of each form.
	at := &store.AccessToken{JTI: "new-token", TenantID: store.DefaultTenant, ClientID: "bot", Resource: "https://r",
		Scopes: []string{"notes.read", "notes.write"}, ExpiresAt: time.Now().Add(time.Hour)}
	if err := s.IssueTokens(ctx, &store.Issuance{AccessToken: at}); err != nil {
		t.Fatal(err)
	}
	for _, jti := range []string{"old-token", "new-token"} {
		got, err := s.GetAccessToken(ctx, jti)
		if err != nil || !reflect.DeepEqual(got.Scopes, []string{"notes.read", "notes.write"}) {
			t.Fatalf("%s: %+v, %v", jti, got, err)
		}
	}

	// A prune whose anchor is inside the second run (and so after the
	// old links): the run is cut to the anchor, which keeps its link.
	anchor := chain[30]
	n, err := s.PruneAudit(ctx, store.AuditPrune{TenantID: store.DefaultTenant, Keep: anchor.Event.ID, PrevHash: anchor.PrevHash}, nil)
	if err != nil || n != 30 {
		t.Fatalf("prune: %d deleted, %v", n, err)
	}
	if err := s.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM audit_runs), (SELECT count(*) FROM audit_links)`).Scan(&runs, &links); err != nil {
		t.Fatal(err)
	}
	if runs != 1 || links != 0 {
		t.Fatalf("after the prune: %d runs and %d link rows, want 1 and 0", runs, links)
	}
	kept := walkChain(t, s, store.DefaultTenant, anchor.PrevHash)
	if len(kept) != 6 || kept[0].Event.ID != anchor.Event.ID || !bytes.Equal(kept[0].Hash, anchor.Hash) {
		t.Fatalf("after the prune: %d events from %d", len(kept), kept[0].Event.ID)
	}
	// More events seal onto the cut run's chain.
	write(24, 3)
	sealAllTo()
	if got := walkChain(t, s, store.DefaultTenant, anchor.PrevHash); len(got) != 9 {
		t.Fatalf("after the prune and three more: %d events", len(got))
	}
}

// TestMigration0025RefusesLiveReplicas: an older binary reads neither runs
// nor text scopes, so the migration refuses while a replica holds a live
// job lease, applies nothing, and runs once the lease has run out.
func TestMigration0025RefusesLiveReplicas(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, pgtest.FreshSchema(t))
	before, all := beforeRuns(t)
	if _, _, err := migrate.Run(ctx, dialect{s}, before, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO job_leases (name, holder, lease_until, since)
		VALUES ('audit-sealer', 'old-replica', now() + interval '10 seconds', now())`); err != nil {
		t.Fatal(err)
	}
	from, to, err := migrate.Run(ctx, dialect{s}, all, nil)
	if err == nil || !strings.Contains(err.Error(), "stop every replica") {
		t.Fatalf("migrating with a live lease: %v, want the refusal", err)
	}
	if from != len(before) || to != len(before) {
		t.Fatalf("version %d → %d, want %d → %d", from, to, len(before), len(before))
	}
	var runs, scope bool
	if err := s.pool.QueryRow(ctx, `SELECT to_regclass('audit_runs') IS NOT NULL,
		EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()
			AND table_name = 'audit_events' AND column_name = 'scope')`).Scan(&runs, &scope); err != nil || runs || scope {
		t.Fatalf("after the refusal: audit_runs %v, audit_events.scope %v (%v), want neither", runs, scope, err)
	}
	if _, err := s.pool.Exec(ctx, `UPDATE job_leases SET lease_until = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	if _, to, err := migrate.Run(ctx, dialect{s}, all, nil); err != nil || to != len(all) {
		t.Fatalf("migrating after the lease ran out: version %d, %v", to, err)
	}
}

// TestAuditLinksPruneBetweenReads: a prune that commits after a reader
// read the events and before it read their runs does not show the reader
// those events without their links: both reads are one snapshot.
func TestAuditLinksPruneBetweenReads(t *testing.T) {
	for _, read := range []struct {
		name string
		do   func(s *Store) ([]*store.AuditLink, error)
	}{
		{"AuditLinks", func(s *Store) ([]*store.AuditLink, error) {
			return s.AuditLinks(t.Context(), store.DefaultTenant, 0, 0)
		}},
		{"SealedAudit", func(s *Store) ([]*store.AuditLink, error) {
			l, _, err := s.SealedAudit(t.Context(), 0, 0)
			return l, err
		}},
	} {
		t.Run(read.name, func(t *testing.T) {
			ctx := t.Context()
			s := newStore(t)
			for i := range 10 {
				if err := s.AppendAudit(ctx, &store.AuditEvent{TenantID: store.DefaultTenant, Time: time.Unix(1700000000+int64(i), 0).UTC(),
					Type: "token.issued", RequestID: fmt.Sprint("r", i), ClientID: "bot"}); err != nil {
					t.Fatal(err)
				}
			}
			w, err := s.AuditWatermark(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.SealAudit(ctx, w, 0); err != nil {
				t.Fatal(err)
			}
			whole, err := read.do(s)
			if err != nil || len(whole) != 10 {
				t.Fatalf("%d links, %v", len(whole), err)
			}
			anchor := whole[7]
			s.betweenLinkReads = func() {
				s.betweenLinkReads = nil
				// Deletes seven events and cuts the run to the last three.
				if n, err := s.PruneAudit(ctx, store.AuditPrune{TenantID: store.DefaultTenant, Keep: anchor.Event.ID, PrevHash: anchor.PrevHash}, nil); err != nil || n != 7 {
					t.Errorf("prune: %d, %v", n, err)
				}
			}
			links, err := read.do(s)
			if err != nil {
				t.Fatal(err)
			}
			if s.betweenLinkReads != nil {
				t.Fatal("the reader read no runs")
			}
			if len(links) != len(whole) {
				t.Fatalf("%d events, want the %d of the snapshot", len(links), len(whole))
			}
			for i, l := range links {
				if !bytes.Equal(l.Hash, whole[i].Hash) || !bytes.Equal(l.PrevHash, whole[i].PrevHash) {
					t.Fatalf("event %d read without its link (sealed %v) while a prune cut its run", l.Event.ID, l.Sealed())
				}
			}
			// The next read sees the pruned trail, whole.
			after, err := read.do(s)
			if err != nil || len(after) != 3 || !bytes.Equal(after[0].PrevHash, anchor.PrevHash) || !bytes.Equal(after[2].Hash, whole[9].Hash) {
				t.Fatalf("after the prune: %d events, %v", len(after), err)
			}
		})
	}
}
