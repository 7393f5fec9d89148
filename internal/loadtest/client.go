package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// client is the scenarios' HTTP/1.1 client: each worker owns one
// keep-alive connection per hub and makes one request at a time on it,
// writing a request built from prebuilt parts and reading the answer on
// its own goroutine. net/http's client hands every request to a writer
// and a reader goroutine of the connection and allocates a request, a
// response and their header maps; on a machine whose two cores the hub
// shares, that was a third of the tool's CPU per request (docs/
// benchmarks.md, "The load tool's own cost"). Requests go to the hubs in
// turn, one after the other from each worker.
type client struct {
	hubs []hubAddr
	// conns[worker][hub] is the worker's connection to the hub (nil until
	// its first request or after an error).
	conns [][]*conn
	// turn[worker] counts the worker's requests, for the round robin.
	turn []int

	mu     sync.Mutex
	open   map[net.Conn]struct{} // every connection, for close
	closed bool
}

// hubAddr is where a hub is reached: the address to dial, the Host header,
// TLS (nil: plain HTTP) and the path its endpoints are under.
type hubAddr struct {
	dial, host, path string
	tls              *tls.Config
}

// conn is a worker's keep-alive connection.
type conn struct {
	c net.Conn
	r *bufio.Reader
	// served counts the answers read on the connection; idle is when the
	// last one ended and deadline the I/O deadline last set.
	served   int
	idle     time.Time
	deadline time.Time
}

const (
	// requestTimeout bounds a request that hangs: the deadline set on a
	// connection is renewed only when less than this is left, so that most
	// requests set none.
	requestTimeout = 30 * time.Second
	// maxIdle is how long a connection may rest before it is replaced
	// rather than reused: well under a server's idle timeout (the hub's
	// is 2 minutes), so that a pause between scenarios never meets a
	// connection the server is closing.
	maxIdle = 10 * time.Second
)

// newClient is a client for concurrency workers over the hubs' base URLs
// (http or https, with an optional path).
func newClient(hubs []string, concurrency int) (*client, error) {
	c := &client{conns: make([][]*conn, concurrency), turn: make([]int, concurrency), open: map[net.Conn]struct{}{}}
	for _, h := range hubs {
		u, err := url.Parse(h)
		if err != nil {
			return nil, fmt.Errorf("hub %q: %w", h, err)
		}
		a := hubAddr{host: u.Host, path: strings.TrimSuffix(u.EscapedPath(), "/"), dial: u.Host}
		switch u.Scheme {
		case "http":
			if u.Port() == "" {
				a.dial = net.JoinHostPort(u.Hostname(), "80")
			}
		case "https":
			if u.Port() == "" {
				a.dial = net.JoinHostPort(u.Hostname(), "443")
			}
			a.tls = &tls.Config{ServerName: u.Hostname(), NextProtos: []string{"http/1.1"}}
		default:
			return nil, fmt.Errorf("hub %q: not an http or https URL", h)
		}
		if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("hub %q: a base URL has a host and no user, query or fragment", h)
		}
		c.hubs = append(c.hubs, a)
	}
	if len(c.hubs) == 0 {
		return nil, errors.New("no hub")
	}
	for i := range c.conns {
		c.conns[i] = make([]*conn, len(c.hubs))
	}
	return c, nil
}

// closeAll closes every connection, ending the requests under way; the
// client makes no more.
func (c *client) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for nc := range c.open {
		nc.Close()
	}
	clear(c.open)
}

// request is a request's fixed parts for every hub: the request line and
// headers up to "Content-Length: ", prebuilt once per scenario.
type request struct {
	heads [][]byte
}

// newRequest prebuilds a POST to path with form-encoded bodies, as cred
// (client_secret_basic, RFC 6749 §2.3.1).
func (c *client) newRequest(path string, cred *Credentials) *request {
	r := &request{}
	auth := ""
	if cred != nil {
		auth = "Authorization: Basic " + basicAuth(url.QueryEscape(cred.ID), url.QueryEscape(cred.Secret)) + "\r\n"
	}
	for _, h := range c.hubs {
		r.heads = append(r.heads, []byte("POST "+h.path+path+" HTTP/1.1\r\nHost: "+h.host+"\r\n"+auth+
			"Content-Type: application/x-www-form-urlencoded\r\nAccept: application/json\r\nUser-Agent: agentid-bench\r\nContent-Length: "))
	}
	return r
}

