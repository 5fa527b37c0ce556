#!/usr/bin/env bash
# Configures and builds megaloc (Release) into ${BUILD_DIR:-build}.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
GENERATOR=()
command -v ninja >/dev/null 2>&1 && GENERATOR=(-G Ninja)
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD_DIR" "${GENERATOR[@]}" -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-Release} ${CMAKE_ARGS:-}
fi
# MEGALOC_BUILD_KEEP_GOING=1: build all that compiles, report every error (scripts/test_in_debian.sh).
if [ "${MEGALOC_BUILD_KEEP_GOING:-0}" = 1 ] && [ ${#GENERATOR[@]} -gt 0 ]; then
  cmake --build "$BUILD_DIR" -j "$JOBS" "$@" -- -k 0
else
  cmake --build "$BUILD_DIR" -j "$JOBS" "$@"
fi
