package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/clients"
	"github.com/agentid/agentid/internal/demo"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/password"
	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
	"github.com/agentid/agentid/internal/vault"
	"github.com/agentid/agentid/mcpauth"
)

const (
	demoUser         = "demo"
	demoResourceID   = "agentid-demo"
	demoResourceName = "agentid demo notes"
	// demoServerClientID is the confidential client the demo MCP server
	// authenticates with to introspect tokens.
	demoServerClientID = "agentid-demo-mcp"
	// demoCalendar is the demo calendar's provider id at the hub, and
	// demoCalendarClient the hub's client id at the calendar.
	demoCalendar       = "calendar"
	demoCalendarClient = "agentid-demo-hub"
	// demoDataDir is the demo's data directory unless --data-dir or
	// AGENTID_DATA_DIR says otherwise: apart from ./agentid-data, so that
	// trying the demo leaves a real hub's data alone.
	demoDataDir = "./agentid-demo"
)

func (c *cli) newDemoCmd() *cobra.Command {
	var (
		port, mcpPort int
		asJSON        bool
		agent, yes    bool
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the hub with a demo MCP server and a demo user",
		Long: `Run, in one process on 127.0.0.1, the hub (SQLite under ./agentid-demo/, kept
between runs), a demo MCP server protected by the hub with four tools of
different sensitivity, and a demo user whose new password is printed at every
start. Paste the MCP URL into an MCP client (for example MCP Inspector), or
run the scripted agent with --agent.

Only one demo (or serve) runs on a data directory at a time; a second start
says which process holds it. The admin commands reach the demo's data with
--data-dir ./agentid-demo, as the demo's hints show.`,
		Example: `  agentid demo
  agentid demo --agent --yes
  agentid --data-dir ./agentid-demo clients list`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if yes && !agent {
				return usageErrorf(cmd, "--yes goes with --agent")
			}
			return c.runDemo(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), demoFlags{port: port, mcpPort: mcpPort, json: asJSON, agent: agent, yes: yes, in: cmd.InOrStdin()})
		},
	}
	cmd.Flags().IntVar(&port, "port", 0, "hub port (default: the first free port from 8080)")
	cmd.Flags().IntVar(&mcpPort, "mcp-port", 0, "demo MCP server port (default: the next free port after the hub's)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the demo's URLs and credentials as one JSON line on stdout")
	cmd.Flags().BoolVar(&agent, "agent", false, "also run a scripted agent (official MCP Go SDK client) against the demo server")
	cmd.Flags().BoolVar(&yes, "yes", false, "with --agent: sign in and approve as the demo user without a browser")
	return cmd
}

type demoFlags struct {
	port, mcpPort int
	json          bool
	agent, yes    bool
	// in is where the person tells the interactive agent they connected.
	in io.Reader
}

// demoInfo is what `agentid demo --json` prints.
type demoInfo struct {
	Issuer     string `json:"issuer"`
	MCPURL     string `json:"mcp_url"`
	AccountURL string `json:"account_url"`
	// CalendarURL is the demo calendar, the downstream service whose
	// credentials the hub's vault keeps.
	CalendarURL string `json:"calendar_url"`
	Username    string `json:"username"`
	Password    string `json:"password"`
	// DataDir is where the demo keeps its data: admin commands reach it
	// with --data-dir.
	DataDir string `json:"data_dir"`
}

