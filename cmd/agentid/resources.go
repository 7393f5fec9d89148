package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/config"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
)

// Display limits: names and descriptions appear on the consent page.
const (
	maxDisplayName     = 200
	maxDescription     = 500
	maxScopesPerServer = 200
)

func (c *cli) newResourcesCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "resources",
		Short: "Manage protected resources (MCP servers) and their scopes",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRunE,
	}
	addJSONFlag(cmd, &asJSON)
	cmd.AddCommand(
		c.newResourcesAddCmd(&asJSON),
		c.newResourcesListCmd(&asJSON),
		c.newResourcesShowCmd(&asJSON),
		c.newResourcesDeleteCmd(),
		c.newResourcesLinkCmd(),
		c.newResourcesUpdateCmd(&asJSON),
	)
	return cmd
}

// resourceSpec is what `resources add` was asked for.
type resourceSpec struct {
	uri       string
	name      string
	scopes    []string // "name=description"
	sensitive []string
	tokenTTL  time.Duration
	// consentMax caps how long a person may grant access; consentDefault is
	// preselected on the consent screen (zero: the hub's defaults).
	consentMax, consentDefault time.Duration
	// client is the confidential client that is the resource's server.
	client string
}

func (c *cli) newResourcesAddCmd(asJSON *bool) *cobra.Command {
	var spec resourceSpec
	cmd := &cobra.Command{
		Use:   "add --uri URI --name NAME --scope NAME=DESCRIPTION ... [flags]",
		Short: "Register a resource (an MCP server) with its scopes",
		Long: `Register a protected resource: an MCP server named by its canonical URI
(RFC 8707; a trailing slash and default port are dropped), with a display
name and its scopes, each with the description shown on the consent page.`,
		Example: `  agentid resources add --uri https://notes.example.com/mcp --name "Notes" \
    --scope "notes.read=Read your notes" --scope "notes.delete=Delete your notes" \
    --sensitive notes.delete --token-ttl 5m --consent-max 720h --consent-default 24h \
    --client notes-mcp`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "uri", "name", "scope"); err != nil {
				return err
			}
			r, err := buildResource(spec, time.Now())
			if err != nil {
				return err
			}
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				if r.ClientID != "" {
					if err := checkResourceServerClient(ctx, st, r.ClientID); err != nil {
						return err
					}
				}
				if err := st.CreateResource(ctx, r, resourceEvent(r, audit.NewResourceCreated, r.CreatedAt)); err != nil {
					if errors.Is(err, store.ErrConflict) {
						return fmt.Errorf("resource %s is already registered", r.URI)
					}
					return fmt.Errorf("storing the resource: %w", err)
				}
				if *asJSON {
					return writeJSON(cmd.OutOrStdout(), resourceView(r))
				}
				return printResource(cmd.OutOrStdout(), r)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&spec.uri, "uri", "", "the resource's URI, as MCP clients send it in `resource` (required)")
	f.StringVar(&spec.name, "name", "", "display name shown on the consent page (required)")
	f.StringArrayVar(&spec.scopes, "scope", nil, `scope as "NAME=DESCRIPTION" (required, repeatable)`)
	f.StringArrayVar(&spec.sensitive, "sensitive", nil, "scope `NAME` that is sensitive: policy may demand more for it (repeatable)")
	f.DurationVar(&spec.tokenTTL, "token-ttl", 0, "access-token lifetime for this resource, at most 1h (default: tokens.access_token_ttl)")
	f.DurationVar(&spec.consentMax, "consent-max", 0, "longest time a person may grant access for; longer choices, and \"until I revoke\", are not offered (default: no cap)")
	f.StringVar(&spec.client, "client", "", "`ID` of the confidential client the MCP server authenticates as; only it may introspect the resource's tokens")
	f.DurationVar(&spec.consentDefault, "consent-default", 0, "duration preselected on the consent screen, at most --consent-max (default: 30 days, or the cap)")
	return cmd
}

