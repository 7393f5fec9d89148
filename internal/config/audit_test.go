package config

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"
)

func TestAuditSinks(t *testing.T) {
	const good = `audit:
  sinks:
    - name: siem
      type: webhook
      url: https://siem.example.com/agentid
      secret: env:HOOK_KEY
      mask: [ip, user_id, details.os_user]
      max_backoff: 30s
    - name: splunk
      type: splunk_hec
      url: https://splunk.example.com:8088
      secret_file: /run/secrets/hec
      index: security
    - name: syslog
      type: syslog
      address: logs.example.com:6514
      tls: true
    - name: file
      type: file
      path: /var/log/agentid/audit.ndjson
      max_bytes: 1048576
    - name: out
      type: stdout
      start: latest
`
	files := func(name string) ([]byte, error) {
		if name == "/run/secrets/hec" {
			return []byte("hec-token-value\n"), nil
		}
		return noFiles(name)
	}
	c, err := load([]byte(good), envMap(map[string]string{"HOOK_KEY": "hook-key-value-0123456789"}), files)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Audit.Sinks
	if len(s) != 5 || s[0].Secret != "hook-key-value-0123456789" || s[1].Secret != "hec-token-value" || s[1].Format != "ocsf" ||
		s[0].Format != "native" || time.Duration(s[0].MaxBackoff) != 30*time.Second || len(s[0].Mask) != 3 || !s[2].TLS {
		t.Fatalf("sinks = %+v", s)
	}
	out, err := c.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "hook-key-value-0123456789") || strings.Contains(string(out), "hec-token-value") {
		t.Fatalf("Redacted prints a sink secret:\n%s", out)
	}
	if c.Audit.Sinks[0].Secret != "hook-key-value-0123456789" {
		t.Fatal("Redacted changed the configuration")
	}

	tests := []struct {
		name string
		yaml string
		want []wantProblem
	}{
		{"literal secret", "audit:\n  sinks:\n    - {name: a, type: webhook, url: 'https://a.example', secret: hunter2-literal}\n",
			[]wantProblem{{"audit.sinks[0].secret", 0, []string{"env:NAME"}}}},
		{"short key", "audit:\n  sinks:\n    - {name: a, type: webhook, url: 'https://a.example', secret: 'env:K'}\n",
			[]wantProblem{{"audit.sinks[0].secret", 0, []string{"at least 16"}}}},
		{"both secrets", "audit:\n  sinks:\n    - {name: a, type: webhook, url: 'https://a.example', secret: 'env:X', secret_file: /x}\n",
			[]wantProblem{{"audit.sinks[0].secret_file", 0, []string{"only one"}}}},
		{"missing", "audit:\n  sinks:\n    - {type: webhook}\n    - {name: b, type: syslog}\n    - {name: c, type: file}\n    - {name: d, type: kafka}\n",
			[]wantProblem{
				{"audit.sinks[0].name", 0, []string{"required"}},
				{"audit.sinks[0].url", 0, []string{"required"}},
				{"audit.sinks[0].secret", 0, []string{"required"}},
				{"audit.sinks[1].address", 0, []string{"host:port"}},
				{"audit.sinks[2].path", 0, []string{"required"}},
				{"audit.sinks[3].type", 0, []string{"must be"}},
			}},
		{"bad values", "audit:\n  sinks:\n    - {name: a, type: stdout, format: xml, mask: [email], start: now, batch_size: 5000}\n    - {name: a, type: webhook, url: 'http://siem.example.com', secret: 'env:K'}\n",
			[]wantProblem{
				{"audit.sinks[0].format", 0, []string{"native or ocsf"}},
				{"audit.sinks[0].mask", 0, []string{`"email"`}},
				{"audit.sinks[0].start", 0, []string{"oldest or latest"}},
				{"audit.sinks[0].batch_size", 0, []string{"1-1000"}},
				{"audit.sinks[1].name", 0, []string{"same name"}},
				{"audit.sinks[1].url", 0, []string{"https"}},
				{"audit.sinks[1].secret", 0, []string{"at least 16"}},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load([]byte(tt.yaml), envMap(map[string]string{"K": "v"}), func(string) ([]byte, error) { return nil, fs.ErrNotExist })
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("err = %v", err)
			}
			assertProblems(t, ps, tt.want)
			if strings.Contains(err.Error(), "hunter2-literal") {
				t.Errorf("the problem quotes the secret: %v", err)
			}
		})
	}
}
