package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/spf13/cobra"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/audit/sink"
	"github.com/agentid/agentid/internal/changefeed"
	"github.com/agentid/agentid/internal/clients"
	"github.com/agentid/agentid/internal/config"
	"github.com/agentid/agentid/internal/connectors"
	"github.com/agentid/agentid/internal/fetch"
	"github.com/agentid/agentid/internal/jobs"
	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
	"github.com/agentid/agentid/internal/tracing"
	"github.com/agentid/agentid/internal/vault"
)

// HTTP server limits (CONVENTIONS.md rule 11: every http.Server sets them).
// Requests to the hub are small forms and JSON documents, so the read
// limits are tight; the write limit leaves room for a slow client reading a
// page.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
	// shutdownTimeout bounds how long in-flight requests may finish after
	// SIGINT/SIGTERM before the remaining connections are closed.
	shutdownTimeout = 20 * time.Second
)

// Background task intervals.
const (
	// keyReloadInterval: the change feed reloads the keys at once when a
	// replica (or `agentid keys rotate`) changes them; this reload is the
	// backstop, and drops keys past their ExpiresAt from the published set.
	keyReloadInterval = 30 * time.Second
	// cleanupInterval: expired codes, tokens, sessions and JTIs.
	cleanupInterval = time.Minute
	// keyCleanupInterval: signing keys past their ExpiresAt.
	keyCleanupInterval = 10 * time.Minute
	// clientExpiryInterval: self-registered clients unused for
	// registration.client_expiry.
	clientExpiryInterval = time.Hour
	// vaultRefreshInterval: how often the vault looks for connections
	// whose access token expires within its margin (60s) or that were not
	// refreshed for a day; a minute keeps a token due within the margin
	// from being handed out stale.
	vaultRefreshInterval = time.Minute
	// sealInterval: how often the audit sealer links new events into the
	// chain (docs/design.md, "Audit trail integrity").
	sealInterval = time.Second
	// jobLeaseTTL: how long a replica leads a background job without
	// renewing its lease; a job moves to another replica within about
	// this long after its leader died.
	jobLeaseTTL = jobs.DefaultTTL
)

func (c *cli) newServeCmd() *cobra.Command {
	var printConfig bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the hub",
		Long: `Run the hub: the OAuth 2.1 authorization server, its login and consent pages,
and the health, readiness and metadata endpoints.

It binds its address first (--listen, else listen from the configuration),
so a busy port fails before anything is created. On first start it then
creates the data directory (0700), the SQLite database, the key-encryption key
file (0600) and the first signing key. Only one serve (or demo) runs on a data
directory at a time; a second says which process holds it. It migrates an
older database schema when store.auto_migrate is true (the default) and
refuses to start on a schema newer than it knows. SIGINT or SIGTERM shut it
down gracefully.`,
		Example: `  agentid serve
  agentid serve --listen 127.0.0.1:9090 --data-dir /var/lib/agentid
  agentid serve --config agentid.yaml --print-config`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := c.loadConfig()
			if err != nil {
				return err
			}
			if printConfig {
				b, err := cfg.Redacted()
				if err != nil {
					return fmt.Errorf("rendering the configuration: %w", err)
				}
				_, err = cmd.OutOrStdout().Write(b)
				return err
			}
			return serve(cmd.Context(), cfg, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().BoolVar(&printConfig, "print-config", false, "print the effective configuration (secrets REDACTED) and exit")
	cmd.Flags().Var(settingFlag{c.flagSettings, "AGENTID_LISTEN"}, "listen",
		"`host:port` to listen on (default 127.0.0.1:8080; overrides listen and AGENTID_LISTEN; the issuer follows unless set)")
	return cmd
}

// serve runs the hub on cfg.Listen until ctx is cancelled, then shuts down
// gracefully. It prints one line to stdout saying where it listens; logs go
// to stderr.
func serve(ctx context.Context, cfg *config.Config, stdout, stderr io.Writer) (err error) {
	log := newLogger(cfg.Log, stderr)
	// Bind before creating anything: a busy port is the commonest start
	// failure and must not leave a fresh database and keys behind.
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Listen)
	if err != nil {
		return listenError("", cfg.Listen, err)
	}
	defer ln.Close()
	if err := checkLoopbackAllowance(cfg, ln.Addr()); err != nil {
		return err
	}
	mln, err := listenMetrics(ctx, cfg)
	if err != nil {
		return err
	}
	if mln != nil {
		defer mln.Close()
	}
	scheme := "http"
	if cfg.TLS.Enabled() {
		if ln, err = tlsListener(ln, cfg.TLS, log); err != nil {
			return err
		}
		scheme = "https"
	}
	lock, err := lockDataDir(cfg)
	if err != nil {
		return err
	}
	defer lock.Release()
	h, err := newHub(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := h.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if err := h.claimJobs(ctx, lock); err != nil {
		return err
	}
	h.startup.done("claim_jobs")
	if mln != nil {
		defer serveMetrics(ctx, mln, h.metrics, cfg.Metrics.Pprof, log)()
	}
	// The actual address: with port 0 the kernel chose it.
	addr := ln.Addr().String()
	fmt.Fprintf(stdout, "agentid: listening on %s://%s, issuer %s\n", scheme, addr, cfg.Issuer)
	log.InfoContext(ctx, "listening", "addr", addr, "issuer", cfg.Issuer, h.startup.attr())

	// Background tasks outlive ctx until the HTTP server has drained, so
	// that requests finishing during shutdown still see fresh keys.
	bg, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { h.runBackground(bg, log) })
	err = serveHTTP(ctx, ln, h.Handler(), log)
	stopBackground()
	wg.Wait()
	if err == nil {
		log.InfoContext(ctx, "stopped")
	}
	return err
}