// buildResource validates spec and returns the resource to store.
func buildResource(spec resourceSpec, now time.Time) (*store.Resource, error) {
	uri, oe := oauth.CanonicalResource(spec.uri)
	if oe != nil {
		return nil, fmt.Errorf("--uri: %s", oe.Description)
	}
	if err := checkDisplayText("--name", spec.name, maxDisplayName); err != nil {
		return nil, err
	}
	if len(spec.scopes) == 0 {
		return nil, errors.New(`at least one --scope "NAME=DESCRIPTION" is required`)
	}
	if len(spec.scopes) > maxScopesPerServer {
		return nil, fmt.Errorf("at most %d scopes per resource", maxScopesPerServer)
	}
	var scopes []store.Scope
	for _, s := range spec.scopes {
		sc, err := parseScopeFlag(s)
		if err != nil {
			return nil, err
		}
		if slices.ContainsFunc(scopes, func(o store.Scope) bool { return o.Name == sc.Name }) {
			return nil, fmt.Errorf("--scope %s is given twice", sc.Name)
		}
		scopes = append(scopes, sc)
	}
	for _, name := range spec.sensitive {
		i := slices.IndexFunc(scopes, func(s store.Scope) bool { return s.Name == name })
		if i < 0 {
			return nil, fmt.Errorf("--sensitive %s names no --scope of this resource", name)
		}
		scopes[i].Sensitive = true
	}
	if spec.tokenTTL < 0 || (spec.tokenTTL > 0 && spec.tokenTTL < time.Second) {
		return nil, fmt.Errorf("--token-ttl must be at least 1s, got %s", spec.tokenTTL)
	}
	// docs/design.md §7: access tokens never live more than an hour.
	if spec.tokenTTL > server.MaxAccessTokenTTL {
		return nil, fmt.Errorf("--token-ttl must be at most %s, got %s", server.MaxAccessTokenTTL, spec.tokenTTL)
	}
	if spec.consentMax < 0 || spec.consentDefault < 0 {
		return nil, errors.New("--consent-max and --consent-default must not be negative")
	}
	if spec.consentMax > 0 && spec.consentMax < spec.tokenTTL {
		return nil, fmt.Errorf("--consent-max %s is shorter than the token lifetime %s", spec.consentMax, spec.tokenTTL)
	}
	if spec.consentMax > 0 && spec.consentDefault > spec.consentMax {
		return nil, fmt.Errorf("--consent-default %s is longer than --consent-max %s", spec.consentDefault, spec.consentMax)
	}
	return &store.Resource{
		TenantID:          store.DefaultTenant,
		ID:                token.NewID(nil),
		URI:               uri,
		Name:              spec.name,
		Scopes:            scopes,
		AccessTokenTTL:    spec.tokenTTL,
		ConsentMaxTTL:     spec.consentMax,
		ConsentDefaultTTL: spec.consentDefault,
		ClientID:          spec.client,
		CreatedAt:         now,
	}, nil
}

// parseScopeFlag parses a --scope value "NAME=DESCRIPTION": NAME is one
// RFC 6749 §3.3 scope token, DESCRIPTION the human-readable text the
// consent page shows.
func parseScopeFlag(v string) (store.Scope, error) {
	name, desc, ok := strings.Cut(v, "=")
	if !ok {
		return store.Scope{}, fmt.Errorf(`--scope %q: want "NAME=DESCRIPTION", e.g. "notes.read=Read your notes"`, v)
	}
	name, desc = strings.TrimSpace(name), strings.TrimSpace(desc)
	toks, oe := oauth.ParseScope(name)
	if oe != nil || len(toks) != 1 || toks[0] != name {
		return store.Scope{}, fmt.Errorf("--scope %q: the name must be one scope token (printable ASCII, no spaces, quotes or backslashes)", v)
	}
	if err := checkDisplayText("--scope "+name+" description", desc, maxDescription); err != nil {
		return store.Scope{}, err
	}
	return store.Scope{Name: name, Description: desc}, nil
}

// checkDisplayText requires non-empty, valid UTF-8 text of at most max
// characters without control characters (it is shown on pages and in
// terminals).
func checkDisplayText(what, s string, max int) error {
	switch {
	case strings.TrimSpace(s) == "":
		return fmt.Errorf("%s must not be empty", what)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s must be valid UTF-8", what)
	case utf8.RuneCountInString(s) > max:
		return fmt.Errorf("%s must be at most %d characters", what, max)
	case strings.ContainsFunc(s, unicode.IsControl):
		return fmt.Errorf("%s must not contain control characters", what)
	}
	return nil
}

