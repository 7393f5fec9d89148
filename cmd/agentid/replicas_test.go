package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentid/agentid/internal/audit/sink"
	"github.com/agentid/agentid/mcpauth"
)

// This file holds the pieces of a multi-replica deployment run by a test:
// `agentid serve` processes sharing one store, a round-robin load balancer
// in front of them, and plain HTTP calls aimed at one replica or at the
// balancer.

// replica is one `agentid serve` process, run by the test binary as the
// agentid command line (asCLIEnv), on its own listener.
type replica struct {
	name   string
	url    string // http://127.0.0.1:PORT, the replica's own address
	cmd    *exec.Cmd
	stderr *syncBuffer
	// exited is closed once the process is reaped; waitErr is then
	// what Wait said.
	exited  chan struct{}
	waitErr error
}

// startReplica starts `agentid serve` with env and waits for its
// "listening" line. It never calls t.Fatal, so that replicas can start
// concurrently; the process is stopped (SIGTERM, then SIGKILL) when the
// test ends.
func startReplica(t *testing.T, name string, env map[string]string, args ...string) (*replica, error) {
	r := &replica{name: name, cmd: agentidCommand(t, env, append(args, "serve")...), stderr: &syncBuffer{}, exited: make(chan struct{})}
	stdout, err := r.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	r.cmd.Stderr = r.stderr
	if err := r.cmd.Start(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { r.stop() })
	first := make(chan string, 1)
	go func() {
		br := bufio.NewReader(stdout)
		line, _ := br.ReadString('\n')
		first <- line
		// Wait only once stdout is drained (exec.Cmd's rule for pipes).
		_, _ = io.Copy(io.Discard, br)
		r.waitErr = r.cmd.Wait()
		close(r.exited)
	}()
	select {
	case line := <-first:
		m := listeningLine.FindStringSubmatch(line)
		if m == nil {
			r.kill()
			return nil, fmt.Errorf("replica %s did not start (%q, %v):\n%s", name, line, r.waitErr, r.stderr.String())
		}
		r.url = m[1]
		return r, nil
	case <-time.After(30 * time.Second):
		r.kill()
		return nil, fmt.Errorf("replica %s printed nothing for 30 s:\n%s", name, r.stderr.String())
	}
}

// kill ends the process with SIGKILL, as a crash would, and reaps it.
func (r *replica) kill() {
	select {
	case <-r.exited:
		return
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.exited
}

// stop asks the process to shut down (SIGTERM) and waits for it, killing
// it when it takes longer than its shutdown deadline. It returns the exit
// code, -1 for a process ended by a signal.
func (r *replica) stop() int {
	select {
	case <-r.exited:
	default:
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.exited:
		case <-time.After(shutdownTimeout + 5*time.Second):
			r.kill()
		}
	}
	return r.cmd.ProcessState.ExitCode()
}

// alive reports whether the process still runs.
func (r *replica) alive() bool {
	select {
	case <-r.exited:
		return false
	default:
		return true
	}
}

// balancer is a round-robin load balancer: each request goes to the next
// replica in turn, so consecutive requests of one flow land on different
// processes. A replica that refuses the connection (it is gone) is
// skipped for the next one, as a balancer's health check would; a request
// that reached a replica is never sent twice.
type balancer struct {
	mu       sync.Mutex
	replicas []*replica
	next     int
	served   map[string]int // replica name → requests it answered
	trail    []string       // replica name of every answered request, in order
	tr       *http.Transport
}

// newBalancer starts the balancer on 127.0.0.1; its URL is the issuer of
// the replicas, which are added with add once they listen.
func newBalancer(t *testing.T) (*balancer, *httptest.Server) {
	b := &balancer{served: map[string]int{}, tr: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}}
	proxy := &httputil.ReverseProxy{
		// The request keeps its path, query and Host (the issuer's);
		// RoundTrip picks the replica.
		Rewrite:   func(*httputil.ProxyRequest) {},
		Transport: b,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, "balancer: "+err.Error(), http.StatusBadGateway)
		},
	}
	srv := httptest.NewServer(proxy)
	t.Cleanup(func() {
		srv.Close()
		b.tr.CloseIdleConnections()
	})
	return b, srv
}

