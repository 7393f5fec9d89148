package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentid/agentid/internal/config"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/store"
)

// Limits on what `policy validate|apply -f` reads: a policy set is text an
// admin wrote, never megabytes.
const (
	maxPolicyFile     = 1 << 20
	maxPolicyFiles    = 256
	maxPolicySetBytes = 8 << 20
	// policyExt names the files of a policy directory.
	policyExt = ".cedar"
	// maxDryRunDays bounds --days: the audit trail is read from then on.
	maxDryRunDays = 3650
)

func (c *cli) newPolicyCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Manage the Cedar policy set that decides every scope",
		Long: `The central policy layer: Cedar policies decide which scopes an agent may hold
at registration (its ceiling) and which go into each token. Policy sets are
versioned in the store; every running hub picks up a newly applied version
within a few seconds. See docs/policy.md.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	addJSONFlag(cmd, &asJSON)
	cmd.AddCommand(
		c.newPolicyValidateCmd(&asJSON),
		c.newPolicyApplyCmd(&asJSON),
		c.newPolicyListCmd(&asJSON),
		c.newPolicyShowCmd(&asJSON),
		c.newPolicyRollbackCmd(&asJSON),
		c.newPolicyExplainCmd(&asJSON),
	)
	return cmd
}

// policyFiles is a policy set read from disk: file name in the set → text,
// and file name → the path to show in messages.
type policyFiles struct {
	files map[string]string
	paths map[string]string
}

// readPolicyFiles reads a policy set from a directory (its *.cedar files,
// not recursively) or from one file.
func readPolicyFiles(path string) (*policyFiles, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	pf := &policyFiles{files: map[string]string{}, paths: map[string]string{}}
	if !fi.IsDir() {
		b, err := config.ReadLimited(path, maxPolicyFile)
		if err != nil {
			return nil, err
		}
		name := filepath.Base(path)
		pf.files[name], pf.paths[name] = string(b), path
		return pf, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	total := 0
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), policyExt) {
			continue
		}
		if len(pf.files) == maxPolicyFiles {
			return nil, fmt.Errorf("%s holds more than %d %s files", path, maxPolicyFiles, policyExt)
		}
		p := filepath.Join(path, e.Name())
		b, err := config.ReadLimited(p, maxPolicyFile)
		if err != nil {
			return nil, err
		}
		if total += len(b); total > maxPolicySetBytes {
			return nil, fmt.Errorf("the %s files in %s are larger than %d bytes together", policyExt, path, maxPolicySetBytes)
		}
		pf.files[e.Name()], pf.paths[e.Name()] = string(b), p
	}
	if len(pf.files) == 0 {
		return nil, fmt.Errorf("%s holds no %s files", path, policyExt)
	}
	return pf, nil
}

// names returns the set's file names, sorted.
func (pf *policyFiles) names() []string {
	names := make([]string, 0, len(pf.files))
	for n := range pf.files {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// problems returns err's problems located by the paths the files were read
// from, or nil if err is no *policy.ValidationError.
func (pf *policyFiles) problems(err error) []policy.Problem {
	var ve *policy.ValidationError
	if !errors.As(err, &ve) {
		return nil
	}
	out := make([]policy.Problem, len(ve.Problems))
	for i, p := range ve.Problems {
		if path, ok := pf.paths[p.File]; ok {
			p.File = path
		}
		out[i] = p
	}
	return out
}

// invalidSetError lists every problem of a refused policy set, one per
// line, each "file:line:column: message".
type invalidSetError struct{ problems []policy.Problem }

func (e *invalidSetError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "the policy set is invalid (%d problem(s)); nothing was changed:", len(e.problems))
	for _, p := range e.problems {
		b.WriteString("\n  " + p.String())
	}
	return b.String()
}

// flagPolicyPath reads the -f flag's policy set.
func flagPolicyPath(cmd *cobra.Command, path string) (*policyFiles, error) {
	if err := requireFlags(cmd, "file"); err != nil {
		return nil, err
	}
	pf, err := readPolicyFiles(path)
	if err != nil {
		return nil, fmt.Errorf("-f: %w", err)
	}
	return pf, nil
}

type problemJSON struct {
	File     string `json:"file"`
	Line     int    `json:"line"`
	Column   int    `json:"column"`
	PolicyID string `json:"policy_id,omitempty"`
	Message  string `json:"message"`
}

type policyInfoJSON struct {
	ID     string `json:"id"`
	Effect string `json:"effect"`
	File   string `json:"file"`
	Line   int    `json:"line"`
	Column int    `json:"column"`
	Source string `json:"source,omitempty"`
}

func problemsView(ps []policy.Problem) []problemJSON {
	out := make([]problemJSON, len(ps))
	for i, p := range ps {
		out[i] = problemJSON{File: p.File, Line: p.Line, Column: p.Column, PolicyID: p.PolicyID, Message: p.Message}
	}
	return out
}

func policiesView(ps []policy.PolicyInfo, withSource bool) []policyInfoJSON {
	out := make([]policyInfoJSON, len(ps))
	for i, p := range ps {
		out[i] = policyInfoJSON{ID: p.ID, Effect: p.Effect, File: p.File, Line: p.Line, Column: p.Column}
		if withSource {
			out[i].Source = p.Source
		}
	}
	return out
}

func (c *cli) newPolicyValidateCmd(asJSON *bool) *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "validate -f DIR|FILE",
		Short: "Check a policy set against the schema; lists every problem with file:line:column",
		Long: `Parse a policy set (the *.cedar files of DIR, or one FILE) and validate every
