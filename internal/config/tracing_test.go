package config

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

func TestTracingDefaultsOff(t *testing.T) {
	c := Default()
	if c.Tracing.Enabled() {
		t.Error("tracing is on by default")
	}
	eq(t, c.Tracing.SamplingRatio, 1.0)
	eq(t, c.Tracing.ServiceName, "agentid")
}

func TestLoadTracing(t *testing.T) {
	headersFile := writeFile(t, "otlp-headers", "  x-honeycomb-team=abc%2C123, x-dataset = agentid \n")
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		want TracingConfig
		hdrs map[string]string
	}{
		{
			name: "file",
			yaml: "tracing:\n  endpoint: https://otel.example.com:4318\n  sampling_ratio: 0.25\n  service_name: agentid-eu\n  headers_file: " + headersFile + "\n",
			want: TracingConfig{Endpoint: "https://otel.example.com:4318", SamplingRatio: 0.25, ServiceName: "agentid-eu",
				Headers: "x-honeycomb-team=abc%2C123, x-dataset = agentid", HeadersFile: headersFile},
			hdrs: map[string]string{"x-honeycomb-team": "abc,123", "x-dataset": "agentid"},
		},
		{
			name: "a whole number is a ratio too",
			yaml: "tracing:\n  endpoint: http://127.0.0.1:4318\n  sampling_ratio: 0\n",
			want: TracingConfig{Endpoint: "http://127.0.0.1:4318", SamplingRatio: 0, ServiceName: "agentid"},
			hdrs: map[string]string{},
		},
		{
			name: "headers by reference",
			yaml: "tracing:\n  endpoint: http://otel-collector:4318\n  insecure: true\n  headers: env:OTLP_HEADERS\n",
			env:  map[string]string{"OTLP_HEADERS": "authorization=Bearer%20s3cr3t"},
			want: TracingConfig{Endpoint: "http://otel-collector:4318", Insecure: true, SamplingRatio: 1, ServiceName: "agentid", Headers: "authorization=Bearer%20s3cr3t"},
			hdrs: map[string]string{"authorization": "Bearer s3cr3t"},
		},
		{
			name: "environment",
			env: map[string]string{"AGENTID_TRACING_ENDPOINT": "https://otel.example.com/custom/traces", "AGENTID_TRACING_SAMPLING_RATIO": "1e-3",
				"AGENTID_TRACING_HEADERS": "api-key=k"},
			want: TracingConfig{Endpoint: "https://otel.example.com/custom/traces", SamplingRatio: 0.001, ServiceName: "agentid", Headers: "api-key=k"},
			hdrs: map[string]string{"api-key": "k"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := load([]byte(tt.yaml), envMap(tt.env), os.ReadFile)
			if err != nil {
				t.Fatal(err)
			}
			if c.Tracing != tt.want {
				t.Errorf("tracing = %#v, want %#v", c.Tracing, tt.want)
			}
			h, err := c.Tracing.HeaderMap()
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(h) != fmt.Sprint(tt.hdrs) {
				t.Errorf("headers = %v, want %v", h, tt.hdrs)
			}
		})
	}
}

