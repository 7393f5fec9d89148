package vault

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/keyring"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
	"github.com/agentid/agentid/internal/vault/vaulttest"
)

// rwFixture is a SQLite store holding signing keys, a provider with a
// client secret and API-key connections, all sealed under oldKEK.
type rwFixture struct {
	st             store.Store
	oldKEK, newKEK keyring.KEK
	keys           map[string]string // connection id → API key
	secret         string            // the OAuth provider's client secret
}

// rwBackends are the stores every rotation test runs on (PostgreSQL only
// with AGENTID_TEST_POSTGRES).
var rwBackends = []struct {
	name string
	open func(t *testing.T) func() store.Store
}{{"sqlite", openSQLite}, {"postgres", openPostgres}}

func rwStore(t *testing.T, open func(t *testing.T) func() store.Store) store.Store {
	t.Helper()
	st := open(t)()
	if _, _, err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return st
}

func rwVault(t testing.TB, st store.Store, kr *keyring.Keyring) *Vault {
	t.Helper()
	v, err := New(Config{Store: st, Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func newRewrapFixture(t *testing.T, connections int) *rwFixture {
	return newRewrapFixtureOn(t, openSQLite, connections)
}

func newRewrapFixtureOn(t *testing.T, open func(t *testing.T) func() store.Store, connections int) *rwFixture {
	t.Helper()
	ctx := context.Background()
	f := &rwFixture{st: rwStore(t, open), oldKEK: newKEK(t, "kek-old"), newKEK: newKEK(t, "kek-new"), keys: map[string]string{}}
	oldRing := newKeyring(t, f.oldKEK)
	old := rwVault(t, f.st, oldRing)

	keys, err := token.NewKeys(ctx, token.Options{Store: f.st, Keyring: oldRing})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Rotate(ctx, false); err != nil {
		t.Fatal(err)
	}

	prov := vaulttest.New(t, vaulttest.Options{})
	f.secret = prov.ClientSecret()
	sp, err := prov.StoreProvider(old, store.DefaultTenant, "calendar")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.st.CreateProvider(ctx, sp, nil); err != nil {
		t.Fatal(err)
	}
	kp := vaulttest.APIKeyProvider(store.DefaultTenant, "weather")
	if err := f.st.CreateProvider(ctx, kp, nil); err != nil {
		t.Fatal(err)
	}
	m := audit.Meta{TenantID: store.DefaultTenant, Time: time.Now()}
	for i := range connections {
		key := "wx_key_" + strconv.Itoa(i)
		c, err := old.SaveAPIKey(ctx, m, kp, Owner{Kind: store.OwnerUser, ID: "user" + strconv.Itoa(i%7)}, "", key)
		if err != nil {
			t.Fatal(err)
		}
		f.keys[c.ID] = key
	}
	return f
}

// rotated is the keyring of a rotation: the new KEK current, the old one
// kept for reading.
func (f *rwFixture) rotated(t *testing.T) *keyring.Keyring {
	return newKeyring(t, f.newKEK, f.oldKEK)
}

// checkAllUnderNew opens everything with a keyring that holds the new KEK
// alone: every connection's key, the provider's client secret, and the
// signing keys, which must still sign.
func (f *rwFixture) checkAllUnderNew(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	newOnly := newKeyring(t, f.newKEK)
	v := rwVault(t, f.st, newOnly)
	cs, err := f.st.ListConnections(ctx, store.ConnectionFilter{TenantID: store.DefaultTenant})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != len(f.keys) {
		t.Fatalf("%d connections, want %d", len(cs), len(f.keys))
	}
	for _, c := range cs {
		if c.KEKID != f.newKEK.ID {
			t.Errorf("connection %s: KEKID %q, want %q", c.ID, c.KEKID, f.newKEK.ID)
		}
		cred, err := v.Credential(ctx, audit.Meta{TenantID: store.DefaultTenant}, c, false)
		if err != nil {
			t.Fatalf("connection %s does not open under the new KEK alone: %v", c.ID, err)
		}
		if cred.AccessToken != f.keys[c.ID] {
			t.Fatalf("connection %s: key changed", c.ID)
		}
	}
	p, err := f.st.GetProvider(ctx, store.DefaultTenant, "calendar")
	if err != nil {
		t.Fatal(err)
	}
	if s, err := v.providerSecret(p); err != nil || s != f.secret {
		t.Fatalf("provider secret under the new KEK alone: %v (same: %t)", err, s == f.secret)
	}
	keys, err := token.NewKeys(ctx, token.Options{Store: f.st, Keyring: newOnly})
	if err != nil {
		t.Fatalf("signing keys do not load under the new KEK alone: %v", err)
	}
	now := time.Now()
	raw, err := keys.Mint(&token.AccessClaims{Issuer: "https://hub.example", Subject: "u", Audience: []string{"https://mcp.example"},
		ClientID: "agent", JTI: "j1", IssuedAt: now.Unix(), Expiry: now.Add(time.Minute).Unix()})
	if err != nil {
		t.Fatalf("minting after the rotation: %v", err)
	}
	if _, err := keys.Verify(raw, "https://hub.example"); err != nil {
		t.Fatalf("verifying after the rotation: %v", err)
	}
}

func kekEvents(t *testing.T, st store.Store) []*store.AuditEvent {
	t.Helper()
	evs, err := st.ListAudit(context.Background(), store.AuditFilter{TenantID: store.DefaultTenant, Type: audit.KEKRewrapped, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestRewrap(t *testing.T) {
	for _, b := range rwBackends {
		t.Run(b.name, func(t *testing.T) { testRewrap(t, b.open) })
	}
}

func testRewrap(t *testing.T, open func(t *testing.T) func() store.Store) {
	const n = 2*rewrapBatch + 37 // three batches
	f := newRewrapFixtureOn(t, open, n)
	ctx := context.Background()
	v := rwVault(t, f.st, f.rotated(t))

	var calls []RewrapProgress
	got, err := v.Rewrap(ctx, audit.Meta{Actor: audit.ActorCLI}, func(p RewrapProgress) { calls = append(calls, p) })
	if err != nil {
		t.Fatal(err)
	}
	want := RewrapProgress{Connections: n, SigningKeys: 2, Providers: 1}
	if got != want {
		t.Fatalf("Rewrap = %+v, want %+v", got, want)
	}
	if len(calls) < 3 {
		t.Errorf("progress called %d times, want at least one per batch", len(calls))
	}
	for i := 1; i < len(calls); i++ {
		if calls[i].Connections < calls[i-1].Connections {
			t.Errorf("progress went backwards: %+v after %+v", calls[i], calls[i-1])
		}
	}
	if last := calls[len(calls)-1]; last != want {
		t.Errorf("last progress %+v, want %+v", last, want)
	}
	f.checkAllUnderNew(t)

	evs := kekEvents(t, f.st)
	if len(evs) != 1 {
		t.Fatalf("%d kek.rewrapped events, want 1", len(evs))
	}
	ev := evs[0]
	if ev.Details["kek_id"] != "kek-new" || ev.Details["connections"] != strconv.Itoa(n) || ev.Details["signing_keys"] != "2" || ev.Details["providers"] != "1" || ev.Outcome == audit.Failure {
		t.Errorf("event %+v", ev)
	}
	for k, val := range ev.Details {
		for _, key := range f.keys {
			if val == key {
				t.Errorf("event detail %s carries a key", k)
			}
		}
	}

	// Running again finds nothing to do and records nothing.
	again, err := v.Rewrap(ctx, audit.Meta{}, nil)
	if err != nil || again != (RewrapProgress{}) {
		t.Fatalf("second Rewrap = %+v, %v", again, err)
	}
	if len(kekEvents(t, f.st)) != 1 {
		t.Errorf("an idle run wrote an event")
	}
}

// TestRewrapResumes interrupts a rotation after its first batch and runs
// it again: the second run finishes what the first left, nothing is lost.
func TestRewrapResumes(t *testing.T) {
	const n = 3*rewrapBatch + 5
	f := newRewrapFixture(t, n)
	v := rwVault(t, f.st, f.rotated(t))
	ctx, cancel := context.WithCancel(context.Background())
	first, err := v.Rewrap(ctx, audit.Meta{}, func(p RewrapProgress) {
		if p.Connections > 0 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted Rewrap: %v, want context.Canceled", err)
	}
	if first.Connections == 0 || first.Connections >= n {
		t.Fatalf("first run re-wrapped %d of %d connections; want a part", first.Connections, n)
	}
	second, err := v.Rewrap(context.Background(), audit.Meta{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if first.Connections+second.Connections != n || first.SigningKeys+second.SigningKeys != 2 || first.Providers+second.Providers != 1 {
		t.Errorf("runs re-wrapped %+v then %+v; want %d connections, 2 signing keys, 1 provider in all", first, second, n)
	}
	f.checkAllUnderNew(t)
	evs := kekEvents(t, f.st)
	if len(evs) != 2 || (evs[0].Outcome != audit.Failure && evs[1].Outcome != audit.Failure) {
		t.Errorf("want one event per run, the interrupted one a failure: %+v", evs)
	}
}

// TestRewrapConcurrentCredentials rotates while retrievals run: every
// retrieval gets the right key, before, during and after, and afterwards
// everything opens under the new KEK alone.
func TestRewrapConcurrentCredentials(t *testing.T) {
	for _, b := range rwBackends {
		t.Run(b.name, func(t *testing.T) { testRewrapConcurrentCredentials(t, b.open) })
	}
}

func testRewrapConcurrentCredentials(t *testing.T, open func(t *testing.T) func() store.Store) {
	const n = 2*rewrapBatch + 50
	f := newRewrapFixtureOn(t, open, n)
	ctx := context.Background()
	ring := f.rotated(t)
	// The retrieving hub holds the same keyring as the rotation.
	hub := rwVault(t, f.st, ring)
	ids := make([]string, 0, len(f.keys))
	for id := range f.keys {
		ids = append(ids, id)
	}

	var (
		stop     atomic.Bool
		served   atomic.Int64
		wg       sync.WaitGroup
		errsMu   sync.Mutex
		failures []error
	)
	for w := range 6 {
		wg.Go(func() {
			for i := w; !stop.Load(); i++ {
				id := ids[i%len(ids)]
				c, err := f.st.GetConnection(ctx, store.DefaultTenant, id)
				if err == nil {
					var cred *Credential
					cred, err = hub.Credential(ctx, audit.Meta{TenantID: store.DefaultTenant}, c, false)
					if err == nil && cred.AccessToken != f.keys[id] {
						err = fmt.Errorf("connection %s: wrong key", id)
					}
				}
				if err != nil {
					errsMu.Lock()
					failures = append(failures, err)
					errsMu.Unlock()
					return
				}
				served.Add(1)
			}
		})
	}
	rot := rwVault(t, f.st, ring)
	got, err := rot.Rewrap(ctx, audit.Meta{}, nil)
	// Let the readers run a little under the new wrapping too.
	time.Sleep(50 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if got.Connections != n {
		t.Errorf("re-wrapped %d connections, want %d", got.Connections, n)
	}
	if len(failures) > 0 {
		t.Fatalf("%d retrievals failed during the rotation; first: %v", len(failures), failures[0])
	}
	if served.Load() == 0 {
		t.Fatal("no retrieval ran during the rotation")
	}
	f.checkAllUnderNew(t)
}

// TestRewrapConcurrentRefresh rotates while an OAuth connection is
// refreshed again and again: each refresh re-seals the secret under the
// data key inside UpdateConnection, each re-wrap changes the data key's
// wrapping; neither loses the other's write.
func TestRewrapConcurrentRefresh(t *testing.T) {
	f := newRewrapFixture(t, rewrapBatch+10)
	ctx := context.Background()
	ring := f.rotated(t)
	// Tokens that expire within the vault's refresh margin: every
	// retrieval refreshes.
	prov := vaulttest.New(t, vaulttest.Options{RotateRefreshTokens: true, AccessTokenTTL: DefaultRefreshMargin / 2})
	oldVault := rwVault(t, f.st, newKeyring(t, f.oldKEK))
	sp, err := prov.StoreProvider(oldVault, store.DefaultTenant, "mail")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.st.CreateProvider(ctx, sp, nil); err != nil {
		t.Fatal(err)
	}
	const redirect = "https://hub.example/connections/callback"
	req, err := oldVault.AuthCodeURL(sp, redirect, nil)
	if err != nil {
		t.Fatal(err)
	}
	code, _, err := prov.Authorize(ctx, req.URL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := oldVault.CompleteAuth(ctx, audit.Meta{TenantID: store.DefaultTenant}, sp, Owner{Kind: store.OwnerUser, ID: "user1"}, code, req.Verifier, redirect, req.Scopes...)
	if err != nil {
		t.Fatal(err)
	}

	hub := rwVault(t, f.st, ring)
	var stop atomic.Bool
	var refreshErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		for !stop.Load() {
			c, err := f.st.GetConnection(ctx, store.DefaultTenant, conn.ID)
			if err == nil {
				_, err = hub.Credential(ctx, audit.Meta{TenantID: store.DefaultTenant}, c, false)
			}
			if err != nil {
				refreshErr = err
				return
			}
			time.Sleep(time.Millisecond)
		}
	})
	if _, err := rwVault(t, f.st, ring).Rewrap(ctx, audit.Meta{}, nil); err != nil {
		t.Fatal(err)
	}
	stop.Store(true)
	wg.Wait()
	if refreshErr != nil {
		t.Fatalf("refresh during the rotation: %v", refreshErr)
	}
	if prov.Counts().Refreshes == 0 {
		t.Fatal("no refresh ran during the rotation")
	}
	// The connection opens under the new KEK alone and its refresh token
	// still works at the provider.
	c, err := f.st.GetConnection(ctx, store.DefaultTenant, conn.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c.KEKID != f.newKEK.ID {
		t.Fatalf("KEKID %q after the rotation", c.KEKID)
	}
	cred, err := rwVault(t, f.st, newKeyring(t, f.newKEK)).Credential(ctx, audit.Meta{TenantID: store.DefaultTenant}, c, true)
	if err != nil {
		t.Fatalf("forced refresh under the new KEK alone: %v", err)
	}
	if !prov.AccessTokenValid(cred.AccessToken) {
		t.Error("the refreshed access token is not one the provider issued")
	}
}

// TestRewrapStaleWriteBack: an update that writes a connection's old
// wrapping back after the cursor passed it is caught by the next pass.
func TestRewrapStaleWriteBack(t *testing.T) {
	f := newRewrapFixture(t, 2*rewrapBatch+3)
	ctx := context.Background()
	cs, err := f.st.ListConnections(ctx, store.ConnectionFilter{TenantID: store.DefaultTenant, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	first := cs[0] // the lowest id: re-wrapped in the first batch
	wroteBack := false
	v := rwVault(t, f.st, f.rotated(t))
	_, err = v.Rewrap(ctx, audit.Meta{}, func(p RewrapProgress) {
		if wroteBack || p.Connections < rewrapBatch {
			return
		}
		wroteBack = true
		if _, err := f.st.UpdateConnection(ctx, first.TenantID, first.ID, func(c *store.Connection) error {
			c.DataKey, c.KEKID = first.DataKey, first.KEKID
			return nil
		}, nil); err != nil {
			t.Error(err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if !wroteBack {
		t.Fatal("the stale write never happened")
	}
	f.checkAllUnderNew(t)
}

// TestRewrapUnknownKEK: a row under a KEK the keyring lacks is reported
// (by id, never by content) and the rest is re-wrapped.
func TestRewrapUnknownKEK(t *testing.T) {
	f := newRewrapFixture(t, 10)
	ctx := context.Background()
	stranger := newKEK(t, "kek-stranger")
	sv := rwVault(t, f.st, newKeyring(t, stranger))
	kp, err := f.st.GetProvider(ctx, store.DefaultTenant, "weather")
	if err != nil {
		t.Fatal(err)
	}
	lost, err := sv.SaveAPIKey(ctx, audit.Meta{TenantID: store.DefaultTenant}, kp, Owner{Kind: store.OwnerUser, ID: "user9"}, "", "wx_lost_key")
	if err != nil {
		t.Fatal(err)
	}
	v := rwVault(t, f.st, f.rotated(t))
	got, err := v.Rewrap(ctx, audit.Meta{}, nil)
	if !errors.Is(err, keyring.ErrUnknownKEK) {
		t.Fatalf("Rewrap error %v, want keyring.ErrUnknownKEK", err)
	}
	if got.Connections != 10 {
		t.Errorf("re-wrapped %d connections, want the 10 that open", got.Connections)
	}
	if msg := err.Error(); !containsAll(msg, lost.ID, "1 rows") || containsAll(msg, "wx_lost_key") {
		t.Errorf("error %q should name the connection and never its key", msg)
	}
	evs := kekEvents(t, f.st)
	if len(evs) != 1 || evs[0].Outcome != audit.Failure || evs[0].Details["connections"] != "10" {
		t.Errorf("events %+v", evs)
	}
	c, err := f.st.GetConnection(ctx, store.DefaultTenant, lost.ID)
	if err != nil || c.KEKID != "kek-stranger" {
		t.Errorf("the row that did not open changed: %v %q", err, c.KEKID)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
