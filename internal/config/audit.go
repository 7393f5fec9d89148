package config

import (
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// AuditConfig governs the audit trail's streaming sinks.
type AuditConfig struct {
	// Sinks stream the trail to outside systems, each from its own
	// cursor (docs/design.md §6, "Streaming sinks").
	Sinks []AuditSink `yaml:"sinks"`
}

// AuditSink is one streaming sink. Which settings apply depends on Type.
type AuditSink struct {
	// Name identifies the sink and its cursor in the store (letters,
	// digits, '.', '_', '-').
	Name string `yaml:"name"`
	// Type is webhook, splunk_hec, syslog, file or stdout.
	Type string `yaml:"type"`
	// Format is native (agentid's events) or ocsf (OCSF 1.8.0). Default
	// ocsf for splunk_hec, native for the others.
	Format string `yaml:"format"`
	// Mask lists the fields this sink receives masked: ip, user_id,
	// details.<key>.
	Mask []string `yaml:"mask"`
	// Start is where a new sink begins: oldest (the whole trail, default)
	// or latest.
	Start string `yaml:"start"`
	// URL: the webhook's endpoint, or the Splunk HEC's base URL. https
	// (http only on a loopback host).
	URL string `yaml:"url"`
	// Secret is the webhook's HMAC key or the HEC token; in the file only
	// as an env:NAME reference. SecretFile names a file holding it
	// (surrounding whitespace trimmed). One of them is required for
	// webhook and splunk_hec. Never printed.
	Secret     string `yaml:"secret"`
	SecretFile string `yaml:"secret_file"`
	// Index is the Splunk index events go to (default: the token's).
	Index string `yaml:"index"`
	// Address is the syslog collector's host:port; TLS wraps the
	// connection (RFC 5425), verified against the system roots or CAFile;
	// Facility is the syslog facility (default 10, authpriv).
	Address  string `yaml:"address"`
	TLS      bool   `yaml:"tls"`
	CAFile   string `yaml:"ca_file"`
	Facility int    `yaml:"facility"`
	// Path is the NDJSON file; it is rotated once it would pass MaxBytes
	// (default 100 MiB), keeping MaxFiles older files (default 5).
	Path     string `yaml:"path"`
	MaxBytes int    `yaml:"max_bytes"`
	MaxFiles int    `yaml:"max_files"`
	// BatchSize (default 500, at most 1000), MaxAttempts before a batch is
	// dead-lettered (default 8), and the bounds of the backoff between
	// attempts (default 1s to 1m).
	BatchSize   int      `yaml:"batch_size"`
	MaxAttempts int      `yaml:"max_attempts"`
	MinBackoff  Duration `yaml:"min_backoff"`
	MaxBackoff  Duration `yaml:"max_backoff"`
}

// Audit sink types.
const (
	SinkWebhook   = "webhook"
	SinkSplunkHEC = "splunk_hec"
	SinkSyslog    = "syslog"
	SinkFile      = "file"
	SinkStdout    = "stdout"
	maxAuditSinks = 16
	// minWebhookKey: an HMAC key shorter than this is guessable.
	minWebhookKey = 16
)

var sinkName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// resolveSinkSecrets reads each sink's secret_file or env:NAME secret.
// Problems name the setting, never the secret.
func (l *loader) resolveSinkSecrets() {
	for i := range l.cfg.Audit.Sinks {
		s := &l.cfg.Audit.Sinks[i]
		p := fmt.Sprintf("audit.sinks[%d]", i)
		switch {
		case s.Secret != "" && s.SecretFile != "":
			l.fail(p+".secret_file", 0, "", "conflicts with secret; set only one of them")
			l.failed[p+".secret"] = true
		case s.SecretFile != "":
			b, err := l.readFile(s.SecretFile)
			if err != nil {
				l.fail(p+".secret_file", 0, "", "cannot read: "+err.Error())
				continue
			}
			if s.Secret = strings.TrimSpace(string(b)); s.Secret == "" {
				l.fail(p+".secret_file", 0, "", "the file is empty")
			}
		case strings.HasPrefix(s.Secret, "env:"):
			if v, ok := l.envRef(p+".secret", s.Secret); ok {
				s.Secret = v
			} else {
				s.Secret = ""
			}
		case s.Secret != "":
			l.fail(p+".secret", 0, "", "in the config file a secret may only be an env:NAME reference (or use secret_file)")
			s.Secret = ""
		}
	}
}

// validateAudit checks the audit section.
func (c *Config) validateAudit(ps *Problems) {
	if len(c.Audit.Sinks) > maxAuditSinks {
		ps.add("audit.sinks", 0, "", fmt.Sprintf("at most %d sinks, got %d", maxAuditSinks, len(c.Audit.Sinks)))
	}
	names, paths := map[string]int{}, map[string]int{}
	for i := range c.Audit.Sinks {
		s := &c.Audit.Sinks[i]
		p := fmt.Sprintf("audit.sinks[%d]", i)
		if !sinkName.MatchString(s.Name) {
			ps.add(p+".name", 0, "", "required: 1-64 letters, digits, '.', '_' or '-'")
		} else if j, dup := names[s.Name]; dup {
			ps.add(p+".name", 0, "", fmt.Sprintf("the same name as audit.sinks[%d]", j))
		} else {
			names[s.Name] = i
		}
		if s.Format == "" {
			s.Format = "native"
			if s.Type == SinkSplunkHEC {
				s.Format = "ocsf"
			}
		}
		if s.Format != "native" && s.Format != "ocsf" {
			ps.add(p+".format", 0, "", "must be native or ocsf")
		}
		for _, m := range s.Mask {
			if k, ok := strings.CutPrefix(m, "details."); m != "ip" && m != "user_id" && (!ok || k == "") {
				ps.add(p+".mask", 0, "", fmt.Sprintf("cannot mask %q: want ip, user_id or details.<key>", m))
			}
		}
		if s.Start != "" && s.Start != "oldest" && s.Start != "latest" {
			ps.add(p+".start", 0, "", "must be oldest or latest")
		}
		needs := func(setting, value, what string) {
			if value == "" {
				ps.add(p+"."+setting, 0, "", "required for a "+s.Type+" sink: "+what)
			}
		}
		switch s.Type {
		case SinkWebhook, SinkSplunkHEC:
			if err := checkAbsoluteURL(s.URL, false); err != "" {
				ps.add(p+".url", 0, "", err)
			}
			if s.Secret == "" && s.SecretFile == "" {
				needs("secret", "", "the HMAC key or HEC token (env:NAME or secret_file)")
			} else if s.Type == SinkWebhook && s.Secret != "" && len(s.Secret) < minWebhookKey {
				ps.add(p+".secret", 0, "", fmt.Sprintf("the HMAC key must be at least %d characters", minWebhookKey))
			}
		case SinkSyslog:
			if _, _, err := net.SplitHostPort(s.Address); err != nil {
				ps.add(p+".address", 0, "", "required for a syslog sink: host:port")
			}
			if s.Facility < 0 || s.Facility > 23 {
				ps.add(p+".facility", 0, "", "must be 0-23 (RFC 5424 §6.2.1)")
			}
			if s.CAFile != "" && !s.TLS {
				ps.add(p+".ca_file", 0, "", "only with tls: true")
			}
		case SinkFile:
			needs("path", s.Path, "the NDJSON file")
			if s.Path != "" {
				if j, dup := paths[filepath.Clean(s.Path)]; dup {
					ps.add(p+".path", 0, "", fmt.Sprintf("the same file as audit.sinks[%d]: two sinks would interleave lines and rotate each other's files", j))
				} else {
					paths[filepath.Clean(s.Path)] = i
				}
			}
		case SinkStdout:
		default:
			ps.add(p+".type", 0, "", "must be webhook, splunk_hec, syslog, file or stdout")
		}
		if s.MaxBytes < 0 || s.MaxFiles < 0 {
			ps.add(p+".max_bytes", 0, "", "max_bytes and max_files must not be negative")
		}
		if s.BatchSize < 0 || s.BatchSize > 1000 {
			ps.add(p+".batch_size", 0, "", "must be 1-1000")
		}
		if s.MaxAttempts < 0 {
			ps.add(p+".max_attempts", 0, "", "must not be negative")
		}
		if s.MinBackoff != 0 {
			checkDuration(ps, p+".min_backoff", s.MinBackoff, 10*time.Millisecond, time.Hour)
		}
		if s.MaxBackoff != 0 {
			checkDuration(ps, p+".max_backoff", s.MaxBackoff, 10*time.Millisecond, 24*time.Hour)
		}
	}
}
