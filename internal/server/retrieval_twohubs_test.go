package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/pgtest"
	"github.com/agentid/agentid/internal/store/postgres"
	"github.com/agentid/agentid/internal/vault"
)

// twoHubs is one deployment run as two hub processes on one database: the
// retrieval hub (hub 1) and a second hub with its own store handle, policy
// engine, vault and HTTP server, sharing hub 1's keyring, issuer and clock.
type twoHubs struct {
	*retrievalHub
	second *hub
}

// twoHubsOptions: postgres runs both on one PostgreSQL schema instead of
// one SQLite file; holder, when set, names both vaults alike in refresh
// leases, so that neither process sees the other's lease as another's.
type twoHubsOptions struct {
	postgres bool
	holder   string
}

func newTwoHubs(t *testing.T, o twoHubsOptions) *twoHubs {
	t.Helper()
	ctx := context.Background()
	var st1, st2 store.Store
	if o.postgres {
		dsn := pgtest.FreshSchema(t)
		st1, st2 = openPostgresStoreAt(t, dsn), openPostgresStoreAt(t, dsn)
	} else {
		path := filepath.Join(t.TempDir(), "agentid.db")
		st1, st2 = openSQLiteStore(t, path), openSQLiteStore(t, path)
	}
	// withHolder gives the hub a vault named holder in leases, on the
	// hub's store, keyring and clock.
	withHolder := func(c *server.Config) {
		if o.holder == "" {
			return
		}
		v, err := vault.New(vault.Config{Store: c.Store, Keyring: c.Keyring, Now: c.Now, Holder: o.holder})
		if err != nil {
			t.Fatal(err)
		}
		c.Vault = v
	}
	h1 := newRetrievalHubWith(t, exchangeOptions{st: st1, hubOpts: []servertest.Option{withHolder}})
	e2, err := policy.New(ctx, policy.Options{Store: st2, Now: h1.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	h2 := servertest.NewOn(t, st2, servertest.WithKeyring(h1.Keyring), func(c *server.Config) {
		c.Issuer, c.Policy, c.Now = h1.URL, e2, h1.clk.Now
	}, withHolder)
	if h2.Vault == h1.Vault || h2.Store == h1.Store {
		t.Fatal("the second hub shares the first one's vault or store handle")
	}
	return &twoHubs{retrievalHub: h1, second: &hub{h2}}
}

// openPostgresStoreAt opens a migrated store on dsn, one handle of
// possibly several.
func openPostgresStoreAt(t testing.TB, dsn string) store.Store {
	t.Helper()
	st, err := postgres.Open(context.Background(), dsn, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, _, err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return st
}

// expiredConnection connects alice's calendar at a provider that rotates
// refresh tokens and answers slowly, and moves the clock past the access
// token's expiry; it returns alice's agent token for A and the expired
// access token.
func (h *twoHubs) expiredConnection(t *testing.T) (conn *store.Connection, subject, expired string) {
	t.Helper()
	const ttl = 2 * time.Minute // well inside the agent token's 10 minutes
	h.cal.SetAccessTokenTTL(ttl)
	h.cal.SetRotateRefreshTokens(true)
	conn = h.connect("calendar.read")
	subject = h.userToken("notes.read")
	r := h.retrieve("mcp-a", subject, "calendar")
	if r.status != http.StatusOK || h.cal.Counts().Refreshes != 0 {
		t.Fatalf("retrieval before expiry: %d %v, %d refreshes", r.status, r.body, h.cal.Counts().Refreshes)
	}
	expired = r.str("access_token")
	h.clk.Advance(ttl + time.Second)
	if h.cal.AccessTokenValid(expired) {
		t.Fatal("the access token outlived the clock")
	}
	// Slow enough that hub 2's retrievals reach its vault while hub 1's
	// refresh is in flight, even under the race detector.
	h.cal.SetTokenDelay(time.Second)
	return conn, subject, expired
}

// retrieveAtBoth sends n retrievals of alice's calendar as the MCP
// server's client, half at each hub, all concurrent: hub 1's half first,
// then, once the provider has received a refresh (some process is
// refreshing), hub 2's half, so that the second process surely asks while
// the refresh is in flight. It needs no *testing.T: the goroutines report
// errors instead of failing the test.
func (h *twoHubs) retrieveAtBoth(n int, subject string) ([]jsonResp, error) {
	form := subjectForm(subject, "resource", h.providerURI("calendar"))
	form.Set("grant_type", grantExchange)
	body := form.Encode()
	bases := []string{h.URL, h.second.URL}
	starts := []chan struct{}{make(chan struct{}), make(chan struct{})}
	out := make([]jsonResp, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			req, err := http.NewRequest(http.MethodPost, bases[i%2]+"/token", strings.NewReader(body))
			if err != nil {
				errs[i] = err
				return
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(url.QueryEscape("mcp-a"), url.QueryEscape(h.secrets["mcp-a"]))
			<-starts[i%2]
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs[i] = err
				return
			}
			defer resp.Body.Close()
			out[i].status, out[i].header = resp.StatusCode, resp.Header
			if err := json.NewDecoder(resp.Body).Decode(&out[i].body); err != nil {
				errs[i] = fmt.Errorf("retrieval %d: %w", i, err)
			}
		})
	}
	before := h.cal.Counts().Refreshes
	close(starts[0])
	var waitErr error
	for deadline := time.Now().Add(10 * time.Second); h.cal.Counts().Refreshes == before; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			waitErr = errors.New("no refresh reached the provider from hub 1's retrievals")
			break
		}
	}
	close(starts[1])
	wg.Wait()
	errs = append(errs, waitErr)
	return out, errors.Join(errs...)
}

