package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/jackc/pgx/v5"
	"golang.org/x/oauth2"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/config"
	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/store/pgtest"
	"github.com/agentid/agentid/internal/vault/vaulttest"
)

// The multi-replica deployment's fixed names.
const (
	mrNotes    = "https://notes.example.test/mcp"  // the resource agents are given tokens for
	mrSearch   = "https://search.example.test/mcp" // the next hop of a token exchange
	mrRedirect = "https://agent.example.test/cb"
	mrPassword = "correct horse battery staple" // servertest.TestPassword, for alice
	bobPass    = "bob's long enough password"
	grantTE    = "urn:ietf:params:oauth:grant-type:token-exchange"
	typeAT     = "urn:ietf:params:oauth:token-type:access_token"
	// propagationLimit is issue 15's bound: a change made through one
	// replica (or the CLI) holds at every replica this long after.
	propagationLimit = 2 * time.Second
	// mrReuseInterval is tokens.refresh_token_reuse_interval of the
	// deployment: short, so that the test sees both sides of it (long
	// enough for a retry on a loaded machine).
	mrReuseInterval = 3 * time.Second
	// sweepDeadline bounds the wait, from the replicas' listening, for
	// the consent-expiry sweep (the replica holding its lease runs it
	// every minute, first a minute after it took the lease).
	sweepDeadline = 75 * time.Second
	// takeoverLimit bounds how long after its holder's death another
	// replica runs a background job (the sealer, the sweeps): a job
	// lease's 10 s, a retry and a round of the job.
	takeoverLimit = 20 * time.Second
	// sinkTakeoverLimit bounds the same for an audit sink, whose lease
	// (30 s, long enough for a delivery between renewals) the others try
	// to take every half lease: 45 s and a round.
	sinkTakeoverLimit = 50 * time.Second
)

// deployment is three `agentid serve` processes on one PostgreSQL schema
// behind a round-robin balancer whose address is their issuer, with one
// configuration and one KEK, plus the CLI and a store handle of the test's
// own on the same database.
type deployment struct {
	t *testing.T // the (sub)test using it: helpers fail it
	*cluster
}

// with returns d for the subtest t.
func (d *deployment) with(t *testing.T) *deployment { return &deployment{t: t, cluster: d.cluster} }

// cluster is the deployment's state, shared by the subtests.
type cluster struct {
	ctx      context.Context // the whole test's
	dsn      string
	adminEnv map[string]string // the CLI's environment: the deployment's configuration
	issuer   string            // the balancer
	lb       *balancer
	replicas []*replica
	started  time.Time // when the replicas were started
	ready    time.Time // when the last of them listened
	st       store.Store
	prov     *vaulttest.Provider // the calendar provider whose credentials the vault keeps
	secrets  map[string]string   // client id → secret
	kbotKey  *ecdsa.PrivateKey   // kbot's private_key_jwt key

	mu   sync.Mutex
	jtis map[string]string // jti of every access token the test received → how
	// aliceJar and bobJar are the cookies of alice's and bob's browsers.
	aliceJar, bobJar http.CookieJar
	// hook receives the webhook audit sink "siem" of every replica.
	hook *hookReceiver
	// victim is the replica killed, at killed; sinkMoved gets how long
	// after the kill a survivor held the webhook sink's lease.
	victim    *replica
	killed    time.Time
	sinkMoved chan time.Duration
}

// admin runs the CLI in-process with the deployment's configuration.
func (d *deployment) admin() *vaultEnv { return &vaultEnv{t: d.t, env: d.adminEnv} }

// browser is a person's browser at the balancer, with the cookies of jar.
func (d *deployment) browser(jar http.CookieJar) *servertest.Browser {
	b := (&servertest.Hub{T: d.t, URL: d.issuer}).Browser()
	b.Client().Jar = jar
	return b
}

