package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/config"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/vault"
)

// Provider limits.
const (
	maxProviderIDLen = 63
	// maxClientSecret bounds a client secret read from a file or stdin.
	maxClientSecret = 4096
	// maxKeyOverlap caps how long a rotated-out API key stays usable.
	maxKeyOverlap = 30 * 24 * time.Hour
	// maxDiscoveryDocument bounds an authorization server's metadata.
	maxDiscoveryDocument = 256 << 10
	discoveryTimeout     = 10 * time.Second
	maxHintLen           = 200
	maxProviderScopes    = 200
	maxAuthParams        = 32
)

// Token endpoint authentication methods a provider client may use.
var providerAuthMethods = []string{oauth.AuthMethodClientSecretBasic, oauth.AuthMethodClientSecretPost}

// reservedAuthParams are the authorization-request parameters the vault
// sets itself (RFC 6749 §4.1.1, RFC 7636 §4.3); --auth-param may not.
var reservedAuthParams = []string{"response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge", "code_challenge_method"}

func (c *cli) newProvidersCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "providers",
		Short: "Manage downstream providers whose credentials the vault keeps",
		Long: `A provider is a downstream service an MCP server calls for the people its
agents act for: an OAuth 2 service (kind oauth2) people connect at
/connections, or a service reached with an API key (kind api_key). Its id
names it in connect URLs, in resource links (agentid resources update
--provider) and in the retrieval resource <issuer>/providers/<id>.

Client secrets are read from a file, an environment variable or stdin —
never from the command line — stored sealed, and never printed.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	addJSONFlag(cmd, &asJSON)
	cmd.AddCommand(
		c.newProvidersAddCmd(&asJSON),
		c.newProvidersListCmd(&asJSON),
		c.newProvidersShowCmd(&asJSON),
		c.newProvidersUpdateCmd(&asJSON),
		c.newProvidersSetDisabledCmd(&asJSON, true),
		c.newProvidersSetDisabledCmd(&asJSON, false),
		c.newProvidersDeleteCmd(),
	)
	return cmd
}

// providerFlags are the flags of `providers add` and `providers update`.
type providerFlags struct {
	kind, name string
	// oauth2
	issuer, authzEndpoint, tokenEndpoint, revocationEndpoint string
	clientID, tokenAuthMethod                                string
	secretFile, secretEnv                                    string
	secretStdin, clearSecret                                 bool
	scopes, authParams                                       []string
	noPKCE                                                   bool
	// api_key
	header, query, format, hint string
	overlap                     time.Duration
}

func (f *providerFlags) register(cmd *cobra.Command, update bool) {
	fl := cmd.Flags()
	if !update {
		fl.StringVar(&f.kind, "kind", "", "oauth2 or api_key (required)")
	}
	fl.StringVar(&f.name, "name", "", "display name shown on the connections page (default: the id)")
	fl.StringVar(&f.issuer, "issuer", "", "oauth2: issuer `URL` whose OpenID Connect discovery or RFC 8414 metadata names the endpoints")
	fl.StringVar(&f.authzEndpoint, "authorization-endpoint", "", "oauth2: authorization endpoint `URL` (https; http only on loopback)")
	fl.StringVar(&f.tokenEndpoint, "token-endpoint", "", "oauth2: token endpoint `URL`")
	fl.StringVar(&f.revocationEndpoint, "revocation-endpoint", "", "oauth2: RFC 7009 revocation endpoint `URL`, called on disconnect (\"\" on update: none)")
	fl.StringVar(&f.clientID, "client-id", "", "oauth2: the hub's client id at the provider")
	fl.StringVar(&f.secretFile, "client-secret-file", "", "oauth2: read the client secret from this `file`")
	fl.StringVar(&f.secretEnv, "client-secret-env", "", "oauth2: read the client secret from the environment variable `NAME`")
	fl.BoolVar(&f.secretStdin, "client-secret-stdin", false, "oauth2: read the client secret from the first line of stdin")
	fl.StringVar(&f.tokenAuthMethod, "token-auth-method", "", "oauth2: client_secret_basic (default) or client_secret_post")
	fl.StringArrayVar(&f.scopes, "scope", nil, "oauth2: a provider scope connections may ask for (repeatable; on update the list replaces the old one)")
	fl.StringArrayVar(&f.authParams, "auth-param", nil, "oauth2: extra authorization request parameter `KEY=VALUE`, e.g. access_type=offline (repeatable; on update the list replaces the old one)")
	fl.BoolVar(&f.noPKCE, "no-pkce", false, "oauth2: do not send PKCE (S256), for a provider that rejects it")
	fl.StringVar(&f.header, "header", "", "api_key: the key travels in this request header `NAME`")
	fl.StringVar(&f.query, "query", "", "api_key: the key travels in this query parameter `NAME`")
	fl.StringVar(&f.format, "format", "", "api_key: the header value, with {key} where the key goes, e.g. \"Bearer {key}\" (default: the key alone)")
	fl.StringVar(&f.hint, "hint", "", "api_key: text shown beside the key field, e.g. \"starts with sk_live_\"")
	fl.DurationVar(&f.overlap, "overlap", 0, "api_key: how long a rotated-out key stays usable (default 24h, at most 720h)")
	if update {
		fl.BoolVar(&f.clearSecret, "clear-client-secret", false, "oauth2: remove the client secret (a public client)")
	}
}

// oauth2Flags and apiKeyFlags are the flags that apply to one kind only.
var (
	oauth2Flags = []string{"issuer", "authorization-endpoint", "token-endpoint", "revocation-endpoint", "client-id",
		"client-secret-file", "client-secret-env", "client-secret-stdin", "clear-client-secret", "token-auth-method", "scope", "auth-param", "no-pkce"}
	apiKeyFlags = []string{"header", "query", "format", "hint", "overlap"}
)

// checkKindFlags refuses flags of the other kind.
func checkKindFlags(cmd *cobra.Command, kind string) error {
	other, name := apiKeyFlags, "api_key"
	if kind == store.ProviderAPIKey {
		other, name = oauth2Flags, "oauth2"
	}
	for _, f := range other {
		if fl := cmd.Flags().Lookup(f); fl != nil && fl.Changed {
			return fmt.Errorf("--%s applies to %s providers only, and this one is %s", f, name, kind)
		}
	}
	return nil
}

// readClientSecret returns the secret the flags point at ("" and false
// when none was given). Errors describe where it was looked for, never
// the secret.
func (c *cli) readClientSecret(cmd *cobra.Command, f *providerFlags) (string, bool, error) {
	if f.clearSecret && (f.secretFile != "" || f.secretEnv != "" || f.secretStdin) {
		return "", false, errors.New("give at most one of --client-secret-file, --client-secret-env, --client-secret-stdin and --clear-client-secret")
	}
	return c.readSecret(cmd, secretSource{flag: "client-secret", what: "the client secret", file: f.secretFile, env: f.secretEnv, stdin: f.secretStdin})
}

// secretSource is where a command's --<flag>-file, --<flag>-env or
// --<flag>-stdin flags say a secret is; what names it in errors.
type secretSource struct {
	flag, what string
	file, env  string
	stdin      bool
}

// readSecret returns the secret src points at ("" and false when none of
// its flags was given): a file's content, an environment variable or the
// first line of stdin, trimmed, at most maxClientSecret bytes, without
// control characters. Errors describe where it was looked for, never the
// secret.
func (c *cli) readSecret(cmd *cobra.Command, src secretSource) (string, bool, error) {
	n := 0
	for _, given := range []bool{src.file != "", src.env != "", src.stdin} {
		if given {
			n++
		}
	}
	if n > 1 {
		return "", false, fmt.Errorf("give at most one of --%[1]s-file, --%[1]s-env and --%[1]s-stdin", src.flag)
	}
	var secret string
	switch {
	case src.file != "":
		b, err := config.ReadLimited(src.file, maxClientSecret)
		if err != nil {
			return "", false, fmt.Errorf("--%s-file: %w", src.flag, err)
		}
		secret = strings.TrimSpace(string(b))
		if secret == "" {
			return "", false, fmt.Errorf("--%s-file: %s is empty", src.flag, src.file)
		}
	case src.env != "":
		v, ok := c.env(src.env)
		if !ok || strings.TrimSpace(v) == "" {
			return "", false, fmt.Errorf("--%s-env: the environment variable %s is not set or empty", src.flag, src.env)
		}
		secret = strings.TrimSpace(v)
	case src.stdin:
		br := bufio.NewReader(io.LimitReader(cmd.InOrStdin(), maxClientSecret+2))
		line, err := br.ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", false, fmt.Errorf("--%s-stdin: reading stdin: %w", src.flag, err)
		}
		secret = strings.TrimSpace(line)
		if secret == "" {
			return "", false, fmt.Errorf("--%s-stdin: stdin holds no secret", src.flag)
		}
		if len(secret) > maxClientSecret {
			return "", false, fmt.Errorf("--%s-stdin: %s is longer than %d bytes", src.flag, src.what, maxClientSecret)
		}
	default:
		return "", false, nil
	}
	if strings.ContainsFunc(secret, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", false, fmt.Errorf("%s contains control characters", src.what)
	}
	return secret, true, nil
}

// validProviderID reports whether id is a provider slug:
// [a-z0-9][a-z0-9_-]{0,62}.
func validProviderID(id string) bool {
	if id == "" || len(id) > maxProviderIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		ch := id[i]
		switch {
		case ch >= 'a' && ch <= 'z', ch >= '0' && ch <= '9':
		case (ch == '_' || ch == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// checkEndpoint requires an absolute https URL without fragment or user
// information (http only on a loopback host, for development). what names
// the value in errors: a flag ("--token-endpoint") or a metadata field.
func checkEndpoint(what, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("%s: %q is not an absolute URL", what, raw)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && oauth.IsLoopbackHost(u.Hostname()):
	default:
		return fmt.Errorf("%s: %q must use https (http only on a loopback address)", what, raw)
	}
	if u.User != nil {
		return fmt.Errorf("%s: the URL must not carry a user name or password", what)
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return fmt.Errorf("%s: %q must not have a fragment", what, raw)
	}
	return nil
}

// checkHeaderName requires an RFC 9110 §5.1 field name (a token).
func checkHeaderName(flag, name string) error {
	if name == "" {
		return fmt.Errorf("--%s must not be empty", flag)
	}
	for i := 0; i < len(name); i++ {
		ch := name[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", ch) >= 0) {
			return fmt.Errorf("--%s %q is not a valid name (letters, digits and !#$%%&'*+-.^_`|~)", flag, name)
		}
	}
	return nil
}