// checkLoopbackAllowance refuses cimd.allow_loopback unless the hub is
// bound to a loopback address (the configuration check saw only the
// listen setting; a name there may have resolved elsewhere): documents on
// loopback are then this machine's own, fetched by a hub only this
// machine can reach.
func checkLoopbackAllowance(cfg *config.Config, addr net.Addr) error {
	if !cfg.CIMD.AllowLoopback {
		return nil
	}
	if ta, ok := addr.(*net.TCPAddr); !ok || !ta.IP.IsLoopback() {
		return fmt.Errorf("cimd.allow_loopback is set but the hub listens on %s, which is not a loopback address; turn the allowance off or listen on 127.0.0.1", addr)
	}
	return nil
}

// listenError explains a failure to bind addr, the setting's value (""
// for listen, else the setting's name, such as metrics.listen), with the
// way out for the usual cause, a port already in use.
func listenError(setting, addr string, err error) error {
	way, prefix := "choose another with --listen HOST:PORT or the listen setting", ""
	if setting != "" {
		way = "choose another address for " + setting
		prefix = setting + ": "
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%slistening on %s: the address is already in use (is another agentid or other server running there?); %s: %w", prefix, addr, way, err)
	}
	return fmt.Errorf("%slistening on %s: %w", prefix, addr, err)
}

// newLogger builds the process logger from the log settings: JSON (or
// text) on w, at the configured level, each record logged for a request
// naming its request id.
func newLogger(lc config.LogConfig, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: lc.SlogLevel()}
	if lc.Format == "text" {
		return slog.New(server.LogHandler(slog.NewTextHandler(w, opts)))
	}
	return slog.New(server.LogHandler(slog.NewJSONHandler(w, opts)))
}