// TestMultiReplicaPostgres runs one hub as three processes on one
// PostgreSQL database behind a round-robin balancer, so consecutive
// requests of one flow reach different processes, and checks issue 15's
// invariants: a token minted by one replica validates at the others;
// codes, refresh tokens and assertion jtis stay single use across them;
// token exchange and vault retrieval work through any of them, with one
// provider refresh for a burst spread over all three; a key rotation, a
// token revocation, a policy change, a disabled agent, a withdrawn
// consent, a deprovisioned agent and a disabled user hold at every replica
// within 2 s; kill -9 of one replica under load leaves the others serving,
// the audit trail sealed, the webhook sink and every job running; the
// consent-expiry sweep records one event though every live replica runs
// it; each issued token has exactly one token.issued event; and `agentid
// audit verify` passes at the end. docs/design.md ("Many replicas on one
// database") has the list.
func TestMultiReplicaPostgres(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("SIGKILL is a Unix signal")
	}
	// Beside TestMultiReplicaKill9Postgres: most of both is waiting.
	t.Parallel()
	d := newDeployment(t)
	ctx := t.Context()

	t.Run("tokens validate at every replica", func(t *testing.T) {
		d := d.with(t)
		kids := map[string][]string{}
		for _, r := range d.replicas {
			kids[r.name] = jwksKIDs(t, r.url)
		}
		for _, r := range d.replicas[1:] {
			if !slices.Equal(kids[r.name], kids[d.replicas[0].name]) {
				t.Errorf("JWKS differ: %v", kids)
			}
		}
		for _, minter := range d.replicas {
			tok := d.cc(t, minter, "bot")
			for _, r := range d.replicas {
				if err := d.introspectActive(r, tok, true); err != nil {
					t.Errorf("minted at %s, introspected at %s: %v", minter.name, r.name, err)
				}
				if err := verifyAt(ctx, d.issuer, mrNotes, r, tok); err != nil {
					t.Errorf("minted at %s, verified with the JWKS of %s: %v", minter.name, r.name, err)
				}
			}
		}
	})

	t.Run("authorization code across replicas", func(t *testing.T) {
		d := d.with(t)
		alice := d.browser(d.aliceJar)
		// Sign-in and consent: each request at the next replica.
		mark := d.lb.mark()
		d.codeFlow(alice, "alice", mrPassword, "agent-s", d.issuer)
		if seen := distinct(d.lb.trailSince(mark)); len(seen) != len(d.replicas) {
			t.Errorf("sign-in, consent and redemption reached %v, want every replica", seen)
		}
		// A consent that has run out, for the sweep at the end: the agent
		// never comes back, so only the replicas' sweep can notice.
		d.expireConsent("agent-s")

		mark = d.lb.mark()
		code, verifier := d.authorize(alice, "alice", mrPassword, "agent", []string{"notes.read", "notes.write"})
		// Each step of the flow (authorization request, consent page
		// answer) came to another replica than the step before.
		trail := d.lb.trailSince(mark)
		if len(trail) < 2 {
			t.Fatalf("the browser's flow made %d requests", len(trail))
		}
		for i := 1; i < len(trail); i++ {
			if trail[i] == trail[i-1] {
				t.Errorf("two consecutive steps of the flow at %s: %v", trail[i], trail)
			}
		}
		first := d.must(post(d.replicas[0].url, "/token", redeemForm(code, verifier), "agent", d.secrets["agent"]))
		if first.status != http.StatusOK || first.str("access_token") == "" {
			t.Fatalf("code redeemed at %s: %v", d.replicas[0].name, first)
		}
		d.received(first.str("access_token"), "code redemption")
		again := d.must(post(d.replicas[1].url, "/token", redeemForm(code, verifier), "agent", d.secrets["agent"]))
		if again.status != http.StatusBadRequest || again.str("error") != "invalid_grant" {
			t.Errorf("the same code at %s: %v, want 400 invalid_grant", d.replicas[1].name, again)
		}
		// The hub's rule for a replayed code: what it issued is revoked
		// (RFC 6749 §4.1.2), wherever it was issued.
		since := time.Now()
		atEveryReplicaWithin(t, "a replayed code's tokens revoked", since, propagationLimit, d.replicas, func(r *replica) error {
			return d.introspectActive(r, first.str("access_token"), false)
		})
		for _, r := range d.replicas {
			if rr := d.refresh(r, "agent", first.str("refresh_token")); rr.str("error") != "invalid_grant" {
				t.Errorf("refresh from a replayed code at %s: %v, want invalid_grant", r.name, rr)
			}
		}
		if n := d.auditCount(audit.CodeReplayed, "agent"); n != 1 {
			t.Errorf("%d code.replayed events, want 1", n)
		}

		// One code redeemed at all three replicas at once: at most one
		// gets tokens, and the others' replays revoke them (whichever
		// commits first, a replay is never outlived by what the code
		// issued).
		code, verifier = d.authorize(alice, "alice", mrPassword, "agent", []string{"notes.read"})
		replies := d.atAllAtOnce(func(r *replica) (reply, error) {
			return post(r.url, "/token", redeemForm(code, verifier), "agent", d.secrets["agent"])
		})
		if ok := countStatus(replies, http.StatusOK); ok > 1 {
			t.Errorf("one code redeemed concurrently at every replica: %d successes, want at most 1: %v", ok, replies)
		}
		for _, rp := range replies {
			if rp.status != http.StatusOK {
				if rp.str("error") != "invalid_grant" {
					t.Errorf("a concurrent redemption of a redeemed code: %v, want invalid_grant", rp)
				}
				continue
			}
			d.received(rp.str("access_token"), "concurrent code redemption")
			atEveryReplicaWithin(t, "the tokens of a code redeemed three times at once revoked", time.Now(), propagationLimit, d.replicas, func(r *replica) error {
				return d.introspectActive(r, rp.str("access_token"), false)
			})
		}
	})

	t.Run("refresh rotation and reuse across replicas", func(t *testing.T) {
		d := d.with(t)
		alice := d.browser(d.aliceJar)
		g := d.codeFlow(alice, "alice", mrPassword, "agent", d.issuer)
		a, b, c := d.replicas[0], d.replicas[1], d.replicas[2]
		rotated := d.refresh(a, "agent", g.refresh)
		rotatedAt := time.Now()
		if rotated.status != http.StatusOK || rotated.str("refresh_token") == "" || rotated.str("refresh_token") == g.refresh {
			t.Fatalf("refresh at %s: %v", a.name, rotated)
		}
		d.received(rotated.str("access_token"), "refresh")
		// Within the reuse interval the rotated token is accepted once
		// more (a client that lost the answer retries), at any replica.
		retry := d.refresh(b, "agent", g.refresh)
		if time.Since(rotatedAt) < mrReuseInterval {
			if retry.status != http.StatusOK {
				t.Errorf("the rotated token again at %s within the reuse interval: %v, want 200", b.name, retry)
			} else {
				d.received(retry.str("access_token"), "refresh within the reuse interval")
			}
		} else {
			t.Logf("the retry came %s after the rotation, past the reuse interval", time.Since(rotatedAt))
		}
		// After it, the rotated token is reuse: presented at every replica
		// at once, each refuses it, and the family is revoked with one
		// refresh.reuse_detected event.
		time.Sleep(time.Until(rotatedAt.Add(mrReuseInterval + 200*time.Millisecond)))
		replies := d.atAllAtOnce(func(r *replica) (reply, error) {
			return post(r.url, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {g.refresh}}, "agent", d.secrets["agent"])
		})
		for i, rp := range replies {
			if rp.str("error") != "invalid_grant" {
				t.Errorf("the rotated token at %s after the reuse interval: %v, want invalid_grant", d.replicas[i].name, rp)
			}
		}
		if n := d.auditCount(audit.RefreshReuse, "agent"); n != 1 {
			t.Errorf("%d refresh.reuse_detected events after one reuse seen by three replicas, want 1", n)
		}
		since := time.Now()
		atEveryReplicaWithin(t, "reuse detection revokes the family", since, propagationLimit, d.replicas, func(r *replica) error {
			if err := d.introspectActive(r, rotated.str("access_token"), false); err != nil {
				return err
			}
			return d.introspectActive(r, g.access, false)
		})
		if rr := d.refresh(c, "agent", rotated.str("refresh_token")); rr.str("error") != "invalid_grant" {
			t.Errorf("the family's newest refresh token at %s after reuse: %v, want invalid_grant", c.name, rr)
		}
	})

	// Alice's token for the exchange, retrieval and revocation steps.
	g3 := d.codeFlow(d.browser(d.aliceJar), "alice", mrPassword, "agent", d.issuer)
	t.Run("token exchange across replicas", func(t *testing.T) {
		d := d.with(t)
		for _, ex := range d.replicas {
			r := d.exchange(ex, g3.access)
			if r.status != http.StatusOK {
				t.Errorf("exchange at %s: %v", ex.name, r)
				continue
			}
			x := r.str("access_token")
			d.received(x, "exchange")
			if act, _ := jwtPart(x, 1)["act"].(map[string]any); act["sub"] != "mcp-notes" {
				t.Errorf("exchanged token's act %v, want mcp-notes", act)
			}
			for _, at := range d.replicas {
				if err := d.introspectActiveAs(at, x, "mcp-search", true); err != nil {
					t.Errorf("exchanged at %s, introspected at %s: %v", ex.name, at.name, err)
				}
				if err := verifyAt(ctx, d.issuer, mrSearch, at, x); err != nil {
					t.Errorf("exchanged at %s, verified at %s: %v", ex.name, at.name, err)
				}
			}
		}
	})

	t.Run("vault retrieval across replicas", func(t *testing.T) {
		d := d.with(t)
		alice := d.browser(d.aliceJar)
		connectedAt := d.connectCalendar(alice)
		var first string
		for _, r := range d.replicas {
			rr := d.retrieve(r, g3.access, false)
			if rr.status != http.StatusOK || rr.str("provider") != "calendar" {
				t.Fatalf("retrieval at %s: %v", r.name, rr)
			}
			if first == "" {
				first = rr.str("access_token")
			} else if rr.str("access_token") != first {
				t.Errorf("retrieval at %s gave another credential than the first replica", r.name)
			}
		}
		if !d.prov.AccessTokenValid(first) {
			t.Error("the retrieved credential is not the provider's")
		}
		// A burst of forced refreshes (an MCP server told 401 by the
		// provider) spread over every replica: one refresh at the
		// provider, through the store's refresh lease, and all get its
		// token. The vault forces at most one refresh per 5 s.
		time.Sleep(time.Until(connectedAt.Add(5*time.Second + 100*time.Millisecond)))
		d.prov.SetTokenDelay(300 * time.Millisecond)
		defer d.prov.SetTokenDelay(0)
		before := d.prov.Counts().Refreshes
		refreshedBefore := d.auditCount(audit.ConnectionRefreshed, "")
		var wg sync.WaitGroup
		replies := make([]reply, 3*len(d.replicas))
		errs := make([]error, len(replies))
		for i := range replies {
			wg.Go(func() {
				replies[i], errs[i] = d.retrieveE(d.replicas[i%len(d.replicas)], g3.access, true)
			})
		}
		wg.Wait()
		var got []string
		for i, rp := range replies {
			if errs[i] != nil || rp.status != http.StatusOK {
				t.Errorf("forced retrieval %d at %s: %v %v", i, d.replicas[i%len(d.replicas)].name, rp, errs[i])
				continue
			}
			got = append(got, rp.str("access_token"))
		}
		if n := d.prov.Counts().Refreshes - before; n != 1 {
			t.Errorf("%d refreshes at the provider for %d concurrent forced retrievals at %d replicas, want 1", n, len(replies), len(d.replicas))
		}
		if n := d.auditCount(audit.ConnectionRefreshed, "") - refreshedBefore; n != 1 {
			t.Errorf("%d connection.refreshed events for one refresh, want 1", n)
		}
		if slices.Contains(got, first) || len(distinct(got)) != 1 {
			t.Errorf("the forced retrievals got %d distinct credentials (the old one among them: %v), want the one new", len(distinct(got)), slices.Contains(got, first))
		}
	})

	t.Run("key rotation reaches every replica", func(t *testing.T) {
		d := d.with(t)
		since := time.Now() // the change is timed from before it is asked for
		out := d.admin().must("keys", "rotate", "--now")
		m := regexp.MustCompile(`new key (\S+) `).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("keys rotate said:\n%s", out)
		}
		kid := m[1]
		minted := map[string]string{}
		var mu sync.Mutex
		atEveryReplicaWithin(t, "a key rotated with --now signs and is published", since, propagationLimit, d.replicas, func(r *replica) error {
			if !slices.Contains(jwksKIDsE(r.url), kid) {
				return fmt.Errorf("its JWKS lacks the new key %s", kid)
			}
			tok, err := d.ccE(r, "bot")
			if err != nil {
				return err
			}
			if got := kidOf(tok); got != kid {
				return fmt.Errorf("it signs with %s, not the new key %s", got, kid)
			}
			mu.Lock()
			minted[r.name] = tok
			mu.Unlock()
			return nil
		})
		for minter, tok := range minted {
			d.received(tok, "client credentials after rotation")
			for _, r := range d.replicas {
				if err := verifyAt(ctx, d.issuer, mrNotes, r, tok); err != nil {
					t.Errorf("new-key token of %s at %s: %v", minter, r.name, err)
				}
			}
		}
		// Tokens signed before stay valid: the old key is retired, still
		// published.
		for _, r := range d.replicas {
			if err := verifyAt(ctx, d.issuer, mrNotes, r, g3.access); err != nil {
				t.Errorf("a token of the retired key at %s: %v", r.name, err)
			}
		}
	})

	t.Run("token revocation reaches every replica", func(t *testing.T) {
		d := d.with(t)
		since := time.Now()
		rv, err := post(d.replicas[0].url, "/revoke", url.Values{"token": {g3.access}}, "agent", d.secrets["agent"])
		if err != nil || rv.status != http.StatusOK {
			t.Fatalf("revoke at %s: %v %v", d.replicas[0].name, rv, err)
		}
		atEveryReplicaWithin(t, "a revoked access token refused", since, propagationLimit, d.replicas, func(r *replica) error {
			if err := d.introspectActive(r, g3.access, false); err != nil {
				return err
			}
			if x, err := d.exchangeE(r, g3.access); err != nil || x.str("error") != "invalid_grant" {
				return fmt.Errorf("exchange: %v %v", x, err)
			}
			if rr, err := d.retrieveE(r, g3.access, false); err != nil || rr.str("error") != "invalid_grant" {
				return fmt.Errorf("retrieval: %v %v", rr, err)
			}
			return nil
		})
	})

	t.Run("policy change reaches every replica", func(t *testing.T) {
		d := d.with(t)
		for _, r := range d.replicas {
			d.cc(t, r, "pbot") // warm every replica's caches
		}
		dir := filepath.Join(t.TempDir(), "policy")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		files := policy.DefaultFiles()
		files["pbot.cedar"] = `@id("no-pbot")
forbid (principal == Agent::"pbot", action == Action::"grant", resource);`
		for n, text := range files {
			if err := os.WriteFile(filepath.Join(dir, n), []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		since := time.Now()
		d.admin().must("policy", "apply", "-f", dir, "--comment", "pbot off")
		atEveryReplicaWithin(t, "a forbid in a new policy version", since, propagationLimit, d.replicas, func(r *replica) error {
			rr, err := d.ccReplyE(r, "pbot")
			if err != nil {
				return err
			}
			if rr.str("access_token") != "" || rr.str("error") == "" {
				d.received(rr.str("access_token"), "client credentials before the policy took effect")
				return fmt.Errorf("pbot still gets a token: %v", rr.status)
			}
			return nil
		})
	})

	t.Run("disabled agent refused at every replica", func(t *testing.T) {
		d := d.with(t)
		var held string
		for _, r := range d.replicas {
			held = d.cc(t, r, "dbot")
			if err := d.introspectActive(r, held, true); err != nil {
				t.Fatal(err)
			}
		}
		since := time.Now()
		d.admin().must("clients", "disable", "dbot")
		atEveryReplicaWithin(t, "a disabled agent", since, propagationLimit, d.replicas, func(r *replica) error {
			rr, err := d.ccReplyE(r, "dbot")
			if err != nil {
				return err
			}
			if rr.str("error") != "invalid_client" {
				d.received(rr.str("access_token"), "client credentials before the disable took effect")
				return fmt.Errorf("token request: %v", rr.status)
			}
			return d.introspectActive(r, held, false)
		})
	})

	t.Run("withdrawn consent refused at every replica", func(t *testing.T) {
		d := d.with(t)
		alice := d.browser(d.aliceJar)
		gs := d.grantPerReplica(alice, "alice", mrPassword, "agent")
		page := alice.Get(d.issuer + "/account")
		since := time.Now()
		back := alice.Post(d.issuer+"/account/revoke", url.Values{"csrf_token": {csrfField(t, page.Body)}, "client_id": {"agent"}})
		if back.Status != http.StatusOK || !strings.Contains(back.URL.String(), "done=revoked") {
			t.Fatalf("revoking on the account page: %d %s", back.Status, back.URL)
		}
		d.refusedEverywhere(t, "a withdrawn consent", since, gs, "agent", true)
	})

	// Changes an administrator makes with the CLI, each cutting off a
	// grant per replica that the replica has just used.
	for _, tc := range []struct {
		what, user, pw, clientID string
		jar                      http.CookieJar
		change                   []string
		retrieval                bool // the person holds the calendar connection
	}{
		{"deprovisioned agent", "alice", mrPassword, "agent-d", d.aliceJar, []string{"agents", "deprovision", "agent-d"}, true},
		{"disabled user", "bob", bobPass, "agent", d.bobJar, []string{"users", "disable", "bob"}, false},
	} {
		t.Run(tc.what+" refused at every replica", func(t *testing.T) {
			d := d.with(t)
			gs := d.grantPerReplica(d.browser(tc.jar), tc.user, tc.pw, tc.clientID)
			since := time.Now()
			d.admin().must(tc.change...)
			d.refusedEverywhere(t, "a "+tc.what, since, gs, tc.clientID, tc.retrieval)
		})
	}

	t.Run("assertion jti single use across replicas", func(t *testing.T) {
		d := d.with(t)
		a := d.assertion(t)
		form := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}}
		replies := d.atAllAtOnce(func(r *replica) (reply, error) { return post(r.url, "/token", form, "", "") })
		if n := countStatus(replies, http.StatusOK); n != 1 {
			t.Errorf("one client assertion at every replica at once: %d accepted, want 1: %v", n, replies)
		}
		for _, rp := range replies {
			if rp.status == http.StatusOK {
				d.received(rp.str("access_token"), "private_key_jwt")
			} else if rp.str("error") != "invalid_client" {
				t.Errorf("a replayed assertion: %v, want invalid_client", rp)
			}
		}
	})

	t.Run("consent expiry swept once", func(t *testing.T) {
		d := d.with(t)
		deadline := d.ready.Add(sweepDeadline)
		var evs []*store.AuditEvent
		for {
			evs = d.auditEvents(audit.ConsentExpired, "agent-s")
			if len(evs) > 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
		if len(evs) == 0 {
			t.Fatalf("no consent.expired event for agent-s %s after the replicas listened", time.Since(d.ready).Round(time.Second))
		}
		t.Logf("consent.expired recorded %s after the replicas listened", time.Since(d.ready).Round(time.Millisecond))
		// The sweep is a lead job: the replica holding the consent-expiry
		// lease runs it. (That two sweeps at once, a holder cut off and
		// the next, still record one event is the store's single UPDATE …
		// RETURNING: storetest SweepsAcrossStores.)
		sweepers := 0
		for _, l := range d.leases(t) {
			if l.name != "consent-expiry" {
				continue
			}
			for _, r := range d.replicas {
				if r.holds(l.holder) {
					sweepers++
				}
			}
		}
		if sweepers != 1 {
			t.Errorf("the consent-expiry lease is held by %d replicas, want 1", sweepers)
		}
		// Give a second sweep time to record a second event if it would.
		time.Sleep(2 * time.Second)
		if evs = d.auditEvents(audit.ConsentExpired, "agent-s"); len(evs) != 1 {
			t.Errorf("%d consent.expired events for one expired consent, want 1: %v", len(evs), evs)
		} else if evs[0].Details["noticed_by"] != "sweep" {
			t.Errorf("consent.expired noticed by %q, want sweep", evs[0].Details["noticed_by"])
		}
	})

	t.Run("every issued token recorded once", func(t *testing.T) {
		d := d.with(t)
		evs := d.auditEvents(audit.TokenIssued, "")
		count := map[string]int{}
		for _, ev := range evs {
			count[ev.Details["jti"]]++
		}
		for jti, n := range count {
			if n != 1 {
				t.Errorf("jti %s has %d token.issued events", jti, n)
			}
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		for jti, how := range d.jtis {
			if count[jti] != 1 {
				t.Errorf("a token from %s (jti %s) has %d token.issued events, want 1", how, jti, count[jti])
			}
		}
		t.Logf("%d token.issued events, %d of tokens the test holds", len(evs), len(d.jtis))
	})

	t.Run("audit sink delivers each event once", func(t *testing.T) { d.with(t).checkSinkDelivered(false) })
	t.Run("audit verify", func(t *testing.T) { d.with(t).stopAndVerify() })
	t.Logf("requests answered through the balancer, by replica: %v; wall time since the replicas started %s",
		d.lb.servedBy(), time.Since(d.started).Round(time.Millisecond))
}

// TestMultiReplicaKill9Postgres kills, with SIGKILL, the replica of a
// three-replica deployment that holds the most leases (the webhook audit
// sink's, the background jobs') while clients keep asking for tokens
// through the balancer: every request sent after the kill is answered by a
// survivor, each answered request has one token.issued event naming the
// token its client holds, the survivors seal the trail, every job and the
// sink are taken over, the sink delivers every event (twice only within
// one batch), and the trail verifies once the survivors stopped. It runs
// beside TestMultiReplicaPostgres, whose sweep check waits a minute.
func TestMultiReplicaKill9Postgres(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("SIGKILL is a Unix signal")
	}
	t.Parallel()
	d := newDeployment(t)
	t.Run("kill -9 of one replica under load", func(t *testing.T) {
		d := d.with(t)
		d.killUnderLoad(t)
	})

	t.Run("audit sink taken over by a survivor", func(t *testing.T) { d.with(t).checkSinkTakenOver() })
	t.Run("audit verify", func(t *testing.T) { d.with(t).stopAndVerify() })
}