// applyProviderFlags sets on p what the flags given say, then checks the
// whole provider. For add every flag counts; for update only those given.
func applyProviderFlags(ctx context.Context, cmd *cobra.Command, f *providerFlags, p *store.Provider, disco *http.Client) error {
	changed := func(name string) bool { return cmd.Flags().Changed(name) }
	if err := checkKindFlags(cmd, p.Kind); err != nil {
		return err
	}
	if changed("name") {
		p.Name = f.name
	}
	if p.Name == "" {
		p.Name = p.ID
	}
	if err := checkDisplayText("--name", p.Name, maxDisplayName); err != nil {
		return err
	}
	switch p.Kind {
	case store.ProviderOAuth2:
		if changed("issuer") {
			if err := checkEndpoint("--issuer", f.issuer); err != nil {
				return err
			}
			if strings.Contains(f.issuer, "?") {
				// RFC 8414 §2: the issuer has no query component.
				return fmt.Errorf("--issuer: %q must not have a query", f.issuer)
			}
			md, err := discoverProvider(ctx, disco, f.issuer)
			if err != nil {
				return err
			}
			p.Issuer = md.Issuer
			// Endpoints given as flags win over discovered ones.
			if !changed("authorization-endpoint") {
				p.AuthorizationEndpoint = md.AuthorizationEndpoint
			}
			if !changed("token-endpoint") {
				p.TokenEndpoint = md.TokenEndpoint
			}
			if !changed("revocation-endpoint") {
				p.RevocationEndpoint = md.RevocationEndpoint
			}
			if !changed("no-pkce") && len(md.CodeChallengeMethods) > 0 && !slices.Contains(md.CodeChallengeMethods, "S256") {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s does not list S256 in code_challenge_methods_supported; add --no-pkce if it rejects PKCE\n", md.Issuer)
			}
			if !changed("token-auth-method") && len(md.TokenAuthMethods) > 0 && p.TokenAuthMethod == "" &&
				!slices.Contains(md.TokenAuthMethods, oauth.AuthMethodClientSecretBasic) && slices.Contains(md.TokenAuthMethods, oauth.AuthMethodClientSecretPost) {
				p.TokenAuthMethod = oauth.AuthMethodClientSecretPost
			}
		}
		if changed("authorization-endpoint") {
			p.AuthorizationEndpoint = f.authzEndpoint
		}
		if changed("token-endpoint") {
			p.TokenEndpoint = f.tokenEndpoint
		}
		if changed("revocation-endpoint") {
			p.RevocationEndpoint = f.revocationEndpoint
		}
		if changed("client-id") {
			p.ClientID = strings.TrimSpace(f.clientID)
		}
		if changed("token-auth-method") {
			p.TokenAuthMethod = f.tokenAuthMethod
		}
		if changed("scope") {
			scopes, oe := oauth.ParseScope(strings.Join(f.scopes, " "))
			if oe != nil {
				return fmt.Errorf("--scope: %s", oe.Description)
			}
			if len(scopes) > maxProviderScopes {
				return fmt.Errorf("at most %d --scope values", maxProviderScopes)
			}
			p.Scopes = scopes
		}
		if changed("no-pkce") {
			p.DisablePKCE = f.noPKCE
		}
		if changed("auth-param") {
			params, err := parseAuthParams(f.authParams)
			if err != nil {
				return err
			}
			p.AuthParams = params
		}
		if p.AuthorizationEndpoint == "" || p.TokenEndpoint == "" {
			return errors.New("an oauth2 provider needs --authorization-endpoint and --token-endpoint, or --issuer to discover them")
		}
		for flag, v := range map[string]string{"authorization-endpoint": p.AuthorizationEndpoint, "token-endpoint": p.TokenEndpoint, "revocation-endpoint": p.RevocationEndpoint} {
			if v == "" {
				continue
			}
			if err := checkEndpoint("--"+flag, v); err != nil {
				return err
			}
		}
		if p.ClientID == "" {
			return errors.New("an oauth2 provider needs --client-id: the hub's client at the provider")
		}
		if strings.ContainsFunc(p.ClientID, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return errors.New("--client-id must not contain control characters")
		}
	case store.ProviderAPIKey:
		if changed("header") {
			p.KeyHeader, p.KeyQuery = f.header, ""
			if err := checkHeaderName("header", f.header); err != nil {
				return err
			}
		}
		if changed("query") {
			if changed("header") {
				return errors.New("give --header or --query, not both: the key travels in one place")
			}
			p.KeyQuery, p.KeyHeader, p.KeyFormat = f.query, "", ""
			if err := checkHeaderName("query", f.query); err != nil {
				return err
			}
		}
		if changed("format") {
			if p.KeyHeader == "" {
				return errors.New("--format applies to a key sent in a --header")
			}
			if f.format != "" && strings.Count(f.format, "{key}") != 1 {
				return fmt.Errorf("--format %q must contain {key} exactly once", f.format)
			}
			if strings.ContainsFunc(f.format, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				return errors.New("--format must not contain control characters")
			}
			p.KeyFormat = f.format
		}
		if changed("hint") {
			p.KeyHint = f.hint
			if f.hint != "" {
				if err := checkDisplayText("--hint", f.hint, maxHintLen); err != nil {
					return err
				}
			}
		}
		if changed("overlap") {
			if f.overlap < 0 || f.overlap > maxKeyOverlap {
				return fmt.Errorf("--overlap must be between 0 and %s, got %s", config.Duration(maxKeyOverlap), f.overlap)
			}
			p.KeyOverlap = f.overlap
		}
		if p.KeyHeader == "" && p.KeyQuery == "" {
			return errors.New("an api_key provider needs --header NAME or --query NAME: where the key travels")
		}
	}
	return nil
}

