package mcpauth

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// MCP revisions that change how a server asks the person to visit a URL.
const (
	// revisionURLElicitation (2025-11-25) added URL-mode elicitation, and
	// the URLElicitationRequired error (-32042) with an elicitationId and
	// notifications/elicitation/complete.
	revisionURLElicitation = "2025-11-25"
	// revisionStateless (2026-07-28, in headers.go) replaced both with
	// input-required results and a requestState the client echoes.
)

const (
	defaultStateTTL = 15 * time.Minute // the hub's connect URLs live as long
	minStateSecret  = 32
	maxStateBytes   = 2048
	stateVersion    = "v1"
	stateMACLabel   = "agentid mcpauth requestState v1"
	stateKeyInfo    = "agentid mcpauth requestState MAC key"
	// inputKeyPrefix names the input request of a connect elicitation;
	// the provider id follows.
	inputKeyPrefix = "connect_"
	// completionPollMax caps the interval between completion polls.
	completionPollMax = 30 * time.Second
)

// ConnectOptions configures a [Connector].
type ConnectOptions struct {
	// StateSecret is key material that every replica of this MCP server
	// shares (at least 32 bytes), for example its client secret at the hub
	// or a configured key. The key of the requestState MAC
	// (HMAC-SHA256) is derived from it with HKDF-SHA256, so the secret
	// itself is never used as a MAC key. Required.
	StateSecret []byte
	// StateTTL is how long after the person was asked a retried call is
	// still taken as the answer to that question. Zero means 15 minutes,
	// the lifetime of the hub's connect URLs.
	StateTTL time.Duration
	// Message is the text the client shows with the connect URL. Nil means
	// "Connect <provider> so that this tool can use it on your behalf."
	Message func(*ConnectRequiredError) string
	// Exchanger, when set, lets the Connector tell 2025-11-25 clients when
	// the person has connected (notifications/elicitation/complete): it
	// retrieves the credential again, first after CompletionPoll and then
	// at doubling intervals up to 30 seconds, until it succeeds, StateTTL
	// passes, the incoming token expires or the session ends. Each attempt
	// is a retrieval at the hub (and an audit event there). Nil sends no
	// notification; the SDK's client then returns the -32042 error to its
	// caller, who retries when the person says they are done.
	Exchanger      *Exchanger
	CompletionPoll time.Duration
	// Now is the clock and Rand the randomness (elicitation ids, state
	// nonces). Nil means time.Now and crypto/rand.
	Now  func() time.Time
	Rand io.Reader
	// Logger receives connect events; never a token or a URL. Nil discards.
	Logger *slog.Logger
}

// Validate reports every problem with the options at once.
func (o *ConnectOptions) Validate() error {
	var errs []error
	if len(o.StateSecret) < minStateSecret {
		errs = append(errs, fmt.Errorf("mcpauth: ConnectOptions.StateSecret: at least %d bytes required", minStateSecret))
	}
	if o.StateTTL < 0 {
		errs = append(errs, errors.New("mcpauth: ConnectOptions.StateTTL: must not be negative"))
	}
	if o.CompletionPoll < 0 {
		errs = append(errs, errors.New("mcpauth: ConnectOptions.CompletionPoll: must not be negative"))
	}
	if o.CompletionPoll > 0 && o.Exchanger == nil {
		errs = append(errs, errors.New("mcpauth: ConnectOptions.CompletionPoll: needs Exchanger"))
	}
	return errors.Join(errs...)
}

// Connector turns a [*ConnectRequiredError] inside an MCP tool call into
// the question the calling client's MCP revision can put to the person
// (see [ConnectTool]). It is safe for concurrent use.
type Connector struct {
	key     []byte
	ttl     time.Duration
	message func(*ConnectRequiredError) string
	exch    *Exchanger
	poll    time.Duration
	now     func() time.Time
	rand    io.Reader
	logger  *slog.Logger
}

