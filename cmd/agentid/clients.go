package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/user"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/config"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
)

// grantTypeNames lists the grant types the hub serves, for help and errors.
func grantTypeNames(served []oauth.SupportedGrant) string {
	names := make([]string, len(served))
	for i, g := range served {
		names[i] = g.Type
	}
	return strings.Join(names, ", ")
}

// maxJWKSFile bounds the --jwks-file read; a public key set is a few KiB.
const maxJWKSFile = 64 << 10

func (c *cli) newClientsCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "clients",
		Short: "Manage OAuth clients (agents)",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRunE,
	}
	addJSONFlag(cmd, &asJSON)
	cmd.AddCommand(
		c.newClientsAddCmd(&asJSON),
		c.newClientsListCmd(&asJSON),
		c.newClientsShowCmd(&asJSON),
		c.newClientsSetDisabledCmd(&asJSON, true),
		c.newClientsSetDisabledCmd(&asJSON, false),
		c.newClientsDeleteCmd(),
		c.newClientsTagCmd(&asJSON, true),
		c.newClientsTagCmd(&asJSON, false),
	)
	return cmd
}

// clientSpec is what `clients add` was asked for.
type clientSpec struct {
	name            string
	id              string
	public          bool
	authMethod      string
	applicationType string
	redirectURIs    []string
	grantTypes      []string
	scopes          []string
	resource        string
	tags            []string
	jwks            []byte
}

func (c *cli) newClientsAddCmd(asJSON *bool) *cobra.Command {
	var (
		spec     clientSpec
		jwksFile string
	)
	cmd := &cobra.Command{
		Use:   "add --name NAME [flags]",
		Short: "Register a client; prints a confidential client's secret once",
		Long: `Register a client (an agent). Clients are confidential by default: a client
secret is generated, printed once, and only its SHA-256 is stored. --public
registers a client that cannot keep a secret (token_endpoint_auth_method none).

Grant types default to authorization_code and refresh_token when redirect URIs
are given, else client_credentials. Scopes and the default resource must
already be registered with 'agentid resources add'. The scopes asked for with
--scope pass the policy's register action; those it allows are the client's
ceiling, the most it may ever hold, recomputed when its tags or the policy
change. Without --scope the client is bound only by resources and policy.`,
		Example: `  agentid clients add --name "Notes Agent" --redirect-uri http://127.0.0.1/callback --public
  agentid clients add --name "Nightly job" --grant-type client_credentials --scope notes.read`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "name"); err != nil {
				return err
			}
			if jwksFile != "" {
				b, err := config.ReadLimited(jwksFile, maxJWKSFile)
				if err != nil {
					return fmt.Errorf("--jwks-file: %w", err)
				}
				spec.jwks = b
			}
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				resources, err := st.ListResources(ctx, store.DefaultTenant)
				if err != nil {
					return err
				}
				now := time.Now()
				cl, secret, err := buildClient(spec, resources, now)
				if err != nil {
					return err
				}
				ceiling, err := applyCeiling(ctx, cmd, st, cl, resources)
				if err != nil {
					return err
				}
				ev := audit.NewClientRegistered(adminMeta(now), audit.ClientRegisteredFields{
					ClientID: cl.ID, Name: cl.Name, Method: store.RegistrationManual, AuthMethod: cl.TokenEndpointAuthMethod,
					Ceiling: cl.Scopes, Policy: ceiling.Audit(),
				})
				if err := st.CreateClient(ctx, cl, ev); err != nil {
					if errors.Is(err, store.ErrConflict) {
						return fmt.Errorf("a client with id %q already exists", cl.ID)
					}
					return fmt.Errorf("storing the client: %w", err)
				}
				out := cmd.OutOrStdout()
				if *asJSON {
					v := clientView(cl)
					v.ClientSecret = secret
					return writeJSON(out, v)
				}
				if err := printClient(out, cl, secret); err != nil {
					return err
				}
				if secret != "" {
					fmt.Fprintln(cmd.ErrOrStderr(), "The client secret is shown only this once; agentid keeps only its hash.")
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&spec.name, "name", "", "display name shown on the consent page (required)")
	f.StringVar(&spec.id, "id", "", "client id (default: random)")
	f.BoolVar(&spec.public, "public", false, "a public client: no secret, token_endpoint_auth_method none")
	f.StringArrayVar(&spec.redirectURIs, "redirect-uri", nil, "redirect URI (repeatable)")
	f.StringArrayVar(&spec.grantTypes, "grant-type", nil, "grant type: "+grantTypeNames(server.GrantTypes())+" (repeatable)")
	f.StringArrayVar(&spec.scopes, "scope", nil, "scope the client may hold at most (repeatable; default: bound only by resources and policy)")
	f.StringVar(&spec.resource, "resource", "", "default resource `URI`, used when a request names none")
	f.StringVar(&spec.authMethod, "auth-method", "", "token endpoint auth method: client_secret_basic (default), client_secret_post, private_key_jwt or none")
	f.StringVar(&spec.applicationType, "application-type", "", "web or native (default: native for public clients and for loopback or private-use redirect URIs, else web)")
	f.StringVar(&jwksFile, "jwks-file", "", "JSON Web Key Set `file` with the client's public keys (private_key_jwt)")
	f.StringArrayVar(&spec.tags, "tag", nil, "tag seen by policy, e.g. trusted (repeatable)")
	return cmd
}