// parseAuthParams parses --auth-param KEY=VALUE values.
func parseAuthParams(vals []string) (map[string]string, error) {
	if len(vals) > maxAuthParams {
		return nil, fmt.Errorf("at most %d --auth-param values", maxAuthParams)
	}
	out := map[string]string{}
	for _, v := range vals {
		k, val, ok := strings.Cut(v, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("--auth-param %q: want KEY=VALUE, e.g. access_type=offline", v)
		}
		if slices.Contains(reservedAuthParams, k) {
			return nil, fmt.Errorf("--auth-param %s: the hub sets this parameter itself", k)
		}
		if strings.ContainsFunc(k+val, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return nil, fmt.Errorf("--auth-param %s: control characters are not allowed", k)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("--auth-param %s is given twice", k)
		}
		out[k] = val
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// providerMetadata is what discovery reads from an authorization server's
// metadata (OpenID Connect Discovery 1.0 §3, RFC 8414 §2).
type providerMetadata struct {
	Issuer                string   `json:"issuer"`
	AuthorizationEndpoint string   `json:"authorization_endpoint"`
	TokenEndpoint         string   `json:"token_endpoint"`
	RevocationEndpoint    string   `json:"revocation_endpoint"`
	CodeChallengeMethods  []string `json:"code_challenge_methods_supported"`
	TokenAuthMethods      []string `json:"token_endpoint_auth_methods_supported"`
}

// discoveryURLs are where an issuer's metadata may be: OpenID Connect
// Discovery appends /.well-known/openid-configuration to the issuer
// (§4); RFC 8414 §3.1 inserts /.well-known/oauth-authorization-server
// between host and path.
func discoveryURLs(issuer string) []string {
	u, _ := url.Parse(issuer)
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	oidc := *u
	oidc.RawPath, oidc.Path = "", ""
	oidc.RawQuery, oidc.Fragment = "", ""
	rfc := oidc
	oidcURL := oidc.String() + path + "/.well-known/openid-configuration"
	rfcURL := rfc.String() + "/.well-known/oauth-authorization-server" + path
	return []string{oidcURL, rfcURL}
}

// discoverProvider fetches the issuer's metadata from the first of its
// discovery URLs that answers with a document, and checks it
// (parseProviderMetadata).
func discoverProvider(ctx context.Context, client *http.Client, issuer string) (*providerMetadata, error) {
	var errs []error
	for _, u := range discoveryURLs(issuer) {
		body, err := fetchMetadata(ctx, client, u)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		md, err := parseProviderMetadata(issuer, body)
		if err != nil {
			return nil, fmt.Errorf("--issuer: the metadata at %s %w", u, err)
		}
		return md, nil
	}
	return nil, fmt.Errorf("--issuer: no authorization server metadata for %s: %w", issuer, errors.Join(errs...))
}

// parseProviderMetadata reads an authorization server's metadata
// document: it must name the issuer asked for (RFC 8414 §3.3, OpenID
// Connect Discovery §4.3) and authorization and token endpoints, which like
// a revocation endpoint must be https URLs (http only on loopback). Errors
// continue "the metadata at URL …".
func parseProviderMetadata(issuer string, body []byte) (*providerMetadata, error) {
	var md providerMetadata
	if err := json.Unmarshal(body, &md); err != nil {
		return nil, fmt.Errorf("is not a metadata document: %w", err)
	}
	if md.Issuer != issuer {
		return nil, fmt.Errorf("names the issuer %q, not %q (RFC 8414 §3.3); give the issuer exactly as the provider spells it", md.Issuer, issuer)
	}
	if md.AuthorizationEndpoint == "" || md.TokenEndpoint == "" {
		return nil, errors.New("lacks authorization_endpoint or token_endpoint")
	}
	for name, v := range map[string]string{"authorization_endpoint": md.AuthorizationEndpoint, "token_endpoint": md.TokenEndpoint, "revocation_endpoint": md.RevocationEndpoint} {
		if v == "" {
			continue
		}
		if err := checkEndpoint(name, v); err != nil {
			return nil, fmt.Errorf("has an unusable %w", err)
		}
	}
	return &md, nil
}

// fetchMetadata GETs one discovery URL and returns the JSON body.
func fetchMetadata(ctx context.Context, client *http.Client, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %d", u, resp.StatusCode)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" {
		return nil, fmt.Errorf("%s: content type %q, want application/json", u, mt)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDiscoveryDocument+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	if len(body) > maxDiscoveryDocument {
		return nil, fmt.Errorf("%s: the document is larger than %d bytes", u, maxDiscoveryDocument)
	}
	return body, nil
}

// discoveryClient fetches metadata: a timeout, and no redirects (the
// issuer check would refuse a moved document anyway).
func discoveryClient() *http.Client {
	return &http.Client{
		Timeout: discoveryTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return errors.New("redirects are not followed")
		},
	}
}

// newVault builds the vault the admin commands use.
func newVault(cmd *cobra.Command, cfg *config.Config, st store.Store) (*vault.Vault, error) {
	ring, err := loadKeyring(cfg)
	if err != nil {
		return nil, err
	}
	return vault.New(vault.Config{Store: st, Keyring: ring, Logger: adminLogger(cmd)})
}

func (c *cli) newProvidersAddCmd(asJSON *bool) *cobra.Command {
	var f providerFlags
	cmd := &cobra.Command{
		Use:   "add ID --kind oauth2|api_key [flags]",
		Short: "Add a downstream provider",
		Long: `Add a downstream provider. ID is a slug ([a-z0-9][a-z0-9_-]*, at most 63
characters) that names it in URLs.

An oauth2 provider needs its authorization and token endpoints (given, or
discovered with --issuer from OpenID Connect discovery or RFC 8414 metadata;
flags win over discovered values) and the client id the hub has there. Its
client secret, if it has one, is read from a file, an environment variable
or stdin, and stored sealed. Register <issuer>/connections/callback as the
client's redirect URI at the provider. PKCE (S256) is on unless --no-pkce.

An api_key provider says where the key travels: --header (with an optional
--format such as "Bearer {key}") or --query.`,
		Example: `  agentid providers add drive --kind oauth2 --name "Drive" \
    --authorization-endpoint https://accounts.example.com/o/oauth2/auth \
    --token-endpoint https://oauth2.example.com/token \
    --client-id hub-client --client-secret-file drive-secret.txt \
    --scope drive.readonly --auth-param access_type=offline --auth-param prompt=consent
  # With discovery: --issuer https://accounts.example.com instead of the endpoints.
  agentid providers add maps --kind api_key --name "Maps API" \
    --header Authorization --format "Bearer {key}" --hint "starts with mk_"`,
		Args: exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireFlags(cmd, "kind"); err != nil {
				return err
			}
			id := args[0]
			if !validProviderID(id) {
				return fmt.Errorf("provider id %q: use 1-%d characters of a-z, 0-9, _ and -, starting with a letter or digit", id, maxProviderIDLen)
			}
			if f.kind != store.ProviderOAuth2 && f.kind != store.ProviderAPIKey {
				return fmt.Errorf("--kind must be %s or %s, got %q", store.ProviderOAuth2, store.ProviderAPIKey, f.kind)
			}
			now := time.Now()
			p := &store.Provider{TenantID: store.DefaultTenant, ID: id, Kind: f.kind, CreatedAt: now, UpdatedAt: now}
			if err := applyProviderFlags(cmd.Context(), cmd, &f, p, discoveryClient()); err != nil {
				return err
			}
			secret, hasSecret, err := c.readClientSecret(cmd, &f)
			if err != nil {
				return err
			}
			if p.Kind == store.ProviderOAuth2 {
				if err := checkTokenAuthMethod(p, hasSecret); err != nil {
					return err
				}
			}
			return c.withStore(cmd, func(ctx context.Context, cfg *config.Config, st store.Store) error {
				if hasSecret {
					v, err := newVault(cmd, cfg, st)
					if err != nil {
						return err
					}
					if p.ClientSecret, err = v.SealProviderSecret(p.TenantID, p.ID, secret); err != nil {
						return fmt.Errorf("sealing the client secret: %w", err)
					}
				}
				ev := audit.NewProviderAdded(adminMeta(now), audit.ProviderFields{ProviderID: p.ID, Kind: p.Kind})
				if err := st.CreateProvider(ctx, p, ev); err != nil {
					if errors.Is(err, store.ErrConflict) {
						return fmt.Errorf("provider %s already exists (change it with 'agentid providers update')", p.ID)
					}
					return fmt.Errorf("storing the provider: %w", err)
				}
				return showProvider(cmd, *asJSON, p)
			})
		},
	}
	f.register(cmd, false)
	return cmd
}

// checkTokenAuthMethod defaults and checks how the hub authenticates at
// the provider's token endpoint: a client secret needs basic or post; a
// public client (no secret) sends only its client id.
func checkTokenAuthMethod(p *store.Provider, hasSecret bool) error {
	switch {
	case !hasSecret && p.TokenAuthMethod != "":
		return fmt.Errorf("--token-auth-method %s needs a client secret (--client-secret-file, --client-secret-env or --client-secret-stdin)", p.TokenAuthMethod)
	case !hasSecret:
		return nil
	case p.TokenAuthMethod == "":
		p.TokenAuthMethod = oauth.AuthMethodClientSecretBasic
	case !slices.Contains(providerAuthMethods, p.TokenAuthMethod):
		return fmt.Errorf("--token-auth-method must be one of %s, got %q", strings.Join(providerAuthMethods, ", "), p.TokenAuthMethod)
	}
	return nil
}

func (c *cli) newProvidersUpdateCmd(asJSON *bool) *cobra.Command {
	var f providerFlags
	cmd := &cobra.Command{
		Use:   "update ID [flags]",
		Short: "Change a provider's settings or client secret",
		Long: `Change a provider: only the flags given change. --scope and --auth-param
replace the whole list when given; --revocation-endpoint "" removes it;
--issuer discovers the endpoints again. The kind cannot change: delete the
provider and add it again.`,
		Example: `  agentid providers update calendar --client-secret-file calendar-secret.txt
  agentid providers update calendar --scope calendar.read --scope calendar.events`,
		Args: exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().NFlag() == 0 {
				return usageErrorf(cmd, "nothing to change: give at least one flag (see --help)")
			}
			secret, hasSecret, err := c.readClientSecret(cmd, &f)
			if err != nil {
				return err
			}
			return c.withStore(cmd, func(ctx context.Context, cfg *config.Config, st store.Store) error {
				p, err := getProvider(ctx, st, args[0])
				if err != nil {
					return err
				}
				before := *p
				if err := applyProviderFlags(ctx, cmd, &f, p, discoveryClient()); err != nil {
					return err
				}
				var changes []string
				if !sameProviderSettings(&before, p) {
					changes = append(changes, "settings")
				}
				switch {
				case hasSecret:
					v, err := newVault(cmd, cfg, st)
					if err != nil {
						return err
					}
					if p.ClientSecret, err = v.SealProviderSecret(p.TenantID, p.ID, secret); err != nil {
						return fmt.Errorf("sealing the client secret: %w", err)
					}
					changes = append(changes, "secret")
				case f.clearSecret && len(p.ClientSecret) > 0:
					p.ClientSecret, p.TokenAuthMethod = nil, ""
					changes = append(changes, "secret")
				}
				if p.Kind == store.ProviderOAuth2 {
					if err := checkTokenAuthMethod(p, len(p.ClientSecret) > 0); err != nil {
						return err
					}
				}
				if len(changes) == 0 {
					fmt.Fprintf(cmd.ErrOrStderr(), "provider %s: nothing changed\n", p.ID)
					return showProvider(cmd, *asJSON, p)
				}
				p.UpdatedAt = time.Now()
				ev := audit.NewProviderUpdated(adminMeta(p.UpdatedAt), audit.ProviderFields{ProviderID: p.ID, Kind: p.Kind, Change: strings.Join(changes, ",")})
				if err := st.UpdateProvider(ctx, p, ev); err != nil {
					return fmt.Errorf("updating the provider: %w", err)
				}
				return showProvider(cmd, *asJSON, p)
			})
		},
	}
	f.register(cmd, true)
	return cmd
}

