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
// an OIDC connector's issuer https (http on loopback with
// login.allow_loopback_connectors) and client id, a SAML connector's
// metadata file, email domains lower case and each held by one connector.
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
		switch cc.Type {
		case "", "oidc":
			c.validateOIDCConnector(ps, p, cc)
		case "saml":
			validateSAMLConnector(ps, p, cc)
		default:
			ps.add(p+".type", 0, "", fmt.Sprintf("must be oidc or saml, got %q", cc.Type))
			c.validateOIDCConnector(ps, p, cc)
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

// validateOIDCConnector checks an OIDC connector's issuer, client id and
// secret file.
func (c *Config) validateOIDCConnector(ps *Problems, p string, cc ConnectorConfig) {
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
	if cc.IdPMetadataFile != "" {
		ps.add(p+".idp_metadata_file", 0, "", "only for type saml")
	}
}

// validateSAMLConnector checks a SAML connector's own settings: its
// identity provider's metadata file (read and checked at serve start), no
// client secret or scopes. The issuer, if given, is the provider's entity
// id (any URI).
func validateSAMLConnector(ps *Problems, p string, cc ConnectorConfig) {
	switch {
	case cc.IdPMetadataFile == "":
		ps.add(p+".idp_metadata_file", 0, "", "required for type saml")
	case strings.TrimSpace(cc.IdPMetadataFile) != cc.IdPMetadataFile:
		ps.add(p+".idp_metadata_file", 0, "", "must not start or end with spaces")
	}
	if cc.ClientSecretFile != "" {
		ps.add(p+".client_secret_file", 0, "", "a saml connector has no client secret")
	}
	if len(cc.Scopes) > 0 {
		ps.add(p+".scopes", 0, "", "a saml connector has no scopes")
	}
}
