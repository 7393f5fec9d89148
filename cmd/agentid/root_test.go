package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/agentid/agentid/internal/config"
)

func TestErrorText(t *testing.T) {
	ps := config.Problems{
		{Setting: "tokens.x", Line: 3, Msg: `unknown key "x" in tokens`},
		{Setting: "log.level", Env: "AGENTID_LOG_LEVEL", Msg: "log.level: bad"},
		{Setting: "issuer", Msg: "issuer: required"},
	}
	tests := []struct {
		name string
		err  error
		path string
		want string
	}{
		{name: "plain error", err: errors.New("no client"), want: "no client"},
		{name: "problems with file", err: ps, path: "a.yaml", want: "invalid configuration:\n  a.yaml:3: unknown key \"x\" in tokens\n  AGENTID_LOG_LEVEL: log.level: bad\n  issuer: required"},
		{name: "problems without file", err: ps[:1], want: "invalid configuration:\n  line 3: unknown key \"x\" in tokens"},
		{name: "wrapped problems", err: fmt.Errorf("loading: %w", ps[2:]), path: "a.yaml", want: "invalid configuration:\n  issuer: required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errorText(tt.err, tt.path); got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestRunExitCodes(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"help", []string{"--help"}, exitOK},
		{"no arguments prints help", nil, exitOK},
		{"unknown command", []string{"nope"}, exitUsage},
		{"unknown flag", []string{"--nope"}, exitUsage},
		{"missing argument", []string{"users", "disable"}, exitUsage},
		{"extra argument", []string{"migrate", "now"}, exitUsage},
		{"runtime failure", []string{"serve", "--config", "/nonexistent/agentid.yaml"}, exitError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			got := run(context.Background(), tt.args, strings.NewReader(""), &stdout, &stderr, nil)
			if got != tt.want {
				t.Fatalf("exit %d, want %d; stderr: %s", got, tt.want, stderr.String())
			}
			if got != exitOK && !strings.HasPrefix(stderr.String(), "agentid: ") {
				t.Errorf("stderr %q does not start with the program name", stderr.String())
			}
		})
	}
}