// sameProviderSettings compares what an administrator sets, the client
// secret and times aside.
func sameProviderSettings(a, b *store.Provider) bool {
	return a.Name == b.Name && a.Issuer == b.Issuer && a.AuthorizationEndpoint == b.AuthorizationEndpoint &&
		a.TokenEndpoint == b.TokenEndpoint && a.RevocationEndpoint == b.RevocationEndpoint && a.ClientID == b.ClientID &&
		a.TokenAuthMethod == b.TokenAuthMethod && slices.Equal(a.Scopes, b.Scopes) && a.DisablePKCE == b.DisablePKCE &&
		maps.Equal(a.AuthParams, b.AuthParams) && a.KeyHeader == b.KeyHeader && a.KeyQuery == b.KeyQuery &&
		a.KeyFormat == b.KeyFormat && a.KeyHint == b.KeyHint && a.KeyOverlap == b.KeyOverlap
}

func (c *cli) newProvidersSetDisabledCmd(asJSON *bool, disable bool) *cobra.Command {
	verb, short, change := "enable", "Enable a provider again", "enabled"
	if disable {
		verb, short, change = "disable", "Disable a provider: no new connections and no retrievals until enabled", "disabled"
	}
	return &cobra.Command{
		Use:   verb + " ID",
		Short: short,
		Args:  exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				p, err := getProvider(ctx, st, args[0])
				if err != nil {
					return err
				}
				if p.Disabled == disable {
					fmt.Fprintf(cmd.ErrOrStderr(), "provider %s is already %s\n", p.ID, change)
					return showProvider(cmd, *asJSON, p)
				}
				p.Disabled, p.UpdatedAt = disable, time.Now()
				ev := audit.NewProviderUpdated(adminMeta(p.UpdatedAt), audit.ProviderFields{ProviderID: p.ID, Kind: p.Kind, Change: change})
				if err := st.UpdateProvider(ctx, p, ev); err != nil {
					return fmt.Errorf("updating the provider: %w", err)
				}
				return showProvider(cmd, *asJSON, p)
			})
		},
	}
}

