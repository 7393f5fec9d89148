#!/usr/bin/env bash
# test-sh-cleanup.sh — checks that scripts/test.sh stops the PostgreSQL
# cluster it started and leaves alone one that was already running. It runs
# test.sh in a scratch copy with postgres.sh, chromium.sh, go and gofmt
# replaced by stand-ins that record their calls; nothing real starts.
#
#   bash scripts/test-sh-cleanup.sh
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
T="$(mktemp -d)"
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/repo/scripts" "$T/bin"
cp "$REPO/scripts/test.sh" "$T/repo/scripts/"
git -C "$T/repo" init -q .
cat >"$T/repo/scripts/postgres.sh" <<'STUB'
#!/usr/bin/env bash
echo "${1:-start}" >>"$CALLS"
case "${1:-start}" in
status) [ -f "$UP" ] ;;
stop) rm -f "$UP" ;;
start) touch "$UP"; echo "postgres://stand-in" ;;
esac
STUB
printf '#!/bin/sh\necho /bin/true\n' >"$T/repo/scripts/chromium.sh"
printf '#!/bin/sh\nexit 0\n' >"$T/bin/go"
cp "$T/bin/go" "$T/bin/gofmt"
chmod +x "$T"/repo/scripts/*.sh "$T"/bin/*
export CALLS="$T/calls" UP="$T/up" PATH="$T/bin:$PATH"

fail() { echo "test-sh-cleanup: $*" >&2; exit 1; }

# A cluster test.sh started is stopped when it exits.
bash "$T/repo/scripts/test.sh" >/dev/null
[ ! -f "$UP" ] || fail "test.sh left the cluster it started running"
grep -qx stop "$CALLS" || fail "test.sh never stopped the cluster it started"

# A cluster that was already running is left running.
rm -f "$CALLS"
touch "$UP"
bash "$T/repo/scripts/test.sh" >/dev/null
[ -f "$UP" ] || fail "test.sh stopped a cluster it did not start"
! grep -qx stop "$CALLS" || fail "test.sh stopped a cluster it did not start"
echo "test-sh-cleanup: ok"
