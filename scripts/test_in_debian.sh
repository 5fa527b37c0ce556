#!/usr/bin/env bash
# Runs the README's commands on a bare Debian root of another release, on this machine:
#
#   scripts/test_in_debian.sh [--demo] [--shell] [--keep-build] [--keep-going] <bookworm|trixie|sid|...> [-- ctest args]
#
# 1. debootstraps a minbase root of <release> once, cached outside the repository in
#    ${MEGALOC_DEBIAN_ROOTS:-/var/cache/megaloc/debian-roots}/<release> (delete it to start over);
# 2. clones the current commit (HEAD; uncommitted changes are not included) into /work/megaloc
#    inside the root, replacing an earlier clone (its ccache lives in the root and is kept);
# 3. runs scripts/test.sh there in a chroot (with --demo: scripts/demo.sh first), exactly as a new
#    user would on a fresh machine of that release, and prints the closing line.
#
# --shell opens a shell in the root instead of testing; --keep-build keeps the build directory of the
# earlier clone (by default every run builds from scratch; the clone's path never changes, so ccache
# in the root makes rebuilds of unchanged files cheap); --keep-going builds everything that compiles
# and lists every compile error (ninja -k 0) before failing.
# Needs root (or sudo), debootstrap and git on the host. The archive is the host's (its first
# deb.debian.org-style URI); MEGALOC_DEBIAN_MIRROR overrides it. Inside the root only (never on
# the host), apt accepts an expired Release file (Acquire::Check-Valid-Until "false"): archive
# snapshots of unstable often carry one.
set -euo pipefail

usage() {
  sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

DEMO=0
SHELL_ONLY=0
KEEP_BUILD=0
KEEP_GOING=0
RELEASE=""
CTEST_ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --demo) DEMO=1 ;;
    --shell) SHELL_ONLY=1 ;;
    --keep-build) KEEP_BUILD=1 ;;
    --keep-going) KEEP_GOING=1 ;;
    -h|--help) usage ;;
    --) shift; CTEST_ARGS=("$@"); break ;;
    -*) echo "test_in_debian.sh: unknown option $1" >&2; usage ;;
    *) [ -z "$RELEASE" ] || usage; RELEASE="$1" ;;
  esac
  shift
done
[ -n "$RELEASE" ] || usage
case "$RELEASE" in *[!a-z0-9-]*) echo "test_in_debian.sh: bad release name '$RELEASE'" >&2; exit 2 ;; esac

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "test_in_debian.sh: run as root or install sudo" >&2; exit 1; }
  SUDO="sudo"
fi

