#!/bin/sh
# Self-contained builds, for machines without Node.js (or with another version):
#   build/snakebite.cjs   one bundled file (esbuild): runs on any Node.js >= 20
#   build/snakebite       a single executable application: Node.js itself with the
#                         bundle injected (postject), no Node.js needed on the target
# The executable embeds the Node.js binary it was built with (NODE=path, default the
# newest under .cache/node/), so it is as big as that (about 120 MB) and runs on
# Linux of the same architecture and a glibc at least as new as that build's.
set -eu
cd "$(dirname "$0")/.."
[ -f dist/src/cli/main.js ] || npm run --silent build
mkdir -p build
npx --no-install esbuild bin/snakebite --bundle --platform=node --target=node20 --format=cjs \
  --outfile=build/snakebite.cjs --log-level=warning
chmod +x build/snakebite.cjs

node_bin="${NODE:-$(sh scripts/node-versions.sh | tail -n 1)/node}"
cat > build/sea-config.json <<JSON
{ "main": "build/snakebite.cjs", "output": "build/snakebite.blob", "disableExperimentalSEAWarning": true, "useCodeCache": false }
JSON
"$node_bin" --experimental-sea-config build/sea-config.json >/dev/null 2>&1
rm -f build/snakebite
cp "$node_bin" build/snakebite
chmod u+w build/snakebite
# postject warns about ELF note sections it does not parse; only its exit status matters.
npx --no-install postject build/snakebite NODE_SEA_BLOB build/snakebite.blob \
  --sentinel-fuse NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2 >build/postject.log 2>&1 || { cat build/postject.log >&2; exit 1; }
rm -f build/snakebite.blob build/sea-config.json build/postject.log
echo "build-standalone: build/snakebite.cjs ($(wc -c < build/snakebite.cjs) bytes), build/snakebite ($(wc -c < build/snakebite) bytes, Node.js $("$node_bin" --version))"