func (c *cli) newProvidersDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete ID",
		Short: "Delete a provider and every connection to it",
		Long: `Delete a provider. Every connection to it is disconnected first: the
provider's revocation endpoint is called for each when it has one (best
effort), and the stored credentials are destroyed.`,
		Args: exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withStore(cmd, func(ctx context.Context, cfg *config.Config, st store.Store) error {
				p, err := getProvider(ctx, st, args[0])
				if err != nil {
					return err
				}
				conns, err := allConnections(ctx, st, store.ConnectionFilter{TenantID: p.TenantID, ProviderID: p.ID})
				if err != nil {
					return err
				}
				if len(conns) > 0 {
					v, err := newVault(cmd, cfg, st)
					if err != nil {
						return err
					}
					for _, conn := range conns {
						err := v.Revoke(ctx, adminMeta(time.Now()), conn.TenantID, conn.ID, "provider_deleted")
						if err != nil && !errors.Is(err, store.ErrNotFound) {
							return fmt.Errorf("disconnecting %s: %w", conn.ID, err)
						}
					}
				}
				ev := audit.NewProviderDeleted(adminMeta(time.Now()), audit.ProviderFields{ProviderID: p.ID, Kind: p.Kind})
				if err := st.DeleteProvider(ctx, p.TenantID, p.ID, ev); err != nil {
					return fmt.Errorf("deleting the provider: %w", err)
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "provider %s deleted (%d connections disconnected)\n", p.ID, len(conns))
				return err
			})
		},
	}
}

