#!/usr/bin/env bash
# Builds the libFuzzer targets with clang into build-fuzz/ and runs them at the same time, each
# for SECONDS (default 60), sharing the machine's cores: idx_fuzzer (the IDX reader),
# safetensors_fuzzer (the model reader) and onnx_fuzzer (the ONNX export's protobuf writer and
# model builder). On 2 cores each gets about 2/3 of a core: `fuzz/run.sh 30` (CI's run) gives
# each some 20 s of CPU in 30 s. Each runs on a copy of its seed corpus fuzz/corpus/<name>/
# (the copy grows; the committed seeds do not).
#
# Usage: fuzz/run.sh [SECONDS]
#
# A finding makes it exit non-zero: a crash or sanitizer report (ASan, UBSan), a leak, an
# exception other than dlb::Error, a single allocation over 64 MiB (-malloc_limit_mb), more
# than 2 GiB resident (-rss_limit_mb), an input taking over 10 s, or a failed check in
# fuzz/<name>_fuzzer.cpp. The reproducer is kept in build-fuzz/findings/; replay it with
#   build-fuzz/fuzz/<name>_fuzzer build-fuzz/findings/<file>
set -euo pipefail

seconds=${1:-60}
if ! [[ $seconds =~ ^[0-9]+$ ]] || [[ $seconds -eq 0 ]]; then
  echo "usage: $0 [SECONDS]   (a positive number of seconds, default 60)" >&2
  exit 2
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$root/build-fuzz
findings=$build/findings
fuzzers=(idx safetensors onnx)

echo "Configuring and building ${fuzzers[*]/%/_fuzzer} with clang in $build ..."
mkdir -p "$build"
CXX=clang++ cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DDLB_BUILD_FUZZERS=ON -DDLB_BUILD_TESTS=OFF -DDLB_BUILD_EXAMPLES=OFF \
  -DDLB_BUILD_BENCHMARKS=OFF >"$build/configure.log" 2>&1 ||
  { cat "$build/configure.log" >&2; exit 1; }
# All fuzzers at once (the build directory has no other target).
cmake --build "$build" -j "$(nproc)"

work=$(mktemp -d)
# The fuzzers write every input to a scratch file; on tmpfs that is several times faster.
# Its own directory, removed here, so that even a crashed run leaves nothing behind.
if [[ -d /dev/shm && -w /dev/shm ]]; then
  scratch=$(mktemp -d -p /dev/shm dlb_fuzz.XXXXXX)
else
  scratch=$(mktemp -d)
fi
trap 'rm -rf "$work" "$scratch"' EXIT
mkdir -p "$findings"

# $1: fuzzer name (idx, safetensors), $2: seconds.
run_fuzzer() {
  local name=$1 budget=$2 status=0
  local program=$build/fuzz/${name}_fuzzer log=$work/$name.log corpus=$work/corpus-$name
  cp -R "$root/fuzz/corpus/$name" "$corpus"
  echo "Fuzzing ${name}_fuzzer for $budget s (log: $log while running) ..."
  (cd "$work" && TMPDIR=$scratch "$program" "$corpus" \
    -max_total_time="$budget" -timeout=10 -malloc_limit_mb=64 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$findings/") >"$log" 2>&1 || status=$?
  local executions files
  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  files=$(find "$corpus" -type f | wc -l)
  if [[ $status -ne 0 ]]; then
    tail -n 60 "$log" >&2
    echo "${name}_fuzzer: FINDING after ${executions:-an unknown number of} executions" \
         "(exit status $status); reproducer in $findings/" >&2
    return 1
  fi
  grep -E '^(#[0-9]+ +DONE|Done [0-9]+ runs)' "$log" || true
  echo "${name}_fuzzer: no findings in $budget s: ${executions:-?} executions, corpus $files files"
}

# All at once, each printing its summary when every one has finished (in this order).
pids=()
for name in "${fuzzers[@]}"; do
  run_fuzzer "$name" "$seconds" >"$work/$name.summary" 2>&1 &
  pids+=($!)
done
status=0
for i in "${!fuzzers[@]}"; do
  wait "${pids[$i]}" || status=1
  cat "$work/${fuzzers[$i]}.summary"
done
exit $status