// NewConnector validates opts and returns a Connector.
func NewConnector(opts ConnectOptions) (*Connector, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	key, err := hkdf.Key(sha256.New, opts.StateSecret, nil, stateKeyInfo, sha256.Size)
	if err != nil {
		return nil, fmt.Errorf("mcpauth: deriving the requestState key: %w", err)
	}
	c := &Connector{key: key, ttl: opts.StateTTL, message: opts.Message, exch: opts.Exchanger, poll: opts.CompletionPoll,
		now: opts.Now, rand: opts.Rand, logger: opts.Logger}
	if c.ttl == 0 {
		c.ttl = defaultStateTTL
	}
	if c.message == nil {
		c.message = func(e *ConnectRequiredError) string {
			if e.Status == ConnectionNeedsReauth {
				return "Connect " + e.Provider + " again so that this tool can use it on your behalf."
			}
			return "Connect " + e.Provider + " so that this tool can use it on your behalf."
		}
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.rand == nil {
		c.rand = rand.Reader
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// ContextWithClaims returns ctx carrying c, for [Exchanger.Connection] in
// code that [Middleware] did not call directly (a go-sdk tool handler gets
// the claims from req.Extra.TokenInfo with [ClaimsFromTokenInfo]).
// [ConnectTool] does this itself.
func ContextWithClaims(ctx context.Context, c *Claims) context.Context {
	return withClaims(ctx, c)
}

// ConnectTool wraps an MCP tool handler that uses connections. The handler
// runs with the request's [Claims] in its context, so that
// [Exchanger.Connection] and [Exchanger.HTTPClient] find the incoming
// token. When it returns an error that is a [*ConnectRequiredError], the
// call asks the person to connect, the way the client's revision (the
// request's negotiated protocol version and client capabilities) allows:
//
//   - MCP 2026-07-28 and later, with URL elicitation: an input-required
//     result with one URL-mode elicitation (key "connect_<provider>") and
//     a requestState that binds the tool, its arguments, the token's
//     issuer, subject and client, the elicitation and an expiry under an
//     HMAC-SHA256 every replica can check. The client's retry comes back
//     with the state and the person's answer: accept runs the handler
//     again; decline or cancel ends the call with a tool error; a state
//     that does not verify is an invalid-params error, an expired one is
//     ignored (the call starts over).
//   - MCP 2025-11-25, with URL elicitation: the URLElicitationRequired
//     error (-32042) carrying the elicitation with a fresh elicitationId;
//     with [ConnectOptions.Exchanger] the Connector also sends
//     notifications/elicitation/complete once the person has connected.
//   - Any other client: a tool error result whose text holds the URL.
//
// Every other result or error of h passes through unchanged.
func ConnectTool[In, Out any](c *Connector, h mcp.ToolHandlerFor[In, Out]) mcp.ToolHandlerFor[In, Out] {
	return func(ctx context.Context, req *mcp.CallToolRequest, in In) (*mcp.CallToolResult, Out, error) {
		var zero Out
		var claims *Claims
		if req != nil && req.Extra != nil {
			claims, _ = ClaimsFromTokenInfo(req.Extra.TokenInfo)
		}
		if claims == nil || req.Params == nil {
			return nil, zero, errors.New("unauthenticated: this tool requires an access token")
		}
		ctx = withClaims(ctx, claims)
		b, err := bindingOf(req.Params.Name, req.Params.Arguments, claims)
		if err != nil {
			return nil, zero, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "arguments are not valid JSON"}
		}
		if raw := req.Params.RequestState; raw != "" {
			st, err := c.openState(raw, b)
			switch {
			case errors.Is(err, errStateExpired):
				// The question is old: start over, and ask again if the
				// person still has not connected.
			case err != nil:
				c.logger.InfoContext(ctx, "mcpauth: requestState refused", "tool", b.tool, "err", err)
				return nil, zero, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "requestState is not valid for this call"}
			default:
				if action := elicitAction(req.Params.InputResponses, st.Key); action != "accept" {
					markDenied(ctx)
					return declined(st.Provider, action), zero, nil
				}
			}
		}
		res, out, err := h(ctx, req, in)
		var cre *ConnectRequiredError
		if err == nil || !errors.As(err, &cre) {
			return res, out, err
		}
		// The tool could not run without the connection it asks for.
		markDenied(ctx)
		res, err = c.ask(ctx, req, claims, b, cre)
		return res, zero, err
	}
}

// Revisions of a connect question.
type askMode int

const (
	askToolError askMode = iota
	askURLError
	askInputRequired
)

// modeOf decides how to ask from what the client negotiated (per request in
// 2026-07-28, per session before).
func modeOf(req *mcp.CallToolRequest) askMode {
	caps := req.ClientCapabilities()
	if caps == nil || caps.Elicitation == nil || caps.Elicitation.URL == nil {
		return askToolError
	}
	// Revisions are dates, so they order as strings.
	switch v := req.ProtocolVersion(); {
	case v >= revisionStateless:
		return askInputRequired
	case v >= revisionURLElicitation:
		return askURLError
	}
	return askToolError
}

func (c *Connector) ask(ctx context.Context, req *mcp.CallToolRequest, claims *Claims, b binding, cre *ConnectRequiredError) (*mcp.CallToolResult, error) {
	msg := c.message(cre)
	mode := modeOf(req)
	c.logger.InfoContext(ctx, "mcpauth: asking the person to connect", "tool", b.tool, "provider", cre.Provider, "status", cre.Status, "mode", int(mode))
	switch mode {
	case askInputRequired:
		key := inputKeyPrefix + cre.Provider
		state, err := c.sealState(statePayload{Key: key, Provider: cre.Provider}, b)
		if err != nil {
			return nil, err
		}
		return &mcp.CallToolResult{
			InputRequests: mcp.InputRequestMap{key: &mcp.ElicitParams{Mode: "url", Message: msg, URL: cre.URL}},
			RequestState:  state,
		}, nil
	case askURLError:
		id, err := c.randomID()
		if err != nil {
			return nil, err
		}
		if c.exch != nil && req.Session != nil {
			c.watch(req.Session, claims, cre, id)
		}
		return nil, mcp.URLElicitationRequiredError([]*mcp.ElicitParams{{Mode: "url", Message: msg, URL: cre.URL, ElicitationID: id}})
	default:
		text := msg + "\nOpen this link, then call the tool again:\n" + cre.URL
		return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: text}}}, nil
	}
}

