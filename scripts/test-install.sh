#!/bin/sh
# What a user gets from the package: `npm pack` (its prepack builds), then, on
# each Node.js version (the machine's and the ones under .cache/node/), install
# the tarball into a new empty prefix with `npm install -g`, check
# `snakebite --version`, and connect two peers behind cone NATs in the lab with
# the installed `snakebite` (not the checkout's). Needs root for the lab, and
# a build of the tests (dist/test/). Prints the sizes as one JSON line.
set -eu
cd "$(dirname "$0")/.."

work="$(mktemp -d /tmp/snakebite-install.XXXXXX)"
trap 'rm -rf "$work"' EXIT INT TERM

tarball="$work/$(npm pack --silent --loglevel=error --pack-destination "$work" | tail -n 1)"
want="snakebite $(node -p 'require("./package.json").version')"

bins="$(dirname "$(command -v node)") $(sh scripts/node-versions.sh)"
for bin in $bins; do
  version="$("$bin/node" --version)"
  prefix="$work/prefix-$version"
  mkdir "$prefix"
  echo "== install $(basename "$tarball") on Node.js $version into an empty prefix"
  PATH="$bin:$PATH" npm install --global --prefix "$prefix" --no-audit --no-fund --loglevel=error "$tarball" >/dev/null
  got="$(PATH="$bin:$PATH" "$prefix/bin/snakebite" --version)"
  if [ "$got" != "$want" ]; then
    echo "installed snakebite --version says \"$got\", want \"$want\"" >&2
    exit 1
  fi
  if [ "$(id -u)" = 0 ]; then
    echo "== lab cone-cone with the installed snakebite on Node.js $version"
    PATH="$bin:$PATH" LAB_SNAKEBITE_BIN="$prefix/bin/snakebite" "$bin/node" --test --test-concurrency=1 \
      --test-name-pattern='cone-cone, daemons' dist/test/lab/cone-cone.test.js
  fi
done

echo "== self-contained builds (scripts/build-standalone.sh)"
sh scripts/build-standalone.sh
got="$(node build/snakebite.cjs --version)"
[ "$got" = "$want" ] || { echo "build/snakebite.cjs --version says \"$got\"" >&2; exit 1; }
# The single executable runs with no Node.js on PATH at all.
got="$(env -i PATH=/nonexistent "$PWD/build/snakebite" --version)"
[ "$got" = "$want" ] || { echo "build/snakebite --version says \"$got\"" >&2; exit 1; }
if [ "$(id -u)" = 0 ]; then
  echo "== lab cone-cone with the single executable build/snakebite"
  LAB_SNAKEBITE_BIN="$PWD/build/snakebite" node --test --test-concurrency=1 \
    --test-name-pattern='cone-cone, daemons' dist/test/lab/cone-cone.test.js
fi

installed="$(du -sk "$work/prefix-$("$(dirname "$(command -v node)")/node" --version)/lib/node_modules/snakebite" | cut -f1)"
packed="$(wc -c < "$tarball")"
echo "{\"event\":\"install-size\",\"tarballBytes\":$packed,\"installedKiB\":$installed,\"bundleBytes\":$(wc -c < build/snakebite.cjs),\"executableBytes\":$(wc -c < build/snakebite)}"
