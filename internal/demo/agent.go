package demo

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// AgentOptions configures the scripted demo agent.
type AgentOptions struct {
	// MCPURL is the demo MCP server's URL.
	MCPURL string
	// Out receives a line for every step.
	Out io.Writer
	// Username and Password, when set, make the agent log in and approve
	// the consent screen itself (headless); otherwise it prints the
	// authorization URL for a person and waits for the browser to come back.
	// Headless, it also stands in for the person when the MCP server asks
	// them to connect the calendar: it follows the connect link itself,
	// signed in as that user, and approves at the calendar.
	Username, Password string
	// In is where the person says they are done connecting (a line), when
	// not headless. Nil: the agent goes on at once.
	In io.Reader
}

// RunAgent plays an AI agent with the official MCP Go SDK client: it
// discovers the hub, registers itself, gets authorized, lists the tools,
// calls a read tool, then a write tool whose scope it lacks, which triggers
// step-up, and reports each step.
func RunAgent(ctx context.Context, opts AgentOptions) error {
	say := func(format string, args ...any) { fmt.Fprintf(opts.Out, "agent: "+format+"\n", args...) }
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	redirect := "http://" + ln.Addr().String() + "/callback"
	results := make(chan url.Values, 1)
	cb := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r)
			return
		}
		select {
		case results <- r.URL.Query():
		default:
		}
		_, _ = io.WriteString(w, "The agent received the answer. You can close this tab.\n")
	})}
	go func() { _ = cb.Serve(ln) }()
	defer cb.Close()

	// Discover and register once. The SDK's handler would register anew on
	// every authorization; a registered client keeps its consent across the
	// step-up, so the second screen asks only for what is new.
	say("discovering: 401 → protected resource metadata → hub metadata")
	issuer, regEndpoint, err := discover(ctx, opts.MCPURL)
	if err != nil {
		return err
	}
	reg, err := oauthex.RegisterClient(ctx, regEndpoint, &oauthex.ClientRegistrationMetadata{
		ClientName: "agentid demo agent", RedirectURIs: []string{redirect}, TokenEndpointAuthMethod: "none",
		GrantTypes: []string{"authorization_code", "refresh_token"}, ResponseTypes: []string{"code"},
	}, nil)
	if err != nil {
		return fmt.Errorf("registering with the hub: %w", err)
	}
	say("registered with %s as client %s (dynamic client registration)", issuer, reg.ClientID)

	round := 0
	fetch := func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
		round++
		u, _ := url.Parse(args.URL)
		say("authorization %d asks for scope %q", round, u.Query().Get("scope"))
		var q url.Values
		if opts.Username != "" {
			var err error
			if q, err = approveHeadless(ctx, args.URL, opts.Username, opts.Password); err != nil {
				return nil, err
			}
		} else {
			say("open this URL in your browser, sign in and approve:\n\n  %s\n", args.URL)
			select {
			case q = <-results:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if e := q.Get("error"); e != "" {
			return nil, &AuthorizationRefused{Code: e, Description: q.Get("error_description")}
		}
		say("authorization %d approved; the hub sent a code (iss=%s)", round, q.Get("iss"))
		return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
	}
	handler, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		PreregisteredClient:      &oauthex.ClientCredentials{ClientID: reg.ClientID, Issuer: issuer},
		RedirectURL:              redirect,
		AuthorizationCodeFetcher: fetch,
	})
	if err != nil {
		return err
	}
	say("connecting to %s", opts.MCPURL)
	// The agent can show a URL to its person (URL-mode elicitation): how the
	// demo server asks them to connect the calendar the first time
	// read_calendar needs it.
	var lines *bufio.Scanner
	if opts.In != nil {
		lines = bufio.NewScanner(opts.In)
	}
	elicit := func(ctx context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
		if req.Params.Mode != "url" {
			return &mcp.ElicitResult{Action: "decline"}, nil
		}
		say("the MCP server asks the person: %s", req.Params.Message)
		say("connect link (made for the demo user only): %s", req.Params.URL)
		switch {
		case opts.Username != "":
			say("scripted run: no person here, so the demo follows the link itself, signed in as %s, and approves at the calendar", opts.Username)
			if err := connectHeadless(ctx, req.Params.URL, opts.Username, opts.Password); err != nil {
				return nil, fmt.Errorf("connecting the calendar: %w", err)
			}
			say("the hub says: calendar connected; its tokens went into the hub's vault, not to this agent")
		case lines != nil:
			say("open the link in your browser, connect, then press Enter here")
			lines.Scan()
		}
		return &mcp.ElicitResult{Action: "accept"}, nil
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "agentid-demo-agent", Version: "1.0.0"}, &mcp.ClientOptions{
		Capabilities:       &mcp.ClientCapabilities{Elicitation: &mcp.ElicitationCapabilities{URL: &mcp.URLElicitationCapabilities{}}},
		ElicitationHandler: elicit,
	})
	sess, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: opts.MCPURL, OAuthHandler: handler}, nil)
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	defer sess.Close()
	tools, err := sess.ListTools(ctx, nil)
	if err != nil {
		return fmt.Errorf("listing tools: %w", err)
	}
	var names []string
	for _, t := range tools.Tools {
		// An absent destructiveHint means destructive (MCP tool annotations).
		if a := t.Annotations; a == nil || (!a.ReadOnlyHint && (a.DestructiveHint == nil || *a.DestructiveHint)) {
			names = append(names, t.Name+" (destructive)")
			continue
		}
		names = append(names, t.Name)
	}
	say("connected (MCP %s); tools: %s", sess.InitializeResult().ProtocolVersion, strings.Join(names, ", "))
	for _, step := range []struct {
		tool string
		args map[string]any
	}{
		{"read_notes", map[string]any{}},
		{"write_note", map[string]any{"text": "written by the demo agent"}},
		{"read_notes", map[string]any{}},
		// The calendar lives at a downstream service: the first call asks
		// the person to connect it, the retried call reads it through the
		// hub's vault.
		{"read_calendar", map[string]any{}},
		// notes.delete is sensitive: the default policy refuses it to an
		// agent that registered itself until an administrator tags it
		// trusted, and the hub says so instead of narrowing silently.
		{"delete_note", map[string]any{"id": 1}},
	} {
		say("calling %s", step.tool)
		res, err := sess.CallTool(ctx, &mcp.CallToolParams{Name: step.tool, Arguments: step.args})
		var refused *AuthorizationRefused
		if errors.As(err, &refused) {
			say("%s → refused by the hub (%s): %s", step.tool, refused.Code, refused.Description)
			continue
		}
		if err != nil {
			return fmt.Errorf("calling %s: %w", step.tool, err)
		}
		var out []string
		for _, c := range res.Content {
			if t, ok := c.(*mcp.TextContent); ok {
				out = append(out, strings.TrimSpace(t.Text))
			}
		}
		if res.IsError {
			return fmt.Errorf("%s failed: %s", step.tool, strings.Join(out, " "))
		}
		say("%s → %s", step.tool, strings.ReplaceAll(strings.Join(out, " "), "\n", " | "))
	}
	say("done after %d authorization round trips (one step-up each for notes.write, calendar.read and notes.delete)", round)
	return nil
}

