package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentid/agentid/internal/config"
	"github.com/agentid/agentid/internal/keyring"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/vault"
)

// KEK states, as `kek status` shows them.
const (
	kekCurrent  = "current"  // seals everything new
	kekPrevious = "previous" // configured for reading (kek.previous, kek.previous_files)
	kekMissing  = "missing"  // wraps rows but is not configured: they do not open
)

func (c *cli) newKEKCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "kek",
		Short: "Rotate the key-encryption key that wraps signing keys and stored credentials",
		Long: `The key-encryption key (KEK) wraps every signing key, provider client secret
and connection data key in the store. To rotate it online:

  1. agentid kek generate --out NEW.key
  2. configure NEW.key as kek.file and the old key in kek.previous_files
     (or kek.previous) on every hub, and restart them
  3. agentid kek rotate      (resumable; run it again after an interruption)
  4. when agentid kek status shows nothing under the old KEK, drop it from
     the configuration

docs/configuration.md describes the settings.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	addJSONFlag(cmd, &asJSON)
	cmd.AddCommand(c.newKEKStatusCmd(&asJSON), c.newKEKRotateCmd(&asJSON), c.newKEKGenerateCmd())
	return cmd
}

// configuredKeyring is the keyring of the configured KEKs, read without
// creating a key file, and the ids it holds.
type configuredKeyring struct {
	ring     *keyring.Keyring
	current  string
	previous []string
}

func (k *configuredKeyring) state(id string) string {
	switch {
	case id == k.current:
		return kekCurrent
	case slices.Contains(k.previous, id):
		return kekPrevious
	}
	return kekMissing
}

// readKeyring is loadKeyring for the kek commands: the current key file
// must exist (a rotation to a key nobody configured would be a mistake).
func readKeyring(cfg *config.Config) (*configuredKeyring, error) {
	var (
		cur keyring.KEK
		err error
	)
	if cfg.KEK.Value != "" {
		if cur, err = keyring.ParseKEK(cfg.KEK.Value); err != nil {
			return nil, fmt.Errorf("kek.value: %w", err)
		}
	} else {
		cur, err = keyring.ReadKEKFile(cfg.KEK.File)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("kek.file: %w (create one with 'agentid kek generate --out %s')", err, cfg.KEK.File)
		}
		if err != nil {
			return nil, fmt.Errorf("kek.file: %w", err)
		}
	}
	prev, err := previousKEKs(cfg.KEK)
	if err != nil {
		return nil, err
	}
	ring, err := keyring.NewKeyring(cur, prev...)
	if err != nil {
		return nil, fmt.Errorf("kek: %w", err)
	}
	k := &configuredKeyring{ring: ring, current: cur.ID}
	for _, p := range prev {
		if p.ID != cur.ID && !slices.Contains(k.previous, p.ID) {
			k.previous = append(k.previous, p.ID)
		}
	}
	return k, nil
}

// kekCount is what one KEK wraps.
type kekCount struct {
	KEK         string `json:"kek"`
	State       string `json:"state"`
	SigningKeys int    `json:"signing_keys"`
	Providers   int    `json:"providers"`
	Connections int    `json:"connections"`
}

func (k *kekCount) total() int { return k.SigningKeys + k.Providers + k.Connections }

// kekCountPage is how many connections one count query reads.
const kekCountPage = 500

// countByKEK counts the rows each KEK wraps: the current KEK and every
// configured one (with zero when they wrap nothing), then any other KEK a
// row names. A ciphertext whose envelope does not parse counts under "?".
func countByKEK(ctx context.Context, st store.Store, k *configuredKeyring) ([]*kekCount, error) {
	return countSealed(ctx, st, k, true)
}

// countSealed is countByKEK, reading the connections only when asked
// (they may be many; signing keys and provider secrets are few).
func countSealed(ctx context.Context, st store.Store, k *configuredKeyring, connections bool) ([]*kekCount, error) {
	byID := map[string]*kekCount{}
	var order []string
	get := func(id string) *kekCount {
		if c := byID[id]; c != nil {
			return c
		}
		c := &kekCount{KEK: id, State: k.state(id)}
		byID[id] = c
		order = append(order, id)
		return c
	}
	envelopeKEK := func(ct []byte) string {
		id, err := keyring.KEKID(ct)
		if err != nil {
			return "?"
		}
		return id
	}
	get(k.current)
	for _, p := range k.previous {
		get(p)
	}
	keys, err := st.ListSigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing signing keys: %w", err)
	}
	for _, sk := range keys {
		get(envelopeKEK(sk.PrivateEnc)).SigningKeys++
	}
	ps, err := st.ListProviders(ctx, store.DefaultTenant)
	if err != nil {
		return nil, fmt.Errorf("listing providers: %w", err)
	}
	for _, p := range ps {
		if len(p.ClientSecret) > 0 {
			get(envelopeKEK(p.ClientSecret)).Providers++
		}
	}
	after := ""
	for connections {
		cs, err := st.ListConnections(ctx, store.ConnectionFilter{TenantID: store.DefaultTenant, After: after, Limit: kekCountPage})
		if err != nil {
			return nil, fmt.Errorf("listing connections: %w", err)
		}
		for _, c := range cs {
			if len(c.DataKey) == 0 {
				continue
			}
			id := c.KEKID
			if id == "" {
				id = envelopeKEK(c.DataKey)
			}
			get(id).Connections++
		}
		if len(cs) < kekCountPage {
			break
		}
		after = cs[len(cs)-1].ID
	}
	out := make([]*kekCount, 0, len(order))
	for _, id := range order {
		out = append(out, byID[id])
	}
	return out, nil
}

func (c *cli) newKEKStatusCmd(asJSON *bool) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Count the signing keys, provider secrets and connections each KEK wraps",
		Long: `Count what each key-encryption key wraps: signing keys, provider client
