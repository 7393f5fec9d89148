// Package server is agentid's HTTP surface: the protocol endpoints (metadata,
// JWKS, token, registration, revocation, introspection) on a cookie-less mux,
// and the browser pages (authorize, login, consent, account) on a separate mux with
// CSRF protection and a strict CSP. Handlers parse once with package oauth,
// run the shared pipeline, then a small per-grant hook.
package server

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/agentid/agentid/internal/changefeed"
	"github.com/agentid/agentid/internal/clients"
	"github.com/agentid/agentid/internal/connectors"
	"github.com/agentid/agentid/internal/connectors/scim"
	"github.com/agentid/agentid/internal/consent"
	"github.com/agentid/agentid/internal/federation"
	"github.com/agentid/agentid/internal/fetch"
	"github.com/agentid/agentid/internal/keyring"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
	"github.com/agentid/agentid/internal/tracing"
	"github.com/agentid/agentid/internal/vault"
)

// Config configures a Server. Zero values mean the documented defaults.
type Config struct {
	// Issuer is the hub's public base URL (RFC 8414 §2), without a trailing slash.
	Issuer string
	Store  store.Store
	Keys   *token.Keys
	// Keyring seals what the hub hands out to come back (connect intents)
	// and is the vault's; Vault keeps downstream connections. Both are
	// required for /connections and credential retrieval; nil Vault turns
	// them off.
	Keyring *keyring.Keyring
	Vault   *vault.Vault
	Policy  *policy.Engine
	// Changes is the change feed the server's caches (clients, resources,
	// people, verified tokens, domains) subscribe to, and that reloads
	// Keys and Policy when another replica changes them (changes.go). The
	// caller runs it. Nil: nothing is cached, every lookup reads the store.
	Changes *changefeed.Feed
	// TenantID defaults to store.DefaultTenant.
	TenantID string

	// AccessTokenTTL is the default access-token lifetime (default 10m); a
	// resource may set its own; never more than MaxAccessTokenTTL (1h).
	AccessTokenTTL time.Duration
	// RefreshTokenTTL is the refresh-token lifetime (default 30 days).
	RefreshTokenTTL time.Duration
	// RefreshReuseInterval is how long after its rotation a refresh token is
	// still accepted from its own client (default 10s); negative makes
	// rotation strict.
	RefreshReuseInterval time.Duration
	// AuthCodeTTL is the authorization-code lifetime (default and maximum 60s).
	AuthCodeTTL time.Duration
	// SessionTTL is the login-session lifetime (default 12h).
	SessionTTL time.Duration

	// RegistrationOpen allows dynamic registration without an initial access
	// token (default true via Registration == nil).
	Registration *RegistrationConfig
	// SecureCookies forces the Secure attribute on cookies. When false,
	// cookies are Secure unless the issuer is http on a loopback host.
	SecureCookies bool
	// InsecureCookies never sets Secure (login.insecure_cookies), for a
	// development hub reached over plain http; it wins over SecureCookies.
	InsecureCookies bool

	// LoginAttempts limits failed logins per user name from one client
	// address (default 5 per minute with a burst of 5); LoginAttemptsPerIP
	// per client address, an IPv6 address counting as its /64 (default 20
	// per minute with a burst of 20). Successful logins are never counted.
	LoginAttempts      LoginLimit
	LoginAttemptsPerIP LoginLimit

	// ConsentPreselect chooses the duration the consent screen preselects
	// by how far the agent is trusted.
	ConsentPreselect ConsentPreselect

	// IdentityAssertions makes the hub an enterprise IdP issuing ID-JAGs
	// to the targets it lists (grant_idjag.go); zero: none.
	IdentityAssertions IdentityAssertions

	// Fetcher makes every request the hub sends to a URL someone else
	// chose: Client ID Metadata Documents and clients' jwks_uri key sets.
	// nil: fetch.New(fetch.Config{}) (public addresses only, system roots).
	Fetcher *fetch.Fetcher
	// DisableCIMD turns Client ID Metadata Documents off: an https
	// client_id is then an unknown client, and the metadata does not
	// advertise client_id_metadata_document_supported.
	DisableCIMD bool

	// Connectors signs people in through upstream identity providers
	// (store.Connectors; login_connectors.go); it needs Keyring. nil: no
	// connector sign-in.
	Connectors *connectors.Registry
	// DisableLocalLogin turns password sign-in off (login.local: false):
	// people sign in through connectors only.
	DisableLocalLogin bool

	// TrustedProxies are the addresses of the reverse proxies in front
	// of the hub (trusted_proxies): from a peer in them X-Forwarded-For
	// names the client (proxy.go). Empty: the peer is the client and the
	// header is ignored.
	TrustedProxies []netip.Prefix

	// Metrics, when set, counts requests, token requests and store
	// latency (metrics.go); nil: none.
	Metrics *Metrics

	// MaxDelegationDepth is the most actors the act claim of a token from
	// token exchange may nest (tokens.max_delegation_depth; default
	// DefaultMaxDelegationDepth).
	MaxDelegationDepth int

	Logger *slog.Logger
	Now    func() time.Time
	Rand   io.Reader
}

