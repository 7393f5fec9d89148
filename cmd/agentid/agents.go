package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentid/agentid/internal/clients"
	"github.com/agentid/agentid/internal/config"
	"github.com/agentid/agentid/internal/store"
)

// newAgentsCmd is the agent lifecycle: the inventory over the registered
// clients (`clients` manages their registration), deprovisioning and
// stale agents.
func (c *cli) newAgentsCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "agents",
		Short: "Agent inventory and lifecycle: list, show, deprovision, stale",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRunE,
	}
	addJSONFlag(cmd, &asJSON)
	cmd.AddCommand(
		c.newAgentsListCmd(&asJSON),
		c.newAgentsShowCmd(&asJSON),
		c.newAgentsDeprovisionCmd(&asJSON),
		c.newAgentsStaleCmd(&asJSON),
	)
	return cmd
}

// agentJSON is an inventory entry as `--json` shows it: the client as
// `clients show --json` shows it, and what the inventory adds.
type agentJSON struct {
	*clientJSON
	Status          string     `json:"status"`
	Type            string     `json:"client_type"`
	CIMDHost        string     `json:"cimd_host,omitempty"`
	CreatedIP       string     `json:"created_ip,omitempty"`
	Owner           string     `json:"owner,omitempty"`
	ConsentingUsers []string   `json:"consenting_users"`
	LastTokenAt     *time.Time `json:"last_token_at,omitempty"`
	LastToolCallAt  *time.Time `json:"last_tool_call_at,omitempty"`
	LastTool        string     `json:"last_tool,omitempty"`
	// UnusedSince is set in `agents stale` output.
	UnusedSince *time.Time `json:"unused_since,omitempty"`
	Acted       *bool      `json:"acted,omitempty"`
}

func agentView(a *clients.Agent) *agentJSON {
	return &agentJSON{
		clientJSON: clientView(a.Client), Status: a.Status, Type: a.Type, CIMDHost: a.CIMDHost,
		CreatedIP: a.Client.CreatedIP, Owner: a.Owner, ConsentingUsers: strs(a.ConsentingUsers),
		LastTokenAt: optTime(a.LastTokenAt), LastToolCallAt: optTime(a.LastToolCallAt), LastTool: a.LastTool,
	}
}

func lastToolCall(a *clients.Agent) string {
	if a.LastToolCallAt.IsZero() {
		return "never"
	}
	return timeText(a.LastToolCallAt) + " " + a.LastTool
}

func lastToken(a *clients.Agent) string {
	if a.LastTokenAt.IsZero() {
		return "never"
	}
	return timeText(a.LastTokenAt)
}

func (c *cli) newAgentsListCmd(asJSON *bool) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List every agent with its status, type, registration, last token and last tool call",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				as, err := clients.Inventory(ctx, st, store.DefaultTenant, time.Now())
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if *asJSON {
					vs := make([]*agentJSON, 0, len(as))
					for _, a := range as {
						vs = append(vs, agentView(a))
					}
					return writeJSON(out, vs)
				}
				t := newTable(out, "CLIENT_ID", "NAME", "STATUS", "TYPE", "REGISTRATION", "OWNER", "USERS", "CREATED", "LAST_TOKEN", "LAST_TOOL_CALL")
				for _, a := range as {
					t.row(a.Client.ID, a.Client.Name, a.Status, a.Type, a.Client.RegistrationMethod, dash(a.Owner),
						fmt.Sprint(len(a.ConsentingUsers)), timeText(a.Client.CreatedAt), lastToken(a), lastToolCall(a))
				}
				return t.flush()
			})
		},
	}
}

func (c *cli) newAgentsShowCmd(asJSON *bool) *cobra.Command {
	return &cobra.Command{
		Use:   "show CLIENT_ID",
		Short: "Show one agent: registration, ceiling, consenting users, last token and tool call, status",
		Args:  exactArgs("CLIENT_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				a, err := clients.InventoryAgent(ctx, st, store.DefaultTenant, args[0], time.Now())
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("no agent with id %q", args[0])
				}
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(cmd.OutOrStdout(), agentView(a))
				}
				return printAgent(cmd.OutOrStdout(), a)
			})
		},
	}
}