func (c *cli) newProvidersListCmd(asJSON *bool) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List providers",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				ps, err := st.ListProviders(ctx, store.DefaultTenant)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if *asJSON {
					vs := make([]*providerJSON, 0, len(ps))
					for _, p := range ps {
						vs = append(vs, providerView(p))
					}
					return writeJSON(out, vs)
				}
				t := newTable(out, "ID", "KIND", "NAME", "STATUS", "SCOPES", "CREATED")
				for _, p := range ps {
					t.row(p.ID, p.Kind, p.Name, providerStatus(p), list(p.Scopes), timeText(p.CreatedAt))
				}
				return t.flush()
			})
		},
	}
}

func (c *cli) newProvidersShowCmd(asJSON *bool) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show one provider (never its client secret)",
		Args:  exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				p, err := getProvider(ctx, st, args[0])
				if err != nil {
					return err
				}
				return showProvider(cmd, *asJSON, p)
			})
		},
	}
}

func getProvider(ctx context.Context, st store.Store, id string) (*store.Provider, error) {
	p, err := st.GetProvider(ctx, store.DefaultTenant, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("no provider %s (see 'agentid providers list')", id)
	}
	return p, err
}

func providerStatus(p *store.Provider) string {
	if p.Disabled {
		return "disabled"
	}
	return "enabled"
}

