#!/usr/bin/env bash
# postgres.sh — a throwaway PostgreSQL 15 cluster for agentid's tests.
#
# Usage:
#   scripts/postgres.sh          start the cluster (if it is not up) and print its DSN
#   scripts/postgres.sh start    same
#   scripts/postgres.sh dsn      print the DSN (does not start anything)
#   scripts/postgres.sh status   exit 0 if the cluster is running
#   scripts/postgres.sh stop     stop the cluster (no-op if it is not running)
#
#   export AGENTID_TEST_POSTGRES="$(scripts/postgres.sh)"
#   go test ./internal/store/postgres/...
#
# Only the DSN goes to stdout; progress goes to stderr. The cluster lives in
# $REPO/.pg (gitignored), listens only on 127.0.0.1:${AGENTID_PG_PORT:-55432}
# and keeps its unix socket inside .pg. If AGENTID_PG_PORT is not set and
# 55432 is taken by something else (say, another checkout's cluster), the next
# free port up to 55452 is used; the printed DSN always names the real port. It is tuned for tests (fsync off):
# never put data you care about in it. Running the script again while the
# cluster is up changes nothing and prints the same DSN.
#
# PostgreSQL refuses to run as root, so as root (CI) the cluster runs as the
# unprivileged system user agentid-pg; as any other user it runs as that user.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
PGROOT="$REPO/.pg"
DATA="$PGROOT/data"
SOCK="$PGROOT/run"
LOG="$PGROOT/postgres.log"
PORT="${AGENTID_PG_PORT:-55432}"
PORT_SET="${AGENTID_PG_PORT:+1}"
PGVER=15
PGBIN="/usr/lib/postgresql/$PGVER/bin"
PGUSER_OS=agentid-pg
DB=agentid_test
ROLE=agentid
# A fixed password is fine: the cluster is throwaway, listens on loopback only
# and holds test data.
PASSWORD=agentid-test

log() { echo "postgres.sh: $*" >&2; }
die() {
	log "$*"
	exit 1
}

case "$PORT" in
'' | *[!0-9]*) die "AGENTID_PG_PORT must be a port number, got '$PORT'" ;;
esac

dsn() {
	echo "postgres://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DB?sslmode=disable"
}

# port_busy reports whether something accepts TCP connections on port $1.
port_busy() {
	(echo >"/dev/tcp/127.0.0.1/$1") >/dev/null 2>&1
}

# pick_port keeps $PORT if it is free; otherwise, unless the port was asked
# for explicitly, it moves to the next free one.
pick_port() {
	port_busy "$PORT" || return 0
	[ -z "$PORT_SET" ] || die "port $PORT is already in use (AGENTID_PG_PORT)"
	local p
	for p in $(seq $((PORT + 1)) $((PORT + 20))); do
		if ! port_busy "$p"; then
			log "port $PORT is in use; using $p"
			PORT="$p"
			return 0
		fi
	done
	die "ports $PORT-$((PORT + 20)) are all in use; set AGENTID_PG_PORT"
}

# as_pg runs a command as the cluster's owner.
as_pg() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u "$PGUSER_OS" -- "$@"
	else
		"$@"
	fi
}