// AuthorizationRefused is the hub's error answer to an authorization (RFC
// 6749 §4.1.2.1), e.g. invalid_scope for a scope policy will not grant.
type AuthorizationRefused struct {
	Code, Description string
}

func (e *AuthorizationRefused) Error() string {
	return "authorization refused: " + e.Code + ": " + e.Description
}

var (
	backLink     = regexp.MustCompile(`id="back" href="([^"]*)"`)
	csrfField    = regexp.MustCompile(`name="csrf_token" value="([^"]*)"`)
	returnField  = regexp.MustCompile(`name="return_to" value="([^"]*)"`)
	requestField = regexp.MustCompile(`name="request" value="([^"]*)"`)
	checkedScope = regexp.MustCompile(`name="scope" value="([^"]*)" checked`)
)

var (
	formAction   = regexp.MustCompile(`<form method="post" action="(/connections/[^"/]+/start)"`)
	intentField  = regexp.MustCompile(`name="intent" value="([^"]*)"`)
	hiddenFields = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)">`)
)

// connectHeadless does what the person does with a connect link, for the
// scripted run: it opens the link at the hub, signs in as username, asks to
// connect, approves at the calendar, and checks the hub's answer.
func connectHeadless(ctx context.Context, connectURL, username, password string) error {
	hub, err := url.Parse(connectURL)
	if err != nil {
		return err
	}
	origin := hub.Scheme + "://" + hub.Host
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	var last *url.URL
	do := func(method, target string, form url.Values) (string, error) {
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequestWithContext(ctx, method, target, body)
		if err != nil {
			return "", err
		}
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			u, _ := url.Parse(target)
			req.Header.Set("Origin", u.Scheme+"://"+u.Host)
		}
		resp, err := c.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		last = resp.Request.URL
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return string(b), err
	}
	page, err := do(http.MethodGet, connectURL, nil)
	if err != nil {
		return err
	}
	if strings.Contains(page, `action="/login"`) {
		if page, err = do(http.MethodPost, origin+"/login", url.Values{"csrf_token": {match(csrfField, page)}, "return_to": {match(returnField, page)},
			"username": {username}, "password": {password}}); err != nil {
			return err
		}
	}
	action := match(formAction, page)
	if action == "" {
		return errors.New("the hub's connect page offers no connect button (wrong password, or the link is not for this user?)")
	}
	// The hub sends the browser to the calendar's authorization page.
	if page, err = do(http.MethodPost, origin+action, url.Values{"csrf_token": {match(csrfField, page)}, "intent": {match(intentField, page)}}); err != nil {
		return err
	}
	if last.Host == hub.Host || !strings.Contains(page, `action="/authorize"`) {
		return errors.New("the hub did not send the browser to the calendar")
	}
	decision := url.Values{"decision": {"allow"}}
	for _, m := range hiddenFields.FindAllStringSubmatch(page, -1) {
		decision.Set(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
	}
	// Allowing sends the browser back to the hub's callback.
	if page, err = do(http.MethodPost, last.Scheme+"://"+last.Host+"/authorize", decision); err != nil {
		return err
	}
	if last.Host != hub.Host || !strings.Contains(page, "Connected") {
		return fmt.Errorf("the hub did not confirm the connection (at %s)", last.Path)
	}
	return nil
}

