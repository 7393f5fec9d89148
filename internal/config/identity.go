package config

import (
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// IdentityAssertionsConfig governs the hub as an enterprise IdP (MCP
// enterprise-managed authorization): a client exchanges an ID token the
// hub issued to it for an Identity Assertion JWT Authorization Grant
// (ID-JAG) to another authorization server, and only for the targets,
// resources and scopes listed here. With no targets the hub issues none.
type IdentityAssertionsConfig struct {
	// Lifetime of an ID-JAG (default 5m, at most 1h).
	Lifetime Duration `yaml:"lifetime"`
	// Targets are the authorization servers ID-JAGs may be issued for.
	Targets []IdentityTarget `yaml:"targets"`
}

// IdentityTarget is one authorization server (audience) the hub issues
// ID-JAGs for, the resources behind it and the clients that may ask.
type IdentityTarget struct {
	// Audience is the target authorization server's issuer identifier,
	// exactly as the client sends it and the ID-JAG's aud carries it.
	Audience string `yaml:"audience"`
	// Resources are the resources (RFC 9728 identifiers) at that server
	// an ID-JAG may name; at least one. A request without resource is
	// accepted only when there is exactly one.
	Resources []string `yaml:"resources"`
	// Claims are the user claims the ID-JAG discloses besides sub:
	// preferred_username, email (with email_verified) and name. Default
	// none.
	Claims []string `yaml:"claims"`
	// Clients are the hub's clients that may ask for ID-JAGs to this
	// target.
	Clients []IdentityTargetClient `yaml:"clients"`
}

// IdentityTargetClient lets one client of the hub obtain ID-JAGs for a
// target.
type IdentityTargetClient struct {
	// Client is the client_id at this hub.
	Client string `yaml:"client"`
	// RemoteClientID is the same client's client_id at the target
	// authorization server: the ID-JAG's client_id claim.
	RemoteClientID string `yaml:"remote_client_id"`
	// Scopes the client may carry to the target; at least one. The
	// ID-JAG's scope is the request's scopes within these (all of them
	// when the request names none), less what the policy's exchange
	// action refuses.
	Scopes []string `yaml:"scopes"`
}

// IdentityClaims are the user claims an ID-JAG may disclose.
var IdentityClaims = []string{"preferred_username", "email", "name"}

const (
	defaultIDJAGLifetime = 5 * time.Minute
	maxIDJAGLifetime     = time.Hour
	maxIdentityTargets   = 64
)

// decodeStructList decodes a YAML list of mappings into v, a slice of a
// struct type, each element as a section with its index in the path
// (identity_assertions.targets[0].clients[1].client).
func (l *loader) decodeStructList(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		l.fail(path, n.Line, "", "expected a list, found "+describe(n))
		return
	}
	if len(n.Content) == 0 {
		return
	}
	list := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		l.decodeSection(item, list.Index(i), fmt.Sprintf("%s[%d]", path, i))
	}
	v.Set(list)
}

// validateIdentityAssertions checks the identity_assertions section.
func (c *Config) validateIdentityAssertions(ps *Problems) {
	ia := c.IdentityAssertions
	checkDuration(ps, "identity_assertions.lifetime", ia.Lifetime, 30*time.Second, maxIDJAGLifetime)
	if len(ia.Targets) > maxIdentityTargets {
		ps.add("identity_assertions.targets", 0, "", fmt.Sprintf("at most %d targets, got %d", maxIdentityTargets, len(ia.Targets)))
	}
	seen := map[string]int{}
	for i, t := range ia.Targets {
		p := fmt.Sprintf("identity_assertions.targets[%d]", i)
		if err := checkAbsoluteURL(t.Audience, true); err != "" {
			ps.add(p+".audience", 0, "", err)
		} else if j, dup := seen[t.Audience]; dup {
			ps.add(p+".audience", 0, "", fmt.Sprintf("the same audience as identity_assertions.targets[%d]; list each once", j))
		} else {
			seen[t.Audience] = i
		}
		if len(t.Resources) == 0 {
			ps.add(p+".resources", 0, "", "required: the resources at the target an ID-JAG may name")
		}
		for j, r := range t.Resources {
			if err := checkAbsoluteURL(r, false); err != "" {
				ps.add(fmt.Sprintf("%s.resources[%d]", p, j), 0, "", err)
			}
		}
		for _, cl := range t.Claims {
			if !slices.Contains(IdentityClaims, cl) {
				ps.add(p+".claims", 0, "", fmt.Sprintf("unknown claim %q; known: %s", cl, strings.Join(IdentityClaims, ", ")))
			}
		}
		if len(t.Clients) == 0 {
			ps.add(p+".clients", 0, "", "required: the clients that may ask for ID-JAGs to this target")
		}
		clients := map[string]int{}
		for j, cl := range t.Clients {
			cp := fmt.Sprintf("%s.clients[%d]", p, j)
			switch {
			case cl.Client == "":
				ps.add(cp+".client", 0, "", "required: the client_id at this hub")
			default:
				if k, dup := clients[cl.Client]; dup {
					ps.add(cp+".client", 0, "", fmt.Sprintf("the same client as %s.clients[%d]", p, k))
				}
				clients[cl.Client] = j
			}
			if cl.RemoteClientID == "" || strings.TrimSpace(cl.RemoteClientID) != cl.RemoteClientID {
				ps.add(cp+".remote_client_id", 0, "", "required: the client's client_id at the target, without surrounding spaces")
			}
			if len(cl.Scopes) == 0 {
				ps.add(cp+".scopes", 0, "", "required: the scopes the client may carry to the target")
			}
			for _, sc := range cl.Scopes {
				if sc == "" || strings.ContainsAny(sc, " \t\"\\") {
					ps.add(cp+".scopes", 0, "", fmt.Sprintf("invalid scope %q", sc))
				}
			}
		}
	}
}

// checkAbsoluteURL returns why s is not an https URL (http on a loopback
// host allowed) without fragment, or "" when it is one. An issuer
// (issuer true) has no query either (RFC 8414 §2).
func checkAbsoluteURL(s string, issuer bool) string {
	u, err := url.Parse(s)
	switch {
	case s == "":
		return "required"
	case err != nil || u.Host == "" || u.User != nil:
		return "must be an absolute URL"
	case u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname())):
		return "must be an https URL (http only on a loopback host)"
	case u.Fragment != "" || strings.Contains(s, "#"):
		return "must not have a fragment"
	case issuer && (u.RawQuery != "" || u.ForceQuery):
		return "must not have a query (RFC 8414 §2)"
	}
	return ""
}