// hub is a ready-to-serve agentid: its store (schema checked), signing keys,
// policy engine and HTTP handler. serve runs one; so can any command that
// embeds the hub in a larger process.
type hub struct {
	store  store.Store
	keys   *token.Keys
	vault  *vault.Vault
	server *server.Server
	// sealer links the audit trail into its hash chain and signs
	// checkpoints; it runs for the hub's lifetime (Run).
	sealer *audit.Sealer
	// sinks streams the sealed trail to the configured sinks (nil: none).
	sinks *sink.Dispatcher
	// jobs runs the jobs one replica does for all (leadJobs) while it
	// holds their leases.
	jobs *jobs.Runner
	// metrics are served on metrics.listen (nil: off).
	metrics *server.Metrics
	// changes is the change feed the server's caches, keys and policy
	// follow.
	changes *changefeed.Feed
	// tracing exports the hub's spans (nil: off).
	tracing *tracing.Provider
	log     *slog.Logger
	// startup times the steps of newHub (and serve's after it), for the
	// log line that says the hub listens.
	startup *startupPhases
}

// startupPhases times the steps of a start: a slow start's log line says
// where the time went (store connection, schema check, keys, policy...).
type startupPhases struct {
	start, last time.Time
	attrs       []any
}

func newStartupPhases() *startupPhases {
	now := time.Now()
	return &startupPhases{start: now, last: now}
}

// done ends the step name, which began when the previous one ended.
func (p *startupPhases) done(name string) {
	now := time.Now()
	p.attrs = append(p.attrs, slog.Int64(name+"_ms", now.Sub(p.last).Milliseconds()))
	p.last = now
}

// attr is the steps' durations and their total, as one log attribute.
func (p *startupPhases) attr() slog.Attr {
	return slog.Group("startup", append(p.attrs, slog.Int64("total_ms", time.Since(p.start).Milliseconds()))...)
}