func (c *cli) newResourcesListCmd(asJSON *bool) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List resources",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				rs, err := st.ListResources(ctx, store.DefaultTenant)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if *asJSON {
					vs := make([]*resourceJSON, 0, len(rs))
					for _, r := range rs {
						vs = append(vs, resourceView(r))
					}
					return writeJSON(out, vs)
				}
				t := newTable(out, "URI", "NAME", "SCOPES", "TOKEN_TTL", "CREATED")
				for _, r := range rs {
					names := make([]string, len(r.Scopes))
					for i, s := range r.Scopes {
						names[i] = s.Name
					}
					t.row(r.URI, r.Name, list(names), ttlText(r.AccessTokenTTL), timeText(r.CreatedAt))
				}
				return t.flush()
			})
		},
	}
}

func (c *cli) newResourcesShowCmd(asJSON *bool) *cobra.Command {
	return &cobra.Command{
		Use:   "show URI",
		Short: "Show one resource and its scopes",
		Args:  exactArgs("URI"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				r, err := getResource(ctx, st, args[0])
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(cmd.OutOrStdout(), resourceView(r))
				}
				return printResource(cmd.OutOrStdout(), r)
			})
		},
	}
}

func (c *cli) newResourcesDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete URI",
		Short: "Delete a resource",
		Args:  exactArgs("URI"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				r, err := getResource(ctx, st, args[0])
				if err != nil {
					return err
				}
				ev := resourceEvent(r, audit.NewResourceDeleted, time.Now())
				if err := st.DeleteResource(ctx, store.DefaultTenant, r.URI, ev); err != nil {
					return fmt.Errorf("deleting the resource: %w", err)
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "resource %s deleted\n", r.URI)
				return err
			})
		},
	}
}

// newResourcesLinkCmd links a resource to the client its MCP server
// authenticates as (DESIGN §4a).
func (c *cli) newResourcesLinkCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "link URI CLIENT_ID",
		Short: "Name the confidential client a resource's MCP server authenticates as",
		Long: `Link a resource to the confidential client its MCP server authenticates as.
Token introspection (RFC 7662) shows a token whose audience is the resource
to that client only; any other caller sees {"active":false} unless the
token was issued to the caller itself.`,
		Example: `  agentid resources link https://mcp.example.com/mcp notes-mcp`,
		Args:    exactArgs("URI", "CLIENT_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				r, err := getResource(ctx, st, args[0])
				if err != nil {
					return err
				}
				if err := checkResourceServerClient(ctx, st, args[1]); err != nil {
					return err
				}
				r.ClientID = args[1]
				ev := resourceEvent(r, audit.NewResourceUpdated, time.Now())
				if ev.Details == nil {
					ev.Details = map[string]string{}
				}
				ev.Details["client_id"] = r.ClientID
				if err := st.UpdateResource(ctx, r, ev); err != nil {
					return fmt.Errorf("updating the resource: %w", err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "resource %s: its server authenticates as client %s\n", r.URI, r.ClientID)
				return nil
			})
		},
	}
}

// checkResourceServerClient requires id to be a registered confidential
// client: a resource server authenticates to introspect.
func checkResourceServerClient(ctx context.Context, st store.Store, id string) error {
	cl, err := st.GetClient(ctx, store.DefaultTenant, id)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no client with id %s (create it with 'agentid clients add')", id)
	}
	if err != nil {
		return err
	}
	if cl.Public() {
		return fmt.Errorf("client %s is public; a resource server must be a confidential client", id)
	}
	return nil
}

// resourceEvent is the audit event newEvent builds for a change to r: it
// names the resource by URI and lists its scope names.
func resourceEvent(r *store.Resource, newEvent func(audit.Meta, string, []string) *store.AuditEvent, now time.Time) *store.AuditEvent {
	var scopes []string
	for _, sc := range r.Scopes {
		scopes = append(scopes, sc.Name)
	}
	return newEvent(audit.Meta{TenantID: r.TenantID, Time: now}, r.URI, scopes)
}