// TestRetrievalRefreshOnceAcrossHubs: an expired connection retrieved 50
// times concurrently, half through each of two hub processes on one database
// (SQLite file or PostgreSQL schema), is refreshed at the provider exactly
// once, its rotated refresh token never presented twice, and every caller
// gets the one new access token. Within a process the vault's single
// flight does it; across the two only the store's refresh lease can
// (TestRetrievalRefreshAcrossHubsNeedsLease shows the same load refreshing
// twice without it).
func TestRetrievalRefreshOnceAcrossHubs(t *testing.T) {
	for _, backend := range []struct {
		name     string
		postgres bool
	}{{"sqlite", false}, {"postgres", true}} {
		t.Run(backend.name, func(t *testing.T) {
			h := newTwoHubs(t, twoHubsOptions{postgres: backend.postgres})
			conn, subject, expired := h.expiredConnection(t)
			rs, err := h.retrieveAtBoth(50, subject)
			if err != nil {
				t.Fatal(err)
			}
			fresh := rs[0].str("access_token")
			for i, r := range rs {
				if r.status != http.StatusOK || r.str("access_token") != fresh || r.str("connection_id") != conn.ID {
					t.Fatalf("retrieval %d at hub %d: %d %v", i, i%2+1, r.status, r.body)
				}
			}
			if fresh == expired || !h.cal.AccessTokenValid(fresh) {
				t.Fatal("the callers got the expired access token, or one the provider does not know")
			}
			if n := h.cal.Counts(); n.Refreshes != 1 || n.RefreshReuse != 0 {
				t.Fatalf("the provider saw %d refreshes and %d refresh-token reuses; want exactly 1 and 0", n.Refreshes, n.RefreshReuse)
			}
			ctx := context.Background()
			got, err := h.Store.GetConnection(ctx, store.DefaultTenant, conn.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != store.ConnectionActive || got.RefreshHolder != "" || got.Failures != 0 ||
				!got.ExpiresAt.Equal(h.clk.Now().Add(2*time.Minute)) {
				t.Fatalf("connection after the refresh: %+v", got)
			}
			// Both processes recorded their retrievals in the one database,
			// and the refresh once.
			evs, err := h.Store.ListAudit(ctx, store.AuditFilter{TenantID: store.DefaultTenant, Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			count := map[string]int{}
			for _, ev := range evs {
				count[ev.Type]++
			}
			if count[audit.ConnectionRefreshed] != 1 || count[audit.ConnectionRetrieved] != 51 || count[audit.ConnectionRetrievalDenied] != 0 {
				t.Fatalf("audit: %d refreshed, %d retrieved, %d denied; want 1, 51 (one before expiry), 0",
					count[audit.ConnectionRefreshed], count[audit.ConnectionRetrieved], count[audit.ConnectionRetrievalDenied])
			}
		})
	}
}

// TestRetrievalRefreshAcrossHubsNeedsLease is the control of
// TestRetrievalRefreshOnceAcrossHubs: with both vaults under one holder
// name the store's lease no longer keeps one process out while the other
// refreshes, and the same load makes the provider see a refresh from each
// process, the second one with the rotated-out refresh token. So that
// test's load does make both processes refresh at once unless the lease
// stops one, and a lease that stopped working would fail it.
func TestRetrievalRefreshAcrossHubsNeedsLease(t *testing.T) {
	h := newTwoHubs(t, twoHubsOptions{holder: "one-name-for-both"})
	_, subject, _ := h.expiredConnection(t)
	if _, err := h.retrieveAtBoth(50, subject); err != nil {
		t.Fatal(err)
	}
	if n := h.cal.Counts(); n.Refreshes < 2 || n.RefreshReuse < 1 {
		t.Fatalf("without the lease the provider saw %d refreshes and %d reuses; want two processes refreshing", n.Refreshes, n.RefreshReuse)
	}
}
