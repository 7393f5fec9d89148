package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/tracing"
)

// Metrics are the hub's Prometheus metrics, on a registry of their own
// (no global state: a process, or a test, may run many hubs). Every label
// takes its values from a fixed set — route patterns, grant types the hub
// supports, OAuth error codes, policy actions, configured sink names — so
// no request can grow the number of series. serve exposes them on the
// metrics listener (metrics.listen), never on the hub's own address.
type Metrics struct {
	reg *prometheus.Registry

	requests *prometheus.CounterVec   // route, code
	duration *prometheus.HistogramVec // route
	tokens   *prometheus.CounterVec   // grant_type, outcome
	policy   *prometheus.CounterVec   // action, decision
	vault    *prometheus.CounterVec   // outcome
	storeOps *prometheus.HistogramVec // operation
}

// NewMetrics builds the metrics with the Go runtime's and the process's
// collectors beside them.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentid_http_requests_total",
			Help: "HTTP requests answered, by route pattern and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "agentid_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route pattern.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentid_token_requests_total",
			Help: "Token endpoint requests, by grant type and outcome (issued, or the OAuth error code).",
		}, []string{"grant_type", "outcome"}),
		policy: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentid_policy_decisions_total",
			Help: "Policy decisions on scopes, by action and decision (allow, deny).",
		}, []string{"action", "decision"}),
		vault: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentid_vault_refreshes_total",
			Help: "Vault connection refreshes, by outcome (refreshed, needs_reauth, failed).",
		}, []string{"outcome"}),
		storeOps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "agentid_store_operation_duration_seconds",
			Help:    "Latency of the store operations on the request path, by operation.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}, []string{"operation"}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.tokens, m.policy, m.vault, m.storeOps,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// PolicyDecided counts a policy result's scope decisions
// (policy.Options.Decided).
func (m *Metrics) PolicyDecided(action string, allowed, denied int) {
	if allowed > 0 {
		m.policy.WithLabelValues(action, "allow").Add(float64(allowed))
	}
	if denied > 0 {
		m.policy.WithLabelValues(action, "deny").Add(float64(denied))
	}
}

// VaultRefreshed counts a connection refresh (vault.Config.Refreshed).
func (m *Metrics) VaultRefreshed(outcome string) { m.vault.WithLabelValues(outcome).Inc() }

// WatchAuditSinks adds the audit sinks' lag, read from the store at each
// scrape (what `agentid audit sinks` shows): per sink, the events after
// its cursor, the age of the oldest of them, the failed attempts since
// the last delivery and the events dead-lettered.
func (m *Metrics) WatchAuditSinks(st store.AuditSinks) {
	m.reg.MustRegister(&sinkCollector{st: st, now: time.Now})
}

var (
	sinkPendingDesc = prometheus.NewDesc("agentid_audit_sink_pending_events",
		"Sealed audit events the sink has not delivered yet.", []string{"sink"}, nil)
	sinkLagDesc = prometheus.NewDesc("agentid_audit_sink_lag_seconds",
		"Age of the oldest audit event the sink has not delivered (0: none).", []string{"sink"}, nil)
	sinkFailuresDesc = prometheus.NewDesc("agentid_audit_sink_failures",
		"Failed delivery attempts since the sink's last success.", []string{"sink"}, nil)
	sinkDeadDesc = prometheus.NewDesc("agentid_audit_sink_dead_lettered_events_total",
		"Audit events the sink gave up on.", []string{"sink"}, nil)
	sinkUpDesc = prometheus.NewDesc("agentid_audit_sinks_readable",
		"1 when the sinks' state could be read from the store at this scrape.", nil, nil)
)

// sinkScrapeTimeout bounds the store read of one scrape.
const sinkScrapeTimeout = 5 * time.Second

type sinkCollector struct {
	st  store.AuditSinks
	now func() time.Time
}

func (c *sinkCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- sinkPendingDesc
	ch <- sinkLagDesc
	ch <- sinkFailuresDesc
	ch <- sinkDeadDesc
	ch <- sinkUpDesc
}

func (c *sinkCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), sinkScrapeTimeout)
	defer cancel()
	sinks, err := c.st.ListAuditSinks(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(sinkUpDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(sinkUpDesc, prometheus.GaugeValue, 1)
	now := c.now()
	for _, s := range sinks {
		lag := 0.0
		if !s.OldestPending.IsZero() {
			lag = max(0, now.Sub(s.OldestPending).Seconds())
		}
		ch <- prometheus.MustNewConstMetric(sinkPendingDesc, prometheus.GaugeValue, float64(s.Pending), s.Name)
		ch <- prometheus.MustNewConstMetric(sinkLagDesc, prometheus.GaugeValue, lag, s.Name)
		ch <- prometheus.MustNewConstMetric(sinkFailuresDesc, prometheus.GaugeValue, float64(s.Failures), s.Name)
		ch <- prometheus.MustNewConstMetric(sinkDeadDesc, prometheus.CounterValue, float64(s.DeadLetters), s.Name)
	}
}

// unmatchedRoute labels a request no pattern matched.
const unmatchedRoute = "unmatched"

// observe counts and times each request (Metrics) and writes the access
// log line (at debug level) by the pattern that routed it: the muxes
// record it on the request (http.Request.Pattern) as they route, so after
// the handler returns the innermost pattern is known — a template such as
// "GET /register/{id}", never the path a client chose. The access log
// names the method, route, status and duration, never the path or query
// (which may hold a code or a state).
func (s *Server) observe(w http.ResponseWriter, r *http.Request, next http.Handler) {
	start := time.Now()
	sw := &tracing.StatusWriter{ResponseWriter: w}
	defer func() {
		route := r.Pattern
		if route == "" {
			route = unmatchedRoute
		}
		code := sw.Code()
		if code == 0 {
			code = http.StatusOK
		}
		d := time.Since(start)
		if m := s.cfg.Metrics; m != nil {
			m.requests.WithLabelValues(route, codeLabel(code)).Inc()
			m.duration.WithLabelValues(route).Observe(d.Seconds())
		}
		if s.accessLog {
			s.log.LogAttrs(r.Context(), slog.LevelDebug, "request", slog.String("method", r.Method),
				slog.String("route", route), slog.Int("status", code), slog.Duration("duration", d))
		}
	}()
	next.ServeHTTP(sw, r)
}

// codeLabel is the code's decimal form, without allocating for the
// common ones.
func codeLabel(code int) string {
	switch code {
	case 200:
		return "200"
	case 201:
		return "201"
	case 204:
		return "204"
	case 302:
		return "302"
	case 303:
		return "303"
	case 400:
		return "400"
	case 401:
		return "401"
	case 403:
		return "403"
	case 404:
		return "404"
	case 429:
		return "429"
	case 500:
		return "500"
	case 503:
		return "503"
	}
	return strconv.Itoa(code)
}

// tokenOutcome labels a token request's result: issued, or the OAuth
// error code (a fixed set), server_error for anything else.
func tokenOutcome(err error) string {
	if err == nil {
		return "issued"
	}
	var oe *oauth.Error
	if errors.As(err, &oe) {
		return oe.Code
	}
	return oauth.CodeServerError
}

// unparsedGrant labels a token request refused before its grant type was
// read (a malformed body).
const unparsedGrant = "unparsed"

// countToken records a token request of grant type typ ("" when the
// grant type is not one the hub supports).
func (m *Metrics) countToken(typ string, err error) {
	if typ == "" {
		typ = "unsupported"
	}
	m.tokens.WithLabelValues(typ, tokenOutcome(err)).Inc()
}
