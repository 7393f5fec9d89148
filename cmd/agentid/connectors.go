package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/config"
	"github.com/agentid/agentid/internal/connectors"
	"github.com/agentid/agentid/internal/connectors/saml"
	"github.com/agentid/agentid/internal/store"
)

func (c *cli) newConnectorsCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "connectors",
		Short: "Let people sign in through your identity provider (OpenID Connect or SAML 2.0)",
		Long: `A connector is an upstream OpenID Connect provider (Okta, Entra ID, Keycloak,
Google Workspace, another agentid hub) people sign in through. The login page
offers a button per enabled connector; an email address typed there, or an
authorization request's login_hint, whose domain is one of a connector's
--email-domain goes straight to it. A person signing in the first time becomes
a user of the connector's tenant; every sign-in refreshes their name, email,
groups and roles from the provider's ID token.

Register the hub at the provider as a confidential web client with the
redirect URI <issuer>/login/connectors/<ID>/callback, the authorization code
grant and PKCE. The client secret is never stored in clear: --client-secret-file
stores the file's path (the hub reads it at each sign-in); --client-secret-stdin
or --client-secret-env seal it with the key-encryption key.

A SAML 2.0 connector (--type saml --idp-metadata-file FILE) reads the identity
provider's metadata (its entity id, single sign-on URL and signing certificate,
the only one trusted); give the provider the hub's service-provider metadata
at <issuer>/login/saml/<ID>/metadata. Its --*-claim flags name SAML attributes.

Connectors in the config file (connectors:) are added or updated at every
serve start. Every change is audited (connector.created, connector.updated).`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	addJSONFlag(cmd, &asJSON)
	cmd.AddCommand(
		c.newConnectorsAddCmd(&asJSON),
		c.newConnectorsListCmd(&asJSON),
		c.newConnectorsShowCmd(&asJSON),
		c.newConnectorsSetDisabledCmd(&asJSON, false),
		c.newConnectorsSetDisabledCmd(&asJSON, true),
	)
	return cmd
}

// connectorFlags are what `connectors add` reads.
type connectorFlags struct {
	tenant, name, issuer, clientID    string
	secretFile, secretEnv             string
	secretStdin                       bool
	scopes, domains, attributes       []string
	username, email, fullName, groups string
	roles                             string
	disabled                          bool
	typ, metadataFile                 string
}

