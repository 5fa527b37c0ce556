#!/usr/bin/env bash
# Installs the Debian 12 packages megaloc needs (idempotent; as root or through sudo).
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
  libsqlite3-dev sqlite3
  libgtest-dev
  nlohmann-json3-dev
  libopenblas0-pthread libopenblas-pthread-dev
  libfaiss-dev
  colmap
  xvfb
  python3-h5py python3-numpy   # tests/io/h5py_interop_test.cc: hloc's reader side
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "ERROR: run as root or install sudo" >&2; exit 1; fi
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "[install_deps] all ${#PACKAGES[@]} packages already installed"
else
  echo "[install_deps] installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Prefer OpenBLAS for libblas.so.3 (it is the highest-priority alternative once installed).
if command -v update-alternatives >/dev/null 2>&1; then
  for alt in libblas.so.3-x86_64-linux-gnu liblapack.so.3-x86_64-linux-gnu; do
    $SUDO update-alternatives --auto "$alt" >/dev/null 2>&1 || true
  done
fi
