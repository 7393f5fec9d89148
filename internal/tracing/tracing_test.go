package tracing

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	otelbaggage "go.opentelemetry.io/otel/baggage"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func recorder(ratio float64) (*sdktrace.TracerProvider, *tracetest.InMemoryExporter) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))))
	return tp, exp
}

const (
	callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpan  = "00f067aa0ba902b7"
)

// TestHandlerTraceparent: an incoming traceparent is the server span's
// parent and its sampled flag decides over the ratio; baggage is not
// read; the span is named by the route, never the path.
func TestHandlerTraceparent(t *testing.T) {
	for _, tt := range []struct {
		name        string
		ratio       float64
		traceparent string
		recorded    bool
	}{
		{"sampled caller, ratio 0", 0, "00-" + callerTrace + "-" + callerSpan + "-01", true},
		{"unsampled caller, ratio 1", 1, "00-" + callerTrace + "-" + callerSpan + "-00", false},
		{"no caller, ratio 1", 1, "", true},
		{"no caller, ratio 0", 0, "", false},
		{"malformed traceparent, ratio 1", 1, "00-zz-" + callerSpan + "-01", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tp, exp := recorder(tt.ratio)
			var baggage bool
			mux := http.NewServeMux()
			mux.HandleFunc("GET /register/{id}", func(w http.ResponseWriter, r *http.Request) {
				baggage = otelbaggage.FromContext(r.Context()).Len() > 0
				w.Header().Set("X-Request-Id", "req-1")
				w.WriteHeader(http.StatusTeapot)
			})
			h := Handler(tp, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				defer Route(r) // as the hub's middleware does
				mux.ServeHTTP(w, r)
			}))
			req := httptest.NewRequest(http.MethodGet, "/register/client-77?code=abc", nil)
			if tt.traceparent != "" {
				req.Header.Set("traceparent", tt.traceparent)
			}
			req.Header.Set("baggage", "user=alice")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusTeapot || baggage {
				t.Fatalf("status %d, baggage read %v", rec.Code, baggage)
			}
			spans := exp.GetSpans()
			if !tt.recorded {
				if len(spans) != 0 {
					t.Fatalf("%d spans recorded", len(spans))
				}
				return
			}
			if len(spans) != 1 {
				t.Fatalf("%d spans", len(spans))
			}
			s := spans[0]
			if s.Name != "GET /register/{id}" || s.SpanKind != trace.SpanKindServer {
				t.Errorf("span %q kind %v", s.Name, s.SpanKind)
			}
			fromCaller := strings.HasSuffix(tt.traceparent, "-01") && !strings.Contains(tt.traceparent, "zz")
			if got := s.SpanContext.TraceID().String() == callerTrace; got != fromCaller {
				t.Errorf("in the caller's trace: %v, want %v", got, fromCaller)
			}
			if fromCaller && s.Parent.SpanID().String() != callerSpan {
				t.Errorf("parent %s", s.Parent.SpanID())
			}
			want := map[string]string{"http.request.method": "GET", "http.route": "/register/{id}", "http.response.status_code": "418", "agentid.request_id": "req-1"}
			if got := attrs(s.Attributes); !equalMaps(got, want) {
				t.Errorf("attributes %v, want %v", got, want)
			}
		})
	}
}

func attrs(kvs []attribute.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value.String()
	}
	return m
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestTransport: the called server gets the client span's traceparent,
// the caller's request is left as it was, and the span names the host,
// never the path or the query.
func TestTransport(t *testing.T) {
	tp, exp := recorder(1)
	var got http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		w.WriteHeader(http.StatusBadRequest)
	}))
	defer srv.Close()
	ctx, parent := tp.Tracer("test").Start(context.Background(), "parent")
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/oauth/token?refresh_token=rt-secret", strings.NewReader("refresh_token=rt-secret"))
	c := &http.Client{Transport: Transport(tp, nil)}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	parent.End()
	if req.Header.Get("traceparent") != "" {
		t.Error("the caller's request was changed")
	}
	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans", len(spans))
	}
	s := spans[0]
	tpHeader := got.Get("traceparent")
	if want := "00-" + s.SpanContext.TraceID().String() + "-" + s.SpanContext.SpanID().String() + "-01"; tpHeader != want {
		t.Errorf("traceparent %q, want %q", tpHeader, want)
	}
	if s.Parent.SpanID() != parent.SpanContext().SpanID() || s.SpanKind != trace.SpanKindClient || s.Name != "POST" {
		t.Errorf("client span %q kind %v parent %v", s.Name, s.SpanKind, s.Parent.SpanID())
	}
	if s.Status.Description != "" || s.Status.Code.String() != "Error" {
		t.Errorf("a 400 gives status %v %q", s.Status.Code, s.Status.Description)
	}
	for _, text := range append([]string{s.Name, s.Status.Description}, mapValues(attrs(s.Attributes))...) {
		if strings.Contains(text, "rt-secret") || strings.Contains(text, "/oauth/token") {
			t.Errorf("the span carries %q", text)
		}
	}
	if a := attrs(s.Attributes); a["server.address"] != "127.0.0.1" || a["http.response.status_code"] != "400" || a["server.port"] == "" {
		t.Errorf("attributes %v", a)
	}

	// A transport error: its text names the URL, the span does not.
	srv.Close()
	exp.Reset()
	req, _ = http.NewRequest(http.MethodGet, srv.URL+"/x?refresh_token=rt-secret", nil)
	if _, err := c.Do(req); err == nil {
		t.Fatal("no error from a closed server")
	}
	if s := exp.GetSpans()[0]; s.Status.Description != "transport error" || s.Parent.IsValid() {
		t.Errorf("span status %q, parent %v", s.Status.Description, s.Parent)
	}
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// TestStartWithoutTracing: with no recording span in the context Start
// starts nothing, returns the context as it was, and allocates nothing.
func TestStartWithoutTracing(t *testing.T) {
	ctx := context.Background()
	got, span := Start(ctx, "token", trace.SpanKindInternal)
	if got != ctx || span.IsRecording() {
		t.Fatal("Start started a span without a recording parent")
	}
	if n := testing.AllocsPerRun(100, func() {
		_, span := Start(ctx, "token", trace.SpanKindInternal)
		if span.IsRecording() {
			span.SetAttributes(Outcome("issued"))
		}
		span.End()
	}); n != 0 {
		t.Errorf("Start without tracing allocates %v times", n)
	}
	// Under an unsampled parent too.
	tp, exp := recorder(0)
	pctx, parent := tp.Tracer("t").Start(ctx, "request")
	if _, span := Start(pctx, "token", trace.SpanKindInternal); span.IsRecording() {
		t.Error("a child of an unsampled request records")
	}
	parent.End()
	if len(exp.GetSpans()) != 0 {
		t.Error("spans exported for an unsampled request")
	}
}

