package mcpauth

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Tool call outcomes a [Reporter] reports.
const (
	// ToolSuccess: the tool ran and returned a result.
	ToolSuccess = "success"
	// ToolError: the tool failed (a tool error result or an error).
	ToolError = "error"
	// ToolDenied: the server refused the call before the tool ran (a
	// missing scope in [RequireScopes], a connection [ConnectTool] asked
	// for).
	ToolDenied = "denied"
)

// ToolCall is one tool call as a [Reporter] reports it to the hub. It names
// the token by its jti only; the hub reads who acted (agent, user, scopes)
// from its own record of that token.
type ToolCall struct {
	Tool     string
	Outcome  string // ToolSuccess, ToolError or ToolDenied
	Duration time.Duration
	// Time is when the call started; zero means when Report is called.
	Time time.Time
	// JTI is the jti of the access token the call was made with.
	JTI string
	// ActChain is the token's delegation chain ([Claims.Actors] subjects,
	// current actor first); nil without delegation.
	ActChain []string
	// ID names the report for de-duplication: the hub records one event
	// per reporting client and ID, so a batch sent again after a lost
	// answer is not recorded twice. Empty means [Reporter.Report] draws a
	// random one.
	ID string
}

// ToolCallOf is the report of a call made with the token behind claims.
func ToolCallOf(claims *Claims, tool, outcome string, start time.Time, d time.Duration) ToolCall {
	tc := ToolCall{Tool: tool, Outcome: outcome, Time: start, Duration: d, JTI: claims.JTI}
	for _, a := range claims.Actors() {
		tc.ActChain = append(tc.ActChain, a.Subject)
	}
	return tc
}

// ReporterConfig configures a [Reporter]. Zero values mean the documented
// defaults.
type ReporterConfig struct {
	// Issuer is the hub's issuer URL; reports go to Issuer + "/tools/report".
	Issuer string
	// ClientID and ClientSecret are the MCP server's own client at the hub,
	// the one linked to its resource (sent with HTTP Basic).
	ClientID, ClientSecret string
	// HTTPClient sends the reports; nil means a client with a 10-second
	// timeout.
	HTTPClient *http.Client
	// BatchSize is the most reports one request carries (default 100, at
	// most 500, the hub's limit).
	BatchSize int
	// FlushInterval is how long a report may wait for a full batch
	// (default 2s).
	FlushInterval time.Duration
	// MaxQueue bounds the reports held in memory (default 10000); Report
	// drops beyond it and counts the drop.
	MaxQueue int
	// MaxRetryAge is how long a report is retried while the hub is
	// unreachable (default 15 minutes); older ones are dropped and
	// counted.
	MaxRetryAge time.Duration
	// MaxBackoff caps the wait between attempts while the hub is down
	// (default 30s; the first wait is a tenth of it at most 500ms).
	MaxBackoff time.Duration
	// Logger receives failures (nil: discarded). Reports are logged by
	// tool and jti only.
	Logger *slog.Logger
}

// maxReportBatch is the hub's batch limit.
const maxReportBatch = 500

