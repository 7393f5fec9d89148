package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentid/agentid/internal/config"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/vault"
)

// connectionPage is how many connections one list query reads.
const connectionPage = 500

var connectionStatuses = []string{store.ConnectionActive, store.ConnectionRefreshing, store.ConnectionNeedsReauth, store.ConnectionRevoked}

func (c *cli) newConnectionsCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "connections",
		Short: "List, add, rotate and revoke the credentials held for downstream providers",
		Long: `A connection is one credential for one provider, held by a person (or by the
tenant, for an org-wide key). These commands never show a credential.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	addJSONFlag(cmd, &asJSON)
	cmd.AddCommand(c.newConnectionsListCmd(&asJSON), c.newConnectionsAddKeyCmd(&asJSON), c.newConnectionsRotateCmd(), c.newConnectionsRevokeCmd())
	return cmd
}

// allConnections pages through every connection f selects.
func allConnections(ctx context.Context, st store.Store, f store.ConnectionFilter) ([]*store.Connection, error) {
	var out []*store.Connection
	f.Limit = connectionPage
	for {
		cs, err := st.ListConnections(ctx, f)
		if err != nil {
			return nil, fmt.Errorf("listing connections: %w", err)
		}
		out = append(out, cs...)
		if len(cs) < connectionPage {
			return out, nil
		}
		f.After = cs[len(cs)-1].ID
	}
}

func (c *cli) newConnectionsListCmd(asJSON *bool) *cobra.Command {
	var (
		provider, username, status string
		tenantOwned                bool
	)
	cmd := &cobra.Command{
		Use:   "list [--provider ID] [--user USERNAME | --tenant] [--status STATUS]",
		Short: "List connections (never their credentials)",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if username != "" && tenantOwned {
				return usageErrorf(cmd, "--user and --tenant exclude each other")
			}
			if status != "" && !slices.Contains(connectionStatuses, status) {
				return fmt.Errorf("--status must be one of %s, got %q", list(connectionStatuses), status)
			}
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				f := store.ConnectionFilter{TenantID: store.DefaultTenant}
				if provider != "" {
					if _, err := getProvider(ctx, st, provider); err != nil {
						return err
					}
					f.ProviderID = provider
				}
				if username != "" {
					u, err := c.getUser(ctx, st, username)
					if err != nil {
						return err
					}
					f.OwnerKind, f.OwnerID = store.OwnerUser, u.ID
				}
				if tenantOwned {
					f.OwnerKind, f.OwnerID = store.OwnerTenant, store.DefaultTenant
				}
				if status != "" {
					f.Statuses = []string{status}
				}
				cs, err := allConnections(ctx, st, f)
				if err != nil {
					return err
				}
				names, err := ownerNames(ctx, st, cs)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if *asJSON {
					vs := make([]*connectionJSON, 0, len(cs))
					for _, cn := range cs {
						vs = append(vs, connectionView(cn, names))
					}
					return writeJSON(out, vs)
				}
				t := newTable(out, "ID", "PROVIDER", "OWNER", "LABEL", "STATUS", "SCOPES", "EXPIRES", "LAST_USED")
				for _, cn := range cs {
					t.row(cn.ID, cn.ProviderID, ownerText(cn, names), cn.Label, cn.Status, list(cn.Scopes), timeText(cn.ExpiresAt), timeText(cn.LastUsedAt))
				}
				return t.flush()
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&provider, "provider", "", "only connections to the provider `ID`")
	f.StringVar(&username, "user", "", "only connections of the user `USERNAME`")
	f.BoolVar(&tenantOwned, "tenant", false, "only the tenant's own (org-wide) connections")
	f.StringVar(&status, "status", "", "only connections in `STATUS`: "+list(connectionStatuses))
	return cmd
}

// ownerNames maps the user ids owning cs to their usernames.
func ownerNames(ctx context.Context, st store.Store, cs []*store.Connection) (map[string]string, error) {
	names := map[string]string{}
	for _, cn := range cs {
		if cn.OwnerKind != store.OwnerUser {
			continue
		}
		if _, done := names[cn.OwnerID]; done {
			continue
		}
		u, err := st.GetUser(ctx, cn.TenantID, cn.OwnerID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			names[cn.OwnerID] = ""
		case err != nil:
			return nil, err
		default:
			names[cn.OwnerID] = u.Username
		}
	}
	return names, nil
}

func ownerText(cn *store.Connection, names map[string]string) string {
	if cn.OwnerKind == store.OwnerTenant {
		return "tenant"
	}
	if n := names[cn.OwnerID]; n != "" {
		return "user:" + n
	}
	return "user:" + cn.OwnerID
}

// connectionJSON is a connection as `--json` shows it: no token, key,
// data key or ciphertext.
type connectionJSON struct {
	ID              string     `json:"id"`
	Provider        string     `json:"provider"`
	OwnerKind       string     `json:"owner_kind"`
	OwnerID         string     `json:"owner_id"`
	Username        string     `json:"username,omitempty"`
	Label           string     `json:"label,omitempty"`
	Status          string     `json:"status"`
	Scopes          []string   `json:"scopes"`
	KEK             string     `json:"kek,omitempty"`
	ExpiresAt       *time.Time `json:"expires_at,omitempty"`
	LastRefreshedAt *time.Time `json:"last_refreshed_at,omitempty"`
	LastUsedAt      *time.Time `json:"last_used_at,omitempty"`
	PreviousUntil   *time.Time `json:"previous_key_until,omitempty"`
	Failures        int        `json:"refresh_failures,omitempty"`
	CreatedAt       *time.Time `json:"created_at,omitempty"`
}

func connectionView(cn *store.Connection, names map[string]string) *connectionJSON {
	v := &connectionJSON{
		ID: cn.ID, Provider: cn.ProviderID, OwnerKind: cn.OwnerKind, OwnerID: cn.OwnerID, Label: cn.Label,
		Status: cn.Status, Scopes: strs(cn.Scopes), KEK: cn.KEKID,
		ExpiresAt: optTime(cn.ExpiresAt), LastRefreshedAt: optTime(cn.LastRefreshedAt), LastUsedAt: optTime(cn.LastUsedAt),
		Failures: cn.Failures, CreatedAt: optTime(cn.CreatedAt),
	}
	if cn.OwnerKind == store.OwnerUser {
		v.Username = names[cn.OwnerID]
	}
	if len(cn.PreviousSecret) > 0 {
		v.PreviousUntil = optTime(cn.PreviousUntil)
	}
	return v
}

func (c *cli) newConnectionsRevokeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke CONNECTION_ID",
		Short: "Disconnect a connection: revoke it at the provider and destroy the credential",
		Long: `Disconnect a connection: the provider's revocation endpoint (RFC 7009) is