func (c *cli) newConnectorsAddCmd(asJSON *bool) *cobra.Command {
	var f connectorFlags
	cmd := &cobra.Command{
		Use:   "add ID --issuer URL --client-id ID [flags]",
		Short: "Add a connector to an OpenID Connect provider",
		Example: `  agentid connectors add corp --name "Corp SSO" --issuer https://corp.okta.com \
    --client-id 0oa1b2c3 --client-secret-file corp-secret.txt \
    --email-domain corp.example --scope groups --groups-claim groups --attribute department=dept`,
		Args: exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withStore(cmd, func(ctx context.Context, cfg *config.Config, st store.Store) error {
				now := time.Now().UTC()
				conn, err := buildConnector(args[0], &f, cfg, now)
				if err != nil {
					return usageErrorf(cmd, "%v", err)
				}
				secret, sealed, err := c.readSecret(cmd, secretSource{flag: "client-secret", what: "the client secret", env: f.secretEnv, stdin: f.secretStdin})
				if err != nil {
					return usageErrorf(cmd, "%v", err)
				}
				if sealed {
					if f.secretFile != "" {
						return usageErrorf(cmd, "give --client-secret-file or --client-secret-stdin/-env, not both")
					}
					ring, err := loadKeyring(cfg)
					if err != nil {
						return err
					}
					if conn.ClientSecretSealed, err = connectors.SealSecret(ring, rand.Reader, conn.TenantID, conn.ID, secret); err != nil {
						return fmt.Errorf("sealing the client secret: %w", err)
					}
				}
				err = st.CreateConnector(ctx, conn, audit.NewConnectorCreated(connectorMeta(conn, now), audit.ConnectorFieldsOf(conn)))
				switch {
				case errors.Is(err, store.ErrConflict):
					return connectorConflict(ctx, st, conn)
				case err != nil:
					return fmt.Errorf("storing the connector: %w", err)
				}
				out := cmd.OutOrStdout()
				if *asJSON {
					return writeJSON(out, connectorView(conn))
				}
				if err := printConnector(out, conn); err != nil {
					return err
				}
				_, err = fmt.Fprintln(out, "\n"+registerAt(cfg.Issuer, conn))
				return err
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.typ, "type", store.ConnectorOIDC, "oidc or saml")
	fl.StringVar(&f.issuer, "issuer", "", "the provider's issuer `URL` (required; https); saml: its entity id (default: the metadata's)")
	fl.StringVar(&f.clientID, "client-id", "", "the hub's client `id` at the provider (required); saml: the hub's entity id (default: its metadata URL)")
	fl.StringVar(&f.metadataFile, "idp-metadata-file", "", "saml: the identity provider's metadata XML `file` (required; stored, its certificate trusted)")
	fl.StringVar(&f.name, "name", "", "what the login page's button says (default: the ID)")
	fl.StringVar(&f.tenant, "tenant", store.DefaultTenant, "the `tenant` people signing in through it belong to")
	fl.StringVar(&f.secretFile, "client-secret-file", "", "`file` holding the client secret; its path is stored, the hub reads it at sign-in")
	fl.StringVar(&f.secretEnv, "client-secret-env", "", "read the client secret from environment `variable` NAME and seal it")
	fl.BoolVar(&f.secretStdin, "client-secret-stdin", false, "read the client secret from the first line of stdin and seal it")
	fl.StringArrayVar(&f.scopes, "scope", nil, "scope to ask for besides openid (repeatable; default: profile email)")
	fl.StringArrayVar(&f.domains, "email-domain", nil, "email `domain` that routes people to it (repeatable)")
	fl.StringVar(&f.username, "username-claim", "", "claim holding the username (default preferred_username, then email)")
	fl.StringVar(&f.email, "email-claim", "", "claim holding the email address (default email)")
	fl.StringVar(&f.fullName, "name-claim", "", "claim holding the full name (default name)")
	fl.StringVar(&f.groups, "groups-claim", "", "claim holding the groups (default: groups are not mapped)")
	fl.StringVar(&f.roles, "roles-claim", "", "claim holding the roles, a dotted path for nested ones (default: not mapped)")
	fl.StringArrayVar(&f.attributes, "attribute", nil, "user attribute from a claim, `NAME=CLAIM` (repeatable)")
	fl.BoolVar(&f.disabled, "disabled", false, "add it disabled (agentid connectors enable ID offers it)")
	return cmd
}

// buildConnector checks the flags and makes the connector (its secret
// other than by file is the caller's).
func buildConnector(id string, f *connectorFlags, cfg *config.Config, now time.Time) (*store.Connector, error) {
	if !store.ValidConnectorID(id) {
		return nil, fmt.Errorf("ID %q: want 1 to 64 lower-case letters, digits and '-'", id)
	}
	switch f.typ {
	case store.ConnectorSAML:
		if f.metadataFile == "" {
			return nil, errors.New("--idp-metadata-file is required for --type saml")
		}
		if f.secretFile != "" || f.secretEnv != "" || f.secretStdin || len(f.scopes) > 0 {
			return nil, errors.New("a saml connector takes no client secret or --scope")
		}
	case store.ConnectorOIDC:
		if f.metadataFile != "" {
			return nil, errors.New("--idp-metadata-file is for --type saml")
		}
		if f.issuer == "" || f.clientID == "" {
			return nil, errors.New("--issuer and --client-id are required")
		}
		if err := connectors.CheckIssuer(f.issuer, cfg.Login.AllowLoopbackConnectors); err != nil {
			return nil, fmt.Errorf("--issuer: %w", err)
		}
	default:
		return nil, fmt.Errorf("--type %q: want oidc or saml", f.typ)
	}
	conn := &store.Connector{TenantID: f.tenant, ID: id, Type: f.typ, Name: strings.TrimSpace(f.name),
		Issuer: f.issuer, ClientID: f.clientID, Disabled: f.disabled, CreatedAt: now, UpdatedAt: now,
		Claims: store.ClaimMapping{Username: f.username, Email: f.email, Name: f.fullName, Groups: f.groups, Roles: f.roles}}
	if conn.TenantID == "" {
		return nil, errors.New("--tenant must not be empty")
	}
	if conn.Type == store.ConnectorSAML {
		if err := readSAMLMetadata(conn, f.metadataFile); err != nil {
			return nil, fmt.Errorf("--idp-metadata-file: %w", err)
		}
	}
	if f.secretFile != "" {
		abs, err := filepath.Abs(f.secretFile)
		if err != nil {
			return nil, fmt.Errorf("--client-secret-file: %w", err)
		}
		if _, err := config.ReadLimited(abs, maxClientSecret); err != nil {
			return nil, fmt.Errorf("--client-secret-file: %w", err)
		}
		conn.ClientSecretFile = abs
	}
	for _, s := range f.scopes {
		for s := range strings.FieldsSeq(strings.ReplaceAll(s, ",", " ")) {
			if s != "openid" && !slices.Contains(conn.Scopes, s) {
				conn.Scopes = append(conn.Scopes, s)
			}
		}
	}
	for _, d := range f.domains {
		d = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(d), "@"))
		if d == "" || strings.ContainsAny(d, "@ /") {
			return nil, fmt.Errorf("--email-domain %q: want a domain such as corp.example", d)
		}
		if !slices.Contains(conn.EmailDomains, d) {
			conn.EmailDomains = append(conn.EmailDomains, d)
		}
	}
	slices.Sort(conn.EmailDomains)
	for _, a := range f.attributes {
		name, claim, ok := strings.Cut(a, "=")
		if !ok || name == "" || claim == "" {
			return nil, fmt.Errorf("--attribute %q: want NAME=CLAIM", a)
		}
		if conn.Claims.Attributes == nil {
			conn.Claims.Attributes = map[string]string{}
		}
		conn.Claims.Attributes[name] = claim
	}
	return conn, nil
}