// RegistrationConfig controls RFC 7591 dynamic registration and the life of
// self-registered clients.
type RegistrationConfig struct {
	// Disabled turns the registration endpoint off entirely.
	Disabled bool
	// InitialAccessTokenHashes, when non-empty, makes registration require a
	// bearer initial access token whose SHA-256 is in the list (RFC 7591 §3).
	InitialAccessTokenHashes [][]byte
	// PerIP and Total limit registrations per client address (an IPv6
	// address counting as its /64) and in all; default 60 and 1000 an hour,
	// each with a burst of as many.
	PerIP, Total LoginLimit
	// Statements verifies software statements (RFC 7591 §2.3); nil: no
	// issuer is trusted and a registration carrying one is refused.
	Statements *clients.Statements
	// ClientExpiry is how long a self-registered client may go unused
	// before ExpireClients removes it (default 30 days; negative: never).
	ClientExpiry time.Duration
}

// ConsentPreselect is how long the consent screen proposes to grant when
// the person does not choose. An agent an administrator registered or
// tagged "trusted" gets the resource's default; a self-registered one at
// most SelfRegistered (default 24h); a step-up to a sensitive scope, when
// the agent already holds consent on the resource, at most StepUpSensitive
// (default 1h). The preselection is the longest offered choice not longer
// than that, so it never exceeds the resource's maximum.
type ConsentPreselect struct {
	SelfRegistered  time.Duration
	StepUpSensitive time.Duration
}

// LoginLimit is a token-bucket rate for failed login attempts.
type LoginLimit struct {
	PerMinute float64
	Burst     int
}

// DefaultRefreshReuseInterval is how long a rotated refresh token is still
// accepted from its client unless Config says otherwise.
const DefaultRefreshReuseInterval = 10 * time.Second

// MaxAccessTokenTTL is the ceiling of every access-token lifetime.
const MaxAccessTokenTTL = time.Hour

// Server serves agentid's HTTP endpoints.
type Server struct {
	cfg    Config
	issuer string
	// providers is the canonical <issuer>/providers/ (grant_connection.go).
	providers string
	tenant    string
	st        store.Store
	keys      *token.Keys
	policy    *policy.Engine
	ledger    *consent.Ledger
	registrar *clients.Registrar
	log       *slog.Logger
	// accessLog: the logger takes debug records, so each request is
	// logged (observe).
	accessLog bool
	scim      http.Handler // scim.go
	now       func() time.Time
	rand      io.Reader
	pages     *pages
	console   *consolePages
	clients   *feedCache[*store.Client]
	resources *feedCache[*store.Resource]
	// resourceForms remembers the canonical forms of the resource
	// parameters the token pipeline is sent (resolve.go).
	resourceForms canonicalForms
	// verified remembers the claims of access tokens whose signature
	// token exchange checked (grant_exchange.go), until the key set
	// changes.
	verified *feedCache[*token.AccessClaims]
	// introMemo remembers what introspected tokens' bytes say
	// (introspect_memo.go).
	introMemo *introMemo
	// users caches the enabled people tokens are issued about
	// (issuingUser in grant.go).
	users *feedCache[*store.User]
	// grants is the grant table (grant.go) behind /token, metadata and
	// registration.
	grants []grant
	// verifying bounds concurrent argon2id checks: each takes 64 MiB, so a
	// burst of logins must queue rather than exhaust memory.
	verifying    chan struct{}
	userThrottle *throttle
	ipThrottle   *throttle
	// authIPThrottle and authIDThrottle count failed client
	// authentications per address and per client id and address.
	authIPThrottle, authIDThrottle *throttle
	// regLimit limits dynamic registrations (gov.go).
	regLimit *registrationLimiter
	// touches notes when this process last recorded each client's use.
	touches  touchNotes
	secure   bool
	keyCache keyCache
	// fetcher and keySets fetch Client ID Metadata Documents and remote
	// JWK sets (jwks_uri); cimd remembers the documents' freshness and
	// domains caches the domain trust list briefly.
	fetcher *fetch.Fetcher
	keySets *fetch.KeySets
	cimd    cimdCache
	domains *feedCache[[]*store.Domain]
	// fed verifies JWTs from the tenant's trusted issuers (jwt-bearer
	// grant, workload client assertions).
	fed *federation.Registry

	metaMu   sync.Mutex
	metaJSON []byte // RFC 8414
	oidcJSON []byte // OpenID Connect Discovery
	metaAt   time.Time

	handler http.Handler
}