running() {
	[ -f "$DATA/PG_VERSION" ] && as_pg "$PGBIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

# running_port prints the port of the running postmaster (line 4 of
# postmaster.pid).
running_port() {
	sed -n 4p "$DATA/postmaster.pid" 2>/dev/null || true
}

ensure_binaries() {
	if [ -x "$PGBIN/postgres" ] && [ -x "$PGBIN/initdb" ] && [ -x "$PGBIN/pg_ctl" ] && [ -x "$PGBIN/psql" ]; then
		return
	fi
	[ "$(id -u)" -eq 0 ] || die "PostgreSQL $PGVER binaries are missing under $PGBIN; install postgresql-$PGVER as root"
	log "installing postgresql-$PGVER"
	export DEBIAN_FRONTEND=noninteractive
	# apt-get update only when the package is not known to apt yet.
	if ! apt-cache show "postgresql-$PGVER" >/dev/null 2>&1; then
		apt-get update -qq >&2
	fi
	if ! apt-get install -y -qq "postgresql-$PGVER" >&2; then
		apt-get update -qq >&2
		apt-get install -y -qq "postgresql-$PGVER" >&2
	fi
	# The Debian package starts its own cluster on 5432; we do not use it.
	[ -x "$PGBIN/postgres" ] || die "postgresql-$PGVER installed but $PGBIN/postgres is missing"
}

ensure_os_user() {
	[ "$(id -u)" -eq 0 ] || return 0
	if ! id -u "$PGUSER_OS" >/dev/null 2>&1; then
		log "creating system user $PGUSER_OS"
		useradd --system --user-group --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin "$PGUSER_OS"
	fi
}

# ensure_reachable gives the cluster's user search (x) permission on every
# ancestor of .pg that it cannot traverse yet, e.g. /root when the repo lives
# under it. Only the x bit for others is added: nothing becomes listable.
ensure_reachable() {
	[ "$(id -u)" -eq 0 ] || return 0
	local d="$REPO"
	while :; do
		if ! runuser -u "$PGUSER_OS" -- test -x "$d"; then
			log "chmod o+x $d (so $PGUSER_OS can reach $PGROOT)"
			chmod o+x "$d"
		fi
		[ "$d" = / ] && break
		d="$(dirname "$d")"
	done
}

ensure_dirs() {
	mkdir -p "$PGROOT"
	if [ "$(id -u)" -eq 0 ]; then
		chown "$PGUSER_OS:$PGUSER_OS" "$PGROOT"
	fi
	chmod 0700 "$PGROOT"
	as_pg mkdir -p "$SOCK"
	as_pg chmod 0700 "$SOCK"
}

ensure_initdb() {
	[ -f "$DATA/PG_VERSION" ] && return
	log "initdb $DATA"
	rm -rf "$DATA"
	# Local (socket) connections trust the OS user, which only the owner of
	# the 0700 socket dir can reach; TCP needs the role's password.
	as_pg "$PGBIN/initdb" -D "$DATA" -U "$PGUSER_OS" -E UTF8 --locale=C \
		--auth-local=trust --auth-host=scram-sha-256 >&2
	cat >>"$DATA/postgresql.conf" <<EOF

# agentid test cluster (scripts/postgres.sh)
listen_addresses = '127.0.0.1'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 128MB
log_min_messages = warning
EOF
}

psql_admin() {
	as_pg "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U "$PGUSER_OS" -d postgres "$@"
}

ensure_db() {
	local has
	has="$(psql_admin -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")"
	if [ "$has" != 1 ]; then
		log "creating role $ROLE"
		psql_admin -c "CREATE ROLE $ROLE LOGIN PASSWORD '$PASSWORD'" >&2
	fi
	has="$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'")"
	if [ "$has" != 1 ]; then
		log "creating database $DB"
		psql_admin -c "CREATE DATABASE $DB OWNER $ROLE" >&2
	fi
}

start() {
	if running; then
		local p
		p="$(running_port)"
		if [ -n "$PORT_SET" ] && [ -n "$p" ] && [ "$p" != "$PORT" ]; then
			die "the cluster in $DATA is already running on port $p, not $PORT; run '$0 stop' first"
		fi
		PORT="${p:-$PORT}"
		ensure_db
		dsn
		return
	fi
	ensure_binaries
	ensure_os_user
	ensure_reachable
	ensure_dirs
	ensure_initdb
	pick_port
	log "starting PostgreSQL on 127.0.0.1:$PORT (log: $LOG)"
	if [ "$(id -u)" -eq 0 ]; then
		touch "$LOG"
		chown "$PGUSER_OS:$PGUSER_OS" "$LOG"
	fi
	# -w waits until the server accepts connections.
	if ! as_pg "$PGBIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 \
		-o "-p $PORT -k $SOCK -c listen_addresses=127.0.0.1" start >&2; then
		tail -n 20 "$LOG" >&2 || true
		die "PostgreSQL did not start"
	fi
	ensure_db
	dsn
}

stop() {
	if running; then
		log "stopping PostgreSQL"
		as_pg "$PGBIN/pg_ctl" -D "$DATA" -m fast -w stop >&2
	fi
}

case "${1:-start}" in
start) start ;;
stop) stop ;;
dsn)
	if running; then PORT="$(running_port)"; fi
	dsn
	;;
status) running ;;
-h | --help | help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' ;;
*) die "unknown command '$1' (start|stop|status|dsn)" ;;
esac