func printAgent(w io.Writer, a *clients.Agent) error {
	cl := a.Client
	t := newTable(w)
	t.row("client_id", cl.ID)
	t.row("name", cl.Name)
	t.row("status", a.Status)
	t.row("type", a.Type)
	t.row("registration", cl.RegistrationMethod)
	if a.CIMDHost != "" {
		t.row("cimd_host", a.CIMDHost)
	}
	if cl.SoftwareStatementIssuer != "" {
		t.row("software_statement", cl.SoftwareStatementIssuer)
	}
	if cl.FederatedIssuer != "" {
		t.row("federated_issuer", cl.FederatedIssuer)
	}
	t.row("auth_method", cl.TokenEndpointAuthMethod)
	t.row("grant_types", strings.Join(cl.GrantTypes, " "))
	ceiling := strings.Join(cl.Scopes, " ")
	if len(cl.Scopes) == 0 && len(cl.RequestedScopes) == 0 {
		ceiling = "(bound only by resources and policy)"
	}
	t.row("ceiling", ceiling)
	t.row("tags", strings.Join(cl.Tags, " "))
	t.row("owner", dash(a.Owner))
	t.row("consenting_users", strings.Join(a.ConsentingUsers, " "))
	t.row("created", timeText(cl.CreatedAt))
	t.row("created_ip", dash(cl.CreatedIP))
	t.row("last_token", lastToken(a))
	t.row("last_tool_call", lastToolCall(a))
	return t.flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (c *cli) newAgentsDeprovisionCmd(asJSON *bool) *cobra.Command {
	return &cobra.Command{
		Use:   "deprovision CLIENT_ID",
		Short: "Switch an agent off for good: disable it, revoke its consents and tokens",
		Long: `Deprovision an agent in one step: the client is disabled, every consent
given to it is revoked, every refresh token and access token issued to it is
revoked (access tokens are denylisted until they expire, so introspection
reports them inactive), and its status becomes deprovisioned. With the agent
disabled, no resource server can retrieve a vault credential on its tokens.
Each step writes its audit event. Running it again changes nothing; an
interrupted run is completed by running it again.

'agentid clients enable' brings a deprovisioned agent back (without its
consents: people consent again).`,
		Args: exactArgs("CLIENT_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				res, err := clients.Deprovision(ctx, st, adminMeta(time.Time{}), store.DefaultTenant, args[0], time.Now())
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("no agent with id %q", args[0])
				}
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if *asJSON {
					return writeJSON(out, struct {
						ClientID string `json:"client_id"`
						Status   string `json:"status"`
						Changed  bool   `json:"changed"`
					}{res.Client.ID, clients.AgentStatus(res.Client), res.Changed})
				}
				if !res.Changed {
					_, err = fmt.Fprintf(out, "agent %s was already deprovisioned; nothing changed\n", res.Client.ID)
					return err
				}
				_, err = fmt.Fprintf(out, "agent %s deprovisioned: disabled, its consents and tokens revoked\n", res.Client.ID)
				return err
			})
		},
	}
}

func (c *cli) newAgentsStaleCmd(asJSON *bool) *cobra.Command {
	var (
		unusedFor time.Duration
		action    string
		dryRun    bool
	)
	cmd := &cobra.Command{
		Use:   "stale --unused-for DURATION [--action disable|delete] [--dry-run]",
		Short: "Report agents unused for a while; disable or delete them when asked",
		Long: `Report the agents no token was issued to for --unused-for (never one: since
their registration), whatever their registration method; deprovisioned agents
are left out. Without --action this is a report and changes nothing.
--action disable disables each (and revokes its tokens, as 'clients disable');
--action delete deletes each (as 'clients delete'). --dry-run shows what the
action would reach. Self-registered clients also expire on their own
('clients prune'); this is the operator's choice over every agent.`,
		Example: `  agentid agents stale --unused-for 720h
  agentid agents stale --unused-for 2160h --action disable`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "unused-for"); err != nil {
				return err
			}
			if unusedFor <= 0 {
				return usageErrorf(cmd, "--unused-for must be positive, e.g. 720h")
			}
			if action != clients.StaleDisable && action != clients.StaleDelete && action != "" {
				return usageErrorf(cmd, "--action is %s or %s, not %q", clients.StaleDisable, clients.StaleDelete, action)
			}
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				found, err := clients.Stale(ctx, st, clients.StaleOptions{
					UnusedFor: unusedFor, Action: action, DryRun: dryRun, Audit: adminMeta(time.Time{}),
				})
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if *asJSON {
					vs := make([]*agentJSON, 0, len(found))
					for _, s := range found {
						v := agentView(s.Agent)
						v.UnusedSince = optTime(s.UnusedSince)
						acted := s.Acted
						v.Acted = &acted
						vs = append(vs, v)
					}
					return writeJSON(out, vs)
				}
				if len(found) == 0 {
					_, err := fmt.Fprintf(out, "no agent unused for %s\n", unusedFor)
					return err
				}
				t := newTable(out, "CLIENT_ID", "NAME", "STATUS", "REGISTRATION", "UNUSED_SINCE", "ACTION")
				for _, s := range found {
					t.row(s.Client.ID, s.Client.Name, s.Status, s.Client.RegistrationMethod, timeText(s.UnusedSince), staleActionText(action, dryRun, s))
				}
				return t.flush()
			})
		},
	}
	f := cmd.Flags()
	f.DurationVar(&unusedFor, "unused-for", 0, "how long without a token makes an agent stale, e.g. 720h (required)")
	f.StringVar(&action, "action", "", "what to do with them: disable or delete (default: report only)")
	f.BoolVar(&dryRun, "dry-run", false, "with --action, show what it would reach and change nothing")
	return cmd
}

func staleActionText(action string, dryRun bool, s *clients.StaleAgent) string {
	switch {
	case action == "":
		return "-"
	case dryRun:
		return "would " + action
	case s.Acted && action == clients.StaleDisable:
		return "disabled"
	case s.Acted:
		return "deleted"
	}
	return "already disabled"
}