secrets and connection data keys. The current KEK seals everything new; a
previous KEK is configured for reading until a rotation has moved
everything off it; a missing KEK wraps rows this configuration cannot open.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withStore(cmd, func(ctx context.Context, cfg *config.Config, st store.Store) error {
				k, err := readKeyring(cfg)
				if err != nil {
					return err
				}
				counts, err := countByKEK(ctx, st, k)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if *asJSON {
					return writeJSON(out, counts)
				}
				t := newTable(out, "KEK", "STATE", "SIGNING_KEYS", "PROVIDERS", "CONNECTIONS")
				for _, n := range counts {
					t.row(n.KEK, n.State, fmt.Sprint(n.SigningKeys), fmt.Sprint(n.Providers), fmt.Sprint(n.Connections))
				}
				if err := t.flush(); err != nil {
					return err
				}
				for _, n := range counts {
					if n.State == kekMissing && n.total() > 0 {
						fmt.Fprintf(cmd.ErrOrStderr(), "KEK %s wraps %d rows but is not configured; add it to kek.previous_files or kek.previous\n", n.KEK, n.total())
					}
				}
				return nil
			})
		},
	}
}

// rotateSummary is the result of `kek rotate --json`.
type rotateSummary struct {
	KEK         string `json:"kek"`
	SigningKeys int    `json:"signing_keys"`
	Providers   int    `json:"providers"`
	Connections int    `json:"connections"`
}

func (c *cli) newKEKRotateCmd(asJSON *bool) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate",
		Short: "Re-wrap everything still under a previous KEK with the current one, online",
		Long: `Re-wrap every signing key, provider client secret and connection data key that
is still under a previous KEK with the current KEK. Running hubs keep
working meanwhile: each row is changed by compare-and-set, and the previous
KEKs they hold still open whatever is not re-wrapped yet. Interrupted at any
point (Ctrl-C, a crash, kill -9), it loses nothing and finishes when run
again. It prints a progress line per batch and records one kek.rewrapped
audit event.

Configure the new KEK as the current one (kek.file or kek.value) and the old
one in kek.previous_files or kek.previous first, here and on every hub.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withStore(cmd, func(ctx context.Context, cfg *config.Config, st store.Store) error {
				k, err := readKeyring(cfg)
				if err != nil {
					return err
				}
				return rotateKEK(ctx, cmd, st, k, *asJSON)
			})
		},
	}
}

func rotateKEK(ctx context.Context, cmd *cobra.Command, st store.Store, k *configuredKeyring, asJSON bool) error {
	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
	progressOut := out
	if asJSON {
		progressOut = errOut
	}
	counts, err := countByKEK(ctx, st, k)
	if err != nil {
		return err
	}
	var todo kekCount
	for _, n := range counts {
		if n.KEK == k.current {
			continue
		}
		if n.State == kekMissing && n.total() > 0 {
			return fmt.Errorf("KEK %s wraps %d rows (%d signing keys, %d provider secrets, %d connections) but is not configured; add it to kek.previous_files or kek.previous and run again",
				n.KEK, n.total(), n.SigningKeys, n.Providers, n.Connections)
		}
		todo.SigningKeys += n.SigningKeys
		todo.Providers += n.Providers
		todo.Connections += n.Connections
	}
	if todo.total() == 0 {
		fmt.Fprintf(progressOut, "nothing to re-wrap: everything is under KEK %s\n", k.current)
	} else {
		fmt.Fprintf(progressOut, "re-wrapping under KEK %s: %d signing keys, %d provider secrets, %d connections\n",
			k.current, todo.SigningKeys, todo.Providers, todo.Connections)
	}
	v, err := vault.New(vault.Config{Store: st, Keyring: k.ring, Logger: adminLogger(cmd)})
	if err != nil {
		return err
	}
	var last vault.RewrapProgress
	done, err := v.Rewrap(ctx, adminMeta(time.Now()), func(p vault.RewrapProgress) {
		if p == last {
			return
		}
		last = p
		fmt.Fprintf(progressOut, "re-wrapped %s signing keys, %s provider secrets, %s connections\n",
			ofTotal(p.SigningKeys, todo.SigningKeys), ofTotal(p.Providers, todo.Providers), ofTotal(p.Connections, todo.Connections))
	})
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted after re-wrapping %d signing keys, %d provider secrets and %d connections; run 'agentid kek rotate' again to finish",
				done.SigningKeys, done.Providers, done.Connections)
		}
		return fmt.Errorf("re-wrapping: %w", err)
	}
	if asJSON {
		return writeJSON(out, rotateSummary{KEK: k.current, SigningKeys: done.SigningKeys, Providers: done.Providers, Connections: done.Connections})
	}
	if todo.total() > 0 || done != (vault.RewrapProgress{}) {
		fmt.Fprintf(out, "done: everything is under KEK %s", k.current)
		if len(k.previous) > 0 {
			fmt.Fprintf(out, "; once every hub runs with it, the previous KEKs (%s) can be removed from the configuration", list(k.previous))
		}
		fmt.Fprintln(out)
	}
	return nil
}

// ofTotal renders n of a total counted before the run; rows that appeared
// meanwhile may take n past it.
func ofTotal(n, total int) string {
	if n > total {
		return fmt.Sprint(n)
	}
	return fmt.Sprintf("%d/%d", n, total)
}

func (c *cli) newKEKGenerateCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "generate [--out FILE]",
		Short: "Generate a new KEK: a key file (0600) with --out, else printed to stdout",
		Long: `Generate a new key-encryption key (<id>:<base64 key>, 32 random bytes). With
