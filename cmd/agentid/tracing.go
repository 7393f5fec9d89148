package main

import (
	"context"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/agentid/agentid/internal/config"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/tracing"
)

// tracingFlushTimeout bounds how long a stopping hub waits for the
// exporter to send the spans of its last requests, after the HTTP server
// drained and the audit sinks flushed.
const tracingFlushTimeout = 5 * time.Second

// vaultHTTPTimeout is the vault's own default for provider calls, kept
// when tracing wraps its transport.
const vaultHTTPTimeout = 10 * time.Second

// newTracing starts the tracer provider when tracing.endpoint is set, and
// returns nil otherwise: then nothing is wrapped and no span is made.
// instance tells this replica's spans apart (service.instance.id).
func newTracing(cfg *config.Config, instance string, log *slog.Logger) (*tracing.Provider, error) {
	if !cfg.Tracing.Enabled() {
		return nil, nil
	}
	headers, err := cfg.Tracing.HeaderMap()
	if err != nil {
		return nil, err // Load has refused this already
	}
	p, err := tracing.New(tracing.Options{
		Endpoint:       cfg.Tracing.Endpoint,
		Headers:        headers,
		SamplingRatio:  cfg.Tracing.SamplingRatio,
		ServiceName:    cfg.Tracing.ServiceName,
		ServiceVersion: buildVersion(),
		InstanceID:     instance,
		Logger:         log,
	})
	if err != nil {
		return nil, err
	}
	u, _ := tracing.TracesURL(cfg.Tracing.Endpoint)
	log.Info("tracing", "endpoint", u, "sampling_ratio", cfg.Tracing.SamplingRatio)
	return p, nil
}

// buildVersion is the module version the binary was built as, "" for a
// development build.
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return ""
}

// tracedStore is st with its token-path operations traced (nil p: st).
func tracedStore(p *tracing.Provider, cfg *config.Config, st store.Store) store.Store {
	if p == nil {
		return st
	}
	system := "sqlite"
	if cfg.IsPostgres() {
		system = "postgresql"
	}
	return tracing.Store(st, system)
}

// tracedHTTPClient is the vault's client for providers with client spans
// and traceparent (nil p: nil, the vault's default).
func tracedHTTPClient(p *tracing.Provider) *http.Client {
	if p == nil {
		return nil
	}
	return &http.Client{Timeout: vaultHTTPTimeout, Transport: tracing.Transport(p.TracerProvider(), nil)}
}

// tracedHandler is h inside a server span per request (nil p: h).
func tracedHandler(p *tracing.Provider, h http.Handler) http.Handler {
	if p == nil {
		return h
	}
	return tracing.Handler(p.TracerProvider(), h)
}

// stopTracing exports the spans still queued, within tracingFlushTimeout;
// spans it cannot send in time are lost, and the log says so.
func stopTracing(ctx context.Context, p *tracing.Provider, log *slog.Logger) {
	if p == nil {
		return
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tracingFlushTimeout)
	defer cancel()
	if err := p.Shutdown(fctx); err != nil {
		log.WarnContext(ctx, "tracing: spans not exported before the exit", "err", err)
	}
}
