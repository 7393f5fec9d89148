package config

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// TestRedactedSinkURL: a webhook or HEC URL may carry a credential in its
// query (a function key, a token); --print-config hides every query value
// of a sink URL, keeps the endpoint, and the HMAC key is REDACTED.
func TestRedactedSinkURL(t *testing.T) {
	const (
		code = "fn-key-sekrit-4242"
		key  = "hmac-key-sekrit-0123456789"
	)
	yaml := "audit:\n  sinks:\n" +
		"    - name: siem\n      type: webhook\n      url: https://hooks.example.com/api/ingest?code=" + code + "&tenant=acme\n      secret: env:WH\n" +
		"    - name: hec\n      type: splunk_hec\n      url: https://splunk.example.com:8088?token=" + code + "\n      secret: env:WH\n"
	c, err := load([]byte(yaml), envMap(map[string]string{"WH": key}), os.ReadFile)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	out, err := c.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{code, key} {
		if strings.Contains(string(out), s) {
			t.Errorf("Redacted output contains secret %q:\n%s", s, out)
		}
	}
	for _, keep := range []string{"https://hooks.example.com/api/ingest?code=REDACTED&tenant=REDACTED", "https://splunk.example.com:8088?token=REDACTED"} {
		if !strings.Contains(string(out), keep) {
			t.Errorf("Redacted output lacks %q:\n%s", keep, out)
		}
	}
	if c.Audit.Sinks[0].URL != "https://hooks.example.com/api/ingest?code="+code+"&tenant=acme" {
		t.Errorf("Redacted changed the configuration itself: %q", c.Audit.Sinks[0].URL)
	}
}

// TestAuditSinkSameFile: two file sinks on one path would interleave their
// lines and rotate each other's files away; the configuration refuses it.
func TestAuditSinkSameFile(t *testing.T) {
	yaml := "audit:\n  sinks:\n    - {name: a, type: file, path: /var/log/agentid/audit.ndjson}\n" +
		"    - {name: b, type: file, path: /var/log/agentid/../agentid/audit.ndjson}\n" +
		"    - {name: c, type: file, path: /var/log/agentid/other.ndjson}\n"
	_, err := load([]byte(yaml), envMap(nil), noFiles)
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("err = %v", err)
	}
	assertProblems(t, ps, []wantProblem{{"audit.sinks[1].path", 0, []string{"audit.sinks[0]"}}})
}
