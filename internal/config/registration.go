package config

import (
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// maxTrustedIssuers bounds the trusted_issuers list.
const maxTrustedIssuers = 32

// maxJWKSSize bounds an issuer's key set, inline or in jwks_file.
const maxJWKSSize = 64 << 10

var (
	registrationModes = []string{RegistrationOpen, RegistrationToken, RegistrationOff}
	stringListType    = reflect.TypeFor[[]string]()
	issuerListType    = reflect.TypeFor[[]TrustedIssuer]()
)

// decodeList decodes the list-valued settings (trusted_issuers and its
// uses) and reports whether v was one.
func (l *loader) decodeList(n *yaml.Node, v reflect.Value, path string) bool {
	switch v.Type() {
	case stringListType:
		if isNull(n) {
			return true
		}
		if n.Kind != yaml.SequenceNode {
			l.fail(path, n.Line, "", "expected a list of strings, found "+describe(n))
			return true
		}
		if len(n.Content) == 0 {
			return true // [] is the default, no list
		}
		var out []string
		for _, item := range n.Content {
			if item.Kind != yaml.ScalarNode || item.ShortTag() != "!!str" {
				l.fail(path, item.Line, "", "expected a list of strings, found "+describe(item)+" in it")
				return true
			}
			out = append(out, item.Value)
		}
		v.Set(reflect.ValueOf(out))
		return true
	case issuerListType:
		if isNull(n) {
			return true
		}
		if n.Kind != yaml.SequenceNode {
			l.fail(path, n.Line, "", "expected a list of issuers, found "+describe(n))
			return true
		}
		if len(n.Content) == 0 {
			return true
		}
		list := make([]TrustedIssuer, len(n.Content))
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			if item.Kind == yaml.MappingNode {
				l.jwksMapping(item, p)
			}
			l.decodeSection(item, reflect.ValueOf(&list[i]).Elem(), p)
		}
		v.Set(reflect.ValueOf(list))
		return true
	}
	if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Struct {
		l.decodeStructList(n, v, path) // identity_assertions.targets
		return true
	}
	return false
}

// jwksMapping lets an issuer's jwks be written as a YAML mapping ({keys:
// [...]}) as well as JSON text: the mapping is replaced by its JSON.
func (l *loader) jwksMapping(issuer *yaml.Node, path string) {
	for i := 0; i+1 < len(issuer.Content); i += 2 {
		k, val := issuer.Content[i], issuer.Content[i+1]
		if k.Value != "jwks" || val.Kind != yaml.MappingNode {
			continue
		}
		var m map[string]any
		if err := val.Decode(&m); err != nil {
			l.fail(path+".jwks", val.Line, "", "not a JWK set: "+err.Error())
			continue
		}
		b, err := json.Marshal(m)
		if err != nil {
			l.fail(path+".jwks", val.Line, "", "not a JWK set: "+err.Error())
			continue
		}
		*val = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: string(b), Line: val.Line, Column: val.Column}
	}
}

// registrationMode checks that a registration.mode given does not
// contradict the older enabled and open keys it replaces; fillDerived then
// settles all three.
func (l *loader) registrationMode() {
	r := &l.cfg.Registration
	if r.Mode == "" {
		return
	}
	if !r.Enabled {
		l.fail("registration.enabled", 0, "", "is replaced by registration.mode; remove it (mode off is what enabled: false meant)")
	}
	if !r.Open {
		l.fail("registration.open", 0, "", "is replaced by registration.mode; remove it (mode token is what open: false meant)")
	}
}

// deriveMode sets an empty Mode from Enabled and Open, and a known Mode's
// Enabled and Open to match it.
func (r *RegistrationConfig) deriveMode() {
	r.Mode = r.EffectiveMode()
	if slices.Contains(registrationModes, r.Mode) {
		r.Enabled = r.Mode != RegistrationOff
		r.Open = r.Mode == RegistrationOpen
	}
}

// readTrustedIssuerKeys reads each issuer's jwks_file into its JWKS.
func (l *loader) readTrustedIssuerKeys() {
	for i := range l.cfg.TrustedIssuers {
		ti := &l.cfg.TrustedIssuers[i]
		if ti.JWKSFile == "" || ti.JWKS != "" {
			continue // a conflict is Validate's to report
		}
		setting := fmt.Sprintf("trusted_issuers[%d].jwks_file", i)
		b, err := l.readFile(ti.JWKSFile)
		if err != nil {
			l.fail(setting, 0, "", "cannot read: "+err.Error())
			continue
		}
		ti.JWKS = string(b)
		// Read: from here on the keys are inline, and Validate checks
		// them as such.
		ti.JWKSFile = ""
	}
}

