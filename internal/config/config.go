// Package config owns agentid's configuration: the YAML file schema, strict
// decoding (an unknown key, a wrong type or a second document is an error
// naming the key and its line), one AGENTID_… environment override per
// setting, resolution of secret references (`env:NAME` values and `*_file`
// settings), derived defaults, Validate reporting every problem at once, and
// a redacted rendering for `agentid serve --print-config`.
//
// Besides cmd/agentid this is the only package that reads the environment,
// and it does so only through the lookup function given to Load.
package config

import (
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

// Config is the effective configuration of the hub. After Load every field
// holds its final value: defaults and derived defaults are filled in and
// secret references are resolved, so consumers never see `env:` strings.
type Config struct {
	// Issuer is the public base URL of the hub (RFC 8414 §2: https, no query
	// or fragment). Empty means "derive from Listen" (http on loopback only).
	Issuer string `yaml:"issuer"`
	// Listen is the TCP address the HTTP server binds.
	Listen string `yaml:"listen"`
	// TLS makes serve terminate TLS on Listen itself.
	TLS TLSConfig `yaml:"tls"`
	// Metrics serves Prometheus metrics on a listener of their own.
	Metrics MetricsConfig `yaml:"metrics"`
	// Tracing exports OpenTelemetry traces over OTLP/HTTP (tracing.go).
	Tracing TracingConfig `yaml:"tracing"`
	// TrustedProxies are the reverse proxies in front of the hub, as
	// addresses or CIDR prefixes: from a peer among them X-Forwarded-For
	// names the client (its rightmost hop that is not a trusted proxy),
	// for the per-address limits, policy and the audit trail. Empty: the
	// header is ignored.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// DataDir holds the SQLite database and the key-encryption key file
	// unless those are configured elsewhere.
	DataDir string `yaml:"data_dir"`

	Store        StoreConfig        `yaml:"store"`
	KEK          KEKConfig          `yaml:"kek"`
	Tokens       TokenConfig        `yaml:"tokens"`
	Registration RegistrationConfig `yaml:"registration"`
	// TrustedIssuers are the issuers of signed statements the hub
	// accepts (software statements today).
	TrustedIssuers []TrustedIssuer `yaml:"trusted_issuers"`
	CIMD           CIMDConfig      `yaml:"cimd"`
	Login          LoginConfig     `yaml:"login"`
	// Connectors are the upstream identity providers people sign in
	// through; serve adds or updates them in the store at start.
	Connectors []ConnectorConfig `yaml:"connectors"`
	Consent    ConsentConfig     `yaml:"consent"`
	// IdentityAssertions makes the hub an enterprise IdP issuing ID-JAGs
	// (identity.go).
	IdentityAssertions IdentityAssertionsConfig `yaml:"identity_assertions"`
	Log                LogConfig                `yaml:"log"`
	// Audit streams the audit trail to sinks (audit.go).
	Audit AuditConfig `yaml:"audit"`
}

// StoreConfig selects and opens the database.
type StoreConfig struct {
	// DSN is a "postgres://" (or "postgresql://") URL selecting PostgreSQL,
	// or else the path of an SQLite database file. Default
	// <data_dir>/agentid.db. In the YAML file a DSN carrying a password must
	// be given as "env:NAME" or through DSNFile.
	DSN string `yaml:"dsn"`
	// DSNFile names a file whose content (surrounding whitespace trimmed) is
	// the DSN. Mutually exclusive with DSN.
	DSNFile string `yaml:"dsn_file"`
	// AutoMigrate applies pending schema migrations at start.
	AutoMigrate bool `yaml:"auto_migrate"`
}

// KEKConfig locates the key-encryption key that wraps signing keys and vault
// credentials (docs/design.md §7). Exactly one of File and Value is in effect.
type KEKConfig struct {
	// File is the key file; it is created (0600) on first start when
	// missing. Default <data_dir>/kek.key when Value is empty.
	File string `yaml:"file"`
	// Value is the key itself. In the YAML file it may only be an
	// "env:NAME" reference; the AGENTID_KEK_VALUE (alias AGENTID_KEK)
	// override may hold the key directly. Config does not interpret it.
	Value string `yaml:"value"`
	// Previous and PreviousFiles are older KEKs, kept for opening what
	// they sealed while `agentid kek rotate` re-wraps it under the current
	// one; nothing is sealed under them. Previous holds one or more KEKs in
	// the key text format, separated by commas or newlines; in the YAML
	// file it may only be an "env:NAME" reference, the AGENTID_KEK_PREVIOUS
	// override may hold the keys directly. PreviousFiles are key files
	// (never created). Config does not interpret either.
	Previous      string   `yaml:"previous"`
	PreviousFiles []string `yaml:"previous_files"`
}

// TokenConfig governs the tokens the hub issues.
type TokenConfig struct {
	// AccessTokenTTL is the default access-token lifetime; at most 1h.
	AccessTokenTTL Duration `yaml:"access_token_ttl"`
	// RefreshTokenTTL is the lifetime of a refresh-token family.
	RefreshTokenTTL Duration `yaml:"refresh_token_ttl"`
	// RefreshTokenReuseInterval is how long a rotated refresh token is still
	// accepted from its client (a retry, two processes); 0 is strict
	// rotation. At most 1m.
	RefreshTokenReuseInterval Duration `yaml:"refresh_token_reuse_interval"`
	// AuthCodeTTL is the authorization-code lifetime; at most 60s.
	AuthCodeTTL Duration `yaml:"auth_code_ttl"`
	// SigningAlg is the JWS algorithm of new signing keys: ES256, EdDSA or
	// RS256.
	SigningAlg string `yaml:"signing_alg"`
	// KeyPrePublish is how long a new signing key is published in the JWKS
	// before it signs, so that verifiers' caches already hold it.
	KeyPrePublish Duration `yaml:"key_pre_publish"`
	// MaxDelegationDepth is the most actors the act claim of a token from
	// token exchange (RFC 8693) may nest: the agent, then each hop that
	// exchanged. 1–16.
	MaxDelegationDepth int `yaml:"max_delegation_depth"`
}

// RegistrationConfig governs RFC 7591 dynamic client registration and the
// life of self-registered clients.
type RegistrationConfig struct {
	// Mode is how the registration endpoint admits a registration:
	// RegistrationOpen (anyone), RegistrationToken (an initial access token
	// from InitialAccessTokenFile, RFC 7591 §3) or RegistrationOff (clients
	// are only added by an administrator). Empty: derived from the older
	// Enabled and Open keys, which Load then sets to match.
	Mode string `yaml:"mode"`
	// Enabled and Open are the settings Mode replaces (enabled: false is
	// mode off; open: false is mode token). Setting either to false beside
	// a Mode is a problem.
	Enabled bool `yaml:"enabled"`
	Open    bool `yaml:"open"`
	// InitialAccessTokenFile holds one initial access token per line (blank
	// lines and lines starting with '#' are ignored). Required in mode
	// token, and an error in the other modes.
	InitialAccessTokenFile string `yaml:"initial_access_token_file"`
	// InitialAccessTokens is the content of InitialAccessTokenFile, read by
	// Load. Never printed.
	InitialAccessTokens []string `yaml:"-"`
	// MaxPerIP is the burst of registrations from one address (an IPv6
	// address counts as its /64); the bucket refills completely in
	// RateWindow. MaxTotal is the same for all addresses together. A
	// registration over either limit is answered 429 with Retry-After.
	MaxPerIP   int      `yaml:"max_per_ip"`
	MaxTotal   int      `yaml:"max_total"`
	RateWindow Duration `yaml:"rate_window"`
	// ClientExpiry removes self-registered (dynamic registration) and
	// Client ID Metadata Document clients unused for this long, never one
	// that holds a live token or consent. 0 keeps them forever.
	ClientExpiry Duration `yaml:"client_expiry"`
}

// Registration modes (RegistrationConfig.Mode).
const (
	RegistrationOpen  = "open"
	RegistrationToken = "token"
	RegistrationOff   = "off"
)

// EffectiveMode is Mode, or when it is empty the mode the older Enabled
// and Open keys say.
func (r RegistrationConfig) EffectiveMode() string {
	switch {
	case r.Mode != "":
		return r.Mode
	case !r.Enabled:
		return RegistrationOff
	case !r.Open:
		return RegistrationToken
	}
	return RegistrationOpen
}

// RatePerMinute is the registration rate limit of MaxPerIP or MaxTotal as
// a token bucket: burst n, refilled at perMinute a minute.
func (r RegistrationConfig) RatePerMinute(n int) (perMinute float64, burst int) {
	return bucket(n, r.RateWindow)
}

// TrustedIssuer is an issuer whose signed statements the hub accepts for
// the purposes in Uses: "software_statement" (RFC 7591 §2.3). Its keys
// come from exactly one of JWKSURI (fetched and cached), JWKS (the key set
// as JSON text) or JWKSFile (read by Load into JWKS).
type TrustedIssuer struct {
	Issuer   string   `yaml:"issuer"`
	JWKSURI  string   `yaml:"jwks_uri"`
	JWKS     string   `yaml:"jwks"`
	JWKSFile string   `yaml:"jwks_file"`
	Uses     []string `yaml:"uses"`
}

// UseSoftwareStatement is the TrustedIssuer.Uses entry that accepts the
// issuer's RFC 7591 §2.3 software statements.
const UseSoftwareStatement = "software_statement"

// trustedIssuerUses are the known TrustedIssuer.Uses entries.
var trustedIssuerUses = []string{UseSoftwareStatement}

// Trusts reports whether the issuer is trusted for use.
func (t TrustedIssuer) Trusts(use string) bool {
	for _, u := range t.Uses {
		if u == use {
			return true
		}
	}
	return false
}

// CIMDConfig governs Client ID Metadata Documents
// (draft-ietf-oauth-client-id-metadata-document): a client_id that is an
// https URL names a document the hub fetches and registers as the client.
type CIMDConfig struct {
	// Enabled resolves https client ids by fetching their documents and
	// advertises client_id_metadata_document_supported.
	Enabled bool `yaml:"enabled"`
	// AllowLoopback is the development allowance: documents (and clients'
	// jwks_uri) on loopback addresses are fetched too. Only allowed when
	// the hub itself listens on a loopback address.
	AllowLoopback bool `yaml:"allow_loopback"`
}

// LoginConfig governs the login page and its session.
//
// Throttling counts failed sign-ins only, in a bucket per user name and
// client address and one per client address: a bucket holds
// MaxAttemptsPerUser (or MaxAttemptsPerIP) failures and drains at that many
// per AttemptWindow. A full bucket refuses further sign-ins for that user
// name from that address, or from that address, until it drains.
type LoginConfig struct {
	// SessionTTL is the lifetime of a login session cookie.
	SessionTTL Duration `yaml:"session_ttl"`
	// MaxAttemptsPerUser is the burst of login attempts for one user name.
	MaxAttemptsPerUser int `yaml:"max_attempts_per_user"`
	// MaxAttemptsPerIP is the burst of login attempts from one client IP.
	MaxAttemptsPerIP int `yaml:"max_attempts_per_ip"`
	// AttemptWindow is the time in which an empty bucket refills
	// completely.
	AttemptWindow Duration `yaml:"attempt_window"`
	// InsecureCookies drops the Secure attribute from cookies. Cookies are
	// already non-Secure when the issuer is http on a loopback host; see
	// Config.SecureCookies.
	InsecureCookies bool `yaml:"insecure_cookies"`
	// Local offers password sign-in (default true); false leaves the
	// connectors only.
	Local bool `yaml:"local"`
	// AllowLoopbackConnectors accepts connectors whose issuer is http on a
	// loopback host (development); only while listen is a loopback address.
	AllowLoopbackConnectors bool `yaml:"allow_loopback_connectors"`
}

// ConnectorConfig is an upstream OpenID Connect provider people sign in
// through (agentid connectors add takes the same settings). The client
// secret only by reference: ClientSecretFile.
type ConnectorConfig struct {
	// ID names it across the hub and in its redirect URI
	// <issuer>/login/connectors/<id>/callback.
	ID string `yaml:"id"`
	// Tenant its people belong to (default: the default tenant).
	Tenant string `yaml:"tenant"`
	// Type is "oidc" (the default) or "saml".
	Type string `yaml:"type"`
	// Name is what the login page's button says.
	Name string `yaml:"name"`
	// Issuer is an OIDC provider's issuer URL, or a SAML identity
	// provider's entity id (default: the one its metadata names).
	Issuer string `yaml:"issuer"`
	// ClientID is the hub's client id at an OIDC provider, or the hub's
	// SAML entity id at the identity provider (default: the connector's
	// metadata URL <issuer>/login/saml/<id>/metadata).
	ClientID         string   `yaml:"client_id"`
	ClientSecretFile string   `yaml:"client_secret_file"`
	Scopes           []string `yaml:"scopes"`
	// IdPMetadataFile is a SAML connector's identity provider metadata
	// (XML, read at each start; its signing certificate is trusted).
	IdPMetadataFile string          `yaml:"idp_metadata_file"`
	EmailDomains    []string        `yaml:"email_domains"`
	Claims          ConnectorClaims `yaml:"claims"`
	Disabled        bool            `yaml:"disabled"`
}

// ConnectorClaims names the ID token claims a connector reads (empty:
// preferred_username, email, name; no groups, roles or attributes).
type ConnectorClaims struct {
	Username   string            `yaml:"username"`
	Email      string            `yaml:"email"`
	Name       string            `yaml:"name"`
	Groups     string            `yaml:"groups"`
	Roles      string            `yaml:"roles"`
	Attributes map[string]string `yaml:"attributes"`
}

// ConsentConfig governs the duration the consent screen preselects. An
// agent an administrator registered or tagged "trusted" gets the resource's
// default; the settings cap it for the others. The preselection never
// exceeds the resource's maximum.
type ConsentConfig struct {
	// SelfRegisteredDefault caps the preselection for an agent that
	// registered itself.
	SelfRegisteredDefault Duration `yaml:"self_registered_default"`
	// StepUpSensitiveDefault caps the preselection when an agent that
	// already holds consent on a resource asks for a sensitive scope.
	StepUpSensitiveDefault Duration `yaml:"step_up_sensitive_default"`
}

// LogConfig governs the structured log.
type LogConfig struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is json or text.
	Format string `yaml:"format"`
}

