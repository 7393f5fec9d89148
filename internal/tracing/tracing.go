// Package tracing exports OpenTelemetry traces of the hub over OTLP/HTTP
// (docs/design.md, "Tracing"). It is off unless serve configures an
// endpoint, and then costs the request path nothing it did not ask for:
// the composition root wraps the handler (Handler), the store (Store) and
// the vault's HTTP client (Transport); the spans deeper in the hub are
// children started by Start, which does nothing unless the request's own
// span is recording.
//
// No global state: the provider is handed to Handler and Transport, and a
// child span takes its tracer from its parent. Nothing here puts a path,
// a query, a header, a form value, an error text or a person's identity
// into a span: names are route patterns and fixed words, attributes are
// methods, status codes, grant types, outcomes and counts.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// scope names the instrumentation in every span (the OpenTelemetry
// instrumentation scope).
const scope = "github.com/agentid/agentid"

// tracesPath is where an OTLP/HTTP receiver takes traces (OTLP
// specification, "OTLP/HTTP Request"): appended to an endpoint given
// without a path.
const tracesPath = "/v1/traces"

// Options configures a Provider.
type Options struct {
	// Endpoint is the OTLP/HTTP receiver: its base URL
	// ("http://127.0.0.1:4318", /v1/traces is appended) or the full
	// traces URL when it has a path. Required. An http URL sends in
	// clear text; the caller decides whether that is allowed.
	Endpoint string
	// Headers are sent with every export (a collector's API key).
	// Their values are never logged.
	Headers map[string]string
	// SamplingRatio is the share of requests without a sampled parent
	// that are traced, 0 to 1. A request whose incoming traceparent says
	// sampled is always traced, one that says not sampled never is (the
	// decision of the trace's root holds along it).
	SamplingRatio float64
	// ServiceName and ServiceVersion name the hub in the resource
	// (service.name, service.version); InstanceID tells replicas apart
	// (service.instance.id).
	ServiceName, ServiceVersion, InstanceID string
	// Timeout bounds one export (default 10s).
	Timeout time.Duration
	// Logger receives export failures (once until exports succeed
	// again); nil discards.
	Logger *slog.Logger

	// exporter replaces the OTLP exporter (tests).
	exporter sdktrace.SpanExporter
}

// Provider is the hub's tracer provider while tracing is on.
type Provider struct {
	tp *sdktrace.TracerProvider
}

// New builds the provider and its OTLP/HTTP exporter. Nothing is sent
// until a span ends; a receiver that is down costs failed exports in the
// background, never a request.
func New(opts Options) (*Provider, error) {
	if opts.SamplingRatio < 0 || opts.SamplingRatio > 1 {
		return nil, fmt.Errorf("tracing: sampling ratio %v is outside 0..1", opts.SamplingRatio)
	}
	if opts.ServiceName == "" {
		return nil, errors.New("tracing: a service name is required")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	exp := opts.exporter
	if exp == nil {
		u, err := TracesURL(opts.Endpoint)
		if err != nil {
			return nil, err
		}
		headers := opts.Headers
		if headers == nil {
			// Explicitly none: the exporter would otherwise take
			// OTEL_EXPORTER_OTLP_HEADERS from the environment.
			headers = map[string]string{}
		}
		exp, err = otlptracehttp.New(context.Background(),
			otlptracehttp.WithEndpointURL(u),
			otlptracehttp.WithHeaders(headers),
			otlptracehttp.WithTimeout(opts.Timeout),
			otlptracehttp.WithCompression(otlptracehttp.NoCompression))
		if err != nil {
			return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
		}
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", opts.ServiceName)}
	if opts.ServiceVersion != "" {
		attrs = append(attrs, attribute.String("service.version", opts.ServiceVersion))
	}
	if opts.InstanceID != "" {
		attrs = append(attrs, attribute.String("service.instance.id", opts.InstanceID))
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(resource.NewSchemaless(attrs...)),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(opts.SamplingRatio))),
		sdktrace.WithBatcher(&loggingExporter{SpanExporter: exp, log: log}),
	)
	return &Provider{tp: tp}, nil
}

// TracesURL is the URL spans are posted to for an endpoint setting: the
// endpoint itself when it has a path, else its /v1/traces.
func TracesURL(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", errors.New("tracing: the endpoint must be an http or https URL")
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = tracesPath
	}
	return u.String(), nil
}

// TracerProvider is the provider for Handler and Transport.
func (p *Provider) TracerProvider() trace.TracerProvider { return p.tp }

// Shutdown ends every span still queued by exporting it, within ctx.
func (p *Provider) Shutdown(ctx context.Context) error {
	if err := p.tp.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: flushing spans: %w", err)
	}
	return nil
}

// loggingExporter logs export failures through the hub's logger instead
// of OpenTelemetry's global error handler: the first failure at warn, a
// recovery at info, nothing in between (a receiver that is down must not
// fill the log). Failed batches are dropped either way; the exporter has
// retried them already.
type loggingExporter struct {
	sdktrace.SpanExporter
	log *slog.Logger

	mu     sync.Mutex
	failed int // batches failed since the last success
}

func (e *loggingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case err != nil && e.failed == 0:
		e.failed++
		e.log.WarnContext(ctx, "tracing: exporting spans failed; dropping them until the receiver answers", "spans", len(spans), "err", exportError(err))
	case err != nil:
		e.failed++
	case e.failed > 0:
		e.log.InfoContext(ctx, "tracing: exporting spans again", "failed_batches", e.failed)
		e.failed = 0
	}
	return nil
}

// exportError is what the log says of a failed export: the exporter's
// message names the URL and the HTTP status, and then quotes the
// receiver's answer, which could repeat a header of the request; that
// part is cut.
func exportError(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, " (body: "); i >= 0 {
		msg = msg[:i]
	}
	if len(msg) > 300 {
		msg = msg[:300]
	}
	return msg
}
