package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/config"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
)

// Signing key states, as `keys list` shows them.
const (
	keyNext    = "next"    // published in the JWKS, not signing yet
	keyActive  = "active"  // signing
	keyRetired = "retired" // no longer signing, still published for verifiers
	keyExpired = "expired" // past ExpiresAt: out of the JWKS, awaiting deletion
)

// keyState is the state of k at now.
func keyState(k *store.SigningKey, now time.Time) string {
	retired := !k.RetiredAt.IsZero()
	switch {
	case !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt):
		return keyExpired
	// A key retired no later than its activation never signs, even
	// while its activation time is still ahead (rotate --now over a
	// pre-published key).
	case retired && (!now.Before(k.RetiredAt) || !k.RetiredAt.After(k.ActivateAt)):
		return keyRetired
	case now.Before(k.ActivateAt):
		return keyNext
	default:
		return keyActive
	}
}

func (c *cli) newKeysCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "List and rotate access-token signing keys",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRunE,
	}
	addJSONFlag(cmd, &asJSON)
	cmd.AddCommand(c.newKeysListCmd(&asJSON), c.newKeysRotateCmd(&asJSON))
	return cmd
}

func (c *cli) newKeysListCmd(asJSON *bool) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List signing keys with their state (next, active, retired, expired)",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				// The public halves only: listing needs no KEK.
				ks, err := st.ListSigningKeys(ctx)
				if err != nil {
					return err
				}
				return printKeys(cmd, *asJSON, ks, time.Now())
			})
		},
	}
}

func (c *cli) newKeysRotateCmd(asJSON *bool) *cobra.Command {
	var now bool
	cmd := &cobra.Command{
		Use:   "rotate [--now]",
		Short: "Create the next signing key and retire the current one",
		Long: `Create the next signing key. It is published in the JWKS at once and starts
signing after tokens.key_pre_publish (immediately with --now), so that
verifiers caching the JWKS already know it. The current key then stops
signing and stays published until the last token it signed has expired.
Every running hub on the database, each replica, picks the new key up within
2 seconds through the store's change feed: it publishes it (and with --now
signs with it) from then on. Should the feed be unable to read, each hub
re-reads its keys every 30 seconds as well.

--now is for a compromised key: verifiers that cached the JWKS before the
rotation reject tokens signed with the new key until they refetch it.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withStore(cmd, func(ctx context.Context, cfg *config.Config, st store.Store) error {
				ring, err := loadKeyring(cfg)
				if err != nil {
					return err
				}
				keys, err := token.NewKeys(ctx, token.Options{
					Store:      st,
					Keyring:    ring,
					Algorithm:  cfg.Tokens.SigningAlg,
					PrePublish: time.Duration(cfg.Tokens.KeyPrePublish),
					Logger:     adminLogger(cmd),
				})
				if err != nil {
					return fmt.Errorf("loading signing keys: %w", err)
				}
				k, err := keys.Rotate(ctx, now)
				if err != nil {
					return fmt.Errorf("rotating: %w", err)
				}
				// The key store methods take no audit event, so the
				// rotation is recorded right after it, not in its
				// transaction.
				ev := audit.NewSigningKeyRotated(adminMeta(time.Now()), audit.SigningKeyRotatedFields{KID: k.ID, Algorithm: k.Algorithm, ActivateAt: k.ActivateAt})
				if err := st.AppendAudit(ctx, ev); err != nil {
					return fmt.Errorf("key %s created, but recording the audit event failed: %w", k.ID, err)
				}
				ks, err := st.ListSigningKeys(ctx)
				if err != nil {
					return err
				}
				if !*asJSON {
					fmt.Fprintf(cmd.OutOrStdout(), "new key %s (%s) signs from %s\n\n", k.ID, k.Algorithm, timeText(k.ActivateAt))
				}
				return printKeys(cmd, *asJSON, ks, time.Now())
			})
		},
	}
	cmd.Flags().BoolVar(&now, "now", false, "sign with the new key immediately (after a key compromise)")
	return cmd
}

// keyJSON is a signing key as `--json` shows it: public facts only.
type keyJSON struct {
	KID        string     `json:"kid"`
	Alg        string     `json:"alg"`
	State      string     `json:"state"`
	CreatedAt  *time.Time `json:"created_at,omitempty"`
	ActivateAt *time.Time `json:"activate_at,omitempty"`
	RetiredAt  *time.Time `json:"retired_at,omitempty"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
}

func printKeys(cmd *cobra.Command, asJSON bool, ks []*store.SigningKey, now time.Time) error {
	out := cmd.OutOrStdout()
	if asJSON {
		vs := make([]keyJSON, 0, len(ks))
		for _, k := range ks {
			vs = append(vs, keyJSON{
				KID: k.ID, Alg: k.Algorithm, State: keyState(k, now),
				CreatedAt: optTime(k.CreatedAt), ActivateAt: optTime(k.ActivateAt),
				RetiredAt: optTime(k.RetiredAt), ExpiresAt: optTime(k.ExpiresAt),
			})
		}
		return writeJSON(out, vs)
	}
	t := newTable(out, "KID", "ALG", "STATE", "ACTIVATES", "RETIRES", "EXPIRES")
	for _, k := range ks {
		t.row(k.ID, k.Algorithm, keyState(k, now), timeText(k.ActivateAt), timeText(k.RetiredAt), timeText(k.ExpiresAt))
	}
	return t.flush()
}
