// Command bearerproxy puts an access token on every request to an MCP server,
// for test suites that cannot send one themselves (the MCP conformance
// suite's server mode). It gets its tokens from the hub with the
// client-credentials grant (RFC 6749 §4.4) for the resource it fronts
// (RFC 8707) and renews them before they expire.
//
// It is a test tool: whoever reaches its port acts with its client's rights,
// so it listens on the loopback interface only. Usage:
//
//	BEARERPROXY_CLIENT_ID=… BEARERPROXY_CLIENT_SECRET=… \
//	  go run ./scripts/conformance/bearerproxy -issuer URL -resource MCP-URL -scope "a b" [-listen 127.0.0.1:0]
//
// It prints the URL to test (the resource's path on the proxy) once it listens.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"time"

	"golang.org/x/oauth2/clientcredentials"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bearerproxy:", err)
		os.Exit(1)
	}
}

func run() error {
	issuer := flag.String("issuer", "", "the hub's issuer URL")
	resource := flag.String("resource", "", "the MCP server's URL (the token audience)")
	scope := flag.String("scope", "", "space-separated scopes to ask for")
	listen := flag.String("listen", "127.0.0.1:0", "loopback address to listen on")
	flag.Parse()
	id, secret := os.Getenv("BEARERPROXY_CLIENT_ID"), os.Getenv("BEARERPROXY_CLIENT_SECRET")
	if *issuer == "" || *resource == "" || id == "" || secret == "" {
		return errors.New("-issuer, -resource, BEARERPROXY_CLIENT_ID and BEARERPROXY_CLIENT_SECRET are required")
	}
	target, err := url.Parse(*resource)
	if err != nil || target.Host == "" {
		return fmt.Errorf("-resource %q is not an absolute URL", *resource)
	}
	host, _, err := net.SplitHostPort(*listen)
	if err != nil || !net.ParseIP(host).IsLoopback() {
		return fmt.Errorf("-listen %q is not a loopback address", *listen)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	tokenURL, err := tokenEndpoint(ctx, *issuer)
	if err != nil {
		return err
	}
	cc := clientcredentials.Config{
		ClientID: id, ClientSecret: secret, TokenURL: tokenURL,
		Scopes:         strings.Fields(*scope),
		EndpointParams: url.Values{"resource": {*resource}},
	}
	tokens := cc.TokenSource(ctx) // caches, and renews shortly before expiry
	if _, err := tokens.Token(); err != nil {
		return fmt.Errorf("getting a token: %w", err)
	}

	origin := &url.URL{Scheme: target.Scheme, Host: target.Host}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(origin)
			// Pass the Host on as the suite sent it: the server's DNS
			// rebinding protection is under test too.
			pr.Out.Host = pr.In.Host
		},
		// MCP answers with server-sent events: pass them on as they come.
		FlushInterval: -1,
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, err := tokens.Token()
		if err != nil {
			http.Error(w, "bearerproxy: no token from the hub", http.StatusBadGateway)
			return
		}
		r.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		proxy.ServeHTTP(w, r)
	})

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Printf("http://%s%s\n", ln.Addr(), target.EscapedPath())
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// tokenEndpoint reads the hub's RFC 8414 metadata.
func tokenEndpoint(ctx context.Context, issuer string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(issuer, "/")+"/.well-known/oauth-authorization-server", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("reading the hub's metadata: %w", err)
	}
	defer resp.Body.Close()
	var md struct {
		TokenEndpoint string `json:"token_endpoint"`
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("reading the hub's metadata: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil || md.TokenEndpoint == "" {
		return "", fmt.Errorf("the hub's metadata names no token endpoint (%v)", err)
	}
	return md.TokenEndpoint, nil
}
