#!/usr/bin/env bash
# Measures a real `agentid serve` with `agentid bench` (docs/benchmarks.md).
#
#   scripts/bench.sh sqlite   [agentid bench flags...]
#   scripts/bench.sh postgres [--replicas N] [agentid bench flags...]
#
# Builds the binary, creates a fresh store (PostgreSQL: a new schema in the
# database of AGENTID_BENCH_POSTGRES), starts
# the hub once to create its keys, stops it, and times a second start from
# exec to the first 200 from /readyz (startup on an existing database). Then
# runs `agentid bench --hub … --pid <the hub>` (PostgreSQL on this machine:
# also --db-pid <its postmaster>) with the flags given and stops
# the hub. Everything listens on 127.0.0.1; the work directory (binary, data,
# the hub's log) is printed and kept. BENCH_BIN=<path> runs that prebuilt
# binary instead of building one (interleaved pairs of two versions).
#
# --replicas N (PostgreSQL): the second start is N `agentid serve` processes
# on the one schema, started together, on ports BENCH_PORT, BENCH_PORT+1, …
# with one issuer (the first's URL) and one KEK file; the bench sends each
# worker's requests to them in turn and sums their CPU time and memory.
set -euo pipefail

backend=${1:?usage: scripts/bench.sh sqlite|postgres [--replicas N] [agentid bench flags...]}
shift
replicas=1
if [[ ${1:-} == --replicas ]]; then
	replicas=${2:?--replicas needs a number}
	shift 2
	[[ $replicas =~ ^[1-9][0-9]*$ ]] || {
		echo "--replicas $replicas: a positive number" >&2
		exit 2
	}
	[[ $backend == postgres || $replicas == 1 ]] || {
		echo "--replicas: PostgreSQL only (an SQLite store is one process's)" >&2
		exit 2
	}
fi
cd "$(dirname "$0")/.."
work=${BENCH_DIR:-$(mktemp -d /tmp/agentid-bench.XXXXXX)}
mkdir -p "$work"
port=${BENCH_PORT:-19315}
bin=${BENCH_BIN:-$work/agentid}
[[ -n ${BENCH_BIN:-} ]] || go build -o "$bin" ./cmd/agentid

export AGENTID_DATA_DIR=$work/data
export AGENTID_LISTEN=127.0.0.1:$port
export AGENTID_ISSUER=http://127.0.0.1:$port
# One KEK for every replica (the first start creates it).
export AGENTID_KEK_FILE=$work/data/kek.key
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

pids=()
# start_hubs N starts N replicas together and waits until each answers
# /readyz; it prints the time from the first exec to the last ready.
start_hubs() {
	local n=$1 t0 t1 i
	pids=()
	t0=$(date +%s%N)
	for ((i = 0; i < n; i++)); do
		AGENTID_LISTEN=127.0.0.1:$((port + i)) AGENTID_DATA_DIR=$work/data$([[ $i == 0 ]] || echo "-$i") \
			"$bin" serve >/dev/null 2>>"$work/serve$([[ $i == 0 ]] || echo "-$i").log" &
		pids+=($!)
	done
	for ((i = 0; i < n; i++)); do
		until curl -sf -o /dev/null "http://127.0.0.1:$((port + i))/readyz"; do
			kill -0 "${pids[$i]}" 2>/dev/null || {
				echo "hub $i exited; see $work/serve*.log" >&2
				exit 1
			}
			sleep 0.002
		done
	done
	t1=$(date +%s%N)
	echo "startup to ready ($n): $(((t1 - t0) / 1000000)) ms" >&2
}
stop_hubs() {
	kill -TERM "${pids[@]}"
	wait "${pids[@]}" || true
}
trap 'kill -TERM "${pids[@]}" 2>/dev/null || true' EXIT

start_hubs 1 # first start: creates the signing keys and the KEK
stop_hubs
start_hubs "$replicas" # on an existing database
hubs=()
for ((i = 0; i < replicas; i++)); do
	hubs+=(--hub "http://127.0.0.1:$((port + i))" --pid "${pids[$i]}")
done
echo "hub pids ${pids[*]}, work directory $work, load: $(uptime)" >&2
"$bin" bench "${hubs[@]}" "${extra[@]}" "$@"
stop_hubs
trap - EXIT
