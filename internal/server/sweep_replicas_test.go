package server_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/pgtest"
)

// TestSweepsAcrossReplicas: three hubs on one database (each its own
// store handle, as replicas are) run the consent-expiry and client-expiry
// jobs at the same time, twice over: each expired consent is recorded by
// one consent.expired event and each unused client by one client.expired
// event, however the sweeps interleave. The job leases (internal/jobs)
// normally keep the sweeps on one replica; this is what holds when they
// do not (a holder paused past its lease).
func TestSweepsAcrossReplicas(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			var open func() store.Store
			if backend == "postgres" {
				dsn := pgtest.FreshSchema(t)
				open = func() store.Store { return openPostgresStoreAt(t, dsn) }
			} else {
				path := filepath.Join(t.TempDir(), "agentid.db")
				open = func() store.Store { return openSQLiteStore(t, path) }
			}
			now := time.Now().UTC().Truncate(time.Second)
			hubs := make([]*servertest.Hub, 3)
			for i := range hubs {
				opts := []servertest.Option{func(c *server.Config) {
					c.Now = func() time.Time { return now }
					c.Registration = &server.RegistrationConfig{ClientExpiry: 24 * time.Hour}
				}}
				if i > 0 {
					opts = append(opts, servertest.WithKeyring(hubs[0].Keyring))
				}
				hubs[i] = servertest.NewOn(t, open(), opts...)
			}
			ctx := context.Background()
			st := hubs[0].Store

			const people, unused = 30, 20
			var grants []*store.ConsentGrant
			for i := range people {
				for _, scope := range []string{"notes.read", "notes.write"} {
					grants = append(grants, &store.ConsentGrant{TenantID: store.DefaultTenant, UserID: fmt.Sprintf("u%02d", i),
						ClientID: "agent", Resource: hubs[0].Resource, Scope: scope,
						GrantedAt: now.Add(-48 * time.Hour), ExpiresAt: now.Add(-time.Duration(i+1) * time.Minute)})
				}
			}
			if err := st.UpsertConsents(ctx, grants, nil); err != nil {
				t.Fatal(err)
			}
			for i := range unused {
				long := now.Add(-30 * 24 * time.Hour)
				if err := st.CreateClient(ctx, &store.Client{TenantID: store.DefaultTenant, ID: fmt.Sprintf("dcr-%02d", i),
					Name: "Unused", RedirectURIs: []string{"http://127.0.0.1/cb"}, GrantTypes: []string{"authorization_code"},
					ResponseTypes: []string{"code"}, TokenEndpointAuthMethod: "none", ApplicationType: "native",
					RegistrationMethod: store.RegistrationDCR, CreatedAt: long, UpdatedAt: long}, nil); err != nil {
					t.Fatal(err)
				}
			}

			var wg sync.WaitGroup
			errs := make(chan error, 4*len(hubs))
			for range 2 {
				for _, h := range hubs {
					wg.Go(func() { errs <- h.Server.SweepExpiredConsent(ctx) })
					wg.Go(func() { errs <- h.Server.ExpireClients(ctx) })
				}
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}

			count := func(typ string, key func(*store.AuditEvent) string) map[string]int {
				evs, err := st.ListAudit(ctx, store.AuditFilter{Type: typ, Limit: 1000})
				if err != nil {
					t.Fatal(err)
				}
				seen := map[string]int{}
				for _, ev := range evs {
					seen[key(ev)]++
				}
				return seen
			}
			expired := count(audit.ConsentExpired, func(ev *store.AuditEvent) string {
				if ev.Details["noticed_by"] != "sweep" || len(ev.Scopes) != 2 {
					t.Errorf("consent.expired for %s: noticed by %q, scopes %v", ev.UserID, ev.Details["noticed_by"], ev.Scopes)
				}
				return ev.UserID
			})
			removed := count(audit.ClientExpired, func(ev *store.AuditEvent) string { return ev.ClientID })
			var problems []error
			for what, got := range map[string]struct {
				seen map[string]int
				want int
			}{"consent.expired": {expired, people}, "client.expired": {removed, unused}} {
				if len(got.seen) != got.want {
					problems = append(problems, fmt.Errorf("%s recorded for %d keys, want %d", what, len(got.seen), got.want))
				}
				for k, n := range got.seen {
					if n != 1 {
						problems = append(problems, fmt.Errorf("%s recorded %d times for %s", what, n, k))
					}
				}
			}
			if err := errors.Join(problems...); err != nil {
				t.Fatal(err)
			}
		})
	}
}