// buildClient validates spec, with the same rules as dynamic registration
// (RFC 7591 §2 via oauth.ClientMetadata.Validate), against the registered
// resources and returns the client and its new secret ("" when it has none).
func buildClient(spec clientSpec, resources []*store.Resource, now time.Time) (*store.Client, string, error) {
	if strings.TrimSpace(spec.name) == "" {
		return nil, "", errors.New("--name must not be empty")
	}
	id := spec.id
	if id == "" {
		id = token.NewID(nil)
	} else if err := validateClientID(id); err != nil {
		return nil, "", err
	}

	method := spec.authMethod
	switch {
	case spec.public && method != "" && method != oauth.AuthMethodNone:
		return nil, "", fmt.Errorf("--public conflicts with --auth-method %s", method)
	case spec.public:
		method = oauth.AuthMethodNone
	case method == "":
		method = oauth.AuthMethodClientSecretBasic
	}
	appType := spec.applicationType
	if appType == "" && method == oauth.AuthMethodNone {
		// RFC 8252 §8.4: clients that cannot keep a secret are typically
		// native apps, which may use loopback and private-use redirects.
		// Otherwise validation infers it from the redirect URIs.
		appType = oauth.ApplicationTypeNative
	}

	grants := spec.grantTypes
	if len(grants) == 0 {
		switch {
		case len(spec.redirectURIs) > 0:
			grants = []string{oauth.GrantAuthorizationCode, oauth.GrantRefreshToken}
		case method == oauth.AuthMethodNone:
			return nil, "", errors.New("a public client needs --redirect-uri: the authorization_code grant is the only one it may use")
		default:
			grants = []string{oauth.GrantClientCredentials}
		}
	}
	served := server.GrantTypes()
	for _, g := range grants {
		if !slices.ContainsFunc(served, func(s oauth.SupportedGrant) bool { return s.Type == g }) {
			return nil, "", fmt.Errorf("unsupported --grant-type %q (want %s)", g, grantTypeNames(served))
		}
	}
	if slices.Contains(grants, oauth.GrantAuthorizationCode) && len(spec.redirectURIs) == 0 {
		return nil, "", errors.New("the authorization_code grant needs at least one --redirect-uri")
	}

	scopes, oe := oauth.ParseScope(strings.Join(spec.scopes, " "))
	if oe != nil {
		return nil, "", fmt.Errorf("--scope: %s", oe.Description)
	}
	for _, s := range scopes {
		if !resourcesOffer(resources, s) {
			return nil, "", fmt.Errorf("scope %q is not offered by any registered resource (add it with 'agentid resources add')", s)
		}
	}
	var defaultResource string
	if spec.resource != "" {
		uri, oe := oauth.CanonicalResource(spec.resource)
		if oe != nil {
			return nil, "", fmt.Errorf("--resource: %s", oe.Description)
		}
		if !slices.ContainsFunc(resources, func(r *store.Resource) bool { return r.URI == uri }) {
			return nil, "", fmt.Errorf("--resource %s is not a registered resource (add it with 'agentid resources add')", uri)
		}
		defaultResource = uri
	}
	for _, t := range spec.tags {
		if err := validateTag(t); err != nil {
			return nil, "", err
		}
	}

	m := &oauth.ClientMetadata{
		RedirectURIs:            spec.redirectURIs,
		TokenEndpointAuthMethod: method,
		GrantTypes:              grants,
		ClientName:              spec.name,
		Scope:                   oauth.FormatScope(scopes),
		JWKS:                    spec.jwks,
		ApplicationType:         appType,
	}
	if oe := m.Validate(served); oe != nil {
		return nil, "", fmt.Errorf("invalid client: %s", oe.Description)
	}

	cl := &store.Client{
		TenantID:                store.DefaultTenant,
		ID:                      id,
		Name:                    m.ClientName,
		RedirectURIs:            m.RedirectURIs,
		GrantTypes:              m.GrantTypes,
		ResponseTypes:           m.ResponseTypes,
		TokenEndpointAuthMethod: m.TokenEndpointAuthMethod,
		ApplicationType:         m.ApplicationType,
		Scopes:                  scopes,
		RequestedScopes:         scopes,
		DefaultResource:         defaultResource,
		JWKS:                    string(m.JWKS),
		RegistrationMethod:      store.RegistrationManual,
		Tags:                    spec.tags,
		CreatedAt:               now,
		UpdatedAt:               now,
	}
	var secret string
	if method == oauth.AuthMethodClientSecretBasic || method == oauth.AuthMethodClientSecretPost {
		// DESIGN.md §5: a generated, 256-bit secret, stored as SHA-256.
		s, err := token.NewHandle(nil, "")
		if err != nil {
			return nil, "", err
		}
		secret = s
		cl.SecretHash = token.Hash(secret)
	}
	return cl, secret, nil
}