// providerJSON is a provider as `--json` shows it: whether it has a client
// secret, never the secret or its ciphertext.
type providerJSON struct {
	ID                    string            `json:"id"`
	Kind                  string            `json:"kind"`
	Name                  string            `json:"name"`
	Disabled              bool              `json:"disabled"`
	Issuer                string            `json:"issuer,omitempty"`
	AuthorizationEndpoint string            `json:"authorization_endpoint,omitempty"`
	TokenEndpoint         string            `json:"token_endpoint,omitempty"`
	RevocationEndpoint    string            `json:"revocation_endpoint,omitempty"`
	ClientID              string            `json:"client_id,omitempty"`
	ClientSecretSet       bool              `json:"client_secret_set"`
	TokenAuthMethod       string            `json:"token_auth_method,omitempty"`
	Scopes                []string          `json:"scopes"`
	PKCE                  *bool             `json:"pkce,omitempty"`
	AuthParams            map[string]string `json:"auth_params,omitempty"`
	KeyHeader             string            `json:"key_header,omitempty"`
	KeyQuery              string            `json:"key_query,omitempty"`
	KeyFormat             string            `json:"key_format,omitempty"`
	KeyHint               string            `json:"key_hint,omitempty"`
	KeyOverlap            string            `json:"key_overlap,omitempty"`
	CreatedAt             *time.Time        `json:"created_at,omitempty"`
	UpdatedAt             *time.Time        `json:"updated_at,omitempty"`
}

