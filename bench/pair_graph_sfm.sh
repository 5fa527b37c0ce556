#!/usr/bin/env bash
# Pair-graph benchmark on synthetic SfM scenes (issue 13; docs/performance.md, "Pair graphs for SfM").
# For each scene of bench/render_synthetic.cc (a video-like sequence with a loop, an unordered set of
# two clusters joined by two views) and each pair strategy (exhaustive, retrieval top-k, sequential,
# hybrid + --connect): number of pairs, COLMAP matching time (`matches_importer`, CPU SIFT), and what
# COLMAP's incremental `mapper` makes of them (models, images registered in the largest one).
#
#   bench/pair_graph_sfm.sh [BUILD_DIR [WORK_DIR]]     (Release build with tests and bench enabled)
#   WEIGHTS=model.safetensors bench/pair_graph_sfm.sh   (default: the tiny test model)
#   SCENES=clusters bench/pair_graph_sfm.sh             (default: loop clusters)
#
# Prints one Markdown table row per (scene, strategy) and the machine load.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=$(realpath "${1:-build}")
WORK=${2:-/tmp/megaloc_pair_graph_sfm}
WEIGHTS=$(realpath "${WEIGHTS:-tests/data/megaloc_tiny/megaloc_tiny_v2.safetensors}")
THREADS=${THREADS:-2}
MEGALOC=$BUILD/tools/megaloc
RENDER=$BUILD/bench/render_synthetic
COLMAP=${COLMAP:-colmap}
for tool in "$MEGALOC" "$RENDER"; do
  [ -x "$tool" ] || { echo "missing $tool (build with -DMEGALOC_BENCH_ENABLED=ON and tests)" >&2; exit 1; }
done
version=$("$COLMAP" help 2>&1 | awk 'NR==1 {print $2}')
major=${version%%.*}; minor=${version#*.}; minor=${minor%%.*}
if [ "$major" -gt 3 ] || { [ "$major" -eq 3 ] && [ "$minor" -ge 13 ]; }; then
  EXTRACTION=--FeatureExtraction; MATCHING=--FeatureMatching
else
  EXTRACTION=--SiftExtraction; MATCHING=--SiftMatching
fi
echo "COLMAP $version, $("$MEGALOC" version), weights $(basename "$WEIGHTS"), $THREADS threads, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo
echo "| scene | strategy | pairs | matching s | verified pairs | models | registered (largest model) | load |"
echo "|---|---|---|---|---|---|---|---|"

# Every unordered pair of the listed names.
exhaustive_pairs() {
  awk '{ n[NR] = $0 } END { for (i = 1; i <= NR; ++i) for (j = i + 1; j <= NR; ++j) print n[i], n[j] }'
}

run_strategy() {  # scene_dir scene label pairs_file
  local dir=$1 scene=$2 label=$3 pairs=$4
  local out=$dir/runs/$label
  rm -rf "$out"; mkdir -p "$out/sparse"
  cp "$dir/database.db" "$out/database.db"
  local start end
  start=$(date +%s.%N)
  "$COLMAP" matches_importer --database_path "$out/database.db" --match_list_path "$pairs" \
    --match_type pairs "$MATCHING.use_gpu" 0 "$MATCHING.num_threads" "$THREADS" > "$out/log.txt" 2>&1
  end=$(date +%s.%N)
  "$COLMAP" mapper --database_path "$out/database.db" --image_path "$dir/images" --output_path "$out/sparse" \
    --Mapper.num_threads "$THREADS" >> "$out/log.txt" 2>&1 || true
  local models=0 best=0 n
  for model in "$out"/sparse/*/; do
    [ -f "$model/images.bin" ] || continue
    models=$((models + 1))
    n=$("$COLMAP" model_analyzer --path "$model" 2>&1 | awk '/Registered images/ {print $NF}')
    [ "${n:-0}" -gt "$best" ] && best=$n
  done
  local verified
  verified=$(sqlite3 "$out/database.db" "SELECT COUNT(*) FROM two_view_geometries WHERE rows > 0;" 2>/dev/null || echo "?")
  printf '| %s | %s | %d | %.1f | %s | %d | %d / %d | %s |\n' "$scene" "$label" "$(wc -l < "$pairs")" \
    "$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')" "$verified" "$models" "$best" "$(wc -l < "$dir/names.txt")" \
    "$(cut -d' ' -f1 /proc/loadavg)"
}

for scene in ${SCENES:-loop clusters}; do
  dir=$WORK/$scene
  rm -rf "$dir"; mkdir -p "$dir"
  "$RENDER" "$scene" "$dir/images" > /dev/null
  (cd "$dir/images" && find . -name '*.jpg' | sed 's|^\./||' | LC_ALL=C sort) > "$dir/names.txt"
  "$COLMAP" feature_extractor --database_path "$dir/database.db" --image_path "$dir/images" \
    --ImageReader.single_camera 1 --ImageReader.camera_model PINHOLE "$EXTRACTION.use_gpu" 0 \
    "$EXTRACTION.num_threads" "$THREADS" --SiftExtraction.max_num_features 1024 > "$dir/features.log" 2>&1
  "$MEGALOC" extract --image_path "$dir/images" --output_path "$dir/descriptors.h5" --weights_path "$WEIGHTS" \
    --num_threads "$THREADS" --quiet
  pairs() { "$MEGALOC" pairs --descriptors "$dir/descriptors.h5" --unique "$@" >> "$dir/pairs.log"; }
  exhaustive_pairs < "$dir/names.txt" > "$dir/exhaustive.txt"
  run_strategy "$dir" "$scene" exhaustive "$dir/exhaustive.txt"
  for k in 1 2 3 5; do
    pairs --num_matched $k --output_path "$dir/retrieval_k$k.txt"
    run_strategy "$dir" "$scene" "retrieval k=$k" "$dir/retrieval_k$k.txt"
  done
  for o in 1 2 5; do
    pairs --num_matched 0 --sequential_overlap $o --output_path "$dir/sequential_$o.txt"
    run_strategy "$dir" "$scene" "sequential $o" "$dir/sequential_$o.txt"
  done
  pairs --num_matched 1 --connect --output_path "$dir/hybrid_k1_connect.txt"
  run_strategy "$dir" "$scene" "hybrid: retrieval k=1 + connect" "$dir/hybrid_k1_connect.txt"
  pairs --num_matched 1 --cover_bridges --output_path "$dir/hybrid_k1_bridges.txt"
  run_strategy "$dir" "$scene" "hybrid: retrieval k=1 + connect + cover bridges" "$dir/hybrid_k1_bridges.txt"
  pairs --num_matched 1 --sequential_overlap 1 --loop_closure 3 --connect --output_path "$dir/hybrid_seq.txt"
  run_strategy "$dir" "$scene" "hybrid: sequential 1 + retrieval k=1 (loop closure 3) + connect" "$dir/hybrid_seq.txt"
  pairs --num_matched 1 --sequential_overlap 1 --loop_closure 3 --cover_bridges --output_path "$dir/hybrid_seq_bridges.txt"
  run_strategy "$dir" "$scene" "hybrid: sequential 1 + retrieval k=1 (loop closure 3) + connect + cover bridges" "$dir/hybrid_seq_bridges.txt"
done