// Validate reports every problem with the configuration at once.
func (c *ReporterConfig) Validate() error {
	var errs []error
	if err := checkHTTPURL(c.Issuer, false); err != nil {
		errs = append(errs, fmt.Errorf("ReporterConfig.Issuer: %w", err))
	}
	if c.ClientID == "" || c.ClientSecret == "" {
		errs = append(errs, errors.New("ReporterConfig.ClientID and ClientSecret: required"))
	}
	if c.BatchSize < 0 || c.BatchSize > maxReportBatch {
		errs = append(errs, fmt.Errorf("ReporterConfig.BatchSize: must be between 1 and %d", maxReportBatch))
	}
	if c.FlushInterval < 0 || c.MaxQueue < 0 || c.MaxRetryAge < 0 || c.MaxBackoff < 0 {
		errs = append(errs, errors.New("ReporterConfig.FlushInterval, MaxQueue, MaxRetryAge and MaxBackoff: must not be negative"))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("mcpauth: reporter: %w", errors.Join(errs...))
}

// ReporterStats counts what a [Reporter] did with the reports it was given.
type ReporterStats struct {
	// Recorded: the hub wrote the report. Refused: the hub refused it
	// (its answer per report, or the whole batch with a 4xx).
	Recorded, Refused uint64
	// DroppedFull: dropped because the queue was full (or the reporter
	// closed). DroppedStale: dropped after MaxRetryAge without reaching
	// the hub.
	DroppedFull, DroppedStale uint64
	// Queued is how many wait to be sent.
	Queued int
}

// Reporter sends tool calls to the hub's audit trail, batched and in the
// background: Report never blocks and never fails the call it reports.
// While the hub is unreachable it retries with exponential backoff and
// jitter, holding at most MaxQueue reports and none older than
// MaxRetryAge; what it cannot hold it drops and counts ([Reporter.Stats]).
// Delivery is at least once: a batch whose answer was lost is sent again.
// Its [Reporter.Middleware] reports every tool call an MCP Go SDK server
// serves.
type Reporter struct {
	cfg      ReporterConfig
	endpoint string
	log      *slog.Logger
	now      func() time.Time

	mu     sync.Mutex
	queue  []ToolCall
	closed bool

	wake    chan struct{} // a full batch waits
	closing chan struct{} // Close was called
	done    chan struct{} // the sender returned
	cancel  context.CancelFunc

	recorded, refused, droppedFull, droppedStale atomic.Uint64
}

// NewReporter validates cfg and starts the reporter's sender; stop it
// with [Reporter.Close].
func NewReporter(cfg ReporterConfig) (*Reporter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = 100
	}
	if cfg.FlushInterval == 0 {
		cfg.FlushInterval = 2 * time.Second
	}
	if cfg.MaxQueue == 0 {
		cfg.MaxQueue = 10000
	}
	if cfg.MaxRetryAge == 0 {
		cfg.MaxRetryAge = 15 * time.Minute
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	r := &Reporter{
		cfg: cfg, endpoint: strings.TrimRight(cfg.Issuer, "/") + "/tools/report", log: cfg.Logger, now: time.Now,
		wake: make(chan struct{}, 1), closing: make(chan struct{}), done: make(chan struct{}),
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go r.run(ctx)
	return r, nil
}

// Report queues one tool call. It never blocks: when the queue is full or
// the reporter is closed the call is dropped and counted. ctx is not
// retained (the report outlives the request).
func (r *Reporter) Report(_ context.Context, tc ToolCall) {
	if tc.Time.IsZero() {
		tc.Time = r.now()
	}
	if tc.ID == "" {
		tc.ID = reportID()
	}
	r.mu.Lock()
	if r.closed || len(r.queue) >= r.cfg.MaxQueue {
		r.mu.Unlock()
		r.droppedFull.Add(1)
		return
	}
	r.queue = append(r.queue, tc)
	full := len(r.queue) >= r.cfg.BatchSize
	r.mu.Unlock()
	if full {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// Stats returns the reporter's counters.
func (r *Reporter) Stats() ReporterStats {
	r.mu.Lock()
	q := len(r.queue)
	r.mu.Unlock()
	return ReporterStats{
		Recorded: r.recorded.Load(), Refused: r.refused.Load(),
		DroppedFull: r.droppedFull.Load(), DroppedStale: r.droppedStale.Load(), Queued: q,
	}
}

// Close stops accepting reports and sends what is queued, until ctx ends;
// then it stops the sender. It returns ctx's error when reports were left
// unsent (they are counted as dropped). Close is safe to call more than
// once.
func (r *Reporter) Close(ctx context.Context) error {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.closing)
	}
	r.mu.Unlock()
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		r.cancel()
		<-r.done
		return ctx.Err()
	}
}

// run is the sender: it sends a batch when one is full, when the flush
// interval passed, and everything when closing; after a failure it waits
// out a backoff (reports keep queueing meanwhile).
func (r *Reporter) run(ctx context.Context) {
	defer close(r.done)
	defer r.cancel()
	tick := time.NewTicker(r.cfg.FlushInterval)
	defer tick.Stop()
	failures := 0
	closing := false
	for {
		// A wake-up sends full batches only (it may be stale: the batch
		// it announced went out with the previous one); the interval and
		// closing send everything.
		fullOnly := false
		if !closing {
			select {
			case <-r.wake:
				fullOnly = true
			case <-tick.C:
			case <-r.closing:
				closing = true
			case <-ctx.Done():
				r.dropRest()
				return
			}
		}
		for {
			if fullOnly && r.queued() < r.cfg.BatchSize {
				break
			}
			batch := r.take()
			if len(batch) == 0 {
				break
			}
			if err := r.send(ctx, batch); err != nil {
				r.putBack(batch)
				if ctx.Err() != nil {
					r.dropRest()
					return
				}
				failures++
				wait := r.backoff(failures)
				r.log.WarnContext(ctx, "mcpauth: tool reports not delivered; retrying", "reports", len(batch), "retry_in", wait, "err", err)
				select {
				case <-time.After(wait):
				case <-ctx.Done():
					r.dropRest()
					return
				case <-r.closing:
					// Closing: keep trying until Close's ctx ends.
					if !closing {
						closing = true
					} else {
						select {
						case <-time.After(wait):
						case <-ctx.Done():
							r.dropRest()
							return
						}
					}
				}
				continue
			}
			failures = 0
			if !closing {
				fullOnly = true
			}
		}
		if closing {
			return
		}
	}
}

// backoff is the wait after n consecutive failures: exponential from
// MaxBackoff/10 (at most 500ms), capped at MaxBackoff, with full jitter
// in its upper half.
func (r *Reporter) backoff(n int) time.Duration {
	base := min(r.cfg.MaxBackoff/10, 500*time.Millisecond)
	d := base << min(n-1, 16)
	if d > r.cfg.MaxBackoff || d <= 0 {
		d = r.cfg.MaxBackoff
	}
	return d/2 + rand.N(d/2+1)
}

// take removes up to BatchSize reports from the front of the queue,
// dropping (and counting) those older than MaxRetryAge.
func (r *Reporter) take() []ToolCall {
	cutoff := r.now().Add(-r.cfg.MaxRetryAge)
	r.mu.Lock()
	defer r.mu.Unlock()
	kept := r.queue[:0]
	for _, tc := range r.queue {
		if tc.Time.Before(cutoff) {
			r.droppedStale.Add(1)
			continue
		}
		kept = append(kept, tc)
	}
	clear(r.queue[len(kept):])
	r.queue = kept
	n := min(len(r.queue), r.cfg.BatchSize)
	batch := append([]ToolCall(nil), r.queue[:n]...)
	r.queue = append(r.queue[:0:0], r.queue[n:]...)
	return batch
}

// putBack returns an unsent batch to the front of the queue; what no
// longer fits in MaxQueue (newer reports came meanwhile) is dropped.
func (r *Reporter) putBack(batch []ToolCall) {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := append(batch, r.queue...)
	if over := len(q) - r.cfg.MaxQueue; over > 0 {
		r.droppedFull.Add(uint64(over))
		q = q[:r.cfg.MaxQueue]
	}
	r.queue = q
}

func (r *Reporter) queued() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.queue)
}