// exchangeBuf is a worker's reusable request and answer memory.
type exchangeBuf struct {
	req, body []byte
}

// answer is what a request got back: the status and the body (valid
// until the worker's next request).
type answer struct {
	status int
	body   []byte
}

// do sends r with the body made of parts (already form-encoded) from
// worker to its next hub and reads the whole answer.
func (c *client) do(ctx context.Context, worker int, r *request, buf *exchangeBuf, parts ...string) (answer, error) {
	if err := ctx.Err(); err != nil {
		return answer{}, err
	}
	hub := (worker + c.turn[worker]) % len(c.hubs)
	c.turn[worker]++
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	b := append(buf.req[:0], r.heads[hub]...)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, "\r\n\r\n"...)
	for _, p := range parts {
		b = append(b, p...)
	}
	buf.req = b
	for attempt := 0; ; attempt++ {
		cn, err := c.conn(ctx, worker, hub)
		if err != nil {
			return answer{}, err
		}
		ans, got, err := c.roundTrip(cn, b, buf)
		if err == nil {
			return ans, nil
		}
		c.drop(worker, hub)
		if errors.Is(err, errClosing) {
			return ans, nil
		}
		// A reused connection that ended before a byte of the answer: a
		// server closes idle connections between requests, so once more on
		// a new one. (One that read the request and died without a word
		// would see it twice; connections idle for maxIdle are not reused,
		// far below the idle timeouts of servers, so the retry is rare.)
		// Anything else is the request's failure.
		if attempt == 0 && cn.served > 0 && !got && closedByPeer(err) && ctx.Err() == nil {
			continue
		}
		return answer{}, err
	}
}

// closedByPeer says whether err is the peer's close of the connection.
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// conn is worker's connection to hub, dialled when it has none or the
// one it has rested too long.
func (c *client) conn(ctx context.Context, worker, hub int) (*conn, error) {
	cn := c.conns[worker][hub]
	if cn != nil && time.Since(cn.idle) < maxIdle {
		return cn, nil
	}
	if cn != nil {
		c.drop(worker, hub)
	}
	h := c.hubs[hub]
	d := net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	var nc net.Conn
	var err error
	if h.tls != nil {
		nc, err = (&tls.Dialer{NetDialer: &d, Config: h.tls}).DialContext(ctx, "tcp", h.dial)
	} else {
		nc, err = d.DialContext(ctx, "tcp", h.dial)
	}
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		nc.Close()
		return nil, net.ErrClosed
	}
	c.open[nc] = struct{}{}
	c.mu.Unlock()
	cn = &conn{c: nc, r: bufio.NewReaderSize(nc, 16<<10), idle: time.Now()}
	c.conns[worker][hub] = cn
	return cn, nil
}

// drop closes worker's connection to hub.
func (c *client) drop(worker, hub int) {
	cn := c.conns[worker][hub]
	if cn == nil {
		return
	}
	c.conns[worker][hub] = nil
	c.mu.Lock()
	delete(c.open, cn.c)
	c.mu.Unlock()
	cn.c.Close()
}