policy against the embedded schema, in Cedar's strict mode. Every problem is
reported at once, located file:line:column, and the exit status is non-zero.
Nothing is read from or written to the store.`,
		Example: `  agentid policy validate -f policies/`,
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			pf, err := flagPolicyPath(cmd, path)
			if err != nil {
				return err
			}
			set, err := policy.Compile(pf.files)
			problems := pf.problems(err)
			if err != nil && problems == nil {
				return err
			}
			out := cmd.OutOrStdout()
			if *asJSON {
				v := struct {
					Valid    bool             `json:"valid"`
					Files    []string         `json:"files"`
					Policies []policyInfoJSON `json:"policies"`
					Problems []problemJSON    `json:"problems"`
				}{Valid: err == nil, Files: pf.names(), Policies: []policyInfoJSON{}, Problems: problemsView(problems)}
				if set != nil {
					v.Policies = policiesView(set.Policies(), false)
				}
				if werr := writeJSON(out, v); werr != nil {
					return werr
				}
			}
			if err != nil {
				return &invalidSetError{problems: problems}
			}
			if !*asJSON {
				_, err = fmt.Fprintf(out, "valid: %d policies in %d file(s)\n", len(set.Policies()), len(pf.files))
			}
			return err
		},
	}
	cmd.Flags().StringVarP(&path, "file", "f", "", "policy `DIR` (its *.cedar files) or FILE")
	return cmd
}

// ceilingChangeJSON is one client whose ceiling a policy change moved.
type ceilingChangeJSON struct {
	ClientID string   `json:"client_id"`
	Before   []string `json:"before"`
	After    []string `json:"after"`
	Added    []string `json:"added"`
	Removed  []string `json:"removed"`
}

func ceilingChangesView(chs []policy.ClientChange) []ceilingChangeJSON {
	out := make([]ceilingChangeJSON, 0, len(chs))
	for _, ch := range chs {
		out = append(out, ceilingChangeJSON{ClientID: ch.ClientID, Before: strs(ch.Before), After: strs(ch.After), Added: strs(ch.Added), Removed: strs(ch.Removed)})
	}
	return out
}

func printCeilingChanges(w io.Writer, chs []policy.ClientChange, verb string) {
	for _, ch := range chs {
		fmt.Fprintf(w, "client %s: ceiling %s %s", ch.ClientID, verb, orNone(ch.After))
		if len(ch.Added) > 0 {
			fmt.Fprintf(w, " (added %s)", strings.Join(ch.Added, " "))
		}
		if len(ch.Removed) > 0 {
			fmt.Fprintf(w, " (removed %s)", strings.Join(ch.Removed, " "))
		}
		fmt.Fprintln(w)
	}
}

func orNone(xs []string) string {
	if len(xs) == 0 {
		return "(none)"
	}
	return strings.Join(xs, " ")
}

// recomputeCeilings brings every client's ceiling in line with the active
// policy set, each change audited as client.updated.
func recomputeCeilings(ctx context.Context, cmd *cobra.Command, st store.Store) ([]policy.ClientChange, error) {
	e, err := policy.New(ctx, policy.Options{Store: st, Domains: st, Logger: adminLogger(cmd)})
	if err != nil {
		return nil, err
	}
	m := adminMeta(time.Time{})
	chs, err := e.RecomputeCeilings(ctx, &m)
	if err != nil {
		return chs, fmt.Errorf("the policy set is active, but recomputing the clients' ceilings failed (run the command again to finish): %w", err)
	}
	return chs, nil
}

// policyActor names who made a policy set version.
func policyActor() string {
	if u, err := user.Current(); err == nil {
		return "cli:" + u.Username
	}
	return "cli"
}

func (c *cli) newPolicyApplyCmd(asJSON *bool) *cobra.Command {
	var (
		path    string
		comment string
		dryRun  bool
		days    int
	)
	cmd := &cobra.Command{
		Use:   "apply -f DIR [--comment TEXT] [--dry-run [--days N]]",
		Short: "Validate a policy set and make it the active version",
		Long: `Validate a policy set (the *.cedar files of DIR, or one FILE) and store it as a
