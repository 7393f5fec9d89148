package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/store"
)

// runCode runs agentid and returns its exit code and output, for commands
// expected to fail.
func (e *cliEnv) runCode(args ...string) (code int, stdout, stderr string) {
	e.t.Helper()
	var out, errb bytes.Buffer
	lookup := func(k string) (string, bool) { v, ok := e.env[k]; return v, ok }
	code = run(context.Background(), args, strings.NewReader(""), &out, &errb, lookup)
	return code, out.String(), errb.String()
}

// servedTrail writes some events with admin commands, then runs the hub
// once: it seals them and, on shutdown, signs and seals a checkpoint.
func servedTrail(t *testing.T) *cliEnv { return servedTrailWith(t, nil) }

// servedTrailWith is servedTrail with before (when not nil) run on the
// events before the hub starts.
func servedTrailWith(t *testing.T, before func(*cliEnv)) *cliEnv {
	e := newCLIEnv(t)
	e.env["AGENTID_LISTEN"] = "127.0.0.1:0"
	e.env["AGENTID_ISSUER"] = "https://auth.example.test"
	e.run("resources", "add", "--uri", "https://notes.example.test/mcp", "--name", "Notes", "--scope", "notes.read=Read")
	e.run("clients", "add", "--name", "Agent", "--id", "agent-1", "--redirect-uri", "https://agent.example.test/cb")
	e.run("users", "add", "alice", "--name", "Alice")
	if before != nil {
		before(e)
	}
	h := startServe(t, e.env)
	if code := h.stop(); code != 0 {
		t.Fatalf("serve exit %d:\n%s", code, h.stderr.String())
	}
	return e
}

