"""Vendor HLS routes: one small class per tool behind one interface.

Each builds an hls4ml project in place (C synthesis, optionally Vivado logic synthesis)
with the command line hls4ml 1.3.0 itself uses, keeps stdout+stderr in ``log_dir``, and
returns the parsed reports.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from ..console import info
from ..errors import TriggerKDError
from .reports import ResourceRecord, parse_report
from .tools import tail

ALTERNATIVES = ("use `synth.tool: docker` with an image that has the AMD/Xilinx tools (`make docker-image`, "
                "see docker/README.md), or `synth.tool: open-source` (da4ml + Yosys + Verilator, no vendor tools)")


class BackendError(TriggerKDError):
    """A vendor tool is missing or its build failed."""


def _vivado_opts(vivado_synth: bool) -> str:
    return f"reset=0 csim=0 synth=1 cosim=0 validation=0 export=0 vsynth={int(vivado_synth)} fifo_opt=0"


def _build_opt_tcl(vivado_synth: bool) -> str:
    """hls4ml's Vitis ``build_opt.tcl`` (build_prj.tcl sources it instead of taking arguments)."""
    opts = dict(reset=0, csim=0, synth=1, cosim=0, validation=0, export=0, vsynth=int(vivado_synth), fifo_opt=0)
    return "array set opt {\n" + "".join(f"    {k:<10} {v}\n" for k, v in opts.items()) + "}\n"


def _is_vitis_project(prj_dir: Path) -> bool:
    """hls4ml's Vitis build_prj.tcl sources build_opt.tcl; the Vivado one parses argv."""
    return "build_opt.tcl" in (Path(prj_dir) / "build_prj.tcl").read_text(errors="replace")


class Backend:
    """Interface: ``available()`` and ``run(prj_dir, log_dir, vivado_synth)``."""

    name = "backend"
    executables: tuple[str, ...] = ()

    def available(self) -> bool:
        return any(shutil.which(e) for e in self.executables)

    def missing_message(self) -> str:
        return (f"{self.name} not found: looked for {' / '.join(self.executables)} on PATH "
                f"(source the AMD/Xilinx settings64.sh first); or {ALTERNATIVES}")

    def command(self, prj_dir: Path, vivado_synth: bool) -> list[str]:
        raise NotImplementedError

    def prepare(self, prj_dir: Path, vivado_synth: bool) -> None:
        """Write whatever the project's build script needs before the command runs."""

    def check_project(self, prj_dir: Path) -> None:
        if not (Path(prj_dir) / "build_prj.tcl").is_file():
            raise BackendError(f"{prj_dir} has no build_prj.tcl: not an hls4ml project; run the firmware stage first")

    def run(self, prj_dir: Path, log_dir: Path, vivado_synth: bool = False) -> list[ResourceRecord]:
        prj_dir, log_dir = Path(prj_dir), Path(log_dir)
        if not self.available():
            raise BackendError(self.missing_message())
        self.check_project(prj_dir)
        if vivado_synth:
            self.check_vivado()
        self.prepare(prj_dir, vivado_synth)
        cmd = self.command(prj_dir, vivado_synth)
        log_dir.mkdir(parents=True, exist_ok=True)
        out_log, err_log = log_dir / f"{self.slug}.stdout.log", log_dir / f"{self.slug}.stderr.log"
        info(f"  {self.name}: {' '.join(cmd)} (in {prj_dir}; logs {out_log}, {err_log}); C synthesis takes minutes")
        with open(out_log, "w") as out, open(err_log, "w") as err:
            try:
                subprocess.run(cmd, cwd=prj_dir, stdout=out, stderr=err, check=True)
            except subprocess.CalledProcessError as exc:
                raise BackendError(f"{self.name} failed (exit {exc.returncode}); logs: {out_log}, {err_log}\n"
                                   f"--- last lines ---\n{tail(out_log)}\n{tail(err_log)}") from None
        return parse_report(prj_dir)

    def check_vivado(self) -> None:
        if not shutil.which("vivado"):
            raise BackendError("synth.vivado_synth is set but 'vivado' is not on PATH (needed for logic synthesis); "
                               "source the Vivado settings64.sh or set synth.vivado_synth: false")

    @property
    def slug(self) -> str:
        return self.name.lower().replace(" ", "_")


class VivadoHLS(Backend):
    """Vivado HLS 2019.x-2020.1 on a project written by hls4ml's Vivado backend."""

    name = "Vivado HLS"
    executables = ("vivado_hls",)

    def command(self, prj_dir: Path, vivado_synth: bool) -> list[str]:
        return ["vivado_hls", "-f", "build_prj.tcl", _vivado_opts(vivado_synth)]

    def check_project(self, prj_dir: Path) -> None:
        super().check_project(prj_dir)
        if _is_vitis_project(prj_dir):
            raise BackendError(f"{prj_dir} was written by hls4ml's Vitis backend; build it with Vitis HLS "
                               f"(synth.tool: vitis) or regenerate it with hls.backend: Vivado")


