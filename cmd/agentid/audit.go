package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/config"
	"github.com/agentid/agentid/internal/store"
)

// newAuditCmd is `agentid audit`: reading the trail (list, tail, export;
// this file) and its integrity (verify, prune; auditchain.go).
func (c *cli) newAuditCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Read, follow, export, verify and prune the audit trail; show its sinks",
		Long: `Read, follow and export the audit trail: every change to agents, people, consents,
tokens and the hub's configuration (docs/audit-events.md describes every event
type); verify its hash chain and prune old events; show the streaming sinks' lag.

Filters (list, tail, export): --tenant (default: default), --agent (its own events
and the credential retrievals made for it), --client, --user (id or username),
--type (an event type, or a prefix such as 'token.*'), --resource, --provider,
--outcome (success, failure, denied), --since and --until (an RFC 3339 time or a
duration before now, such as 24h; since inclusive, until exclusive).`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	addJSONFlag(cmd, &asJSON)
	cmd.AddCommand(c.auditQueryCommands(&asJSON)...)
	cmd.AddCommand(c.auditChainCommands(&asJSON)...)
	cmd.AddCommand(c.newAuditSinksCmd(&asJSON))
	return cmd
}

// auditQueryCommands are the audit subcommands that read the trail.
func (c *cli) auditQueryCommands(asJSON *bool) []*cobra.Command {
	return []*cobra.Command{c.newAuditListCmd(asJSON), c.newAuditTailCmd(asJSON), c.newAuditExportCmd()}
}

// auditFilterFlags registers the filter flags on cmd; cursor adds
// --before and --after.
func auditFilterFlags(cmd *cobra.Command, q *audit.Query, cursor bool) {
	fs := cmd.Flags()
	fs.StringVar(&q.Tenant, "tenant", store.DefaultTenant, "only events of this `tenant`")
	fs.StringVar(&q.Client, "client", "", "only events whose client is this `client_id`")
	fs.StringVar(&q.Agent, "agent", "", "only events of this agent (`client_id`): its own and those an MCP server recorded for it")
	fs.StringVar(&q.User, "user", "", "only events about this `user` (id or username)")
	fs.StringVar(&q.Type, "type", "", "only events of this `type`, or of every type starting with a prefix ending in * ('token.*')")
	fs.StringVar(&q.Resource, "resource", "", "only events about this resource `URI`")
	fs.StringVar(&q.Provider, "provider", "", "only events naming this downstream `provider`")
	fs.StringVar(&q.Outcome, "outcome", "", "only events with this `outcome`: success, failure or denied")
	fs.StringVar(&q.Since, "since", "", "only events at or after this `time` (RFC 3339, or a duration before now: 24h)")
	fs.StringVar(&q.Until, "until", "", "only events before this `time` (RFC 3339, or a duration before now)")
	if cursor {
		fs.StringVar(&q.Before, "before", "", "only events with an id below this `id` (the next page of a list)")
		fs.StringVar(&q.After, "after", "", "only events with an id above this `id`")
	}
}

// defaultAuditListLimit is the page of `audit list`.
const defaultAuditListLimit = 50

// auditFilter parses the flags; a bad one is a usage error.
func auditFilter(cmd *cobra.Command, q audit.Query, defaultLimit int) (store.AuditFilter, error) {
	f, err := q.Filter(time.Now(), defaultLimit)
	var qe *audit.QueryError
	if errors.As(err, &qe) {
		var msgs []string
		for _, p := range qe.Problems {
			msgs = append(msgs, "--"+p.Param+" "+p.Reason)
		}
		return f, usageErrorf(cmd, "%s", strings.Join(msgs, "; "))
	}
	return f, err
}

func (c *cli) newAuditListCmd(asJSON *bool) *cobra.Command {
	var q audit.Query
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List audit events, newest first",
		Long: `List audit events, newest first, a page at a time. When the page is full the
next one is named on stderr (--before ID).`,
		Example: `  agentid audit list --client CLIENT_ID --since 24h
  agentid audit list --type 'token.*' --outcome denied --json
  agentid audit list --user alice --before 1234`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := auditFilter(cmd, q, defaultAuditListLimit)
			if err != nil {
				return err
			}
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				if err := resolveAuditUser(ctx, st, &f); err != nil {
					return err
				}
				evs, err := st.ListAudit(ctx, f)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if *asJSON {
					recs := make([]audit.Record, 0, len(evs))
					for _, ev := range evs {
						recs = append(recs, audit.RecordOf(ev))
					}
					if err := writeJSON(out, recs); err != nil {
						return err
					}
				} else {
					t := newTable(out, "ID", "TIME", "TYPE", "OUTCOME", "CLIENT", "USER", "RESOURCE", "IP")
					for _, ev := range evs {
						t.row(fmt.Sprint(ev.ID), timeText(ev.Time), ev.Type, ev.Outcome, ev.ClientID, ev.UserID, ev.Resource, ev.IP)
					}
					if err := t.flush(); err != nil {
						return err
					}
				}
				if len(evs) == f.Limit {
					fmt.Fprintf(cmd.ErrOrStderr(), "more: add --before %d for the next page\n", evs[len(evs)-1].ID)
				}
				return nil
			})
		},
	}
	auditFilterFlags(cmd, &q, true)
	cmd.Flags().StringVar(&q.Limit, "limit", "", fmt.Sprintf("at most this many events (default %d, at most %d)", defaultAuditListLimit, audit.MaxQueryLimit))
	return cmd
}

