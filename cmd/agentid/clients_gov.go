package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentid/agentid/internal/clients"
	"github.com/agentid/agentid/internal/config"
	"github.com/agentid/agentid/internal/store"
)

// newClientsApproveCmd builds `clients approve`: a client a hold policy put
// in pending may be authorized and get tokens once an admin approves it.
func (c *cli) newClientsApproveCmd(asJSON *bool) *cobra.Command {
	return &cobra.Command{
		Use:   "approve CLIENT_ID",
		Short: "Approve a pending (held) client so that it can be authorized",
		Long: `Approve a client that a policy's hold action put in pending when it
registered itself (docs/policy.md). Until then the authorization page tells
people it waits for an administrator's approval and the token endpoint
refuses it. The approval is audited (client.updated, change approved).
Approving a client that is not pending changes nothing.`,
		Example: "  agentid clients approve dcr-1",
		Args:    exactArgs("CLIENT_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				before, err := getClient(ctx, st, args[0])
				if err != nil {
					return err
				}
				cl, err := clients.Approve(ctx, st, store.DefaultTenant, args[0], adminMeta(time.Now()))
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("no client with id %q", args[0])
				}
				if err != nil {
					return fmt.Errorf("approving the client: %w", err)
				}
				if *asJSON {
					return writeJSON(cmd.OutOrStdout(), clientView(cl))
				}
				if !before.Pending() {
					_, err = fmt.Fprintf(cmd.OutOrStdout(), "client %s was not pending; nothing changed\n", cl.ID)
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "client %s approved\n", cl.ID)
				return err
			})
		},
	}
}

// newClientsPruneCmd builds `clients prune`: what the hub's hourly job does,
// on demand, or with --dry-run only shown.
func (c *cli) newClientsPruneCmd(asJSON *bool) *cobra.Command {
	var (
		dryRun    bool
		unusedFor time.Duration
	)
	cmd := &cobra.Command{
		Use:   "prune [--dry-run] [--unused-for DURATION]",
		Short: "Remove self-registered clients unused for a while (--dry-run: only show them)",
		Long: `Remove the clients that registered themselves (dynamic registration and
Client ID Metadata Documents) and got no token for --unused-for (default:
registration.client_expiry, 720h), each with a client.expired audit event.
A client that still holds a live refresh or access token or a live consent
is never removed, however long unused; clients an administrator added never
expire. The hub does the same every hour. --dry-run shows what would go and
changes nothing.`,
		Example: "  agentid clients prune --dry-run\n  agentid clients prune --unused-for 168h",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withStore(cmd, func(ctx context.Context, cfg *config.Config, st store.Store) error {
				d := unusedFor
				if !cmd.Flags().Changed("unused-for") {
					d = time.Duration(cfg.Registration.ClientExpiry)
					if d <= 0 {
						return errors.New("registration.client_expiry is 0 (clients never expire); give --unused-for to prune anyway")
					}
				}
				if d <= 0 {
					return errors.New("--unused-for must be positive")
				}
				gone, err := clients.Prune(ctx, st, clients.PruneOptions{
					UnusedFor: d, Now: time.Now(), DryRun: dryRun, Audit: adminMeta(time.Time{}),
				})
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if *asJSON {
					vs := make([]*clientJSON, 0, len(gone))
					for _, cl := range gone {
						vs = append(vs, clientView(cl))
					}
					return writeJSON(out, vs)
				}
				if len(gone) > 0 {
					t := newTable(out, "CLIENT_ID", "NAME", "REGISTRATION", "CREATED", "LAST_USED")
					for _, cl := range gone {
						t.row(cl.ID, cl.Name, cl.RegistrationMethod, timeText(cl.CreatedAt), lastUsed(cl))
					}
					if err := t.flush(); err != nil {
						return err
					}
				}
				verb := "removed"
				if dryRun {
					verb = "would be removed (dry run; nothing changed)"
				}
				_, err = fmt.Fprintf(out, "%d client(s) unused for %s %s\n", len(gone), config.Duration(d), verb)
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "only show which clients would be removed")
	cmd.Flags().DurationVar(&unusedFor, "unused-for", 0, "remove clients unused this long (default registration.client_expiry)")
	return cmd
}
