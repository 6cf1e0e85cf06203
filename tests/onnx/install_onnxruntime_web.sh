#!/usr/bin/env bash
# Installs the pinned onnxruntime-web (ONNX Runtime for the web, WASM backend) with npm into
# PREFIX, for tests/onnx/run_onnxruntime.js. Run by CTest as the setup of the ONNX tests.
#
#   install_onnxruntime_web.sh PREFIX VERSION
#
# Does nothing when PREFIX already holds that version, so only the first ctest run needs the
# network (about 7 s and 154 MB for 1.31.1); runs afterwards are offline. The package goes to
# a temporary folder next to PREFIX first and is renamed into place when complete, so an
# interrupted install never looks like a finished one.
# Exit status: 0 installed or present; 77 (CTest: Skipped) when node or npm is missing or
# npm fails (offline with an empty npm cache): the tests that need the package still run
# (a skipped setup does not stop them; a failed one would, the checker's cases included)
# and report their ONNX Runtime checks "[skipped]"; 1 when npm installs something else.
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 PREFIX VERSION" >&2
  exit 2
fi
prefix=$1
version=$2
package=$prefix/node_modules/onnxruntime-web/package.json

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "install_onnxruntime_web: node or npm not found (Debian nodejs and npm, or Node.js 20" \
       "from nodesource): the ONNX Runtime checks are skipped" >&2
  exit 77
fi

installed_version() {
  node -e 'process.stdout.write(require(process.argv[1]).version)' "$1" 2>/dev/null || true
}

if [[ -f $package && $(installed_version "$package") == "$version" ]]; then
  echo "install_onnxruntime_web: onnxruntime-web $version is present in $prefix"
  exit 0
fi

parent=$(dirname "$prefix")
mkdir -p "$parent"
staging=$(mktemp -d "$parent/.onnxruntime-install.XXXXXX")
chmod 755 "$staging"  # mktemp makes it 0700
trap 'rm -rf "$staging"' EXIT
echo "install_onnxruntime_web: npm install onnxruntime-web@$version into $prefix (node" \
     "$(node --version), npm $(npm --version)) ..."
start=$(date +%s)
# --prefer-offline: reuse npm's cache (~/.npm) when it has the package, so a second build
# directory installs without the network.
# A retry waits at most 10 s (npm: 60 s), so an offline first run gives up in ~20 s, not ~75.
if ! npm install --no-audit --no-fund --prefer-offline --loglevel=error --fetch-retry-maxtimeout=10000 \
       --prefix "$staging" \
       "onnxruntime-web@$version"; then
  echo "install_onnxruntime_web: npm install onnxruntime-web@$version failed (no network and" \
       "not in npm's cache?); the ONNX Runtime checks will be skipped" >&2
  exit 77
fi
if [[ $(installed_version "$staging/node_modules/onnxruntime-web/package.json") != "$version" ]]; then
  echo "install_onnxruntime_web: npm did not install onnxruntime-web $version" >&2
  exit 1
fi
rm -rf "$prefix"
mv "$staging" "$prefix"
trap - EXIT
echo "install_onnxruntime_web: installed onnxruntime-web $version in $(( $(date +%s) - start )) s," \
     "$(du -sh "$prefix" | cut -f1) in $prefix"
