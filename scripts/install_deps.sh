#!/usr/bin/env bash
# Installs the Debian packages megaloc needs (idempotent; as root or through sudo). One list for
# Debian 12 (bookworm), 13 (trixie) and unstable (sid):
#   "a|b"  the first of the alternatives that apt-cache knows on this machine (names that differ
#          between releases are chosen by what the archive offers, never by the release name);
#   "a?"   optional: installed when the archive has it, skipped (with a note) otherwise.
#
# BLAS: Debian's libtorch calls the system libblas.so.3 for fp32 matmuls. We install OpenBLAS
# (pthreads flavour), which the alternatives system then prefers over ATLAS / reference BLAS:
# measured 162 vs 36 GFLOP/s on a 4096^2 GEMM with 2 threads (docs/performance.md).
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config ccache git
  libtorch-dev
  libhdf5-dev
  libeigen3-dev
  libboost-program-options-dev
  libopencv-dev
  "libjpeg-dev|libjpeg62-turbo-dev" "libwebp-dev?"  # libjpeg: JPEG decoding (CMYK as PIL); libwebpdemux (optional): animated WebP
  libsqlite3-dev sqlite3
  libgtest-dev
  nlohmann-json3-dev
  libopenblas0-pthread libopenblas-pthread-dev
  "libfaiss-dev?"               # optional: approximate retrieval backends
  "libexiv2-dev?"               # optional: EXIF GPS position priors of `pairs` (MEGALOC_EXIV2_ENABLED)
  colmap
  xvfb
  python3-h5py python3-numpy   # tests/io/h5py_interop_test.cc: hloc's reader side
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "ERROR: run as root or install sudo" >&2; exit 1; fi
fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
known() { [ -n "$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}' | grep -v '(none)')" ]; }

# Entries not satisfied yet (no alternative installed).
pending=()
for entry in "${PACKAGES[@]}"; do
  done_already=0
  IFS='|' read -r -a alternatives <<< "${entry%\?}"
  for p in "${alternatives[@]}"; do installed "$p" && done_already=1 && break; done
  [ "$done_already" = 1 ] || pending+=("$entry")
done

if [ ${#pending[@]} -eq 0 ]; then
  echo "[install_deps] all ${#PACKAGES[@]} packages already installed"
else
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  missing=()
  for entry in "${pending[@]}"; do
    optional=0
    [ "${entry%\?}" != "$entry" ] && optional=1
    IFS='|' read -r -a alternatives <<< "${entry%\?}"
    chosen=""
    for p in "${alternatives[@]}"; do known "$p" && chosen="$p" && break; done
    if [ -n "$chosen" ]; then
      missing+=("$chosen")
    elif [ "$optional" = 1 ]; then
      echo "[install_deps] note: ${entry%\?} is not in this archive; skipped (optional)"
    else
      echo "[install_deps] ERROR: none of '${entry}' is in this Debian archive (apt-cache policy)" >&2
      exit 1
    fi
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "[install_deps] installing: ${missing[*]}"
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi

# Prefer OpenBLAS for libblas.so.3 (it is the highest-priority alternative once installed).
if command -v update-alternatives >/dev/null 2>&1; then
  for alt in libblas.so.3-x86_64-linux-gnu liblapack.so.3-x86_64-linux-gnu; do
    $SUDO update-alternatives --auto "$alt" >/dev/null 2>&1 || true
  done
fi
