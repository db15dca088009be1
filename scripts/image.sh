#!/usr/bin/env bash
# Build the Slicewatch image with podman (Debian's package): `podman build --isolation chroot`, from a
# Debian 12 base made here with debootstrap and `podman import` (no image registry is needed).
#   scripts/image.sh [TAG]      default tag: localhost/slicewatch:<version in pyproject.toml>
# Exit 77 when podman or debootstrap is missing and cannot be installed (the image test then skips).
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)
TAG=${1:-localhost/slicewatch:$VERSION}
BASE=localhost/slicewatch-base:bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
export STORAGE_DRIVER=${STORAGE_DRIVER:-vfs}   # overlay mounts are not allowed in every sandbox

if ! command -v podman >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
  echo "== installing podman and debootstrap (Debian packages)"
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
         --no-install-recommends podman debootstrap uidmap >/dev/null; }; then
    echo "podman or debootstrap is missing and could not be installed" >&2
    exit 77
  fi
fi

if ! podman image exists "$BASE"; then
  root=$(mktemp -d /tmp/slicewatch-rootfs.XXXXXX)
  trap 'rm -rf "$root"' EXIT
  echo "== debootstrap bookworm (minbase) from $MIRROR"
  debootstrap --variant=minbase bookworm "$root" "$MIRROR" >/dev/null
  echo "deb $MIRROR bookworm main" > "$root/etc/apt/sources.list"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  echo "== podman import -> $BASE"
  tar -C "$root" -c . | podman import - "$BASE" >/dev/null
fi

echo "== podman build --isolation chroot -> $TAG"
# the machine's CA bundle goes in as a build secret (pip and uv verify PyPI with it; never in a layer)
CA=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
podman build --isolation chroot --build-arg "BASE=$BASE" --secret "id=ca,src=$CA" -t "$TAG" -f Dockerfile .
echo "built $TAG"
podman image prune -f >/dev/null 2>&1 || true   # the untagged images of earlier builds (vfs keeps full copies)
