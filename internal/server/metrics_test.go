package server_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/server/servertest"
	"github.com/agentid/agentid/internal/store"
)

// scrape returns m's exposition text.
func scrape(t *testing.T, m *server.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: %d", rec.Code)
	}
	return rec.Body.String()
}

// sample is the value of the series of name carrying every label of
// labels (other labels may be present), or -1 when there is none.
func sample(text, name string, labels ...string) float64 {
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		rest, ok := strings.CutPrefix(line, name+"{")
		if !ok {
			if rest, ok = strings.CutPrefix(line, name+" "); ok && len(labels) == 0 {
				v, _ := strconv.ParseFloat(strings.TrimSpace(rest), 64)
				return v
			}
			continue
		}
		set, value, _ := strings.Cut(rest, "} ")
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			if !strings.Contains(","+set+",", ","+labels[i]+"="+strconv.Quote(labels[i+1])+",") {
				match = false
			}
		}
		if match {
			v, _ := strconv.ParseFloat(value, 64)
			return v
		}
	}
	return -1
}

// TestMetrics: requests are counted by route pattern and status, never
// by the path a client sent; token requests by grant type and outcome;
// policy decisions by action and decision; the store's request-path
// operations are timed.
func TestMetrics(t *testing.T) {
	m := server.NewMetrics()
	st := openSQLiteStore(t, filepath.Join(t.TempDir(), "agentid.db"))
	pol, err := policy.New(context.Background(), policy.Options{Store: st, Domains: st, Decided: m.PolicyDecided})
	if err != nil {
		t.Fatal(err)
	}
	h := &hub{servertest.NewOn(t, st, func(c *server.Config) { c.Metrics, c.Policy = m, pol })}
	secret := h.AddClient(&store.Client{ID: "bot", GrantTypes: []string{"client_credentials"}, Tags: []string{"cc:notes.read"}, DefaultResource: h.Resource})
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"notes.read"}}
	for range 3 {
		if r := h.tokenRequest(form, "bot", secret); r.status != http.StatusOK {
			t.Fatalf("token: %d %v", r.status, r.body)
		}
	}
	if r := h.tokenRequest(form, "bot", "wrong-secret"); r.status != http.StatusUnauthorized {
		t.Fatalf("bad secret: %d", r.status)
	}
	if r := h.tokenRequest(url.Values{"grant_type": {"urn:example:made-up-" + strconv.Itoa(42)}}, "bot", secret); r.status != http.StatusBadRequest {
		t.Fatalf("unknown grant: %d", r.status)
	}
	// A body that does not parse (a repeated parameter).
	if r := h.tokenRequest(url.Values{"grant_type": {"client_credentials", "client_credentials"}}, "bot", secret); r.status != http.StatusBadRequest {
		t.Fatalf("repeated grant_type: %d %v", r.status, r.body)
	}
	// Paths a client chose: a registration id and a path nothing serves.
	for _, p := range []string{"/register/some-client-id-1", "/register/some-client-id-2", "/no/such/path/7f3a"} {
		resp, err := http.Get(h.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}

	text := scrape(t, m)
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"agentid_http_requests_total", []string{"route", "POST /token", "code", "200"}, 3},
		{"agentid_http_requests_total", []string{"route", "POST /token", "code", "401"}, 1},
		{"agentid_http_requests_total", []string{"route", "POST /token", "code", "400"}, 2},
		{"agentid_http_request_duration_seconds_count", []string{"route", "POST /token"}, 6},
		{"agentid_token_requests_total", []string{"grant_type", "client_credentials", "outcome", "issued"}, 3},
		{"agentid_token_requests_total", []string{"grant_type", "client_credentials", "outcome", "invalid_client"}, 1},
		{"agentid_token_requests_total", []string{"grant_type", "unsupported", "outcome", "unsupported_grant_type"}, 1},
		{"agentid_token_requests_total", []string{"grant_type", "unparsed", "outcome", "invalid_request"}, 1},
		{"agentid_policy_decisions_total", []string{"action", "grant", "decision", "allow"}, 3},
		{"agentid_store_operation_duration_seconds_count", []string{"operation", "issue_tokens"}, 3},
	}
	for _, c := range checks {
		if got := sample(text, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if got := sample(text, "agentid_http_requests_total", "route", "GET /register/{id}"); got != 2 {
		t.Errorf("GET /register/{id}: %v, want 2 (one series for both ids)", got)
	}
	for _, raw := range []string{"some-client-id", "/no/such/path", "made-up"} {
		if strings.Contains(text, raw) {
			t.Errorf("a client-chosen value %q became a label", raw)
		}
	}
	if sample(text, "go_goroutines") <= 0 || sample(text, "process_resident_memory_bytes") <= 0 {
		t.Error("runtime and process metrics missing")
	}

	// A second hub has metrics of its own (no global registry).
	other := server.NewMetrics()
	if got := sample(scrape(t, other), "agentid_http_requests_total", "route", "POST /token"); got != -1 {
		t.Errorf("a fresh registry holds %v token requests", got)
	}
}

// TestMetricsAuditSinkLag: the sinks' lag is read from the store at each
// scrape: events after the cursor and the age of the oldest.
func TestMetricsAuditSinkLag(t *testing.T) {
	ctx := context.Background()
	st := openSQLiteStore(t, filepath.Join(t.TempDir(), "agentid.db"))
	m := server.NewMetrics()
	m.WatchAuditSinks(st)
	now := time.Now()
	if _, err := st.LeaseAuditSink(ctx, "siem", "test", now, now.Add(time.Minute), 0); err != nil {
		t.Fatal(err)
	}
	if got := sample(scrape(t, m), "agentid_audit_sink_pending_events", "sink", "siem"); got != 0 {
		t.Fatalf("pending before any event: %v", got)
	}
	meta := audit.Meta{TenantID: store.DefaultTenant, Actor: audit.ActorCLI, Time: now.Add(-90 * time.Second)}
	for range 4 {
		if err := st.AppendAudit(ctx, audit.NewProviderAdded(meta, audit.ProviderFields{ProviderID: "p", Kind: "oauth2"})); err != nil {
			t.Fatal(err)
		}
	}
	text := scrape(t, m)
	if got := sample(text, "agentid_audit_sink_pending_events", "sink", "siem"); got != 4 {
		t.Errorf("pending %v, want 4", got)
	}
	if got := sample(text, "agentid_audit_sink_lag_seconds", "sink", "siem"); got < 89 || got > 120 {
		t.Errorf("lag %vs, want about 90s", got)
	}
	if got := sample(text, "agentid_audit_sinks_readable"); got != 1 {
		t.Errorf("readable %v", got)
	}
}