// checkSinkTakenOver waits until a survivor holds the webhook sink after
// the kill, within the sink lease's bound, and checks that every event
// recorded reaches the webhook, twice only within one batch: the one the
// victim may have delivered without recording it (at-least-once).
func (d *deployment) checkSinkTakenOver() {
	t := d.t
	t.Helper()
	if d.sinkMoved == nil {
		t.Fatal("no replica was killed")
	}
	var moved time.Duration
	select {
	case moved = <-d.sinkMoved:
	case <-time.After(time.Until(d.killed.Add(time.Minute + time.Second))): // the watcher gives up after a minute
	}
	if moved < 0 {
		t.Fatalf("no survivor took the webhook sink over within a minute of the kill of %s", d.victim.name)
	}
	if moved > sinkTakeoverLimit {
		t.Errorf("a survivor held the webhook sink %s after the kill of its holder %s, want within %s", moved, d.victim.name, sinkTakeoverLimit)
	}
	t.Logf("a survivor held the webhook sink %s after the kill of its holder %s", moved.Round(time.Millisecond), d.victim.name)
	// The batch the victim may have delivered without recording it
	// (at-least-once) is sent again by the survivor.
	d.checkSinkDelivered(true)
}

// checkSinkDelivered waits until everything recorded until now reached the
// webhook, and checks that each event came once; with resent, events of
// one batch may have come twice.
func (d *deployment) checkSinkDelivered(resent bool) {
	t := d.t
	t.Helper()
	want := d.auditEvents("", "")
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, batches, bad := d.hook.received()
		var missing []int64
		for _, ev := range want {
			if got[ev.ID] == 0 {
				missing = append(missing, ev.ID)
			}
		}
		if len(missing) > 0 && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		if len(missing) > 0 {
			t.Errorf("%d of %d events never reached the webhook, e.g. %v", len(missing), len(want), missing[:min(5, len(missing))])
		}
		if len(bad) > 0 {
			t.Errorf("deliveries refused by the receiver: %v", bad)
		}
		var twice []int64
		for id, n := range got {
			if n > 1 {
				twice = append(twice, id)
			}
		}
		if len(twice) > 0 && (!resent || !oneBatchHolds(batches, twice)) {
			t.Errorf("%d events delivered more than once: %v", len(twice), twice[:min(10, len(twice))])
		}
		t.Logf("%d events delivered in %d batches, %d of them twice", len(got), len(batches), len(twice))
		return
	}
}

