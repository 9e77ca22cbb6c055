"""What a generation request will cost, said before it starts (and refused when it cannot fit).

Estimates, from measurements on this project's reference machine (benchmarks/history/generation.md,
`make bench-gen`, and one 300-jet shard per class written with the canonical writer, 2026-11-23):
- CPU time, jets per CPU-second with MPI off (the "Jet classes" table of history/generation.md): top 97, qcd 147,
  w 228, z 264, gluon 91, q 90; with MPI on top 32, qcd 38 were measured and the other classes are
  taken at the same slow-down (x 0.26);
- disk: about 1.1 kB per jet (gzip-compressed float32, 200 constituents, mostly zero padding),
  stored twice (the shard pool and the train/val/test files);
- memory: the split step holds every jet of a class as float32 (max_constituents x 4 values), twice
  while shuffling and concatenating.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import TriggerKDError

JETS_PER_CPU_S = {"top": 97.0, "qcd": 147.0, "w": 228.0, "z": 264.0, "gluon": 91.0, "q": 90.0}  # MPI off
JETS_PER_CPU_S_MPI = {"top": 32.0, "qcd": 38.0}
MPI_SLOWDOWN = 0.26  # (32 + 38) / (117 + 150), measured on top and QCD
DISK_BYTES_PER_JET = 1100.0
COPIES_ON_DISK = 2
MEMORY_COPIES = 2


@dataclass
class Budget:
    jets_to_generate: int
    cpu_s: float
    wall_s: float
    disk_bytes: float
    memory_bytes: float
    disk_free: float | None
    memory_total: float | None

    def describe(self) -> str:
        return (f"estimate (from measured rates, benchmarks/history/generation.md): {self.jets_to_generate:,} jets to "
                f"generate, about {_duration(self.wall_s)} wall ({_duration(self.cpu_s)} CPU), "
                f"{_bytes(self.disk_bytes)} of disk "
                f"(free: {_bytes(self.disk_free)}), {_bytes(self.memory_bytes)} of memory to split them "
                f"(machine: {_bytes(self.memory_total)})")


def _bytes(n: float | None) -> str:
    if n is None:
        return "unknown"
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if n < 1000:
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} EB"


def _duration(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 2 * 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:,.0f} days"


def _memory_total() -> float | None:
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def _rate(cls: str, mpi: bool) -> float:
    slowest = min(JETS_PER_CPU_S.values())
    if mpi:
        return JETS_PER_CPU_S_MPI.get(cls, JETS_PER_CPU_S.get(cls, slowest) * MPI_SLOWDOWN)
    return JETS_PER_CPU_S.get(cls, slowest)


def generation_budget(jets_per_class: int, existing: dict[str, int], mpi: bool, workers: int,
                      max_constituents: int, where: Path) -> Budget:
    """Cost of making ``jets_per_class`` of each class in ``existing`` (class -> jets already in its pool)."""
    todo = {cls: max(jets_per_class - have, 0) for cls, have in existing.items()}
    cpu = sum(n / _rate(cls, mpi) for cls, n in todo.items())
    workers = max(workers or os.cpu_count() or 1, 1)
    n_all = len(existing) * jets_per_class
    probe = Path(where)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = float(shutil.disk_usage(probe).free)
    except OSError:
        free = None
    return Budget(
        jets_to_generate=sum(todo.values()),
        cpu_s=cpu,
        wall_s=cpu / workers,
        disk_bytes=DISK_BYTES_PER_JET * (sum(todo.values()) + n_all),  # new shards + the split files
        memory_bytes=float(MEMORY_COPIES * jets_per_class * max_constituents * 4 * 4),
        disk_free=free,
        memory_total=_memory_total(),
    )


def check_budget(b: Budget) -> None:
    """Refuse a request that cannot fit on this machine, before generating anything."""
    if b.disk_free is not None and b.disk_bytes > b.disk_free:
        raise TriggerKDError(f"this request does not fit on the disk: {b.describe()}. Lower data.jets_per_class, "
                             f"free space, or set TRIGGER_KD_CACHE to a bigger file system")
    if b.memory_total is not None and b.memory_bytes > b.memory_total:
        raise TriggerKDError(f"this request does not fit in memory: {b.describe()}. Lower data.jets_per_class "
                             f"(or data.max_constituents)")