// newHub opens the store, prepares its schema, loads (or creates) the KEK
// and signing keys, loads the policy set and builds the HTTP server. The
// default tenant needs no setup: every row carries it and the policy engine
// falls back to the embedded default policy set.
func newHub(ctx context.Context, cfg *config.Config, log *slog.Logger) (_ *hub, err error) {
	phases := newStartupPhases()
	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	phases.done("store")
	defer func() {
		if err != nil {
			st.Close()
		}
	}()
	if err := prepareSchema(ctx, st, cfg.Store.AutoMigrate, log); err != nil {
		return nil, err
	}
	phases.done("schema")
	ring, err := startKeyring(ctx, st, cfg)
	if err != nil {
		return nil, err
	}
	keys, err := token.NewKeys(ctx, token.Options{
		Store:      st,
		Keyring:    ring,
		Algorithm:  cfg.Tokens.SigningAlg,
		PrePublish: time.Duration(cfg.Tokens.KeyPrePublish),
		Logger:     log,
	})
	if err != nil {
		return nil, fmt.Errorf("loading signing keys: %w", err)
	}
	phases.done("keys")
	metrics := newMetrics(cfg)
	changes := newChangeFeed(st, log)
	pol, err := policy.New(ctx, policy.Options{Store: st, Domains: st, Logger: log, RefreshInterval: policyBackstop, Decided: policyDecided(metrics)})
	if err != nil {
		return nil, fmt.Errorf("loading the policy set: %w", err)
	}
	phases.done("policy")
	reg, err := registrationConfig(cfg.Registration)
	if err != nil {
		return nil, err
	}
	// One fetcher for every URL the hub fetches (metadata documents,
	// clients' jwks_uri, trusted issuers' keys): public addresses only,
	// unless the development allowance lets loopback through.
	fetcher := fetch.New(fetch.Config{AllowLoopback: cfg.CIMD.AllowLoopback})
	if reg.Statements, err = softwareStatements(cfg.TrustedIssuers, fetcher.KeySets()); err != nil {
		return nil, err
	}
	// One holder id names this process in every lease it takes: job
	// leases, the vault's refresh leases, the audit sinks' leases.
	holder := jobs.NewHolder()
	tr, err := newTracing(cfg, holder, log) // nil: tracing off
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			stopTracing(ctx, tr, log)
		}
	}()
	vlt, err := vault.New(vault.Config{Store: st, Keyring: ring, Logger: log, Holder: holder, Refreshed: vaultRefreshed(metrics), HTTPClient: tracedHTTPClient(tr)})
	if err != nil {
		return nil, err
	}
	if err := syncConnectors(ctx, st, cfg.Connectors, log); err != nil {
		return nil, err
	}
	phases.done("vault_connectors")
	perMinute, burst := cfg.Login.PerUserLimit()
	ipPerMinute, ipBurst := cfg.Login.PerIPLimit()
	srv, err := server.New(server.Config{
		Issuer:               cfg.Issuer,
		Store:                tracedStore(tr, cfg, st),
		Keys:                 keys,
		Keyring:              ring,
		Vault:                vlt,
		Policy:               pol,
		Changes:              changes,
		AccessTokenTTL:       time.Duration(cfg.Tokens.AccessTokenTTL),
		RefreshTokenTTL:      time.Duration(cfg.Tokens.RefreshTokenTTL),
		RefreshReuseInterval: reuseInterval(time.Duration(cfg.Tokens.RefreshTokenReuseInterval)),
		AuthCodeTTL:          time.Duration(cfg.Tokens.AuthCodeTTL),
		MaxDelegationDepth:   cfg.Tokens.MaxDelegationDepth,
		SessionTTL:           time.Duration(cfg.Login.SessionTTL),
		Registration:         reg,
		SecureCookies:        cfg.SecureCookies(),
		InsecureCookies:      cfg.Login.InsecureCookies,
		LoginAttempts:        server.LoginLimit{PerMinute: perMinute, Burst: burst},
		LoginAttemptsPerIP:   server.LoginLimit{PerMinute: ipPerMinute, Burst: ipBurst},
		ConsentPreselect: server.ConsentPreselect{
			SelfRegistered:  time.Duration(cfg.Consent.SelfRegisteredDefault),
			StepUpSensitive: time.Duration(cfg.Consent.StepUpSensitiveDefault),
		},
		Fetcher:            fetcher,
		DisableCIMD:        !cfg.CIMD.Enabled,
		IdentityAssertions: identityAssertions(cfg.IdentityAssertions),
		Connectors:         connectors.New(connectors.Options{Keyring: ring, AllowHTTPLoopback: cfg.Login.AllowLoopbackConnectors}),
		DisableLocalLogin:  !cfg.Login.Local,
		TrustedProxies:     cfg.TrustedProxyPrefixes(),
		Metrics:            metrics,
		Logger:             log,
	})
	if err != nil {
		return nil, err
	}
	sinks, err := newSinkDispatcher(cfg, st, holder, log)
	if err != nil {
		return nil, err
	}
	var sealed func(*store.SealResult)
	if sinks != nil {
		sealed = sinks.Offer // the sinks take what the sealer linked without reading it back
	}
	sealer, err := newSealer(cfg, st, keys, log, sealed)
	if err != nil {
		return nil, err
	}
	runner, err := jobs.New(jobs.Options{Store: st, Holder: holder, TTL: jobLeaseTTL, Logger: log})
	if err != nil {
		return nil, err
	}
	if metrics != nil && sinks != nil {
		metrics.WatchAuditSinks(st)
	}
	phases.done("server")
	return &hub{store: st, keys: keys, vault: vlt, server: srv, sealer: sealer, sinks: sinks, jobs: runner, metrics: metrics, changes: changes, startup: phases, tracing: tr, log: log}, nil
}

// newSealer builds the audit chain's sealer. It needs no settle time on
// either backend: the store says when a watermark reading is safe to seal
// up to (store.AuditChain.ReadAuditWatermark).
func newSealer(cfg *config.Config, st store.Store, keys *token.Keys, log *slog.Logger, sealed func(*store.SealResult)) (*audit.Sealer, error) {
	return audit.NewSealer(audit.SealerOptions{Store: st, Signer: keys, Issuer: cfg.Issuer, Logger: log, Sealed: sealed})
}