// validateRegistration checks the registration section and the trusted
// issuers.
func (c *Config) validateRegistration(ps *Problems) {
	r := c.Registration
	mode := r.EffectiveMode()
	if r.Mode != "" {
		checkOneOf(ps, "registration.mode", r.Mode, registrationModes)
	}
	hasTokens := r.InitialAccessTokenFile != "" || len(r.InitialAccessTokens) > 0
	switch {
	case mode == RegistrationToken && !hasTokens:
		ps.add("registration.initial_access_token_file", 0, "", "required when registration.mode is token")
	case mode == RegistrationOff && r.InitialAccessTokenFile != "":
		ps.add("registration.initial_access_token_file", 0, "", "has no effect while registration.mode is off")
	case mode == RegistrationOpen && r.InitialAccessTokenFile != "":
		ps.add("registration.initial_access_token_file", 0, "", "has no effect while registration.mode is open; set registration.mode: token to require initial access tokens")
	}
	if r.MaxPerIP < 1 {
		ps.add("registration.max_per_ip", 0, "", fmt.Sprintf("must be at least 1, got %d", r.MaxPerIP))
	}
	if r.MaxTotal < 1 {
		ps.add("registration.max_total", 0, "", fmt.Sprintf("must be at least 1, got %d", r.MaxTotal))
	}
	checkDuration(ps, "registration.rate_window", r.RateWindow, time.Second, 0)
	if r.ClientExpiry != 0 {
		checkDuration(ps, "registration.client_expiry", r.ClientExpiry, time.Hour, 0)
	}

	if len(c.TrustedIssuers) > maxTrustedIssuers {
		ps.add("trusted_issuers", 0, "", fmt.Sprintf("at most %d issuers, got %d", maxTrustedIssuers, len(c.TrustedIssuers)))
	}
	seen := map[string]int{}
	for i, ti := range c.TrustedIssuers {
		p := fmt.Sprintf("trusted_issuers[%d]", i)
		switch {
		case ti.Issuer == "":
			ps.add(p+".issuer", 0, "", "required")
		case strings.TrimSpace(ti.Issuer) != ti.Issuer || len(ti.Issuer) > 2000:
			ps.add(p+".issuer", 0, "", "must be the exact iss value, without surrounding spaces, at most 2000 characters")
		default:
			if j, dup := seen[ti.Issuer]; dup {
				ps.add(p+".issuer", 0, "", fmt.Sprintf("the same issuer as trusted_issuers[%d]; list each issuer once", j))
			}
			seen[ti.Issuer] = i
		}
		n := 0
		for _, s := range []string{ti.JWKSURI, ti.JWKS, ti.JWKSFile} {
			if s != "" {
				n++
			}
		}
		if n != 1 {
			ps.add(p, 0, "", "needs exactly one of jwks_uri, jwks and jwks_file")
		}
		if ti.JWKSURI != "" {
			if u, err := url.Parse(ti.JWKSURI); err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.Fragment != "" {
				ps.add(p+".jwks_uri", 0, "", "must be an https URL without userinfo or fragment")
			}
		}
		if ti.JWKS != "" {
			var set struct {
				Keys []json.RawMessage `json:"keys"`
			}
			if len(ti.JWKS) > maxJWKSSize {
				ps.add(p+".jwks", 0, "", fmt.Sprintf("larger than %d bytes", maxJWKSSize))
			} else if err := json.Unmarshal([]byte(ti.JWKS), &set); err != nil || len(set.Keys) == 0 {
				ps.add(p+".jwks", 0, "", `not a JWK set: want a JSON object {"keys": [...]} with at least one key`)
			}
		}
		if len(ti.Uses) == 0 {
			ps.add(p+".uses", 0, "", "required: what the issuer is trusted for, e.g. [software_statement]")
		}
		for _, u := range ti.Uses {
			if !slices.Contains(trustedIssuerUses, u) {
				ps.add(p+".uses", 0, "", fmt.Sprintf("unknown use %q; known: %s", u, strings.Join(trustedIssuerUses, ", ")))
			}
		}
	}
}