func providerView(p *store.Provider) *providerJSON {
	v := &providerJSON{
		ID: p.ID, Kind: p.Kind, Name: p.Name, Disabled: p.Disabled, Issuer: p.Issuer,
		AuthorizationEndpoint: p.AuthorizationEndpoint, TokenEndpoint: p.TokenEndpoint, RevocationEndpoint: p.RevocationEndpoint,
		ClientID: p.ClientID, ClientSecretSet: len(p.ClientSecret) > 0, TokenAuthMethod: p.TokenAuthMethod,
		Scopes: strs(p.Scopes), AuthParams: p.AuthParams,
		KeyHeader: p.KeyHeader, KeyQuery: p.KeyQuery, KeyFormat: p.KeyFormat, KeyHint: p.KeyHint,
		CreatedAt: optTime(p.CreatedAt), UpdatedAt: optTime(p.UpdatedAt),
	}
	if p.Kind == store.ProviderOAuth2 {
		pkce := !p.DisablePKCE
		v.PKCE = &pkce
	}
	if p.KeyOverlap > 0 {
		v.KeyOverlap = config.Duration(p.KeyOverlap).String()
	}
	return v
}

func showProvider(cmd *cobra.Command, asJSON bool, p *store.Provider) error {
	out := cmd.OutOrStdout()
	if asJSON {
		return writeJSON(out, providerView(p))
	}
	t := newTable(out)
	t.row("id", p.ID)
	t.row("kind", p.Kind)
	t.row("name", p.Name)
	t.row("status", providerStatus(p))
	switch p.Kind {
	case store.ProviderOAuth2:
		if p.Issuer != "" {
			t.row("issuer", p.Issuer)
		}
		t.row("authorization_endpoint", p.AuthorizationEndpoint)
		t.row("token_endpoint", p.TokenEndpoint)
		t.row("revocation_endpoint", p.RevocationEndpoint)
		t.row("client_id", p.ClientID)
		secret := "none (public client)"
		if len(p.ClientSecret) > 0 {
			secret = "set (sealed)"
		}
		t.row("client_secret", secret)
		t.row("token_auth_method", p.TokenAuthMethod)
		t.row("scopes", list(p.Scopes))
		pkce := "S256"
		if p.DisablePKCE {
			pkce = "off"
		}
		t.row("pkce", pkce)
		for _, k := range slices.Sorted(maps.Keys(p.AuthParams)) {
			t.row("auth_param", k+"="+p.AuthParams[k])
		}
	case store.ProviderAPIKey:
		if p.KeyHeader != "" {
			t.row("header", p.KeyHeader)
			format := p.KeyFormat
			if format == "" {
				format = "{key}"
			}
			t.row("format", format)
		} else {
			t.row("query", p.KeyQuery)
		}
		t.row("hint", p.KeyHint)
		overlap := "default (24h)"
		if p.KeyOverlap > 0 {
			overlap = config.Duration(p.KeyOverlap).String()
		}
		t.row("overlap", overlap)
	}
	t.row("created", timeText(p.CreatedAt))
	t.row("updated", timeText(p.UpdatedAt))
	return t.flush()
}
