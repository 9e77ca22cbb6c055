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
echo "+ $engine ${args[*]}"
exec "$engine" "${args[@]}"
