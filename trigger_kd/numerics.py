"""The arithmetic every stage trains with: the same bits on every x86-64 CPU with AVX2, whatever its widest vectors.

Measured (benchmarks/history/numerics.md, "Figures that do not depend on the CPU"): the teacher of `mlp_kd_hgq_10k` gave test
AUC 0.9811 on an AMD EPYC (AVX2) and 0.9808 on an Intel Xeon (AVX-512) from the same stamp, and every figure
downstream of it (transfer labels, students) moved with it. The cause is the BLAS kernels, which pick their code
path by the CPU they run on:

- PyTorch's matrix products run in Intel MKL (statically linked into torch): ``MKL_CBWR=AVX2,STRICT`` (MKL's
  conditional numerical reproducibility, strict mode) makes them take the AVX2 path on every CPU that has it;
- TensorFlow's (QKeras, HGQ2) run in oneDNN: ``ONEDNN_MAX_CPU_ISA=AVX2`` caps its JIT kernels at AVX2.

Both are read once, when the library first runs a kernel, so ``pin`` sets them when trigger_kd is imported
(``trigger_kd/__init__.py``), before any stage imports torch or TensorFlow; a user's own values are replaced (they
would change the figures without changing a stage's stamp). ``require`` refuses training when MKL had already
started with another path (torch used before trigger_kd was imported in a user's own process, or a long-running
process that started before the pin and imported the stage code later: both seen).

What is not covered: CPUs without AVX2 (MKL falls back to an older path; the figures may then differ, within the
spread RESULTS.md states), and the thread counts, which come from the config (``teacher.threads``,
``student.threads``: fixed per profile, not per machine).
"""
from __future__ import annotations

import os
import sys

from .errors import TriggerKDError

PINS = {"MKL_CBWR": "AVX2,STRICT", "ONEDNN_MAX_CPU_ISA": "AVX2"}
_MKL_CBWR_BRANCH = 1  # mkl_cbwr_get(MKL_CBWR_BRANCH): the code path MKL runs
_MKL_BRANCH_AVX2 = 10  # MKL_CBWR_AVX2


def pin() -> None:
    """Set the pinned environment (module docstring); called when trigger_kd is imported."""
    os.environ.update(PINS)


def mkl_branch() -> int | None:
    """The code path torch's MKL runs (MKL_CBWR_* value; 10 = AVX2), or None where it cannot be asked (a torch
    without MKL, e.g. on ARM). Asking starts MKL: call it after ``pin``."""
    import ctypes

    import torch

    lib = os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so")
    try:
        get = ctypes.CDLL(lib).mkl_serv_cbwr_get
    except (OSError, AttributeError):
        return None
    get.restype, get.argtypes = ctypes.c_int, [ctypes.c_int]
    return int(get(_MKL_CBWR_BRANCH))


def cpu() -> dict:
    """This CPU: its model name and its widest vector extension (``avx512f``, ``avx2``, or neither), from
    /proc/cpuinfo (empty figures where it cannot be read)."""
    model, flags = None, set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model is None:
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
                if model is not None and flags:
                    break
    except OSError:
        pass
    widest = next((f for f in ("avx512f", "avx2") if f in flags), None if not flags else "older than avx2")
    return {"model": model, "widest_vectors": widest}


def state() -> dict:
    """The arithmetic this process trains with: the pinned variables as it has them, MKL's code path once torch is
    imported (10 = AVX2, the pinned one), and the CPU. Training stages record it in their metrics (the teacher's
    ``rest.numerics``, the student's ``runtime.numerics``, the transfer stage's summary) and the report says it."""
    out: dict = {k: os.environ.get(k) for k in PINS}
    if "torch" in sys.modules:
        out["mkl_branch"] = mkl_branch()
    out["cpu"] = cpu()
    return out


def require(what: str) -> dict:
    """Refuse to train ``what`` when MKL runs another path than the pinned one (it started before the pin); return
    ``state()`` for the stage's record. Without torch imported, MKL has not started in this process (the pin will
    hold when it does): nothing is imported to ask."""
    if "torch" not in sys.modules:
        return state()
    branch = mkl_branch()
    if branch is not None and branch != _MKL_BRANCH_AVX2:
        raise TriggerKDError(
            f"{what}: Intel MKL in this process runs code path {branch}, not AVX2 (10): MKL started before the pin "
            f"(torch ran a matrix product before trigger_kd was imported, or this process started with an older "
            f"trigger_kd), so MKL_CBWR={PINS['MKL_CBWR']} came too late and the figures would depend on this CPU. "
            f"Start a new process; in your own code, import trigger_kd before torch (or set "
            f"MKL_CBWR={PINS['MKL_CBWR']} and ONEDNN_MAX_CPU_ISA={PINS['ONEDNN_MAX_CPU_ISA']} in the environment)")
    return state()
