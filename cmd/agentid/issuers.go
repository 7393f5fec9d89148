package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/spf13/cobra"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/config"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/store"
)

// Limits of what `issuers add` accepts.
const (
	maxIssuerIDLen       = 64
	maxIssuerLifetime    = 24 * time.Hour
	maxJWKSFileBytes     = 64 << 10
	minRSAKeyBits        = 2048
	maxAgentTemplateLen  = 128
	defaultIssuerAlgs    = "ES256, RS256"
	defaultIssuerUseText = "id_jag, workload, jwt_bearer or subject_token"
)

// issuerAlgorithms are the JWS algorithms a trusted issuer may sign with:
// asymmetric only (RFC 7518 §3.1, RFC 8037 §3.1). HMAC would let anyone
// holding the issuer's public key material forge, and none is no signature.
var issuerAlgorithms = []string{"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}

// issuerUses are the values of --use, in the order help lists them.
var issuerUses = []string{store.IssuerUseIDJAG, store.IssuerUseWorkload, store.IssuerUseJWTBearer, store.IssuerUseSubjectToken}

// issuerUserClaims are the values of --user-claim.
var issuerUserClaims = []string{"sub", "preferred_username", "email"}

func (c *cli) newIssuersCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "issuers",
		Short: "Trust identity providers and workload platforms whose JWTs the hub accepts",
		Long: `A trusted issuer is an outside party whose signed JWTs the hub accepts. What for
is its uses (--use, one or more):

  id_jag         identity assertion grants (ID-JAG) from an enterprise identity
                 provider: an agent gets a token for a person with no consent screen
  workload       workload identity tokens (Kubernetes service account, SPIFFE
                 JWT-SVID, CI provider OIDC token): an agent authenticates with no
                 secret; --rule maps the token's claims to the agent's client id
  jwt_bearer     RFC 7523 assertions about a person, presented by an agent
  subject_token  JWTs an agent exchanges for a hub token (RFC 8693)

Keys come from the issuer's JWKS URL (--jwks-uri, fetched through the hub's
SSRF-safe fetcher and cached) or a static key set file (--jwks-file, public
keys only). Only asymmetric algorithms are accepted. Every change is audited
(issuer.added, issuer.updated, issuer.deleted; never a key); running hubs
follow within a few seconds.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	addJSONFlag(cmd, &asJSON)
	cmd.AddCommand(
		c.newIssuersAddCmd(&asJSON),
		c.newIssuersListCmd(&asJSON),
		c.newIssuersShowCmd(&asJSON),
		c.newIssuersSetDisabledCmd(&asJSON, false),
		c.newIssuersSetDisabledCmd(&asJSON, true),
		c.newIssuersDeleteCmd(),
	)
	return cmd
}

// issuerSpec is what `issuers add` reads from its flags.
type issuerSpec struct {
	issuer, jwksURI, jwksFile string
	audiences, algs, uses     []string
	maxLifetime               time.Duration
	userClaim                 string
	rules                     ruleFlags
	disabled                  bool
}

func (c *cli) newIssuersAddCmd(asJSON *bool) *cobra.Command {
	var spec issuerSpec
	cmd := &cobra.Command{
		Use:   "add ID --issuer URL (--jwks-uri URL | --jwks-file FILE) --use USE [flags]",
		Short: "Trust an issuer of JWTs",
		Long: `Trust an issuer of JWTs under a short ID of your choosing (okta, k8s-prod).

--issuer is the iss value of its JWTs, exactly: an https URL (http only on
loopback). --audience lists the aud values accepted from it (default: the hub's
issuer and its token endpoint); an assertion's aud is always a single value.
--alg lists the algorithms accepted (default: ES256 and RS256). --max-lifetime
bounds exp - iat of its JWTs (default 1h, at most 24h).

--user-claim names the claim that identifies a local user for id_jag,
jwt_bearer and subject_token: sub (the default) or preferred_username match a
username, email a user's email address (agentid users update --email).

--rule maps workload tokens to agents: 'CLAIM=PATTERN,...->AGENT'. Every claim
must match its pattern, where * matches any run of characters; the first rule
that matches decides. AGENT is the agent's client id, where {CLAIM} stands for
that claim's value; the hub creates the agent on first use. --rule-scope gives
the scopes the agent created by the preceding --rule asks for (its ceiling
then follows policy).`,
		Example: `  agentid issuers add okta --issuer https://acme.okta.com \
    --jwks-uri https://acme.okta.com/oauth2/v1/keys --use id_jag --user-claim email
  agentid issuers add k8s-prod --issuer https://oidc.eks.eu-west-1.amazonaws.com/id/c0ffee \
    --jwks-uri https://oidc.eks.eu-west-1.amazonaws.com/id/c0ffee/keys --use workload --audience https://agentid.example.com \
    --rule 'sub=system:serviceaccount:agents:*,kubernetes.io/namespace=agents->k8s.agents.{kubernetes.io/serviceaccount/name}' \
    --rule-scope 'notes.read notes.write' --max-lifetime 10m`,
		Args: exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			now := time.Now().UTC()
			iss, err := buildIssuer(args[0], &spec, now)
			if err != nil {
				return usageErrorf(cmd, "%v", err)
			}
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				err := st.CreateIssuer(ctx, iss, audit.NewIssuerAdded(adminMeta(now), iss))
				if errors.Is(err, store.ErrConflict) {
					return issuerConflict(ctx, st, iss)
				}
				if err != nil {
					return fmt.Errorf("storing the issuer: %w", err)
				}
				if *asJSON {
					return writeJSON(cmd.OutOrStdout(), issuerView(iss))
				}
				return printIssuer(cmd.OutOrStdout(), iss)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&spec.issuer, "issuer", "", "the `URL` its JWTs carry as iss (required)")
	f.StringVar(&spec.jwksURI, "jwks-uri", "", "`URL` of its JSON Web Key Set")
	f.StringVar(&spec.jwksFile, "jwks-file", "", "`file` holding its JSON Web Key Set (public keys only)")
	f.StringArrayVar(&spec.audiences, "audience", nil, "aud value accepted from it (repeatable; default: the hub's issuer and token endpoint)")
	f.StringArrayVar(&spec.algs, "alg", nil, "JWS algorithm accepted: "+strings.Join(issuerAlgorithms, ", ")+" (repeatable; default "+defaultIssuerAlgs+")")
	f.StringArrayVar(&spec.uses, "use", nil, "what its JWTs may be used for: "+defaultIssuerUseText+" (required, repeatable)")
	f.DurationVar(&spec.maxLifetime, "max-lifetime", 0, "longest exp - iat accepted, at most 24h (default 1h)")
	f.StringVar(&spec.userClaim, "user-claim", "", "claim naming the local user: sub, preferred_username or email (default sub)")
	f.Var(ruleFlag{&spec.rules}, "rule", "workload rule `'CLAIM=PATTERN,...->AGENT'` (repeatable)")
	f.Var(ruleScopeFlag{&spec.rules}, "rule-scope", "`scopes` the agents of the preceding --rule ask for (space or comma separated, repeatable)")
	f.BoolVar(&spec.disabled, "disabled", false, "add it disabled (agentid issuers enable ID trusts it)")
	return cmd
}

// issuerConflict explains a duplicate: the id or the issuer URL is taken.
func issuerConflict(ctx context.Context, st store.Store, iss *store.Issuer) error {
	if _, err := st.GetIssuer(ctx, iss.TenantID, iss.ID); err == nil {
		return fmt.Errorf("issuer %q already exists (agentid issuers delete %s first to replace it)", iss.ID, iss.ID)
	}
	list, err := st.ListIssuers(ctx, iss.TenantID)
	if err != nil {
		return err
	}
	for _, o := range list {
		if o.Issuer == iss.Issuer {
			return fmt.Errorf("issuer %s is already trusted as %q", iss.Issuer, o.ID)
		}
	}
	return fmt.Errorf("issuer %q or %s already exists", iss.ID, iss.Issuer)
}

// buildIssuer checks spec and returns the issuer it describes. Errors say
// what to change.
func buildIssuer(id string, spec *issuerSpec, now time.Time) (*store.Issuer, error) {
	if err := validIssuerID(id); err != nil {
		return nil, err
	}
	iss := &store.Issuer{TenantID: store.DefaultTenant, ID: id, Disabled: spec.disabled, CreatedAt: now, UpdatedAt: now}
	if spec.issuer == "" {
		return nil, errors.New("required flag --issuer is not set")
	}
	if err := checkIssuerURL("--issuer", spec.issuer, false); err != nil {
		return nil, err
	}
	iss.Issuer = spec.issuer
	switch {
	case spec.jwksURI != "" && spec.jwksFile != "":
		return nil, errors.New("give --jwks-uri or --jwks-file, not both")
	case spec.jwksURI != "":
		if err := checkIssuerURL("--jwks-uri", spec.jwksURI, true); err != nil {
			return nil, err
		}
		iss.JWKSURI = spec.jwksURI
	case spec.jwksFile != "":
		jwks, err := readJWKSFile(spec.jwksFile)
		if err != nil {
			return nil, err
		}
		iss.JWKS = jwks
	default:
		return nil, errors.New("the issuer's keys are required: --jwks-uri URL or --jwks-file FILE")
	}
	for _, a := range spec.audiences {
		if a == "" || strings.TrimSpace(a) != a {
			return nil, fmt.Errorf("--audience %q: must not be empty or start or end with spaces", a)
		}
		if !slices.Contains(iss.Audiences, a) {
			iss.Audiences = append(iss.Audiences, a)
		}
	}
	for _, a := range spec.algs {
		if err := checkIssuerAlg(a); err != nil {
			return nil, err
		}
		if !slices.Contains(iss.Algorithms, a) {
			iss.Algorithms = append(iss.Algorithms, a)
		}
	}
	if len(spec.uses) == 0 {
		return nil, fmt.Errorf("required flag --use is not set (%s)", defaultIssuerUseText)
	}
	for _, u := range spec.uses {
		if !slices.Contains(issuerUses, u) {
			return nil, fmt.Errorf("--use %q: must be %s", u, defaultIssuerUseText)
		}
		if !slices.Contains(iss.Uses, u) {
			iss.Uses = append(iss.Uses, u)
		}
	}
	if spec.maxLifetime < 0 || spec.maxLifetime > maxIssuerLifetime {
		return nil, fmt.Errorf("--max-lifetime %s: must be positive and at most 24h", spec.maxLifetime)
	}
	iss.MaxLifetime = spec.maxLifetime
	if spec.userClaim != "" {
		if !slices.Contains(issuerUserClaims, spec.userClaim) {
			return nil, fmt.Errorf("--user-claim %q: must be sub, preferred_username or email", spec.userClaim)
		}
		if !namesUsers(iss.Uses) {
			return nil, errors.New("--user-claim applies to the id_jag, jwt_bearer and subject_token uses, and none is given")
		}
		iss.UserClaim = spec.userClaim
	}
	iss.Rules = spec.rules.rules
	workload := slices.Contains(iss.Uses, store.IssuerUseWorkload)
	switch {
	case workload && len(iss.Rules) == 0:
		return nil, errors.New("--use workload needs at least one --rule mapping its tokens to agents")
	case !workload && len(iss.Rules) > 0:
		return nil, errors.New("--rule applies to --use workload only")
	}
	return iss, nil
}

// namesUsers reports whether uses include one whose JWTs name a local user.
func namesUsers(uses []string) bool {
	return slices.ContainsFunc(uses, func(u string) bool {
		return u == store.IssuerUseIDJAG || u == store.IssuerUseJWTBearer || u == store.IssuerUseSubjectToken
	})
}

// validIssuerID accepts 1–64 lower-case letters, digits and . _ -,
// starting with a letter or digit.
func validIssuerID(id string) error {
	if len(id) == 0 || len(id) > maxIssuerIDLen {
		return fmt.Errorf("issuer ID must be 1 to %d characters", maxIssuerIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		alnum := 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || strings.IndexByte("._-", c) < 0) {
			return fmt.Errorf("issuer ID %q may contain only lower-case letters, digits and . _ - (starting with a letter or digit)", id)
		}
	}
	return nil
}

// checkIssuerURL accepts an absolute https URL, or http on a loopback host
// (a local test issuer), without credentials or a fragment; query is
// whether a query is allowed (a JWKS URL may have one, an issuer
// identifier may not: RFC 8414 §2).
func checkIssuerURL(flag, raw string, query bool) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || !u.IsAbs() {
		return fmt.Errorf("%s %q: not an absolute URL", flag, raw)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && oauth.IsLoopbackHost(u.Hostname()):
	default:
		return fmt.Errorf("%s %q: must be an https URL (http only on loopback)", flag, raw)
	}
	switch {
	case u.User != nil:
		return fmt.Errorf("%s %q: must not carry credentials", flag, raw)
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return fmt.Errorf("%s %q: must not have a fragment", flag, raw)
	case !query && (u.RawQuery != "" || u.ForceQuery):
		return fmt.Errorf("%s %q: must not have a query", flag, raw)
	}
	return nil
}

// checkIssuerAlg refuses an algorithm a trusted issuer may not use, saying
// why.
func checkIssuerAlg(alg string) error {
	switch {
	case slices.Contains(issuerAlgorithms, alg):
		return nil
	case strings.EqualFold(alg, "none"):
		return errors.New("--alg none: unsigned JWTs are never accepted")
	case strings.HasPrefix(strings.ToUpper(alg), "HS"):
		return fmt.Errorf("--alg %s: HMAC algorithms are symmetric; a trusted issuer signs with a private key only it holds (%s)", alg, strings.Join(issuerAlgorithms, ", "))
	}
	return fmt.Errorf("--alg %q: must be one of %s", alg, strings.Join(issuerAlgorithms, ", "))
}

// readJWKSFile reads a JSON Web Key Set and returns it re-encoded (public
// keys only, canonical JSON). It refuses private and symmetric keys,
// encryption keys, RSA keys under 2048 bits, duplicate kids, and several
// keys without kids.
func readJWKSFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("--jwks-file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxJWKSFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("--jwks-file: %w", err)
	}
	if len(data) > maxJWKSFileBytes {
		return "", fmt.Errorf("--jwks-file %s: larger than %d KiB", path, maxJWKSFileBytes>>10)
	}
	return parseIssuerJWKS(path, data)
}

// parseIssuerJWKS is readJWKSFile's check of the file's content.
func parseIssuerJWKS(path string, data []byte) (string, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(data, &set); err != nil {
		return "", fmt.Errorf("--jwks-file %s: not a JSON Web Key Set: %v", path, err)
	}
	if len(set.Keys) == 0 {
		return "", fmt.Errorf("--jwks-file %s: the key set has no keys", path)
	}
	seen := map[string]bool{}
	for i, k := range set.Keys {
		name := fmt.Sprintf("key %d", i+1)
		if k.KeyID != "" {
			name = fmt.Sprintf("key %q", k.KeyID)
		}
		switch key := k.Key.(type) {
		case []byte:
			return "", fmt.Errorf("--jwks-file %s: %s is a symmetric key; trusted issuers sign with asymmetric keys", path, name)
		case *rsa.PublicKey:
			if key.N.BitLen() < minRSAKeyBits {
				return "", fmt.Errorf("--jwks-file %s: %s is an RSA key of %d bits; at least %d are required", path, name, key.N.BitLen(), minRSAKeyBits)
			}
		}
		switch {
		case !k.IsPublic():
			return "", fmt.Errorf("--jwks-file %s: %s is a private key; give the issuer's public keys only", path, name)
		case !k.Valid():
			return "", fmt.Errorf("--jwks-file %s: %s is not a valid key", path, name)
		case k.Use != "" && k.Use != "sig":
			return "", fmt.Errorf("--jwks-file %s: %s is for use %q, not signatures", path, name, k.Use)
		case k.Algorithm != "" && !slices.Contains(issuerAlgorithms, k.Algorithm):
			return "", fmt.Errorf("--jwks-file %s: %s names algorithm %q; accepted are %s", path, name, k.Algorithm, strings.Join(issuerAlgorithms, ", "))
		case k.KeyID == "" && len(set.Keys) > 1:
			return "", fmt.Errorf("--jwks-file %s: %s has no kid; a set of several keys needs a kid on each", path, name)
		case k.KeyID != "" && seen[k.KeyID]:
			return "", fmt.Errorf("--jwks-file %s: kid %q appears twice", path, k.KeyID)
		}
		seen[k.KeyID] = true
	}
	out, err := json.Marshal(set)
	if err != nil {
		return "", fmt.Errorf("--jwks-file %s: %w", path, err)
	}
	return string(out), nil
}

// ruleFlags collects --rule and --rule-scope in command-line order, so
// that a --rule-scope belongs to the --rule before it.
type ruleFlags struct {
	rules []store.IssuerRule
}

type ruleFlag struct{ f *ruleFlags }

func (r ruleFlag) String() string { return "" }
func (r ruleFlag) Type() string   { return "string" }
func (r ruleFlag) Set(v string) error {
	rule, err := parseIssuerRule(v)
	if err != nil {
		return err
	}
	r.f.rules = append(r.f.rules, rule)
	return nil
}

type ruleScopeFlag struct{ f *ruleFlags }

func (r ruleScopeFlag) String() string { return "" }
func (r ruleScopeFlag) Type() string   { return "string" }
func (r ruleScopeFlag) Set(v string) error {
	if len(r.f.rules) == 0 {
		return errors.New("give --rule-scope after the --rule it belongs to")
	}
	scopes, perr := oauth.ParseScope(strings.ReplaceAll(v, ",", " "))
	switch {
	case perr != nil:
		return fmt.Errorf("%q: %s", v, perr.Description)
	case len(scopes) == 0:
		return errors.New("no scope given")
	}
	last := &r.f.rules[len(r.f.rules)-1]
	for _, s := range scopes {
		if !slices.Contains(last.Scopes, s) {
			last.Scopes = append(last.Scopes, s)
		}
	}
	return nil
}

// parseIssuerRule parses 'CLAIM=PATTERN,CLAIM=PATTERN->AGENT'.
func parseIssuerRule(s string) (store.IssuerRule, error) {
	var rule store.IssuerRule
	i := strings.LastIndex(s, "->")
	if i < 0 {
		return rule, fmt.Errorf("rule %q: want 'CLAIM=PATTERN,...->AGENT'", s)
	}
	match, agent := strings.TrimSpace(s[:i]), strings.TrimSpace(s[i+2:])
	if match == "" {
		return rule, fmt.Errorf("rule %q: at least one CLAIM=PATTERN before ->", s)
	}
	rule.Claims = map[string]string{}
	for part := range strings.SplitSeq(match, ",") {
		claim, pattern, ok := strings.Cut(strings.TrimSpace(part), "=")
		claim, pattern = strings.TrimSpace(claim), strings.TrimSpace(pattern)
		switch {
		case !ok || claim == "":
			return rule, fmt.Errorf("rule %q: %q is not CLAIM=PATTERN", s, part)
		case pattern == "":
			return rule, fmt.Errorf("rule %q: claim %s has an empty pattern (* matches any value)", s, claim)
		case !printableNoSpace(claim) || !printableNoSpace(pattern):
			return rule, fmt.Errorf("rule %q: claims and patterns are printable ASCII without spaces", s)
		case rule.Claims[claim] != "":
			return rule, fmt.Errorf("rule %q: claim %s appears twice", s, claim)
		}
		rule.Claims[claim] = pattern
	}
	if err := checkAgentTemplate(agent); err != nil {
		return rule, fmt.Errorf("rule %q: %v", s, err)
	}
	rule.Agent = agent
	return rule, nil
}

// checkAgentTemplate accepts a client id with {CLAIM} placeholders:
// printable ASCII without spaces, quotes or backslashes, braces only
// around a non-empty claim name.
func checkAgentTemplate(t string) error {
	if t == "" {
		return errors.New("the agent after -> is empty")
	}
	if len(t) > maxAgentTemplateLen {
		return fmt.Errorf("the agent template is longer than %d characters", maxAgentTemplateLen)
	}
	for rest := t; rest != ""; {
		open := strings.IndexAny(rest, "{}")
		if open < 0 {
			break
		}
		if rest[open] == '}' {
			return fmt.Errorf("agent %q: } without {", t)
		}
		end := strings.IndexAny(rest[open+1:], "{}")
		if end < 0 || rest[open+1+end] != '}' {
			return fmt.Errorf("agent %q: { without }", t)
		}
		if end == 0 {
			return fmt.Errorf("agent %q: {} names no claim", t)
		}
		rest = rest[open+1+end+1:]
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; c <= ' ' || c > '~' || c == '"' || c == '\'' || c == '\\' {
			return fmt.Errorf("agent %q: printable ASCII without spaces, quotes or backslashes", t)
		}
	}
	return nil
}

func printableNoSpace(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// ---- list, show, enable, disable, delete -----------------------------------------

func (c *cli) newIssuersListCmd(asJSON *bool) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the trusted issuers",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				list, err := st.ListIssuers(ctx, store.DefaultTenant)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if *asJSON {
					views := make([]issuerJSON, 0, len(list))
					for _, iss := range list {
						views = append(views, issuerView(iss))
					}
					return writeJSON(out, views)
				}
				if len(list) == 0 {
					fmt.Fprintln(out, "no trusted issuers (agentid issuers add ID --issuer URL …)")
					return nil
				}
				t := newTable(out, "ID", "ISSUER", "USES", "KEYS", "STATUS", "UPDATED")
				for _, iss := range list {
					t.row(iss.ID, iss.Issuer, commaList(iss.Uses), keysText(iss), status(iss.Disabled), timeText(iss.UpdatedAt))
				}
				return t.flush()
			})
		},
	}
}

func (c *cli) newIssuersShowCmd(asJSON *bool) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show one trusted issuer",
		Args:  exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				iss, err := getIssuer(ctx, st, args[0])
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(cmd.OutOrStdout(), issuerView(iss))
				}
				return printIssuer(cmd.OutOrStdout(), iss)
			})
		},
	}
}

// newIssuersSetDisabledCmd builds `issuers disable` (disable true) or
// `issuers enable`. A disabled issuer's JWTs are refused.
func (c *cli) newIssuersSetDisabledCmd(asJSON *bool, disable bool) *cobra.Command {
	verb, done := "enable", audit.IssuerChangeEnabled
	short := "Trust a disabled issuer again"
	if disable {
		verb, done = "disable", audit.IssuerChangeDisabled
		short = "Stop accepting an issuer's JWTs, keeping its settings"
	}
	return &cobra.Command{
		Use:   verb + " ID",
		Short: short,
		Args:  exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				iss, err := getIssuer(ctx, st, args[0])
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if iss.Disabled == disable {
					if *asJSON {
						return writeJSON(out, issuerView(iss))
					}
					fmt.Fprintf(out, "issuer %s already %s\n", iss.ID, done)
					return nil
				}
				now := time.Now().UTC()
				iss.Disabled, iss.UpdatedAt = disable, now
				if err := st.UpdateIssuer(ctx, iss, audit.NewIssuerUpdated(adminMeta(now), iss, done)); err != nil {
					if errors.Is(err, store.ErrNotFound) {
						return noIssuer(args[0])
					}
					return fmt.Errorf("updating the issuer: %w", err)
				}
				if *asJSON {
					return writeJSON(out, issuerView(iss))
				}
				fmt.Fprintf(out, "issuer %s %s\n", iss.ID, done)
				return nil
			})
		},
	}
}

func (c *cli) newIssuersDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete ID",
		Short: "Stop trusting an issuer and forget its settings",
		Long: `Stop trusting an issuer and forget its settings. The workload agents it
federated stay in the inventory but can no longer authenticate; delete them
with agentid clients delete, or add the issuer again under the same ID.`,
		Args: exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				iss, err := getIssuer(ctx, st, args[0])
				if err != nil {
					return err
				}
				now := time.Now().UTC()
				err = st.DeleteIssuer(ctx, iss.TenantID, iss.ID, audit.NewIssuerDeleted(adminMeta(now), iss))
				if errors.Is(err, store.ErrNotFound) {
					return noIssuer(args[0])
				}
				if err != nil {
					return fmt.Errorf("deleting the issuer: %w", err)
				}
				out := cmd.OutOrStdout()
				fmt.Fprintf(out, "issuer %s deleted (%s)\n", iss.ID, iss.Issuer)
				clients, err := st.ListClients(ctx, iss.TenantID)
				if err != nil {
					return err
				}
				var left []string
				for _, cl := range clients {
					if cl.FederatedIssuer == iss.ID {
						left = append(left, cl.ID)
					}
				}
				if len(left) > 0 {
					fmt.Fprintf(out, "%d workload agent(s) it federated can no longer authenticate: %s\n", len(left), strings.Join(left, " "))
				}
				return nil
			})
		},
	}
}

func getIssuer(ctx context.Context, st store.Store, id string) (*store.Issuer, error) {
	iss, err := st.GetIssuer(ctx, store.DefaultTenant, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, noIssuer(id)
	}
	return iss, err
}

func noIssuer(id string) error {
	return fmt.Errorf("no issuer %q (agentid issuers list shows them)", id)
}

// ---- output ----------------------------------------------------------------------

// issuerJSON is an issuer as --json shows it. A static key set is shown
// by its keys' ids, types and algorithms.
type issuerJSON struct {
	ID          string          `json:"id"`
	Issuer      string          `json:"issuer"`
	JWKSURI     string          `json:"jwks_uri,omitempty"`
	Keys        []issuerKeyJSON `json:"keys,omitempty"`
	Audiences   []string        `json:"audiences"`
	Algorithms  []string        `json:"algorithms"`
	Uses        []string        `json:"uses"`
	MaxLifetime string          `json:"max_lifetime"`
	UserClaim   string          `json:"user_claim"`
	Rules       []issuerRule    `json:"rules"`
	Disabled    bool            `json:"disabled"`
	CreatedAt   *time.Time      `json:"created_at,omitempty"`
	UpdatedAt   *time.Time      `json:"updated_at,omitempty"`
}

type issuerKeyJSON struct {
	KID       string `json:"kid,omitempty"`
	Type      string `json:"kty"`
	Algorithm string `json:"alg,omitempty"`
}

type issuerRule struct {
	Claims map[string]string `json:"claims"`
	Agent  string            `json:"agent"`
	Scopes []string          `json:"scopes"`
}

func issuerView(iss *store.Issuer) issuerJSON {
	v := issuerJSON{
		ID: iss.ID, Issuer: iss.Issuer, JWKSURI: iss.JWKSURI, Keys: issuerKeys(iss),
		Audiences: strs(iss.Audiences), Algorithms: strs(iss.Algorithms), Uses: strs(iss.Uses),
		MaxLifetime: lifetimeText(iss), UserClaim: userClaimText(iss), Rules: []issuerRule{},
		Disabled: iss.Disabled, CreatedAt: optTime(iss.CreatedAt), UpdatedAt: optTime(iss.UpdatedAt),
	}
	for _, r := range iss.Rules {
		v.Rules = append(v.Rules, issuerRule{Claims: r.Claims, Agent: r.Agent, Scopes: strs(r.Scopes)})
	}
	return v
}

// issuerKeys summarises a static key set; nil for a JWKS URL.
func issuerKeys(iss *store.Issuer) []issuerKeyJSON {
	if iss.JWKS == "" {
		return nil
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(iss.JWKS), &set); err != nil {
		return []issuerKeyJSON{{Type: "unreadable"}}
	}
	out := make([]issuerKeyJSON, 0, len(set.Keys))
	for _, k := range set.Keys {
		out = append(out, issuerKeyJSON{KID: k.KeyID, Type: keyType(k), Algorithm: k.Algorithm})
	}
	return out
}

func keyType(k jose.JSONWebKey) string {
	switch k.Key.(type) {
	case *rsa.PublicKey:
		return "RSA"
	case *ecdsa.PublicKey:
		return "EC"
	case ed25519.PublicKey:
		return "OKP"
	}
	return "unsupported"
}

// keysText is the KEYS cell of a list: the URL, or the static keys' count.
func keysText(iss *store.Issuer) string {
	if iss.JWKSURI != "" {
		return iss.JWKSURI
	}
	n := len(issuerKeys(iss))
	if n == 1 {
		return "1 static key"
	}
	return fmt.Sprintf("%d static keys", n)
}

func lifetimeText(iss *store.Issuer) string {
	if iss.MaxLifetime == 0 {
		return time.Hour.String()
	}
	return iss.MaxLifetime.String()
}

func userClaimText(iss *store.Issuer) string {
	if iss.UserClaim == "" {
		return "sub"
	}
	return iss.UserClaim
}

// commaList renders a list with ", " for a table cell.
func commaList(xs []string) string { return strings.Join(xs, ", ") }

// ruleText renders a rule as --rule takes it (claims sorted).
func ruleText(r store.IssuerRule) string {
	claims := make([]string, 0, len(r.Claims))
	for _, c := range slices.Sorted(maps.Keys(r.Claims)) {
		claims = append(claims, c+"="+r.Claims[c])
	}
	s := strings.Join(claims, ",") + "->" + r.Agent
	if len(r.Scopes) > 0 {
		s += " (scopes " + strings.Join(r.Scopes, " ") + ")"
	}
	return s
}

func printIssuer(w io.Writer, iss *store.Issuer) error {
	t := newTable(w)
	t.row("id", iss.ID)
	t.row("issuer", iss.Issuer)
	if iss.JWKSURI != "" {
		t.row("jwks_uri", iss.JWKSURI)
	}
	for _, k := range issuerKeys(iss) {
		desc := k.Type
		if k.Algorithm != "" {
			desc += " " + k.Algorithm
		}
		if k.KID != "" {
			desc += " kid " + k.KID
		}
		t.row("key", desc)
	}
	aud := commaList(iss.Audiences)
	if aud == "" {
		aud = "the hub's issuer and token endpoint"
	}
	t.row("audiences", aud)
	algs := commaList(iss.Algorithms)
	if algs == "" {
		algs = defaultIssuerAlgs
	}
	t.row("algorithms", algs)
	t.row("uses", commaList(iss.Uses))
	t.row("max_lifetime", lifetimeText(iss))
	if namesUsers(iss.Uses) {
		t.row("user_claim", userClaimText(iss))
	}
	for _, r := range iss.Rules {
		t.row("rule", ruleText(r))
	}
	t.row("status", status(iss.Disabled))
	t.row("created", timeText(iss.CreatedAt))
	t.row("updated", timeText(iss.UpdatedAt))
	return t.flush()
}
