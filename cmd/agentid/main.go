// Command agentid is the agentid hub: an OAuth 2.1 authorization server and
// identity provider for AI agents and MCP servers. `agentid serve` runs it,
// `agentid migrate` upgrades its database, and the admin commands (clients,
// resources, users, keys) manage its store directly.
//
// This package is the composition root: the only place that knows the
// concrete store backends, reads the process environment and parses flags.
// main itself only wires the process to run, which tests call directly.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// SIGINT and SIGTERM cancel the context; serve then shuts down
	// gracefully, and admin commands abandon their store call.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.LookupEnv)
	stop()
	os.Exit(code)
}
