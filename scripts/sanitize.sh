#!/usr/bin/env bash
# Builds the test suites of the io and retrieval labels (and the `megaloc` executable they run) with
# AddressSanitizer + UndefinedBehaviorSanitizer (-DMEGALOC_ASAN_ENABLED=ON) into ${BUILD_DIR:-build-asan}
# and runs them with CTest. Any sanitizer report fails the test that triggered it.
#   scripts/sanitize.sh                 # labels io and retrieval
#   LABELS='io|retrieval|revisitop' TARGETS='megaloc megaloc_revisitop_test ...' scripts/sanitize.sh
#   ALL=1 scripts/sanitize.sh           # every target and test (hours on 2 cores)
# Leak detection is off: HDF5's free lists and LibTorch's caches live until exit and would be reported.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-asan}
JOBS=${JOBS:-$(nproc)}
LABELS=${LABELS:-io|retrieval}
# Every test binary that carries one of the default labels, and the executable they run.
TARGETS=${TARGETS:-megaloc megaloc_io_test megaloc_retrieval_test megaloc_retrieval_cli_test \
megaloc_retrieval_colmap_test megaloc_tools_bad_input_test}

GENERATOR=()
command -v ninja >/dev/null 2>&1 && GENERATOR=(-G Ninja)
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD_DIR" "${GENERATOR[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DMEGALOC_ASAN_ENABLED=ON -DMEGALOC_BENCH_ENABLED=OFF
fi
if [ "${ALL:-0}" = 1 ]; then
  cmake --build "$BUILD_DIR" -j "$JOBS"
else
  # shellcheck disable=SC2086
  cmake --build "$BUILD_DIR" -j "$JOBS" --target $TARGETS
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
cd "$BUILD_DIR"
if [ "${ALL:-0}" = 1 ]; then
  ctest --output-on-failure -j "${CTEST_JOBS:-2}" --timeout 1800 "$@"
else
  ctest --output-on-failure -j "${CTEST_JOBS:-2}" --timeout 1800 -L "$LABELS" "$@"
fi
