#!/usr/bin/env bash
# Build a Debian 12 (bookworm) base image with Python 3.11 from Debian packages alone, for
# machines that cannot pull python:3.11-bookworm from a registry:
#   mmdebstrap (or debootstrap) -> root file system tarball -> `podman import` / `docker import`.
# Debian 12's python3 is 3.11; the image has python3, python3-venv (pip via ensurepip) and
# ca-certificates. The host's own CA certificates (/usr/local/share/ca-certificates/*.crt, e.g. a
# TLS-inspecting proxy's) are copied in so pip and apt work from inside as they do on the host.
#
# Usage: docker/make-base-image.sh [TAG]       (default TAG: trigger-kd-base:bookworm)
#   TRIGGER_KD_CONTAINER_ENGINE=podman|docker  (default: podman if installed, else docker)
#   BASE_TARBALL=PATH   reuse this tarball when it exists, write it otherwise
#                       (default: .cache/container/debian12-python3.11.tar; CI keeps .cache/)
#   DEBIAN_MIRROR=URL   (default http://deb.debian.org/debian)
# Then: docker build --build-arg BASE_IMAGE=TAG ...   (make docker-image BASE_IMAGE=TAG)
# Needs root (or mmdebstrap's unshare mode) and network access to a Debian mirror.
set -euo pipefail
tag="${1:-trigger-kd-base:bookworm}"
here="$(cd "$(dirname "$0")/.." && pwd)"
tarball="${BASE_TARBALL:-$here/.cache/container/debian12-python3.11.tar}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
engine="${TRIGGER_KD_CONTAINER_ENGINE:-$(command -v podman >/dev/null && echo podman || echo docker)}"
packages="python3,python3-venv,ca-certificates"
# A fixed SOURCE_DATE_EPOCH makes mmdebstrap's tarball reproducible: the same Debian packages give the same bytes,
# so a fresh clone (CI) imports nothing new and every image layer built on the base stays cached in the engine.
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-1735689600}"

if [ ! -s "$tarball" ]; then
    mkdir -p "$(dirname "$tarball")"
    tmp="$tarball.tmp.$$"
    trap 'rm -rf "$tmp" "$tmp.d"' EXIT
    echo "building a Debian 12 + Python 3.11 root file system from $mirror into $tarball (no registry used)"
    if command -v mmdebstrap >/dev/null; then
        mmdebstrap --variant=minbase --include="$packages" --format=tar \
            --customize-hook='for c in /usr/local/share/ca-certificates/*.crt; do [ -f "$c" ] && cp "$c" "$1/usr/local/share/ca-certificates/"; done; chroot "$1" update-ca-certificates >/dev/null' \
            --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
            bookworm "$tmp" \
            "deb $mirror bookworm main" "deb $mirror bookworm-updates main" \
            "deb ${mirror%/debian}/debian-security bookworm-security main"
    elif command -v debootstrap >/dev/null; then
        debootstrap --variant=minbase --include="$packages" bookworm "$tmp.d" "$mirror"
        for c in /usr/local/share/ca-certificates/*.crt; do [ -f "$c" ] && cp "$c" "$tmp.d/usr/local/share/ca-certificates/"; done
        chroot "$tmp.d" update-ca-certificates >/dev/null
        rm -rf "$tmp.d"/var/lib/apt/lists/* "$tmp.d"/var/cache/apt/*.bin
        tar -C "$tmp.d" -cf "$tmp" .
    else
        echo "error: neither mmdebstrap nor debootstrap is installed (Debian: apt-get install mmdebstrap)" >&2
        exit 1
    fi
    mv "$tmp" "$tarball"
else
    echo "reusing $tarball (delete it to rebuild the root file system)"
fi
# Import only when the tag does not hold this tarball yet: a re-import makes a new image ID, which
# would invalidate every cached layer built on it.
sum="$(sha256sum "$tarball" | cut -c1-32)"
if [ "$("$engine" image inspect --format '{{index .Config.Labels "trigger-kd.base-tarball"}}' "$tag" 2>/dev/null)" = "$sum" ]; then
    echo "$tag already holds $tarball"
else
    old="$("$engine" image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)"
    "$engine" import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' \
        --change "LABEL trigger-kd.base-tarball=$sum" "$tarball" "$tag" >/dev/null
    # the base TAG named before, now nameless: removed unless images built on it still use it
    if [ -n "$old" ] && ! "$engine" rmi "$old" >/dev/null 2>&1; then
        echo "kept the base $tag named before (${old:0:12}): images built on it use it ('$engine image prune' removes it after them)"
    fi
fi
"$engine" run --rm "$tag" python3 -c 'import sys, venv; print("base image", sys.argv[1], "Python", sys.version.split()[0])' "$tag" || {
    echo "error: $engine cannot run a container from $tag (message above). On nested or sandboxed hosts" \
         "(setrlimit or cgroup errors) try: export CONTAINERS_CONF=$here/docker/containers.conf (docker/README.md)" >&2
    exit 1
}
