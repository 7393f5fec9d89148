package mcpauth

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Config configures a [Verifier]. Zero values mean the documented defaults.
type Config struct {
	// Issuer is the hub's issuer identifier, e.g. "https://hub.example.com".
	// It must equal, character for character, the issuer in the hub's
	// metadata and in every token (RFC 8414 §3.3, RFC 9068 §4). Required.
	Issuer string
	// Resource is this MCP server's canonical resource URI (RFC 8707 §2), the
	// exact URL clients connect to, e.g. "https://mcp.example.com/mcp". Tokens
	// must name it in aud. Required.
	Resource string
	// HTTPClient fetches metadata, keys and introspection responses. Nil
	// means a client with a 10 second timeout.
	HTTPClient *http.Client
	// Leeway is the clock skew tolerated on exp, nbf and iat. Zero means 30
	// seconds; at most 5 minutes.
	Leeway time.Duration
	// Algorithms is the JWS algorithm allowlist. Nil means ES256, EdDSA,
	// RS256 and PS256. Only asymmetric algorithms are accepted: "none" and
	// the HMAC family are refused at configuration time (RFC 8725 §3.1).
	Algorithms []string
	// Introspection, when set, makes every token also be checked at the hub's
	// RFC 7662 introspection endpoint, so revocation takes effect at once.
	Introspection *IntrospectionConfig
	// MaxDelegationDepth bounds the delegation chain of an accepted token:
	// the number of actors in its act claim (RFC 8693 §4.1, see
	// [Claims.Actors]). Zero means no limit; [NoDelegation] accepts only
	// tokens without act. A refused token fails with [ErrDelegationRefused].
	MaxDelegationDepth int
	// FirstActors, when not empty, lists the agents (hub client_ids) whose
	// delegations this server accepts: the first actor of a token must be one
	// of them. The first actor is the innermost act, the agent the user
	// authorized; for a token without act it is the token's ClientID.
	// An actor with an iss other than the hub never matches. A refused token
	// fails with [ErrDelegationRefused].
	FirstActors []string
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Logger receives key-refresh and hub-communication events; it never
	// receives tokens. Nil discards.
	Logger *slog.Logger
}

// IntrospectionConfig enables RFC 7662 token introspection.
type IntrospectionConfig struct {
	// ClientID and ClientSecret authenticate this MCP server to the
	// introspection endpoint with HTTP Basic (RFC 7662 §2.1, RFC 6749 §2.3.1).
	ClientID     string
	ClientSecret string
	// CacheTTL bounds how long an active answer is reused (never beyond the
	// token's exp). Zero means 5 seconds; negative disables caching.
	// Inactive answers are never cached.
	CacheTTL time.Duration
}

// NoDelegation as [Config.MaxDelegationDepth] refuses every token that
// carries an act claim.
const NoDelegation = -1

const (
	defaultLeeway   = 30 * time.Second
	maxLeeway       = 5 * time.Minute
	defaultCacheTTL = 5 * time.Second
	defaultTimeout  = 10 * time.Second
)

// asymmetric is every JWS algorithm (RFC 7518 §3.1, RFC 8037 §3.1) the
// verifier can be configured to accept.
var asymmetric = []string{"ES256", "ES384", "ES512", "EdDSA", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}

var defaultAlgorithms = []string{"ES256", "EdDSA", "RS256", "PS256"}

// Validate reports every problem with the configuration at once.
func (c *Config) Validate() error {
	var errs []error
	if err := checkHTTPURL(c.Issuer, false); err != nil {
		errs = append(errs, fmt.Errorf("mcpauth: Config.Issuer: %w", err))
	}
	if err := checkHTTPURL(c.Resource, true); err != nil {
		errs = append(errs, fmt.Errorf("mcpauth: Config.Resource: %w", err))
	}
	if c.Leeway < 0 || c.Leeway > maxLeeway {
		errs = append(errs, fmt.Errorf("mcpauth: Config.Leeway: must be between 0 and %v", maxLeeway))
	}
	for _, a := range c.Algorithms {
		if !slices.Contains(asymmetric, a) {
			errs = append(errs, fmt.Errorf("mcpauth: Config.Algorithms: %q is not an allowed asymmetric JWS algorithm", a))
		}
	}
	if c.Algorithms != nil && len(c.Algorithms) == 0 {
		errs = append(errs, errors.New("mcpauth: Config.Algorithms: empty list (use nil for the default)"))
	}
	if c.MaxDelegationDepth < NoDelegation {
		errs = append(errs, errors.New("mcpauth: Config.MaxDelegationDepth: must be positive, zero (no limit) or NoDelegation"))
	}
	if slices.Contains(c.FirstActors, "") {
		errs = append(errs, errors.New("mcpauth: Config.FirstActors: empty client id"))
	}
	if ic := c.Introspection; ic != nil && ic.ClientID == "" {
		errs = append(errs, errors.New("mcpauth: Config.Introspection.ClientID: required"))
	}
	return errors.Join(errs...)
}

// checkHTTPURL accepts an absolute http(s) URL without fragment; an issuer
// must also have no query (RFC 8414 §2).
func checkHTTPURL(s string, allowQuery bool) error {
	if s == "" {
		return errors.New("required")
	}
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return errors.New("must be an http or https URL")
	// MCP authorization: every endpoint is https; plain http only on this
	// machine (development), where no network sits in between.
	case u.Scheme == "http" && !isLoopback(u.Hostname()):
		return errors.New("must use https (plain http is allowed only on a loopback host)")
	case u.Host == "" || u.User != nil:
		return errors.New("must have a host and no user info")
	case u.Fragment != "" || u.RawFragment != "" || len(s) > 0 && s[len(s)-1] == '#':
		return errors.New("must not have a fragment")
	case !allowQuery && (u.RawQuery != "" || u.ForceQuery):
		return errors.New("must not have a query")
	}
	return nil
}

// isLoopback reports whether host is localhost or a loopback IP address.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
