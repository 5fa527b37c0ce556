#!/usr/bin/env bash
# Images/s and peak RSS of `megaloc extract` against the authors' PyTorch MegaLoc on the same
# machine, same images, same (random, full-size) weights and the same preprocessing, in one run;
# prints the ratio and the max descriptor difference.
#
#   bench/compare_extract_speed.sh --megaloc_repo DIR [--num_images 8] [--preset 322|1024]
#                                  [--threads 2] [--batch_size 1] [--work_dir DIR]
#
# --megaloc_repo: a checkout of https://github.com/gmberton/MegaLoc (its megaloc_model.py is
# imported, never copied). Needs Debian's python3-torch python3-torchvision python3-pil
# python3-numpy python3-h5py, and a Release build in ${BUILD_DIR:-build}.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
MEGALOC="$ROOT/${BUILD_DIR:-build}/tools/megaloc"
PY=/usr/bin/python3
REPO=""; N=8; PRESET=322; THREADS=2; BATCH=1; WORK=/tmp/megaloc_compare
while [ $# -gt 0 ]; do
  case "$1" in
    --megaloc_repo) REPO=$2; shift 2;;
    --num_images) N=$2; shift 2;;
    --preset) PRESET=$2; shift 2;;
    --threads) THREADS=$2; shift 2;;
    --batch_size) BATCH=$2; shift 2;;
    --work_dir) WORK=$2; shift 2;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
[ -n "$REPO" ] || { echo "--megaloc_repo is required" >&2; exit 2; }
[ -x "$MEGALOC" ] || { echo "build megaloc first (scripts/build.sh)" >&2; exit 2; }
mkdir -p "$WORK/images"
WEIGHTS="$WORK/megaloc_random_full.safetensors"
[ -f "$WEIGHTS" ] || $PY bench/reference/megaloc_reference.py make_weights --megaloc_repo "$REPO" --output_path "$WEIGHTS"

rm -f "$WORK"/images/*
IMAGE_W=640; IMAGE_H=480
# resize_max 1024: images of exactly 1024x768, so hloc's resize is the identity and both sides run
# the model at 1022x770 (the reference has no resize_max code path).
[ "$PRESET" = "322" ] || { IMAGE_W=1024; IMAGE_H=768; }
$PY - "$WORK/images" "$N" "$IMAGE_W" "$IMAGE_H" <<'EOF'
import sys, numpy as np
from PIL import Image
out, n, w, h = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = np.random.default_rng(0)
for i in range(n):
    small = rng.integers(0, 256, (31, 41, 3), dtype=np.uint8)
    im = Image.fromarray(small).resize((w, h), Image.BICUBIC)
    arr = np.asarray(im).astype(np.int16) + rng.integers(-8, 8, (h, w, 3))
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(f"{out}/img_{i:03d}.png")
EOF

if [ "$PRESET" = "322" ]; then OURS_RESIZE=(--resize 322 322); REF_RESIZE=(--resize 322 322);
else OURS_RESIZE=(--resize_max 1024); REF_RESIZE=(); fi

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), $(nproc) CPUs"
LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg)
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
rm -f "$WORK/ours.h5"
/usr/bin/time -v "$MEGALOC" extract --image_path "$WORK/images" --output_path "$WORK/ours.h5" \
  --weights_path "$WEIGHTS" "${OURS_RESIZE[@]}" --as_half 0 --batch_size "$BATCH" \
  --num_threads "$THREADS" ${EXTRA_FLAGS:-} > "$WORK/ours.log" 2>&1 || { cat "$WORK/ours.log"; exit 1; }
# images / seconds of the closing line "Extracted N of M images in [Hh][Mm]S.Ss" (its img/s has
# two decimals only, too coarse at resize_max 1024 under load).
OURS_RATE=$($PY -c '
import re, sys
line = [l for l in open(sys.argv[1]) if re.match(r"Extracted \d+ of \d+ images in ", l)][-1]
t = re.search(r" in ((\d+)h)?((\d+)m)?([\d.]+)s", line)
print(int(line.split()[1]) / (int(t.group(2) or 0) * 3600 + int(t.group(4) or 0) * 60 + float(t.group(5))))
' "$WORK/ours.log")
# The extractor's own rate (first image to the end, the model already loaded), which is what the
# reference's images/s measures (its per-image loop, model loading excluded).
OURS_LOOP_RATE=$(grep -E '^Extracted [0-9]+ of [0-9]+ images in ' "$WORK/ours.log" | tail -1 | sed -E 's/.*\(([0-9.]+) img\/s.*/\1/')
OURS_RSS=$(grep 'Maximum resident' "$WORK/ours.log" | awk '{print $NF/1024}')
LOAD_BETWEEN=$(cut -d' ' -f1 /proc/loadavg)
echo "load between: $(cut -d' ' -f1-3 /proc/loadavg)"
$PY bench/reference/megaloc_reference.py run --megaloc_repo "$REPO" --weights_path "$WEIGHTS" \
  --image_path "$WORK/images" "${REF_RESIZE[@]}" --num_threads "$THREADS" --warmup 0 \
  --descriptors_out "$WORK/ref.npy" > "$WORK/ref.json"
LOAD_AFTER=$(cut -d' ' -f1 /proc/loadavg)
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
$PY - "$WORK" "$OURS_RATE" "$OURS_RSS" "$PRESET" "$THREADS" "$BATCH" "$LOAD_BEFORE" "$LOAD_BETWEEN" "$LOAD_AFTER" "$OURS_LOOP_RATE" <<'EOF'
import sys, json, h5py, numpy as np
work, ours_rate, ours_rss, preset, threads, batch, l0, l1, l2, ours_loop = sys.argv[1:]
ref = json.load(open(f"{work}/ref.json"))
d_ref = np.load(f"{work}/ref.npy")
f = h5py.File(f"{work}/ours.h5", "r")
names = sorted(f.keys())
d_ours = np.stack([f[n]["global_descriptor"][()] for n in names])
print(f"preset {preset}, threads {threads}, our batch size {batch}, {len(names)} images")
print(f"  megaloc (C++):      {float(ours_rate):.4f} img/s whole process (start-up included), "
      f"{float(ours_loop):.4f} img/s from the first image, peak RSS {float(ours_rss):.0f} MiB")
print(f"  authors' PyTorch:   {ref['images_per_second']:.4f} img/s (its per-image loop, model loading excluded), "
      f"peak RSS {ref['peak_rss_mb']:.0f} MiB")
print(f"  ratio C++ / PyTorch: {float(ours_rate) / ref['images_per_second']:.2f}x whole process vs loop, "
      f"{float(ours_loop) / ref['images_per_second']:.2f}x loop vs loop")
print(f"  max |descriptor difference|: {np.abs(d_ours - d_ref).max():.3g}")
a, b = d_ours.astype(np.float64), d_ref.astype(np.float64)
cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
print(f"  cosine similarity to the reference: min {cos.min():.8f}, mean {cos.mean():.8f}")
print(f"  1-minute load: {l0} (C++ start), {l1} (reference start), {l2} (end)")
EOF
