package storetest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/store"
)

// The change feed (store.Changes).

// changeKey is what a test expects of one change.
type changeKey struct{ tenant, kind, key string }

func (k changeKey) String() string { return k.tenant + "/" + k.kind + "/" + k.key }

// readAllChanges reads the feed from cur until it stops, and returns the
// changes and the cursor after them. A change delivered twice (allowed on
// PostgreSQL before a reading settles) is kept once.
func readAllChanges(t *testing.T, s store.Changes, cur store.ChangeCursor) ([]store.Change, store.ChangeCursor, bool) {
	t.Helper()
	var out []store.Change
	seen := map[int64]bool{}
	gap := false
	for range 100 {
		b, err := s.ReadChanges(ctx(t), cur, 0)
		must(t, "ReadChanges", err)
		gap = gap || b.Gap
		for _, c := range b.Changes {
			if !seen[c.Seq] {
				seen[c.Seq] = true
				out = append(out, c)
			}
		}
		cur = b.Next
		if !b.More {
			return out, cur, gap
		}
	}
	t.Fatal("ReadChanges never stopped asking for more")
	return nil, cur, false
}

// lastSeq is the highest Seq among changes (or floor).
func lastSeq(changes []store.Change, floor int64) int64 {
	for _, c := range changes {
		floor = max(floor, c.Seq)
	}
	return floor
}

// settle reads from cur until the cursor has passed seq: on PostgreSQL
// that takes the transactions running at the reading (anywhere on the
// cluster) to end.
func settle(t *testing.T, s store.Changes, cur store.ChangeCursor, seq int64) store.ChangeCursor {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for cur.After < seq {
		if time.Now().After(deadline) {
			t.Fatalf("the cursor %+v did not pass seq %d", cur, seq)
		}
		_, cur, _ = readAllChanges(t, s, cur)
		time.Sleep(10 * time.Millisecond)
	}
	return cur
}

// changesAfter performs write and returns the changes it recorded: those
// read after it with a seq above every change read before it (a change
// may be returned again until its reading settles).
func changesAfter(t *testing.T, s store.Store, write func() error) []changeKey {
	t.Helper()
	before, cur, _ := readAllChanges(t, s, store.ChangeCursor{})
	floor := lastSeq(before, 0)
	if err := write(); err != nil {
		t.Fatalf("write: %v", err)
	}
	got, _, _ := readAllChanges(t, s, cur)
	var out []changeKey
	prev := int64(0)
	for _, c := range got {
		if c.Seq <= prev {
			t.Fatalf("changes out of order: %d after %d", c.Seq, prev)
		}
		prev = c.Seq
		if c.Seq <= floor {
			continue
		}
		if c.At.IsZero() || c.At.Location() != time.UTC {
			t.Errorf("change %d: At %v, want a UTC time", c.Seq, c.At)
		}
		out = append(out, changeKey{c.TenantID, c.Kind, c.Key})
	}
	return out
}

// wantChanges checks that got holds every change of want and nothing
// else (in any order and number: a write may record a row twice).
func wantChanges(t *testing.T, what string, got []changeKey, want ...changeKey) {
	t.Helper()
	in := map[changeKey]bool{}
	for _, k := range got {
		in[k] = true
	}
	for _, k := range want {
		if !in[k] {
			t.Errorf("%s: no change %v among %v", what, k, got)
		}
		delete(in, k)
	}
	for k := range in {
		t.Errorf("%s: unexpected change %v", what, k)
	}
}

