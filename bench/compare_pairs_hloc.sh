#!/usr/bin/env bash
# SfM self-retrieval, N random unit 8448-d descriptors (float16, hloc layout), k = 50: hloc's own
# `python -m hloc.pairs_from_retrieval` against `megaloc pairs`, in one run on the same file; wall
# time, peak RSS (GNU time) and whether the top-50 sets agree.
#
#   bench/compare_pairs_hloc.sh --hloc_repo DIR [--num_images 10000] [--memory_limit 1GiB] [--work_dir DIR]
#
# --hloc_repo: a checkout of https://github.com/cvg/Hierarchical-Localization (imported, not copied).
# Needs Debian's python3-torch python3-h5py python3-numpy python3-opencv python3-packaging and the
# `time` package. hloc's import chain pulls in pycolmap, which pairs_from_retrieval never calls; a
# stub module in the work dir stands in for it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
MEGALOC="$ROOT/${BUILD_DIR:-build}/tools/megaloc"
HLOC=""; N=10000; MEM=1GiB; W=/tmp/megaloc_pairs_compare
while [ $# -gt 0 ]; do
  case "$1" in
    --hloc_repo) HLOC=$2; shift 2;;
    --num_images) N=$2; shift 2;;
    --memory_limit) MEM=$2; shift 2;;
    --work_dir) W=$2; shift 2;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
[ -n "$HLOC" ] || { echo "--hloc_repo is required" >&2; exit 2; }
mkdir -p "$W/stubs/pycolmap"
printf '__version__ = "dev"\ndef __getattr__(name):\n    return object\n' > "$W/stubs/pycolmap/__init__.py"
DB="$W/db_$N.h5"
if [ ! -f "$DB" ]; then
  /usr/bin/python3 - "$N" "$DB" <<'PY'
import sys, h5py, numpy as np
n, path = int(sys.argv[1]), sys.argv[2]
rng = np.random.default_rng(0)
with h5py.File(path, "w", libver="latest") as f:
    for i in range(n):
        d = rng.standard_normal(8448).astype(np.float32)
        d /= np.linalg.norm(d)
        g = f.create_group(f"img_{i:06d}.jpg")
        g.create_dataset("global_descriptor", data=d.astype(np.float16))
        g.create_dataset("image_size", data=np.array([640, 480], dtype=np.int64))
PY
fi
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
(cd "$HLOC" && /usr/bin/time -v env PYTHONPATH="$W/stubs:." /usr/bin/python3 -m hloc.pairs_from_retrieval \
   --descriptors "$DB" --output "$W/hloc_pairs.txt" --num_matched 50) > "$W/hloc.log" 2>&1
echo "load between: $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/time -v "$MEGALOC" pairs --descriptors "$DB" --output_path "$W/ours_pairs.txt" --num_matched 50 \
  --memory_limit "$MEM" > "$W/ours.log" 2>&1
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 - "$W" "$N" "$MEM" <<'PY'
import re, sys
from collections import defaultdict
w, n, mem = sys.argv[1:]
def gnu_time(log):
    text = open(log).read()
    t = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text).group(1).split(":")
    secs = sum(float(x) * 60 ** i for i, x in enumerate(reversed(t)))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1)) / 1024 ** 2
    return secs, rss
def load(p):
    d = defaultdict(list)
    for line in open(p).read().strip().split("\n"):
        q, r = line.split()
        d[q].append(r)
    return d
th, mh = gnu_time(f"{w}/hloc.log")
to, mo = gnu_time(f"{w}/ours.log")
a, b = load(f"{w}/hloc_pairs.txt"), load(f"{w}/ours_pairs.txt")
same = sum(set(a[q]) == set(b[q]) for q in a)
print(f"N = {n}, k = 50, megaloc --memory_limit {mem}")
print(f"  hloc pairs_from_retrieval: {th:7.2f} s, peak RSS {mh:.3f} GiB")
print(f"  megaloc pairs:             {to:7.2f} s, peak RSS {mo:.3f} GiB")
print(f"  speed-up {th / to:.2f}x, memory ratio {mo / mh:.3f}; identical top-50 sets for {same}/{len(a)} queries")
PY
