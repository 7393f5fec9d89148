package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
)

// otlpReceiver is an OTLP/HTTP trace receiver in the test: it decodes
// each protobuf ExportTraceServiceRequest posted to /v1/traces.
type otlpReceiver struct {
	*httptest.Server
	mu       sync.Mutex
	requests []*coltracepb.ExportTraceServiceRequest
	headers  []http.Header
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	rcv := &otlpReceiver{}
	rcv.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			t.Errorf("receiver: %s %s %s", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
			http.Error(w, "unexpected", http.StatusBadRequest)
			return
		}
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("receiver: %v", err)
			return
		}
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(b, &req); err != nil {
			t.Errorf("receiver: not an ExportTraceServiceRequest: %v", err)
			http.Error(w, "bad protobuf", http.StatusBadRequest)
			return
		}
		rcv.mu.Lock()
		rcv.requests = append(rcv.requests, &req)
		rcv.headers = append(rcv.headers, r.Header.Clone())
		rcv.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	t.Cleanup(rcv.Close)
	return rcv
}

// receivedSpan is one exported span with its resource.
type receivedSpan struct {
	*tracepb.Span
	resource []*commonpb.KeyValue
}

func (rcv *otlpReceiver) spans() []receivedSpan {
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	var out []receivedSpan
	for _, req := range rcv.requests {
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					out = append(out, receivedSpan{Span: s, resource: rs.GetResource().GetAttributes()})
				}
			}
		}
	}
	return out
}

func (rcv *otlpReceiver) exports() int {
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	return len(rcv.requests)
}

// attr returns the string form of attribute key of kvs ("" if absent).
func attr(kvs []*commonpb.KeyValue, key string) string {
	for _, kv := range kvs {
		if kv.Key == key {
			return anyString(kv.Value)
		}
	}
	return ""
}

// anyString renders an OTLP value as text: strings as they are, the
// rest through their JSON form, arrays element by element.
func anyString(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_ArrayValue:
		var parts []string
		for _, e := range x.ArrayValue.Values {
			parts = append(parts, anyString(e))
		}
		return strings.Join(parts, ",")
	}
	b, _ := json.Marshal(v.GetValue())
	return string(b)
}

// spanTexts is every text a span carries: its name, status message and
// every attribute value, of the span, its events, its links and its
// resource.
func spanTexts(s receivedSpan) []string {
	out := []string{s.Name, s.GetStatus().GetMessage(), s.TraceState}
	add := func(kvs []*commonpb.KeyValue) {
		for _, kv := range kvs {
			out = append(out, kv.Key+"="+anyString(kv.Value))
		}
	}
	add(s.Attributes)
	add(s.resource)
	for _, e := range s.Events {
		out = append(out, e.Name)
		add(e.Attributes)
	}
	for _, l := range s.Links {
		add(l.Attributes)
	}
	return out
}

// ccBotHub prepares a data directory with a resource and a confidential
// client-credentials agent, bot, and returns the serve environment and
// the agent's secret.
func ccBotHub(t *testing.T) (map[string]string, string) {
	t.Helper()
	dir := t.TempDir()
	env := map[string]string{
		"AGENTID_DATA_DIR": filepath.Join(dir, "data"),
		"AGENTID_LISTEN":   "127.0.0.1:0",
		"AGENTID_ISSUER":   "https://auth.example.test",
	}
	e := &cliEnv{t: t, env: env}
	e.run("migrate")
	e.run("resources", "add", "--uri", "https://notes.example.test/mcp", "--name", "Notes", "--scope", "notes.read=Read")
	const secret = "bot-secret-a81f0c6b5a4f39281706f5e4d3c2b1a0"
	st := e.store()
	now := time.Now()
	if err := st.CreateClient(context.Background(), &store.Client{TenantID: store.DefaultTenant, ID: "bot", Name: "Bot",
		RegistrationMethod: store.RegistrationManual, TokenEndpointAuthMethod: "client_secret_basic", SecretHash: token.Hash(secret),
		GrantTypes: []string{"client_credentials"}, Tags: []string{"cc:notes.read"}, DefaultResource: "https://notes.example.test/mcp",
		CreatedAt: now, UpdatedAt: now}, nil); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return env, secret
}

