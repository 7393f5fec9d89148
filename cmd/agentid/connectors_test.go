package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/config"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/sqlite"
)

// TestSyncConnectors: the config file's connectors are created at start,
// left alone when unchanged (no event), updated when changed (settings,
// or disabled/enabled when only that changed), and may not move tenant;
// connectors the file does not name stay.
func TestSyncConnectors(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "agentid.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	events := func(typ string) []*store.AuditEvent {
		t.Helper()
		evs, err := st.ListAudit(ctx, store.AuditFilter{Type: typ, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	cli := &store.Connector{TenantID: store.DefaultTenant, ID: "from-cli", Type: store.ConnectorOIDC, Issuer: "https://cli.example", ClientID: "c"}
	if err := st.CreateConnector(ctx, cli, nil); err != nil {
		t.Fatal(err)
	}
	cfgs := []config.ConnectorConfig{{ID: "corp", Name: "Corp", Issuer: "https://idp.corp.example", ClientID: "agentid",
		ClientSecretFile: "/run/secrets/corp", EmailDomains: []string{"corp.example", "a.corp.example"},
		Claims: config.ConnectorClaims{Groups: "groups"}}}
	for range 2 {
		if err := syncConnectors(ctx, st, cfgs, log); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(events(audit.ConnectorCreated)); n != 1 {
		t.Fatalf("%d connector.created events after two starts", n)
	}
	if n := len(events(audit.ConnectorUpdated)); n != 0 {
		t.Fatalf("%d connector.updated events for an unchanged file", n)
	}
	got, err := st.GetConnector(ctx, "corp")
	if err != nil || got.Claims.Groups != "groups" || got.ClientSecretFile != "/run/secrets/corp" || len(got.EmailDomains) != 2 {
		t.Fatalf("corp = %+v, %v", got, err)
	}

	cfgs[0].Disabled = true
	if err := syncConnectors(ctx, st, cfgs, log); err != nil {
		t.Fatal(err)
	}
	cfgs[0].Claims.Roles = "roles"
	if err := syncConnectors(ctx, st, cfgs, log); err != nil {
		t.Fatal(err)
	}
	evs := events(audit.ConnectorUpdated)
	if len(evs) != 2 || evs[1].Details["change"] != audit.ChangeDisabled || evs[0].Details["change"] != "settings" {
		t.Fatalf("connector.updated events %+v", evs)
	}
	if got, _ := st.GetConnector(ctx, "corp"); !got.Disabled || got.Claims.Roles != "roles" {
		t.Fatalf("corp after the changes %+v", got)
	}

	cfgs[0].Tenant = "acme"
	if err := syncConnectors(ctx, st, cfgs, log); err == nil {
		t.Fatal("a connector moved tenant")
	}
	if _, err := st.GetConnector(ctx, "from-cli"); err != nil {
		t.Fatalf("the CLI's connector: %v", err)
	}
}