--out it is written to a new file readable by its owner only (an existing
file is never overwritten); without, it is printed to stdout, for a secret
manager (AGENTID_KEK, kek.value: env:NAME). It changes nothing in the store:
configure the key, then run 'agentid kek rotate'.`,
		Example: `  agentid kek generate --out kek-2027.key`,
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, err := keyring.GenerateKEK(nil)
			if err != nil {
				return err
			}
			if out == "" {
				_, err := fmt.Fprintln(cmd.OutOrStdout(), keyring.FormatKEK(k))
				return err
			}
			if err := writeKEKFile(out, k); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "new KEK %s written to %s\n", k.ID, out)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "write the key to this new `file` (mode 0600) instead of stdout")
	return cmd
}

// writeKEKFile creates path (0600, failing if it exists) holding k.
func writeKEKFile(path string, k keyring.KEK) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("--out: %s already exists; a key file is never overwritten", path)
	}
	if err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("--out: %w", cerr)
		}
		if err != nil {
			os.Remove(path)
		}
	}()
	_, err = io.WriteString(f, "# agentid key-encryption key (KEK): <id>:<base64 key>. Keep it secret and back it up.\n"+keyring.FormatKEK(k)+"\n")
	if err == nil {
		err = f.Sync()
	}
	return err
}

// startKeyring is the keyring serve starts with. On a store that holds no
// sealed signing key or provider secret yet, it is loadKeyring's, which
// creates the KEK file when none is configured. On a store that does, the
// KEKs that sealed them must be configured: a hub started without its KEK
// (a lost kek.file, a replica missing AGENTID_KEK) or with another one
// would otherwise create a new KEK, and on it new keys and secrets, beside
// data nothing can open any more. That is refused, naming the KEKs needed.
// Connections are not read here (there may be many): every store a hub
// has served holds a signing key, which is decisive; agentid kek status
// counts the rest.
func startKeyring(ctx context.Context, st store.Store, cfg *config.Config) (*keyring.Keyring, error) {
	counts, err := countSealed(ctx, st, &configuredKeyring{}, false)
	if err != nil {
		return nil, fmt.Errorf("checking the KEK: %w", err)
	}
	sealed := slices.DeleteFunc(counts, func(n *kekCount) bool { return n.total() == 0 })
	if len(sealed) == 0 {
		return loadKeyring(cfg)
	}
	what := func(ns []*kekCount) string {
		var ids []string
		keys, providers := 0, 0
		for _, n := range ns {
			ids = append(ids, n.KEK)
			keys += n.SigningKeys
			providers += n.Providers
		}
		return fmt.Sprintf("%d signing key(s) and %d provider secret(s) sealed by KEK %s", keys, providers, list(ids))
	}
	const never = "agentid does not create a new KEK over sealed data; configure the KEK that sealed it (kek.file, kek.value or AGENTID_KEK, earlier ones in kek.previous_files or kek.previous), as every replica and the backup's hub had it (docs/operations.md, \"The key-encryption key\")"
	k, err := readKeyring(cfg)
	if _, serr := os.Stat(cfg.KEK.File); err != nil && cfg.KEK.Value == "" && errors.Is(serr, fs.ErrNotExist) {
		return nil, fmt.Errorf("the store holds %s, but the KEK file %s does not exist; %s", what(sealed), cfg.KEK.File, never)
	}
	if err != nil {
		return nil, fmt.Errorf("the store holds %s: %w", what(sealed), err)
	}
	var missing []*kekCount
	for _, n := range sealed {
		if k.state(n.KEK) == kekMissing {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("the store holds %s, which the configured KEK (%s) cannot open; %s", what(missing), list(append([]string{k.current}, k.previous...)), never)
	}
	return k.ring, nil
}