// applyCeiling sets cl's ceiling to the requested scopes the policy's
// register action allows, as for any registration; denied scopes are named
// on stderr, and a client that may hold none of what it asked for is
// refused.
func applyCeiling(ctx context.Context, cmd *cobra.Command, st store.Store, cl *store.Client, resources []*store.Resource) (*policy.Ceiling, error) {
	e, err := policy.New(ctx, policy.Options{Store: st, Logger: adminLogger(cmd)})
	if err != nil {
		return nil, err
	}
	got, err := e.Ceiling(ctx, cl, resources, policy.Context{})
	if err != nil {
		return nil, err
	}
	for _, d := range got.Denied {
		by := "no policy permits it"
		if len(d.PolicyIDs) > 0 {
			by = "forbidden by " + strings.Join(d.PolicyIDs, ", ")
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "policy keeps scope %s from this client (%s)\n", d.Scope, by)
	}
	if got.Bounded && len(got.Scopes) == 0 {
		return nil, errors.New("the policy allows this client none of the requested scopes (see 'agentid policy explain --action register')")
	}
	cl.Scopes = got.Scopes
	return got, nil
}

func resourcesOffer(resources []*store.Resource, scope string) bool {
	for _, r := range resources {
		for _, s := range r.Scopes {
			if s.Name == scope {
				return true
			}
		}
	}
	return false
}

