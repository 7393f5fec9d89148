package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/agentid/agentid/internal/config"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	// exitUsage: the command line itself is wrong (unknown flag or
	// command, missing argument).
	exitUsage = 2
)

// cli is what every command shares: the process's standard streams and
// environment (injected, so tests run commands in-process) and the global
// flags. A command reads and writes through cmd.InOrStdin, cmd.OutOrStdout
// and cmd.ErrOrStderr, which run points at these streams.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// env is the process environment; config.Load is its only reader
	// besides this package.
	env func(string) (string, bool)

	// configPath is the --config flag ("" → defaults and environment only).
	configPath string
	// flagSettings are settings given as command-line flags, keyed by
	// their environment variable (--data-dir is AGENTID_DATA_DIR); they
	// win over the environment and the file.
	flagSettings map[string]string
	// userTenant is the users commands' --tenant: whose people they manage.
	userTenant string
}

// run executes the agentid command line args and returns the process exit
// code. Errors are printed to stderr as one "agentid: …" message.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, env func(string) (string, bool)) int {
	if env == nil {
		env = func(string) (string, bool) { return "", false }
	}
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr, env: env, flagSettings: map[string]string{}}
	root := c.newRootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "agentid: %s\n", errorText(err, c.configPath))
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", ue.cmdPath)
		return exitUsage
	}
	return exitError
}

// Command groups, as shown by `agentid --help`.
const (
	groupHub   = "hub"
	groupAdmin = "admin"
)

func (c *cli) newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "agentid",
		Short: "OAuth 2.1 authorization server and identity provider for AI agents and MCP servers",
		Long: `agentid is an OAuth 2.1 authorization server and identity provider for AI agents
and MCP servers.

Every command finds its configuration the same way: built-in defaults, then the
YAML file given with --config, then AGENTID_… environment variables (see
docs/configuration.md), then --data-dir. Admin commands open the configured
store directly; those that only read or change existing records never create
one, and say where they looked.`,
		Example: `  agentid serve --listen 127.0.0.1:9090
  agentid --data-dir ./agentid-demo clients list
  agentid --data-dir ./agentid-demo clients tag CLIENT_ID trusted`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.ArbitraryArgs,
		RunE:          groupRunE,
	}
	root.PersistentFlags().StringVarP(&c.configPath, "config", "c", "", "YAML configuration `file` (default: built-in defaults and AGENTID_… environment variables)")
	root.PersistentFlags().Var(settingFlag{c.flagSettings, "AGENTID_DATA_DIR"}, "data-dir",
		"data `directory` holding the SQLite database and key file (default ./agentid-data, the demo's ./agentid-demo; overrides data_dir and AGENTID_DATA_DIR)")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &usageError{cmdPath: cmd.CommandPath(), err: err}
	})
	root.AddGroup(
		&cobra.Group{ID: groupHub, Title: "Running the hub:"},
		&cobra.Group{ID: groupAdmin, Title: "Administration (opens the store directly; the hub may be running):"},
	)
	for _, cmd := range c.hubCommands() {
		cmd.GroupID = groupHub
		root.AddCommand(cmd)
	}
	for _, cmd := range c.adminCommands() {
		cmd.GroupID = groupAdmin
		root.AddCommand(cmd)
	}
	return root
}

// hubCommands are the commands that run agentid itself. A command that runs
// the hub together with other processes (such as a self-contained demo)
// belongs in this list too; it can build the hub with newHub and serve it
// with serveHTTP exactly as serve does.
func (c *cli) hubCommands() []*cobra.Command {
	return []*cobra.Command{
		c.newServeCmd(),
		c.newDemoCmd(),
		c.newMigrateCmd(),
		c.newBackupCmd(),
		c.newRestoreCmd(),
		c.newBenchCmd(),
	}
}

// adminCommands manage the store.
func (c *cli) adminCommands() []*cobra.Command {
	return []*cobra.Command{
		c.newClientsCmd(),
		c.newAgentsCmd(),
		c.newResourcesCmd(),
		c.newUsersCmd(),
		c.newKeysCmd(),
		c.newPolicyCmd(),
		c.newDomainsCmd(),
		c.newIssuersCmd(),
		c.newConnectorsCmd(),
		c.newProvidersCmd(),
		c.newConnectionsCmd(),
		c.newKEKCmd(),
		c.newAuditCmd(),
		c.newJobsCmd(),
	}
}

// groupRunE is the RunE of commands that only group subcommands: alone they
// print their help; followed by anything else they are a usage error (cobra
// would otherwise accept the stray word silently).
func groupRunE(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf(cmd, "unknown command %q for %q", args[0], cmd.CommandPath())
	}
	return cmd.Help()
}

// usageError marks a mistake in the command line (exit code 2).
type usageError struct {
	cmdPath string
	err     error
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErrorf(cmd *cobra.Command, format string, args ...any) error {
	return &usageError{cmdPath: cmd.CommandPath(), err: fmt.Errorf(format, args...)}
}

// minArgs accepts first and then one or more of each: "USERNAME KEY..."
// is minArgs("USERNAME", "KEY").
func minArgs(first, each string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < 2 {
			return usageErrorf(cmd, "%s takes %s %s..., got %d argument(s)", cmd.CommandPath(), first, each, len(args))
		}
		return nil
	}
}

// exactArgs is cobra.ExactArgs with a usage error naming the arguments.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != len(names) {
			want := "no arguments"
			if len(names) > 0 {
				want = strings.Join(names, " ")
			}
			return usageErrorf(cmd, "%s takes %s, got %d argument(s)", cmd.CommandPath(), want, len(args))
		}
		return nil
	}
}

// errorText renders err for the terminal. Configuration problems are
// listed one per line, located "file:line:" like a compiler's messages.
func errorText(err error, configPath string) string {
	var ps config.Problems
	if !errors.As(err, &ps) {
		return err.Error()
	}
	var b strings.Builder
	b.WriteString("invalid configuration:")
	for _, p := range ps {
		b.WriteString("\n  ")
		switch {
		case p.Line > 0 && configPath != "":
			fmt.Fprintf(&b, "%s:%d: ", configPath, p.Line)
		case p.Line > 0:
			fmt.Fprintf(&b, "line %d: ", p.Line)
		}
		if p.Env != "" {
			b.WriteString(p.Env + ": ")
		}
		b.WriteString(p.Msg)
	}
	return b.String()
}

// requireFlags is a usage error unless every named flag was given. (cobra's
// own required-flag check fails before the command runs, with an error run
// cannot tell from a runtime failure.)
func requireFlags(cmd *cobra.Command, names ...string) error {
	for _, n := range names {
		if !cmd.Flags().Changed(n) {
			return usageErrorf(cmd, "required flag --%s is not set", n)
		}
	}
	return nil
}

// settingFlag is a flag that sets a configuration setting, stored in
// settings under the setting's environment variable.
type settingFlag struct {
	settings map[string]string
	env      string
}

func (f settingFlag) String() string { return f.settings[f.env] }
func (f settingFlag) Type() string   { return "string" }

func (f settingFlag) Set(v string) error {
	if v == "" {
		return errors.New("must not be empty")
	}
	f.settings[f.env] = v
	return nil
}
