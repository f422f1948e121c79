#!/usr/bin/env bash
# Make the base images of the docker target from Debian packages, for machines that cannot
# pull images (no registry is reachable, but Debian's mirror is):
#
#   devenv-base:bookworm   a Debian bookworm rootfs (debootstrap, minbase) with python3 and
#                          python3-venv, `docker import`ed; the Dockerfile's BASE_IMAGE
#   devenv-redis:bookworm  the same layer, run as redis-server by the redis user
#
# redis-server is debootstrapped into that one rootfs (about 6 MB) instead of a second
# rootfs: one debootstrap and one import serve both images, the redis image adds no layer,
# and no step needs the network inside a container. The services never start it.
#
# Idempotent: with both images present it only says so (well under a second).
#   scripts/offline-base-image.sh            make the images unless they exist
#   scripts/offline-base-image.sh --force    make them again
# Needs root (debootstrap) and a running dockerd. DEBIAN_MIRROR overrides the mirror;
# DEVENV_BASE_IMAGE_TAG / DEVENV_REDIS_IMAGE_TAG the names.
set -euo pipefail

BASE_TAG=${DEVENV_BASE_IMAGE_TAG:-devenv-base:bookworm}
REDIS_TAG=${DEVENV_REDIS_IMAGE_TAG:-devenv-redis:bookworm}
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES=python3,python3-venv,redis-server

force=0
case "${1:-}" in
  --force) force=1 ;;
  "") ;;
  *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

say() { echo "offline-base-image: $*" >&2; }

if ! docker info >/dev/null 2>&1; then
  say "cannot reach the Docker engine (${DOCKER_HOST:-unix:///var/run/docker.sock}): is dockerd running?"
  exit 1
fi

have() { docker image inspect "$1" >/dev/null 2>&1; }
if [[ $force == 0 ]] && have "$BASE_TAG" && have "$REDIS_TAG"; then
  say "$BASE_TAG and $REDIS_TAG exist; nothing to do (--force makes them again)"
  exit 0
fi

if [[ $(id -u) != 0 ]]; then
  say "debootstrap needs root; run this script as root (sudo)"
  exit 1
fi
if ! command -v debootstrap >/dev/null; then
  say "installing debootstrap"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends debootstrap >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }
fi

work=$(mktemp -d "${TMPDIR:-/var/tmp}/devenv-rootfs.XXXXXX")
rootfs=$work/rootfs
cleanup() {
  # debootstrap mounts /proc and /sys in the rootfs while it installs; never delete through a mount.
  local mnt
  awk -v root="$rootfs" 'index($2, root) == 1 { print $2 }' /proc/mounts | sort -r | while read -r mnt; do
    umount -l "$mnt" 2>/dev/null || true
  done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

start=$SECONDS
say "debootstrap $SUITE ($PACKAGES) from $MIRROR"
if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1; then
  tail -n 30 "$work/debootstrap.log" >&2
  [[ -f $rootfs/debootstrap/debootstrap.log ]] && tail -n 30 "$rootfs/debootstrap/debootstrap.log" >&2
  say "debootstrap failed (log above)"
  exit 1
fi

# Slim it as python:3.12-slim is slimmed: no package caches, indexes, manuals or docs (copyrights stay).
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/* \
  "$rootfs"/var/log/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/tmp/* "$rootfs"/debootstrap
find "$rootfs"/usr/share/doc -type f ! -name copyright -delete
find "$rootfs"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
: >"$rootfs"/etc/resolv.conf   # docker provides its own at run time
: >"$rootfs"/etc/hostname

env_path=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
tar --numeric-owner --xattrs -C "$rootfs" -cf "$work/rootfs.tar" .
docker import \
  --change "ENV $env_path" --change "ENV LANG=C.UTF-8" --change 'CMD ["python3"]' \
  --message "debootstrap $SUITE minbase + $PACKAGES (scripts/offline-base-image.sh)" \
  "$work/rootfs.tar" "$BASE_TAG" >/dev/null
# Same tar, same layer (the engine stores it once); only the configuration differs.
docker import \
  --change "ENV $env_path" --change "ENV LANG=C.UTF-8" --change "USER redis" --change "WORKDIR /var/lib/redis" \
  --change "EXPOSE 6379" \
  --change 'CMD ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no"]' \
  --message "redis-server from $BASE_TAG (scripts/offline-base-image.sh)" \
  "$work/rootfs.tar" "$REDIS_TAG" >/dev/null

python_version=$(docker run --rm "$BASE_TAG" python3 --version)
redis_version=$(docker run --rm "$REDIS_TAG" redis-server --version | awk '{sub("v=", "", $3); print $3}')
say "made $BASE_TAG ($python_version) and $REDIS_TAG (redis $redis_version, user $(docker run --rm "$REDIS_TAG" id -un)) in $((SECONDS - start))s"