// New builds a Server.
func New(cfg Config) (*Server, error) {
	var problems []string
	if cfg.Issuer == "" {
		problems = append(problems, "Issuer is required")
	}
	u, err := url.Parse(cfg.Issuer)
	if err != nil || u.Scheme == "" || u.Host == "" || u.Fragment != "" || u.RawQuery != "" {
		problems = append(problems, "Issuer must be an absolute URL without query or fragment")
	}
	if cfg.Store == nil {
		problems = append(problems, "Store is required")
	}
	if cfg.Keys == nil {
		problems = append(problems, "Keys is required")
	}
	if cfg.Policy == nil {
		problems = append(problems, "Policy is required")
	}
	if len(problems) > 0 {
		return nil, errors.New("server: " + strings.Join(problems, "; "))
	}
	s := &Server{
		cfg:    cfg,
		issuer: strings.TrimSuffix(cfg.Issuer, "/"),
		tenant: cfg.TenantID,
		st:     cfg.Store,
		keys:   cfg.Keys,
		policy: cfg.Policy,
		log:    cfg.Logger,
		now:    cfg.Now,
		rand:   cfg.Rand,
	}
	if cfg.Metrics != nil {
		s.st = cfg.Metrics.timeStore(s.st)
	}
	s.providers = providersPrefix(s.issuer)
	if s.tenant == "" {
		s.tenant = store.DefaultTenant
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = slog.New(LogHandler(s.log.Handler()))
	s.accessLog = s.log.Enabled(context.Background(), slog.LevelDebug)
	if s.now == nil {
		s.now = time.Now
	}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	if s.cfg.AccessTokenTTL <= 0 {
		s.cfg.AccessTokenTTL = 10 * time.Minute
	}
	s.cfg.AccessTokenTTL = min(s.cfg.AccessTokenTTL, MaxAccessTokenTTL)
	if s.cfg.RefreshTokenTTL <= 0 {
		s.cfg.RefreshTokenTTL = 30 * 24 * time.Hour
	}
	switch {
	case s.cfg.RefreshReuseInterval == 0:
		s.cfg.RefreshReuseInterval = DefaultRefreshReuseInterval
	case s.cfg.RefreshReuseInterval < 0:
		s.cfg.RefreshReuseInterval = 0
	}
	if s.cfg.AuthCodeTTL <= 0 || s.cfg.AuthCodeTTL > time.Minute {
		s.cfg.AuthCodeTTL = time.Minute
	}
	if s.cfg.SessionTTL <= 0 {
		s.cfg.SessionTTL = 12 * time.Hour
	}
	if s.cfg.Registration == nil {
		s.cfg.Registration = &RegistrationConfig{}
	}
	reg := *s.cfg.Registration
	if reg.PerIP.PerMinute <= 0 || reg.PerIP.Burst <= 0 {
		reg.PerIP = LoginLimit{PerMinute: defaultRegistrationsPerIP / 60.0, Burst: defaultRegistrationsPerIP}
	}
	if reg.Total.PerMinute <= 0 || reg.Total.Burst <= 0 {
		reg.Total = LoginLimit{PerMinute: defaultRegistrations / 60.0, Burst: defaultRegistrations}
	}
	if reg.ClientExpiry == 0 {
		reg.ClientExpiry = defaultClientExpiry
	}
	s.cfg.Registration = &reg
	if s.cfg.LoginAttempts.PerMinute <= 0 {
		s.cfg.LoginAttempts = LoginLimit{PerMinute: 5, Burst: 5}
	}
	if s.cfg.LoginAttemptsPerIP.PerMinute <= 0 {
		s.cfg.LoginAttemptsPerIP = LoginLimit{PerMinute: 20, Burst: 20}
	}
	if s.cfg.ConsentPreselect.SelfRegistered <= 0 {
		s.cfg.ConsentPreselect.SelfRegistered = 24 * time.Hour
	}
	if s.cfg.ConsentPreselect.StepUpSensitive <= 0 {
		s.cfg.ConsentPreselect.StepUpSensitive = time.Hour
	}
	s.secure = !cfg.InsecureCookies && (cfg.SecureCookies || !(u.Scheme == "http" && oauth.IsLoopbackHost(u.Hostname())))
	s.pages, err = newPages()
	if err != nil {
		return nil, err
	}
	if s.console, err = newConsolePages(); err != nil {
		return nil, err
	}
	s.grants = defaultGrants()
	var feed freshness
	if cfg.Changes != nil {
		feed = cfg.Changes
	}
	s.clients = newFeedCache[*store.Client](feed)
	s.resources = newFeedCache[*store.Resource](feed)
	s.verified = newFeedCache[*token.AccessClaims](feed)
	s.introMemo = newIntroMemo(maxIntroMemo)
	s.users = newFeedCache[*store.User](feed)
	s.domains = newFeedCache[[]*store.Domain](feed)
	s.fetcher = cfg.Fetcher
	if s.fetcher == nil {
		s.fetcher = fetch.New(fetch.Config{})
	}
	s.keySets = s.fetcher.KeySets()
	s.fed = federation.NewRegistry(s.st, s.tenant, s.keySets, s.now)
	if cfg.Changes != nil {
		s.fed.FollowChanges(cfg.Changes.Fresh)
	}
	s.verifying = make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))
	s.userThrottle = newThrottle(s.cfg.LoginAttempts, s.now, throttleMax)
	s.ipThrottle = newThrottle(s.cfg.LoginAttemptsPerIP, s.now, throttleMax)
	s.authIPThrottle = newFailureThrottle(clientAuthPerIP, s.now, throttleMax)
	s.authIDThrottle = newFailureThrottle(clientAuthPerID, s.now, throttleMax)
	s.regLimit = newRegistrationLimiter(reg.PerIP, reg.Total, s.now, registrationLimiterMax)
	s.ledger, err = consent.New(consent.Options{Store: s.st, TenantID: s.tenant, Now: s.now})
	if err != nil {
		return nil, err
	}
	s.registrar, err = clients.New(clients.Options{Store: s.st, Policy: s.policy, TenantID: s.tenant, Rand: s.rand, Now: s.now})
	if err != nil {
		return nil, err
	}
	if s.scim, err = s.scimHandler(); err != nil {
		return nil, err
	}
	if cfg.Changes != nil {
		// Last: the feed may deliver at once, to a server fully built.
		cfg.Changes.Subscribe(s.onChanges)
	}
	s.handler = s.routes()
	return s, nil
}