// watch polls the hub until the person's connection is retrievable, then
// tells the client the elicitation is complete (MCP 2025-11-25).
func (c *Connector) watch(ss *mcp.ServerSession, claims *Claims, cre *ConnectRequiredError, id string) {
	deadline := c.now().Add(c.ttl)
	if !claims.ExpiresAt.IsZero() && claims.ExpiresAt.Before(deadline) {
		deadline = claims.ExpiresAt
	}
	// Not derived from ctx: the SDK would send the notification on the
	// finished request's stream rather than the session's.
	wctx, cancel := context.WithDeadline(withClaims(context.Background(), claims), deadline)
	// Stop when the session ends: nobody is left to tell.
	go func() {
		_ = ss.Wait()
		cancel()
	}()
	go func() {
		defer cancel()
		wait := c.poll
		for {
			t := time.NewTimer(wait)
			select {
			case <-wctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			_, err := c.exch.connection(wctx, cre.Provider, cre.scopes, false)
			if err == nil {
				if err := ss.NotifyElicitationComplete(wctx, &mcp.ElicitationCompleteParams{ElicitationID: id}); err != nil {
					c.logger.InfoContext(wctx, "mcpauth: elicitation complete not sent", "provider", cre.Provider, "err", err)
				}
				return
			}
			if !errors.Is(err, ErrConnectionRequired) && !errors.Is(err, ErrUnavailable) {
				return
			}
			wait = min(2*wait, completionPollMax)
		}
	}()
}

func (c *Connector) randomID() (string, error) {
	b := make([]byte, 16)
	if _, err := io.ReadFull(c.rand, b); err != nil {
		return "", fmt.Errorf("mcpauth: reading randomness: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func elicitAction(m mcp.InputResponseMap, key string) string {
	if r, ok := m[key].(*mcp.ElicitResult); ok && r != nil {
		return r.Action
	}
	return ""
}

func declined(provider, action string) *mcp.CallToolResult {
	text := "The person did not connect " + provider + ", so this tool cannot run."
	if action == "" {
		text = "No answer to the request to connect " + provider + ", so this tool cannot run."
	}
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: text}}}
}

