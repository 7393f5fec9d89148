package config

import (
	"fmt"
	"math"
	"net/url"
	"strings"
)

// TracingConfig exports OpenTelemetry traces over OTLP/HTTP. Off unless
// Endpoint is set.
type TracingConfig struct {
	// Endpoint is the OTLP/HTTP receiver (an OpenTelemetry Collector,
	// an agent, a vendor's intake): its base URL, to which /v1/traces is
	// appended, or the full traces URL when it has a path. https; http
	// on a loopback host, elsewhere only with Insecure. Empty: tracing
	// is off.
	Endpoint string `yaml:"endpoint"`
	// Insecure allows an http Endpoint on a host other than loopback
	// (a collector beside the hub on a private network): spans, and
	// Headers, then travel unencrypted.
	Insecure bool `yaml:"insecure"`
	// SamplingRatio is the share of requests traced, 0 to 1, unless the
	// request's traceparent decided already (its sampled flag is
	// honoured).
	SamplingRatio float64 `yaml:"sampling_ratio"`
	// ServiceName is the service.name of every span.
	ServiceName string `yaml:"service_name"`
	// Headers are sent with every export, as comma-separated name=value
	// pairs with URL-encoded values (the OTEL_EXPORTER_OTLP_HEADERS
	// format): typically the receiver's API key. In the file only as an
	// env:NAME reference; HeadersFile names a file holding them. Never
	// printed.
	Headers     string `yaml:"headers"`
	HeadersFile string `yaml:"headers_file"`
}

// Enabled reports whether traces are exported.
func (t TracingConfig) Enabled() bool { return t.Endpoint != "" }

// HeaderMap parses Headers. Its errors name the entry by position and
// never quote it: a value is a secret.
func (t TracingConfig) HeaderMap() (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(t.Headers) == "" {
		return out, nil
	}
	for i, entry := range strings.Split(t.Headers, ",") {
		name, value, ok := strings.Cut(entry, "=")
		name = strings.TrimSpace(name)
		if !ok || !isToken(name) {
			return nil, fmt.Errorf("entry %d: want name=value with an HTTP header name", i+1)
		}
		v, err := url.PathUnescape(strings.TrimSpace(value))
		if err != nil || strings.ContainsAny(v, "\r\n\x00") {
			return nil, fmt.Errorf("entry %d: the value is not URL-encoded text", i+1)
		}
		out[name] = v
	}
	return out, nil
}

// isToken reports whether s is an RFC 9110 §5.6.2 token (a header name).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// resolveTracingHeaders reads tracing.headers_file or resolves an
// env:NAME tracing.headers. Problems name the setting, never the value.
func (l *loader) resolveTracingHeaders() {
	t := &l.cfg.Tracing
	switch {
	case t.Headers != "" && t.HeadersFile != "":
		l.fail("tracing.headers_file", 0, "", "conflicts with tracing.headers; set only one of them")
		l.failed["tracing.headers"] = true
	case t.HeadersFile != "":
		b, err := l.readFile(t.HeadersFile)
		if err != nil {
			l.fail("tracing.headers_file", 0, "", "cannot read: "+err.Error())
			return
		}
		if t.Headers = strings.TrimSpace(string(b)); t.Headers == "" {
			l.fail("tracing.headers_file", 0, "", "the file is empty")
		}
	case strings.HasPrefix(t.Headers, "env:"):
		if v, ok := l.envRef("tracing.headers", t.Headers); ok {
			t.Headers = v
		} else {
			t.Headers = ""
		}
	}
}

// validateTracing checks the tracing section.
func (c *Config) validateTracing(ps *Problems) {
	t := c.Tracing
	if math.IsNaN(t.SamplingRatio) || t.SamplingRatio < 0 || t.SamplingRatio > 1 {
		ps.add("tracing.sampling_ratio", 0, "", "must be between 0 and 1")
	}
	if strings.TrimSpace(t.ServiceName) == "" {
		ps.add("tracing.service_name", 0, "", "required")
	}
	if _, err := t.HeaderMap(); err != nil {
		ps.add("tracing.headers", 0, "", err.Error())
	}
	if t.Endpoint == "" {
		return
	}
	u, err := url.Parse(t.Endpoint)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
		ps.add("tracing.endpoint", 0, "", "must be an http or https URL such as https://collector.example.com:4318")
	case u.User != nil:
		ps.add("tracing.endpoint", 0, "", "must not hold credentials; send them in tracing.headers")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(t.Endpoint, "#"):
		ps.add("tracing.endpoint", 0, "", "must not have a query or fragment")
	case u.Scheme == "http" && !isLoopbackHost(u.Hostname()) && !t.Insecure:
		ps.add("tracing.endpoint", 0, "", "plain http to a host other than loopback sends spans and headers unencrypted; use https, or set tracing.insecure: true")
	case u.Scheme == "https" && t.Insecure:
		ps.add("tracing.insecure", 0, "", "applies to an http endpoint only; this one is https")
	}
}