REPO="$(cd "$(dirname "$0")/.." && pwd)"
COMMIT="$(git -C "$REPO" rev-parse HEAD)"
ROOTS="${MEGALOC_DEBIAN_ROOTS:-/var/cache/megaloc/debian-roots}"
ROOT="$ROOTS/$RELEASE"
case "$ROOT/" in "$REPO"/*) echo "test_in_debian.sh: the roots must live outside the repository" >&2; exit 2 ;; esac

if ! command -v debootstrap >/dev/null 2>&1; then
  echo "[test_in_debian] installing debootstrap on the host"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends debootstrap
fi

mirror() {
  if [ -n "${MEGALOC_DEBIAN_MIRROR:-}" ]; then echo "$MEGALOC_DEBIAN_MIRROR"; return; fi
  local uri
  uri=$(grep -hoE '(URIs:|deb)[[:space:]]+https?://[^[:space:]]+/debian/?' \
          /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null | head -n1 | awk '{print $2}' || true)
  echo "${uri:-http://deb.debian.org/debian}"
}
MIRROR="$(mirror)"

MOUNTS=()
cleanup() {
  local i
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do $SUDO umount -l "${MOUNTS[$i]}" 2>/dev/null || true; done
}
trap cleanup EXIT

if [ ! -f "$ROOT/.megaloc-root-ready" ]; then
  echo "[test_in_debian] debootstrap --variant=minbase $RELEASE from $MIRROR into $ROOT"
  $SUDO rm -rf "$ROOT"
  $SUDO mkdir -p "$ROOTS"
  $SUDO debootstrap --variant=minbase "$RELEASE" "$ROOT" "$MIRROR"
  # The root's own apt settings (never the host's).
  echo 'Acquire::Check-Valid-Until "false";' | $SUDO tee "$ROOT/etc/apt/apt.conf.d/99megaloc-valid-until" >/dev/null
  echo "deb $MIRROR $RELEASE main" | $SUDO tee "$ROOT/etc/apt/sources.list" >/dev/null
  $SUDO touch "$ROOT/.megaloc-root-ready"
fi

mount_into_root() {  # source target [options]
  $SUDO mkdir -p "$ROOT$2"
  if ! mountpoint -q "$ROOT$2"; then
    $SUDO mount "${@:3}" "$1" "$ROOT$2"
    MOUNTS+=("$ROOT$2")
  fi
}
mount_into_root proc /proc -t proc
mount_into_root sysfs /sys -t sysfs
mount_into_root /dev /dev --bind
mount_into_root devpts /dev/pts -t devpts
mount_into_root tmpfs /dev/shm -t tmpfs
[ -f /etc/resolv.conf ] && $SUDO cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true

# The current commit, cloned as a new user would have it (git is not needed inside the root).
CLONE=/work/megaloc
# Never delete through a mount (e.g. a developer's tree bind-mounted into the root).
if grep -q " $ROOT/work" /proc/mounts; then
  echo "test_in_debian.sh: something is mounted under $ROOT/work; unmount it first" >&2
  exit 1
fi
SAVED_BUILD=""
if [ "$KEEP_BUILD" = 1 ] && [ -d "$ROOT$CLONE/build" ]; then
  SAVED_BUILD="$ROOT/work/.megaloc-build-kept"
  $SUDO rm -rf "$SAVED_BUILD"
  $SUDO mv "$ROOT$CLONE/build" "$SAVED_BUILD"
fi
$SUDO rm -rf "$ROOT$CLONE"
$SUDO mkdir -p "$ROOT/work"
$SUDO git clone -q --no-hardlinks "$REPO" "$ROOT$CLONE"
$SUDO git -C "$ROOT$CLONE" checkout -q "$COMMIT"
[ -n "$SAVED_BUILD" ] && $SUDO mv "$SAVED_BUILD" "$ROOT$CLONE/build"
# The shared fixtures sit beside the checkout, as on a developer's machine (optional for the tests).
if [ -d "$REPO/../shared" ] && [ ! -e "$ROOT/work/shared" ]; then
  $SUDO cp -a "$REPO/../shared" "$ROOT/work/shared" 2>/dev/null || true
fi

ENV=(env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
     TERM="${TERM:-dumb}" CI="${CI:-}" JOBS="${JOBS:-}" CTEST_JOBS="${CTEST_JOBS:-}"
     MEGALOC_BUILD_KEEP_GOING="$KEEP_GOING")
if [ "$SHELL_ONLY" = 1 ]; then
  $SUDO chroot "$ROOT" "${ENV[@]}" /bin/bash -c "cd $CLONE && exec bash -i"
  exit $?
fi

echo "[test_in_debian] $RELEASE: commit ${COMMIT:0:12} in $ROOT$CLONE"
LOG="$ROOTS/$RELEASE.log"
status=0
set +e
{
  if [ "$DEMO" = 1 ]; then
    $SUDO chroot "$ROOT" "${ENV[@]}" /bin/bash -c "cd $CLONE && scripts/demo.sh"
    status=$?
    [ $status -eq 0 ] || echo "[test_in_debian] $RELEASE: scripts/demo.sh FAILED (exit $status)"
  fi
  if [ $status -eq 0 ]; then
    $SUDO chroot "$ROOT" "${ENV[@]}" /bin/bash -c "cd $CLONE && scripts/test.sh \"\$@\"" test.sh "${CTEST_ARGS[@]}"
    status=$?
  fi
  exit $status
} 2>&1 | tee "$LOG"
status=${PIPESTATUS[0]}
set -e

summary=$(grep -E 'tests passed|tests failed' "$LOG" | tail -n1 || true)
versions=$($SUDO chroot "$ROOT" dpkg-query -W -f='${Package} ${Version}\n' libtorch-dev colmap libhdf5-dev 2>/dev/null | tr '\n' ';' || true)
if [ $status -eq 0 ]; then
  echo "[test_in_debian] $RELEASE PASSED: ${summary:-no ctest summary} ($versions) log: $LOG"
else
  echo "[test_in_debian] $RELEASE FAILED (exit $status): ${summary:-no ctest summary} ($versions) log: $LOG"
fi
exit $status