// requestToken asks hub for a client-credentials token as bot, with the
// given traceparent ("" for none), and returns the token and the
// request id.
func requestToken(t *testing.T, hub *runningHub, secret, traceparent string) (string, string) {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"notes.read"}}
	req, err := http.NewRequest(http.MethodPost, hub.url+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("bot", secret)
	if traceparent != "" {
		req.Header.Set("traceparent", traceparent)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != http.StatusOK || tok.AccessToken == "" {
		t.Fatalf("POST /token = %d %v", resp.StatusCode, err)
	}
	return tok.AccessToken, resp.Header.Get("X-Request-Id")
}

// TestServeExportsTraces runs serve with tracing.endpoint pointing at a
// receiver in the test and a client-credentials request carrying a W3C
// traceparent: on shutdown (the SIGTERM path) the receiver has the
// request's spans, in the caller's trace, named by route, with the
// token, policy and store spans below, the configured headers on the
// export, and no secret anywhere in them.
func TestServeExportsTraces(t *testing.T) {
	rcv := newOTLPReceiver(t)
	env, secret := ccBotHub(t)
	env["AGENTID_TRACING_ENDPOINT"] = rcv.URL
	env["AGENTID_TRACING_HEADERS"] = "authorization=Bearer%20otlp-k3y-5d0c"
	env["AGENTID_TRACING_SERVICE_NAME"] = "agentid-test"
	hub := startServe(t, env)

	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	access, requestID := requestToken(t, hub, secret, "00-"+traceID+"-"+parentID+"-01")
	// A request a client sent to a path with a query: the span is named
	// by the route that served it, not by what the client wrote.
	resp, err := http.Get(hub.url + "/register/bot-9f3c?code=c0de-in-the-query")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if rcv.exports() != 0 {
		t.Logf("%d exports before shutdown (the batch timeout passed)", rcv.exports())
	}
	if code := hub.stop(); code != 0 {
		t.Fatalf("exit %d\n%s", code, hub.stderr.String())
	}
	spans := rcv.spans()
	if len(spans) == 0 {
		t.Fatalf("no spans exported by the time serve exited\n%s", hub.stderr.String())
	}

	byName := map[string][]receivedSpan{}
	for _, s := range spans {
		byName[s.Name] = append(byName[s.Name], s)
	}
	one := func(name string) receivedSpan {
		t.Helper()
		if len(byName[name]) != 1 {
			names := make([]string, 0, len(byName))
			for n := range byName {
				names = append(names, n)
			}
			t.Fatalf("%d spans named %q; names: %v", len(byName[name]), name, names)
		}
		return byName[name][0]
	}
	srv := one("POST /token")
	if got := hex.EncodeToString(srv.TraceId); got != traceID {
		t.Errorf("server span in trace %s, want the caller's %s", got, traceID)
	}
	if got := hex.EncodeToString(srv.ParentSpanId); got != parentID {
		t.Errorf("server span's parent %s, want the caller's span %s", got, parentID)
	}
	if srv.Kind != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("server span kind %v", srv.Kind)
	}
	for k, want := range map[string]string{"http.route": "/token", "http.request.method": "POST", "http.response.status_code": `{"IntValue":200}`, "agentid.request_id": requestID} {
		if got := attr(srv.Attributes, k); got != want {
			t.Errorf("server span %s = %q, want %q", k, got, want)
		}
	}
	if got := attr(srv.resource, "service.name"); got != "agentid-test" {
		t.Errorf("service.name %q", got)
	}
	tok := one("token")
	if hex.EncodeToString(tok.ParentSpanId) != hex.EncodeToString(srv.SpanId) {
		t.Errorf("the token span is not the server span's child")
	}
	if attr(tok.Attributes, "oauth.grant_type") != "client_credentials" || attr(tok.Attributes, "agentid.outcome") != "issued" {
		t.Errorf("token span attributes %v", tok.Attributes)
	}
	for _, name := range []string{"policy.decide", "store.IssueTokens"} {
		s := one(name)
		if hex.EncodeToString(s.ParentSpanId) != hex.EncodeToString(tok.SpanId) {
			t.Errorf("%s is not under the token span", name)
		}
	}
	if got := attr(one("store.IssueTokens").Attributes, "db.system.name"); got != "sqlite" {
		t.Errorf("store span db.system.name %q", got)
	}
	if got := attr(one("policy.decide").Attributes, "agentid.outcome"); got != "allow" {
		t.Errorf("policy span outcome %q", got)
	}
	reg := one("GET /register/{id}")
	if got := attr(reg.Attributes, "http.route"); got != "/register/{id}" {
		t.Errorf("registration read route %q", got)
	}

	basic := base64.StdEncoding.EncodeToString([]byte("bot:" + secret))
	for _, s := range spans {
		for _, text := range spanTexts(s) {
			for _, bad := range []string{secret, access, basic, "bot-9f3c", "c0de-in-the-query", "otlp-k3y"} {
				if strings.Contains(text, bad) {
					t.Errorf("span %q carries %q in %q", s.Name, bad, text)
				}
			}
		}
	}
	rcv.mu.Lock()
	for _, h := range rcv.headers {
		if h.Get("Authorization") != "Bearer otlp-k3y-5d0c" {
			t.Errorf("export without the configured header: %q", h.Get("Authorization"))
		}
	}
	rcv.mu.Unlock()
	if strings.Contains(hub.stderr.String(), "otlp-k3y") {
		t.Error("the log shows the tracing headers")
	}
}

