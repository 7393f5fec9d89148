#!/usr/bin/env bash
# Outside interop check (not part of scripts/test.sh): builds agentid, starts
# the demo on free ports, runs the official TypeScript MCP SDK client against
# it, and stops the demo. Needs Go, Node >= 20 and npm.
# It runs client.mjs against one demo with the SDK's v1 package and its v2
# client package (MCP_SDK=v1|v2 picks one), each three times: the SDK
# registering the client itself, then PREREGISTER=none and PREREGISTER=all,
# which register it before the SDK would (see client.mjs), then CIMD=1, where
# the agents identify themselves with Client ID Metadata Documents that
# client.mjs serves over https on loopback: run.sh makes a self-signed
# certificate for 127.0.0.1 and starts the demo with SSL_CERT_FILE naming it,
# so the hub trusts it and fetches the documents through its loopback
# development allowance (cimd.allow_loopback, on in the demo). Set PREREGISTER
# (or CIMD=1) to run one of them. Needs openssl too.
# The v1 SDK (1.32.2) answers insufficient_scope by refreshing, which cannot
# widen scope (RFC 6749 §6); client.mjs then retries with the refresh token
# hidden so that it re-authorizes. The v2 client (2.4.0) needs no such help.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=${AGENTID_REPO:-$(cd "$here/../../.." && pwd)}
work=$(mktemp -d)
demo_pid=
cleanup() { [ -n "$demo_pid" ] && kill "$demo_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
(cd "$repo" && go build -o "$work/agentid" ./cmd/agentid)
(cd "$here" && npm install --no-audit --no-fund --silent)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$work/cimd-key.pem" -out "$work/cimd-cert.pem" 2>/dev/null
SSL_CERT_FILE="$work/cimd-cert.pem" "$work/agentid" demo --json --data-dir "$work/demo" --port "$(free_port)" --mcp-port "$(free_port)" >"$work/demo.out" 2>"$work/demo.err" &
demo_pid=$!
for _ in $(seq 100); do [ -s "$work/demo.out" ] && break; sleep 0.1; done
line=$(head -1 "$work/demo.out")
[ -n "$line" ] || { cat "$work/demo.err" >&2; exit 1; }
if [ "${CIMD:-}" = 1 ]; then modes=(cimd); elif [ -n "${PREREGISTER+set}" ]; then modes=("$PREREGISTER"); else modes=("" none all cimd); fi
if [ -n "${MCP_SDK+set}" ]; then sdks=("$MCP_SDK"); else sdks=(v1 v2); fi
for sdk in "${sdks[@]}"; do
  for mode in "${modes[@]}"; do
    if [ "$mode" = cimd ]; then
      echo "== client.mjs with SDK $sdk, CIMD=1" >&2
      MCP_SDK=$sdk CIMD=1 CIMD_CERT="$work/cimd-cert.pem" CIMD_KEY="$work/cimd-key.pem" \
        REDIRECT_URL="http://127.0.0.1:$(free_port)/callback" node "$here/client.mjs" "$line"
      continue
    fi
    echo "== client.mjs with SDK $sdk${mode:+, PREREGISTER=$mode}" >&2
    MCP_SDK=$sdk PREREGISTER=$mode REDIRECT_URL="http://127.0.0.1:$(free_port)/callback" node "$here/client.mjs" "$line"
  done
done