// identityAssertions maps the identity_assertions settings to the server's.
func identityAssertions(ia config.IdentityAssertionsConfig) server.IdentityAssertions {
	out := server.IdentityAssertions{Lifetime: time.Duration(ia.Lifetime)}
	for _, t := range ia.Targets {
		st := server.IdentityTarget{Audience: t.Audience, Resources: t.Resources, Claims: t.Claims}
		for _, c := range t.Clients {
			st.Clients = append(st.Clients, server.IdentityClient{ClientID: c.Client, RemoteClientID: c.RemoteClientID, Scopes: c.Scopes})
		}
		out.Targets = append(out.Targets, st)
	}
	return out
}

// registrationConfig maps the registration settings to the server's.
func registrationConfig(rc config.RegistrationConfig) (*server.RegistrationConfig, error) {
	mode := rc.EffectiveMode()
	reg := &server.RegistrationConfig{Disabled: mode == config.RegistrationOff}
	if mode == config.RegistrationToken {
		hashes := rc.InitialAccessTokenHashes()
		// The server treats "no hashes" as open registration; a closed
		// registration with an empty token file must not silently open.
		if len(hashes) == 0 {
			return nil, errors.New("registration.mode is token but the initial access token file holds no tokens; add one per line, or set registration.mode: off")
		}
		reg.InitialAccessTokenHashes = hashes
	}
	if rc.MaxPerIP > 0 && rc.RateWindow > 0 {
		perMinute, burst := rc.RatePerMinute(rc.MaxPerIP)
		reg.PerIP = server.LoginLimit{PerMinute: perMinute, Burst: burst}
	}
	if rc.MaxTotal > 0 && rc.RateWindow > 0 {
		perMinute, burst := rc.RatePerMinute(rc.MaxTotal)
		reg.Total = server.LoginLimit{PerMinute: perMinute, Burst: burst}
	}
	reg.ClientExpiry = time.Duration(rc.ClientExpiry)
	if reg.ClientExpiry == 0 {
		reg.ClientExpiry = -1 // 0 in the file means never
	}
	return reg, nil
}

// softwareStatements builds the verifier of software statements from the
// issuers trusted for them; remote fetches the keys of those with a
// jwks_uri (nil: such an issuer is a start error). Nil when none is
// trusted.
func softwareStatements(issuers []config.TrustedIssuer, remote clients.KeySource) (*clients.Statements, error) {
	var list []clients.TrustedIssuer
	for _, ti := range issuers {
		if !ti.Trusts(config.UseSoftwareStatement) {
			continue
		}
		t := clients.TrustedIssuer{Issuer: ti.Issuer, JWKSURI: ti.JWKSURI}
		if ti.JWKS != "" {
			var set jose.JSONWebKeySet
			if err := json.Unmarshal([]byte(ti.JWKS), &set); err != nil || len(set.Keys) == 0 {
				return nil, fmt.Errorf("trusted issuer %s: its jwks is not a JWK set", ti.Issuer)
			}
			for _, k := range set.Keys {
				if !k.Valid() || !k.IsPublic() {
					return nil, fmt.Errorf("trusted issuer %s: its jwks must hold only valid public keys", ti.Issuer)
				}
			}
			t.Keys = &set
		}
		list = append(list, t)
	}
	if len(list) == 0 {
		return nil, nil
	}
	return clients.NewStatements(list, remote, nil)
}

// Handler is the hub's root HTTP handler.
func (h *hub) Handler() http.Handler { return tracedHandler(h.tracing, h.server.Handler()) }

// Close exports the spans still queued, then releases the store.
func (h *hub) Close() error {
	stopTracing(context.Background(), h.tracing, h.log)
	if err := h.store.Close(); err != nil {
		return fmt.Errorf("closing the store: %w", err)
	}
	return nil
}

// localJobs are the background jobs every replica runs for itself.
func (h *hub) localJobs() []jobs.Job {
	return []jobs.Job{
		// Each replica signs and publishes with the keys it loaded.
		{Name: "reload signing keys", Every: keyReloadInterval, Run: h.keys.Reload},
	}
}