// TestAuditVerify: the hub seals what admin commands wrote and signs a
// checkpoint when it stops; `audit verify` then passes and is recorded;
// after an event is changed in the database it names that event and exits
// non-zero.
func TestAuditVerify(t *testing.T) {
	e := servedTrail(t)
	out, _ := e.run("audit", "verify")
	if !regexp.MustCompile(`^tenant default: chain intact: \d+ events \(\d+\.\.\d+\); 1 checkpoint signature\(s\) verified, signed through event \d+; 0 event\(s\) not sealed yet\n$`).MatchString(out) {
		t.Fatalf("audit verify:\n%s", out)
	}
	out, _ = e.run("audit", "verify", "--json")
	var rep reportJSON
	if err := json.Unmarshal([]byte(out), &rep); err != nil || !rep.OK || rep.Checkpoints != 1 || rep.Events < 4 {
		t.Fatalf("audit verify --json: %s (%v)", out, err)
	}
	st := e.store()
	evs, err := st.ListAudit(t.Context(), store.AuditFilter{Type: audit.AuditVerified})
	if err != nil || len(evs) != 2 || evs[0].Outcome != audit.Success || evs[0].Details["actor"] != audit.ActorCLI {
		t.Fatalf("audit.verified events: %+v %v", evs, err)
	}
	created, err := st.ListAudit(t.Context(), store.AuditFilter{Type: audit.ClientRegistered})
	if err != nil || len(created) != 1 {
		t.Fatalf("client.registered: %v %v", created, err)
	}

	raw, err := sql.Open("sqlite", "file:"+filepath.Join(e.env["AGENTID_DATA_DIR"], "agentid.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`UPDATE audit_events SET outcome = 'failure' WHERE id = ?`, created[0].ID); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := e.runCode("audit", "verify")
	want := "BROKEN at event " + itoa(created[0].ID) + ": the hash does not match the event's content"
	if code != exitError || !strings.Contains(out, want) || !strings.Contains(errOut, "broken at event "+itoa(created[0].ID)) {
		t.Fatalf("tampered: exit %d\n%s%s\nwant %q", code, out, errOut, want)
	}
	evs, _ = st.ListAudit(t.Context(), store.AuditFilter{Type: audit.AuditVerified, Limit: 1})
	if len(evs) != 1 || evs[0].Outcome != audit.Failure || evs[0].Details["break_id"] != itoa(created[0].ID) {
		t.Fatalf("the failed verification is not recorded: %+v", evs)
	}
}

// TestAuditPrune: `audit prune` deletes the old events but the chain
// head, the trail still verifies from the signed anchor, and the prune is
// audited; a broken trail is not pruned; a bad --before is a usage error.
func TestAuditPrune(t *testing.T) {
	e := servedTrail(t)
	before := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	out, _ := e.run("audit", "prune", "--before", before, "--json")
	var res struct {
		Deleted  int64 `json:"deleted"`
		AnchorID int64 `json:"anchor_id"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Deleted < 3 || res.AnchorID == 0 {
		t.Fatalf("audit prune: %s (%v)", out, err)
	}
	out, _ = e.run("audit", "verify")
	if !strings.Contains(out, "chain intact") || !strings.Contains(out, "starting at the anchor of the last prune") {
		t.Fatalf("verify after prune:\n%s", out)
	}
	st := e.store()
	evs, err := st.ListAudit(t.Context(), store.AuditFilter{Type: audit.AuditPruned})
	if err != nil || len(evs) != 1 || evs[0].Details["deleted"] != itoa(res.Deleted) || evs[0].Details["anchor_id"] != itoa(res.AnchorID) {
		t.Fatalf("audit.pruned: %+v %v", evs, err)
	}

	for _, bad := range []string{"yesterday", "-5d", "0h", ""} {
		if code, _, errOut := e.runCode("audit", "prune", "--before", bad); code != exitUsage {
			t.Errorf("--before %q: exit %d, want %d\n%s", bad, code, exitUsage, errOut)
		}
	}

	raw, err := sql.Open("sqlite", "file:"+filepath.Join(e.env["AGENTID_DATA_DIR"], "agentid.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`DELETE FROM audit_events WHERE id = ?`, res.AnchorID); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := e.runCode("audit", "prune", "--before", "1d"); code != exitError || !strings.Contains(errOut, "not pruning") {
		t.Fatalf("prune of a broken trail: exit %d\n%s", code, errOut)
	}
}

func TestParseBefore(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"2026-01-31T00:00:00Z", time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC), true},
		{"2026-01-31T01:00:00+01:00", time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC), true},
		{"2026-01-31", time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC), true},
		{"90d", now.Add(-90 * 24 * time.Hour), true},
		{"36h", now.Add(-36 * time.Hour), true},
		{"0d", time.Time{}, false},
		{"-1h", time.Time{}, false},
		{"99999999d", time.Time{}, false},
		{"d", time.Time{}, false},
		{"last week", time.Time{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseBefore(tc.in, now)
			if (err == nil) != tc.ok || (tc.ok && !got.Equal(tc.want)) {
				t.Fatalf("parseBefore(%q) = %v, %v; want %v (ok %v)", tc.in, got, err, tc.want, tc.ok)
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestAuditSurvivesKill9: the hub, a process of its own, is killed with
// SIGKILL during a load of client-credentials issuances and started again.
// Every token a client received has its token.issued event (the event
// commits with the token), at most the requests in flight at the kill
// have an event their client never saw, and `audit verify` passes once
// the restarted hub has sealed the trail.
func TestAuditSurvivesKill9(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("SIGKILL is a Unix signal")
	}
	const workers = 8
	e := newCLIEnv(t)
	e.env["AGENTID_LISTEN"] = "127.0.0.1:0"
	e.env["AGENTID_ISSUER"] = "https://auth.example.test"
	e.run("resources", "add", "--uri", "https://mcp.example.com/mcp", "--name", "Notes", "--scope", "notes.read=Read")
	out, _ := e.run("clients", "add", "--name", "Job", "--grant-type", "client_credentials", "--scope", "notes.read", "--tag", "cc:notes.read")
	creds := map[string]string{}
	for _, m := range clientField.FindAllStringSubmatch(out, -1) {
		creds[m[1]] = m[2]
	}

	cmd := agentidCommand(t, e.env, "serve")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	m := listeningLine.FindStringSubmatch(line)
	if err != nil || m == nil {
		cmd.Process.Kill()
		t.Fatalf("serve did not start: %q %v\n%s", line, err, stderr.String())
	}
	base := m[1]

	var mu sync.Mutex
	known := map[string]string{} // request id → jti of every token a client received
	lost := map[string]bool{}    // request ids sent without an answer (the kill)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	client := &http.Client{Timeout: 5 * time.Second}
	for w := range workers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				rid := fmt.Sprintf("w%d-%d", w, i)
				req, _ := http.NewRequest(http.MethodPost, base+"/token", strings.NewReader(url.Values{
					"grant_type": {"client_credentials"}, "scope": {"notes.read"}, "resource": {"https://mcp.example.com/mcp"},
				}.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.SetBasicAuth(creds["client_id"], creds["client_secret"])
				req.Header.Set("X-Request-Id", rid) // recorded as the event's client_request_id
				resp, err := client.Do(req)
				if err != nil {
					mu.Lock()
					lost[rid] = true // the hub is gone, maybe after issuing
					mu.Unlock()
					continue
				}
				var body struct {
					AccessToken string `json:"access_token"`
				}
				err = json.NewDecoder(resp.Body).Decode(&body)
				resp.Body.Close()
				if err != nil {
					mu.Lock()
					lost[rid] = true
					mu.Unlock()
					continue
				}
				if resp.StatusCode != http.StatusOK {
					continue
				}
				payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(body.AccessToken, ".")[1])
				var claims struct {
					JTI string `json:"jti"`
				}
				if json.Unmarshal(payload, &claims) == nil && claims.JTI != "" {
					mu.Lock()
					known[rid] = claims.JTI
					mu.Unlock()
				}
			}
		})
	}
	// Kill once a few hundred tokens were issued, while requests are
	// under way.
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(known)
		mu.Unlock()
		if n >= 300 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	close(stop)
	wg.Wait()
	if len(known) == 0 {
		t.Fatalf("no token issued before the kill\n%s", stderr.String())
	}

	// Restart: the hub seals what the killed one left and signs it on
	// shutdown.
	h := startServe(t, e.env)
	if code := h.stop(); code != 0 {
		t.Fatalf("restarted serve: exit %d\n%s", code, h.stderr.String())
	}
	out, _ = e.run("audit", "verify")
	if !strings.Contains(out, "chain intact") || !strings.Contains(out, "0 event(s) not sealed yet") {
		t.Fatalf("audit verify after kill -9:\n%s", out)
	}
	evs, err := e.store().ListAudit(t.Context(), store.AuditFilter{Type: audit.TokenIssued, Limit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	// Every issuance event belongs to a request a client sent (its
	// X-Request-Id); the events of the requests that were answered are
	// exactly the tokens the clients received — as many, the same jti —
	// and the only others are of requests whose answer the kill cut off.
	answered := map[string]string{} // request id → jti, from the events
	unanswered := 0
	for _, ev := range evs {
		rid := ev.Details[store.DetailClientRequestID]
		switch {
		case known[rid] != "":
			if answered[rid] != "" {
				t.Errorf("request %s has two issuance events", rid)
			}
			answered[rid] = ev.Details["jti"]
		case lost[rid]:
			unanswered++
		default:
			t.Errorf("issuance event %d (request %q) of no request a client sent or lost", ev.ID, rid)
		}
	}
	if len(answered) != len(known) {
		t.Errorf("%d tokens known to the clients, %d issuance events for their requests", len(known), len(answered))
	}
	for rid, jti := range known {
		if answered[rid] != jti {
			t.Errorf("request %s: the client holds token %s, the event names %q", rid, jti, answered[rid])
		}
	}
	if unanswered > workers {
		t.Errorf("%d issuances whose answer was lost, at most one per client (%d)", unanswered, workers)
	}
	t.Logf("%d tokens received = %d issuance events of answered requests; %d more issued as the hub died; trail verified",
		len(known), len(answered), unanswered)
}

// TestAuditVerifyAcrossStoredDetailForms: a trail whose first events store
// their details with the schema's key names (as every version before the
// short names wrote them; sealed and checkpointed so by one serve) and
// whose later events store short names (sealed by a second serve) passes
// `audit verify`, and `audit export` gives both with the schema's names.
func TestAuditVerifyAcrossStoredDetailForms(t *testing.T) {
	e := servedTrailWith(t, func(e *cliEnv) {
		// The events the admin commands wrote, rewritten in the older
		// stored form before anything seals them.
		st := e.store()
		evs, err := st.ListAudit(t.Context(), store.AuditFilter{})
		if err != nil || len(evs) < 3 {
			t.Fatalf("%d events (%v)", len(evs), err)
		}
		raw, err := sql.Open("sqlite", "file:"+filepath.Join(e.env["AGENTID_DATA_DIR"], "agentid.db")+"?_pragma=busy_timeout(5000)")
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		rewritten := 0
		for _, ev := range evs {
			if _, coded := store.CompactDetails(ev.Details); !coded {
				continue
			}
			text, _ := json.Marshal(ev.Details)
			if _, err := raw.Exec(`UPDATE audit_events SET details = ? WHERE id = ?`, string(text), ev.ID); err != nil {
				t.Fatal(err)
			}
			rewritten++
		}
		if rewritten == 0 {
			t.Fatal("no event the short names would change: the test tests nothing")
		}
	})
	e.run("clients", "add", "--name", "Agent 2", "--id", "agent-2", "--redirect-uri", "https://agent.example.test/cb")
	h := startServe(t, e.env)
	if code := h.stop(); code != 0 {
		t.Fatalf("serve exit %d:\n%s", code, h.stderr.String())
	}
	out, _ := e.run("audit", "verify", "--json")
	var rep reportJSON
	if err := json.Unmarshal([]byte(out), &rep); err != nil || !rep.OK || rep.Checkpoints != 2 {
		t.Fatalf("audit verify: %s (%v)", out, err)
	}
	out, _ = e.run("audit", "export", "--type", audit.ClientRegistered)
	var regs int
	for line := range strings.Lines(out) {
		var ev struct {
			ClientID string            `json:"client_id"`
			Details  map[string]string `json:"details"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		if ev.Details["registration_method"] != "manual" || ev.Details["client_type"] == "" {
			t.Errorf("exported %s with details %v", ev.ClientID, ev.Details)
		}
		regs++
	}
	if regs != 2 {
		t.Errorf("exported %d client.registered events, want 2:\n%s", regs, out)
	}
}
