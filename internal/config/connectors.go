package config

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// maxConnectors bounds the connectors list.
const maxConnectors = 64

// connectorIDRe is the form of a connector id (store.ValidConnectorID).
var connectorIDRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)

// validateConnectors checks the connectors: ids unique and well formed,
// issuers https (http on loopback with login.allow_loopback_connectors),
// a client id, email domains lower case and each held by one connector.
func (c *Config) validateConnectors(ps *Problems) {
	if len(c.Connectors) > maxConnectors {
		ps.add("connectors", 0, "", fmt.Sprintf("at most %d connectors, got %d", maxConnectors, len(c.Connectors)))
	}
	ids, domains := map[string]int{}, map[string]int{}
	for i, cc := range c.Connectors {
		p := fmt.Sprintf("connectors[%d]", i)
		switch {
		case !connectorIDRe.MatchString(cc.ID):
			ps.add(p+".id", 0, "", "required: 1 to 64 lower-case letters, digits and '-'")
		default:
			if j, dup := ids[cc.ID]; dup {
				ps.add(p+".id", 0, "", fmt.Sprintf("the same id as connectors[%d]", j))
			}
			ids[cc.ID] = i
		}
		if cc.Type != "" && cc.Type != "oidc" {
			ps.add(p+".type", 0, "", fmt.Sprintf("must be oidc, got %q", cc.Type))
		}
		u, err := url.Parse(cc.Issuer)
		switch {
		case cc.Issuer == "":
			ps.add(p+".issuer", 0, "", "required")
		case err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil:
			ps.add(p+".issuer", 0, "", "must be an absolute URL without user, query or fragment")
		case u.Scheme == "https":
		case u.Scheme == "http" && isLoopbackHost(u.Hostname()) && c.Login.AllowLoopbackConnectors:
		default:
			ps.add(p+".issuer", 0, "", "must be https (http only on a loopback host with login.allow_loopback_connectors)")
		}
		if cc.ClientID == "" {
			ps.add(p+".client_id", 0, "", "required")
		}
		if strings.TrimSpace(cc.ClientSecretFile) != cc.ClientSecretFile {
			ps.add(p+".client_secret_file", 0, "", "must not start or end with spaces")
		}
		for _, d := range cc.EmailDomains {
			if d == "" || d != strings.ToLower(d) || strings.ContainsAny(d, "@ /") {
				ps.add(p+".email_domains", 0, "", fmt.Sprintf("%q: want a lower-case domain such as corp.example", d))
				continue
			}
			if j, dup := domains[d]; dup {
				ps.add(p+".email_domains", 0, "", fmt.Sprintf("%s already routes to connectors[%d]", d, j))
			}
			domains[d] = i
		}
	}
}
