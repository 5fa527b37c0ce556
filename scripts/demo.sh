#!/usr/bin/env bash
# Command 1 of the README: install dependencies, build, and run the main job end to end on the bundled
# sample images: `megaloc extract` (global descriptors -> hloc-layout HDF5) then `megaloc pairs`
# (top-k retrieval pairs in COLMAP / hloc format).
#
# Weights, in order: $MEGALOC_WEIGHTS; ~/.cache/megaloc/model.safetensors; a download of the official
# weights (Hugging Face gberton/MegaLoc, ~915 MB) when the network allows; otherwise the bundled
# tiny TEST model, whose descriptors are NOT meaningful (the demo says so).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

scripts/install_deps.sh
scripts/build.sh --target megaloc
BUILD_DIR=${BUILD_DIR:-build}
MEGALOC="$ROOT/$BUILD_DIR/tools/megaloc"
OUT=${DEMO_OUTPUT:-$ROOT/demo_output}
IMAGES="$ROOT/tests/data/sample_images"
mkdir -p "$OUT"

OFFICIAL_URL="https://huggingface.co/gberton/MegaLoc/resolve/main/model.safetensors"
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/megaloc"
WEIGHTS="${MEGALOC_WEIGHTS:-}"
TINY=0
if [ -z "$WEIGHTS" ] && [ -f "$CACHE_DIR/model.safetensors" ]; then
  WEIGHTS="$CACHE_DIR/model.safetensors"
fi
if [ -z "$WEIGHTS" ] && [ "${MEGALOC_DEMO_OFFLINE:-0}" != "1" ] && command -v curl >/dev/null 2>&1; then
  echo "[demo] trying to download the official MegaLoc weights (~915 MB) ..."
  mkdir -p "$CACHE_DIR"
  if curl -fL --connect-timeout 10 --retry 2 -o "$CACHE_DIR/model.safetensors.part" "$OFFICIAL_URL"; then
    mv "$CACHE_DIR/model.safetensors.part" "$CACHE_DIR/model.safetensors"
    WEIGHTS="$CACHE_DIR/model.safetensors"
  else
    rm -f "$CACHE_DIR/model.safetensors.part"
    echo "[demo] download not possible (offline?)"
  fi
fi
if [ -n "$WEIGHTS" ]; then
  # Verifies the keys and shapes of the checkpoint (strict loader) before using it.
  if ! "$MEGALOC" model_info --weights_path "$WEIGHTS"; then
    echo "[demo] $WEIGHTS is not a valid MegaLoc checkpoint; falling back to the tiny test model"
    WEIGHTS=""
  fi
fi
if [ -z "$WEIGHTS" ]; then
  WEIGHTS="$ROOT/tests/data/megaloc_tiny/megaloc_tiny_v2.safetensors"
  TINY=1
  echo "================================================================================"
  echo "[demo] Using the bundled TINY TEST MODEL ($WEIGHTS)."
  echo "[demo] Its weights are random: the descriptors and pairs below are NOT meaningful."
  echo "[demo] For real results: MEGALOC_WEIGHTS=/path/to/model.safetensors scripts/demo.sh"
  echo "================================================================================"
fi

FEATURES="$OUT/global-feats-megaloc.h5"
PAIRS="$OUT/pairs-megaloc-top5.txt"
"$MEGALOC" extract --image_path "$IMAGES" --output_path "$FEATURES" --weights_path "$WEIGHTS" --overwrite
"$MEGALOC" pairs --descriptors "$FEATURES" --output_path "$PAIRS" --num_matched 5

echo
echo "[demo] descriptors (hloc layout): $FEATURES"
echo "[demo] retrieval pairs (COLMAP matches_importer / hloc format): $PAIRS"
echo "[demo] first pairs:"
head -n 5 "$PAIRS"
if [ "$TINY" = "1" ]; then
  echo "[demo] (tiny test model: these pairs are not meaningful)"
fi