// binding is what a requestState is bound to besides its own payload: the
// call it answers and who made it.
type binding struct {
	tool       string
	argsDigest [sha256.Size]byte
	issuer     string
	subject    string
	clientID   string
}

// bindingOf canonicalizes the arguments (absent, null and {} are the same
// call; object keys sorted, numbers kept exactly) so that a client's
// re-encoding of the same arguments still matches, and different
// arguments never do.
func bindingOf(tool string, args json.RawMessage, c *Claims) (binding, error) {
	b := binding{tool: tool, issuer: c.Issuer, subject: c.Subject, clientID: c.ClientID}
	canon := []byte("{}")
	if t := bytes.TrimSpace(args); len(t) > 0 && !bytes.Equal(t, []byte("null")) {
		dec := json.NewDecoder(bytes.NewReader(t))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return binding{}, err
		}
		if dec.More() {
			return binding{}, errors.New("trailing data after arguments")
		}
		var err error
		if canon, err = json.Marshal(v); err != nil {
			return binding{}, err
		}
	}
	b.argsDigest = sha256.Sum256(canon)
	return b, nil
}

// statePayload is what a requestState carries in the clear (the client
// may read it; it names nothing secret).
type statePayload struct {
	Key      string `json:"k"` // the input request's key
	Provider string `json:"p"`
	Expires  int64  `json:"e"` // Unix seconds
	Nonce    string `json:"n"`
}

var (
	errStateMalformed = errors.New("mcpauth: requestState malformed")
	errStateMAC       = errors.New("mcpauth: requestState does not verify for this call")
	errStateExpired   = errors.New("mcpauth: requestState expired")
)

// sealState makes "v1.<payload>.<mac>" (base64url without padding), the
// MAC over the payload and the binding.
func (c *Connector) sealState(p statePayload, b binding) (string, error) {
	nonce, err := c.randomID()
	if err != nil {
		return "", err
	}
	p.Nonce = nonce
	p.Expires = c.now().Add(c.ttl).Unix()
	raw, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding.EncodeToString(raw)
	mac := stateMAC(c.key, enc, b)
	return stateVersion + "." + enc + "." + base64.RawURLEncoding.EncodeToString(mac), nil
}

// openState verifies s against the binding of the call that carries it
// and returns its payload: errStateMalformed, errStateMAC (tampered, or
// made for another tool, arguments, user or client, or by a server with
// another key), or errStateExpired — checked in that order, so that
// nothing of an unverified payload is believed.
func (c *Connector) openState(s string, b binding) (statePayload, error) {
	if len(s) > maxStateBytes {
		return statePayload{}, errStateMalformed
	}
	version, rest, ok1 := strings.Cut(s, ".")
	enc, macEnc, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || version != stateVersion {
		return statePayload{}, errStateMalformed
	}
	mac, err := base64.RawURLEncoding.Strict().DecodeString(macEnc)
	if err != nil || len(mac) != sha256.Size {
		return statePayload{}, errStateMalformed
	}
	if !hmac.Equal(mac, stateMAC(c.key, enc, b)) {
		return statePayload{}, errStateMAC
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(enc)
	if err != nil {
		return statePayload{}, errStateMalformed
	}
	var p statePayload
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil || dec.More() || !strings.HasPrefix(p.Key, inputKeyPrefix) || !validProviderID(p.Provider) {
		return statePayload{}, errStateMalformed
	}
	if !c.now().Before(time.Unix(p.Expires, 0)) {
		return statePayload{}, errStateExpired
	}
	return p, nil
}

// stateMAC is HMAC-SHA256 over a label, the encoded payload and the
// binding, each length-prefixed so that no two inputs collide.
func stateMAC(key []byte, enc string, b binding) []byte {
	m := hmac.New(sha256.New, key)
	write := func(s []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		m.Write(n[:])
		m.Write(s)
	}
	write([]byte(stateMACLabel))
	write([]byte(enc))
	write([]byte(b.tool))
	write(b.argsDigest[:])
	write([]byte(b.issuer))
	write([]byte(b.subject))
	write([]byte(b.clientID))
	return m.Sum(nil)
}