class VitisHLS(Backend):
    """Vitis HLS: ``vitis-run --tcl build_prj.tcl --mode hls`` (2024+, as hls4ml 1.3.0), else ``vitis_hls -f``."""

    name = "Vitis HLS"
    executables = ("vitis-run", "vitis_hls")

    def command(self, prj_dir: Path, vivado_synth: bool) -> list[str]:
        if shutil.which("vitis-run"):
            return ["vitis-run", "--tcl", "build_prj.tcl", "--mode", "hls"]
        return ["vitis_hls", "-f", "build_prj.tcl"]

    def check_project(self, prj_dir: Path) -> None:
        super().check_project(prj_dir)
        if not _is_vitis_project(prj_dir):
            raise BackendError(f"{prj_dir} was written by hls4ml's Vivado backend (its build_prj.tcl takes options "
                               f"as arguments); build it with Vivado HLS (synth.tool: vivado) or regenerate it "
                               f"with hls.backend: Vitis")

    def prepare(self, prj_dir: Path, vivado_synth: bool) -> None:
        (Path(prj_dir) / "build_opt.tcl").write_text(_build_opt_tcl(vivado_synth))


class Docker(Backend):
    """The Vivado HLS or Vitis HLS command inside a container (image from ``synth.docker_image``).

    ``TRIGGER_KD_XILINX`` (a host directory, e.g. ``/tools/Xilinx``) is mounted read-only
    at the same path when set, for images that do not contain the tools themselves;
    ``XILINXD_LICENSE_FILE``, ``LM_LICENSE_FILE`` and ``XILINX_SETTINGS`` are passed through.
    """

    name = "Docker"
    executables = ("docker",)

    def __init__(self, image: str, backend: str = "Vitis"):
        self.image = image
        self.backend = backend

    def available(self) -> bool:
        if not shutil.which("docker"):
            return False
        try:
            subprocess.run(["docker", "image", "inspect", self.image], capture_output=True, timeout=60, check=True)
        except (OSError, subprocess.SubprocessError):
            return False
        return True

    def missing_message(self) -> str:
        if not shutil.which("docker"):
            return ("'docker' not found on PATH: install Docker to use synth.tool: docker, "
                    "or use synth.tool: open-source (da4ml + Yosys + Verilator, no vendor tools)")
        return (f"Docker image '{self.image}' not available (`docker image inspect {self.image}` failed: no image "
                f"or no Docker daemon); build it with `make docker-image` (needs the AMD/Xilinx installer, "
                f"see docker/README.md) or use synth.tool: open-source")

    def inner(self) -> Backend:
        return VitisHLS() if self.backend == "Vitis" else VivadoHLS()

    def command(self, prj_dir: Path, vivado_synth: bool) -> list[str]:
        if self.backend == "Vitis":
            inner = ("if command -v vitis-run >/dev/null; then exec vitis-run --tcl build_prj.tcl --mode hls; "
                     "else exec vitis_hls -f build_prj.tcl; fi")
        else:
            inner = f'exec vivado_hls -f build_prj.tcl "{_vivado_opts(vivado_synth)}"'
        cmd = ["docker", "run", "--rm", "-v", f"{Path(prj_dir).resolve()}:/work/prj", "-w", "/work/prj"]
        if hasattr(os, "getuid"):
            cmd += ["--user", f"{os.getuid()}:{os.getgid()}"]
        xilinx = os.environ.get("TRIGGER_KD_XILINX")
        if xilinx:
            cmd += ["-v", f"{xilinx}:{xilinx}:ro"]
        for var in ("XILINXD_LICENSE_FILE", "LM_LICENSE_FILE", "XILINX_SETTINGS"):
            if os.environ.get(var):
                cmd += ["-e", f"{var}={os.environ[var]}"]
        return cmd + [self.image, "bash", "-c", inner]

    def check_project(self, prj_dir: Path) -> None:
        self.inner().check_project(prj_dir)

    def check_vivado(self) -> None:
        """Vivado is looked for inside the container by build_prj.tcl itself."""

    def prepare(self, prj_dir: Path, vivado_synth: bool) -> None:
        self.inner().prepare(prj_dir, vivado_synth)


def vendor_backend(tool: str, hls_backend: str, docker_image: str) -> Backend:
    """The backend for ``synth.tool`` (vivado | vitis | docker) and ``hls.backend``."""
    if tool == "vivado":
        return VivadoHLS()
    if tool == "vitis":
        return VitisHLS()
    if tool == "docker":
        return Docker(docker_image, hls_backend)
    raise BackendError(f"synth.tool '{tool}' is not a vendor route (vivado, vitis, docker)")


def local_backend_for(hls_backend: str) -> Backend:
    return VitisHLS() if hls_backend == "Vitis" else VivadoHLS()
