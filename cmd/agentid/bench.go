package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentid/agentid/internal/audit"
	"github.com/agentid/agentid/internal/clients"
	"github.com/agentid/agentid/internal/config"
	"github.com/agentid/agentid/internal/loadtest"
	"github.com/agentid/agentid/internal/oauth"
	"github.com/agentid/agentid/internal/password"
	"github.com/agentid/agentid/internal/policy"
	"github.com/agentid/agentid/internal/server"
	"github.com/agentid/agentid/internal/store"
	"github.com/agentid/agentid/internal/token"
)

// benchFlags are the flags of `agentid bench`.
type benchFlags struct {
	hubs        []string
	scenarios   []string
	concurrency int
	duration    time.Duration
	requests    int64
	warmup      time.Duration
	subjects    int
	pids        []int
	dbPID       int
	asJSON      bool
	cpuProfile  string
	// requestsOnly: --requests was given and --duration was not, so
	// the count alone bounds a run (the default duration would cut it
	// short).
	requestsOnly bool
}

// benchReport is `agentid bench --json`: the run's settings and one
// result per scenario.
type benchReport struct {
	Hub string `json:"hub"`
	// Hubs are the replicas' URLs the requests went to in turn, when
	// there were several.
	Hubs        []string           `json:"hubs,omitempty"`
	Store       string             `json:"store"`
	Concurrency int                `json:"concurrency"`
	Subjects    int                `json:"subjects"`
	Started     time.Time          `json:"started"`
	Results     []*loadtest.Result `json:"results"`
}

func (c *cli) newBenchCmd() *cobra.Command {
	var f benchFlags
	cmd := &cobra.Command{
		Use:   "bench --hub URL [--hub URL...] [flags]",
		Short: "Measure a running hub: tokens/s, latency percentiles, the hub's CPU and memory",
		Long: `Drive a running hub over HTTP and measure it, scenario by scenario:

  client-credentials  a client_credentials token for a resource
  refresh             refresh-token rotation (each worker rotates its own)
  exchange            token exchange by the resource's server for the next hop
  introspection       introspection of a person's access token by the resource's server
  retrieval           a vault credential (an API key) retrieved by the resource's server
  mcpauth-verify      mcpauth's verification of access tokens with a warm key set (local CPU)
  raw-verify          the same tokens' signatures with crypto/ecdsa (or ed25519) alone

First it seeds what the scenarios need through the hub's store, as the admin
commands do (so give the hub's --config or --data-dir): a resource and the
exchange's target resource, their server's client, a client_credentials client,
an agent, a person with a generated password and an API-key provider, all named
bench-<random>; then the person signs in and consents over HTTP, and refresh
rotations make --subjects distinct access tokens, which exchange,
introspection, retrieval and verification present in turn (the hub remembers a
verified subject token's authenticity until its key set changes, and
introspection a token's decoded answer, so each subject's first use costs more
than the rest; expiry and revocation are checked every time). The records stay
in the store.

Every scenario runs --concurrency workers, each one request at a time over
keep-alive connections, for --duration or until --requests (--requests alone:
no time bound; with both, whichever comes first); the two
verification scenarios, CPU work of this process, run one worker per core, and
then seven alternating pairs of short runs give mcpauth's share of the raw rate.
It prints requests/s, the p50/p90/p99/max latency (from a request's write to
the last byte of its answer), the errors by HTTP status, its own CPU time per
request and, with --pid of the hub's process on this machine, the hub's CPU
time per request and peak resident memory (--db-pid: the database server's
CPU time too), and how much the database grew per request. It exits 1 when
any request failed. A hub process (--pid) that exits during a run ends the
runs there: the report shows what was measured until then, notes the exit,
and the command exits 1.

Several replicas of one hub (one store, one issuer): give each with --hub, the
issuer first (the setup signs in there), and each process with --pid. Every
worker sends its requests to the replicas in turn; the hub's CPU time and
peak memory are the replicas' sums, each replica's CPU time follows the
table.`,
		Example: `  agentid --data-dir ./agentid-data bench --hub http://127.0.0.1:9090 --pid HUB_PID
  agentid --config agentid.yaml bench --hub http://127.0.0.1:9090 --hub http://127.0.0.1:9091 --pid HUB_PID --pid REPLICA_PID
  agentid --config agentid.yaml bench --hub http://127.0.0.1:9090 --scenario exchange --concurrency 32 --duration 10s --json`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "hub"); err != nil {
				return err
			}
			f.requestsOnly = cmd.Flags().Changed("requests") && !cmd.Flags().Changed("duration")
			if cmd.Flags().Changed("scenario") && len(f.scenarios) == 0 {
				f.scenarios = []string{""} // --scenario "" names none
			}
			names, err := f.check()
			if err != nil {
				return usageErrorf(cmd, "%w", err)
			}
			return c.withStore(cmd, func(ctx context.Context, cfg *config.Config, st store.Store) error {
				return runBench(ctx, cmd, &f, names, cfg, st)
			})
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&f.hubs, "hub", nil, "the running hub's `URL`, its issuer (required); repeat for replicas, the issuer first")
	fl.StringSliceVar(&f.scenarios, "scenario", nil, "scenario to run (repeatable or comma-separated; default: all): "+strings.Join(loadtest.Scenarios, ", "))
	fl.IntVar(&f.concurrency, "concurrency", 32, "concurrent workers, each one request at a time")
	fl.DurationVar(&f.duration, "duration", 5*time.Second, "how long each scenario runs (0: until --requests; when only --requests is given, no time bound)")
	fl.Int64Var(&f.requests, "requests", 0, "requests per scenario (0: until --duration; with both, whichever comes first)")
	fl.DurationVar(&f.warmup, "warmup", 0, "run each scenario this long unmeasured first")
	fl.IntVar(&f.subjects, "subjects", 2000, "distinct user access tokens presented in turn")
	fl.IntSliceVar(&f.pids, "pid", nil, "process id of the hub, when it runs on this machine: its CPU time and peak memory (repeatable: one per replica)")
	fl.IntVar(&f.dbPID, "db-pid", 0, "process id of the database server (the PostgreSQL postmaster), when it runs on this machine: the CPU time of it and its descendants")
	fl.BoolVar(&f.asJSON, "json", false, "print JSON")
	fl.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of this process during the measured runs to `FILE` (go tool pprof)")
	return cmd
}

