#!/bin/sh
# Everything CI runs (npm test; its pretest ran scripts/setup.sh --test):
# unit tests on every Node.js version we support, the packed tarball installed
# and used in the lab on each of them, the systemd units verified, then every
# attack and lab test (once) on the machine's Node.js. Stops at the first failure.
set -eu
cd "$(dirname "$0")/.."
start=$(date +%s)

for bin in "$(dirname "$(command -v node)")" $(sh scripts/node-versions.sh); do
  echo "== unit tests on Node.js $("$bin/node" --version)"
  # Files, not a folder: Node.js 22 and later read --test arguments as globs only.
  "$bin/node" --test $(find dist/test/unit -name '*.test.js' | sort)
done

echo "== systemd units"
sh scripts/verify-units.sh

sh scripts/test-install.sh

echo "== attack (fuzz, 1,000-peer load, exhaustion) and lab tests on Node.js $(node --version)"
node --test --test-concurrency=1 --test-timeout=300000 $(find dist/test/attack dist/test/lab -name '*.test.js' 2>/dev/null | sort)
echo "test-all: $(( $(date +%s) - start )) s"