// TestServeTracingOff: without tracing.endpoint nothing is exported, even
// with the standard OTEL_ variables pointing at a receiver, a sampled
// traceparent on the request, and OpenTelemetry's global provider stays
// the no-op one.
func TestServeTracingOff(t *testing.T) {
	rcv := newOTLPReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.URL)
	t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	env, secret := ccBotHub(t)
	hub := startServe(t, env)
	requestToken(t, hub, secret, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if code := hub.stop(); code != 0 {
		t.Fatalf("exit %d\n%s", code, hub.stderr.String())
	}
	if n := rcv.exports(); n != 0 {
		t.Errorf("%d exports with tracing off", n)
	}
	_, span := otel.GetTracerProvider().Tracer("probe").Start(context.Background(), "probe")
	if span.IsRecording() {
		t.Error("the global tracer provider records spans")
	}
	span.End()
}

// TestServeTracingReceiverDown: a receiver that does not answer costs no
// request and no exit: serve answers, exits 0 within the flush bound and
// logs the failure once, without the headers.
func TestServeTracingReceiverDown(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	env, secret := ccBotHub(t)
	env["AGENTID_TRACING_ENDPOINT"] = deadURL
	env["AGENTID_TRACING_HEADERS"] = "x-api-key=down-k3y-77"
	hub := startServe(t, env)
	requestToken(t, hub, secret, "")
	start := time.Now()
	if code := hub.stop(); code != 0 {
		t.Fatalf("exit %d\n%s", code, hub.stderr.String())
	}
	if d := time.Since(start); d > shutdownTimeout {
		t.Errorf("shutdown took %v", d)
	}
	logs := hub.stderr.String()
	if strings.Contains(logs, "down-k3y") {
		t.Error("the log shows the tracing headers")
	}
	if !strings.Contains(logs, "exporting spans failed") && !strings.Contains(logs, "spans not exported") {
		t.Errorf("the lost spans are not logged:\n%s", logs)
	}
}
