#!/bin/sh
# `systemd-analyze verify` on every unit in systemd/ (or the directory given),
# as an instance for wg0. It needs no running systemd, but it exits 0 on
# unknown keys and bad values, so any line it prints fails the check.
set -eu
cd "$(dirname "$0")/.."
units="${1:-systemd}"
command -v systemd-analyze >/dev/null || { echo "verify-units: systemd-analyze missing (apt-get install systemd)" >&2; exit 1; }
work="$(mktemp -d /tmp/snakebite-units.XXXXXX)"
trap 'rm -rf "$work"' EXIT INT TERM
cp "$units"/*.service "$work"/
instances=""
for file in "$work"/*@.service; do
  instances="$instances $(basename "$file" | sed 's/@\.service$/@wg0.service/')"
done
cd "$work"
out="$(SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no $instances 2>&1)" || { echo "$out" >&2; exit 1; }
if [ -n "$out" ]; then
  echo "verify-units: systemd-analyze verify complained:" >&2
  echo "$out" >&2
  exit 1
fi
echo "verify-units: ok:$instances"
