"""Bit-exact parity between firmware C-simulation and the quantised model, and agreement with the float twin.

Outputs are compared as integers on the output grid (value / LSB), never with a tolerance:
a design is exact on a jet when every output integer is equal.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..console import error, info, warn
from ..errors import TriggerKDError
from ..rundir import PARITY


def on_grid(values: np.ndarray, lsb: float) -> np.ndarray:
    """Values -> integers on the grid; raises if a value is not on the grid (a wrong LSB)."""
    q = np.asarray(values, dtype=np.float64) / lsb
    r = np.rint(q)
    if q.size and np.max(np.abs(q - r)) > 1e-6:
        raise TriggerKDError(f"values are not on the fixed-point grid with LSB {lsb:g} (max offset "
                             f"{np.max(np.abs(q - r)):.3g} LSB): the output type does not match the model")
    return r.astype(np.int64)


def compare_fixed(got: np.ndarray, want: np.ndarray, lsb: float, strict: bool = True) -> dict:
    """Row-wise integer comparison of two output arrays on the same grid.

    ``strict=False`` (a model trained elsewhere, whose values may lie off the firmware's grid):
    rows are exact when the values are equal, and the difference is measured in LSB as a float.
    """
    got = np.asarray(got, dtype=np.float64).reshape(len(want), -1)
    want = np.asarray(want, dtype=np.float64).reshape(len(want), -1)
    gi, wi = (on_grid(got, lsb), on_grid(want, lsb)) if strict else (got / lsb, want / lsb)
    exact = np.all(gi == wi, axis=1)
    diff = np.abs(got - want)
    return {
        "n_jets": int(len(want)),
        "bit_exact_fraction": float(exact.mean()) if len(exact) else 0.0,
        "n_mismatched": int((~exact).sum()),
        "max_abs_diff": float(diff.max()) if diff.size else 0.0,
        "max_abs_diff_lsb": (int if strict else float)(np.abs(gi - wi).max()) if diff.size else 0,
        "output_lsb": float(lsb),
        "first_mismatched_jets": [int(i) for i in np.flatnonzero(~exact)[:10]],
    }


def _signal_score(logits: np.ndarray) -> np.ndarray:
    """Softmax probability of the signal class from (N, 2) logits; a single-output model's (N,) or (N, 1)
    output is its score already."""
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim == 2 and z.shape[1] == 2:
        from ..train.metrics import signal_score

        return signal_score(z)
    return z.reshape(len(z))


def float_agreement(q_logits: np.ndarray, f_logits: np.ndarray, is_signal: np.ndarray, working_point: float = 0.5) -> dict:
    """How the quantised model (== firmware when exact) compares with its float twin."""
    from sklearn.metrics import roc_auc_score

    qs, fs = _signal_score(q_logits), _signal_score(f_logits)
    y = np.asarray(is_signal).astype(int)
    both = len(np.unique(y)) == 2
    return {
        "n_jets": int(len(y)),
        "working_point": working_point,
        "decision_agreement": float(np.mean((qs > working_point) == (fs > working_point))) if len(y) else None,
        "max_score_diff": float(np.max(np.abs(qs - fs))) if len(y) else None,
        "mean_score_diff": float(np.mean(np.abs(qs - fs))) if len(y) else None,
        "auc_quantized": float(roc_auc_score(y, qs)) if both else None,
        "auc_float": float(roc_auc_score(y, fs)) if both else None,
    }


def parity_report(csim: np.ndarray, q_logits: np.ndarray, lsb: float, float_block: dict | None = None,
                  backend: str = "", source: str = "hls4ml C-simulation (g++)") -> dict:
    report = compare_fixed(csim, q_logits, lsb)
    report.update({
        "source": f"{source}{', ' + backend + ' backend' if backend else ''}",
        "compared_with": "quantised model outputs on the same jets",
        "first_mismatch_layer": None,
    })
    if float_block is not None:
        report["float_agreement"] = float_block
    return report


def stale_reasons(fw_dir: Path) -> list[str]:
    """Why ``fw_dir/parity.json`` does not describe the student and export now in its run directory."""
    from ..rundir import last_attempt_failed, read_stamp

    fw_dir = Path(fw_dir)
    stamp = read_stamp(fw_dir)
    if stamp is None:  # not a pipeline stage directory (import-qonnx writes parity.json on its own)
        return []
    run_dir = fw_dir.parent
    reasons = []
    for up, built_from in (stamp.get("upstream") or {}).items():
        now = read_stamp(run_dir / up)
        if now is None:
            reasons.append(f"the {up} stage has no completed output in {run_dir}")
        elif now.get("stamp") != built_from:
            reasons.append(f"the {up} stage was rerun (finished {now.get('finished')}) after this firmware was built "
                           f"(from {up} stamp {built_from[:12]}, now {str(now.get('stamp'))[:12]})")
    failed = last_attempt_failed(fw_dir)
    if failed is not None:
        reasons.append(f"the latest {fw_dir.name} run did not finish ({failed.get('error')}, {failed.get('time')}; "
                       f"see {fw_dir.name}.failed/), so this parity.json is from an earlier run")
    return reasons


def check_parity(fw_dir: Path) -> int:
    """`trigger-kd check-parity`: 0 only when parity.json is current and meets its threshold.

    The threshold is ``checks.parity_min_fraction`` as the firmware stage applied it (recorded in
    parity.json as ``required_fraction``; 1.0, every jet bit-exact, when absent).
    """
    fw_dir = Path(fw_dir)
    path = fw_dir / PARITY
    if not path.is_file():
        raise TriggerKDError(f"{path} not found: run the firmware stage first "
                             "(`trigger-kd run CONFIG --to firmware --run-dir RUN_DIR`)")
    try:
        p = json.loads(path.read_text())
        frac, n = float(p["bit_exact_fraction"]), int(p["n_jets"])
        required = float(p.get("required_fraction", 1.0))
    except (ValueError, KeyError, TypeError) as exc:
        raise TriggerKDError(f"{path} is not a parity report ({exc}); rerun the firmware stage") from exc
    stale = stale_reasons(fw_dir)
    if stale:
        error(f"parity STALE: {path} does not belong to the current student and export: {'; '.join(stale)}. "
              f"Rerun `trigger-kd run CONFIG --from firmware --run-dir {fw_dir.parent}` with the run's config")
        return 1
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