// stopAndVerify stops the live replicas (SIGTERM: each must exit 0) and
// runs `agentid audit verify`, which must find the chain intact and
// everything sealed.
func (d *deployment) stopAndVerify() {
	t := d.t
	t.Helper()
	for _, r := range d.replicas {
		if !r.alive() {
			continue
		}
		if code := r.stop(); code != 0 {
			t.Errorf("replica %s exited %d on SIGTERM:\n%s", r.name, code, tail(r.stderr.String(), 20))
		}
	}
	out := d.admin().must("audit", "verify")
	if !strings.Contains(out, "chain intact") || !strings.Contains(out, " 0 event(s) not sealed yet") {
		t.Errorf("audit verify after the run:\n%s", out)
	}
}

// newDeployment configures the deployment through the CLI, starts the
// balancer and the three replicas.
func newDeployment(t *testing.T) *deployment {
	dsn := pgtest.FreshSchema(t)
	work := t.TempDir()
	lb, srv := newBalancer(t)
	aliceJar, _ := cookiejar.New(nil)
	bobJar, _ := cookiejar.New(nil)
	d := &deployment{t: t, cluster: &cluster{ctx: t.Context(), dsn: dsn, issuer: srv.URL, lb: lb, secrets: map[string]string{}, jtis: map[string]string{}, aliceJar: aliceJar, bobJar: bobJar}}
	d.prov = vaulttest.New(t, vaulttest.Options{Scopes: []string{"calendar.read"}})
	// Every replica streams the trail to one webhook: one dispatcher at a
	// time holds the sink.
	hookKey := []byte("hook-key-" + rand.Text())
	hook, hookSrv := newHookReceiver(t, hookKey)
	d.hook = hook
	keyFile := filepath.Join(work, "hook.key")
	if err := os.WriteFile(keyFile, hookKey, 0o600); err != nil {
		t.Fatal(err)
	}
	serveConfig := filepath.Join(work, "agentid.yaml")
	if err := os.WriteFile(serveConfig, []byte(`audit:
  sinks:
    - name: siem
      type: webhook
      url: `+hookSrv.URL+`/hook
      secret_file: `+keyFile+`
`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"AGENTID_STORE_DSN": dsn,
		"AGENTID_KEK_FILE":  filepath.Join(work, "kek.key"),
		"AGENTID_ISSUER":    d.issuer,
		"AGENTID_TOKENS_REFRESH_TOKEN_REUSE_INTERVAL": mrReuseInterval.String(),
	}
	d.adminEnv = with(env, "AGENTID_DATA_DIR", filepath.Join(work, "admin"))
	a := d.admin()
	a.must("kek", "generate", "--out", env["AGENTID_KEK_FILE"])
	a.must("migrate")
	a.must("keys", "rotate", "--now") // the key every replica loads at start
	a.must("resources", "add", "--uri", mrNotes, "--name", "Notes", "--scope", "notes.read=Read your notes", "--scope", "notes.write=Write your notes")
	a.must("resources", "add", "--uri", mrSearch, "--name", "Search", "--scope", "notes.read=Search your notes")
	for _, u := range []struct{ name, pw string }{{"alice", mrPassword}, {"bob", bobPass}} {
		if code, out, errOut := a.run(u.pw+"\n", "users", "add", u.name, "--password-stdin"); code != 0 {
			t.Fatalf("users add %s: %s%s", u.name, out, errOut)
		}
	}
	for _, id := range []string{"agent", "agent-d", "agent-s"} {
		d.addClient("--name", "Agent "+id, "--id", id, "--redirect-uri", mrRedirect, "--grant-type", "authorization_code", "--grant-type", "refresh_token")
	}
	for _, id := range []string{"mcp-notes", "mcp-search"} {
		d.addClient("--name", id, "--id", id, "--grant-type", grantTE)
	}
	for _, id := range []string{"bot", "pbot", "dbot"} {
		d.addClient("--name", id, "--id", id, "--grant-type", "client_credentials", "--tag", "cc:notes.read", "--resource", mrNotes)
	}
	var err error
	if d.kbotKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &d.kbotKey.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	jwks := filepath.Join(work, "kbot.jwks")
	if err := os.WriteFile(jwks, set, 0o600); err != nil {
		t.Fatal(err)
	}
	d.addClient("--name", "kbot", "--id", "kbot", "--auth-method", "private_key_jwt", "--jwks-file", jwks,
		"--grant-type", "client_credentials", "--tag", "cc:notes.read", "--resource", mrNotes)
	a.must("resources", "link", mrNotes, "mcp-notes")
	a.must("resources", "link", mrSearch, "mcp-search")
	secretFile := filepath.Join(work, "calendar.secret")
	if err := os.WriteFile(secretFile, []byte(d.prov.ClientSecret()), 0o600); err != nil {
		t.Fatal(err)
	}
	a.must("providers", "add", "calendar", "--kind", "oauth2", "--authorization-endpoint", d.prov.AuthorizationEndpoint(),
		"--token-endpoint", d.prov.TokenEndpoint(), "--revocation-endpoint", d.prov.RevocationEndpoint(),
		"--client-id", d.prov.ClientID(), "--client-secret-file", secretFile, "--scope", "calendar.read")
	a.must("resources", "update", mrNotes, "--provider", "calendar", "--provider-scope", "notes.read=calendar.read")

	cfg, err := config.Load("", a.lookup)
	if err != nil {
		t.Fatal(err)
	}
	if d.st, err = openStore(t.Context(), cfg, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.st.Close() })

	// The replicas: one configuration, each with a data directory of its
	// own (it holds nothing but the lock; the KEK file is shared), started
	// together.
	d.started = time.Now()
	d.replicas = make([]*replica, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range d.replicas {
		wg.Go(func() {
			name := fmt.Sprintf("r%d", i+1)
			d.replicas[i], errs[i] = startReplica(t, name, with(with(env, "AGENTID_DATA_DIR", filepath.Join(work, name)), "AGENTID_LISTEN", "127.0.0.1:0"),
				"--config", serveConfig)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	d.ready = time.Now()
	t.Logf("replicas listening %s after start", d.ready.Sub(d.started).Round(time.Millisecond))
	lb.add(d.replicas...)
	t.Cleanup(func() {
		if t.Failed() {
			for _, r := range d.replicas {
				t.Logf("replica %s log (last lines):\n%s", r.name, tail(r.stderr.String(), 30))
			}
		}
	})
	return d
}

func with(env map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(env)+1)
	for k, v := range env {
		out[k] = v
	}
	out[k] = v
	return out
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func distinct(xs []string) []string {
	out := slices.Clone(xs)
	slices.Sort(out)
	return slices.Compact(out)
}

func countStatus(rs []reply, status int) int {
	n := 0
	for _, r := range rs {
		if r.status == status {
			n++
		}
	}
	return n
}

func (d *deployment) addClient(args ...string) {
	d.t.Helper()
	out := d.admin().must(append([]string{"clients", "add"}, args...)...)
	creds := map[string]string{}
	for _, m := range clientField.FindAllStringSubmatch(out, -1) {
		creds[m[1]] = m[2]
	}
	if creds["client_id"] == "" {
		d.t.Fatalf("clients add printed no client id:\n%s", out)
	}
	d.secrets[creds["client_id"]] = creds["client_secret"]
}

// must fails the test on a transport error.
func (d *deployment) must(r reply, err error) reply {
	d.t.Helper()
	if err != nil {
		d.t.Fatal(err)
	}
	return r
}

// received notes an access token the test was given, whose token.issued
// event the end checks.
func (d *deployment) received(tok, how string) {
	if jti := jtiOf(tok); jti != "" {
		d.mu.Lock()
		d.jtis[jti] = how
		d.mu.Unlock()
	}
}

// atAllAtOnce sends one request to every replica at the same moment.
func (d *deployment) atAllAtOnce(send func(*replica) (reply, error)) []reply {
	d.t.Helper()
	out := make([]reply, len(d.replicas))
	errs := make([]error, len(d.replicas))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, r := range d.replicas {
		wg.Go(func() {
			<-start
			out[i], errs[i] = send(r)
		})
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		d.t.Fatal(err)
	}
	return out
}

// authorize runs the browser's part of the authorization-code flow with
// PKCE through the balancer, signing in as user when asked and approving
// scopes when the consent page comes; it returns the code and verifier.
func (d *deployment) authorize(b *servertest.Browser, user, pw, clientID string, scopes []string) (code, verifier string) {
	d.t.Helper()
	verifier = oauth2.GenerateVerifier()
	state := rand.Text()
	q := url.Values{
		"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {mrRedirect}, "scope": {strings.Join(scopes, " ")},
		"state": {state}, "code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}, "resource": {mrNotes},
	}
	p := b.Get(d.issuer + "/authorize?" + q.Encode())
	if strings.Contains(p.Body, `action="/login"`) {
		p = b.Login(p, user, pw)
	}
	if p.Location == nil {
		p = b.Consent(p, scopes)
	}
	if p.Location == nil {
		d.t.Fatalf("the flow did not return to the client: %d %s\n%s", p.Status, p.URL, p.Body)
	}
	back := p.Location.Query()
	if back.Get("state") != state || back.Get("iss") != d.issuer || back.Get("code") == "" {
		d.t.Fatalf("redirect back to the client: %s", p.Location)
	}
	return back.Get("code"), verifier
}

func redeemForm(code, verifier string) url.Values {
	return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {mrRedirect}, "code_verifier": {verifier}, "resource": {mrNotes}}
}

// grant is what a code flow gave an agent.
type grant struct {
	access, refresh string
	at              *replica // the replica a per-replica grant is used at
}

// codeFlow runs the whole authorization-code flow at base (the balancer
// or one replica) and returns the tokens.
func (d *deployment) codeFlow(b *servertest.Browser, user, pw, clientID, base string) *grant {
	d.t.Helper()
	code, verifier := d.authorize(b, user, pw, clientID, []string{"notes.read"})
	r := d.must(post(base, "/token", redeemForm(code, verifier), clientID, d.secrets[clientID]))
	if r.status != http.StatusOK || r.str("access_token") == "" || r.str("refresh_token") == "" {
		d.t.Fatalf("code redeemed by %s: %v", clientID, r)
	}
	d.received(r.str("access_token"), "code redemption")
	return &grant{access: r.str("access_token"), refresh: r.str("refresh_token")}
}

// grantPerReplica gives clientID one grant of user's per replica and
// uses each once at its replica (a refresh, and for alice a retrieval), so
// that every replica has the client, the person and the grant in its
// caches before a change.
func (d *deployment) grantPerReplica(b *servertest.Browser, user, pw, clientID string) []*grant {
	d.t.Helper()
	gs := make([]*grant, len(d.replicas))
	for i, r := range d.replicas {
		g := d.codeFlow(b, user, pw, clientID, d.issuer)
		g.at = r
		rr := d.refresh(r, clientID, g.refresh)
		if rr.status != http.StatusOK {
			d.t.Fatalf("refresh at %s before the change: %v", r.name, rr)
		}
		d.received(rr.str("access_token"), "refresh")
		g.access, g.refresh = rr.str("access_token"), rr.str("refresh_token")
		if user == "alice" {
			if x := d.retrieve(r, g.access, false); x.status != http.StatusOK {
				d.t.Fatalf("retrieval at %s before the change: %v", r.name, x)
			}
		}
		gs[i] = g
	}
	return gs
}

// refusedEverywhere checks that, within the bound from since, each
// replica refuses its grant's refresh token, reports its access token
// inactive and, with retrieval, refuses a vault retrieval with it.
func (d *deployment) refusedEverywhere(t *testing.T, what string, since time.Time, gs []*grant, clientID string, retrieval bool) {
	t.Helper()
	byName := map[string]*grant{}
	for _, g := range gs {
		byName[g.at.name] = g
	}
	atEveryReplicaWithin(t, what, since, propagationLimit, d.replicas, func(r *replica) error {
		g := byName[r.name]
		if err := d.introspectActive(r, g.access, false); err != nil {
			return err
		}
		if retrieval {
			x, err := d.retrieveE(r, g.access, false)
			if err != nil {
				return err
			}
			if x.status == http.StatusOK {
				return errors.New("a vault retrieval with its token succeeds")
			}
		}
		rr, err := d.refreshE(r, clientID, g.refresh)
		if err != nil {
			return err
		}
		if rr.status == http.StatusOK {
			// The refresh went through: carry on with the new token.
			d.received(rr.str("access_token"), "refresh before the change took effect")
			g.access, g.refresh = rr.str("access_token"), rr.str("refresh_token")
			return errors.New("its refresh token still refreshes")
		}
		if e := rr.str("error"); e != "invalid_grant" && e != "invalid_client" {
			return fmt.Errorf("refresh: %v, want invalid_grant or invalid_client", rr)
		}
		return nil
	})
}

// The helpers whose names end in E return errors rather than failing
// the test, for the checks that run in goroutines.

func (d *deployment) refresh(r *replica, clientID, rt string) reply {
	d.t.Helper()
	return d.must(d.refreshE(r, clientID, rt))
}

func (d *deployment) refreshE(r *replica, clientID, rt string) (reply, error) {
	return post(r.url, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, clientID, d.secrets[clientID])
}

// ccReplyE asks replica r for a client-credentials token for clientID.
func (d *deployment) ccReplyE(r *replica, clientID string) (reply, error) {
	return post(r.url, "/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"notes.read"}}, clientID, d.secrets[clientID])
}

func (d *deployment) ccE(r *replica, clientID string) (string, error) {
	rr, err := d.ccReplyE(r, clientID)
	if err != nil {
		return "", err
	}
	if rr.status != http.StatusOK || rr.str("access_token") == "" {
		return "", fmt.Errorf("client credentials for %s: %v", clientID, rr)
	}
	return rr.str("access_token"), nil
}

func (d *deployment) cc(t *testing.T, r *replica, clientID string) string {
	t.Helper()
	tok, err := d.ccE(r, clientID)
	if err != nil {
		t.Fatalf("at %s: %v", r.name, err)
	}
	d.received(tok, "client credentials")
	return tok
}

// introspectActive asks replica r, as the notes resource server, whether
// tok is active, and says whether that is want.
func (d *deployment) introspectActive(r *replica, tok string, want bool) error {
	return d.introspectActiveAs(r, tok, "mcp-notes", want)
}

func (d *deployment) introspectActiveAs(r *replica, tok, as string, want bool) error {
	rr, err := post(r.url, "/introspect", url.Values{"token": {tok}}, as, d.secrets[as])
	if err != nil {
		return err
	}
	if rr.status != http.StatusOK {
		return fmt.Errorf("introspection: %v", rr)
	}
	if got, _ := rr.body["active"].(bool); got != want {
		return fmt.Errorf("introspection says active=%v, want %v", got, want)
	}
	return nil
}

// exchange is RFC 8693 at replica r: the notes MCP server exchanges the
// person's token for one to the search resource.
func (d *deployment) exchange(r *replica, subject string) reply {
	d.t.Helper()
	return d.must(d.exchangeE(r, subject))
}

func (d *deployment) exchangeE(r *replica, subject string) (reply, error) {
	return post(r.url, "/token", url.Values{"grant_type": {grantTE}, "subject_token": {subject}, "subject_token_type": {typeAT},
		"resource": {mrSearch}, "scope": {"notes.read"}}, "mcp-notes", d.secrets["mcp-notes"])
}

// retrieve is a vault retrieval at replica r: the notes MCP server asks
// for the person's calendar credential with their token.
func (d *deployment) retrieve(r *replica, subject string, force bool) reply {
	d.t.Helper()
	return d.must(d.retrieveE(r, subject, force))
}

func (d *deployment) retrieveE(r *replica, subject string, force bool) (reply, error) {
	form := url.Values{"grant_type": {grantTE}, "subject_token": {subject}, "subject_token_type": {typeAT}, "resource": {d.issuer + "/providers/calendar"}}
	if force {
		form.Set("force_refresh", "true")
	}
	return post(r.url, "/token", form, "mcp-notes", d.secrets["mcp-notes"])
}

var csrfRe = regexp.MustCompile(`name="csrf_token" value="([^"]*)"`)

func csrfField(t *testing.T, body string) string {
	t.Helper()
	m := csrfRe.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("page has no CSRF token:\n%.2000s", body)
	}
	return html.UnescapeString(m[1])
}

// connectCalendar connects alice's calendar through the balancer: the
// connections page, the start of the provider's flow (its state sealed
// in a cookie by the KEK every replica shares), the provider's consent and
// the callback, each request at another replica. It returns when the
// connection was made.
func (d *deployment) connectCalendar(b *servertest.Browser) time.Time {
	t := d.t
	t.Helper()
	page := b.Get(d.issuer + "/connections")
	start := b.Post(d.issuer+"/connections/calendar/start", url.Values{"csrf_token": {csrfField(t, page.Body)}, "scope": {"calendar.read"}})
	if start.Location == nil || !strings.HasPrefix(start.Location.String(), d.prov.AuthorizationEndpoint()) {
		t.Fatalf("connect start: %d %v\n%.2000s", start.Status, start.Location, start.Body)
	}
	code, state, err := d.prov.Authorize(t.Context(), start.Location.String())
	if err != nil {
		t.Fatal(err)
	}
	done := b.Get(d.issuer + "/connections/callback?" + url.Values{"code": {code}, "state": {state}}.Encode())
	at := time.Now()
	cs, err := d.st.ListConnections(t.Context(), store.ConnectionFilter{TenantID: store.DefaultTenant, ProviderID: "calendar"})
	if err != nil || len(cs) != 1 {
		t.Fatalf("after the callback (%d %s): %d connections, %v", done.Status, done.URL, len(cs), err)
	}
	return at
}

// assertion is a private_key_jwt client assertion of kbot, for the
// issuer.
func (d *deployment) assertion(t *testing.T) string {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: d.kbotKey, KeyID: "k1"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: "kbot", Subject: "kbot", Audience: jwt.Audience{d.issuer}, ID: rand.Text(),
		IssuedAt: jwt.NewNumericDate(time.Now()), Expiry: jwt.NewNumericDate(time.Now().Add(time.Minute))}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// expireConsent moves the expiry of every consent clientID holds into the
// past, as if its time had run out.
func (d *deployment) expireConsent(clientID string) {
	d.t.Helper()
	ctx := d.t.Context()
	conn, err := pgx.Connect(ctx, d.dsn)
	if err != nil {
		d.t.Fatal(err)
	}
	defer conn.Close(ctx)
	tag, err := conn.Exec(ctx, `UPDATE consents SET expires_at = now() - interval '1 second' WHERE client_id = $1 AND revoked_at IS NULL`, clientID)
	if err != nil || tag.RowsAffected() == 0 {
		d.t.Fatalf("expiring %s's consent: %d rows, %v", clientID, tag.RowsAffected(), err)
	}
}

func (d *deployment) auditEvents(typ, clientID string) []*store.AuditEvent {
	d.t.Helper()
	evs, err := d.st.ListAudit(context.Background(), store.AuditFilter{TenantID: store.DefaultTenant, Type: typ, ClientID: clientID, Limit: 1 << 20})
	if err != nil {
		d.t.Fatal(err)
	}
	return evs
}

func (d *deployment) auditCount(typ, clientID string) int { return len(d.auditEvents(typ, clientID)) }

func jwksKIDsE(base string) []string {
	resp, err := hubHTTP.Get(base + "/jwks.json")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct {
			KID string `json:"kid"`
		} `json:"keys"`
	}
	if json.NewDecoder(resp.Body).Decode(&set) != nil {
		return nil
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KID)
	}
	return kids
}

// killUnderLoad sends client-credentials requests through the balancer
// from several clients, kills one replica with SIGKILL in the middle and
// keeps the load on. Every request sent after the kill is answered by a
// survivor; every answered request has exactly one token.issued event
// (its X-Request-Id) naming the token the client got, and only requests
// cut off by the kill may have one their client never saw; the
// survivors seal the trail; the background jobs the victim led are taken
// over.
func (d *deployment) killUnderLoad(t *testing.T) {
	const workers = 6
	leasesBefore := d.leases(t)
	victim := d.leader(t, leasesBefore)
	type sent struct {
		at     time.Time
		status int   // 0: no answer (err)
		err    error // the client's, when the balancer closed on it
		jti    string
	}
	var (
		mu       sync.Mutex
		requests = map[string]sent{} // X-Request-Id → outcome
		lost     = map[string]bool{} // sent, no answer (the kill)
		stop     atomic.Bool
		wg       sync.WaitGroup
	)
	client := &http.Client{Timeout: 10 * time.Second}
	for w := range workers {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				rid := fmt.Sprintf("load-%d-%d", w, i)
				req, _ := http.NewRequest(http.MethodPost, d.issuer+"/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "scope": {"notes.read"}}.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("X-Request-Id", rid)
				req.SetBasicAuth("bot", d.secrets["bot"])
				at := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					mu.Lock()
					requests[rid] = sent{at: at, err: err}
					lost[rid] = true
					mu.Unlock()
					continue
				}
				var body struct {
					AccessToken string `json:"access_token"`
				}
				_ = json.NewDecoder(resp.Body).Decode(&body)
				resp.Body.Close()
				mu.Lock()
				requests[rid] = sent{at: at, status: resp.StatusCode, jti: jtiOf(body.AccessToken)}
				if resp.StatusCode == http.StatusBadGateway {
					lost[rid] = true // the balancer lost the replica mid-request
				}
				mu.Unlock()
			}
		})
	}
	okCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, s := range requests {
			if s.status == http.StatusOK {
				n++
			}
		}
		return n
	}
	for deadline := time.Now().Add(10 * time.Second); okCount() < 150 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	servedBefore := d.lb.servedBy()
	signalled := time.Now()
	victim.kill()
	killed := time.Now() // the victim's exit seen: from here nothing may be lost
	d.victim, d.killed = victim, killed
	d.sinkMoved = make(chan time.Duration, 1)
	go d.watchSinkTakeover(d.ctx)
	t.Logf("killed %s (SIGKILL) after %d tokens", victim.name, okCount())
	time.Sleep(2 * time.Second)
	stop.Store(true)
	wg.Wait()
	servedAfter := d.lb.servedBy()

	mu.Lock()
	defer mu.Unlock()
	after, failedAfter := 0, 0
	for rid, s := range requests {
		if s.at.After(killed) {
			after++
			if s.status != http.StatusOK {
				failedAfter++
				t.Errorf("request %s sent after the kill: %d %v", rid, s.status, s.err)
			}
		}
	}
	if after == 0 {
		t.Fatal("no request was sent after the kill")
	}
	for _, r := range d.replicas {
		if r != victim && servedAfter[r.name] == servedBefore[r.name] {
			t.Errorf("survivor %s answered nothing after the kill", r.name)
		}
	}
	// A request is lost only when the kill cut it off: sent before the
	// victim's exit was seen, in flight at the signal or sent while the
	// dying process still held connections (the balancer's pooled ones
	// among them); every later one was answered, as checked above.
	inWindow := 0
	for rid := range lost {
		if requests[rid].at.After(signalled) {
			inWindow++
		}
	}
	t.Logf("%d requests after the kill, %d failed; %d lost (%d sent between the signal and the exit, %s)",
		after, failedAfter, len(lost), inWindow, killed.Sub(signalled).Round(time.Millisecond))
	if len(lost)-inWindow > workers {
		t.Errorf("%d requests lost that were in flight at the signal, more than one per client (%d)", len(lost)-inWindow, workers)
	}

	// The survivors seal what was written (the sealer runs on one of them).
	sealed := d.waitSealed(t, killed, takeoverLimit)
	t.Logf("trail sealed %s after the kill", sealed.Round(time.Millisecond))

	// Each answered request has one event naming its token; the others
	// are of requests the kill cut off.
	evs := d.auditEvents(audit.TokenIssued, "bot")
	seen := map[string]string{}
	for _, ev := range evs {
		rid := ev.Details[store.DetailClientRequestID]
		if !strings.HasPrefix(rid, "load-") {
			continue
		}
		if _, dup := seen[rid]; dup {
			t.Errorf("request %s has two token.issued events", rid)
		}
		seen[rid] = ev.Details["jti"]
		s, ok := requests[rid]
		switch {
		case ok && s.status == http.StatusOK:
			if s.jti != ev.Details["jti"] {
				t.Errorf("request %s: the client holds jti %s, the event names %s", rid, s.jti, ev.Details["jti"])
			}
		case lost[rid]:
		default:
			t.Errorf("token.issued for request %s, which was answered %d", rid, s.status)
		}
	}
	for rid, s := range requests {
		if s.status == http.StatusOK && seen[rid] == "" {
			t.Errorf("request %s got a token with no token.issued event", rid)
		}
	}

	d.checkLeasesMoved(t, victim, leasesBefore, killed)
}

