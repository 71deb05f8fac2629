#!/bin/sh
# Installs what Snakebite's build, demo and tests need, then builds.
# Idempotent, and quick when everything is already there: apt runs only
# for a missing tool, npm ci only when the lock file changed.
#   --test  also what only the tests need: Node.js 22 and 24 under .cache/node/,
#           headless Chromium (browser test) and systemd-analyze (unit files).
set -eu
cd "$(dirname "$0")/.."
for_tests=false
[ "${1:-}" = "--test" ] && for_tests=true

missing=""
want() { command -v "$1" >/dev/null 2>&1 || missing="$missing $2"; }
want wg wireguard-tools
want wireguard-go wireguard-go
want ip iproute2
want iptables iptables
want conntrack conntrack
want ping iputils-ping
if $for_tests; then
  want chromium chromium
  want systemd-analyze systemd
fi

if [ -n "$missing" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing Debian packages:$missing; run as root (sudo npm run demo / sudo npm test)" >&2
    exit 1
  fi
  echo "setup: installing$missing"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error
fi

if $for_tests; then
  sh scripts/node-versions.sh >/dev/null
fi

echo "setup: building"
npm run --silent build