new version, which becomes active at once; running hubs pick it up within a
few seconds. An invalid set is refused with every problem located
file:line:column, and the active version stays. After applying, every
client's ceiling (the scopes it may ever hold) is recomputed from the scopes
it asked for.

--dry-run stores nothing: it replays the token.issued audit events of the
last --days days against the candidate and reports which past grants would
change, and which clients' ceilings would.`,
		Example: `  agentid policy apply -f policies/ --comment "no deletes for CI"
  agentid policy apply -f policies/ --dry-run --days 30`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("days") && !dryRun {
				return usageErrorf(cmd, "--days needs --dry-run")
			}
			if days < 1 || days > maxDryRunDays {
				return usageErrorf(cmd, "--days must be between 1 and %d", maxDryRunDays)
			}
			pf, err := flagPolicyPath(cmd, path)
			if err != nil {
				return err
			}
			set, err := policy.Compile(pf.files)
			if err != nil {
				if ps := pf.problems(err); ps != nil {
					return &invalidSetError{problems: ps}
				}
				return err
			}
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				if dryRun {
					return policyDryRun(ctx, cmd, st, pf, set, time.Now().AddDate(0, 0, -days), *asJSON)
				}
				now := time.Now()
				m := adminMeta(now)
				ps := &store.PolicySet{TenantID: store.DefaultTenant, Files: pf.files, Comment: comment, CreatedBy: policyActor(), CreatedAt: now}
				if err := policy.Apply(ctx, st, ps, &m); err != nil {
					if problems := pf.problems(err); problems != nil {
						return &invalidSetError{problems: problems}
					}
					return err
				}
				chs, err := recomputeCeilings(ctx, cmd, st)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if *asJSON {
					return writeJSON(out, struct {
						Version        int64               `json:"version"`
						Files          []string            `json:"files"`
						Policies       int                 `json:"policies"`
						SHA256         string              `json:"sha256"`
						CeilingChanges []ceilingChangeJSON `json:"ceiling_changes"`
					}{ps.Version, pf.names(), len(set.Policies()), policy.Digest(pf.files), ceilingChangesView(chs)})
				}
				fmt.Fprintf(out, "applied policy set version %d (%d policies in %d file(s)); it is active\n", ps.Version, len(set.Policies()), len(pf.files))
				printCeilingChanges(out, chs, "now")
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVarP(&path, "file", "f", "", "policy `DIR` (its *.cedar files) or FILE")
	f.StringVar(&comment, "comment", "", "why this version exists (kept with it)")
	f.BoolVar(&dryRun, "dry-run", false, "store nothing; report which past grants and client ceilings the set would change")
	f.IntVar(&days, "days", 7, "with --dry-run: replay the token.issued events of the last `N` days")
	return cmd
}

