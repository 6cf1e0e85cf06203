#!/usr/bin/env bash
# Installs onnxruntime-web (ONNX Runtime for the web, WASM backend) with npm into PREFIX, for
# tests/onnx/run_onnxruntime.js. Run by CTest as the setup of the ONNX tests.
#
#   install_onnxruntime_web.sh PREFIX
#
# What is installed is pinned by tests/onnx/npm/: package.json names the version and
# package-lock.json the exact version and sha512 of it and of its 17 dependencies; `npm ci`
# installs exactly that or fails. (Regenerate the lock after changing the version:
# `npm install --package-lock-only` in a copy of that folder.)
#
# Does nothing when PREFIX already holds an install of the same lock file, so only the first
# ctest run of a build directory needs the network (about 8 s and 154 MB for 1.31.1); runs
# afterwards are offline, and a second build directory installs from npm's cache (~/.npm)
# offline too (--prefer-offline). The package goes to a temporary folder next to PREFIX
# first and is renamed into place when complete, so an interrupted install never looks like
# a finished one.
#
# Exit status: 0 installed or present; 77 (CTest: Skipped) when node or npm is missing or
# npm fails (offline with an empty npm cache): the tests that need the package still run
# (a skipped setup does not stop them; a failed one would, the checker's cases included)
# and report their ONNX Runtime checks "[skipped]"; 1 when a download does not match its
# sha512 in the lock file, or npm installs another version.
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 PREFIX" >&2
  exit 2
fi
prefix=$1
pins=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/npm

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "install_onnxruntime_web: node or npm not found (Node.js 20 and npm): the ONNX Runtime" \
       "checks are skipped" >&2
  exit 77
fi

version=$(node -p 'require(process.argv[1]).dependencies["onnxruntime-web"]' "$pins/package.json")
installed_version() {
  node -p 'require(process.argv[1]).version' "$1/node_modules/onnxruntime-web/package.json" \
    2>/dev/null || true
}

if [[ $(installed_version "$prefix") == "$version" ]] &&
   cmp -s "$pins/package-lock.json" "$prefix/package-lock.json"; then
  echo "install_onnxruntime_web: onnxruntime-web $version is present in $prefix"
  exit 0
fi

parent=$(dirname "$prefix")
mkdir -p "$parent"
staging=$(mktemp -d "$parent/.onnxruntime-install.XXXXXX")
chmod 755 "$staging"  # mktemp makes it 0700
trap 'rm -rf "$staging"' EXIT
cp "$pins/package.json" "$pins/package-lock.json" "$staging/"
echo "install_onnxruntime_web: npm ci of onnxruntime-web $version into $prefix (node" \
     "$(node --version), npm $(npm --version)) ..."
start=$(date +%s)
# A retry waits at most 10 s (npm: 60 s), so an offline first run gives up in ~20 s, not ~75.
log=$staging/npm.log
if ! (cd "$staging" && npm ci --no-audit --no-fund --prefer-offline --loglevel=error \
        --fetch-retry-maxtimeout=10000) >"$log" 2>&1; then
  cat "$log" >&2
  if grep -q EINTEGRITY "$log"; then
    echo "install_onnxruntime_web: a package does not match the sha512 in" \
         "$pins/package-lock.json: refused" >&2
    exit 1
  fi
  echo "install_onnxruntime_web: npm ci of onnxruntime-web $version failed (no network and" \
       "not in npm's cache?); the ONNX Runtime checks will be skipped" >&2
  exit 77
fi
cat "$log"
rm "$log"
if [[ $(installed_version "$staging") != "$version" ]]; then
  echo "install_onnxruntime_web: npm did not install onnxruntime-web $version" >&2
  exit 1
fi
rm -rf "$prefix"
mv "$staging" "$prefix"
trap - EXIT
echo "install_onnxruntime_web: installed onnxruntime-web $version in $(( $(date +%s) - start )) s," \
     "$(du -sh "$prefix" | cut -f1) in $prefix"