// validateClientID accepts 1–128 RFC 3986 unreserved characters: client ids
// travel in URLs (/register/{id}), form bodies and HTTP Basic credentials,
// where anything else needs escaping that clients get wrong.
func validateClientID(id string) error {
	if len(id) == 0 || len(id) > 128 {
		return fmt.Errorf("--id must be 1 to 128 characters")
	}
	for i := 0; i < len(id); i++ {
		if !isUnreserved(id[i]) {
			return fmt.Errorf("--id may contain only letters, digits, '-', '.', '_' and '~'")
		}
	}
	return nil
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// validateTag accepts 1–64 printable ASCII characters without spaces.
func validateTag(t string) error {
	if len(t) == 0 || len(t) > 64 {
		return fmt.Errorf("--tag %q must be 1 to 64 characters", t)
	}
	for i := 0; i < len(t); i++ {
		if t[i] <= ' ' || t[i] > '~' {
			return fmt.Errorf("--tag %q must be printable ASCII without spaces", t)
		}
	}
	return nil
}

func (c *cli) newClientsListCmd(asJSON *bool) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List clients",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				cls, err := st.ListClients(ctx, store.DefaultTenant)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if *asJSON {
					vs := make([]*clientJSON, 0, len(cls))
					for _, cl := range cls {
						vs = append(vs, clientView(cl))
					}
					return writeJSON(out, vs)
				}
				t := newTable(out, "CLIENT_ID", "NAME", "AUTH_METHOD", "GRANT_TYPES", "REGISTRATION", "STATUS", "CREATED")
				for _, cl := range cls {
					t.row(cl.ID, cl.Name, cl.TokenEndpointAuthMethod, list(cl.GrantTypes), cl.RegistrationMethod, status(cl.Disabled), timeText(cl.CreatedAt))
				}
				return t.flush()
			})
		},
	}
}

func (c *cli) newClientsShowCmd(asJSON *bool) *cobra.Command {
	return &cobra.Command{
		Use:   "show CLIENT_ID",
		Short: "Show one client",
		Args:  exactArgs("CLIENT_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				cl, err := getClient(ctx, st, args[0])
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(cmd.OutOrStdout(), clientView(cl))
				}
				return printClient(cmd.OutOrStdout(), cl, "")
			})
		},
	}
}

// newClientsSetDisabledCmd builds `clients disable` (disable true) or
// `clients enable`. A disabled client can get no new tokens.
func (c *cli) newClientsSetDisabledCmd(asJSON *bool, disable bool) *cobra.Command {
	verb, done := "enable", "enabled"
	short := "Enable a disabled client again"
	if disable {
		verb, done = "disable", "disabled"
		short = "Disable a client: it gets no new tokens and its tokens are revoked"
	}
	return &cobra.Command{
		Use:   verb + " CLIENT_ID",
		Short: short,
		Args:  exactArgs("CLIENT_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				cl, err := getClient(ctx, st, args[0])
				if err != nil {
					return err
				}
				if cl.Disabled != disable {
					now := time.Now()
					ev := audit.NewClientUpdated(adminMeta(now), audit.ClientUpdatedFields{ClientID: cl.ID, Change: done})
					cl, err = st.UpdateClient(ctx, cl.TenantID, cl.ID, func(cl *store.Client) error {
						cl.Disabled, cl.UpdatedAt = disable, now
						return nil
					}, ev)
					if err != nil {
						return fmt.Errorf("updating the client: %w", err)
					}
				}
				if disable {
					// After the disable commits the hub issues nothing more
					// to the client (the store checks it on every issuance),
					// so this reaches every token it ever got. Repeating
					// the command repeats it.
					now := time.Now()
					if err := st.RevokeClientTokens(ctx, cl.TenantID, cl.ID, now, audit.NewClientTokensRevoked(adminMeta(now), cl.ID, "disabled")); err != nil {
						return fmt.Errorf("revoking the client's tokens: %w", err)
					}
				}
				if *asJSON {
					return writeJSON(cmd.OutOrStdout(), clientView(cl))
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "client %s %s\n", cl.ID, done)
				return err
			})
		},
	}
}