func TestLoadTracingProblems(t *testing.T) {
	const secret = "s3cr3t-collector-key-42"
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		want []wantProblem
		// fromEnv is the variable the first problem names, if any.
		fromEnv string
	}{
		{name: "http to a remote host", yaml: "tracing:\n  endpoint: http://collector.example.com:4318\n",
			want: []wantProblem{{setting: "tracing.endpoint", words: []string{"unencrypted", "tracing.insecure"}}}},
		{name: "insecure with https", yaml: "tracing:\n  endpoint: https://collector.example.com\n  insecure: true\n",
			want: []wantProblem{{setting: "tracing.insecure", words: []string{"http endpoint only"}}}},
		{name: "not a URL", env: map[string]string{"AGENTID_TRACING_ENDPOINT": "collector:4318"},
			want: []wantProblem{{setting: "tracing.endpoint", words: []string{"http or https URL"}}}},
		{name: "grpc scheme", env: map[string]string{"AGENTID_TRACING_ENDPOINT": "grpc://127.0.0.1:4317"},
			want: []wantProblem{{setting: "tracing.endpoint", words: []string{"http or https URL"}}}},
		{name: "credentials in the URL", env: map[string]string{"AGENTID_TRACING_ENDPOINT": "https://user:" + secret + "@collector.example.com"},
			want: []wantProblem{{setting: "tracing.endpoint", words: []string{"tracing.headers"}}}},
		{name: "query", env: map[string]string{"AGENTID_TRACING_ENDPOINT": "https://collector.example.com/v1/traces?key=" + secret},
			want: []wantProblem{{setting: "tracing.endpoint", words: []string{"query"}}}},
		{name: "ratio above 1", yaml: "tracing:\n  sampling_ratio: 1.5\n",
			want: []wantProblem{{setting: "tracing.sampling_ratio", words: []string{"between 0 and 1"}}}},
		{name: "negative ratio", env: map[string]string{"AGENTID_TRACING_SAMPLING_RATIO": "-0.1"},
			want: []wantProblem{{setting: "tracing.sampling_ratio", words: []string{"between 0 and 1"}}}},
		{name: "ratio not a number", env: map[string]string{"AGENTID_TRACING_SAMPLING_RATIO": "NaN"},
			want: []wantProblem{{setting: "tracing.sampling_ratio", words: []string{"invalid number"}}}},
		{name: "quoted ratio", yaml: "tracing:\n  sampling_ratio: \"0.5\"\n",
			want: []wantProblem{{setting: "tracing.sampling_ratio", line: 2, words: []string{"expected a number"}}}},
		{name: "no service name", yaml: "tracing:\n  service_name: \"\"\n",
			want: []wantProblem{{setting: "tracing.service_name", words: []string{"required"}}}},
		{name: "literal headers in the file", yaml: "tracing:\n  headers: authorization=" + secret + "\n",
			want: []wantProblem{{setting: "tracing.headers", line: 2, words: []string{"env:NAME"}}}},
		{name: "headers and headers_file", yaml: "tracing:\n  headers: env:H\n  headers_file: /h\n", env: map[string]string{"H": "a=b"},
			want: []wantProblem{{setting: "tracing.headers_file", words: []string{"only one"}}}},
		{name: "unset reference", yaml: "tracing:\n  headers: env:NOT_SET\n",
			want: []wantProblem{{setting: "tracing.headers", words: []string{"NOT_SET"}}}},
		{name: "malformed headers", env: map[string]string{"AGENTID_TRACING_HEADERS": "authorization=ok," + secret},
			want: []wantProblem{{setting: "tracing.headers", words: []string{"entry 2"}}}, fromEnv: "AGENTID_TRACING_HEADERS"},
		{name: "header value with a line break", env: map[string]string{"AGENTID_TRACING_HEADERS": "x=" + secret + "%0D%0Ay: z"},
			want: []wantProblem{{setting: "tracing.headers", words: []string{"entry 1"}}}, fromEnv: "AGENTID_TRACING_HEADERS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load([]byte(tt.yaml), envMap(tt.env), noFiles)
			if err == nil {
				t.Fatal("load succeeded, want problems")
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("a problem quotes the secret: %v", err)
			}
			ps := problemsOf(t, err)
			assertProblems(t, ps, tt.want)
			if tt.fromEnv != "" && ps[0].Env != tt.fromEnv {
				t.Errorf("the problem names %q, want %q", ps[0].Env, tt.fromEnv)
			}
		})
	}
}

// TestTracingHeadersRedacted: the headers are a secret: --print-config
// and fmt show REDACTED.
func TestTracingHeadersRedacted(t *testing.T) {
	const secret = "Bearer%20otlp-s3cr3t-99"
	c, err := load(nil, envMap(map[string]string{"AGENTID_TRACING_ENDPOINT": "https://otel.example.com", "AGENTID_TRACING_HEADERS": "authorization=" + secret}), noFiles)
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{string(out), fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c)} {
		if strings.Contains(s, "otlp-s3cr3t") {
			t.Errorf("the headers leak:\n%s", s)
		}
	}
	if !strings.Contains(string(out), "headers: REDACTED") {
		t.Errorf("--print-config does not show the headers as REDACTED:\n%s", out)
	}
}