// connectorMeta is the admin's audit metadata in the connector's tenant.
func connectorMeta(conn *store.Connector, now time.Time) audit.Meta {
	m := adminMeta(now)
	m.TenantID = conn.TenantID
	return m
}

func connectorConflict(ctx context.Context, st store.Store, conn *store.Connector) error {
	if _, err := st.GetConnector(ctx, conn.ID); err == nil {
		return fmt.Errorf("connector %q already exists", conn.ID)
	}
	all, err := st.ListConnectors(ctx, "")
	if err != nil {
		return err
	}
	for _, o := range all {
		for _, d := range o.EmailDomains {
			if slices.Contains(conn.EmailDomains, d) {
				return fmt.Errorf("email domain %s already routes to connector %q", d, o.ID)
			}
		}
	}
	return fmt.Errorf("connector %q conflicts with an existing one", conn.ID)
}

func getConnector(ctx context.Context, st store.Store, id string) (*store.Connector, error) {
	conn, err := st.GetConnector(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("no connector %q (agentid connectors list)", id)
	}
	return conn, err
}

func (c *cli) newConnectorsListCmd(asJSON *bool) *cobra.Command {
	var tenant string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the connectors",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				list, err := st.ListConnectors(ctx, tenant)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if *asJSON {
					views := make([]connectorJSON, 0, len(list))
					for _, conn := range list {
						views = append(views, connectorView(conn))
					}
					return writeJSON(out, views)
				}
				if len(list) == 0 {
					fmt.Fprintln(out, "no connectors (agentid connectors add ID --issuer URL --client-id ID …)")
					return nil
				}
				t := newTable(out, "ID", "TENANT", "ISSUER", "EMAIL DOMAINS", "STATUS", "UPDATED")
				for _, conn := range list {
					t.row(conn.ID, conn.TenantID, conn.Issuer, commaList(conn.EmailDomains), status(conn.Disabled), timeText(conn.UpdatedAt))
				}
				return t.flush()
			})
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "only this `tenant`'s connectors (default: every tenant's)")
	return cmd
}