// Handler returns the root handler with every route.
func (s *Server) Handler() http.Handler { return s.handler }

// Issuer returns the issuer URL.
func (s *Server) Issuer() string { return s.issuer }

func (s *Server) routes() http.Handler {
	// Protocol endpoints: no cookies are read or set here.
	api := http.NewServeMux()
	api.HandleFunc("GET /.well-known/oauth-authorization-server", s.handleMetadata)
	api.HandleFunc("GET /.well-known/openid-configuration", s.handleOIDCMetadata)
	asPaths, oidcPaths := metadataPaths(s.issuer)
	for _, p := range asPaths {
		api.HandleFunc("GET "+p, s.handleMetadata)
		api.HandleFunc("OPTIONS "+p, s.handlePreflight)
	}
	for _, p := range oidcPaths {
		api.HandleFunc("GET "+p, s.handleOIDCMetadata)
		api.HandleFunc("OPTIONS "+p, s.handlePreflight)
	}
	api.HandleFunc("GET /jwks.json", s.handleJWKS)
	api.HandleFunc("POST /token", s.handleToken)
	api.HandleFunc("POST /revoke", s.handleRevoke)
	api.HandleFunc("POST /introspect", s.handleIntrospect)
	api.HandleFunc("POST "+toolReportPath, s.handleToolReport)
	api.HandleFunc("GET /userinfo", s.handleUserinfo)
	api.HandleFunc("POST /userinfo", s.handleUserinfo)
	api.HandleFunc("POST /register", s.handleRegister)
	api.HandleFunc("GET /register/{id}", s.handleRegistrationRead)
	api.HandleFunc("PUT /register/{id}", s.handleRegistrationUpdate)
	api.HandleFunc("DELETE /register/{id}", s.handleRegistrationDelete)
	api.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	api.HandleFunc("GET /readyz", s.handleReady)
	// The admin API (admin.go): bearer tokens only, RFC 9457 errors.
	api.HandleFunc("GET "+AdminAPIPath+"/audit", s.handleAdminAudit)
	api.HandleFunc(AdminAPIPath+"/audit", adminMethods("GET, HEAD"))
	// admin_agents.go: the inventory, people, and their lifecycle.
	for _, e := range []struct {
		method, path string
		h            http.HandlerFunc
	}{
		{"GET", "/agents", s.handleAdminAgents},
		{"GET", "/agents/{id}", s.handleAdminAgent},
		{"POST", "/agents/{id}/deprovision", s.handleAdminAgentDeprovision},
		{"GET", "/users", s.handleAdminUsers},
		{"GET", "/users/{id}", s.handleAdminUser},
		{"POST", "/users/{id}/disable", s.handleAdminUserDisable},
		{"POST", "/users/{id}/deprovision", s.handleAdminUserDeprovision},
	} {
		api.HandleFunc(e.method+" "+AdminAPIPath+e.path, e.h)
		allow := e.method
		if allow == "GET" {
			allow = "GET, HEAD"
		}
		api.HandleFunc(AdminAPIPath+e.path, adminMethods(allow))
	}
	api.HandleFunc(AdminAPIPath+"/", s.adminNotFound)
	// SCIM 2.0 provisioning (scim.go): bearer tokens only, SCIM errors.
	api.Handle(scim.Path+"/", s.scim)
	// CORS preflights are answered on the protocol endpoints only, so that
	// an unknown path is a 404 rather than a 405 that allows OPTIONS.
	for _, p := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration", "/jwks.json", "/token", "/revoke", "/introspect", "/userinfo", "/register", "/register/{id}"} {
		api.HandleFunc("OPTIONS "+p, s.handlePreflight)
	}
	// Other methods on the POST-only endpoints get an OAuth JSON error with
	// no-store rather than the mux's plain-text 405.
	for _, p := range []string{"/token", "/revoke", "/introspect", "/register", toolReportPath} {
		for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodPatch, http.MethodDelete} {
			api.HandleFunc(m+" "+p, methodNotAllowed("POST, OPTIONS"))
		}
	}
	api.HandleFunc("/", s.notFound)

	// Browser pages: cookies, CSRF tokens and cross-origin protection.
	web := http.NewServeMux()
	web.HandleFunc("GET /{$}", s.handleHome)
	web.HandleFunc("GET /favicon.ico", serveFavicon)
	web.HandleFunc("GET /authorize", s.handleAuthorize)
	web.HandleFunc("POST /authorize", s.handleAuthorize)
	web.HandleFunc("POST /authorize/decision", s.handleDecision)
	web.HandleFunc("GET /login", s.handleLoginPage)
	web.HandleFunc("POST /login", s.handleLogin)
	web.HandleFunc("POST /logout", s.handleLogout)
	if s.connectorsOn() {
		web.HandleFunc("GET "+connectorPathPrefix+"{id}", s.handleConnectorStart)
		web.HandleFunc("GET "+connectorPathPrefix+"{id}/callback", s.handleConnectorCallback)
		web.HandleFunc("GET "+samlPathPrefix+"{id}", s.handleSAMLStart)
		web.HandleFunc(samlACSPattern, s.handleSAMLACS)
		web.HandleFunc("GET "+samlPathPrefix+"{id}/metadata", s.handleSAMLMetadata)
	}
	web.Handle("GET /static/", s.staticHandler())
	web.HandleFunc("GET /account", s.handleAccount)
	web.HandleFunc("POST /account/revoke", s.handleAccountRevoke)
	web.HandleFunc("POST /account/signout-installation", s.handleAccountSignOutInstallation)
	if s.connectionsOn() {
		// connections.go; without a vault these paths are 404s.
		web.HandleFunc("GET /connections", s.handleConnections)
		web.HandleFunc("POST /connections/{provider}/start", s.handleConnectStart)
		web.HandleFunc("POST /connections/{provider}/key", s.handleConnectKey)
		web.HandleFunc("GET "+connectCallbackPath, s.handleConnectCallback)
		web.HandleFunc("GET /connections/connect/{provider}", s.handleConnectIntent)
		web.HandleFunc("POST /account/connections/{id}/disconnect", s.handleDisconnect)
		web.HandleFunc("POST /account/connections/{id}/key", s.handleReplaceKey)
	}
	s.consoleRoutes(web) // console.go
	web.HandleFunc("/", s.notFound)
	cop := http.NewCrossOriginProtection()
	cop.AddInsecureBypassPattern(samlACSPattern) // login_saml.go
	webHandler := securityHeaders(cop.Handler(web))

	root := http.NewServeMux()
	for _, p := range []string{"/{$}", "/favicon.ico", "/authorize", "/authorize/decision", "/login", "/logout", "/static/"} {
		root.Handle(p, webHandler)
	}
	root.Handle("/login/", webHandler)
	root.Handle("/account", webHandler)
	root.Handle("/account/", webHandler)
	root.Handle("/connections", webHandler)
	root.Handle("/connections/", webHandler)
	root.Handle("/admin", webHandler)
	root.Handle("/admin/", webHandler)
	root.Handle(AdminAPIPath, corsProtocol(api))
	root.Handle(AdminAPIPath+"/", corsProtocol(api))
	root.Handle("/", corsProtocol(api))
	return s.middleware(root)
}