called when it has one (best effort), then the stored credential is
destroyed. Agents acting for the owner get a connect URL the next time they
need the provider.`,
		Args: exactArgs("CONNECTION_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withStore(cmd, func(ctx context.Context, cfg *config.Config, st store.Store) error {
				cn, v, err := connectionAndVault(ctx, cmd, cfg, st, args[0])
				if err != nil {
					return err
				}
				if err := v.Revoke(ctx, adminMeta(time.Now()), cn.TenantID, cn.ID, "revoked_by_admin"); err != nil {
					if errors.Is(err, store.ErrNotFound) {
						return fmt.Errorf("no connection %s (see 'agentid connections list')", args[0])
					}
					return fmt.Errorf("revoking the connection: %w", err)
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "connection %s (%s) revoked\n", cn.ID, cn.ProviderID)
				return err
			})
		},
	}
}

// keyFlags are the flags that point at an API key: never its value on the
// command line, where it would land in shell history and process lists.
func keyFlags(cmd *cobra.Command, src *secretSource) {
	src.flag, src.what = "key", "the API key"
	f := cmd.Flags()
	f.StringVar(&src.file, "key-file", "", "read the API key from the file `PATH`")
	f.StringVar(&src.env, "key-env", "", "read the API key from the environment variable `NAME`")
	f.BoolVar(&src.stdin, "key-stdin", false, "read the API key from the first line of stdin")
}

// readKey reads the API key src points at; one of its flags is required.
func (c *cli) readKey(cmd *cobra.Command, src secretSource) (string, error) {
	key, ok, err := c.readSecret(cmd, src)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", usageErrorf(cmd, "give the key with --key-file, --key-env or --key-stdin")
	}
	return key, nil
}

func (c *cli) newConnectionsAddKeyCmd(asJSON *bool) *cobra.Command {
	var (
		username, label string
		tenantOwned     bool
		src             secretSource
	)
	cmd := &cobra.Command{
		Use:   "add-key PROVIDER (--user USERNAME | --tenant) (--key-file PATH | --key-env NAME | --key-stdin) [--label TEXT]",
		Short: "Store an API key for a person, or for the whole tenant",
		Long: `Store an API key for an api_key provider as a new connection: a person's own
