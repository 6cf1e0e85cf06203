#!/usr/bin/env bash
# Regenerates the fuzzers' seed corpora: fuzz/corpus/idx/, tiny valid IDX files, raw and
# gzip, images and labels; and fuzz/corpus/safetensors/, small model files written by
# fuzz/make_safetensors_corpus.py (/usr/bin/python3 with numpy, or $PYTHON). The files are committed; this
# script documents where they come from.
# gzip -n keeps them byte-identical from run to run (no name or time stamp inside).
set -euo pipefail

out=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/corpus/idx
rm -rf "$out"
mkdir -p "$out"

# $1: file, rest: printf format and arguments for its bytes.
emit() {
  local file=$1
  shift
  # shellcheck disable=SC2059  # the format is ours, built from escapes
  printf "$@" >"$out/$file"
}

# 2 images of 2 x 3 pixels: magic 0x00000803, sizes 2, 2, 3, then 12 pixels.
emit images-2x2x3.idx '\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00\x03%b' \
  '\x00\x10\x20\x30\x40\x50\x60\x70\x80\x90\xa0\xff'
# 1 image of 1 x 1 pixel.
emit images-1x1x1.idx '\x00\x00\x08\x03\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x01\x7f'
# 5 labels: magic 0x00000801, size 5, then 0..4.
emit labels-5.idx '\x00\x00\x08\x01\x00\x00\x00\x05\x00\x01\x02\x03\x04'

# One Fashion-MNIST-sized image (28 x 28), so that the fuzzer reaches the programs' path.
emit images-28x28.idx '\x00\x00\x08\x03\x00\x00\x00\x01\x00\x00\x00\x1c\x00\x00\x00\x1c'
head -c 784 /dev/zero | tr '\0' '\200' >>"$out/images-28x28.idx"
# A header that declares 1,000,000 images of 28 x 28 (784 MB), in a gzip file of a few
# hundred bytes: what kFashionMnistLimits must refuse after the header (issue 15).
{ printf '\x00\x00\x08\x03\x00\x0f\x42\x40\x00\x00\x00\x1c\x00\x00\x00\x1c'; head -c 784 /dev/zero; } |
  gzip -n -9 -c >"$out/images-million-declared.idx.gz"

gzip -n -9 -c "$out/images-2x2x3.idx" >"$out/images-2x2x3.idx.gz"
gzip -n -9 -c "$out/labels-5.idx" >"$out/labels-5.idx.gz"
# Two concatenated gzip members (header, then data), which the reader must accept.
head -c 16 "$out/images-2x2x3.idx" | gzip -n -9 -c >"$out/images-2members.idx.gz"
tail -c 12 "$out/images-2x2x3.idx" | gzip -n -9 -c >>"$out/images-2members.idx.gz"

ls -l "$out"

safetensors=$(dirname "$out")/safetensors
rm -rf "$safetensors"
"${PYTHON:-/usr/bin/python3}" -B "$(dirname "$(dirname "$out")")/make_safetensors_corpus.py" "$safetensors"
ls -l "$safetensors"

# onnx_fuzzer: its inputs are programs (see fuzz/onnx_fuzzer.cpp); two seeds that succeed.
onnx=$(dirname "$out")/onnx
rm -rf "$onnx"
mkdir -p "$onnx"
# Builder (first byte odd): AddInput "x" [3, 5]; AddFloatInitializer "b" [4] = 1.0 x 4;
# AddNode "f0" Relu(x) -> "y" with FLOAT attribute "b" = 0.5; AddOutput "y" ["f1", 3].
printf '\x01\x00\x19\x02\x01\x03\x01\x05\x00%b%b%b' \
  '\x01\x05\x01\x01\x04\x01\x00\x00\x80\x3f\x00\x00\x80\x3f\x00\x00\x80\x3f\x00\x00\x80\x3f' \
  '\x02\x00\x00\x01\x19\x01\x1d\x01\x05\x02\x00\x00\x00\x3f' \
  '\x04\x1d\x02\x00\x00\x01\x03\x00' >"$onnx/builder-relu.bin"
# Writer (first byte even): varint 150 in field 6, bytes "abc" in field 6, packed int64
# {1, -1} in field 7, a nested message in field 8.
printf '\x00\x00\x05\x96\x01\x00\x00\x00\x00\x00\x00%b%b%b' \
  '\x07\x05\x03abc' \
  '\x08\x06\x02\x01\x00\x00\x00\x00\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff' \
  '\x0a\x07\x2a\x00\x00\x00\x00\x00\x00\x00' >"$onnx/writer-fields.bin"
ls -l "$onnx"
