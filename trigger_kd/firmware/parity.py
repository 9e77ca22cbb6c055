"""Bit-exact parity between firmware C-simulation and the quantised model, and agreement with the float twin.

Outputs are compared as integers on the output grid (value / LSB), never with a tolerance:
a design is exact on a jet when every output integer is equal.
"""
from __future__ import annotations

import numpy as np

from ..errors import TriggerKDError


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
