#!/usr/bin/env bash
# Builds the IDX fuzzer with clang into build-fuzz/ and runs it for SECONDS (default 60) on a
# copy of the seed corpus fuzz/corpus/idx/ (the copy grows; the committed seeds do not).
#
# Usage: fuzz/run.sh [SECONDS]
#
# A finding makes it exit non-zero: a crash or sanitizer report (ASan, UBSan), a leak, an
# exception other than dlb::Error, a single allocation over 64 MiB (-malloc_limit_mb), more
# than 2 GiB resident (-rss_limit_mb), an input taking over 10 s, or a failed check in
# fuzz/idx_fuzzer.cpp. The reproducer is kept in build-fuzz/findings/; replay it with
#   build-fuzz/fuzz/idx_fuzzer build-fuzz/findings/<file>
set -euo pipefail

seconds=${1:-60}
if ! [[ $seconds =~ ^[0-9]+$ ]] || [[ $seconds -eq 0 ]]; then
  echo "usage: $0 [SECONDS]   (a positive number of seconds, default 60)" >&2
  exit 2
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$root/build-fuzz
findings=$build/findings

echo "Configuring and building idx_fuzzer with clang in $build ..."
mkdir -p "$build"
CXX=clang++ cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DDLB_BUILD_FUZZERS=ON -DDLB_BUILD_TESTS=OFF -DDLB_BUILD_EXAMPLES=OFF \
  -DDLB_BUILD_BENCHMARKS=OFF >"$build/configure.log" 2>&1 ||
  { cat "$build/configure.log" >&2; exit 1; }
cmake --build "$build" --target idx_fuzzer -j "$(nproc)"

work=$(mktemp -d)
# The fuzzer writes every input to a scratch file; on tmpfs that is several times faster.
# Its own directory, removed here, so that even a crashed run leaves nothing behind.
if [[ -d /dev/shm && -w /dev/shm ]]; then
  scratch=$(mktemp -d -p /dev/shm dlb_idx_fuzz.XXXXXX)
else
  scratch=$(mktemp -d)
fi
trap 'rm -rf "$work" "$scratch"' EXIT
cp -R "$root/fuzz/corpus/idx" "$work/corpus"
mkdir -p "$findings"

echo "Fuzzing for $seconds s (log: $work/fuzz.log while running) ..."
status=0
(cd "$work" && TMPDIR=$scratch "$build/fuzz/idx_fuzzer" "$work/corpus" \
  -max_total_time="$seconds" -timeout=10 -malloc_limit_mb=64 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$findings/") >"$work/fuzz.log" 2>&1 || status=$?

executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/fuzz.log" | tail -n 1)
corpus=$(find "$work/corpus" -type f | wc -l)
if [[ $status -ne 0 ]]; then
  tail -n 60 "$work/fuzz.log" >&2
  echo "idx_fuzzer: FINDING after ${executions:-an unknown number of} executions" \
       "(exit status $status); reproducer in $findings/" >&2
  exit 1
fi
grep -E '^(#[0-9]+ +DONE|Done [0-9]+ runs)' "$work/fuzz.log" || true
echo "idx_fuzzer: no findings in $seconds s: ${executions:-?} executions, corpus $corpus files"