// maxBody bounds every request body.
const maxBody = 64 << 10

type ctxKey int

// requestKey holds the request's *requestInfo: one context value (and
// one allocation) for everything the middleware learns about a request.
const requestKey ctxKey = 0

// requestInfo is what the middleware records about a request.
type requestInfo struct {
	// id is the hub's own id of the request; clientID the X-Request-Id
	// the client sent, when well-formed.
	id, clientID string
	// ip is the client address (clientIP).
	ip string
}

func requestInfoOf(ctx context.Context) *requestInfo {
	ri, _ := ctx.Value(requestKey).(*requestInfo)
	return ri
}

// requestID is the hub's own id of the request.
func requestID(ctx context.Context) string {
	if ri := requestInfoOf(ctx); ri != nil {
		return ri.id
	}
	return ""
}

// clientRequestID is the X-Request-Id the client sent, when well-formed.
func clientRequestID(ctx context.Context) string {
	if ri := requestInfoOf(ctx); ri != nil {
		return ri.clientID
	}
	return ""
}

// Bounds of request ids the hub did not make: a client's, kept beside the
// hub's own, and a trusted proxy's, used instead of it.
const (
	maxClientRequestID = 64
	maxProxyRequestID  = 128
)

// validClientRequestID accepts 1–64 characters of [A-Za-z0-9._-]: enough for
// UUIDs and trace ids, nothing that could forge a log line or an audit field.
func validClientRequestID(id string) bool { return safeID(id, maxClientRequestID, "._-") }

