package config

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Limits that are protocol rules rather than taste.
const (
	// maxAccessTokenTTL caps access tokens (docs/design.md §7: never more than
	// one hour), keeping the jti denylist and stolen-token windows short.
	maxAccessTokenTTL = time.Hour
	// maxAuthCodeTTL: RFC 6749 §4.1.2 recommends a maximum code lifetime
	// of 10 minutes; agentid holds codes to 60 seconds.
	maxAuthCodeTTL = 60 * time.Second
)

// signingAlgs are the JWS algorithms tokens.signing_alg accepts.
var signingAlgs = []string{"ES256", "EdDSA", "RS256"}

var (
	logLevels  = []string{"debug", "info", "warn", "error"}
	logFormats = []string{"json", "text"}
)

// Validate checks the configuration as a whole and returns every problem
// at once as Problems (nil when there are none). It does no I/O: secret
// references must already be resolved, as Load does.
func (c *Config) Validate() error {
	return c.validate().err()
}

func (c *Config) validate() Problems {
	var ps Problems
	c.validateIssuer(&ps)

	if _, port, err := net.SplitHostPort(c.Listen); err != nil {
		ps.add("listen", 0, "", fmt.Sprintf("want host:port such as 127.0.0.1:8080, got %q", c.Listen))
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		ps.add("listen", 0, "", fmt.Sprintf("invalid port %q", port))
	}

	c.validateOperations(&ps)
	c.validateTracing(&ps)

	if c.DataDir == "" {
		ps.add("data_dir", 0, "", "required")
	}

	// The DSN may hold a password, so it is never quoted here.
	switch dsn := c.Store.DSN; {
	case dsn == "":
		ps.add("store.dsn", 0, "", "required")
	case isPostgresDSN(dsn):
	case strings.Contains(dsn, "://"):
		ps.add("store.dsn", 0, "", "unsupported scheme; use a postgres:// URL for PostgreSQL or a file path for SQLite")
	case looksLikeKeywordDSN(dsn):
		ps.add("store.dsn", 0, "", "keyword/value DSNs are not supported; use a postgres:// URL for PostgreSQL")
	}

	if c.KEK.File == "" && c.KEK.Value == "" {
		ps.add("kek.file", 0, "", "required when kek.value is not set")
	}
	for i, f := range c.KEK.PreviousFiles {
		if strings.TrimSpace(f) == "" {
			ps.add("kek.previous_files", 0, "", fmt.Sprintf("entry %d is empty; list the key files of previous KEKs", i+1))
		}
	}

	t := c.Tokens
	checkDuration(&ps, "tokens.access_token_ttl", t.AccessTokenTTL, time.Second, maxAccessTokenTTL)
	checkDuration(&ps, "tokens.refresh_token_ttl", t.RefreshTokenTTL, time.Minute, 0)
	checkDuration(&ps, "tokens.refresh_token_reuse_interval", t.RefreshTokenReuseInterval, 0, time.Minute)
	checkDuration(&ps, "tokens.auth_code_ttl", t.AuthCodeTTL, time.Second, maxAuthCodeTTL)
	checkDuration(&ps, "tokens.key_pre_publish", t.KeyPrePublish, time.Second, 0)
	checkOneOf(&ps, "tokens.signing_alg", t.SigningAlg, signingAlgs)
	if t.MaxDelegationDepth < 1 || t.MaxDelegationDepth > maxDelegationDepth {
		ps.add("tokens.max_delegation_depth", 0, "", fmt.Sprintf("must be between 1 and %d, got %d", maxDelegationDepth, t.MaxDelegationDepth))
	}

	c.validateRegistration(&ps)

	if c.CIMD.AllowLoopback && !listensOnLoopback(c.Listen) {
		ps.add("cimd.allow_loopback", 0, "", fmt.Sprintf("allowed only while listen is a loopback address (127.0.0.1, [::1] or localhost), got %q: a hub reachable from elsewhere must not fetch from its own machine", c.Listen))
	}

	lg := c.Login
	checkDuration(&ps, "login.session_ttl", lg.SessionTTL, time.Minute, 0)
	checkDuration(&ps, "login.attempt_window", lg.AttemptWindow, time.Second, 0)
	if lg.MaxAttemptsPerUser < 1 {
		ps.add("login.max_attempts_per_user", 0, "", fmt.Sprintf("must be at least 1, got %d", lg.MaxAttemptsPerUser))
	}
	if lg.MaxAttemptsPerIP < 1 {
		ps.add("login.max_attempts_per_ip", 0, "", fmt.Sprintf("must be at least 1, got %d", lg.MaxAttemptsPerIP))
	}

	if lg.AllowLoopbackConnectors && !listensOnLoopback(c.Listen) {
		ps.add("login.allow_loopback_connectors", 0, "", fmt.Sprintf("allowed only while listen is a loopback address (127.0.0.1, [::1] or localhost), got %q", c.Listen))
	}
	c.validateConnectors(&ps)

	checkDuration(&ps, "consent.self_registered_default", c.Consent.SelfRegisteredDefault, time.Minute, 0)
	checkDuration(&ps, "consent.step_up_sensitive_default", c.Consent.StepUpSensitiveDefault, time.Minute, 0)

	c.validateIdentityAssertions(&ps)
	c.validateAudit(&ps)

	checkOneOf(&ps, "log.level", c.Log.Level, logLevels)
	checkOneOf(&ps, "log.format", c.Log.Format, logFormats)
	return ps
}