// check returns the scenarios to run (the --scenario values in
// loadtest.Scenarios' order; none means all), or every problem of the
// flags at once. With requestsOnly it clears the duration.
func (f *benchFlags) check() ([]string, error) {
	if f.requestsOnly {
		f.duration = 0
	}
	var errs []error
	for _, h := range f.hubs {
		u, err := url.Parse(h)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			errs = append(errs, fmt.Errorf("--hub %q: an http:// or https:// URL of the hub (its issuer), without query or fragment", h))
		}
	}
	names, err := benchScenarios(f.scenarios)
	if err != nil {
		errs = append(errs, err)
	}
	if f.concurrency < 1 {
		errs = append(errs, fmt.Errorf("--concurrency %d: at least 1", f.concurrency))
	}
	if f.subjects < 1 {
		errs = append(errs, fmt.Errorf("--subjects %d: at least 1", f.subjects))
	}
	for flag, d := range map[string]time.Duration{"--duration": f.duration, "--warmup": f.warmup} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s %s: must not be negative", flag, d))
		}
	}
	if f.requests < 0 {
		errs = append(errs, fmt.Errorf("--requests %d: must not be negative", f.requests))
	}
	if f.duration == 0 && f.requests == 0 {
		errs = append(errs, errors.New("--duration 0 and --requests 0: a scenario needs a bound, a duration or a number of requests"))
	}
	for _, pid := range f.pids {
		if pid < 0 {
			errs = append(errs, fmt.Errorf("--pid %d: a process id is positive", pid))
		}
	}
	if f.dbPID < 0 {
		errs = append(errs, fmt.Errorf("--db-pid %d: a process id is positive", f.dbPID))
	}
	// Map order: the messages sorted, so the error reads the same each time.
	slices.SortStableFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return names, errors.Join(errs...)
}