// approveHeadless signs in as the demo user and approves the checked scopes
// on the consent screen, as a person clicking Allow would, and returns the
// parameters of the redirect back to the agent.
func approveHeadless(ctx context.Context, authURL, username, password string) (url.Values, error) {
	hub, err := url.Parse(authURL)
	if err != nil {
		return nil, err
	}
	origin := hub.Scheme + "://" + hub.Host
	jar, _ := cookiejar.New(nil)
	var back *url.URL
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if req.URL.Scheme+"://"+req.URL.Host != origin {
			back = req.URL
			return http.ErrUseLastResponse
		}
		return nil
	}}
	get := func(u string) (string, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		return send(c, req)
	}
	post := func(path string, form url.Values) (string, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, origin+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", origin)
		return send(c, req)
	}
	page, err := get(authURL)
	if err != nil {
		return nil, err
	}
	if back == nil && strings.Contains(page, `action="/login"`) {
		page, err = post("/login", url.Values{"csrf_token": {match(csrfField, page)}, "return_to": {match(returnField, page)}, "username": {username}, "password": {password}})
		if err != nil {
			return nil, err
		}
	}
	if link := match(backLink, page); back == nil && link != "" {
		// Nothing left to approve and something refused: the person reads
		// why and follows "Back to the application".
		if back, err = url.Parse(link); err != nil {
			return nil, err
		}
	}
	if back == nil && strings.Contains(page, `action="/authorize/decision"`) {
		form := url.Values{"csrf_token": {match(csrfField, page)}, "request": {match(requestField, page)}, "decision": {"allow"}}
		for _, m := range checkedScope.FindAllStringSubmatch(page, -1) {
			form.Add("scope", html.UnescapeString(m[1]))
		}
		if _, err = post("/authorize/decision", form); err != nil {
			return nil, err
		}
	}
	if back == nil {
		return nil, errors.New("the hub did not send the browser back to the agent (wrong demo password?)")
	}
	return back.Query(), nil
}

func send(c *http.Client, req *http.Request) (string, error) {
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return string(b), err
}

func match(re *regexp.Regexp, page string) string {
	if m := re.FindStringSubmatch(page); m != nil {
		return html.UnescapeString(m[1])
	}
	return ""
}

// discover finds the hub of an MCP server as an MCP client does: the 401
// challenge names the Protected Resource Metadata (RFC 9728 §5.1), which
// names the hub, whose RFC 8414 metadata gives the registration endpoint.
func discover(ctx context.Context, mcpURL string) (issuer, registration string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, mcpURL, strings.NewReader(`{"jsonrpc":"2.0","id":0,"method":"ping"}`))
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", "", fmt.Errorf("reaching the MCP server: %w", err)
	}
	resp.Body.Close()
	challenges, err := oauthex.ParseWWWAuthenticate(resp.Header.Values("WWW-Authenticate"))
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return "", "", fmt.Errorf("the MCP server did not challenge for a token (status %d)", resp.StatusCode)
	}
	var prmURL string
	for _, c := range challenges {
		if v := c.Params["resource_metadata"]; v != "" {
			prmURL = v
		}
	}
	if prmURL == "" {
		return "", "", errors.New("the MCP server's challenge names no resource_metadata")
	}
	prm, err := oauthex.GetProtectedResourceMetadata(ctx, prmURL, mcpURL, nil)
	if err != nil {
		return "", "", err
	}
	if len(prm.AuthorizationServers) == 0 {
		return "", "", errors.New("the MCP server names no authorization server")
	}
	asm, err := auth.GetAuthServerMetadata(ctx, prm.AuthorizationServers[0], nil)
	if err != nil {
		return "", "", err
	}
	if asm.RegistrationEndpoint == "" {
		return "", "", errors.New("the hub offers no registration endpoint")
	}
	return asm.Issuer, asm.RegistrationEndpoint, nil
}