// testChangesRecorded: every write of what replicas cache records its
// change, with its tenant, kind and key; writes they do not cache, and a
// token issuance noting a client's use, record none.
func testChangesRecorded(t *testing.T, s store.Store) {
	const tn = "t-feed"
	b := base()
	c, u := liveFixture(t, s, tn)
	res := &store.Resource{TenantID: tn, ID: uniq("r"), URI: "https://feed.example.com/" + uniq("mcp"), Name: "Feed",
		Scopes: []store.Scope{{Name: "a", Description: "A"}}, CreatedAt: b}
	key := &store.SigningKey{ID: uniq("kid"), Algorithm: "ES256", PublicJWK: `{"kty":"EC"}`, PrivateEnc: []byte("sealed"), ActivateAt: b, CreatedAt: b}
	ps := &store.PolicySet{TenantID: tn, Files: map[string]string{"p.cedar": "permit(principal, action, resource);"}, Comment: "v", CreatedBy: "admin", CreatedAt: b}
	dom := &store.Domain{TenantID: tn, Pattern: "feed.example.com", Trust: store.DomainBlocked, CreatedAt: b, UpdatedAt: b}
	iss := &store.Issuer{TenantID: tn, ID: uniq("iss"), Issuer: "https://idp.feed.example.com", JWKS: `{"keys":[]}`,
		Uses: []string{store.IssuerUseJWTBearer}, CreatedAt: b, UpdatedAt: b}

	steps := []struct {
		name  string
		write func() error
		want  []changeKey
	}{
		{"update client", func() error {
			_, err := s.UpdateClient(ctx(t), tn, c.ID, func(c *store.Client) error { c.Disabled = true; return nil }, nil)
			return err
		}, []changeKey{{tn, store.ChangeClient, c.ID}}},
		{"issuance touching the client", func() error {
			iss := checkedIssuance(tn, "", c, nil)
			iss.Check = nil
			iss.RefreshToken = nil
			iss.Touch = &store.ClientTouch{TenantID: tn, ClientID: c.ID, At: b.Add(time.Hour)}
			return s.IssueTokens(ctx(t), iss)
		}, nil},
		{"update user", func() error { u.Disabled = true; u.UpdatedAt = b.Add(time.Minute); return s.UpdateUser(ctx(t), u, nil) },
			[]changeKey{{tn, store.ChangeUser, u.ID}}},
		{"create resource", func() error { return s.CreateResource(ctx(t), res, nil) },
			[]changeKey{{tn, store.ChangeResource, res.URI}}},
		{"update resource", func() error {
			res.Name = "Feed 2"
			res.Scopes = append(res.Scopes, store.Scope{Name: "b", Description: "B"})
			return s.UpdateResource(ctx(t), res, nil)
		}, []changeKey{{tn, store.ChangeResource, res.URI}}},
		{"delete resource", func() error { return s.DeleteResource(ctx(t), tn, res.URI, nil) },
			[]changeKey{{tn, store.ChangeResource, res.URI}}},
		{"put domain", func() error { return s.PutDomain(ctx(t), dom, nil) },
			[]changeKey{{tn, store.ChangeDomain, dom.Pattern}}},
		{"delete domain", func() error { return s.DeleteDomain(ctx(t), tn, dom.Pattern, nil) },
			[]changeKey{{tn, store.ChangeDomain, dom.Pattern}}},
		{"create signing key", func() error { return s.CreateSigningKey(ctx(t), key) },
			[]changeKey{{store.DefaultTenant, store.ChangeSigningKey, key.ID}}},
		{"retire signing key", func() error {
			key.RetiredAt, key.ExpiresAt = b.Add(time.Hour), b.Add(2*time.Hour)
			return s.UpdateSigningKey(ctx(t), key)
		}, []changeKey{{store.DefaultTenant, store.ChangeSigningKey, key.ID}}},
		{"delete expired signing keys", func() error { return s.DeleteExpiredSigningKeys(ctx(t), b.Add(3*time.Hour)) },
			[]changeKey{{store.DefaultTenant, store.ChangeSigningKey, key.ID}}},
		{"create policy set", func() error { return s.CreatePolicySet(ctx(t), ps, nil) },
			[]changeKey{{tn, store.ChangePolicy, "1"}}},
		{"activate policy set", func() error { return s.ActivatePolicySet(ctx(t), tn, 1, nil) },
			[]changeKey{{tn, store.ChangePolicy, "1"}}},
		{"create issuer", func() error { return s.CreateIssuer(ctx(t), iss, nil) },
			[]changeKey{{tn, store.ChangeIssuer, iss.ID}}},
		{"disable issuer", func() error { iss.Disabled = true; return s.UpdateIssuer(ctx(t), iss, nil) },
			[]changeKey{{tn, store.ChangeIssuer, iss.ID}}},
		{"delete issuer", func() error { return s.DeleteIssuer(ctx(t), tn, iss.ID, nil) },
			[]changeKey{{tn, store.ChangeIssuer, iss.ID}}},
		{"delete client", func() error { return s.DeleteClient(ctx(t), tn, c.ID, b, nil) },
			[]changeKey{{tn, store.ChangeClient, c.ID}}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			wantChanges(t, st.name, changesAfter(t, s, st.write), st.want...)
		})
	}
	if ps.Version != 1 {
		t.Fatalf("policy set version %d, the steps assumed 1", ps.Version)
	}
}

