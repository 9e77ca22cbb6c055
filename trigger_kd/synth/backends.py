"""Vendor HLS routes: one small class per tool behind one interface.

Each builds an hls4ml project in place (C synthesis, optionally Vivado logic synthesis)
with the command line hls4ml 1.3.0 itself uses, keeps stdout+stderr in ``log_dir``, and
returns the parsed reports.
"""
from __future__ import annotations

import os
import shlex
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
        line = shlex.join(cmd)
        info(f"  {self.name}: {line} (in {prj_dir}; logs {out_log}, {err_log}); C synthesis takes minutes")
        with open(out_log, "w") as out, open(err_log, "w") as err:
            out.write(f"$ {line}\n")
            out.flush()
            try:
                subprocess.run(cmd, cwd=prj_dir, stdout=out, stderr=err, check=True)
            except subprocess.CalledProcessError as exc:
                hint = self.failure_hint(exc.returncode)
                raise BackendError(f"{self.name} failed (exit {exc.returncode}){': ' + hint if hint else ''}; "
                                   f"logs: {out_log}, {err_log}\n"
                                   f"--- last lines ---\n{tail(out_log)}\n{tail(err_log)}") from None
        return parse_report(prj_dir)

    def failure_hint(self, returncode: int) -> str:
        return ""

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


CONTAINER_ENGINE_ENV = "TRIGGER_KD_CONTAINER_ENGINE"
CONTAINER_ENGINES = ("docker", "podman")
PASSED_ENV = ("XILINXD_LICENSE_FILE", "LM_LICENSE_FILE", "XILINX_SETTINGS", "TRIGGER_KD_XILINX")


def container_engine(configured: str = "docker") -> str:
    """``$TRIGGER_KD_CONTAINER_ENGINE`` if set, else ``synth.container_engine``."""
    engine = os.environ.get(CONTAINER_ENGINE_ENV) or configured
    if engine not in CONTAINER_ENGINES:
        raise BackendError(f"container engine '{engine}' (from {CONTAINER_ENGINE_ENV if os.environ.get(CONTAINER_ENGINE_ENV) else 'synth.container_engine'}) "
                           f"is not one of {', '.join(CONTAINER_ENGINES)}")
    return engine


def container_run_command(engine: str, image: str, host_dir: Path, argv: list[str],
                          flags: tuple[str, ...] | list[str] = (), inner_dir: str = "/work/prj") -> list[str]:
    """The one ``<engine> run`` line: ``host_dir`` mounted read-write at ``inner_dir`` (the working
    directory), files written as the calling user, ``$TRIGGER_KD_XILINX`` mounted read-only at the same
    path, the license/settings variables passed through, then the site's ``flags``, the image and ``argv``.

    Ownership: ``--user UID:GID`` (a root daemon, or rootful podman); rootless podman maps the
    caller to root inside, so there ``--userns=keep-id`` makes the container user the caller.
    """
    host = Path(host_dir).resolve()
    if ":" in str(host):  # -v splits source:target:options at ':' (no quoting exists)
        raise BackendError(f"{host} cannot be mounted into the container: '{engine} run -v' takes no ':' in a "
                           f"directory name; use a run directory without ':'")
    cmd = [engine, "run", "--rm", "-v", f"{host}:{inner_dir}", "-w", inner_dir]
    if engine == "podman" and hasattr(os, "getuid") and os.getuid() != 0:
        cmd += ["--userns=keep-id"]
    elif hasattr(os, "getuid"):
        cmd += ["--user", f"{os.getuid()}:{os.getgid()}"]
    xilinx = os.environ.get("TRIGGER_KD_XILINX")
    if xilinx:
        if not Path(xilinx).is_dir():
            raise BackendError(f"TRIGGER_KD_XILINX={xilinx} is not a directory (the AMD/Xilinx installation to mount "
                               f"into the container, e.g. /tools/Xilinx); fix or unset it")
        cmd += ["-v", f"{xilinx}:{xilinx}:ro"]
    for var in PASSED_ENV:
        if os.environ.get(var):
            cmd += ["-e", f"{var}={os.environ[var]}"]
    return cmd + list(flags) + [image] + list(argv)


