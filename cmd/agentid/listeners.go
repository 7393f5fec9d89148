package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentid/agentid/internal/config"
	"github.com/agentid/agentid/internal/server"
)

// sinkFlushTimeout bounds how long a stopping hub waits for the audit
// sinks to deliver the events of its last requests.
const sinkFlushTimeout = 10 * time.Second

// metricsStopTimeout bounds the metrics listener's own drain, after the
// hub's.
const metricsStopTimeout = 2 * time.Second

// stopBudget is the longest a clean stop waits on its deadlines after
// SIGTERM: requests in flight, the audit sinks, the metrics listener and
// the last spans, one after the other (the store's close comes on top).
// The packaging's stop timeouts (TimeoutStopSec, stop_grace_period,
// terminationGracePeriodSeconds) must be longer; deploy_test checks them.
const stopBudget = shutdownTimeout + sinkFlushTimeout + metricsStopTimeout + tracingFlushTimeout

// newMetrics is the hub's metrics when metrics.listen is set, else nil.
func newMetrics(cfg *config.Config) *server.Metrics {
	if cfg.Metrics.Listen == "" {
		return nil
	}
	return server.NewMetrics()
}

// policyDecided and vaultRefreshed are the metrics' hooks, nil without
// metrics.
func policyDecided(m *server.Metrics) func(string, int, int) {
	if m == nil {
		return nil
	}
	return m.PolicyDecided
}

func vaultRefreshed(m *server.Metrics) func(string) {
	if m == nil {
		return nil
	}
	return m.VaultRefreshed
}

// listenMetrics binds metrics.listen (nil listener when unset), before
// anything is created, like the hub's own address.
func listenMetrics(ctx context.Context, cfg *config.Config) (net.Listener, error) {
	if cfg.Metrics.Listen == "" {
		return nil, nil
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Metrics.Listen)
	if err != nil {
		return nil, listenError("metrics.listen", cfg.Metrics.Listen, err)
	}
	return ln, nil
}

// serveMetrics serves GET /metrics on ln until the returned stop is
// called; stop waits for the server to end. The metrics listener stays
// up while the hub drains, so a scrape sees the shutdown. With withPprof
// it also serves the runtime profiles (metrics.pprof).
func serveMetrics(ctx context.Context, ln net.Listener, m *server.Metrics, withPprof bool, log *slog.Logger) (stop func()) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	srv := newHTTPServer(mux, log)
	if withPprof {
		// A CPU profile or trace extends its own write deadline by the
		// seconds requested.
		handlePprof(mux)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.ErrorContext(ctx, "metrics listener failed", "err", err)
		}
	}()
	log.InfoContext(ctx, "metrics listening", "addr", ln.Addr().String())
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), metricsStopTimeout)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			srv.Close()
		}
		<-done
	}
}

// handlePprof registers net/http/pprof's handlers on mux, explicitly: the
// package's own registration on http.DefaultServeMux is served by no
// listener of the hub.
func handlePprof(mux *http.ServeMux) {
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}

// tlsListener wraps ln in TLS with the certificate files of tc, which are
// loaded now (a start error when they do not load) and again whenever
// they change on disk.
func tlsListener(ln net.Listener, tc config.TLSConfig, log *slog.Logger) (net.Listener, error) {
	cr, err := newCertReloader(tc.CertFile, tc.KeyFile, log)
	if err != nil {
		return nil, err
	}
	return tls.NewListener(ln, &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: cr.get,
		NextProtos:     []string{"h2", "http/1.1"},
	}), nil
}

// certCheckInterval: a handshake looks at the files' modification times
// at most this often.
const certCheckInterval = time.Second

// certReloader serves a certificate pair from files, loading it again
// when either file's size or modification time changed. A pair that does
// not load (a renewal half-written, a key not matching) is logged and the
// previous certificate kept; the next check tries again.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger
	now               func() time.Time

	cur atomic.Pointer[tls.Certificate]

	mu        sync.Mutex // serialises checks
	checked   time.Time
	certStamp fileStamp
	keyStamp  fileStamp
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{mod: fi.ModTime(), size: fi.Size()}, nil
}

func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	cr := &certReloader{certFile: certFile, keyFile: keyFile, log: log, now: time.Now}
	if err := cr.load(); err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return cr, nil
}

// load reads the pair and makes it current.
func (cr *certReloader) load() error {
	cs, err := stampOf(cr.certFile)
	if err != nil {
		return fmt.Errorf("certificate file: %w", err)
	}
	ks, err := stampOf(cr.keyFile)
	if err != nil {
		return fmt.Errorf("key file: %w", err)
	}
	pair, err := tls.LoadX509KeyPair(cr.certFile, cr.keyFile)
	if err != nil {
		// LoadX509KeyPair's errors name files and PEM problems, never
		// key material.
		return fmt.Errorf("loading %s and %s: %w", cr.certFile, cr.keyFile, err)
	}
	if pair.Leaf == nil && len(pair.Certificate) > 0 {
		if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return fmt.Errorf("parsing %s: %w", cr.certFile, err)
		}
	}
	cr.cur.Store(&pair)
	cr.certStamp, cr.keyStamp = cs, ks
	return nil
}

// get is tls.Config.GetCertificate.
func (cr *certReloader) get(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	cr.maybeReload(hello.Context())
	return cr.cur.Load(), nil
}

func (cr *certReloader) maybeReload(ctx context.Context) {
	now := cr.now()
	cr.mu.Lock()
	defer cr.mu.Unlock()
	if now.Sub(cr.checked) < certCheckInterval {
		return
	}
	cr.checked = now
	cs, err1 := stampOf(cr.certFile)
	ks, err2 := stampOf(cr.keyFile)
	if err1 != nil || err2 != nil {
		cr.log.WarnContext(ctx, "tls: certificate files unreadable; keeping the loaded certificate", "err", errors.Join(err1, err2))
		return
	}
	if cs == cr.certStamp && ks == cr.keyStamp {
		return
	}
	if err := cr.load(); err != nil {
		cr.log.WarnContext(ctx, "tls: the changed certificate files do not load; keeping the loaded certificate", "err", err)
		return
	}
	leaf := cr.cur.Load().Leaf
	cr.log.InfoContext(ctx, "tls: certificate reloaded", "serial", leaf.SerialNumber.String(), "not_after", leaf.NotAfter)
}

// flushSinks waits up to sinkFlushTimeout for the sinks to deliver what
// the sealer has sealed, logging the sinks still behind.
func (h *hub) flushSinks(ctx context.Context, log *slog.Logger) {
	if h.sinks == nil {
		return
	}
	fctx, cancel := context.WithTimeout(ctx, sinkFlushTimeout)
	defer cancel()
	if err := h.sinks.Flush(fctx); err != nil {
		log.WarnContext(ctx, "audit sinks not flushed before exit; they resume from their cursors at the next start", "err", err)
	}
}
