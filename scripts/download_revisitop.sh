#!/usr/bin/env bash
# Downloads Revisited Oxford / Paris (images + ground truth) into the official layout that
# `megaloc revisitop_eval --data_root DIR` reads:
#
#   DIR/datasets/roxford5k/{jpg/*.jpg, gnd_roxford5k.pkl}     (1 archive, roughly 2 GB)
#   DIR/datasets/rparis6k/{jpg/*.jpg, gnd_rparis6k.pkl}       (2 archives, roughly 2-3 GB)
#   DIR/datasets/revisitop1m/{jpg/..., revisitop1m.txt}       (--r1m: 100 archives, hundreds of GB)
#   DIR/features/<dataset>_resnet_rsfm120k_gem.mat            (--features: the official example
#                                                              GeM features, for anchor checks)
#
# Sources (docs/evaluation.md): the Oxford VGG servers (face-blurred "-v1" image archives, June
# 2022) and the revisitop servers of CTU Prague. Needs internet, curl or wget, tar. Never run in CI.
# Re-running skips what is already complete (an interrupted download is restarted).
#
# Usage: scripts/download_revisitop.sh [--data_root DIR] [--datasets "roxford5k rparis6k"]
#                                      [--r1m] [--features]
set -euo pipefail

DATA_ROOT="data"
DATASETS="roxford5k rparis6k"
WITH_R1M=0
WITH_FEATURES=0

while [ $# -gt 0 ]; do
  case "$1" in
    --data_root) DATA_ROOT="$2"; shift 2 ;;
    --datasets) DATASETS="$2"; shift 2 ;;
    --r1m) WITH_R1M=1; shift ;;
    --features) WITH_FEATURES=1; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "ERROR: unknown argument '$1' (see --help)" >&2; exit 1 ;;
  esac
done

OXFORD_URL="https://www.robots.ox.ac.uk/~vgg/data/oxbuildings"
PARIS_URL="https://www.robots.ox.ac.uk/~vgg/data/parisbuildings"
GND_URL="http://cmp.felk.cvut.cz/revisitop/data/datasets"
FEATURES_URL="http://cmp.felk.cvut.cz/revisitop/data/features"
R1M_URL="http://ptak.felk.cvut.cz/revisitop/revisitop1m"

# download URL DEST: atomic (DEST.part then rename), skips an existing DEST.
download() {
  local url="$1" dest="$2"
  if [ -s "$dest" ]; then echo ">> exists: $dest"; return 0; fi
  echo ">> downloading $url"
  if command -v curl >/dev/null 2>&1; then
    curl -fL --retry 5 --retry-delay 5 -o "$dest.part" "$url"
  elif command -v wget >/dev/null 2>&1; then
    wget -q --show-progress --tries=5 -O "$dest.part" "$url"
  else
    echo "ERROR: neither curl nor wget is installed" >&2; exit 1
  fi
  mv "$dest.part" "$dest"
}

# extract_flat ARCHIVE DEST_DIR: extracts and moves every file into DEST_DIR (no sub-folders),
# as the official download.py does.
extract_flat() {
  local archive="$1" dest="$2" tmp
  tmp="$(mktemp -d "$dest/.extract.XXXXXX")"
  tar -xzf "$archive" -C "$tmp"
  find "$tmp" -type f -exec mv -f {} "$dest/" \;
  rm -rf "$tmp"
}

for dataset in $DATASETS; do
  case "$dataset" in
    roxford5k) url="$OXFORD_URL"; archives="oxbuild_images-v1.tgz"; expected=5063 ;;
    rparis6k) url="$PARIS_URL"; archives="paris_1-v1.tgz paris_2-v1.tgz"; expected=6392 ;;
    *) echo "ERROR: unknown dataset '$dataset' (roxford5k or rparis6k)" >&2; exit 1 ;;
  esac
  dir="$DATA_ROOT/datasets/$dataset"
  mkdir -p "$dir/jpg"
  if [ -f "$dir/jpg/.complete" ]; then
    echo ">> $dataset images complete"
  else
    for archive in $archives; do
      download "$url/$archive" "$dir/$archive"
      echo ">> extracting $archive"
      extract_flat "$dir/$archive" "$dir/jpg"
    done
    count=$(find "$dir/jpg" -maxdepth 1 -type f -name '*.jpg' | wc -l)
    echo ">> $dataset: $count images in $dir/jpg (at least $expected expected incl. queries)"
    touch "$dir/jpg/.complete"
    for archive in $archives; do rm -f "$dir/$archive"; done
  fi
  download "$GND_URL/$dataset/gnd_$dataset.pkl" "$dir/gnd_$dataset.pkl"
  if [ "$WITH_FEATURES" = 1 ]; then
    mkdir -p "$DATA_ROOT/features"
    download "$FEATURES_URL/${dataset}_resnet_rsfm120k_gem.mat" \
      "$DATA_ROOT/features/${dataset}_resnet_rsfm120k_gem.mat"
  fi
done

if [ "$WITH_R1M" = 1 ]; then
  dir="$DATA_ROOT/datasets/revisitop1m"
  mkdir -p "$dir/jpg"
  download "$R1M_URL/revisitop1m.txt" "$dir/revisitop1m.txt"
  for i in $(seq 1 100); do
    marker="$dir/jpg/.done.$i"
    if [ -f "$marker" ]; then continue; fi
    archive="$dir/revisitop1m.$i.tar.gz"
    download "$R1M_URL/jpg/revisitop1m.$i.tar.gz" "$archive"
    echo ">> [$i/100] extracting $(basename "$archive")"
    tar -xzf "$archive" -C "$dir/jpg"
    rm -f "$archive"
    touch "$marker"
  done
  echo ">> R1M in $dir (list: revisitop1m.txt, images under jpg/)"
fi

echo ">> done. Evaluate with:"
echo "   megaloc revisitop_eval --dataset roxford5k --data_root $DATA_ROOT --weights_path model.safetensors"
