"""Yosys ``synth_xilinx`` on da4ml's Verilog: cell counts as measured open-source figures.

The counts come from outside the process (Yosys's log) and are checked where they are read (:func:`parse_stat`),
with the rules of ``synth/reports.py`` (one place for every report): the ``stat`` block of the top must be there,
every count is a whole number in [0, ``reports.MAX_COUNT``], and the block's total ("Number of cells") must equal
the sum of the cells it lists (two statements of one count; they differ when the log is cut or its format is not
understood). A violation is a ``ReportError`` naming the log.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .reports import ReportError, check_count
from .tools import ToolError, require, run_logged, version_of

INSTALL_HINT = ("install it with `make tools` (Debian/Ubuntu: `apt-get install yosys`), "
                "or use a vendor route (synth.tool: vivado | vitis | docker)")


@dataclass
class YosysResult:
    version: str | None
    cells: dict[str, int] = field(default_factory=dict)
    total_cells: int = 0
    cpu_s: float | None = None
    log: str = ""

    def count(self, pattern: str) -> int:
        return sum(n for name, n in self.cells.items() if re.fullmatch(pattern, name))

    # the cells of each kind (Xilinx primitive names)
    lut = property(lambda self: self.count(r"LUT[1-6]"))
    ff = property(lambda self: self.count(r"FD\w*"))
    carry = property(lambda self: self.count(r"CARRY[48]"))
    dsp = property(lambda self: self.count(r"DSP48\w*"))

    @property
    def bram_18k(self) -> int:
        """RAMB18* count 1, RAMB36* count 2."""
        return self.count(r"RAMB18\w*") + 2 * self.count(r"RAMB36\w*")


def verilog_sources(rtl_dir: Path) -> list[Path]:
    """da4ml's design files: ``src/*.v`` (without the I/O wrapper) and ``src/static/*.v``."""
    src = Path(rtl_dir) / "src"
    files = [p for p in sorted(src.glob("*.v")) if not p.stem.endswith("_wrapper")]
    return files + sorted((src / "static").glob("*.v"))


def _quoted(path: Path, cwd: Path | None) -> str:
    """``path`` as one token of a Yosys script: relative to the directory Yosys runs in (the run directory's own
    name, spaces and all, is then not in it), in double quotes (Yosys keeps a quoted token whole, spaces, '#' and
    ';' included). A double quote or a control character has no spelling there: refused, naming the path."""
    text = os.path.relpath(path, cwd) if cwd is not None else str(path)
    if '"' in text or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ToolError(f"Yosys cannot read {path!r}: a double quote or a control character in a path cannot be "
                        f"written into its script; rename the directory")
    return f'"{text}"'


def script(files: list[Path], top: str, family: str, cwd: Path | None = None) -> str:
    """The Yosys script: every source a quoted token relative to ``cwd`` (where Yosys runs), the top module and the
    family names (identifiers: anything else would be read as more arguments)."""
    for what, name in (("top module", top), ("family (synth.family)", family)):
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(name)):
            raise ToolError(f"Yosys {what} {name!r} is not a name (letters, digits, '_'); fix it")
    names = " ".join(_quoted(f, cwd) for f in files)
    return f"read_verilog -defer {names}\nsynth_xilinx -family {family} -flatten -top {top}\nstat\n"


def parse_stat(log_text: str, top: str, where: str = "the Yosys log") -> tuple[dict[str, int], int]:
    """Cell counts and total from the last ``stat`` block for ``top`` in a Yosys log, validated (module docstring):
    a missing block, an impossible count or a total that is not the sum of the cells is a ReportError."""
    blocks = re.findall(rf"^=== {re.escape(top)} ===\s*$(.*?)(?=^===|^End of script|\Z)", log_text, flags=re.M | re.S)
    if not blocks:
        raise ReportError(f"{where}: no statistics ('=== {top} ===' block of `stat`) for the top module {top}: "
                          f"Yosys stopped early or synthesised another top; see the log")
    block = blocks[-1]
    total_m = re.search(r"Number of cells:\s+(\S+)", block)
    cells: dict[str, int] = {}
    for name, n in re.findall(r"^\s{5,}([A-Za-z_$\\][^\s]*)\s+(-?\d+)\s*$", block, flags=re.M):
        value = check_count(int(n), f"cell count of {name}", where)
        if name in cells and cells[name] != value:
            raise ReportError(f"{where}: cell {name} is listed twice, with {cells[name]} and {value}: the stat "
                              f"block is damaged")
        cells[name] = value
    listed = sum(cells.values())
    if total_m is None:
        if not cells:
            raise ReportError(f"{where}: the stat block of {top} lists neither 'Number of cells' nor any cell: "
                              f"the log is cut or its format is not understood")
        return cells, listed
    try:
        total = check_count(int(total_m.group(1)), "Number of cells", where)
    except ValueError:
        raise ReportError(f"{where}: 'Number of cells' is {total_m.group(1)!r}, not a whole number") from None
    if total != listed:
        raise ReportError(f"{where}: 'Number of cells' {total} of {top} contradicts the {len(cells)} cell types it "
                          f"lists, which add up to {listed}: the log is cut or its format is not understood")
    return cells, total


def run_yosys(rtl_dir: Path, top: str, family: str, log_dir: Path, progress: bool = True) -> YosysResult:
    """Synthesize ``top`` from ``rtl_dir`` for a Xilinx ``family``; log in ``log_dir/yosys.log``."""
    exe = require("yosys", INSTALL_HINT)
    files = verilog_sources(rtl_dir)
    if not files:
        raise FileNotFoundError(f"no Verilog sources in {rtl_dir}/src")
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    ys = log_dir / "yosys.ys"
    ys.write_text(script(files, top, family, cwd=log_dir))
    log = log_dir / "yosys.log"

    def step(line: str) -> str | None:
        m = re.match(r"^(\d+\.\d+)\. Executing (.*?)\.?\s*$", line)
        return f"{m.group(1)} {m.group(2)}" if m and progress else None

    run_logged([exe, "-s", str(ys)], log, cwd=log_dir, label="yosys", progress=step, heartbeat_s=30.0 if progress else 1e9)
    text = log.read_text(errors="replace")
    cells, total = parse_stat(text, top, str(log))
    cpu = re.findall(r"CPU: user ([0-9.]+)s system ([0-9.]+)s", text)
    return YosysResult(
        version=version_of([exe, "-V"], r"Yosys (\S+)"),
        cells=cells,
        total_cells=total,
        cpu_s=round(float(cpu[-1][0]) + float(cpu[-1][1]), 2) if cpu else None,
        log=str(log),
    )