// testChangesRollback: a write that fails records no change (the change
// is in the writing transaction).
func testChangesRollback(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	c, _ := liveFixture(t, s, tn)
	errRefused := errors.New("refused")
	got := changesAfter(t, s, func() error {
		_, err := s.UpdateClient(ctx(t), tn, c.ID, func(c *store.Client) error { c.Disabled = true; return errRefused }, nil)
		if !errors.Is(err, errRefused) {
			return fmt.Errorf("UpdateClient = %v, want the updater's error", err)
		}
		return nil
	})
	wantChanges(t, "a refused client update", got)
	// A resource update whose scopes break a constraint (a duplicate
	// scope name) is rolled back with the change its first statement
	// recorded.
	res := &store.Resource{TenantID: tn, ID: uniq("r"), URI: "https://rollback.example.com/", Name: "R",
		Scopes: []store.Scope{{Name: "a", Description: "A"}}, CreatedAt: base()}
	must(t, "CreateResource", s.CreateResource(ctx(t), res, nil))
	got = changesAfter(t, s, func() error {
		bad := *res
		bad.Name = "renamed"
		bad.Scopes = []store.Scope{{Name: "a", Description: "A"}, {Name: "a", Description: "again"}}
		if err := s.UpdateResource(ctx(t), &bad, nil); err == nil {
			return errors.New("UpdateResource with a duplicate scope succeeded")
		}
		return nil
	})
	wantChanges(t, "a failed resource update", got)
	stored, err := s.GetResource(ctx(t), tn, res.URI)
	must(t, "GetResource", err)
	if stored.Name != "R" {
		t.Fatalf("the failed update kept its write: %q", stored.Name)
	}
}

// testChangesOrder: the feed returns changes in Seq order, a cursor
// returns only later ones, a limit pages (More), and every change is
// returned even when read a page at a time.
func testChangesOrder(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	before, cur, _ := readAllChanges(t, s, store.ChangeCursor{})
	cur = settle(t, s, cur, lastSeq(before, 0))
	var want []string
	for i := range 7 {
		d := &store.Domain{TenantID: tn, Pattern: "d" + strconv.Itoa(i) + ".example.com", Trust: store.DomainAllowed, CreatedAt: base(), UpdatedAt: base()}
		must(t, "PutDomain", s.PutDomain(ctx(t), d, nil))
		want = append(want, d.Pattern)
	}
	var got []string
	seen := map[int64]bool{}
	prev := cur.After
	for range 50 {
		b, err := s.ReadChanges(ctx(t), cur, 3)
		must(t, "ReadChanges", err)
		if b.Gap {
			t.Fatal("a gap without a prune")
		}
		if len(b.Changes) > 3+int(max(cur.Seen, cur.After)-cur.After) {
			t.Fatalf("%d changes for a limit of 3", len(b.Changes))
		}
		for _, c := range b.Changes {
			if c.Seq <= cur.After {
				t.Fatalf("change %d at or before the cursor %d", c.Seq, cur.After)
			}
			if !seen[c.Seq] {
				if c.Seq <= prev {
					t.Fatalf("change %d returned after %d", c.Seq, prev)
				}
				seen[c.Seq], prev = true, c.Seq
				got = append(got, c.Key)
			}
		}
		if b.Next.After < cur.After {
			t.Fatalf("cursor moved back: %d after %d", b.Next.After, cur.After)
		}
		cur = b.Next
		if !b.More && len(got) == len(want) {
			break
		}
	}
	checkEqual(t, "keys in order", want, got)
	b, err := s.ReadChanges(ctx(t), cur, 0)
	must(t, "ReadChanges at the end", err)
	if b.More {
		t.Error("More at the end of the feed")
	}
	for _, c := range b.Changes {
		if !seen[c.Seq] {
			t.Errorf("change %d appeared at the end", c.Seq)
		}
	}
}