// validProxyRequestID accepts 1–128 characters of [A-Za-z0-9._:-]: a
// proxy's id (nginx's $request_id, Envoy's UUIDs), nothing that could
// forge a log line or an audit field; the hub makes its own for anything
// else.
func validProxyRequestID(id string) bool { return safeID(id, maxProxyRequestID, "._:-") }

// safeID reports whether id is 1 to max ASCII letters, digits and bytes
// of punct.
func safeID(id string, max int, punct string) bool {
	if id == "" || len(id) > max {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(punct, c) >= 0) {
			return false
		}
	}
	return true
}

// proxyRequestID is the X-Request-Id a trusted proxy set on r, when the
// peer is one (trusted_proxies) and it sent exactly one well-formed id;
// else "". The proxy must set the header itself (nginx: proxy_set_header
// X-Request-Id $request_id), replacing any a client sent.
func (s *Server) proxyRequestID(r *http.Request) string {
	if len(s.cfg.TrustedProxies) == 0 {
		return ""
	}
	vs := r.Header.Values("X-Request-Id")
	if len(vs) != 1 || !validProxyRequestID(vs[0]) {
		return ""
	}
	peer, err := netip.ParseAddr(peerIP(r))
	if err != nil || !isTrusted(peer.Unmap(), s.cfg.TrustedProxies) {
		return ""
	}
	return vs[0]
}