(--user), or the tenant's org-wide key (--tenant), which MCP servers get for
every person of the tenant who has no key of their own. The key is sealed in
the vault and never shown again.`,
		Example: `  agentid connections add-key weather --tenant --key-file ./weather.key --label "org key"`,
		Args:    exactArgs("PROVIDER"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (username == "") == !tenantOwned {
				return usageErrorf(cmd, "give exactly one of --user and --tenant")
			}
			key, err := c.readKey(cmd, src)
			if err != nil {
				return err
			}
			return c.withStore(cmd, func(ctx context.Context, cfg *config.Config, st store.Store) error {
				p, err := getProvider(ctx, st, args[0])
				if err != nil {
					return err
				}
				if p.Kind != store.ProviderAPIKey {
					return fmt.Errorf("provider %s is %s; API keys go to api_key providers (people connect %s at /connections)", p.ID, p.Kind, p.ID)
				}
				owner := vault.Owner{Kind: store.OwnerTenant, ID: store.DefaultTenant}
				if username != "" {
					u, err := c.getUser(ctx, st, username)
					if err != nil {
						return err
					}
					owner = vault.Owner{Kind: store.OwnerUser, ID: u.ID}
				}
				v, err := newVault(cmd, cfg, st)
				if err != nil {
					return err
				}
				cn, err := v.SaveAPIKey(ctx, adminMeta(time.Now()), p, owner, label, key)
				if err != nil {
					return fmt.Errorf("storing the key: %w", err)
				}
				names, err := ownerNames(ctx, st, []*store.Connection{cn})
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(cmd.OutOrStdout(), connectionView(cn, names))
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "connection %s (%s, %s) stored\n", cn.ID, cn.ProviderID, ownerText(cn, names))
				return err
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&username, "user", "", "the person the key belongs to (`USERNAME`)")
	f.BoolVar(&tenantOwned, "tenant", false, "the tenant's org-wide key")
	f.StringVar(&label, "label", "", "a name for the key, shown in lists")
	keyFlags(cmd, &src)
	return cmd
}

func (c *cli) newConnectionsRotateCmd() *cobra.Command {
	var (
		overlap time.Duration
		src     secretSource
	)
	cmd := &cobra.Command{
		Use:   "rotate CONNECTION_ID (--key-file PATH | --key-env NAME | --key-stdin) [--overlap DURATION]",
		Short: "Replace an API key; the old one keeps working for an overlap, then is destroyed",
		Long: `Replace the key of an API-key connection. MCP servers get the new key from
now on; the old one is still handed out after the provider refuses the new
one, until the overlap ends (default: the provider's, else 24h), and is then
destroyed.`,
		Args: exactArgs("CONNECTION_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if overlap < 0 {
				return usageErrorf(cmd, "--overlap must not be negative")
			}
			key, err := c.readKey(cmd, src)
			if err != nil {
				return err
			}
			return c.withStore(cmd, func(ctx context.Context, cfg *config.Config, st store.Store) error {
				cn, v, err := connectionAndVault(ctx, cmd, cfg, st, args[0])
				if err != nil {
					return err
				}
				if err := v.RotateAPIKey(ctx, adminMeta(time.Now()), cn.TenantID, cn.ID, key, overlap); err != nil {
					return fmt.Errorf("rotating the key: %w", err)
				}
				rotated, err := st.GetConnection(ctx, cn.TenantID, cn.ID)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "connection %s (%s): new key stored; the old one is destroyed after %s\n",
					cn.ID, cn.ProviderID, timeText(rotated.PreviousUntil))
				return err
			})
		},
	}
	cmd.Flags().DurationVar(&overlap, "overlap", 0, "how long the old key stays retrievable (default: the provider's, else 24h)")
	keyFlags(cmd, &src)
	return cmd
}

// connectionAndVault finds the connection id names, in words an admin can
// act on when there is none, and opens the vault.
func connectionAndVault(ctx context.Context, cmd *cobra.Command, cfg *config.Config, st store.Store, id string) (*store.Connection, *vault.Vault, error) {
	cn, err := st.GetConnection(ctx, store.DefaultTenant, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, fmt.Errorf("no connection %s (see 'agentid connections list')", id)
	}
	if err != nil {
		return nil, nil, err
	}
	v, err := newVault(cmd, cfg, st)
	if err != nil {
		return nil, nil, err
	}
	return cn, v, nil
}