// policyDryRun reports what a candidate set would change: past grants (from
// the audit trail since since) and current clients' ceilings.
func policyDryRun(ctx context.Context, cmd *cobra.Command, st store.Store, pf *policyFiles, set *policy.Set, since time.Time, asJSON bool) error {
	rep, err := policy.DryRun(ctx, st, pf.files, since)
	if err != nil {
		if ps := pf.problems(err); ps != nil {
			return &invalidSetError{problems: ps}
		}
		return err
	}
	clients, err := st.ListClients(ctx, store.DefaultTenant)
	if err != nil {
		return err
	}
	resources, err := st.ListResources(ctx, store.DefaultTenant)
	if err != nil {
		return err
	}
	var ceilings []policy.ClientChange
	for _, cl := range clients {
		got, err := set.Ceiling(cl, resources, policy.Context{Time: time.Now()})
		if err != nil {
			return err
		}
		ch := policy.ClientChange{ClientID: cl.ID, Before: cl.Scopes, After: got.Scopes}
		for _, s := range got.Scopes {
			if !slices.Contains(cl.Scopes, s) {
				ch.Added = append(ch.Added, s)
			}
		}
		for _, s := range cl.Scopes {
			if !slices.Contains(got.Scopes, s) {
				ch.Removed = append(ch.Removed, s)
			}
		}
		if ch.Changed() {
			ceilings = append(ceilings, ch)
		}
	}
	out := cmd.OutOrStdout()
	if asJSON {
		return writeJSON(out, dryRunView(rep, ceilings))
	}
	fmt.Fprintln(out, "dry run: nothing was stored")
	fmt.Fprint(out, rep.String())
	if len(ceilings) > 0 {
		fmt.Fprintf(out, "\n%d client ceiling(s) would change:\n", len(ceilings))
		printCeilingChanges(out, ceilings, "would be")
	} else {
		fmt.Fprintln(out, "\nno client ceiling would change")
	}
	return nil
}

type decisionJSON struct {
	Scope    string   `json:"scope"`
	Allowed  bool     `json:"allowed"`
	Policies []string `json:"policies"`
	Errors   []string `json:"errors,omitempty"`
}

type grantChangeJSON struct {
	EventID   int64          `json:"event_id"`
	Time      time.Time      `json:"time"`
	ClientID  string         `json:"client_id"`
	UserID    string         `json:"user_id,omitempty"`
	Resource  string         `json:"resource"`
	GrantType string         `json:"grant_type"`
	Before    []string       `json:"before"`
	After     []string       `json:"after"`
	Removed   []string       `json:"removed"`
	Added     []string       `json:"added"`
	Decisions []decisionJSON `json:"decisions"`
}

type dryRunJSON struct {
	DryRun         bool                `json:"dry_run"`
	Since          time.Time           `json:"since"`
	Events         int                 `json:"events"`
	Evaluated      int                 `json:"evaluated"`
	Skipped        int                 `json:"skipped"`
	Truncated      bool                `json:"truncated"`
	Changes        []grantChangeJSON   `json:"changes"`
	CeilingChanges []ceilingChangeJSON `json:"ceiling_changes"`
}

func decisionsView(ds []policy.Decision) []decisionJSON {
	out := make([]decisionJSON, len(ds))
	for i, d := range ds {
		out[i] = decisionJSON{Scope: d.Scope, Allowed: d.Allowed, Policies: strs(d.PolicyIDs), Errors: d.Errors}
	}
	return out
}

func dryRunView(rep *policy.DryRunReport, ceilings []policy.ClientChange) dryRunJSON {
	v := dryRunJSON{DryRun: true, Since: rep.Since.UTC(), Events: rep.Events, Evaluated: rep.Evaluated, Skipped: rep.Skipped,
		Truncated: rep.Truncated, Changes: []grantChangeJSON{}, CeilingChanges: ceilingChangesView(ceilings)}
	for _, c := range rep.Changes {
		v.Changes = append(v.Changes, grantChangeJSON{
			EventID: c.EventID, Time: c.Time.UTC(), ClientID: c.ClientID, UserID: c.UserID, Resource: c.Resource,
			GrantType: c.GrantType, Before: strs(c.Before), After: strs(c.After), Removed: strs(c.Removed),
			Added: strs(c.Added), Decisions: decisionsView(c.Decisions),
		})
	}
	return v
}

