package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/config"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
)

// The audit trail's integrity commands: verify and prune (the hash chain,
// docs/design.md "Audit trail integrity").

// auditChainCommands are the audit subcommands of the hash chain.
func (c *cli) auditChainCommands(asJSON *bool) []*cobra.Command {
	return []*cobra.Command{c.newAuditVerifyCmd(asJSON), c.newAuditPruneCmd(asJSON)}
}

func (c *cli) newAuditVerifyCmd(asJSON *bool) *cobra.Command {
	var tenant string
	cmd := &cobra.Command{
		Use:   "verify [--tenant ID]",
		Short: "Walk the audit chain and report the first break",
		Long: `Walk the tenant's audit chain from its first event (or from the anchor the
last prune signed), recompute every event's hash, check that each links to
the one before, and verify every checkpoint's signature with the signing
keys' public halves. The first break is reported with its event id and
what is wrong, and the command exits non-zero. Events the running hub has
not sealed yet (the last second or two) are counted, not checked. The run
is recorded as an audit.verified event.`,
		Example: "  agentid audit verify\n  agentid audit verify --json",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				r, err := verifyChain(ctx, st, tenant)
				if err != nil {
					return err
				}
				m := adminMeta(time.Now())
				m.TenantID = r.TenantID
				if err := st.AppendAudit(ctx, audit.NewVerified(m, r)); err != nil {
					return fmt.Errorf("recording the audit event: %w", err)
				}
				if err := printReport(cmd, *asJSON, r); err != nil {
					return err
				}
				if r.Break != nil {
					return fmt.Errorf("the audit chain of tenant %s is broken at event %d: %s", r.TenantID, r.Break.EventID, r.Break.Reason)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", store.DefaultTenant, "the tenant whose chain to verify")
	return cmd
}

// verifyChain runs audit.Verify with the store's signing keys.
func verifyChain(ctx context.Context, st store.Store, tenant string) (*audit.Report, error) {
	keys, err := st.ListSigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	return audit.Verify(ctx, audit.VerifyOptions{Store: st, TenantID: tenant, Verifier: checkpointVerifier(keys)})
}

// checkpointVerifier checks checkpoints against keys' public halves: the
// verifier needs no KEK.
func checkpointVerifier(keys []*store.SigningKey) audit.CheckpointVerifier {
	return func(jws string) ([]byte, error) {
		p, _, err := token.VerifyCheckpoint(jws, keys)
		if errors.Is(err, token.ErrCheckpointKeyUnknown) {
			return nil, fmt.Errorf("%w: %v", audit.ErrUnknownKey, err)
		}
		return p, err
	}
}

// reportJSON is a verification report as --json shows it.
type reportJSON struct {
	Tenant        string     `json:"tenant"`
	OK            bool       `json:"ok"`
	Events        int64      `json:"events"`
	FirstID       int64      `json:"first_id,omitempty"`
	HeadID        int64      `json:"head_id,omitempty"`
	AnchorID      int64      `json:"anchor_id,omitempty"`
	Checkpoints   int        `json:"checkpoints"`
	SignedThrough int64      `json:"signed_through,omitempty"`
	Unverifiable  int        `json:"unverifiable_checkpoints,omitempty"`
	Unsealed      int64      `json:"unsealed"`
	Break         *breakJSON `json:"break,omitempty"`
}

type breakJSON struct {
	EventID int64  `json:"event_id"`
	Reason  string `json:"reason"`
}

func printReport(cmd *cobra.Command, asJSON bool, r *audit.Report) error {
	out := cmd.OutOrStdout()
	if asJSON {
		v := reportJSON{
			Tenant: r.TenantID, OK: r.Break == nil, Events: r.Events, FirstID: r.FirstID, HeadID: r.HeadID,
			AnchorID: r.AnchorID, Checkpoints: r.Checkpoints, SignedThrough: r.SignedThrough,
			Unverifiable: r.Unverifiable, Unsealed: r.Unsealed,
		}
		if r.Break != nil {
			v.Break = &breakJSON{EventID: r.Break.EventID, Reason: r.Break.Reason}
		}
		return writeJSON(out, v)
	}
	if r.Break != nil {
		_, err := fmt.Fprintf(out, "tenant %s: BROKEN at event %d: %s\n(%d events before it verified)\n",
			r.TenantID, r.Break.EventID, r.Break.Reason, r.Events)
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "tenant %s: chain intact: %d events", r.TenantID, r.Events)
	if r.Events > 0 {
		fmt.Fprintf(&b, " (%d..%d)", r.FirstID, r.HeadID)
	}
	if r.AnchorID != 0 {
		fmt.Fprintf(&b, ", starting at the anchor of the last prune")
	}
	fmt.Fprintf(&b, "; %d checkpoint signature(s) verified", r.Checkpoints)
	if r.SignedThrough > 0 {
		fmt.Fprintf(&b, ", signed through event %d", r.SignedThrough)
	}
	if r.Unverifiable > 0 {
		fmt.Fprintf(&b, "; %d older checkpoint(s) signed by keys since deleted", r.Unverifiable)
	}
	fmt.Fprintf(&b, "; %d event(s) not sealed yet\n", r.Unsealed)
	_, err := fmt.Fprint(out, b.String())
	return err
}

func (c *cli) newAuditPruneCmd(asJSON *bool) *cobra.Command {
	var tenant, before string
	cmd := &cobra.Command{
		Use:   "prune --before TIME [--tenant ID]",
		Short: "Delete old audit events, keeping the chain verifiable",
		Long: `Delete the tenant's oldest audit events, those before --before: an RFC 3339
time (2026-01-31T00:00:00Z), a date (2026-01-31, midnight UTC) or an age
(90d, 2160h). Only a prefix of sealed events goes, up to the first event
that is newer, not sealed yet, or the chain head, which always stays. In
the same transaction an audit.pruned event names the first kept event and
its link to the deleted ones, signed with the hub's signing key, so that
'agentid audit verify' still passes. The chain is verified first: a broken
trail is not pruned (the break would be deleted with it).`,
		Example: "  agentid audit prune --before 90d\n  agentid audit prune --before 2026-01-01",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "before"); err != nil {
				return err
			}
			now := time.Now()
			cut, err := parseBefore(before, now)
			if err != nil {
				return usageErrorf(cmd, "--before: %v", err)
			}
			return c.withStore(cmd, func(ctx context.Context, cfg *config.Config, st store.Store) error {
				r, err := verifyChain(ctx, st, tenant)
				if err != nil {
					return err
				}
				if r.Break != nil {
					return fmt.Errorf("the audit chain of tenant %s is broken at event %d (%s); not pruning it: run 'agentid audit verify'", tenant, r.Break.EventID, r.Break.Reason)
				}
				ring, err := loadKeyring(cfg)
				if err != nil {
					return err
				}
				keys, err := token.NewKeys(ctx, token.Options{
					Store: st, Keyring: ring, Algorithm: cfg.Tokens.SigningAlg,
					PrePublish: time.Duration(cfg.Tokens.KeyPrePublish), Logger: adminLogger(cmd),
				})
				if err != nil {
					return fmt.Errorf("loading signing keys: %w", err)
				}
				res, err := audit.Prune(ctx, audit.PruneOptions{
					Store: st, Signer: keys, Issuer: cfg.Issuer, TenantID: tenant, Before: cut, Meta: adminMeta(now),
				})
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if *asJSON {
					return writeJSON(out, struct {
						Tenant   string    `json:"tenant"`
						Before   time.Time `json:"before"`
						Deleted  int64     `json:"deleted"`
						AnchorID int64     `json:"anchor_id,omitempty"`
					}{tenant, cut, res.Deleted, res.AnchorID})
				}
				if res.AnchorID == 0 {
					_, err = fmt.Fprintf(out, "tenant %s: nothing sealed yet; nothing pruned\n", tenant)
					return err
				}
				_, err = fmt.Fprintf(out, "tenant %s: deleted %d event(s) before %s; the chain now starts at event %d, anchored by a signed audit.pruned event\n",
					tenant, res.Deleted, timeText(cut), res.AnchorID)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&before, "before", "", "delete events older than this: RFC 3339 time, date, or age (90d, 2160h)")
	cmd.Flags().StringVar(&tenant, "tenant", store.DefaultTenant, "the tenant whose trail to prune")
	return cmd
}

// parseBefore reads --before: an RFC 3339 time, a date (midnight UTC), or
// an age before now in days (90d) or as a Go duration (2160h).
func parseBefore(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	var age time.Duration
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n > 100*365 {
			return time.Time{}, fmt.Errorf("%q is not a time, a date or an age", s)
		}
		age = time.Duration(n) * 24 * time.Hour
	} else {
		d, err := time.ParseDuration(s)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is not a time, a date or an age", s)
		}
		age = d
	}
	if age <= 0 {
		return time.Time{}, fmt.Errorf("the age %q must be positive", s)
	}
	return now.Add(-age), nil
}