// testChangesPrune: pruning deletes the changes before the cut-off; a
// reader behind them sees a gap once, a reader past them none.
func testChangesPrune(t *testing.T, s store.Store) {
	const tn = store.DefaultTenant
	start := store.ChangeCursor{}
	put := func(p string) {
		must(t, "PutDomain", s.PutDomain(ctx(t), &store.Domain{TenantID: tn, Pattern: p, Trust: store.DomainAllowed, CreatedAt: base(), UpdatedAt: base()}, nil))
	}
	put("old1.example.com")
	put("old2.example.com")
	old, caughtUp, gap := readAllChanges(t, s, start)
	if gap {
		t.Fatal("a gap before any prune")
	}
	caughtUp = settle(t, s, caughtUp, lastSeq(old, 0))
	n, err := s.PruneChanges(ctx(t), time.Now().Add(time.Minute))
	must(t, "PruneChanges", err)
	if n < 2 {
		t.Fatalf("PruneChanges deleted %d, want the 2 changes", n)
	}
	if n, err := s.PruneChanges(ctx(t), time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("PruneChanges of nothing old = %d, %v", n, err)
	}
	put("new.example.com")
	got, next, gap := readAllChanges(t, s, start)
	if !gap {
		t.Error("a reader behind the prune saw no gap")
	}
	var keys []string
	for _, c := range got {
		keys = append(keys, c.Key)
	}
	checkEqual(t, "changes after the prune", []string{"new.example.com"}, keys)
	if _, _, gap := readAllChanges(t, s, next); gap {
		t.Error("the gap was reported again")
	}
	got, _, gap = readAllChanges(t, s, caughtUp)
	if gap || len(got) != 1 || got[0].Key != "new.example.com" {
		t.Errorf("a reader past the pruned changes: %v gap %v", got, gap)
	}
}

// ChangesAcrossStores checks the feed between two handles on one
// database, as two replicas use it: a change written through a is read
// through b, and b's listener is woken by its own writes (SQLite) or by
// any (PostgreSQL: notifyAcross).
func ChangesAcrossStores(t *testing.T, a, b store.Store, notifyAcross bool) {
	const tn = store.DefaultTenant
	before, cur, _ := readAllChanges(t, b, store.ChangeCursor{})
	cur = settle(t, b, cur, lastSeq(before, 0))

	lctx, cancel := context.WithCancel(ctx(t))
	woken := make(chan struct{}, 1)
	ended := make(chan error, 1)
	go func() {
		ended <- b.ListenChanges(lctx, func() {
			select {
			case woken <- struct{}{}:
			default:
			}
		})
	}()
	defer func() {
		cancel()
		if err := <-ended; err != nil {
			t.Errorf("ListenChanges after cancel: %v", err)
		}
	}()
	// The listener may wake once when it starts; let it, then drain.
	time.Sleep(200 * time.Millisecond)
	select {
	case <-woken:
	default:
	}
	wait := func(what string, want bool) {
		t.Helper()
		select {
		case <-woken:
			if !want {
				t.Errorf("%s woke the listener", what)
			}
		case <-time.After(2 * time.Second):
			if want {
				t.Errorf("%s did not wake the listener within 2s", what)
			}
		}
	}

	d := &store.Domain{TenantID: tn, Pattern: "across.example.com", Trust: store.DomainBlocked, CreatedAt: base(), UpdatedAt: base()}
	must(t, "PutDomain through a", a.PutDomain(ctx(t), d, nil))
	wait("a write through the other handle", notifyAcross)
	got, cur, _ := readAllChanges(t, b, cur)
	if len(got) != 1 || got[0].Kind != store.ChangeDomain || got[0].Key != d.Pattern {
		t.Fatalf("read through b: %+v", got)
	}
	must(t, "DeleteDomain through b", b.DeleteDomain(ctx(t), tn, d.Pattern, nil))
	wait("a write through the handle", true)
	// A write that records nothing does not wake (on PostgreSQL another
	// schema's hub on the same database may notify the channel meanwhile).
	must(t, "AppendAudit", b.AppendAudit(ctx(t), event(tn, "feed.nothing")))
	if !notifyAcross {
		wait("an audit append", false)
	}
	// Through a, from b's cursor: the delete (and perhaps the put again,
	// a PostgreSQL reading not settled yet), nothing else.
	got, _, _ = readAllChanges(t, a, cur)
	if len(got) == 0 || len(got) > 2 || got[len(got)-1].Key != d.Pattern {
		t.Fatalf("read through a: %+v", got)
	}
}