func (c *cli) newAuditTailCmd(asJSON *bool) *cobra.Command {
	var q audit.Query
	var follow bool
	var lines int
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Show the newest audit events, and with -f follow new ones",
		Long: `Show the newest audit events, oldest of them first, one a line; with -f keep
polling the store and print each new event as it is written, until interrupted.
With --json each line is the event as a JSON object.`,
		Example: `  agentid audit tail -n 20
  agentid audit tail --client CLIENT_ID --json
  # and to keep following: agentid audit tail -f`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if lines < 0 || lines > audit.MaxQueryLimit {
				return usageErrorf(cmd, "--lines must be from 0 to %d", audit.MaxQueryLimit)
			}
			if interval <= 0 {
				return usageErrorf(cmd, "--interval must be positive")
			}
			f, err := auditFilter(cmd, q, 1)
			if err != nil {
				return err
			}
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				if err := resolveAuditUser(ctx, st, &f); err != nil {
					return err
				}
				w := bufio.NewWriter(cmd.OutOrStdout())
				emit := func(ev *store.AuditEvent) error {
					if err := writeEventLine(w, ev, *asJSON); err != nil {
						return err
					}
					return w.Flush()
				}
				// The newest lines events (at least one, to know where
				// following starts), printed oldest first.
				f.Limit = max(lines, 1)
				evs, err := st.ListAudit(ctx, f)
				if err != nil {
					return err
				}
				// Following starts below what was read, so that an event
				// committed late among those ids is not missed.
				var after int64
				var seen []int64
				for _, ev := range evs {
					seen = append(seen, ev.ID)
					after = ev.ID - 1
				}
				evs = evs[:min(lines, len(evs))]
				slices.Reverse(evs)
				for _, ev := range evs {
					if err := emit(ev); err != nil {
						return err
					}
				}
				if !follow {
					return nil
				}
				fw := &audit.Follower{Store: st, Filter: f, Interval: interval, Delivered: seen}
				return fw.Run(ctx, after, emit)
			})
		},
	}
	auditFilterFlags(cmd, &q, false)
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new events as they are written")
	cmd.Flags().IntVarP(&lines, "lines", "n", 10, "how many of the newest events to show first")
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "how often to poll the store when following")
	return cmd
}

// resolveAuditUser lets --user name a person by username: a value that is
// no user id but is a username of the tenant becomes that user's id.
func resolveAuditUser(ctx context.Context, st store.Store, f *store.AuditFilter) error {
	if f.UserID == "" {
		return nil
	}
	tenant := f.TenantID
	if tenant == "" {
		tenant = store.DefaultTenant
	}
	if _, err := st.GetUser(ctx, tenant, f.UserID); err == nil || !errors.Is(err, store.ErrNotFound) {
		return err
	}
	u, err := st.GetUserByUsername(ctx, tenant, f.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil // a user deleted since keeps their events under the id
	}
	if err != nil {
		return err
	}
	f.UserID = u.ID
	return nil
}

// writeEventLine writes ev as one line: JSON, or the columns that say
// what happened followed by the details.
func writeEventLine(w io.Writer, ev *store.AuditEvent, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(audit.RecordOf(ev))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s %s %s", ev.ID, timeText(ev.Time), cell(ev.Type), cell(ev.Outcome))
	for _, kv := range [][2]string{{"tenant", ev.TenantID}, {"client", ev.ClientID}, {"user", ev.UserID}, {"resource", ev.Resource}, {"ip", ev.IP}} {
		if kv[1] != "" {
			fmt.Fprintf(&b, " %s=%s", kv[0], cell(kv[1]))
		}
	}
	if len(ev.Scopes) > 0 {
		fmt.Fprintf(&b, " scopes=%s", cell(list(ev.Scopes)))
	}
	d := ev.StoredDetails()
	for _, k := range sortedKeys(d) {
		fmt.Fprintf(&b, " %s=%s", cell(k), strings.ReplaceAll(cell(d[k]), " ", ","))
	}
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// exportPage is how many events export reads at a time.
const exportPage = 500

func (c *cli) newAuditExportCmd() *cobra.Command {
	var q audit.Query
	var format string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write the audit trail to stdout, one JSON event a line",
		Long: `Write every matching audit event to stdout, oldest first, one JSON object a line:
--format ndjson writes agentid's own form (docs/audit-events.md), --format ocsf
the OCSF 1.8.0 event of the event's class, ready for a SIEM.`,
		Example: `  agentid audit export --format ocsf --since 2026-12-01T00:00:00Z
  agentid audit export --format ndjson --type 'connection.*' --since 24h`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var encode func(*store.AuditEvent) any
			switch format {
			case "ndjson":
				encode = func(ev *store.AuditEvent) any { return audit.RecordOf(ev) }
			case "ocsf":
				encode = func(ev *store.AuditEvent) any { return audit.OCSF(ev) }
			default:
				return usageErrorf(cmd, "--format must be ndjson or ocsf")
			}
			f, err := auditFilter(cmd, q, exportPage)
			if err != nil {
				return err
			}
			f.Ascending = true
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				if err := resolveAuditUser(ctx, st, &f); err != nil {
					return err
				}
				w := bufio.NewWriter(cmd.OutOrStdout())
				enc := json.NewEncoder(w)
				for {
					evs, err := st.ListAudit(ctx, f)
					if err != nil {
						return err
					}
					for _, ev := range evs {
						if err := enc.Encode(encode(ev)); err != nil {
							return err
						}
					}
					if err := w.Flush(); err != nil {
						return err
					}
					if len(evs) < f.Limit {
						return nil
					}
					f.After = evs[len(evs)-1].ID
				}
			})
		},
	}
	auditFilterFlags(cmd, &q, true)
	cmd.Flags().StringVar(&format, "format", "ndjson", "output `format`: ndjson (agentid's events) or ocsf (OCSF 1.8.0)")
	return cmd
}
