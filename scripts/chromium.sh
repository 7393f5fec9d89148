#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests, idempotently, and prints
# the path of its binary. Browser tests find it through AGENTID_TEST_CHROMIUM.
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "chromium is missing and installing it needs root: apt-get install chromium" >&2
    exit 1
  fi
  echo "installing chromium…" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq chromium >&2
fi
command -v chromium