// leadJobs are the background jobs one replica runs for all, each while
// it holds the job's lease (docs/design.md, "Background jobs across
// replicas"). Lease names are shared by every replica on the database.
func (h *hub) leadJobs() []jobs.Job {
	return []jobs.Job{
		{Name: "delete-expired", Every: cleanupInterval, Run: func(ctx context.Context) error {
			return h.store.DeleteExpired(ctx, time.Now())
		}},
		{Name: "delete-expired-signing-keys", Every: keyCleanupInterval, Run: func(ctx context.Context) error {
			return h.store.DeleteExpiredSigningKeys(ctx, time.Now())
		}},
		{Name: "consent-expiry", Every: cleanupInterval, Run: h.server.SweepExpiredConsent},
		{Name: "client-expiry", Every: clientExpiryInterval, Run: h.server.ExpireClients},
		{Name: "prune-changes", Every: cleanupInterval, Run: pruneChanges(h.store)},
		// The vault's sweep for connections due a refresh; a retrieval
		// on any replica still refreshes on demand, under the
		// connection's own refresh lease.
		{Name: "vault-refresh", Run: func(ctx context.Context) error {
			h.vault.Run(ctx, vaultRefreshInterval)
			return nil
		}},
		// One sealer links the chain and signs its checkpoints; it seals
		// once more when it stops, while the lease is still held.
		{Name: "audit-sealer", Run: func(ctx context.Context) error {
			h.sealer.Run(ctx, sealInterval)
			return nil
		}},
	}
}

// claimJobs clears the job leases left in a SQLite database whose data
// directory this process has locked (lock not nil): no other process can
// run jobs on it, so a lease found there is a dead process's, and would
// hold the restarted hub's jobs (the sealer among them) back for up to a
// lease's length. On PostgreSQL (nil lock) leases are the replicas'.
func (h *hub) claimJobs(ctx context.Context, lock *dirLock) error {
	if lock == nil {
		return nil
	}
	return h.jobs.ClearLeases(ctx)
}

// runBackground runs the hub's background work until ctx is done: the
// jobs every replica runs for itself, the jobs one replica leads for all
// (expiry sweeps, the vault's refresher, the audit chain's sealer), and
// the audit sinks, which lease each sink on their own. The sinks outlive
// the others: once the sealer has sealed the last requests' events they
// get sinkFlushTimeout to deliver them (flushSinks).
func (h *hub) runBackground(ctx context.Context, log *slog.Logger) {
	sinkCtx, stopSinks := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSinks()
	var sinks sync.WaitGroup
	if h.sinks != nil {
		sinks.Go(func() { h.sinks.Run(sinkCtx) })
	}
	var wg sync.WaitGroup
	// Every replica follows the change feed: its caches, keys and policy.
	wg.Go(func() { h.changes.Run(ctx) })
	wg.Go(func() { jobs.RunLocal(ctx, log, h.localJobs()...) })
	// The sealer, a lead job, seals once more when ctx ends, after the
	// last request; the runner waits for it before releasing its lease.
	wg.Go(func() { h.jobs.Run(ctx, h.leadJobs()...) })
	wg.Wait()
	h.flushSinks(sinkCtx, log)
	stopSinks()
	sinks.Wait()
}

// newHTTPServer wraps h in an http.Server with every timeout set.
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// serveHTTP serves h on ln until ctx is cancelled, then shuts down
// gracefully: no new connections, in-flight requests get shutdownTimeout to
// finish. It returns nil after a clean shutdown.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	srv := newHTTPServer(h, log)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		// Serve returns only on failure before Shutdown.
		return fmt.Errorf("serving HTTP: %w", err)
	case <-ctx.Done():
	}
	log.InfoContext(ctx, "shutting down", "timeout", shutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		<-errc
		return fmt.Errorf("graceful shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving HTTP: %w", err)
	}
	return nil
}

// reuseInterval maps tokens.refresh_token_reuse_interval, where 0 means
// strict rotation, to server.Config, where zero means the default.
func reuseInterval(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
