package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentid/agentid/internal/config"
	"github.com/agentid/agentid/internal/store"
)

// jobLease is one line of `agentid jobs`.
type jobLease struct {
	Job    string    `json:"job"`
	Holder string    `json:"holder"`
	Since  time.Time `json:"since"`
	Until  time.Time `json:"until"`
	// Held is false for a lease that ran out unrenewed: its holder died
	// or lost the database, and another hub takes the job at its next try.
	Held bool `json:"held"`
}

func (c *cli) newJobsCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "jobs",
		Short: "Show which hub process leads each background job",
		Long: `Show the leases of the hub's background jobs (expiry sweeps, the vault's
refresh sweep, the audit sealer): which process (host/pid/id) runs each, since
when, and until when its lease lasts unless renewed. With several hubs on one
PostgreSQL each job runs on one of them at a time; a lease shown as ended was
not renewed (its process died or lost the database) and another hub takes the
job over within seconds. A job with no line is led by no one: no hub runs, or
it stopped cleanly.`,
		Example: "  agentid jobs\n  agentid jobs --json",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				lines, err := jobLeases(ctx, st, time.Now())
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(cmd.OutOrStdout(), lines)
				}
				if len(lines) == 0 {
					_, err := fmt.Fprintln(cmd.OutOrStdout(), "No background job is led right now: no hub runs on this database.")
					return err
				}
				t := newTable(cmd.OutOrStdout(), "JOB", "HOLDER", "SINCE", "UNTIL", "STATE")
				for _, l := range lines {
					state := "held"
					if !l.Held {
						state = "ended"
					}
					t.row(l.Job, l.Holder, timeText(l.Since), timeText(l.Until), state)
				}
				return t.flush()
			})
		},
	}
	addJSONFlag(cmd, &asJSON)
	return cmd
}

// jobLeases reads the job leases as `agentid jobs` shows them at now.
func jobLeases(ctx context.Context, st store.Leases, now time.Time) ([]jobLease, error) {
	ls, err := st.ListLeases(ctx)
	if err != nil {
		return nil, err
	}
	out := []jobLease{}
	for _, l := range ls {
		out = append(out, jobLease{Job: l.Name, Holder: l.Holder, Since: l.Since, Until: l.Until, Held: now.Before(l.Until)})
	}
	return out, nil
}