// newClientsTagCmd builds `clients tag` (add true) or `clients untag`. Tags
// are what policy reads about a client ("trusted", "cc:<scope>"), so the
// client's ceiling is recomputed from the scopes it asked for, in the same
// transaction and audit event (client.updated) as the tag change.
func (c *cli) newClientsTagCmd(asJSON *bool, add bool) *cobra.Command {
	verb, short := "untag", "Remove tags from a client; its ceiling is recomputed"
	if add {
		verb, short = "tag", "Tag a client (e.g. trusted); its ceiling is recomputed"
	}
	return &cobra.Command{
		Use:   verb + " CLIENT_ID TAG...",
		Short: short,
		Long: short + `.

Policies read a client's tags: under the default policy set, "trusted" lets a
self-registered (dynamic registration) agent hold the sensitive scopes it
asked for, and "cc:<scope>" allows a scope under client_credentials. The
client's ceiling (the scopes it may ever hold) is recomputed from the scopes
it asked for at registration. Running hubs issue by the new ceiling within a
few seconds; access tokens already issued keep their scopes until they
expire, and refreshed ones follow the new ceiling.`,
		Example: "  agentid clients " + verb + " dcr-1 trusted",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usageErrorf(cmd, "%s takes CLIENT_ID TAG..., got %d argument(s)", cmd.CommandPath(), len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			id, tags := args[0], args[1:]
			for _, t := range tags {
				if err := validateTag(t); err != nil {
					return err
				}
			}
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				e, err := policy.New(ctx, policy.Options{Store: st, Logger: adminLogger(cmd)})
				if err != nil {
					return err
				}
				m := adminMeta(time.Now())
				var addTags, removeTags []string
				if add {
					addTags = tags
				} else {
					removeTags = tags
				}
				cl, ch, err := e.TagClient(ctx, id, addTags, removeTags, &m)
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("no client with id %q", id)
				}
				if err != nil {
					return fmt.Errorf("updating the client: %w", err)
				}
				out := cmd.OutOrStdout()
				if *asJSON {
					return writeJSON(out, clientView(cl))
				}
				if !ch.Changed() {
					fmt.Fprintf(out, "client %s unchanged\n", cl.ID)
				}
				fmt.Fprintf(out, "client %s tags: %s\n", cl.ID, orNone(cl.Tags))
				if len(cl.Scopes) == 0 && len(cl.RequestedScopes) == 0 {
					fmt.Fprintln(out, "ceiling: none (bound only by resources and policy)")
				} else {
					fmt.Fprintf(out, "ceiling: %s", orNone(cl.Scopes))
					if len(ch.Added) > 0 {
						fmt.Fprintf(out, " (added %s)", strings.Join(ch.Added, " "))
					}
					if len(ch.Removed) > 0 {
						fmt.Fprintf(out, " (removed %s)", strings.Join(ch.Removed, " "))
					}
					fmt.Fprintln(out)
				}
				return nil
			})
		},
	}
}

func (c *cli) newClientsDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete CLIENT_ID",
		Short: "Delete a client and revoke every token issued to it",
		Args:  exactArgs("CLIENT_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				now := time.Now()
				ev := audit.NewClientDeleted(adminMeta(now), args[0])
				if err := st.DeleteClient(ctx, store.DefaultTenant, args[0], now, ev); err != nil {
					if errors.Is(err, store.ErrNotFound) {
						return fmt.Errorf("no client with id %q", args[0])
					}
					return fmt.Errorf("deleting the client: %w", err)
				}
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "client %s deleted; its tokens are revoked\n", args[0])
				return err
			})
		},
	}
}

func getClient(ctx context.Context, st store.Store, id string) (*store.Client, error) {
	cl, err := st.GetClient(ctx, store.DefaultTenant, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("no client with id %q", id)
	}
	return cl, err
}

