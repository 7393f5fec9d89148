package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/user"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/clients"
	"github.com/agentid/agentid/internal/config"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/store"
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
		c.newClientsApproveCmd(&asJSON),
		c.newClientsPruneCmd(&asJSON),
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
change. Without --scope the client is bound only by resources and policy.

Under the default policy set a client_credentials client gets a scope only
with the tag cc:<scope> (--tag cc:notes.read), given by an administrator.`,
		Example: `  agentid clients add --name "Notes Agent" --redirect-uri http://127.0.0.1/callback --public
  agentid clients add --name "Nightly job" --grant-type client_credentials --scope notes.read --tag cc:notes.read`,
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
			reg, err := clientRegistration(spec)
			if err != nil {
				return err
			}
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				e, err := policy.New(ctx, policy.Options{Store: st, Domains: st, Logger: adminLogger(cmd)})
				if err != nil {
					return err
				}
				registrar, err := clients.New(clients.Options{Store: st, Policy: e})
				if err != nil {
					return err
				}
				reg.Audit = adminMeta(time.Time{})
				res, err := registrar.Register(ctx, reg)
				if err != nil {
					return registrationError(err, reg.ClientID)
				}
				cl, secret := res.Client, res.Secret
				for _, d := range res.Ceiling.Denied {
					by := "no policy permits it"
					if len(d.PolicyIDs) > 0 {
						by = "forbidden by " + strings.Join(d.PolicyIDs, ", ")
					}
					fmt.Fprintf(cmd.ErrOrStderr(), "policy keeps scope %s from this client (%s)\n", d.Scope, by)
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

// clientRegistration turns the flags of `clients add` into a registration:
// the flags' own rules and defaults here, every rule about the client in
// clients.Register, the same as for dynamic registration.
func clientRegistration(spec clientSpec) (*clients.Registration, error) {
	if strings.TrimSpace(spec.name) == "" {
		return nil, errors.New("--name must not be empty")
	}
	method := spec.authMethod
	switch {
	case spec.public && method != "" && method != oauth.AuthMethodNone:
		return nil, fmt.Errorf("--public conflicts with --auth-method %s", method)
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
			return nil, errors.New("a public client needs --redirect-uri: the authorization_code grant is the only one it may use")
		default:
			grants = []string{oauth.GrantClientCredentials}
		}
	}
	scopes, oe := oauth.ParseScope(strings.Join(spec.scopes, " "))
	if oe != nil {
		return nil, fmt.Errorf("--scope: %s", oe.Description)
	}
	return &clients.Registration{
		Method: clients.Admin,
		Metadata: &oauth.ClientMetadata{
			RedirectURIs:            spec.redirectURIs,
			TokenEndpointAuthMethod: method,
			GrantTypes:              grants,
			ClientName:              spec.name,
			Scope:                   oauth.FormatScope(scopes),
			JWKS:                    spec.jwks,
			ApplicationType:         appType,
		},
		GrantTypes:      server.GrantTypes(),
		ClientID:        spec.id,
		DefaultResource: spec.resource,
		Tags:            spec.tags,
	}, nil
}

// registrationError says why a registration was refused, in the words of
// the rule that refused it.
func registrationError(err error, id string) error {
	var oe *oauth.Error
	switch {
	case errors.As(err, &oe):
		return fmt.Errorf("invalid client: %s", oe.Description)
	case errors.Is(err, store.ErrConflict):
		return fmt.Errorf("a client with id %q already exists", id)
	}
	return fmt.Errorf("storing the client: %w", err)
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
				t := newTable(out, "CLIENT_ID", "NAME", "AUTH_METHOD", "GRANT_TYPES", "REGISTRATION", "STATUS", "CREATED", "LAST_USED")
				for _, cl := range cls {
					t.row(cl.ID, cl.Name, cl.TokenEndpointAuthMethod, list(cl.GrantTypes), cl.RegistrationMethod, clientStatus(cl), timeText(cl.CreatedAt), lastUsed(cl))
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
				// Enabling a deprovisioned agent makes it active again
				// (its consents stay revoked: people consent anew).
				reprovision := !disable && cl.Status == store.ClientDeprovisioned
				if cl.Disabled != disable || reprovision {
					now := time.Now()
					ev := audit.NewClientUpdated(adminMeta(now).WithAgent(cl), audit.ClientUpdatedFields{ClientID: cl.ID, Change: done})
					cl, err = st.UpdateClient(ctx, cl.TenantID, cl.ID, func(cl *store.Client) error {
						cl.Disabled, cl.UpdatedAt = disable, now
						if !disable && cl.Status == store.ClientDeprovisioned {
							cl.Status = store.ClientActive
						}
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
					if err := st.RevokeClientTokens(ctx, cl.TenantID, cl.ID, now, audit.NewClientTokensRevoked(adminMeta(now).WithAgent(cl), cl.ID, "disabled")); err != nil {
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
asked for, and "cc:<scope>" allows a scope under client_credentials.
"skip-continue" lets a public native client be re-authorized without the
one-click "Continue" page (docs/policy.md, "Tags the hub reads itself"). The
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
				if err := clients.ValidTag(t); err != nil {
					return err
				}
			}
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				e, err := policy.New(ctx, policy.Options{Store: st, Domains: st, Logger: adminLogger(cmd)})
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
	ClientSecret            string   `json:"client_secret,omitempty"`
	Name                    string   `json:"name"`
	Public                  bool     `json:"public"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	ApplicationType         string   `json:"application_type"`
	RedirectURIs            []string `json:"redirect_uris"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	Scopes                  []string `json:"scopes"`
	RequestedScopes         []string `json:"requested_scopes"`
	DefaultResource         string   `json:"default_resource,omitempty"`
	Tags                    []string `json:"tags"`
	RegistrationMethod      string   `json:"registration_method"`
	Disabled                bool     `json:"disabled"`
	// Status is "active", "pending" (held for an admin's approval) or
	// "deprovisioned" (agentid agents deprovision).
	Status                  string     `json:"status"`
	SoftwareStatementIssuer string     `json:"software_statement_issuer,omitempty"`
	LastUsedAt              *time.Time `json:"last_used_at,omitempty"`
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
		Status:                  orActive(cl.Status),
		SoftwareStatementIssuer: cl.SoftwareStatementIssuer,
		LastUsedAt:              optTime(cl.LastUsedAt),
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
	if cl.SoftwareStatementIssuer != "" {
		t.row("software_statement", cl.SoftwareStatementIssuer)
	}
	t.row("status", clientStatus(cl))
	t.row("created", timeText(cl.CreatedAt))
	t.row("last_used", lastUsed(cl))
	t.row("updated", timeText(cl.UpdatedAt))
	return t.flush()
}

// clientStatus is how lists show a client's state: deprovisioned, disabled,
// pending (held for approval) or enabled.
func clientStatus(cl *store.Client) string {
	switch {
	case cl.Status == store.ClientDeprovisioned:
		return store.ClientDeprovisioned
	case cl.Disabled:
		return "disabled"
	case cl.Pending():
		return "pending"
	}
	return "enabled"
}

func status(disabled bool) string {
	if disabled {
		return "disabled"
	}
	return "enabled"
}

func orActive(s string) string {
	if s == "" {
		return store.ClientActive
	}
	return s
}

// lastUsed is when the client last got a token ("never"), recorded to
// within about an hour.
func lastUsed(cl *store.Client) string {
	if cl.LastUsedAt.IsZero() {
		return "never"
	}
	return timeText(cl.LastUsedAt)
}