func (b *balancer) add(rs ...*replica) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.replicas = append(b.replicas, rs...)
}

// mark returns the length of the trail, for trailSince.
func (b *balancer) mark() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.trail)
}

// trailSince lists the replicas that answered the requests after mark.
func (b *balancer) trailSince(mark int) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.trail[mark:])
}

// servedBy returns how many requests each replica answered.
func (b *balancer) servedBy() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]int, len(b.served))
	for k, v := range b.served {
		out[k] = v
	}
	return out
}

func (b *balancer) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = io.ReadAll(io.LimitReader(req.Body, 1<<20)); err != nil {
			return nil, err
		}
		req.Body.Close()
	}
	b.mu.Lock()
	rs := slices.Clone(b.replicas)
	start := b.next
	b.next++
	b.mu.Unlock()
	if len(rs) == 0 {
		return nil, errors.New("no replica")
	}
	var lastErr error
	for i := range rs {
		r := rs[(start+i)%len(rs)]
		u, _ := url.Parse(r.url)
		out := req.Clone(req.Context())
		out.URL.Scheme, out.URL.Host = u.Scheme, u.Host
		if body != nil {
			out.Body = io.NopCloser(bytes.NewReader(body))
			out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
			out.ContentLength = int64(len(body))
		}
		resp, err := b.tr.RoundTrip(out)
		if err == nil {
			b.mu.Lock()
			b.served[r.name]++
			b.trail = append(b.trail, r.name)
			b.mu.Unlock()
			return resp, nil
		}
		// Only a refused connection is tried elsewhere: a request that
		// was sent may have been served.
		var op *net.OpError
		if !errors.As(err, &op) || op.Op != "dial" {
			return nil, err
		}
		lastErr = err
	}
	return nil, lastErr
}

// reply is a JSON answer of the hub.
type reply struct {
	status int
	body   map[string]any
}

func (r reply) str(k string) string { s, _ := r.body[k].(string); return s }

func (r reply) String() string {
	b, _ := json.Marshal(r.body)
	return fmt.Sprintf("%d %s", r.status, b)
}

// hubHTTP is the client for calls a test makes to one replica or the
// balancer (no cookies, no redirects followed).
var hubHTTP = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// post sends form to base+path as the client id (HTTP Basic, RFC 6749
// §2.3.1; none when id is empty), with header pairs hdr, and decodes the
// JSON answer. It returns errors rather than failing the test, for use
// from goroutines.
func post(base, path string, form url.Values, id, secret string, hdr ...string) (reply, error) {
	req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader(form.Encode()))
	if err != nil {
		return reply{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := hubHTTP.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	r := reply{status: resp.StatusCode, body: map[string]any{}}
	if len(raw) == 0 {
		return r, nil // e.g. revocation's empty 200 (RFC 7009 §2.2)
	}
	if err := json.Unmarshal(raw, &r.body); err != nil {
		return r, fmt.Errorf("POST %s: %d, not JSON: %.200s", path, resp.StatusCode, raw)
	}
	return r, nil
}

// jwtPart decodes part i (0 header, 1 claims) of a compact JWS without
// verifying it: the test reads the kid and jti of tokens it was given.
func jwtPart(tok string, i int) map[string]any {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return nil
	}
	return m
}

func kidOf(tok string) string { s, _ := jwtPart(tok, 0)["kid"].(string); return s }
func jtiOf(tok string) string { s, _ := jwtPart(tok, 1)["jti"].(string); return s }

// verifyAt verifies tok as the MCP server of resource would, with
// mcpauth in JWKS mode, where the issuer (the balancer's address) is
// served by replica r alone: its metadata and its key set.
func verifyAt(ctx context.Context, issuer, resource string, r *replica, tok string) error {
	iss, _ := url.Parse(issuer)
	dst, _ := url.Parse(r.url)
	client := &http.Client{Timeout: 5 * time.Second, Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if req.URL.Host == iss.Host {
			req = req.Clone(req.Context())
			req.URL.Host = dst.Host
		}
		return http.DefaultTransport.RoundTrip(req)
	})}
	v, err := mcpauth.NewVerifier(ctx, mcpauth.Config{Issuer: issuer, Resource: resource, HTTPClient: client})
	if err != nil {
		return err
	}
	_, err = v.Verify(ctx, tok)
	return err
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// propagation is how long a change took to be seen at each replica.
type propagation map[string]time.Duration