// adminMeta is the audit metadata of an admin command. The actor is the
// CLI and, when known, the operating-system account that ran it.
func adminMeta(now time.Time) audit.Meta {
	m := audit.Meta{TenantID: store.DefaultTenant, Time: now, Actor: audit.ActorCLI}
	if u, err := user.Current(); err == nil {
		m.OSUser = u.Username
	}
	return m
}

// clientJSON is a client as `--json` shows it: never a secret hash.
type clientJSON struct {
	ClientID string `json:"client_id"`
	// ClientSecret appears once, in the output of `clients add`.
	ClientSecret            string     `json:"client_secret,omitempty"`
	Name                    string     `json:"name"`
	Public                  bool       `json:"public"`
	TokenEndpointAuthMethod string     `json:"token_endpoint_auth_method"`
	ApplicationType         string     `json:"application_type"`
	RedirectURIs            []string   `json:"redirect_uris"`
	GrantTypes              []string   `json:"grant_types"`
	ResponseTypes           []string   `json:"response_types"`
	Scopes                  []string   `json:"scopes"`
	RequestedScopes         []string   `json:"requested_scopes"`
	DefaultResource         string     `json:"default_resource,omitempty"`
	Tags                    []string   `json:"tags"`
	RegistrationMethod      string     `json:"registration_method"`
	Disabled                bool       `json:"disabled"`
	SecretExpiresAt         *time.Time `json:"secret_expires_at,omitempty"`
	CreatedAt               *time.Time `json:"created_at,omitempty"`
	UpdatedAt               *time.Time `json:"updated_at,omitempty"`
}

func clientView(cl *store.Client) *clientJSON {
	return &clientJSON{
		ClientID:                cl.ID,
		Name:                    cl.Name,
		Public:                  cl.Public(),
		TokenEndpointAuthMethod: cl.TokenEndpointAuthMethod,
		ApplicationType:         cl.ApplicationType,
		RedirectURIs:            strs(cl.RedirectURIs),
		GrantTypes:              strs(cl.GrantTypes),
		ResponseTypes:           strs(cl.ResponseTypes),
		Scopes:                  strs(cl.Scopes),
		RequestedScopes:         strs(cl.RequestedScopes),
		DefaultResource:         cl.DefaultResource,
		Tags:                    strs(cl.Tags),
		RegistrationMethod:      cl.RegistrationMethod,
		Disabled:                cl.Disabled,
		SecretExpiresAt:         optTime(cl.SecretExpiresAt),
		CreatedAt:               optTime(cl.CreatedAt),
		UpdatedAt:               optTime(cl.UpdatedAt),
	}
}

// printClient writes one client as an aligned key/value list; secret is
// shown when not empty (right after `clients add`).
func printClient(w io.Writer, cl *store.Client, secret string) error {
	kind := "confidential"
	if cl.Public() {
		kind = "public"
	}
	t := newTable(w)
	t.row("client_id", cl.ID)
	if secret != "" {
		t.row("client_secret", secret)
	}
	t.row("name", cl.Name)
	t.row("type", kind)
	t.row("auth_method", cl.TokenEndpointAuthMethod)
	t.row("application_type", cl.ApplicationType)
	t.row("redirect_uris", strings.Join(cl.RedirectURIs, " "))
	t.row("grant_types", strings.Join(cl.GrantTypes, " "))
	t.row("scopes", strings.Join(cl.Scopes, " "))
	t.row("requested_scopes", strings.Join(cl.RequestedScopes, " "))
	t.row("default_resource", cl.DefaultResource)
	t.row("tags", strings.Join(cl.Tags, " "))
	t.row("registration", cl.RegistrationMethod)
	t.row("status", status(cl.Disabled))
	t.row("created", timeText(cl.CreatedAt))
	t.row("updated", timeText(cl.UpdatedAt))
	return t.flush()
}

func status(disabled bool) string {
	if disabled {
		return "disabled"
	}
	return "enabled"
}
