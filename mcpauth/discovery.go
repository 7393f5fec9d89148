package mcpauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// hubMetadata is the part of the hub's RFC 8414 §2 metadata a resource
// server needs.
type hubMetadata struct {
	Issuer                string `json:"issuer"`
	JWKSURI               string `json:"jwks_uri"`
	IntrospectionEndpoint string `json:"introspection_endpoint"`
	TokenEndpoint         string `json:"token_endpoint"`
}

// maxDocBytes bounds every document fetched from the hub.
const maxDocBytes = 1 << 20

// wellKnownURLs lists where the hub's metadata may live, in the order MCP
// clients try them: RFC 8414 §3.1 (well-known inserted before the issuer's
// path), then OpenID Connect Discovery 1.0 §4 (inserted, then appended).
func wellKnownURLs(issuer string) ([]string, error) {
	u, err := url.Parse(issuer)
	if err != nil {
		return nil, err
	}
	origin := u.Scheme + "://" + u.Host
	// RFC 8414 §3.1: a terminating "/" is removed before inserting.
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	urls := []string{origin + "/.well-known/oauth-authorization-server" + path}
	if path != "" {
		urls = append(urls, origin+"/.well-known/openid-configuration"+path)
	}
	return append(urls, origin+path+"/.well-known/openid-configuration"), nil
}

// discover fetches the hub metadata and checks it (RFC 8414 §3.3: the issuer
// in the document must be identical to the configured one, else the document
// must not be used).
func discover(ctx context.Context, client *http.Client, issuer string) (*hubMetadata, error) {
	urls, err := wellKnownURLs(issuer)
	if err != nil {
		return nil, err
	}
	for _, u := range urls {
		var md hubMetadata
		status, err := getJSON(ctx, client, u, "application/json", &md)
		if err != nil {
			return nil, err
		}
		if status >= 400 && status < 500 {
			continue // not published here; try the next location
		}
		if md.Issuer != issuer {
			return nil, fmt.Errorf("mcpauth: hub metadata at %s names issuer %q, want %q (RFC 8414 §3.3)", u, md.Issuer, issuer)
		}
		if err := checkHTTPURL(md.JWKSURI, true); err != nil {
			return nil, fmt.Errorf("mcpauth: hub metadata jwks_uri: %w", err)
		}
		if md.IntrospectionEndpoint != "" {
			if err := checkHTTPURL(md.IntrospectionEndpoint, true); err != nil {
				return nil, fmt.Errorf("mcpauth: hub metadata introspection_endpoint: %w", err)
			}
		}
		return &md, nil
	}
	return nil, fmt.Errorf("mcpauth: no authorization server metadata found for issuer %q", issuer)
}

// getJSON GETs a JSON document. A 4xx status is returned without error and
// without decoding; any other non-200 status, a transport failure or an
// undecodable body is an error wrapping ErrUnavailable.
func getJSON(ctx context.Context, client *http.Client, u, accept string, dst any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", accept)
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%w: GET %s: %w", ErrUnavailable, u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 && resp.StatusCode < 500 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDocBytes))
		return resp.StatusCode, nil
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("%w: GET %s: status %d", ErrUnavailable, u, resp.StatusCode)
	}
	if err := decodeJSON(resp.Body, dst); err != nil {
		return resp.StatusCode, fmt.Errorf("%w: GET %s: %w", ErrUnavailable, u, err)
	}
	return resp.StatusCode, nil
}

func decodeJSON(r io.Reader, dst any) error {
	body, err := io.ReadAll(io.LimitReader(r, maxDocBytes+1))
	if err != nil {
		return err
	}
	if len(body) > maxDocBytes {
		return errors.New("document too large")
	}
	return json.Unmarshal(body, dst)
}
