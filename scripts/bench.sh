#!/usr/bin/env bash
# Measures a real `agentid serve` with `agentid bench` (docs/benchmarks.md).
#
#   scripts/bench.sh sqlite   [agentid bench flags...]
#   scripts/bench.sh postgres [agentid bench flags...]
#
# Builds the binary, creates a fresh store (PostgreSQL: a new schema in the
# database of AGENTID_BENCH_POSTGRES), starts
# the hub once to create its keys, stops it, and times a second start from
# exec to the first 200 from /readyz (startup on an existing database). Then
# runs `agentid bench --hub … --pid <the hub>` (PostgreSQL on this machine:
# also --db-pid <its postmaster>) with the flags given and stops
# the hub. Everything listens on 127.0.0.1; the work directory (binary, data,
# the hub's log) is printed and kept.
set -euo pipefail

backend=${1:?usage: scripts/bench.sh sqlite|postgres [agentid bench flags...]}
shift
cd "$(dirname "$0")/.."
work=${BENCH_DIR:-$(mktemp -d /tmp/agentid-bench.XXXXXX)}
port=${BENCH_PORT:-19315}
bin=$work/agentid
go build -o "$bin" ./cmd/agentid

export AGENTID_DATA_DIR=$work/data
export AGENTID_LISTEN=127.0.0.1:$port
export AGENTID_ISSUER=http://127.0.0.1:$port
extra=()
case $backend in
sqlite) ;;
postgres)
	# A fresh schema (the test cluster's user may not create databases),
	# named in the DSN's search_path as internal/store/pgtest does.
	admin=${AGENTID_BENCH_POSTGRES:?set AGENTID_BENCH_POSTGRES to a postgres:// URL}
	schema=agentid_bench_$(date +%s)
	psql "$admin" -qc "CREATE SCHEMA $schema"
	sep='?'
	[[ $admin == *\?* ]] && sep='&'
	export AGENTID_STORE_DSN=$admin${sep}search_path=$schema
	echo "schema $schema (drop it when done: DROP SCHEMA $schema CASCADE)" >&2
	# The postmaster (the parent of a backend) when the cluster runs here:
	# the bench then reports the database server's CPU time too. The
	# backend is read while its session still sleeps.
	coproc PSQL { psql "$admin" -At -f - <<<"SELECT pg_backend_pid();
SELECT pg_sleep(1);"; }
	read -r backend_pid <&"${PSQL[0]}"
	if [[ -r /proc/$backend_pid/stat ]]; then
		db_pid=$(awk '{sub(/.*\) /, ""); print $2}' "/proc/$backend_pid/stat")
		extra=(--db-pid "$db_pid")
		echo "database server pid $db_pid" >&2
	fi
	wait "$PSQL_PID" || true
	;;
*)
	echo "unknown backend $backend (sqlite or postgres)" >&2
	exit 2
	;;
esac
"$bin" migrate >/dev/null

pid=
start_hub() {
	local t0 t1
	t0=$(date +%s%N)
	"$bin" serve >/dev/null 2>>"$work/serve.log" &
	pid=$!
	until curl -sf -o /dev/null "$AGENTID_ISSUER/readyz"; do
		kill -0 "$pid" 2>/dev/null || {
			echo "the hub exited; see $work/serve.log" >&2
			exit 1
		}
		sleep 0.002
	done
	t1=$(date +%s%N)
	echo "startup to ready: $(((t1 - t0) / 1000000)) ms" >&2
}
stop_hub() {
	kill -TERM "$pid"
	wait "$pid" || true
}
trap 'kill -TERM $pid 2>/dev/null || true' EXIT

start_hub # first start: creates the signing keys
stop_hub
start_hub # on an existing database
echo "hub pid $pid, work directory $work, load: $(uptime)" >&2
"$bin" bench --hub "$AGENTID_ISSUER" --pid "$pid" "${extra[@]}" "$@"
stop_hub
trap - EXIT