// waitSealed waits until the audit trail has nothing unsealed and
// verifies, for at most limit after since, and returns how long it took.
func (d *deployment) waitSealed(t *testing.T, since time.Time, limit time.Duration) time.Duration {
	t.Helper()
	for {
		rep, err := verifyChain(t.Context(), d.st, store.DefaultTenant)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Break != nil {
			t.Fatalf("the audit chain is broken at event %d: %s", rep.Break.EventID, rep.Break.Reason)
		}
		if rep.Unsealed == 0 {
			return time.Since(since)
		}
		if time.Since(since) > limit {
			t.Errorf("%d events still unsealed %s after the kill", rep.Unsealed, limit)
			return time.Since(since)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// leaseRow is a row of the store's background-job leases.
type leaseRow struct {
	name, holder string
	until        time.Time
}

// leases reads the background jobs' leases (the job_leases table).
func (d *deployment) leases(t *testing.T) []leaseRow {
	t.Helper()
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, d.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT name, holder, lease_until FROM job_leases ORDER BY name`)
	if err != nil {
		t.Errorf("reading the background jobs' leases: %v", err)
		return nil
	}
	ls, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (leaseRow, error) {
		var l leaseRow
		err := row.Scan(&l.name, &l.holder, &l.until)
		return l, err
	})
	if err != nil {
		t.Errorf("reading the background jobs' leases: %v", err)
	}
	return ls
}

// watchSinkTakeover reports on sinkMoved how long after the kill a
// survivor held the webhook sink's lease (never, within a minute: -1).
func (d *deployment) watchSinkTakeover(ctx context.Context) {
	for time.Since(d.killed) < time.Minute && ctx.Err() == nil {
		ss, err := d.st.ListAuditSinks(ctx)
		if err == nil {
			for _, s := range ss {
				if s.Name != "siem" || !s.LeaseUntil.After(time.Now()) {
					continue
				}
				for _, r := range d.replicas {
					if r != d.victim && r.holds(s.Holder) {
						d.sinkMoved <- time.Since(d.killed)
						return
					}
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	d.sinkMoved <- -1
}

// leader picks the replica to kill: the one holding the most leases,
// the webhook sink's and the background jobs' (holders name their
// process id), else the second.
func (d *deployment) leader(t *testing.T, ls []leaseRow) *replica {
	t.Helper()
	held := slices.Clone(ls)
	if holder := d.sinkHolder(t); holder != "" {
		held = append(held, leaseRow{name: "sink siem", holder: holder})
	}
	best, most := d.replicas[1], 0
	for _, r := range d.replicas {
		n := 0
		for _, l := range held {
			if r.holds(l.holder) {
				n++
			}
		}
		if n > most {
			best, most = r, n
		}
	}
	holders := make([]string, 0, len(held))
	for _, l := range held {
		holders = append(holders, l.name+"="+l.holder)
	}
	t.Logf("leases before the kill: %v; the victim %s (pid %d) holds %d", holders, best.name, best.pid(), most)
	if most == 0 {
		t.Errorf("no replica holds a lease: the kill takes no job away")
	}
	return best
}

// sinkHolder is the holder of the webhook sink's lease while it lasts.
func (d *deployment) sinkHolder(t *testing.T) string {
	t.Helper()
	ss, err := d.st.ListAuditSinks(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ss {
		if s.Name == "siem" && s.LeaseUntil.After(time.Now()) {
			return s.Holder
		}
	}
	return ""
}

// checkLeasesMoved checks that every background job leased before the
// kill is held again after it, within a few seconds of its lease's end,
// by a holder other than the victim's: each job keeps running on a
// survivor.
func (d *deployment) checkLeasesMoved(t *testing.T, victim *replica, before []leaseRow, killed time.Time) {
	t.Helper()
	if len(before) == 0 {
		t.Errorf("no background job held a lease while the three replicas ran")
		return
	}
	// A lease renewed or taken after the kill ends after every lease
	// granted before it; the victim's can only get there by a survivor
	// taking it.
	var latest time.Time
	for _, l := range before {
		if l.until.After(latest) {
			latest = l.until
		}
	}
	deadline := killed.Add(takeoverLimit)
	for {
		now := map[string]leaseRow{}
		for _, l := range d.leases(t) {
			now[l.name] = l
		}
		var stale []string
		for _, l := range before {
			if cur, ok := now[l.name]; !ok || !cur.until.After(latest) {
				stale = append(stale, fmt.Sprintf("%s (held by %s until %s)", l.name, cur.holder, cur.until.Format(time.RFC3339Nano)))
			}
		}
		if len(stale) == 0 {
			t.Logf("every job lease held again %s after the kill of %s", time.Since(killed).Round(time.Millisecond), victim.name)
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s after the kill of %s, jobs not taken over: %s", time.Since(killed).Round(time.Millisecond), victim.name, strings.Join(stale, ", "))
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// oneBatchHolds reports whether a single batch holds every id of ids.
func oneBatchHolds(batches [][]int64, ids []int64) bool {
	for _, b := range batches {
		all := true
		for _, id := range ids {
			if !slices.Contains(b, id) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}