// listenNear listens on 127.0.0.1:port, or on the first free port from
// from upwards when port is 0.
func listenNear(ctx context.Context, port, from int) (net.Listener, error) {
	var lc net.ListenConfig
	if port != 0 {
		return lc.Listen(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	}
	for p := from; p < from+50; p++ {
		ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err == nil {
			return ln, nil
		}
	}
	return lc.Listen(ctx, "tcp", "127.0.0.1:0")
}

func (c *cli) runDemo(ctx context.Context, stdout, stderr io.Writer, f demoFlags) (err error) {
	hubLn, err := listenNear(ctx, f.port, 8080)
	if err != nil {
		return fmt.Errorf("listening for the hub: %w", err)
	}
	defer hubLn.Close()
	hubPort := hubLn.Addr().(*net.TCPAddr).Port
	mcpLn, err := listenNear(ctx, f.mcpPort, hubPort+1)
	if err != nil {
		return fmt.Errorf("listening for the demo MCP server: %w", err)
	}
	defer mcpLn.Close()
	calLn, err := listenNear(ctx, 0, mcpLn.Addr().(*net.TCPAddr).Port+1)
	if err != nil {
		return fmt.Errorf("listening for the demo calendar: %w", err)
	}
	defer calLn.Close()
	issuer := "http://" + hubLn.Addr().String()
	mcpURL := "http://" + mcpLn.Addr().String() + "/mcp"
	calURL := "http://" + calLn.Addr().String()

	// The demo's settings win over defaults; the person's environment
	// (and --data-dir) still win over the demo's data directory and log
	// format.
	overrides := map[string]string{
		"AGENTID_ISSUER": issuer, "AGENTID_LISTEN": hubLn.Addr().String(),
		"AGENTID_DATA_DIR": demoDataDir, "AGENTID_LOG_FORMAT": "text", "AGENTID_LOG_LEVEL": "warn",
		// The demo listens on loopback only, so a client developer may
		// serve a Client ID Metadata Document from this machine.
		"AGENTID_CIMD_ALLOW_LOOPBACK": "true",
	}
	base := c.env
	c.env = func(k string) (string, bool) {
		if k == "AGENTID_ISSUER" || k == "AGENTID_LISTEN" {
			return overrides[k], true
		}
		if v, ok := base(k); ok {
			return v, ok
		}
		v, ok := overrides[k]
		return v, ok
	}
	cfg, err := c.loadConfig()
	c.env = base
	if err != nil {
		return err
	}
	lock, err := lockDataDir(cfg)
	if err != nil {
		return err
	}
	defer lock.Release()
	log := newLogger(cfg.Log, stderr)
	h, err := newHub(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := h.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if err := h.claimJobs(ctx, lock); err != nil {
		return err
	}
	pw, introspection, err := seedDemo(ctx, h.store, mcpURL)
	if err != nil {
		return err
	}
	calSecret, err := token.NewHandle(nil, "")
	if err != nil {
		return err
	}
	if err := seedCalendar(ctx, h.store, h.vault, mcpURL, calURL, calSecret); err != nil {
		return err
	}
	calendar := demo.NewCalendar(demo.CalendarOptions{ClientID: demoCalendarClient, ClientSecret: calSecret, RedirectURI: issuer + "/connections/callback"})

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	bg, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBackground()
	wg.Go(func() { h.runBackground(bg, log) })
	// The hub outlives the demo MCP server at shutdown, so that the
	// server's last tool reports reach it.
	hubCtx, stopHub := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHub()
	wg.Go(func() { errc <- serveHTTP(hubCtx, hubLn, h.Handler(), log) })
	wg.Go(func() { errc <- serveHTTP(ctx, calLn, calendar.Handler(), log) })

	// The demo server reports its tool calls to the hub's audit trail as
	// its own client; Close sends what is queued when the demo stops.
	reporter, err := mcpauth.NewReporter(mcpauth.ReporterConfig{Issuer: issuer, ClientID: introspection.ClientID, ClientSecret: introspection.ClientSecret, Logger: log})
	if err != nil {
		cancel()
		stopHub()
		stopBackground()
		wg.Wait()
		return err
	}
	closeReporter := func() {
		closeCtx, done := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
		defer done()
		if err := reporter.Close(closeCtx); err != nil {
			log.Warn("demo: tool reports left unsent", "err", err)
		}
	}
	// The demo server discovers the hub over HTTP, so the hub serves first.
	mcpHandler, err := demo.Handler(ctx, demo.Options{Issuer: issuer, Resource: mcpURL, Introspection: introspection, Reporter: reporter,
		Calendar: &demo.CalendarAccess{ClientID: introspection.ClientID, ClientSecret: introspection.ClientSecret, EventsURL: calURL + "/api/events", Provider: demoCalendar}})
	if err != nil {
		// Ctrl-C during start-up lands here too: stop everything started.
		cancel()
		closeReporter()
		stopHub()
		stopBackground()
		wg.Wait()
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("starting the demo MCP server: %w", err)
	}
	wg.Go(func() { errc <- serveHTTP(ctx, mcpLn, mcpHandler, log) })

	info := demoInfo{Issuer: issuer, MCPURL: mcpURL, AccountURL: issuer + "/account", CalendarURL: calURL, Username: demoUser, Password: pw, DataDir: cfg.DataDir}
	if f.json {
		b, _ := json.Marshal(info)
		fmt.Fprintln(stdout, string(b))
	} else {
		printDemo(stdout, info, invocation())
	}
	if f.agent {
		wg.Go(func() {
			opts := demo.AgentOptions{MCPURL: mcpURL, Out: stdout}
			if f.yes {
				opts.Username, opts.Password = demoUser, pw
			} else {
				opts.In = f.in
			}
			if err := demo.RunAgent(ctx, opts); err != nil && ctx.Err() == nil {
				fmt.Fprintf(stdout, "agent: failed: %v\n", err)
			}
		})
	}
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	closeReporter()
	stopHub()
	stopBackground()
	wg.Wait()
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	fmt.Fprintln(stderr, "agentid demo: stopped")
	return nil
}

func printDemo(w io.Writer, in demoInfo, prog string) {
	admin := prog + " --data-dir " + shellQuote(in.DataDir)
	fmt.Fprintf(w, `agentid demo is running. Press Ctrl-C to stop.

Hub: %s
MCP server: %s
Demo calendar (a downstream service): %s
Account page: %s
username: %s password: %s

What to try:
  1. Add the MCP server URL to an MCP client (e.g. npx @modelcontextprotocol/inspector@latest,
     transport "Streamable HTTP"), connect, and sign in as the demo user.
  2. Approve notes.read, call read_notes; then call write_note and watch the client
     step up: the consent screen asks only for notes.write.
  3. Call read_calendar: the first time, the server asks you (through the client, or in
     the tool's answer) to connect your Demo Calendar at the hub; connect, call it again,
     and the server reads your events with a token the agent never sees.
  4. delete_note needs the sensitive notes.delete: the default policy keeps it from
     self-registered agents until an admin tags them "trusted". In another terminal,
     in this directory:
       %[7]s clients list
       %[7]s clients tag CLIENT_ID trusted
  5. Or stop this demo (Ctrl-C) and run the scripted agent: %[7]s demo --agent --yes
`, in.Issuer, in.MCPURL, in.CalendarURL, in.AccountURL, in.Username, in.Password, admin)
}

// invocation is how the person started agentid, for commands they can
// paste: "go run ./cmd/agentid" when go run built it (into the build cache
// or a go-build temporary directory), else the program as typed.
func invocation() string {
	arg0 := filepath.ToSlash(os.Args[0])
	switch {
	case strings.Contains(arg0, "/go-build"):
		return "go run ./cmd/agentid"
	case strings.Contains(arg0, "/"):
		return os.Args[0]
	default:
		return "agentid"
	}
}

// shellQuote quotes s for a POSIX shell unless it needs no quoting.
func shellQuote(s string) string {
	unsafe := func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("/._-+:@", r))
	}
	if s != "" && !strings.ContainsFunc(s, unsafe) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// seedDemo registers the demo MCP server as a resource, (re)creates the
// demo user with a fresh password, which it returns, and the confidential
// client the demo server introspects tokens with, whose fresh secret it
// returns in the introspection settings. Only hashes are stored.
func seedDemo(ctx context.Context, st store.Store, mcpURL string) (string, *mcpauth.IntrospectionConfig, error) {
	now := time.Now()
	resources, err := st.ListResources(ctx, store.DefaultTenant)
	if err != nil {
		return "", nil, err
	}
	exists := false
	for _, r := range resources {
		switch {
		case r.URI == mcpURL:
			exists = true
			if r.ClientID != demoServerClientID {
				// A resource seeded before resources named their server.
				r.ClientID = demoServerClientID
				if err := st.UpdateResource(ctx, r, resourceEvent(r, audit.NewResourceUpdated, now)); err != nil {
					return "", nil, err
				}
			}
		case r.ID == demoResourceID:
			// A previous run on other ports: its URL is gone.
			if err := st.DeleteResource(ctx, store.DefaultTenant, r.URI, resourceEvent(r, audit.NewResourceDeleted, now)); err != nil {
				return "", nil, err
			}
		}
	}
	if !exists {
		r := &store.Resource{TenantID: store.DefaultTenant, ID: demoResourceID, URI: mcpURL, Name: demoResourceName, Scopes: demo.Scopes(), ClientID: demoServerClientID, CreatedAt: now}
		if err := st.CreateResource(ctx, r, resourceEvent(r, audit.NewResourceCreated, now)); err != nil {
			return "", nil, fmt.Errorf("registering the demo MCP server: %w", err)
		}
	}
	pw, err := token.NewHandle(nil, "")
	if err != nil {
		return "", nil, err
	}
	pw = pw[:20]
	hash, err := password.Hash(pw)
	if err != nil {
		return "", nil, err
	}
	u, err := st.GetUserByUsername(ctx, store.DefaultTenant, demoUser)
	switch {
	case errors.Is(err, store.ErrNotFound):
		const id = "user-demo"
		ev := audit.NewUserCreated(audit.Meta{Time: now}, id)
		err = st.CreateUser(ctx, &store.User{TenantID: store.DefaultTenant, ID: id, Username: demoUser, PasswordHash: hash, CreatedAt: now, UpdatedAt: now}, ev)
	case err == nil:
		// Each demo run sets a fresh password (and re-enables the user).
		u.PasswordHash, u.Disabled, u.UpdatedAt = hash, false, now
		err = st.UpdateUser(ctx, u, userUpdated(u, "password"))
	}
	if err != nil {
		return "", nil, fmt.Errorf("creating the demo user: %w", err)
	}
	secret, err := seedDemoServerClient(ctx, st, now)
	if err != nil {
		return "", nil, err
	}
	return pw, &mcpauth.IntrospectionConfig{ClientID: demoServerClientID, ClientSecret: secret, CacheTTL: -1}, nil
}

// seedDemoServerClient registers the demo MCP server's own client, through
// the same registration path as every client, or gives the one a previous
// run registered a fresh secret; either change is audited. It returns the
// secret. The client also holds the token-exchange grant: the demo server
// retrieves the person's calendar credential from the vault with it, and
// the hub lets a client exchange only with that grant registered.
func seedDemoServerClient(ctx context.Context, st store.Store, now time.Time) (string, error) {
	m := audit.Meta{Time: now, Actor: audit.ActorDemo}
	_, err := st.GetClient(ctx, store.DefaultTenant, demoServerClientID)
	secret := ""
	switch {
	case errors.Is(err, store.ErrNotFound):
		e, err := policy.New(ctx, policy.Options{Store: st, Domains: st})
		if err != nil {
			return "", err
		}
		r, err := clients.New(clients.Options{Store: st, Policy: e, Now: func() time.Time { return now }})
		if err != nil {
			return "", err
		}
		res, err := r.Register(ctx, &clients.Registration{
			Method: clients.Demo, ClientID: demoServerClientID, ResourceServer: true, Audit: m,
			Metadata: &oauth.ClientMetadata{
				ClientName: "agentid demo MCP server", TokenEndpointAuthMethod: oauth.AuthMethodClientSecretBasic,
				ApplicationType: oauth.ApplicationTypeWeb, GrantTypes: []string{oauth.GrantTokenExchange},
			},
		})
		if err != nil {
			return "", fmt.Errorf("registering the demo MCP server's client: %w", err)
		}
		return res.Secret, nil
	case err != nil:
		return "", err
	}
	// A client of an earlier run: a fresh secret (and the token-exchange
	// grant, which runs before the vault did not give it).
	if secret, err = token.NewHandle(nil, ""); err != nil {
		return "", err
	}
	ev := audit.NewClientUpdated(m, audit.ClientUpdatedFields{ClientID: demoServerClientID, Change: audit.ChangeSecret})
	if _, err := st.UpdateClient(ctx, store.DefaultTenant, demoServerClientID, func(c *store.Client) error {
		c.SecretHash, c.Disabled, c.UpdatedAt = token.Hash(secret), false, now
		if !slices.Contains(c.GrantTypes, oauth.GrantTokenExchange) {
			c.GrantTypes = append(c.GrantTypes, oauth.GrantTokenExchange)
		}
		return nil
	}, ev); err != nil {
		return "", fmt.Errorf("updating the demo MCP server's client: %w", err)
	}
	return secret, nil
}

// seedCalendar registers the demo calendar as the hub's provider
// "calendar" (its client secret sealed by the vault) and links it to the
// demo MCP server's resource: the resource scope calendar.read reaches the
// provider scope calendar.read. The calendar keeps its grants in memory, so
// connections of an earlier run are dead: the provider is registered
// afresh, which deletes them.
func seedCalendar(ctx context.Context, st store.Store, vlt *vault.Vault, mcpURL, calURL, secret string) error {
	now := time.Now()
	m := audit.Meta{Time: now, Actor: audit.ActorDemo}
	if _, err := st.GetProvider(ctx, store.DefaultTenant, demoCalendar); err == nil {
		if err := st.DeleteProvider(ctx, store.DefaultTenant, demoCalendar, audit.NewProviderDeleted(m, audit.ProviderFields{ProviderID: demoCalendar, Kind: store.ProviderOAuth2})); err != nil {
			return fmt.Errorf("removing the previous demo calendar: %w", err)
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	sealed, err := vlt.SealProviderSecret(store.DefaultTenant, demoCalendar, secret)
	if err != nil {
		return err
	}
	p := &store.Provider{
		TenantID: store.DefaultTenant, ID: demoCalendar, Name: "Demo Calendar", Kind: store.ProviderOAuth2,
		AuthorizationEndpoint: calURL + "/authorize", TokenEndpoint: calURL + "/token", RevocationEndpoint: calURL + "/revoke",
		ClientID: demoCalendarClient, ClientSecret: sealed, TokenAuthMethod: "client_secret_basic",
		Scopes: []string{demo.ScopeCalendarRead}, CreatedAt: now, UpdatedAt: now,
	}
	if err := st.CreateProvider(ctx, p, audit.NewProviderAdded(m, audit.ProviderFields{ProviderID: demoCalendar, Kind: store.ProviderOAuth2})); err != nil {
		return fmt.Errorf("registering the demo calendar: %w", err)
	}
	r, err := st.GetResource(ctx, store.DefaultTenant, mcpURL)
	if err != nil {
		return err
	}
	r.Providers = []store.ResourceProvider{{ProviderID: demoCalendar, Scopes: map[string][]string{demo.ScopeCalendarRead: {demo.ScopeCalendarRead}}}}
	if err := st.UpdateResource(ctx, r, resourceEvent(r, audit.NewResourceUpdated, now)); err != nil {
		return fmt.Errorf("linking the demo calendar to the demo MCP server: %w", err)
	}
	return nil
}
