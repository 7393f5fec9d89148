package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/config"
	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/store"
)

func (c *cli) newDomainsCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "domains",
		Short: "Trust, allow or block the hosts of client ID metadata documents",
		Long: `An agent that identifies itself by a Client ID Metadata Document (its client_id
is the https URL of the document) has the document's host as its verified
domain. Domains decide how far such hosts are trusted:

  trusted  policy may grant sensitive scopes (the default policy lifts its ban
           on sensitive scopes for self-registered agents, as the "trusted" tag does)
  allowed  the default for any host no pattern matches
  blocked  the authorization endpoint refuses the agent before fetching anything

A pattern is a host (app.example.com) or a wildcard over its subdomains
(*.example.com: any subdomain, not example.com itself). The most specific
pattern decides: an exact host beats wildcards, a longer wildcard a shorter one.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	addJSONFlag(cmd, &asJSON)
	cmd.AddCommand(c.newDomainsAddCmd(&asJSON), c.newDomainsListCmd(&asJSON), c.newDomainsRemoveCmd())
	return cmd
}

// domainJSON is a domain as --json shows it.
type domainJSON struct {
	Pattern        string     `json:"pattern"`
	Trust          string     `json:"trust"`
	AllowTextPlain bool       `json:"allow_text_plain"`
	CreatedAt      *time.Time `json:"created_at,omitempty"`
	UpdatedAt      *time.Time `json:"updated_at,omitempty"`
}

func domainView(d *store.Domain) domainJSON {
	return domainJSON{Pattern: d.Pattern, Trust: d.Trust, AllowTextPlain: d.AllowTextPlain, CreatedAt: optTime(d.CreatedAt), UpdatedAt: optTime(d.UpdatedAt)}
}

func (c *cli) newDomainsAddCmd(asJSON *bool) *cobra.Command {
	var (
		trust     string
		textPlain bool
	)
	cmd := &cobra.Command{
		Use:   "add PATTERN --trust trusted|allowed|blocked [--allow-text-plain]",
		Short: "Set the trust of a host or of every subdomain of a domain",
		Long: `Set the trust of a host (app.example.com) or of every subdomain of a domain
(*.example.com). Adding a pattern that exists replaces its trust. The change
is audited (domain.updated) and the ceilings of the clients are recomputed;
running hubs follow within a few seconds.

--allow-text-plain accepts documents served as text/plain from matching hosts
(raw file hosts serve JSON so); otherwise only JSON content types are accepted.`,
		Example: `  agentid domains add '*.example.com' --trust trusted
  agentid domains add bad.example.net --trust blocked
  agentid domains add raw.githubusercontent.com --trust allowed --allow-text-plain`,
		Args: exactArgs("PATTERN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireFlags(cmd, "trust"); err != nil {
				return err
			}
			if !policy.ValidDomainTrust(trust) {
				return usageErrorf(cmd, "--trust must be trusted, allowed or blocked, not %q", trust)
			}
			pattern, err := policy.NormalizeDomainPattern(args[0])
			if err != nil {
				return usageErrorf(cmd, "%v", err)
			}
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				now := time.Now().UTC()
				prev, err := findDomain(ctx, st, pattern)
				if err != nil {
					return err
				}
				d := &store.Domain{TenantID: store.DefaultTenant, Pattern: pattern, Trust: trust, AllowTextPlain: textPlain, CreatedAt: now, UpdatedAt: now}
				f := audit.DomainFields{Pattern: pattern, Trust: trust, AllowTextPlain: textPlain}
				if prev != nil {
					if prev.Trust == trust && prev.AllowTextPlain == textPlain {
						fmt.Fprintf(cmd.OutOrStdout(), "domain %s unchanged: %s\n", pattern, trust)
						return nil
					}
					d.CreatedAt, f.Previous = prev.CreatedAt, prev.Trust
				}
				if err := st.PutDomain(ctx, d, audit.NewDomainUpdated(adminMeta(now), f)); err != nil {
					return err
				}
				chs, err := recomputeCeilings(ctx, cmd, st)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if *asJSON {
					return writeJSON(out, domainView(d))
				}
				extra := ""
				if textPlain {
					extra = " (text/plain documents accepted)"
				}
				fmt.Fprintf(out, "domain %s: %s%s\n", pattern, trust, extra)
				printCeilingChanges(out, chs, "now")
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&trust, "trust", "", "trusted, allowed or blocked")
	cmd.Flags().BoolVar(&textPlain, "allow-text-plain", false, "accept documents served as text/plain from matching hosts")
	return cmd
}

func (c *cli) newDomainsListCmd(asJSON *bool) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the domain patterns and their trust",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				ds, err := st.ListDomains(ctx, store.DefaultTenant)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if *asJSON {
					views := make([]domainJSON, 0, len(ds))
					for _, d := range ds {
						views = append(views, domainView(d))
					}
					return writeJSON(out, views)
				}
				if len(ds) == 0 {
					fmt.Fprintln(out, "no domains: every metadata document host is allowed (agentid domains add PATTERN --trust …)")
					return nil
				}
				t := newTable(out, "PATTERN", "TRUST", "TEXT_PLAIN", "UPDATED")
				for _, d := range ds {
					tp := "no"
					if d.AllowTextPlain {
						tp = "yes"
					}
					t.row(d.Pattern, d.Trust, tp, timeText(d.UpdatedAt))
				}
				return t.flush()
			})
		},
	}
}

func (c *cli) newDomainsRemoveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "remove PATTERN",
		Short: "Remove a domain pattern: its hosts fall back to a wider pattern or allowed",
		Args:  exactArgs("PATTERN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			pattern, err := policy.NormalizeDomainPattern(args[0])
			if err != nil {
				return usageErrorf(cmd, "%v", err)
			}
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				prev, err := findDomain(ctx, st, pattern)
				if err != nil {
					return err
				}
				if prev == nil {
					return fmt.Errorf("no domain pattern %q (agentid domains list shows them)", pattern)
				}
				now := time.Now().UTC()
				ev := audit.NewDomainRemoved(adminMeta(now), audit.DomainFields{Pattern: pattern, Previous: prev.Trust})
				err = st.DeleteDomain(ctx, store.DefaultTenant, pattern, ev)
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("no domain pattern %q (agentid domains list shows them)", pattern)
				}
				if err != nil {
					return err
				}
				chs, err := recomputeCeilings(ctx, cmd, st)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				fmt.Fprintf(out, "domain %s removed (was %s)\n", pattern, prev.Trust)
				printCeilingChanges(out, chs, "now")
				return nil
			})
		},
	}
}

// findDomain returns the stored domain with exactly this pattern, or nil.
func findDomain(ctx context.Context, st store.Store, pattern string) (*store.Domain, error) {
	ds, err := st.ListDomains(ctx, store.DefaultTenant)
	if err != nil {
		return nil, err
	}
	if i := slices.IndexFunc(ds, func(d *store.Domain) bool { return d.Pattern == pattern }); i >= 0 {
		return ds[i], nil
	}
	return nil, nil
}