// policySetJSON is a version as `policy list|show --json` prints it.
type policySetJSON struct {
	Version   int64             `json:"version"`
	Active    bool              `json:"active"`
	Builtin   bool              `json:"builtin,omitempty"`
	Comment   string            `json:"comment,omitempty"`
	CreatedBy string            `json:"created_by,omitempty"`
	CreatedAt *time.Time        `json:"created_at,omitempty"`
	FileNames []string          `json:"file_names"`
	Files     map[string]string `json:"files,omitempty"`
	SHA256    string            `json:"sha256"`
}

const builtinComment = "the built-in default set"

func policySetView(ps *store.PolicySet, withFiles bool) *policySetJSON {
	v := &policySetJSON{Version: ps.Version, Active: ps.Active, Comment: ps.Comment, CreatedBy: ps.CreatedBy,
		CreatedAt: optTime(ps.CreatedAt), FileNames: sortedNames(ps.Files), SHA256: policy.Digest(ps.Files)}
	if ps.Version == 0 {
		v.Builtin = true
	}
	if withFiles {
		v.Files = ps.Files
	}
	return v
}

func sortedNames(m map[string]string) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// builtinSet is the embedded default set as a version-0 pseudo-row: it is
// active while the store holds no active version.
func builtinSet(active bool) *store.PolicySet {
	return &store.PolicySet{TenantID: store.DefaultTenant, Version: 0, Files: policy.DefaultFiles(), Comment: builtinComment, Active: active}
}

func (c *cli) newPolicyListCmd(asJSON *bool) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the stored policy set versions; the built-in default is version 0",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				sets, err := st.ListPolicySets(ctx, store.DefaultTenant)
				if err != nil {
					return err
				}
				anyActive := slices.ContainsFunc(sets, func(ps *store.PolicySet) bool { return ps.Active })
				sets = append(sets, builtinSet(!anyActive))
				out := cmd.OutOrStdout()
				if *asJSON {
					vs := make([]*policySetJSON, len(sets))
					for i, ps := range sets {
						vs[i] = policySetView(ps, false)
					}
					return writeJSON(out, vs)
				}
				t := newTable(out, "VERSION", "ACTIVE", "CREATED", "CREATED_BY", "FILES", "COMMENT")
				for _, ps := range sets {
					active := ""
					if ps.Active {
						active = "active"
					}
					t.row(strconv.FormatInt(ps.Version, 10), active, timeText(ps.CreatedAt), ps.CreatedBy, list(sortedNames(ps.Files)), ps.Comment)
				}
				return t.flush()
			})
		},
	}
}

// parseVersion reads a VERSION argument.
func parseVersion(cmd *cobra.Command, s string) (int64, error) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0, usageErrorf(cmd, "VERSION must be a version number from 'agentid policy list', got %q", s)
	}
	return v, nil
}