// listensOnLoopback reports whether the listen address binds a loopback
// host only.
func listensOnLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	return err == nil && host != "" && isLoopbackHost(host)
}

// validateIssuer applies RFC 8414 §2 (an https URL without query or
// fragment) and OAuth 2.1 §1.5 (TLS everywhere), with the one development
// exception of http on a loopback host.
func (c *Config) validateIssuer(ps *Problems) {
	const s = "issuer"
	if c.Issuer == "" {
		ps.add(s, 0, "", "required (it cannot be derived from listen "+strconv.Quote(c.Listen)+")")
		return
	}
	u, err := url.Parse(c.Issuer)
	if err != nil || u.Opaque != "" {
		ps.add(s, 0, "", "not a valid URL")
		return
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopbackHost(u.Hostname()) {
			ps.add(s, 0, "", "must use https; http is allowed only on a loopback host (127.0.0.1, [::1], localhost)")
		}
	default:
		ps.add(s, 0, "", "must be an https URL")
	}
	if u.Host == "" {
		ps.add(s, 0, "", "missing host")
	}
	if u.User != nil {
		ps.add(s, 0, "", "must not contain user information")
	}
	if u.RawQuery != "" || u.ForceQuery {
		ps.add(s, 0, "", "must not have a query component (RFC 8414 §2)")
	}
	if u.Fragment != "" || strings.Contains(c.Issuer, "#") {
		ps.add(s, 0, "", "must not have a fragment component (RFC 8414 §2)")
	}
	// Endpoints and the RFC 8414 §3.1 well-known URL are built from the
	// issuer, and clients compare issuers as exact strings (RFC 9207 §2.4).
	if strings.HasSuffix(u.Path, "/") {
		ps.add(s, 0, "", "must not end with \"/\"")
	}
}

// checkDuration reports d outside [lo, hi]; hi 0 means no upper bound.
// maxDelegationDepth bounds tokens.max_delegation_depth: a token's act
// claim nests one object per actor.
const maxDelegationDepth = 16

func checkDuration(ps *Problems, setting string, d Duration, lo, hi time.Duration) {
	switch {
	case time.Duration(d) < lo:
		ps.add(setting, 0, "", fmt.Sprintf("must be at least %s, got %s", Duration(lo), d))
	case hi > 0 && time.Duration(d) > hi:
		ps.add(setting, 0, "", fmt.Sprintf("must be at most %s, got %s", Duration(hi), d))
	}
}

func checkOneOf(ps *Problems, setting, v string, allowed []string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	ps.add(setting, 0, "", fmt.Sprintf("must be one of %s, got %q", strings.Join(allowed, ", "), v))
}

// looksLikeKeywordDSN reports whether dsn starts like a libpq keyword/value
// connection string ("host=… password=…").
func looksLikeKeywordDSN(dsn string) bool {
	key, _, ok := strings.Cut(strings.TrimSpace(dsn), "=")
	if !ok || key == "" {
		return false
	}
	for _, r := range strings.TrimSpace(key) {
		if !(r == '_' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') {
			return false
		}
	}
	return true
}
