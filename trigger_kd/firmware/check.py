"""`trigger-kd check-parity RUN`: is the firmware in a run directory bit-exact with the student it was built from?

For a pipeline run the verdict is not read from ``parity.json``: the run's stages must agree (``runcheck.py``:
firmware, export, student and what they were made from, every output as its stage wrote it), and the
fraction of bit-exact test jets is recomputed from the evidence, the C-simulation outputs
(``firmware/csim_outputs.npy``) against the student's logits on the same jets (``student/test_logits.npy``),
both covered by their stages' manifests. The threshold is ``checks.parity_min_fraction`` as recorded in the
firmware stage's stamp. ``parity.json`` must agree with that evidence. A directory ``import-qonnx`` wrote (no
stamp) is judged by its ``parity.json``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..console import error, info, warn
from ..errors import TriggerKDError
from ..rundir import CSIM_OUTPUTS, FIRMWARE, PARITY, STUDENT, TEST_LOGITS, read_stamp
from ..runcheck import chain_problems, describe


def _record(path: Path) -> tuple[dict, float, int]:
    try:
        p = json.loads(path.read_text())
        return p, float(p["bit_exact_fraction"]), int(p["n_jets"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TriggerKDError(f"{path} is not a parity report ({exc}); rerun the firmware stage") from exc


def recomputed(fw_dir: Path) -> tuple[float, int] | None:
    """(bit-exact fraction, jets) from the C-simulation outputs and the student's logits; None without them."""
    csim_path, want_path = fw_dir / CSIM_OUTPUTS, fw_dir.parent / STUDENT / TEST_LOGITS
    if not csim_path.is_file() or not want_path.is_file():
        return None
    want = np.asarray(np.load(want_path), dtype=np.float64)
    csim = np.asarray(np.load(csim_path), dtype=np.float64)
    if csim.size != want.size or len(want) == 0:
        return 0.0, len(want)
    exact = np.all(csim.reshape(len(want), -1) == want.reshape(len(want), -1), axis=1)
    return float(exact.mean()), len(want)


def check_parity(fw_dir: Path) -> int:
    """0 only when the firmware is current and bit-exact on at least the required fraction of test jets."""
    fw_dir = Path(fw_dir)
    path = fw_dir / PARITY
    stamp = read_stamp(fw_dir)
    is_stage = stamp is not None or fw_dir.name == FIRMWARE
    if is_stage:
        problems = chain_problems(fw_dir.parent, [FIRMWARE])
        if problems:
            error(f"parity STALE: {describe(fw_dir.parent, problems, 'check-parity')}")
            return 1
    elif not path.is_file():
        raise TriggerKDError(f"{path} not found: give a run directory (its firmware stage) or a directory "
                             "`trigger-kd import-qonnx` wrote")
    p, frac, n = _record(path)
    required = float(p.get("required_fraction", 1.0))
    if is_stage:
        required = float(((stamp.get("sections") or {}).get("checks") or {}).get("parity_min_fraction", required))
        evidence = recomputed(fw_dir)
        if evidence is not None and (abs(evidence[0] - frac) > 1e-12 or evidence[1] != n):
            error(f"parity FAILED: {path} says {frac * 100:.3f} % of {n} jets, but {CSIM_OUTPUTS} against "
                  f"{STUDENT}/{TEST_LOGITS} gives {evidence[0] * 100:.3f} % of {evidence[1]}")
            return 1
        if evidence is not None:
            frac, n = evidence
    if n > 0 and frac >= required:
        if frac == 1.0:
            at = f" up to {p['compared_at']} ({p.get('verdict')})" if p.get("compared_at", "output") != "output" else ""
            info(f"parity OK: C-simulation bit-exact on all {n} jets{at} ({path})")
        else:
            warn(f"parity accepted below 100 %: bit-exact on {frac * 100:.3f} % of {n} jets "
                 f"({p.get('n_mismatched', '?')} differ), at or above checks.parity_min_fraction = {required:g} "
                 f"that the firmware stage applied ({path})")
        return 0
    error(f"parity FAILED: bit-exact on {frac * 100:.3f} % of {n} jets (required {required * 100:g} %); "
          f"first differing layer: {p.get('first_mismatch_layer')} ({path})")
    return 1
