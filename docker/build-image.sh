#!/usr/bin/env bash
# Build the trigger_kd vendor-HLS image from docker/Dockerfile with docker or podman.
# Usage: docker/build-image.sh [TAG]                 (default TAG: trigger-kd-vivado:latest)
# Environment:
#   TRIGGER_KD_CONTAINER_ENGINE=docker|podman  (default: podman if installed, else docker)
#   BASE_IMAGE=IMAGE      base image (default python:3.11-bookworm; without registry access use the
#                         one docker/make-base-image.sh builds: trigger-kd-base:bookworm)
#   EXTRAS=qkeras         pip extras of trigger_kd (default none)
#   XILINX_INSTALLER=DIR  installer tarball + install_config.txt: install the AMD tools (mode A)
#   WHEELS=DIR            wheels pip may use inside (default: the first PIP_FIND_LINKS directory);
#                         with a torch CPU wheel there, the PyTorch CPU index is not asked
#   OFFLINE=1             download every wheel on the host first (into WHEELHOUSE, default
#                         .cache/container/wheels, reused while pyproject.toml is unchanged) and
#                         install only from it: the build needs no PyPI access
#   BUILD_FLAGS="..."     extra flags for `<engine> build` (e.g. --network host)
#   KEEP_OLD_IMAGE=1      keep the image TAG named before this build (by default it is removed once
#                         the new one is built, if no other tag names it and no container uses it:
#                         each rebuild would otherwise leave a nameless multi-GB image behind)
#   MIN_FREE_GB=6         free space a full build needs in the engine's storage; below it the build
#                         is still tried (cached layers need little) and a failure says so
set -euo pipefail
tag="${1:-trigger-kd-vivado:latest}"
here="$(cd "$(dirname "$0")/.." && pwd)"
engine="${TRIGGER_KD_CONTAINER_ENGINE:-$(command -v podman >/dev/null && echo podman || echo docker)}"
args=(build -t "$tag" -f "$here/docker/Dockerfile")
[ -n "${BASE_IMAGE:-}" ] && args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
[ -n "${EXTRAS:-}" ] && args+=(--build-arg "EXTRAS=$EXTRAS")
[ -n "${XILINX_INSTALLER:-}" ] && args+=(--build-context "xilinx=$XILINX_INSTALLER")
wheels="${WHEELS:-${PIP_FIND_LINKS%% *}}"
if [ "${OFFLINE:-0}" = 1 ]; then
    wheels="${WHEELHOUSE:-$here/.cache/container/wheels}"
    python="${PYTHON:-python3}"
    "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
        || { echo "error: OFFLINE=1 needs PYTHON=<python 3.11> (the image's Python) to download wheels" >&2; exit 1; }
    key="$(cat "$here/pyproject.toml" "$here/docker/requirements.py" | sha256sum | cut -c1-16) extras=${EXTRAS:-}"
    if [ "$(cat "$wheels/.complete" 2>/dev/null)" != "$key" ]; then
        echo "downloading the image's wheels into $wheels (pins from pyproject.toml)"
        mkdir -p "$wheels"
        "$python" "$here/docker/requirements.py" "$here/pyproject.toml" "${EXTRAS:-}" > "$wheels/requirements.txt"
        "$python" -m pip download -q --only-binary=:all: -d "$wheels" -r "$wheels/requirements.txt" 2> >(grep -v "is ignored: it is neither" >&2)
        echo "$key" > "$wheels/.complete"
    else
        echo "reusing the wheels in $wheels"
    fi
    args+=(--build-arg "PIP_OPTS=--no-index")
elif [ -n "$wheels" ] && compgen -G "$wheels/torch-*+cpu-*.whl" >/dev/null; then
    args+=(--build-arg "PIP_OPTS=")  # the CPU torch wheel is in $wheels: no PyTorch index needed
fi
[ -n "$wheels" ] && args+=(--build-context "wheels=$wheels")
# shellcheck disable=SC2206
args+=(${BUILD_FLAGS:-} "$here")

# Free space where the engine keeps its layers: a full build writes the ~2.7 GB Python layer and a
# copy of it when committing, and a full disk shows up only as an obscure "closed pipe" error.
need_gb="${MIN_FREE_GB:-6}"
store="$("$engine" info --format '{{.Store.GraphRoot}}' 2>/dev/null || "$engine" info --format '{{.DockerRootDir}}' 2>/dev/null || true)"
free_gb="" low=0
if [ -n "$store" ] && [ -d "$store" ]; then
    free_gb="$(df -Pk "$store" | awk 'NR == 2 { printf "%.1f", $4 / 1048576 }')"
    awk -v f="$free_gb" -v n="$need_gb" 'BEGIN { exit !(f < n) }' && low=1
    if [ "$low" = 1 ]; then
        echo "warning: only $free_gb GB free in $store; a build without cached layers needs about $need_gb GB" >&2
    fi
fi

old="$("$engine" image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)"
echo "+ $engine ${args[*]}"
if ! "$engine" "${args[@]}"; then
    echo "error: $engine build of $tag failed (messages above)." >&2
    if [ "$low" = 1 ]; then
        echo "  $store had only $free_gb GB free before the build (a full build needs about $need_gb GB): free space," \
             "e.g. '$engine image prune' removes nameless images, then retry." >&2
    fi
    exit 1
fi
new="$("$engine" image inspect --format '{{.Id}}' "$tag")"
if [ -n "$old" ] && [ "$old" != "$new" ] && [ "${KEEP_OLD_IMAGE:-0}" != 1 ]; then
    # The image TAG named before: remove it when nothing else names or uses it (rmi refuses otherwise).
    if [ -z "$("$engine" image inspect --format '{{join .RepoTags " "}}' "$old" 2>/dev/null | tr -d '[:space:]')" ]; then
        if "$engine" rmi "$old" >/dev/null 2>&1; then
            echo "removed the image $tag named before (${old:0:12}); KEEP_OLD_IMAGE=1 keeps it"
        else
            echo "kept the image $tag named before (${old:0:12}): a container or another image uses it"
        fi
    fi
fi
echo "built $tag (${new:0:12})"