// dropRest counts what is left as dropped when the sender stops.
func (r *Reporter) dropRest() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.droppedFull.Add(uint64(len(r.queue)))
	r.queue = nil
}

// Wire form of POST /tools/report.
type wireToolReport struct {
	ID         string    `json:"id,omitempty"`
	JTI        string    `json:"jti"`
	Tool       string    `json:"tool"`
	Outcome    string    `json:"outcome"`
	DurationMS int64     `json:"duration_ms"`
	Time       time.Time `json:"time"`
	ActChain   []string  `json:"act_chain,omitempty"`
}

type wireToolReportResponse struct {
	Recorded int `json:"recorded"`
	Refused  int `json:"refused"`
	Results  []struct {
		Status string `json:"status"`
		Error  string `json:"error"`
	} `json:"results"`
}

// errRetry marks a failure worth retrying (network, 5xx, 429).
var errRetry = errors.New("hub unavailable")

// send delivers one batch. A nil error means the hub answered for it
// (recorded or refused, counted); an error means it should be retried.
func (r *Reporter) send(ctx context.Context, batch []ToolCall) error {
	body := struct {
		Reports []wireToolReport `json:"reports"`
	}{make([]wireToolReport, len(batch))}
	for i, tc := range batch {
		body.Reports[i] = wireToolReport{ID: tc.ID, JTI: tc.JTI, Tool: tc.Tool, Outcome: tc.Outcome, DurationMS: tc.Duration.Milliseconds(), Time: tc.Time.UTC(), ActChain: tc.ActChain}
	}
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.endpoint, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(url.QueryEscape(r.cfg.ClientID), url.QueryEscape(r.cfg.ClientSecret)) // RFC 6749 §2.3.1
	resp, err := r.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %w", errRetry, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%w: %w", errRetry, err)
	}
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return fmt.Errorf("%w: HTTP %d", errRetry, resp.StatusCode)
	default:
		// The hub refused the batch as a whole (credentials, a server
		// not linked to a resource, a malformed batch): sending it again
		// would be refused again.
		r.refused.Add(uint64(len(batch)))
		r.log.ErrorContext(ctx, "mcpauth: the hub refused a batch of tool reports", "reports", len(batch), "status", resp.StatusCode, "body", truncateForLog(raw))
		return nil
	}
	var out wireToolReportResponse
	if err := json.Unmarshal(raw, &out); err != nil || len(out.Results) != len(batch) {
		// An answer we cannot read: the hub took the batch, so retrying
		// would record it twice; count it as recorded.
		r.recorded.Add(uint64(len(batch)))
		return nil
	}
	for i, res := range out.Results {
		if res.Status == "recorded" {
			r.recorded.Add(1)
			continue
		}
		r.refused.Add(1)
		r.log.WarnContext(ctx, "mcpauth: the hub refused a tool report", "tool", batch[i].Tool, "jti", batch[i].JTI, "error", res.Error)
	}
	return nil
}