func (c *cli) newPolicyShowCmd(asJSON *bool) *cobra.Command {
	return &cobra.Command{
		Use:   "show [VERSION]",
		Short: "Print the files of a policy set version (default: the active one)",
		Long: `Print a policy set version's files, each after a "-- NAME --" line. Without
VERSION, the active version; version 0 is the built-in default set, the
starting point for your own.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			version := int64(-1)
			if len(args) == 1 {
				v, err := parseVersion(cmd, args[0])
				if err != nil {
					return err
				}
				version = v
			}
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				var ps *store.PolicySet
				var err error
				switch version {
				case -1:
					ps, err = st.ActivePolicySet(ctx, store.DefaultTenant)
					if errors.Is(err, store.ErrNotFound) {
						ps, err = builtinSet(true), nil
					}
				case 0:
					_, aerr := st.ActivePolicySet(ctx, store.DefaultTenant)
					if aerr != nil && !errors.Is(aerr, store.ErrNotFound) {
						return aerr
					}
					ps = builtinSet(errors.Is(aerr, store.ErrNotFound))
				default:
					ps, err = policy.StoredVersion(ctx, st, store.DefaultTenant, version)
					if errors.Is(err, store.ErrNotFound) {
						return fmt.Errorf("no policy set version %d (see 'agentid policy list')", version)
					}
				}
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if *asJSON {
					return writeJSON(out, policySetView(ps, true))
				}
				state := ""
				if ps.Active {
					state = ", active"
				}
				if ps.Version == 0 {
					fmt.Fprintf(out, "# version 0 (%s%s)\n", builtinComment, state)
				} else {
					fmt.Fprintf(out, "# version %d%s, created %s by %s\n", ps.Version, state, timeText(ps.CreatedAt), cell(ps.CreatedBy))
					if ps.Comment != "" {
						fmt.Fprintf(out, "# %s\n", cell(ps.Comment))
					}
				}
				for _, name := range sortedNames(ps.Files) {
					text := ps.Files[name]
					fmt.Fprintf(out, "-- %s --\n%s", cell(name), text)
					if !strings.HasSuffix(text, "\n") {
						fmt.Fprintln(out)
					}
				}
				return nil
			})
		},
	}
}

func (c *cli) newPolicyRollbackCmd(asJSON *bool) *cobra.Command {
	return &cobra.Command{
		Use:   "rollback VERSION",
		Short: "Make an earlier stored version the active one again",
		Long: `Make an earlier stored version active again (it must still validate); running
hubs pick it up within a few seconds, and every client's ceiling is
recomputed. Version 0, the built-in default, is not stored: to return to it,
apply a copy ('agentid policy show 0').`,
		Args: exactArgs("VERSION"),
		RunE: func(cmd *cobra.Command, args []string) error {
			version, err := parseVersion(cmd, args[0])
			if err != nil {
				return err
			}
			if version == 0 {
				return errors.New("version 0 is the built-in default set and is not stored: apply a copy of it " +
					"('agentid policy show 0' prints it) to make it active again")
			}
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				m := adminMeta(time.Now())
				ps, err := policy.Rollback(ctx, st, store.DefaultTenant, version, &m)
				var ve *policy.ValidationError
				switch {
				case errors.Is(err, store.ErrNotFound):
					return fmt.Errorf("no policy set version %d (see 'agentid policy list')", version)
				case errors.As(err, &ve):
					return fmt.Errorf("version %d no longer validates against this agentid's schema, so it stays inactive: %w", version, err)
				case err != nil:
					return err
				}
				chs, err := recomputeCeilings(ctx, cmd, st)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if *asJSON {
					return writeJSON(out, struct {
						Version        int64               `json:"version"`
						CeilingChanges []ceilingChangeJSON `json:"ceiling_changes"`
					}{ps.Version, ceilingChangesView(chs)})
				}
				fmt.Fprintf(out, "policy set version %d is active again\n", ps.Version)
				printCeilingChanges(out, chs, "now")
				return nil
			})
		},
	}
}

func (c *cli) newPolicyExplainCmd(asJSON *bool) *cobra.Command {
	var (
		q        policy.Query
		action   string
		resource string
		scopes   []string
	)
	cmd := &cobra.Command{
		Use:   "explain --agent CLIENT_ID [--user USER] --resource URI [--scope S]... [--grant-type G]",
		Short: "Explain how the active policy set decides a request, scope by scope",
		Long: `Decide a request with the active policy set and print, per scope, ALLOW or
DENY and the policies that determined it, with their source. The agent, user
and resource are taken as they are now in the store. Without --scope, every
scope of the resource; without --user, the request is made without a user
(client_credentials); --action register asks about the agent's ceiling.`,
		Example: `  agentid policy explain --agent dcr-1 --user alice --resource https://mcp.example.com/mcp --scope files:delete`,
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "agent", "resource"); err != nil {
				return err
			}
			uri, oe := oauth.CanonicalResource(resource)
			if oe != nil {
				return fmt.Errorf("--resource: %s", oe.Description)
			}
			q.Resource = uri
			parsed, oe := oauth.ParseScope(strings.Join(scopes, " "))
			if oe != nil {
				return fmt.Errorf("--scope: %s", oe.Description)
			}
			q.Scopes = parsed
			q.Action = policy.Action(action)
			return c.withStore(cmd, func(ctx context.Context, _ *config.Config, st store.Store) error {
				if _, err := getClient(ctx, st, q.AgentID); err != nil {
					return err
				}
				if _, err := st.GetResource(ctx, store.DefaultTenant, q.Resource); errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("--resource %s is not a registered resource", q.Resource)
				}
				e, err := policy.New(ctx, policy.Options{Store: st, Domains: st, Logger: adminLogger(cmd)})
				if err != nil {
					return err
				}
				x, err := e.ExplainQuery(ctx, q)
				if errors.Is(err, store.ErrNotFound) && q.User != "" {
					return fmt.Errorf("no user with id or username %q", q.User)
				}
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if *asJSON {
					return writeJSON(out, explanationView(x))
				}
				_, err = fmt.Fprint(out, x.String())
				return err
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&q.AgentID, "agent", "", "the agent's `CLIENT_ID` (required)")
	f.StringVar(&q.User, "user", "", "the user's id or username (default: no user)")
	f.StringVar(&resource, "resource", "", "the resource (MCP server) `URI` (required)")
	f.StringArrayVar(&scopes, "scope", nil, "requested scope (repeatable; default: every scope of the resource)")
	f.StringVar(&q.GrantType, "grant-type", "", "grant type (default: authorization_code with --user, client_credentials without)")
	f.StringVar(&action, "action", "", "register, grant, exchange or connect (default: from the grant type)")
	f.StringVar(&q.IP, "ip", "", "the caller's `address`, for policies on context.ip")
	return cmd
}