// benchScenarios checks the --scenario values; none means all.
func benchScenarios(given []string) ([]string, error) {
	if len(given) == 0 {
		return loadtest.Scenarios, nil
	}
	var out []string
	for _, s := range given {
		s = strings.TrimSpace(s)
		if !slices.Contains(loadtest.Scenarios, s) {
			return nil, fmt.Errorf("--scenario %q: one of %s", s, strings.Join(loadtest.Scenarios, ", "))
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	// The order of the list, so a run reads the same whatever the flags'.
	slices.SortFunc(out, func(a, b string) int {
		return slices.Index(loadtest.Scenarios, a) - slices.Index(loadtest.Scenarios, b)
	})
	return out, nil
}

func runBench(ctx context.Context, cmd *cobra.Command, f *benchFlags, names []string, cfg *config.Config, st store.Store) error {
	var procs []*loadtest.Process
	for _, pid := range f.pids {
		if pid == 0 {
			continue // as before --pid was repeatable: 0 is none
		}
		if slices.ContainsFunc(procs, func(p *loadtest.Process) bool { return p.PID == pid }) {
			return fmt.Errorf("--pid %d given twice", pid)
		}
		p := &loadtest.Process{PID: pid}
		if err := p.Check(); err != nil {
			return fmt.Errorf("--pid: %w", err)
		}
		procs = append(procs, p)
	}
	var db *loadtest.Process
	if f.dbPID != 0 {
		db = &loadtest.Process{PID: f.dbPID}
		if err := db.Check(); err != nil {
			return fmt.Errorf("--db-pid: %w", err)
		}
	}
	hc := loadtest.NewHTTPClient(f.concurrency)
	issuer, hubs, err := hubsIssuer(ctx, hc, f.hubs)
	if err != nil {
		return err
	}
	fx, err := seedBench(ctx, cmd, st, issuer, slices.Contains(names, loadtest.Retrieval))
	if err != nil {
		return fmt.Errorf("seeding the store: %w", err)
	}
	if len(hubs) > 1 {
		fx.Hubs = hubs
	}
	b, err := loadtest.Prepare(ctx, fx, hc, f.concurrency, f.subjects)
	if err != nil {
		return err
	}
	defer b.Close()
	size := storeSizer(cfg)
	rep := &benchReport{Hub: issuer, Hubs: fx.Hubs, Store: storeKind(cfg), Concurrency: f.concurrency, Subjects: b.Subjects(), Started: time.Now().UTC()}
	if f.cpuProfile != "" {
		stop, err := startCPUProfile(f.cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	// A hub process that exits, or an interrupt, ends the runs: the
	// report still shows what was measured up to then.
	var stopped error
	for _, name := range names {
		op, err := b.Op(ctx, name)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		opts := loadtest.Options{Concurrency: f.concurrency, Duration: f.duration, Requests: f.requests, Processes: procs, Database: db}
		if local(name) {
			// CPU work in this process: more workers than cores only queue.
			opts.Concurrency, opts.Processes, opts.Database = min(f.concurrency, runtime.GOMAXPROCS(0)), nil, nil
		}
		if f.warmup > 0 {
			if _, err := loadtest.Run(ctx, name, loadtest.Options{Concurrency: opts.Concurrency, Duration: f.warmup}, op); err != nil {
				stopped = err
				break
			}
		}
		before, sizeErr := size(ctx)
		r, err := loadtest.Run(ctx, name, opts, op)
		if errors.Is(err, loadtest.ErrExited) {
			stopped = fmt.Errorf("%s: the hub process exited before the scenario started: %w", name, err)
			break
		}
		if r == nil {
			return err
		}
		if after, err := size(ctx); sizeErr == nil && err == nil && r.Requests > r.Errors && writes(name) {
			r.StoreGrowthBytes = after - before
			r.StoreBytesPerRequest = float64(after-before) / float64(r.Requests-r.Errors)
		}
		if name != loadtest.ClientCredentials && name != loadtest.Refresh {
			r.Notes = append(r.Notes, fmt.Sprintf("%d distinct subject tokens presented in turn", b.Subjects()))
		}
		rep.Results = append(rep.Results, r)
		if err != nil {
			stopped = err
			break
		}
		if len(r.Exited) > 0 {
			stopped = fmt.Errorf("the hub process %s exited during %s: the runs stopped there, the report shows what was measured until then", pidList(r.Exited), name)
			break
		}
	}
	if stopped == nil && slices.Contains(names, loadtest.MCPAuthVerify) && slices.Contains(names, loadtest.RawVerify) {
		if err := interleavedVerifyRatio(ctx, b, f, rep.Results); err != nil {
			return err
		}
	}
	if f.asJSON {
		err = writeJSON(cmd.OutOrStdout(), rep)
	} else {
		err = printBench(cmd.OutOrStdout(), rep)
	}
	if err != nil {
		return err
	}
	if stopped != nil {
		return stopped
	}
	// Failed requests make the measurement wrong: a script must notice.
	var failed int64
	for _, r := range rep.Results {
		failed += r.Errors
	}
	if failed > 0 {
		return fmt.Errorf("%d requests failed (see the report)", failed)
	}
	return nil
}

// pidList is "123" or "123, 456".
func pidList(pids []int) string {
	s := make([]string, len(pids))
	for i, p := range pids {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ", ")
}

// writes says whether a scenario stores something at every request.
func writes(name string) bool {
	switch name {
	case loadtest.ClientCredentials, loadtest.Refresh, loadtest.Exchange, loadtest.Retrieval:
		return true
	}
	return false
}

// verifyPairs is how many alternating pairs of short mcpauth-verify and
// raw-verify runs measure their ratio.
const verifyPairs = 7

// interleavedVerifyRatio notes on the mcpauth-verify result its rate as a
// share of raw-verify's (the measure): the median of verifyPairs
// alternating pairs of short runs, each a seventh of --duration (or of
// --requests), so that a neighbour's load falls on both sides alike. The
// two full runs' ratio is noted too.
func interleavedVerifyRatio(ctx context.Context, b *loadtest.Bench, f *benchFlags, rs []*loadtest.Result) error {
	var mcp, raw *loadtest.Result
	for _, r := range rs {
		switch r.Scenario {
		case loadtest.MCPAuthVerify:
			mcp = r
		case loadtest.RawVerify:
			raw = r
		}
	}
	opts := loadtest.Options{Concurrency: min(f.concurrency, runtime.GOMAXPROCS(0)), Duration: f.duration / verifyPairs, Requests: f.requests / verifyPairs}
	if opts.Duration == 0 && opts.Requests == 0 {
		opts.Requests = 1
	}
	var ratios []float64
	for i := range verifyPairs {
		var rate [2]float64
		// Alternate which goes first.
		order := []string{loadtest.MCPAuthVerify, loadtest.RawVerify}
		if i%2 == 1 {
			slices.Reverse(order)
		}
		for _, name := range order {
			op, err := b.Op(ctx, name)
			if err != nil {
				return err
			}
			r, err := loadtest.Run(ctx, name, opts, op)
			if err != nil {
				return err
			}
			if r.Errors > 0 {
				return fmt.Errorf("%s: %s", name, r.FirstError)
			}
			rate[slices.Index([]string{loadtest.MCPAuthVerify, loadtest.RawVerify}, name)] = r.PerSecond
		}
		if rate[1] > 0 {
			ratios = append(ratios, rate[0]/rate[1])
		}
	}
	if raw.PerSecond > 0 {
		mcp.Notes = append(mcp.Notes, fmt.Sprintf("%.0f%% of raw-verify's rate in the full runs", 100*mcp.PerSecond/raw.PerSecond))
	}
	if len(ratios) > 0 {
		slices.Sort(ratios)
		mcp.VerifyRatio = ratios[len(ratios)/2]
		mcp.Notes = append(mcp.Notes, fmt.Sprintf("%.0f%% of raw-verify's rate, median of %d interleaved pairs (%.0f–%.0f%%)",
			100*mcp.VerifyRatio, len(ratios), 100*ratios[0], 100*ratios[len(ratios)-1]))
	}
	return nil
}

// local says whether a scenario is CPU work of this process (no request
// to the hub).
func local(name string) bool {
	return name == loadtest.MCPAuthVerify || name == loadtest.RawVerify
}

// hubsIssuer reads each hub's issuer from its metadata (RFC 8414 §3):
// the first URL must be the issuer (the scenarios' tokens name it, and the
// setup follows its absolute links), every other one a replica naming the
// same issuer. It returns the issuer and the URLs without a trailing "/".
func hubsIssuer(ctx context.Context, hc *http.Client, given []string) (string, []string, error) {
	var hubs []string
	for _, h := range given {
		h = strings.TrimSuffix(h, "/")
		if slices.Contains(hubs, h) {
			return "", nil, fmt.Errorf("--hub %s given twice", h)
		}
		hubs = append(hubs, h)
	}
	for i, h := range hubs {
		iss, err := hubIssuer(ctx, hc, h)
		if err != nil {
			return "", nil, err
		}
		if i == 0 && iss != h {
			return "", nil, fmt.Errorf("--hub %s is not the hub's issuer %s: give the issuer (first, with replicas)", h, iss)
		}
		if i > 0 && iss != hubs[0] {
			return "", nil, fmt.Errorf("--hub %s names the issuer %s, not %s: not a replica of the same hub", h, iss, hubs[0])
		}
	}
	return hubs[0], hubs, nil
}

// hubIssuer reads the issuer of the hub at base from its metadata.
func hubIssuer(ctx context.Context, hc *http.Client, base string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/.well-known/oauth-authorization-server", nil)
	if err != nil {
		return "", fmt.Errorf("--hub: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("reaching the hub %s: %w", base, err)
	}
	defer resp.Body.Close()
	var md struct {
		Issuer string `json:"issuer"`
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("the metadata of %s: HTTP %d", base, resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&md); err != nil {
		return "", fmt.Errorf("the metadata of %s: %w", base, err)
	}
	return md.Issuer, nil
}

// Names in the bench fixture.
const (
	// benchScope is the scope of both resources: an exchange narrows, it
	// never widens, so the next hop's scope is one the subject holds.
	benchScope       = "bench.read"
	benchRedirectURI = "http://127.0.0.1/callback"
)

// seedBench creates the fixture's records in the store, as the admin
// commands would: every name carries one random suffix, so runs never
// collide. withProvider adds the API-key provider retrieval needs.
func seedBench(ctx context.Context, cmd *cobra.Command, st store.Store, issuer string, withProvider bool) (*loadtest.Fixture, error) {
	sfx := strings.ToLower(rand.Text()[:10])
	name := "bench-" + sfx
	now := time.Now()
	meta := adminMeta(now)
	pw := rand.Text()
	fx := &loadtest.Fixture{
		Issuer: issuer, Scope: benchScope, TargetScope: benchScope, RedirectURI: benchRedirectURI,
		Resource: "https://" + name + ".bench.example/mcp", Target: "https://" + name + "-next.bench.example/mcp",
		User: name, Password: pw,
	}
	e, err := policy.New(ctx, policy.Options{Store: st, Domains: st, Logger: adminLogger(cmd)})
	if err != nil {
		return nil, err
	}
	registrar, err := clients.New(clients.Options{Store: st, Policy: e})
	if err != nil {
		return nil, err
	}
	register := func(id string, md oauth.ClientMetadata, tags ...string) (loadtest.Credentials, error) {
		md.ClientName = id
		md.TokenEndpointAuthMethod = oauth.AuthMethodClientSecretBasic
		res, err := registrar.Register(ctx, &clients.Registration{
			Method: clients.Admin, Metadata: &md, GrantTypes: server.GrantTypes(), ClientID: id, Tags: tags, Audit: meta,
		})
		if err != nil {
			return loadtest.Credentials{}, registrationError(err, id)
		}
		return loadtest.Credentials{ID: id, Secret: res.Secret}, nil
	}
	if fx.Server, err = register(name+"-server", oauth.ClientMetadata{GrantTypes: []string{oauth.GrantTokenExchange}}); err != nil {
		return nil, err
	}
	for _, r := range []*store.Resource{
		{URI: fx.Resource, Scopes: []store.Scope{{Name: benchScope, Description: "Read bench data"}}, ClientID: fx.Server.ID},
		{URI: fx.Target, Scopes: []store.Scope{{Name: benchScope, Description: "Read bench data downstream"}}},
	} {
		r.TenantID, r.ID, r.Name, r.CreatedAt = store.DefaultTenant, token.NewID(nil), name, now
		if err := st.CreateResource(ctx, r, resourceEvent(r, audit.NewResourceCreated, now)); err != nil {
			return nil, fmt.Errorf("storing resource %s: %w", r.URI, err)
		}
	}
	// Under the default policy a client_credentials client gets a scope
	// only with the tag cc:<scope>.
	if fx.CC, err = register(name+"-cc", oauth.ClientMetadata{GrantTypes: []string{oauth.GrantClientCredentials}, Scope: benchScope}, "cc:"+benchScope); err != nil {
		return nil, err
	}
	if fx.Agent, err = register(name+"-agent", oauth.ClientMetadata{
		GrantTypes: []string{oauth.GrantAuthorizationCode, oauth.GrantRefreshToken}, RedirectURIs: []string{benchRedirectURI},
	}); err != nil {
		return nil, err
	}
	hash, err := password.Hash(pw)
	if err != nil {
		return nil, fmt.Errorf("hashing the password: %w", err)
	}
	u := &store.User{TenantID: store.DefaultTenant, ID: token.NewID(nil), Username: name, PasswordHash: hash, CreatedAt: now, UpdatedAt: now}
	if err := st.CreateUser(ctx, u, audit.NewUserCreated(meta, u.ID)); err != nil {
		return nil, fmt.Errorf("storing the user: %w", err)
	}
	if withProvider {
		p := &store.Provider{TenantID: store.DefaultTenant, ID: name, Name: name, Kind: store.ProviderAPIKey, KeyHeader: "X-API-Key", CreatedAt: now, UpdatedAt: now}
		if err := st.CreateProvider(ctx, p, audit.NewProviderAdded(meta, audit.ProviderFields{ProviderID: p.ID, Kind: p.Kind})); err != nil {
			return nil, fmt.Errorf("storing the provider: %w", err)
		}
		r, err := st.GetResource(ctx, store.DefaultTenant, fx.Resource)
		if err != nil {
			return nil, err
		}
		r.Providers = []store.ResourceProvider{{ProviderID: p.ID, Scopes: map[string][]string{benchScope: {}}}}
		if err := st.UpdateResource(ctx, r, resourceEvent(r, audit.NewResourceUpdated, now)); err != nil {
			return nil, fmt.Errorf("linking the provider: %w", err)
		}
		fx.Provider = p.ID
	}
	return fx, nil
}

// printBench writes the report as a table.
func printBench(w io.Writer, rep *benchReport) error {
	fmt.Fprintf(w, "hub %s (%s), %d workers, %d subject tokens\n", rep.Hub, rep.Store, rep.Concurrency, rep.Subjects)
	if len(rep.Hubs) > 1 {
		fmt.Fprintf(w, "%d replicas, requests in turn: %s\n", len(rep.Hubs), strings.Join(rep.Hubs, " "))
	}
	t := newTable(w, "SCENARIO", "REQUESTS", "REQ/S", "P50 MS", "P90 MS", "P99 MS", "MAX MS", "ERRORS", "HUB CPU µS/REQ", "DB CPU µS/REQ", "TOOL CPU µS/REQ", "HUB PEAK RSS MIB", "STORE B/REQ")
	for _, r := range rep.Results {
		errs := fmt.Sprint(r.Errors)
		if r.Errors > 0 {
			var by []string
			for st, n := range r.ErrorsByStatus {
				by = append(by, fmt.Sprintf("%s:%d", st, n))
			}
			slices.Sort(by)
			errs += " (" + strings.Join(by, " ") + ")"
		}
		cpu, dbCPU, tool, rss, growth := "-", "-", "-", "-", "-"
		if r.Database != nil {
			dbCPU = fmt.Sprintf("%.0f", r.Database.CPUPerRequestMicros)
		}
		if r.ClientCPUPerRequestMicros > 0 {
			tool = fmt.Sprintf("%.0f", r.ClientCPUPerRequestMicros)
		}
		if r.Hub != nil {
			cpu = fmt.Sprintf("%.0f", r.Hub.CPUPerRequestMicros)
			rss = fmt.Sprintf("%.1f", float64(r.Hub.PeakRSSBytes)/(1<<20))
		}
		if r.StoreBytesPerRequest != 0 {
			growth = fmt.Sprintf("%.0f", r.StoreBytesPerRequest)
		}
		t.row(r.Scenario, fmt.Sprint(r.Requests), fmt.Sprintf("%.0f", r.PerSecond), fmt.Sprintf("%.2f", r.P50), fmt.Sprintf("%.2f", r.P90),
			fmt.Sprintf("%.2f", r.P99), fmt.Sprintf("%.2f", r.Max), errs, cpu, dbCPU, tool, rss, growth)
	}
	if err := t.flush(); err != nil {
		return err
	}
	for _, r := range rep.Results {
		if len(r.Hubs) > 1 {
			var per []string
			for _, u := range r.Hubs {
				per = append(per, fmt.Sprintf("%.0f", u.CPUPerRequestMicros))
			}
			fmt.Fprintf(w, "%s: hub CPU µs/req by replica (of all requests): %s\n", r.Scenario, strings.Join(per, " + "))
		}
		for _, n := range r.Notes {
			fmt.Fprintf(w, "%s: %s\n", r.Scenario, n)
		}
		if r.FirstError != "" {
			fmt.Fprintf(w, "%s: first error: %s\n", r.Scenario, r.FirstError)
		}
	}
	return nil
}

// startCPUProfile writes this process's CPU profile to path until the
// returned function is called: the scenarios' runs (warm-up included),
// not the setup.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