// reportID is a random report id: 128 bits, base64url (22 characters).
func reportID() string {
	var b [16]byte
	_, _ = crand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func truncateForLog(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}

// reportState travels in a tool call's context from [Reporter.Middleware]
// to the wrappers that refuse calls, so the report says denied.
type reportState struct{ denied atomic.Bool }

type reportStateKey struct{}

// markDenied notes that the call in ctx was refused before the tool ran.
func markDenied(ctx context.Context) {
	if st, ok := ctx.Value(reportStateKey{}).(*reportState); ok {
		st.denied.Store(true)
	}
}

// Middleware is an MCP Go SDK receiving middleware that reports every
// tools/call the server serves (server.AddReceivingMiddleware). Calls
// without a token verified by [Middleware] or [Verifier.TokenVerifier] are
// not reported: there is no token for the hub to link them to. The
// outcome is ToolDenied when [RequireScopes] or [ConnectTool] refused the
// call, ToolError for an error or a tool error result, ToolSuccess
// otherwise.
func (r *Reporter) Middleware() mcp.Middleware {
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			call, ok := req.(*mcp.CallToolRequest)
			if method != "tools/call" || !ok || call.Params == nil {
				return next(ctx, method, req)
			}
			var claims *Claims
			if extra := call.GetExtra(); extra != nil {
				claims, _ = ClaimsFromTokenInfo(extra.TokenInfo)
			}
			if claims == nil {
				return next(ctx, method, req)
			}
			st := &reportState{}
			ctx = context.WithValue(ctx, reportStateKey{}, st)
			start := r.now()
			res, err := next(ctx, method, req)
			outcome := ToolSuccess
			switch {
			case st.denied.Load():
				outcome = ToolDenied
			case err != nil:
				outcome = ToolError
			default:
				if tr, ok := res.(*mcp.CallToolResult); ok && tr != nil && tr.IsError {
					outcome = ToolError
				}
			}
			r.Report(ctx, ToolCallOf(claims, call.Params.Name, outcome, start, r.now().Sub(start)))
			return res, err
		}
	}
}
