"""The vendor route in a real container engine (podman or docker), everything but the AMD binaries.

The image is built from docker/Dockerfile on a Debian 12 base made from Debian packages
(docker/make-base-image.sh; no registry), with the wheels pip needs downloaded on the host
(docker/build-image.sh OFFLINE=1). `trigger-kd` runs inside it on a tiny config up to the
firmware stage (real Pythia, training, hls4ml and g++ C simulation in the container); then the
synth stage runs `synth.tool: docker` against that image, with a stand-in `vitis_hls` placed in a
mounted Xilinx directory exactly as a real installation is (TRIGGER_KD_XILINX, settings64.sh;
tests/fixtures/xilinx-stand-in.sh), which writes a real Vitis HLS report
(tests/fixtures/reports/SOURCES.md) into the project.

Skipped with the reason when no engine is installed or `<engine> info` fails. With podman and no
CONTAINERS_CONF set, docker/containers.conf is used (what sandboxed hosts need; harmless elsewhere
when runc is installed). Base tarball and wheels are cached in $TRIGGER_KD_CONTAINER_CACHE (default
.cache/container/) between runs; the engine keeps its layers.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_e2e import TINY
from trigger_kd.cli import main as cli
from trigger_kd.synth.backends import container_run_command

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
STAND_IN = REPO / "tests" / "fixtures" / "xilinx-stand-in.sh"  # an AMD-like directory with a stand-in vitis_hls
ENGINE = os.environ.get("TRIGGER_KD_CONTAINER_ENGINE") or ("podman" if shutil.which("podman") else "docker")
CACHE = Path(os.environ.get("TRIGGER_KD_CONTAINER_CACHE") or REPO / ".cache" / "container")
TAG = "trigger-kd-vivado:test"  # not :latest, which may be a site's image with the AMD tools inside
CONFIG = str(REPO / "hls_configs" / "mlp_kd.yml")
SETS = [a for s in TINY if not s.startswith("synth.") for a in ("--set", s)]


def _engine_problem() -> str | None:
    if not shutil.which(ENGINE):
        return (f"no container engine: '{ENGINE}' is not on PATH (Debian: apt-get install podman runc, as .ci/run "
                f"does; or set TRIGGER_KD_CONTAINER_ENGINE)")
    try:
        subprocess.run([ENGINE, "info"], capture_output=True, text=True, timeout=120, check=True)
    except subprocess.CalledProcessError as exc:
        last = (exc.stderr or exc.stdout or "").strip().splitlines()[-1:]
        return f"container engine '{ENGINE}' does not work here (`{ENGINE} info` failed: {' '.join(last)})"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"container engine '{ENGINE}' does not work here (`{ENGINE} info`: {exc})"
    return None


def _logged(cmd: list[str], log: Path, env: dict | None = None) -> None:
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    if proc.returncode:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        pytest.fail(f"{' '.join(cmd)} failed (exit {proc.returncode}); log {log}:\n{tail}")


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    problem = _engine_problem()
    if problem:
        pytest.skip(problem)
    with pytest.MonkeyPatch.context() as mp:
        if ENGINE == "podman" and "CONTAINERS_CONF" not in os.environ and shutil.which("runc"):
            mp.setenv("CONTAINERS_CONF", str(REPO / "docker" / "containers.conf"))  # what this machine kind needs
        yield _build_image(tmp_path_factory)


def _build_image(tmp_path_factory) -> str:
    logs = tmp_path_factory.mktemp("image")
    env = dict(os.environ, TRIGGER_KD_CONTAINER_ENGINE=ENGINE)
    base = os.environ.get("TRIGGER_KD_BASE_IMAGE")
    if not base:
        base = "trigger-kd-base:bookworm"
        tarball = CACHE / "debian12-python3.11.tar"
        if not tarball.is_file() and not (shutil.which("mmdebstrap") or shutil.which("debootstrap")):
            pytest.skip("no base image: install mmdebstrap (docker/make-base-image.sh builds Debian 12 + Python 3.11 "
                        "from Debian packages) or set TRIGGER_KD_BASE_IMAGE to a Debian 12 + Python 3.11 image")
        t0 = time.time()
        _logged([str(REPO / "docker" / "make-base-image.sh"), base], logs / "base.log", dict(env, BASE_TARBALL=str(tarball)))
        print(f"base image {base}: {time.time() - t0:.0f} s")
    t0 = time.time()
    before = _image_id(TAG)
    _logged([str(REPO / "docker" / "build-image.sh"), TAG], logs / "build.log",
            dict(env, BASE_IMAGE=base, OFFLINE="1", PYTHON=sys.executable, WHEELHOUSE=str(CACHE / "wheels")))
    print(f"image {TAG} built from docker/Dockerfile: {time.time() - t0:.0f} s")
    after = _image_id(TAG)
    assert after, f"{TAG} does not exist after the build"
    if before and before != after:
        # a rebuild must not leave the replaced multi-GB image behind, nameless (a disk filled this way)
        assert _image_id(before) is None, (f"the image {TAG} named before ({before[:12]}) is still there:\n"
                                           + (logs / "build.log").read_text()[-2000:])
    return TAG


def _image_id(ref: str) -> str | None:
    proc = subprocess.run([ENGINE, "image", "inspect", "--format", "{{.Id}}", ref], capture_output=True, text=True)
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def test_trigger_kd_in_the_image_then_synth_in_a_container(image, tmp_path, monkeypatch):
    run = tmp_path / "mlp_kd"
    cache = tmp_path / "cache"
    # 1. trigger-kd inside the image, up to the firmware stage. The host directory is mounted at the same
    #    path so the run's links into the artifact cache are valid on both sides.
    inside = container_run_command(
        ENGINE, image, tmp_path,
        ["trigger-kd", "run", "/opt/trigger_kd/hls_configs/mlp_kd.yml", "--to", "firmware", "--run-dir", str(run),
         "--no-progress", *SETS], flags=("-e", f"TRIGGER_KD_CACHE={cache}"), inner_dir=str(tmp_path))
    t0 = time.time()
    _logged(inside, tmp_path / "inside.log")
    print(f"trigger-kd in the container up to firmware: {time.time() - t0:.0f} s")
    parity = json.loads((run / "firmware" / "parity.json").read_text())
    assert parity["bit_exact_fraction"] == 1.0 and parity["n_jets"] > 100  # g++ C simulation ran in the image

    # 2. the synth stage on the host, vendor route in the container, stand-in tool from the Xilinx mount
    xilinx = tmp_path / "tools" / "Xilinx"
    subprocess.run([str(STAND_IN), str(xilinx)], check=True)
    monkeypatch.setenv("TRIGGER_KD_CONTAINER_ENGINE", ENGINE)
    monkeypatch.setenv("TRIGGER_KD_XILINX", str(xilinx))
    monkeypatch.setenv("XILINXD_LICENSE_FILE", "2100@licserver.example")
    monkeypatch.setenv("TRIGGER_KD_CACHE", str(cache))
    synth_args = ["run", CONFIG, "--from", "synth", "--to", "synth", "--run-dir", str(run), "--no-progress", *SETS,
                  "--set", "synth.tool=docker", "--set", f"synth.docker_image={image}"]
    assert cli(synth_args) == 0
    out = run / "synth"
    res = json.loads((out / "resources.json").read_text())
    assert res["route"] == "docker"
    p = res["primary"]
    assert (p["source"], p["kind"], p["lut"], p["latency_max_cycles"]) == ("Vitis HLS 2022.2 csynth", "hls-estimate",
                                                                           116694, 15)
    saw = dict(line.split("=", 1) for line in (out / "hls_prj" / "stand_in_saw.txt").read_text().splitlines())
    assert saw == {"uid": str(os.getuid()), "gid": str(os.getgid()), "license": "2100@licserver.example",
                   "xilinx": str(xilinx), "pwd": "/work/prj"}
    for path in [out / "hls_prj" / "stand_in_saw.txt", *(out / "hls_prj" / "myproject_prj").rglob("*")]:
        st = path.stat()
        assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid()), path  # written back as the calling user
    stdout_log = (out / "logs" / f"{ENGINE}.stdout.log").read_text()
    assert re.match(rf"\$ {ENGINE} run --rm -v {re.escape(str(run))}/\.synth\.tmp-\d+/hls_prj:/work/prj ", stdout_log)
    assert f"{xilinx}:{xilinx}:ro" in stdout_log.splitlines()[0] and "Finished Command csynth_design" in stdout_log

    # 3. a failing vendor command: one error message naming the logs, no traceback
    fail = subprocess.run(
        [sys.executable, "-m", "trigger_kd.cli", *synth_args, "--set", 'synth.container_flags=["-e", "STANDIN_FAIL=1"]'],
        capture_output=True, text=True, cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert fail.returncode == 2, fail.stderr
    assert "Traceback" not in fail.stderr and fail.stderr.count("error:") == 1, fail.stderr
    assert f"{ENGINE} (Vitis HLS) failed (exit 2)" in fail.stderr and "license not found" in fail.stderr
    err_log = run / "synth.failed" / "logs" / f"{ENGINE}.stderr.log"  # the failed attempt, kept aside
    assert str(err_log) in fail.stderr.replace("\n", "") and "license not found" in err_log.read_text()
    assert (out / "resources.json").is_file()  # the previous result stays