class Container(Backend):
    """The Vivado HLS or Vitis HLS command inside a container (image from ``synth.docker_image``,
    engine from ``synth.container_engine`` or ``$TRIGGER_KD_CONTAINER_ENGINE``, extra ``<engine> run``
    flags from ``synth.container_flags``).

    ``TRIGGER_KD_XILINX`` (a host directory, e.g. ``/tools/Xilinx``) is mounted read-only
    at the same path when set, for images that do not contain the tools themselves;
    ``XILINXD_LICENSE_FILE``, ``LM_LICENSE_FILE`` and ``XILINX_SETTINGS`` are passed through.
    """

    def __init__(self, image: str, backend: str = "Vitis", engine: str = "docker", flags: tuple[str, ...] = ()):
        self.image = image
        self.backend = backend
        self.engine = container_engine(engine)
        self.flags = tuple(flags)
        self.name = f"{self.engine} ({self.inner().name})"
        self.executables = (self.engine,)

    @property
    def slug(self) -> str:
        return self.engine

    def available(self) -> bool:
        if not shutil.which(self.engine):
            return False
        try:
            subprocess.run([self.engine, "image", "inspect", self.image], capture_output=True, timeout=60, check=True)
        except (OSError, subprocess.SubprocessError):
            return False
        return True

    def missing_message(self) -> str:
        if not shutil.which(self.engine):
            return (f"'{self.engine}' not found on PATH: install it (or set synth.container_engine / "
                    f"{CONTAINER_ENGINE_ENV} to docker or podman) to use synth.tool: docker, "
                    f"or use synth.tool: open-source (da4ml + Yosys + Verilator, no vendor tools)")
        return (f"image '{self.image}' not available to {self.engine} (`{self.engine} image inspect {self.image}` "
                f"failed: no such image, or no {self.engine} daemon); build it with `make docker-image "
                f"ENGINE={self.engine}` (see docker/README.md), set synth.docker_image to your tag, "
                f"or use synth.tool: open-source")

    def inner(self) -> Backend:
        return VitisHLS() if self.backend == "Vitis" else VivadoHLS()

    def command(self, prj_dir: Path, vivado_synth: bool) -> list[str]:
        if self.backend == "Vitis":
            inner = ("if command -v vitis-run >/dev/null; then exec vitis-run --tcl build_prj.tcl --mode hls; "
                     "else exec vitis_hls -f build_prj.tcl; fi")
        else:
            inner = f'exec vivado_hls -f build_prj.tcl "{_vivado_opts(vivado_synth)}"'
        return container_run_command(self.engine, self.image, prj_dir, ["bash", "-c", inner], self.flags)

    def failure_hint(self, returncode: int) -> str:
        if returncode == 127:
            return ("the vendor tool was not found inside the container: mount the AMD/Xilinx installation with "
                    "TRIGGER_KD_XILINX=/tools/Xilinx (its settings64.sh is sourced), set XILINX_SETTINGS, or build "
                    "the image with the tools (docker/README.md)")
        if returncode in (125, 126):
            return f"{self.engine} could not start the container (see the log; synth.container_flags may need a site flag)"
        return ""

    def check_project(self, prj_dir: Path) -> None:
        self.inner().check_project(prj_dir)

    def check_vivado(self) -> None:
        """Vivado is looked for inside the container by build_prj.tcl itself."""

    def prepare(self, prj_dir: Path, vivado_synth: bool) -> None:
        self.inner().prepare(prj_dir, vivado_synth)


def vendor_backend(tool: str, hls_backend: str, docker_image: str, engine: str = "docker",
                   container_flags: tuple[str, ...] = ()) -> Backend:
    """The backend for ``synth.tool`` (vivado | vitis | docker) and ``hls.backend``."""
    if tool == "vivado":
        return VivadoHLS()
    if tool == "vitis":
        return VitisHLS()
    if tool == "docker":
        return Container(docker_image, hls_backend, engine, container_flags)
    raise BackendError(f"synth.tool '{tool}' is not a vendor route (vivado, vitis, docker)")


def local_backend_for(hls_backend: str) -> Backend:
    return VitisHLS() if hls_backend == "Vitis" else VivadoHLS()
