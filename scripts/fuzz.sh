#!/usr/bin/env bash
# Builds the libFuzzer harnesses of tests/fuzz with clang + ASan + UBSan into ${BUILD_DIR:-build-fuzz}
# and runs each for SECONDS (default 600) on seeds from tests/data. Findings (crashing inputs) are
# written to $BUILD_DIR/fuzz/<harness>/crash-*; a summary line per harness reports executions,
# seconds and findings. Needs clang and libclang-rt-14-dev (or the matching version).
#   scripts/fuzz.sh [SECONDS] [HARNESS...]      (FUZZ_SKIP_BUILD=1: run the harnesses already built)
# FUZZ_ARGS adds libFuzzer flags, e.g. FUZZ_ARGS="-fork=1 -ignore_crashes=1" keeps fuzzing past
# findings (used for hdf5_fuzzer: libhdf5 1.10 itself crashes on some corrupt files, docs/cli.md).
set -uo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_HARNESS=${1:-600}
shift || true
BUILD_DIR=${BUILD_DIR:-build-fuzz}
JOBS=${JOBS:-$(nproc)}
ALL=(pickle_fuzzer npy_fuzzer gnd_fuzzer pairs_fuzzer image_list_fuzzer capture_fuzzer
     safetensors_fuzzer torch_zip_fuzzer hdf5_fuzzer image_fuzzer)
HARNESSES=("$@")
[ ${#HARNESSES[@]} -eq 0 ] && HARNESSES=("${ALL[@]}")

GENERATOR=()
command -v ninja >/dev/null 2>&1 && GENERATOR=(-G Ninja)
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$BUILD_DIR" "${GENERATOR[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DMEGALOC_FUZZ_ENABLED=ON -DMEGALOC_TESTS_ENABLED=OFF -DMEGALOC_BENCH_ENABLED=OFF \
    -DMEGALOC_DNNL_SGEMM_ENABLED=OFF || exit 1
fi
[ "${FUZZ_SKIP_BUILD:-0}" = 1 ] || cmake --build "$BUILD_DIR" -j "$JOBS" --target "${HARNESSES[@]}" || exit 1

# Seeds: the real files of tests/data and a few hand-made ones.
seeds() {
  case "$1" in
    pickle_fuzzer|gnd_fuzzer) echo tests/data/revisitop/*.pkl tests/data/revisitop/gnd_*.json ;;
    npy_fuzzer) echo tests/data/revisitop/*.npy tests/data/megaloc_tiny/normalize_lut.npy ;;
    pairs_fuzzer) echo tests/fuzz/seeds/pairs/* ;;
    image_list_fuzzer) echo tests/fuzz/seeds/image_list/* ;;
    capture_fuzzer) find tests/data/lamar -name '*.txt' | head -40 ;;
    safetensors_fuzzer) echo tests/fuzz/seeds/weights/*.safetensors ;;
    torch_zip_fuzzer) echo tests/fuzz/seeds/weights/*.torch ;;
    hdf5_fuzzer) echo tests/fuzz/seeds/hdf5/*.h5 ;;
    image_fuzzer) echo tests/data/decoding/*.jpg tests/data/decoding/*.webp tests/data/megaloc_tiny/images/*.jpg \
                       tests/data/megaloc_tiny/images/test_100x70.png ;;
  esac
}

status=0
for harness in "${HARNESSES[@]}"; do
  work="$BUILD_DIR/fuzz/$harness"
  mkdir -p "$work/corpus" "$work/seeds"
  for f in $(seeds "$harness"); do [ -f "$f" ] && cp "$f" "$work/seeds/"; done
  log="$work/log.txt"
  # Findings of earlier runs are kept aside, so the count below is this run's.
  mkdir -p "$work/old"
  find "$work" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) \
    -exec mv {} "$work/old/" \;
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
    LSAN_OPTIONS=suppressions="$PWD/tests/fuzz/lsan.supp" \
    "$BUILD_DIR/tests/fuzz/$harness" "$work/corpus" "$work/seeds" -max_total_time="$SECONDS_PER_HARNESS" \
    -max_len=65536 -rss_limit_mb=4096 -timeout=30 -artifact_prefix="$work/" -print_final_stats=1 \
    ${FUZZ_ARGS:-} >"$log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  secs=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  if [ "$execs" = '?' ]; then  # -fork mode: the last "#N: cov: ... exec/s: R" status line
    last=$(grep -E '^#[0-9]+: cov:' "$log" | tail -1)
    execs=$(echo "$last" | sed -E 's/^#([0-9]+):.*/\1/')
    secs=$(echo "$last" | grep -o 'exec/s:\? [0-9]*' | grep -o '[0-9]*$')
  fi
  findings=$(ls "$work" | grep -c -E '^(crash|leak|timeout|oom)-' || true)
  echo "$harness: ${execs} executions in ${SECONDS_PER_HARNESS} s (${secs}/s), ${findings} finding(s), exit ${rc}; log ${log}"
  [ "$rc" -ne 0 ] && status=1
done
exit $status