// roundTrip writes req on cn and reads the answer into buf.body. got says
// whether any byte of the answer arrived. An error leaves cn unusable.
func (c *client) roundTrip(cn *conn, req []byte, buf *exchangeBuf) (ans answer, got bool, err error) {
	now := time.Now()
	if cn.deadline.Sub(now) < requestTimeout {
		cn.deadline = now.Add(2 * requestTimeout)
		if err := cn.c.SetDeadline(cn.deadline); err != nil {
			return answer{}, false, err
		}
	}
	if _, err := cn.c.Write(req); err != nil {
		return answer{}, false, err
	}
	line, err := cn.r.ReadSlice('\n')
	if err != nil {
		return answer{}, len(line) > 0, err
	}
	got = true
	status, http10, err := parseStatusLine(line)
	if err != nil {
		return answer{}, got, err
	}
	length, chunked, closing := int64(-1), false, http10
	for {
		line, err := cn.r.ReadSlice('\n')
		if err != nil {
			return answer{}, got, fmt.Errorf("reading the answer's header: %w", err)
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return answer{}, got, fmt.Errorf("malformed header line %q", line)
		}
		v = bytes.TrimSpace(v)
		switch {
		case asciiEqualFold(k, "content-length"):
			if length, err = strconv.ParseInt(string(v), 10, 64); err != nil || length < 0 {
				return answer{}, got, fmt.Errorf("bad Content-Length %q", v)
			}
		case asciiEqualFold(k, "transfer-encoding"):
			if !asciiEqualFold(v, "chunked") {
				return answer{}, got, fmt.Errorf("unsupported Transfer-Encoding %q", v)
			}
			chunked = true
		case asciiEqualFold(k, "connection"):
			if bytes.Contains(bytes.ToLower(v), []byte("close")) {
				closing = true
			}
		}
	}
	body := buf.body[:0]
	switch {
	case status/100 == 1 || status == 204 || status == 304:
		// No body (RFC 9112 §6.3).
	case chunked:
		if body, err = readChunked(cn.r, body); err != nil {
			return answer{}, got, err
		}
	case length >= 0:
		if length > maxAnswer {
			return answer{}, got, fmt.Errorf("answer of %d bytes", length)
		}
		body = grow(body, int(length))
		if _, err := io.ReadFull(cn.r, body); err != nil {
			return answer{}, got, fmt.Errorf("reading the answer's body: %w", err)
		}
	default:
		// Delimited by the close (RFC 9112 §6.3, last rule).
		closing = true
		if body, err = readAll(cn.r, body); err != nil {
			return answer{}, got, err
		}
	}
	buf.body = body
	cn.served++
	cn.idle = time.Now()
	if closing {
		return answer{status: status, body: body}, got, errClosing
	}
	return answer{status: status, body: body}, got, nil
}

// errClosing marks an answer read in full on a connection the server
// closes after it: the answer stands, the connection goes.
var errClosing = errors.New("connection closing")

// parseStatusLine reads "HTTP/1.x NNN reason".
func parseStatusLine(line []byte) (status int, http10 bool, err error) {
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, false, fmt.Errorf("malformed status line %q", bytes.TrimSpace(line))
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil || status < 100 || status > 999 {
		return 0, false, fmt.Errorf("malformed status line %q", bytes.TrimSpace(line))
	}
	return status, line[7] == '0', nil
}

// readChunked reads a chunked body (RFC 9112 §7.1) onto body; trailers
// are skipped.
func readChunked(r *bufio.Reader, body []byte) ([]byte, error) {
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return nil, fmt.Errorf("reading a chunk: %w", err)
		}
		size, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(";"))
		n, err := strconv.ParseInt(string(bytes.TrimSpace(size)), 16, 64)
		if err != nil || n < 0 || int64(len(body))+n > maxAnswer {
			return nil, fmt.Errorf("bad chunk size %q", size)
		}
		if n == 0 {
			for { // trailers, up to the empty line
				line, err := r.ReadSlice('\n')
				if err != nil {
					return nil, fmt.Errorf("reading the trailers: %w", err)
				}
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					return body, nil
				}
			}
		}
		start := len(body)
		body = grow(body, start+int(n))
		if _, err := io.ReadFull(r, body[start:]); err != nil {
			return nil, fmt.Errorf("reading a chunk: %w", err)
		}
		if crlf, err := r.ReadSlice('\n'); err != nil || len(bytes.TrimRight(crlf, "\r\n")) != 0 {
			return nil, errors.New("a chunk not followed by CRLF")
		}
	}
}

// readAll reads r to its end onto body, up to maxAnswer.
func readAll(r io.Reader, body []byte) ([]byte, error) {
	for {
		if len(body) == cap(body) {
			body = append(body, 0)[:len(body)]
		}
		n, err := r.Read(body[len(body):cap(body)])
		body = body[:len(body)+n]
		if len(body) > maxAnswer {
			return nil, errors.New("answer too long")
		}
		if err == io.EOF {
			return body, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// grow returns b resized to n bytes, its content kept, reusing its memory
// when it can.
func grow(b []byte, n int) []byte {
	if cap(b) >= n {
		return b[:n]
	}
	nb := make([]byte, n, max(n, 2*cap(b)))
	copy(nb, b)
	return nb
}

// asciiEqualFold compares a header name or token with lower-case s.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// basicAuth is the credentials of the Basic scheme (RFC 7617 §2).
func basicAuth(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}