// Duration is a time.Duration written in YAML and environment variables in
// Go syntax ("10m", "1h30m", "60s"). A bare number is rejected, because its
// unit would be a guess.
type Duration time.Duration

// UnmarshalText parses Go duration syntax.
func (d *Duration) UnmarshalText(text []byte) error {
	s := string(text)
	if s == "" {
		return fmt.Errorf("empty duration")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		// time's message repeats the input; keep ours short and quoted once.
		return fmt.Errorf("invalid duration %q (want e.g. \"90s\", \"10m\", \"1h30m\")", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the shortest Go duration syntax ("10m", not "10m0s").
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(d.String()), nil
}

// String is like time.Duration's, without trailing zero units.
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// Default returns the configuration Load yields for no file and an empty
// environment, derived defaults included (issuer from listen, DSN and KEK
// file under data_dir). A caller that changes DataDir or Listen on the
// result must set the derived fields too.
func Default() *Config {
	c := base()
	c.fillDerived()
	return c
}

// base returns the defaults that do not depend on other settings.
func base() *Config {
	return &Config{
		Listen:  "127.0.0.1:8080",
		DataDir: "./agentid-data",
		Store:   StoreConfig{AutoMigrate: true},
		Tokens: TokenConfig{
			AccessTokenTTL:            Duration(10 * time.Minute),
			RefreshTokenTTL:           Duration(720 * time.Hour),
			RefreshTokenReuseInterval: Duration(10 * time.Second),
			AuthCodeTTL:               Duration(60 * time.Second),
			SigningAlg:                "ES256",
			KeyPrePublish:             Duration(10 * time.Minute),
			MaxDelegationDepth:        5,
		},
		Registration: RegistrationConfig{
			Enabled: true, Open: true,
			MaxPerIP: 60, MaxTotal: 1000, RateWindow: Duration(time.Hour),
			ClientExpiry: Duration(30 * 24 * time.Hour),
		},
		CIMD: CIMDConfig{Enabled: true},
		Login: LoginConfig{
			SessionTTL:         Duration(12 * time.Hour),
			MaxAttemptsPerUser: 5,
			MaxAttemptsPerIP:   20,
			AttemptWindow:      Duration(15 * time.Minute),
			Local:              true,
		},
		Consent: ConsentConfig{
			SelfRegisteredDefault:  Duration(24 * time.Hour),
			StepUpSensitiveDefault: Duration(time.Hour),
		},
		IdentityAssertions: IdentityAssertionsConfig{Lifetime: Duration(defaultIDJAGLifetime)},
		Log:                LogConfig{Level: "info", Format: "json"},
		Tracing:            TracingConfig{SamplingRatio: 1, ServiceName: "agentid"},
	}
}

// fillDerived sets the defaults that depend on other settings, leaving any
// value already set alone.
func (c *Config) fillDerived() {
	c.Registration.deriveMode()
	if c.Issuer == "" {
		c.Issuer = issuerFromListen(c.Listen)
		if c.TLS.Enabled() && c.Issuer != "" {
			c.Issuer = "https://" + strings.TrimPrefix(c.Issuer, "http://")
		}
	}
	if c.Store.DSN == "" && c.Store.DSNFile == "" && c.DataDir != "" {
		c.Store.DSN = filepath.Join(c.DataDir, "agentid.db")
	}
	if c.KEK.File == "" && c.KEK.Value == "" && c.DataDir != "" {
		c.KEK.File = filepath.Join(c.DataDir, "kek.key")
	}
}

// issuerFromListen derives "http://host:port" from a listen address,
// mapping an unspecified host (":8080", "0.0.0.0", "::") to 127.0.0.1. It
// returns "" when nothing sensible can be derived (bad address, port 0),
// which Validate then reports as a missing issuer.
func issuerFromListen(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil || port == "" || port == "0" {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// IsPostgres reports whether the store DSN selects PostgreSQL.
func (c *Config) IsPostgres() bool {
	return isPostgresDSN(c.Store.DSN)
}

func isPostgresDSN(dsn string) bool {
	l := strings.ToLower(dsn)
	return strings.HasPrefix(l, "postgres://") || strings.HasPrefix(l, "postgresql://")
}

// SecureCookies reports whether cookies carry the Secure attribute: always,
// unless login.insecure_cookies is set or the issuer is plain http on a
// loopback host (local development, where browsers would drop them).
func (c *Config) SecureCookies() bool {
	if c.Login.InsecureCookies {
		return false
	}
	u, err := url.Parse(c.Issuer)
	if err != nil {
		return true
	}
	return !(u.Scheme == "http" && isLoopbackHost(u.Hostname()))
}

// PerUserLimit is the per-user login throttle as a token bucket: burst
// attempts, refilled at perMinute attempts a minute.
func (l LoginConfig) PerUserLimit() (perMinute float64, burst int) {
	return bucket(l.MaxAttemptsPerUser, l.AttemptWindow)
}

// PerIPLimit is the per-client-IP login throttle as a token bucket.
func (l LoginConfig) PerIPLimit() (perMinute float64, burst int) {
	return bucket(l.MaxAttemptsPerIP, l.AttemptWindow)
}

func bucket(n int, window Duration) (float64, int) {
	if window <= 0 {
		return 0, n
	}
	return float64(n) / time.Duration(window).Minutes(), n
}

// InitialAccessTokenHashes returns the SHA-256 of each initial access
// token: tokens are high-entropy secrets, compared as hashes in constant
// time (docs/design.md §7).
func (r RegistrationConfig) InitialAccessTokenHashes() [][]byte {
	hs := make([][]byte, 0, len(r.InitialAccessTokens))
	for _, t := range r.InitialAccessTokens {
		h := sha256.Sum256([]byte(t))
		hs = append(hs, h[:])
	}
	return hs
}

// SlogLevel maps Level to a slog.Level; unknown values (which Validate
// rejects) map to info.
func (l LogConfig) SlogLevel() slog.Level {
	switch l.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// isLoopbackHost reports whether host is "localhost" or a loopback IP
// (RFC 8252 §7.3 treats these as the device itself).
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