func (c *cli) newConnectorsShowCmd(asJSON *bool) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show a connector's settings (never its secret)",
		Args:  exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withStore(cmd, func(ctx context.Context, cfg *config.Config, st store.Store) error {
				conn, err := getConnector(ctx, st, args[0])
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(cmd.OutOrStdout(), connectorView(conn))
				}
				if err := printConnector(cmd.OutOrStdout(), conn); err != nil {
					return err
				}
				if conn.Type == store.ConnectorSAML {
					_, err = fmt.Fprintf(cmd.OutOrStdout(), "sp_metadata    %s/login/saml/%s/metadata\n", cfg.Issuer, conn.ID)
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "redirect_uri   %s/login/connectors/%s/callback\n", cfg.Issuer, conn.ID)
				return err
			})
		},
	}
}

func (c *cli) newConnectorsSetDisabledCmd(asJSON *bool, disable bool) *cobra.Command {
	verb, done, short := "enable", audit.ChangeEnabled, "Offer a disabled connector on the login page again"
	if disable {
		verb, done, short = "disable", audit.ChangeDisabled, "Stop signing people in through a connector, keeping its settings"
	}
	return &cobra.Command{
		Use:   verb + " ID",
		Short: short,
		Args:  exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				conn, err := getConnector(ctx, st, args[0])
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if conn.Disabled != disable {
					now := time.Now().UTC()
					conn.Disabled, conn.UpdatedAt = disable, now
					if err := st.UpdateConnector(ctx, conn, audit.NewConnectorUpdated(connectorMeta(conn, now), audit.ConnectorFieldsOf(conn), done)); err != nil {
						return fmt.Errorf("updating the connector: %w", err)
					}
				} else if !*asJSON {
					_, err := fmt.Fprintf(out, "connector %s already %s\n", conn.ID, done)
					return err
				}
				if *asJSON {
					return writeJSON(out, connectorView(conn))
				}
				_, err = fmt.Fprintf(out, "connector %s %s\n", conn.ID, done)
				return err
			})
		},
	}
}

// connectorJSON is a connector as --json shows it: how the secret is
// kept, never the secret.
type connectorJSON struct {
	ID               string            `json:"id"`
	Tenant           string            `json:"tenant"`
	Type             string            `json:"type"`
	Name             string            `json:"name,omitempty"`
	Issuer           string            `json:"issuer"`
	ClientID         string            `json:"client_id"`
	ClientAuth       string            `json:"client_auth"`
	ClientSecretFile string            `json:"client_secret_file,omitempty"`
	Scopes           []string          `json:"scopes"`
	EmailDomains     []string          `json:"email_domains"`
	Claims           map[string]string `json:"claims"`
	Attributes       map[string]string `json:"attributes"`
	Disabled         bool              `json:"disabled"`
	CreatedAt        time.Time         `json:"created_at"`
	UpdatedAt        time.Time         `json:"updated_at"`
}

