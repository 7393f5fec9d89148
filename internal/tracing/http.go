package tracing

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// propagator reads and writes W3C Trace Context (traceparent,
// tracestate) only: baggage is neither honoured nor sent, as it could
// carry anything a client chose.
var propagator = propagation.TraceContext{}

// requestIDHeader is the response header naming the hub's request id,
// which the span carries so that a trace leads to the request's log
// lines and audit events.
const requestIDHeader = "X-Request-Id"

// Handler serves next inside a server span per request. An incoming
// traceparent makes the span its child, and its sampled flag decides
// whether the request is traced. The span is named by method alone until
// the route is known (Route, called by the hub once its muxes routed the
// request); it records the method, the route, the status code and the
// request id, never the path, the query or a header.
func Handler(tp trace.TracerProvider, next http.Handler) http.Handler {
	tr := tp.Tracer(scope)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		method := methodName(r.Method)
		ctx, span := tr.Start(ctx, method, trace.WithSpanKind(trace.SpanKindServer))
		defer span.End()
		if !span.IsRecording() {
			next.ServeHTTP(w, r.WithContext(ctx))
			return
		}
		span.SetAttributes(attribute.String("http.request.method", method))
		sw := &StatusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(ctx))
		code := sw.code
		if code == 0 {
			code = http.StatusOK
		}
		span.SetAttributes(attribute.Int("http.response.status_code", code))
		if id := w.Header().Get(requestIDHeader); id != "" {
			span.SetAttributes(attribute.String("agentid.request_id", id))
		}
		if code >= 500 {
			// A server span's 4xx is the client's doing, not an error
			// of the hub (OpenTelemetry HTTP semantic conventions).
			span.SetStatus(codes.Error, "")
		}
	})
}

// Route names the server span of r, once the hub's muxes have routed r,
// by the pattern that matched ("POST /token", "GET /register/{id}"):
// never the path a client chose, which may hold a code or a state. It
// does nothing when the request is not traced.
func Route(r *http.Request) {
	span := trace.SpanFromContext(r.Context())
	if !span.IsRecording() || r.Pattern == "" {
		return
	}
	route := r.Pattern
	if _, path, ok := strings.Cut(route, " "); ok {
		route = path
	}
	span.SetName(methodName(r.Method) + " " + route)
	span.SetAttributes(attribute.String("http.route", route))
}

// methodName is the method as the semantic conventions want it in names
// and attributes: a known method, or HTTP for any other a client sent.
func methodName(m string) string {
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch,
		http.MethodHead, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "HTTP"
}

// StatusWriter remembers the status code written (Code: 0 until the
// handler writes). The tracing handler and the server's metrics and access
// log wrap responses with it.
type StatusWriter struct {
	http.ResponseWriter
	code int
}

// Code is the status written so far, 0 when nothing was.
func (w *StatusWriter) Code() int { return w.code }

func (w *StatusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *StatusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush passes flushes on (server-sent streams, large exports), as
// http.Flusher; best effort.
func (w *StatusWriter) Flush() {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection (flushes,
// deadlines).
func (w *StatusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Transport sends requests through base (nil: http.DefaultTransport)
// inside a client span, with the W3C traceparent of that span, so that
// the server called continues the trace. The span records the method,
// the server's host and port and the status code; never the URL's path
// or query, a header or the body (a refresh token, a client secret).
// Without a traced request in the context the span is a root of its own,
// sampled by the provider's ratio (a background refresh).
func Transport(tp trace.TracerProvider, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{base: base, tr: tp.Tracer(scope)}
}

type transport struct {
	base http.RoundTripper
	tr   trace.Tracer
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	method := methodName(req.Method)
	ctx, span := t.tr.Start(req.Context(), method, trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	if span.IsRecording() {
		span.SetAttributes(attribute.String("http.request.method", method))
		host, port := hostPort(req)
		span.SetAttributes(attribute.String("server.address", host))
		if port > 0 {
			span.SetAttributes(attribute.Int("server.port", port))
		}
	}
	// A RoundTripper must not change the caller's request.
	out := req.Clone(ctx)
	propagator.Inject(ctx, propagation.HeaderCarrier(out.Header))
	resp, err := t.base.RoundTrip(out)
	if err != nil {
		// The error text names the URL, which may carry a query.
		span.SetStatus(codes.Error, errorClass(err))
		return nil, err
	}
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
		if resp.StatusCode >= 400 {
			span.SetStatus(codes.Error, "")
		}
	}
	return resp, nil
}

// hostPort is the server the request goes to, the port from the scheme
// when the URL has none.
func hostPort(req *http.Request) (string, int) {
	host, p, err := net.SplitHostPort(req.URL.Host)
	if err != nil {
		host = req.URL.Host
		switch req.URL.Scheme {
		case "https":
			return host, 443
		case "http":
			return host, 80
		}
		return host, 0
	}
	port, _ := strconv.Atoi(p)
	return host, port
}

// errorClass describes a transport error without its text.
func errorClass(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "transport error"
}
