#!/usr/bin/env bash
# Runs every test of agentid: formatting, vet, staticcheck, then the whole
# suite under the race detector against SQLite, a throwaway PostgreSQL
# cluster and headless Chromium, which this script starts or installs as
# needed (idempotently), stopping on exit the cluster it started. CI runs
# exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# Stop the PostgreSQL cluster on exit only if this run started it; a cluster
# that was already up (another run, a developer's shell) is left alone.
if ! scripts/postgres.sh status; then
	trap 'scripts/postgres.sh stop' EXIT
fi
AGENTID_TEST_POSTGRES="$(scripts/postgres.sh)"
AGENTID_TEST_CHROMIUM="$(scripts/chromium.sh)"
export AGENTID_TEST_POSTGRES AGENTID_TEST_CHROMIUM

unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:" >&2
  echo "$unformatted" >&2
  exit 1
fi
go vet ./...
go tool staticcheck ./...
go test -race -count=1 -timeout 30m ./... "$@"
# Every benchmark once, without the race detector: a benchmark that no
# longer runs (say, refused by a new limit) fails here instead of on the
# day someone measures. Built as the Dockerfile builds the hub (no cgo,
# -trimpath), so this step reuses the packages TestDockerfileBuildsStaticBinary
# compiled above instead of compiling everything a third time.
CGO_ENABLED=0 go test -trimpath -count=1 -run '^$' -bench . -benchtime 1x ./...