func connectorView(conn *store.Connector) connectorJSON {
	claims := map[string]string{}
	for k, v := range map[string]string{"username": conn.Claims.Username, "email": conn.Claims.Email, "name": conn.Claims.Name,
		"groups": conn.Claims.Groups, "roles": conn.Claims.Roles} {
		if v != "" {
			claims[k] = v
		}
	}
	attrs := maps.Clone(conn.Claims.Attributes)
	if attrs == nil {
		attrs = map[string]string{}
	}
	return connectorJSON{ID: conn.ID, Tenant: conn.TenantID, Type: conn.Type, Name: conn.Name, Issuer: conn.Issuer,
		ClientID: conn.ClientID, ClientAuth: audit.ConnectorFieldsOf(conn).ClientAuth, ClientSecretFile: conn.ClientSecretFile,
		Scopes: strs(conn.Scopes), EmailDomains: strs(conn.EmailDomains), Claims: claims, Attributes: attrs,
		Disabled: conn.Disabled, CreatedAt: conn.CreatedAt, UpdatedAt: conn.UpdatedAt}
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func printConnector(w io.Writer, conn *store.Connector) error {
	t := newTable(w)
	t.row("id", conn.ID)
	t.row("name", or(conn.Name, conn.ID))
	t.row("tenant", conn.TenantID)
	t.row("type", conn.Type)
	t.row("issuer", conn.Issuer)
	t.row("client_id", conn.ClientID)
	auth := audit.ConnectorFieldsOf(conn).ClientAuth
	if conn.ClientSecretFile != "" {
		auth += " " + conn.ClientSecretFile
	}
	t.row("client_auth", auth)
	t.row("scopes", "openid "+or(strings.Join(conn.Scopes, " "), "profile email"))
	t.row("email_domains", or(commaList(conn.EmailDomains), "none"))
	m := conn.Claims
	t.row("username_claim", or(m.Username, connectors.DefaultUsernameClaim+" (then email)"))
	t.row("email_claim", or(m.Email, connectors.DefaultEmailClaim))
	t.row("name_claim", or(m.Name, connectors.DefaultNameClaim))
	t.row("groups_claim", or(m.Groups, "not mapped"))
	t.row("roles_claim", or(m.Roles, "not mapped"))
	for _, name := range slices.Sorted(maps.Keys(m.Attributes)) {
		t.row("attribute", name+" = "+m.Attributes[name])
	}
	t.row("status", status(conn.Disabled))
	t.row("updated", timeText(conn.UpdatedAt))
	return t.flush()
}

// syncConnectors makes the store's connectors match the config file's
// connectors: missing ones are created, changed ones updated (the file
// wins over a CLI change to a connector it names), each with its audit
// event; connectors the file does not name are left alone.
func syncConnectors(ctx context.Context, st store.Store, cfgs []config.ConnectorConfig, log *slog.Logger) error {
	for _, cc := range cfgs {
		now := time.Now().UTC()
		want := &store.Connector{TenantID: or(cc.Tenant, store.DefaultTenant), ID: cc.ID, Type: or(cc.Type, store.ConnectorOIDC),
			Name: cc.Name, Issuer: cc.Issuer, ClientID: cc.ClientID, ClientSecretFile: cc.ClientSecretFile,
			Scopes: cc.Scopes, EmailDomains: slices.Sorted(slices.Values(cc.EmailDomains)), Disabled: cc.Disabled,
			Claims: store.ClaimMapping{Username: cc.Claims.Username, Email: cc.Claims.Email, Name: cc.Claims.Name,
				Groups: cc.Claims.Groups, Roles: cc.Claims.Roles, Attributes: cc.Claims.Attributes},
			CreatedAt: now, UpdatedAt: now}
		if len(want.EmailDomains) == 0 {
			want.EmailDomains = nil
		}
		if want.Type == store.ConnectorSAML {
			if err := readSAMLMetadata(want, cc.IdPMetadataFile); err != nil {
				return fmt.Errorf("connectors: %q idp_metadata_file: %w", cc.ID, err)
			}
		}
		if want.ClientSecretFile != "" {
			// Read now so that a missing file fails the start, not the
			// first person's sign-in; stored absolute, as the CLI does.
			abs, err := filepath.Abs(want.ClientSecretFile)
			if err == nil {
				_, err = config.ReadLimited(abs, maxClientSecret)
			}
			if err != nil {
				return fmt.Errorf("connectors: %q client_secret_file: %w", cc.ID, err)
			}
			want.ClientSecretFile = abs
		}
		have, err := st.GetConnector(ctx, cc.ID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			if err := st.CreateConnector(ctx, want, audit.NewConnectorCreated(connectorMeta(want, now), audit.ConnectorFieldsOf(want))); err != nil {
				return fmt.Errorf("connectors: adding %q from the config file: %w", cc.ID, err)
			}
			log.InfoContext(ctx, "connector added from the config file", "connector", cc.ID)
			continue
		case err != nil:
			return fmt.Errorf("connectors: %w", err)
		case have.TenantID != want.TenantID:
			return fmt.Errorf("connectors: %q belongs to tenant %s, the config file says %s; a connector cannot move", cc.ID, have.TenantID, want.TenantID)
		case have.Issuer != want.Issuer || have.Type != want.Type:
			// Its users are keyed by the provider's subject, which names a
			// person only at that provider (OpenID Connect Core §5.7).
			return fmt.Errorf("connectors: %q is the %s provider %s, the config file says %s %s; a connector's users belong to its provider: add a connector with another id",
				cc.ID, have.Type, have.Issuer, want.Type, want.Issuer)
		}
		probe := *want
		probe.CreatedAt, probe.UpdatedAt = have.CreatedAt, have.UpdatedAt
		if sameConnector(&probe, have) {
			continue
		}
		want.CreatedAt = have.CreatedAt
		change := "settings"
		if probe.Disabled != have.Disabled {
			probe.Disabled = have.Disabled
			if sameConnector(&probe, have) {
				change = map[bool]string{true: audit.ChangeDisabled, false: audit.ChangeEnabled}[want.Disabled]
			}
		}
		if err := st.UpdateConnector(ctx, want, audit.NewConnectorUpdated(connectorMeta(want, now), audit.ConnectorFieldsOf(want), change)); err != nil {
			return fmt.Errorf("connectors: updating %q from the config file: %w", cc.ID, err)
		}
		log.InfoContext(ctx, "connector updated from the config file", "connector", cc.ID, "change", change)
	}
	return nil
}

// sameConnector compares connectors treating nil and empty lists and
// maps alike.
func sameConnector(a, b *store.Connector) bool {
	norm := func(c store.Connector) store.Connector {
		c.Scopes, c.EmailDomains = strs(c.Scopes), strs(c.EmailDomains)
		if len(c.ClientSecretSealed) == 0 {
			c.ClientSecretSealed = nil
		}
		if len(c.Claims.Attributes) == 0 {
			c.Claims.Attributes = nil
		}
		c.CreatedAt, c.UpdatedAt = time.Time{}, time.Time{}
		return c
	}
	return reflect.DeepEqual(norm(*a), norm(*b))
}

// maxSAMLMetadata bounds an identity provider's metadata file.
const maxSAMLMetadata = 1 << 20

// readSAMLMetadata reads and checks a SAML identity provider's metadata
// into conn: the XML itself is stored (its signing certificate is what
// the connector trusts), and the issuer is the provider's entity id.
func readSAMLMetadata(conn *store.Connector, file string) error {
	b, err := config.ReadLimited(file, maxSAMLMetadata)
	if err != nil {
		return err
	}
	entityID, err := saml.CheckIdPMetadata(b, conn.Issuer)
	if err != nil {
		return err
	}
	conn.Issuer, conn.SAMLMetadata = entityID, string(b)
	return nil
}

// registerAt says what to register at the provider for conn.
func registerAt(issuer string, conn *store.Connector) string {
	if conn.Type == store.ConnectorSAML {
		return fmt.Sprintf("Give the identity provider this service provider's metadata: %s/login/saml/%s/metadata\n"+
			"(entity id %s, assertion consumer service %s/login/saml/%s/acs, HTTP-POST; signed assertions, persistent NameID)",
			issuer, conn.ID, or(conn.ClientID, issuer+"/login/saml/"+conn.ID+"/metadata"), issuer, conn.ID)
	}
	return fmt.Sprintf("Register this redirect URI at the provider: %s/login/connectors/%s/callback", issuer, conn.ID)
}