// getResource finds a resource by any spelling of its URI that
// canonicalises to the stored one.
func getResource(ctx context.Context, st store.Store, raw string) (*store.Resource, error) {
	uri, oe := oauth.CanonicalResource(raw)
	if oe != nil {
		return nil, fmt.Errorf("%q: %s", raw, oe.Description)
	}
	r, err := st.GetResource(ctx, store.DefaultTenant, uri)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("no resource %s", uri)
	}
	return r, err
}

// resourceJSON is a resource as `--json` shows it.
type resourceJSON struct {
	URI    string      `json:"uri"`
	Name   string      `json:"name"`
	Scopes []scopeJSON `json:"scopes"`
	// AccessTokenTTL is Go duration syntax, or omitted for the hub default.
	AccessTokenTTL string `json:"access_token_ttl,omitempty"`
	// ConsentMax and ConsentDefault are Go duration syntax, or omitted.
	ConsentMax     string   `json:"consent_max,omitempty"`
	ConsentDefault string   `json:"consent_default,omitempty"`
	Tags           []string `json:"tags"`
	ClientID       string   `json:"client_id,omitempty"`
	// Providers are the downstream providers the resource's tools use:
	// resource scope → provider scopes it reaches.
	Providers []resourceProviderJSON `json:"providers"`
	// UserClaims are the claims about the person its tokens carry: claim
	// name → source.
	UserClaims map[string]string `json:"user_claims"`
	CreatedAt  *time.Time        `json:"created_at,omitempty"`
}

type resourceProviderJSON struct {
	Provider string              `json:"provider"`
	Scopes   map[string][]string `json:"scopes"`
}

type scopeJSON struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Sensitive   bool   `json:"sensitive"`
}

func resourceView(r *store.Resource) *resourceJSON {
	v := &resourceJSON{URI: r.URI, Name: r.Name, Scopes: []scopeJSON{}, Tags: strs(r.Tags), ClientID: r.ClientID, CreatedAt: optTime(r.CreatedAt)}
	if r.AccessTokenTTL > 0 {
		v.AccessTokenTTL = config.Duration(r.AccessTokenTTL).String()
	}
	if r.ConsentMaxTTL > 0 {
		v.ConsentMax = config.Duration(r.ConsentMaxTTL).String()
	}
	if r.ConsentDefaultTTL > 0 {
		v.ConsentDefault = config.Duration(r.ConsentDefaultTTL).String()
	}
	for _, s := range r.Scopes {
		v.Scopes = append(v.Scopes, scopeJSON(s))
	}
	v.UserClaims = r.UserClaims
	if v.UserClaims == nil {
		v.UserClaims = map[string]string{}
	}
	v.Providers = []resourceProviderJSON{}
	for _, rp := range r.Providers {
		scopes := map[string][]string{}
		for k, ps := range rp.Scopes {
			scopes[k] = strs(ps)
		}
		v.Providers = append(v.Providers, resourceProviderJSON{Provider: rp.ProviderID, Scopes: scopes})
	}
	return v
}

func ttlText(d time.Duration) string {
	if d <= 0 {
		return "default"
	}
	return config.Duration(d).String()
}

// printResource writes a resource and a table of its scopes.
func printResource(w io.Writer, r *store.Resource) error {
	t := newTable(w)
	t.row("uri", r.URI)
	t.row("name", r.Name)
	t.row("token_ttl", ttlText(r.AccessTokenTTL))
	t.row("consent_max", ttlText(r.ConsentMaxTTL))
	t.row("consent_default", ttlText(r.ConsentDefaultTTL))
	if r.ClientID != "" {
		t.row("client", r.ClientID)
	}
	if len(r.UserClaims) > 0 {
		t.row("user_claims", userClaimsText(r.UserClaims))
	}
	t.row("created", timeText(r.CreatedAt))
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	t = newTable(w, "SCOPE", "SENSITIVE", "DESCRIPTION")
	for _, s := range r.Scopes {
		sens := "no"
		if s.Sensitive {
			sens = "yes"
		}
		t.row(s.Name, sens, s.Description)
	}
	if err := t.flush(); err != nil {
		return err
	}
	if rows := providerLinkRows(r); len(rows) > 0 {
		fmt.Fprintln(w)
		t = newTable(w, "PROVIDER", "SCOPE -> PROVIDER_SCOPES")
		for _, row := range rows {
			t.row(row[0], row[1])
		}
		return t.flush()
	}
	return nil
}