// failingExporter fails while fail is set.
type failingExporter struct {
	fail  bool
	calls int
}

func (e *failingExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error {
	e.calls++
	if e.fail {
		return errors.New(`failed to send to http://127.0.0.1:4318/v1/traces: 401 Unauthorized (body: invalid key "k3y-from-header")`)
	}
	return nil
}

func (e *failingExporter) Shutdown(context.Context) error { return nil }

// TestExportFailuresLoggedOnce: a receiver that keeps failing is logged
// once, without what it answered, and its recovery once.
func TestExportFailuresLoggedOnce(t *testing.T) {
	var buf bytes.Buffer
	fe := &failingExporter{fail: true}
	e := &loggingExporter{SpanExporter: fe, log: slog.New(slog.NewTextHandler(&buf, nil))}
	for range 3 {
		if err := e.ExportSpans(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
	}
	fe.fail = false
	e.ExportSpans(context.Background(), nil)
	e.ExportSpans(context.Background(), nil)
	out := buf.String()
	if strings.Count(out, "exporting spans failed") != 1 || strings.Count(out, "exporting spans again") != 1 || !strings.Contains(out, "failed_batches=3") {
		t.Errorf("log:\n%s", out)
	}
	if strings.Contains(out, "k3y-from-header") || !strings.Contains(out, "401 Unauthorized") {
		t.Errorf("the log quotes the receiver's answer or lost the status:\n%s", out)
	}
	if fe.calls != 5 {
		t.Errorf("%d exports", fe.calls)
	}
}

func TestTracesURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:4318":                   "http://127.0.0.1:4318/v1/traces",
		"https://otel.example.com/":               "https://otel.example.com/v1/traces",
		"https://otel.example.com/custom/traces":  "https://otel.example.com/custom/traces",
		"https://otel.example.com:443/v1/traces/": "https://otel.example.com:443/v1/traces/",
	} {
		if got, err := TracesURL(in); err != nil || got != want {
			t.Errorf("TracesURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "collector:4318", "grpc://127.0.0.1:4317", "http://"} {
		if _, err := TracesURL(bad); err == nil {
			t.Errorf("TracesURL(%q) accepted", bad)
		}
	}
}

// TestProviderBatches: the provider's spans reach the exporter in
// batches (not per span, on the request), with the resource naming the
// service; a bad ratio is refused.
func TestProviderBatches(t *testing.T) {
	if _, err := New(Options{ServiceName: "agentid", SamplingRatio: 1.5, exporter: tracetest.NewInMemoryExporter()}); err == nil {
		t.Error("ratio 1.5 accepted")
	}
	exp := tracetest.NewInMemoryExporter()
	p, err := New(Options{ServiceName: "agentid-x", ServiceVersion: "v1.2.3", InstanceID: "host/1/ab", SamplingRatio: 1, exporter: exp})
	if err != nil {
		t.Fatal(err)
	}
	_, span := p.TracerProvider().Tracer("t").Start(context.Background(), "s")
	span.End()
	if len(exp.GetSpans()) != 0 {
		t.Fatal("exported before the batch was due")
	}
	// The exporter forgets its spans when it shuts down: flush first.
	if err := p.tp.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := exp.GetSpans()
	if len(got) != 1 {
		t.Fatalf("%d spans after the flush", len(got))
	}
	res := attrs(got[0].Resource.Attributes())
	if res["service.name"] != "agentid-x" || res["service.version"] != "v1.2.3" || res["service.instance.id"] != "host/1/ab" {
		t.Errorf("resource %v", res)
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkStartUntraced is a hook's cost with tracing off: Start under a
// context as deep as a request's in the hub (server, middleware, mux
// values), no span in it.
func BenchmarkStartUntraced(b *testing.B) {
	type key int
	ctx := context.Background()
	for i := range 8 {
		ctx = context.WithValue(ctx, key(i), i)
	}
	b.ReportAllocs()
	for b.Loop() {
		_, span := Start(ctx, "token", trace.SpanKindInternal)
		if span.IsRecording() {
			b.Fatal("recording")
		}
		span.End()
	}
}
