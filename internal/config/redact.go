package config

import (
	"bytes"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// redacted replaces every secret value in Redacted's output.
const redacted = "REDACTED"

// Redacted renders the effective configuration as YAML, in the file's own
// schema, with secrets replaced by "REDACTED": the password of the store DSN
// (in its user information or a password query parameter), the KEK value,
// the previous KEKs, the audit sinks' secrets and the query values of their
// URLs, the tracing headers, and the initial access tokens (not printed at all). It is what
// `agentid serve --print-config` shows.
func (c *Config) Redacted() ([]byte, error) {
	r := *c
	r.Issuer = redactDSN(c.Issuer)
	r.Store.DSN = redactDSN(c.Store.DSN)
	if r.KEK.Value != "" {
		r.KEK.Value = redacted
	}
	if r.KEK.Previous != "" {
		r.KEK.Previous = redacted
	}
	r.Registration.InitialAccessTokens = nil
	if r.Tracing.Headers != "" {
		r.Tracing.Headers = redacted
	}
	r.Audit.Sinks = slices.Clone(c.Audit.Sinks)
	for i := range r.Audit.Sinks {
		if r.Audit.Sinks[i].Secret != "" {
			r.Audit.Sinks[i].Secret = redacted
		}
		r.Audit.Sinks[i].URL = redactURLQuery(r.Audit.Sinks[i].URL)
	}

	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&r); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// redactDSN hides the password of a URL-shaped DSN and any password query
// parameter. It errs towards hiding too much: everything between the first
// ':' of the user information and the last '@' is replaced, so a password
// holding unescaped '@', '/' or '?' does not leak either. A DSN that is not
// URL-shaped but mentions a password is hidden whole.
func redactDSN(dsn string) string {
	return redactWith(dsn, redacted)
}

func redactWith(dsn, mark string) string {
	i := strings.Index(dsn, "://")
	if i < 0 {
		if strings.Contains(strings.ToLower(dsn), "password") {
			return mark
		}
		return dsn
	}
	scheme, rest := dsn[:i+3], dsn[i+3:]
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		if colon := strings.IndexByte(rest[:at], ':'); colon >= 0 {
			rest = rest[:colon] + ":" + mark + rest[at:]
		}
	}
	if q := strings.IndexByte(rest, '?'); q >= 0 {
		rest = rest[:q+1] + redactQuery(rest[q+1:], mark)
	}
	return scheme + rest
}

// redactQuery hides the value of every parameter whose name mentions a
// password (password, sslpassword, …), keeping the rest byte for byte.
func redactQuery(q, mark string) string {
	params := strings.Split(q, "&")
	for i, p := range params {
		key, _, _ := strings.Cut(p, "=")
		name, err := url.QueryUnescape(key)
		if err != nil {
			name = key
		}
		if strings.Contains(strings.ToLower(name), "password") {
			params[i] = key + "=" + mark
		}
	}
	return strings.Join(params, "&")
}

// redactURLQuery hides every query value of a URL (a webhook's function
// key or token often travels there), keeping the names and the rest.
func redactURLQuery(u string) string {
	base, q, ok := strings.Cut(u, "?")
	if !ok || q == "" {
		return u
	}
	params := strings.Split(q, "&")
	for i, p := range params {
		if key, _, _ := strings.Cut(p, "="); key != "" {
			params[i] = key + "=" + redacted
		}
	}
	return base + "?" + strings.Join(params, "&")
}

// dsnHasPassword reports whether a DSN carries a password, by the same
// reading as redactDSN.
func dsnHasPassword(dsn string) bool {
	// A mark that cannot occur in the input makes any redaction visible.
	const mark = "\x00"
	if strings.Contains(dsn, mark) {
		return true
	}
	return redactWith(dsn, mark) != dsn
}

// String keeps the DSN password out of fmt output (%v of a Config prints
// nested fields through their String methods).
func (s StoreConfig) String() string {
	return fmt.Sprintf("{DSN:%s DSNFile:%s AutoMigrate:%t}", redactDSN(s.DSN), s.DSNFile, s.AutoMigrate)
}

// GoString is String for %#v.
func (s StoreConfig) GoString() string { return "config.StoreConfig" + s.String() }

// String keeps the key out of fmt output.
func (k KEKConfig) String() string {
	v, p := "", ""
	if k.Value != "" {
		v = redacted
	}
	if k.Previous != "" {
		p = redacted
	}
	return fmt.Sprintf("{File:%s Value:%s Previous:%s PreviousFiles:%v}", k.File, v, p, k.PreviousFiles)
}

// GoString is String for %#v.
func (k KEKConfig) GoString() string { return "config.KEKConfig" + k.String() }

// String keeps the tracing headers out of fmt output.
func (t TracingConfig) String() string {
	h := ""
	if t.Headers != "" {
		h = redacted
	}
	return fmt.Sprintf("{Endpoint:%s Insecure:%t SamplingRatio:%v ServiceName:%s Headers:%s HeadersFile:%s}",
		t.Endpoint, t.Insecure, t.SamplingRatio, t.ServiceName, h, t.HeadersFile)
}

// GoString is String for %#v.
func (t TracingConfig) GoString() string { return "config.TracingConfig" + t.String() }

// String keeps the initial access tokens out of fmt output.
func (r RegistrationConfig) String() string {
	return fmt.Sprintf("{Enabled:%t Open:%t InitialAccessTokenFile:%s InitialAccessTokens:%d tokens}",
		r.Enabled, r.Open, r.InitialAccessTokenFile, len(r.InitialAccessTokens))
}

// GoString is String for %#v.
func (r RegistrationConfig) GoString() string { return "config.RegistrationConfig" + r.String() }
