#!/usr/bin/env bash
# Descriptor error of `megaloc extract --bf16` against fp32 on the same checkpoint and images, and
# whether retrieval changes: max |Δ|, cosine, and the top-k neighbours of every image among N
# synthetic images (N/4 "places" seen from 4 shifted, rescaled views).
#
#   bench/bf16_error.sh --weights_path W [--num_images 1000] [--size 224] [--k 10] [--work_dir DIR]
#
# Needs Debian's python3-numpy python3-h5py python3-pil and a Release build in ${BUILD_DIR:-build}.
# On a CPU without native bf16 matmul `--bf16` runs fp32 (and says so): the script stops then.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
MEGALOC="$ROOT/${BUILD_DIR:-build}/tools/megaloc"
PY=/usr/bin/python3
WEIGHTS=""; N=1000; SIZE=224; K=10; WORK=/tmp/megaloc_bf16_error
while [ $# -gt 0 ]; do
  case "$1" in
    --weights_path) WEIGHTS=$2; shift 2;;
    --num_images) N=$2; shift 2;;
    --size) SIZE=$2; shift 2;;
    --k) K=$2; shift 2;;
    --work_dir) WORK=$2; shift 2;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
[ -f "$WEIGHTS" ] || { echo "--weights_path is required" >&2; exit 2; }
mkdir -p "$WORK/images"
$PY - "$WORK/images" "$N" <<'PYEOF'
import os, sys, numpy as np
from PIL import Image
out, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(1)
for place in range((n + 3) // 4):
    base = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).resize((480, 360), Image.BICUBIC)
    for view in range(4):
        i = place * 4 + view
        if i >= n: break
        path = f"{out}/p{place:04d}_v{view}.png"
        if os.path.exists(path): continue
        dx, dy = rng.integers(0, 80), rng.integers(0, 60)
        crop = base.crop((dx, dy, dx + 400, dy + 300)).resize((320, 240), Image.BILINEAR)
        arr = np.asarray(crop).astype(np.int16) + rng.integers(-10, 10, (240, 320, 3))
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path)
PYEOF
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)"
for mode in fp32 bf16; do
  flag=""; [ "$mode" = bf16 ] && flag=--bf16
  rm -f "$WORK/$mode.h5"
  "$MEGALOC" extract --image_path "$WORK/images" --output_path "$WORK/$mode.h5" --weights_path "$WEIGHTS" \
    --resize "$SIZE" "$SIZE" --as_half 0 $flag > "$WORK/$mode.log" 2>&1 || { cat "$WORK/$mode.log"; exit 1; }
  grep -E "^Extracted|bf16 ignored" "$WORK/$mode.log" | sed "s/^/  $mode: /"
  if [ "$mode" = bf16 ] && grep -q "bf16 ignored" "$WORK/$mode.log"; then exit 1; fi
done
$PY - "$WORK" "$K" <<'PYEOF'
import sys, h5py, numpy as np
work, k = sys.argv[1], int(sys.argv[2])
def load(path):
    with h5py.File(path, "r") as f:
        names = sorted(f.keys())
        return names, np.stack([f[n]["global_descriptor"][()] for n in names]).astype(np.float64)
names, a = load(f"{work}/fp32.h5")
names_b, b = load(f"{work}/bf16.h5")
assert names == names_b
cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
print(f"{len(names)} images: max |bf16 - fp32| {np.abs(a - b).max():.3g}, cosine min {cos.min():.6f} mean {cos.mean():.6f}")
def topk(d):
    s = d @ d.T
    np.fill_diagonal(s, -np.inf)
    return np.argsort(-s, axis=1, kind="stable")[:, :k], s
ta, sa = topk(a)
tb, sb = topk(b)
same_set = np.mean([len(set(x) & set(y)) / k for x, y in zip(ta, tb)])
same_order = np.mean([(x == y).all() for x, y in zip(ta, tb)])
top1 = np.mean(ta[:, 0] == tb[:, 0])
print(f"top-{k}: {same_set * 100:.2f}% of neighbours shared, {same_order * 100:.1f}% of queries with the identical ordered list, top-1 equal for {top1 * 100:.2f}%")
place = np.array([n.split("_")[0] for n in names])
for name, t in (("fp32", ta), ("bf16", tb)):
    r1 = np.mean(place[t[:, 0]] == place)
    print(f"{name}: recall@1 of the same place {r1 * 100:.2f}%")
PYEOF