func (p propagation) max() time.Duration {
	var m time.Duration
	for _, d := range p {
		m = max(m, d)
	}
	return m
}

// atEveryReplicaWithin polls check at every replica, each in its own
// goroutine, until it holds there, for at most limit measured from since
// (the moment the change was made). A replica where it still fails then,
// or where it first held only after the limit (a check that answered
// late, or the first poll after the limit), is an error naming the
// replica and what it answered. It returns how long each replica took.
func atEveryReplicaWithin(t *testing.T, what string, since time.Time, limit time.Duration, rs []*replica, check func(*replica) error) propagation {
	t.Helper()
	p, failed := pollEveryReplica(since, limit, rs, check)
	if len(failed) > 0 {
		t.Errorf("%s: not at every replica within %s of the change:\n  %s", what, limit, strings.Join(failed, "\n  "))
	} else {
		t.Logf("%s: at every replica after %s (%s)", what, p.max().Round(time.Millisecond), p)
	}
	return p
}

// pollEveryReplica is atEveryReplicaWithin's polling: the time each
// replica took, and a line for each replica where check did not hold
// within limit of since, sorted. A success counts only if check
// returned within the limit: its answer is known then, and may reflect
// the store as late as that.
func pollEveryReplica(since time.Time, limit time.Duration, rs []*replica, check func(*replica) error) (propagation, []string) {
	type result struct {
		name string
		took time.Duration
		err  error
	}
	results := make(chan result, len(rs))
	for _, r := range rs {
		go func() {
			for {
				err := check(r)
				took := time.Since(since)
				if err == nil && took > limit {
					err = fmt.Errorf("held only after %s", took.Round(time.Millisecond))
				}
				if err == nil || took > limit {
					results <- result{r.name, took, err}
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	p := propagation{}
	var failed []string
	for range rs {
		res := <-results
		p[res.name] = res.took
		if res.err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", res.name, res.err))
		}
	}
	slices.Sort(failed)
	return p, failed
}

func (p propagation) String() string {
	names := make([]string, 0, len(p))
	for n := range p {
		names = append(names, n)
	}
	slices.Sort(names)
	parts := make([]string, 0, len(names))
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %s", n, p[n].Round(time.Millisecond)))
	}
	return strings.Join(parts, ", ")
}

// pid is the replica's process id.
func (r *replica) pid() int { return r.cmd.Process.Pid }

// holds reports whether a lease holder name (host/pid/random, as the
// audit sinks' dispatcher names itself) is this replica's.
func (r *replica) holds(holder string) bool {
	return regexp.MustCompile(`(^|\D)` + strconv.Itoa(r.pid()) + `(\D|$)`).MatchString(holder)
}

// hookReceiver is the receiving end of an audit webhook sink: it checks
// each delivery's signature and records the event ids of every batch.
type hookReceiver struct {
	key     []byte
	mu      sync.Mutex
	batches [][]int64
	bad     []string // deliveries refused, and why
}

func newHookReceiver(t *testing.T, key []byte) (*hookReceiver, *httptest.Server) {
	h := &hookReceiver{key: key}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return h, srv
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err == nil {
		err = sink.Verify(h.key, r.Header, body, time.Now(), 5*time.Minute)
	}
	var batch struct {
		Events []struct {
			ID int64 `json:"id"`
		} `json:"events"`
	}
	if err == nil {
		err = json.Unmarshal(body, &batch)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		h.bad = append(h.bad, err.Error())
		http.Error(w, "refused", http.StatusUnauthorized)
		return
	}
	ids := make([]int64, 0, len(batch.Events))
	for _, e := range batch.Events {
		ids = append(ids, e.ID)
	}
	h.batches = append(h.batches, ids)
}

// received returns how many times each event id was delivered, and the
// batches.
func (h *hookReceiver) received() (map[int64]int, [][]int64, []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := map[int64]int{}
	for _, b := range h.batches {
		for _, id := range b {
			n[id]++
		}
	}
	return n, slices.Clone(h.batches), slices.Clone(h.bad)
}