func (s *Server) middleware(next http.Handler) http.Handler {
	recovering := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.ErrorContext(r.Context(), "panic", "request_id", requestID(r.Context()), "err", v)
				http.Error(w, "internal error", http.StatusInternalServerError)
			}
		}()
		defer tracing.Route(r) // the span's name, once the muxes have routed r
		next.ServeHTTP(w, r)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The hub names the request itself, or takes the name a trusted
		// proxy gave it, so that the proxy's logs and the hub's share it. A
		// client-chosen id is never the request's: it could pass its events
		// off as someone else's. A well-formed id the client sent is kept
		// beside it, for correlating with the client's logs.
		ri := &requestInfo{ip: s.resolveIP(r)}
		if ri.id = s.proxyRequestID(r); ri.id == "" {
			ri.id = token.NewID(s.rand)
			if cid := r.Header.Get("X-Request-Id"); validClientRequestID(cid) {
				ri.clientID = cid
			}
		}
		w.Header().Set("X-Request-Id", ri.id)
		r = r.WithContext(context.WithValue(r.Context(), requestKey, ri))
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		}
		if s.cfg.Metrics != nil || s.accessLog {
			s.observe(w, r, recovering)
			return
		}
		recovering.ServeHTTP(w, r)
	})
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setPageHeaders(w.Header())
		next.ServeHTTP(w, r)
	})
}

// setPageHeaders sets the headers of every HTML page: a strict CSP with no
// script, no framing, no sniffing, no referrer, no caching.
func setPageHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

// corsProtocol lets browser-based MCP clients (MCP Inspector, web agents)
// read the protocol endpoints' answers. These endpoints read no cookies, so
// any origin is safe: a cross-origin page learns only what its own request
// earned.
func corsProtocol(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// Shared values, set without Set's copy (canonical keys):
		// net/http only reads them, and their capacity of one makes an
		// Add copy before it appends.
		h["Access-Control-Allow-Origin"] = corsAnyOrigin[:1:1]
		h["Access-Control-Expose-Headers"] = corsExposed[:1:1]
		next.ServeHTTP(w, r)
	})
}

var (
	corsAnyOrigin = []string{"*"}
	corsExposed   = []string{"WWW-Authenticate, Location, Retry-After"}
)

// methodNotAllowed answers a method an endpoint does not take (RFC 9110
// §15.5.6) in the endpoint's own error format.
func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		e := oauth.ErrInvalidRequest("%s is not allowed here; use POST", r.Method)
		e.Status = http.StatusMethodNotAllowed
		oauth.WriteError(w, e)
	}
}

// handlePreflight answers CORS preflights for the protocol endpoints that
// browser-based MCP clients call (metadata, token, registration).
func (s *Server) handlePreflight(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, MCP-Protocol-Version")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

// writeProtocolError writes err as an OAuth JSON error: *oauth.Error values
// as they are, anything else as a fixed server_error, logged with the request
// id.
func (s *Server) writeProtocolError(w http.ResponseWriter, r *http.Request, err error) {
	var oe *oauth.Error
	if !errors.As(err, &oe) {
		oe = oauth.ErrServer(err)
	}
	if oe.Code == oauth.CodeServerError {
		s.log.ErrorContext(r.Context(), "request failed", "request_id", requestID(r.Context()), "path", r.URL.Path, "err", errors.Unwrap(oe))
	} else {
		s.log.DebugContext(r.Context(), "request refused", "request_id", requestID(r.Context()), "path", r.URL.Path, "error", oe.Code)
	}
	oauth.WriteError(w, oe)
}