type scopeExplanationJSON struct {
	Scope        string           `json:"scope"`
	Allowed      bool             `json:"allowed"`
	Reason       string           `json:"reason"`
	Policies     []policyInfoJSON `json:"policies"`
	Errors       []string         `json:"errors,omitempty"`
	AboveCeiling bool             `json:"above_ceiling,omitempty"`
	// UserReads: what of the user the determining policies read (for a
	// default deny, what the permits read); the values are in user_facts.
	UserReads *policy.UserReads `json:"user_reads,omitempty"`
}

// userFactsJSON is the user a request was explained for, as policy saw it.
type userFactsJSON struct {
	Roles      []string          `json:"roles"`
	Groups     []string          `json:"groups"`
	Attributes map[string]string `json:"attributes"`
}

type explanationJSON struct {
	PolicyVersion int64                  `json:"policy_version"`
	Action        string                 `json:"action"`
	Agent         string                 `json:"agent"`
	User          string                 `json:"user,omitempty"`
	UserFacts     *userFactsJSON         `json:"user_facts,omitempty"`
	Resource      string                 `json:"resource"`
	GrantType     string                 `json:"grant_type,omitempty"`
	Scopes        []scopeExplanationJSON `json:"scopes"`
}

func explanationView(x *policy.Explanation) explanationJSON {
	v := explanationJSON{PolicyVersion: x.Result.Version, Action: string(x.Request.Action), Agent: x.Request.Agent.ID,
		Resource: x.Request.Resource.URI, GrantType: x.Request.Context.GrantType, Scopes: []scopeExplanationJSON{}}
	if u := x.Request.User; u != nil {
		v.User = u.ID
		v.UserFacts = &userFactsJSON{Roles: orEmpty(u.Roles), Groups: orEmpty(u.Groups), Attributes: u.Attributes}
		if v.UserFacts.Attributes == nil {
			v.UserFacts.Attributes = map[string]string{}
		}
	}
	for _, s := range x.Scopes {
		sv := scopeExplanationJSON{Scope: s.Scope, Allowed: s.Allowed, Reason: s.Reason,
			Policies: policiesView(s.Policies, true), Errors: s.Errors, AboveCeiling: s.AboveCeiling}
		if x.Request.User != nil && !s.UserReads.Empty() {
			sv.UserReads = &s.UserReads
		}
		v.Scopes = append(v.Scopes, sv)
	}
	return v
}

// orEmpty is l, or an empty list for nil, so JSON shows [] rather than null.
func orEmpty(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}
