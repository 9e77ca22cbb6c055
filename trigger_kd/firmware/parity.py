"""Bit-exact parity between firmware C-simulation and the quantised model, and agreement with the float twin.

Outputs are compared as integers on the output grid (value / LSB), never with a tolerance:
a design is exact on a jet when every output integer is equal.
"""
from __future__ import annotations

import numpy as np

from ..errors import TriggerKDError


def on_grid(values: np.ndarray, lsb: float) -> np.ndarray:
    """Finite values -> integers on the grid; raises if a value is not on the grid (a wrong LSB)."""
    q = np.asarray(values, dtype=np.float64) / lsb
    r = np.rint(q)
    if q.size and np.max(np.abs(q - r)) > 1e-6:
        raise TriggerKDError(f"values are not on the fixed-point grid with LSB {lsb:g} (max offset "
                             f"{np.max(np.abs(q - r)):.3g} LSB): the output type does not match the model")
    return r.astype(np.int64)


def _rows(got: np.ndarray, want: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both as (jets, outputs); refuses zero jets, outputs of another shape and a reference that is not finite."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    n = len(want) if want.ndim else 0
    if n == 0:
        raise TriggerKDError("parity on zero jets proves nothing: there are no outputs to compare (an empty test "
                             "set); rerun the data and student stages")
    if got.size != want.size or not got.ndim or len(got) != n:
        raise TriggerKDError(f"the simulated outputs have shape {got.shape}, the model's {want.shape}: they are "
                             f"not outputs of the same jets, so there is no parity to measure")
    got, want = got.reshape(n, -1), want.reshape(n, -1)
    if not np.isfinite(want).all():
        raise TriggerKDError(f"the model's reference outputs hold {int((~np.isfinite(want)).sum())} NaN or infinite "
                             f"values: no output can be judged against them; rerun the student stage")
    return got, want


def compare_fixed(got: np.ndarray, want: np.ndarray, lsb: float, strict: bool = True) -> dict:
    """Row-wise integer comparison of simulated outputs ``got`` with the model's ``want`` on the grid of LSB ``lsb``:
    the one comparison behind every parity verdict (C-simulation, RTL simulation, imported models).

    No verdict (TriggerKDError) for zero jets, outputs of another shape, a NaN or infinite reference value, or
    (``strict``) a value off the grid. A NaN or infinite simulated value (an undefined output) makes its jet differ
    and is counted in ``undefined_outputs`` (jets); the largest difference is over the defined values (None if none).
    ``strict=False`` (a model trained elsewhere, whose values may lie off the firmware's grid):
    rows are exact when the values are equal, and the difference is measured in LSB as a float.
    """
    got, want = _rows(got, want)
    defined = np.isfinite(got)
    if strict:
        wi = on_grid(want, lsb)
        gi = np.zeros_like(wi)
        gi[defined] = on_grid(got[defined], lsb)
    else:
        gi, wi = np.where(defined, got, 0.0) / lsb, want / lsb
    exact = np.all((gi == wi) & defined, axis=1)
    diff, diff_lsb = np.abs(got - want)[defined], np.abs(gi - wi)[defined]
    return {
        "n_jets": int(len(want)),
        "bit_exact_fraction": float(exact.mean()),
        "n_mismatched": int((~exact).sum()),
        "undefined_outputs": int((~defined).any(axis=1).sum()),  # jets with an undefined output
        "max_abs_diff": float(diff.max()) if diff.size else None,
        "max_abs_diff_lsb": (int if strict else float)(diff_lsb.max()) if diff.size else None,
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


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def float_agreement(q_logits: np.ndarray, f_logits: np.ndarray, labels: np.ndarray, working_point: float = 0.5) -> dict:
    """How the quantised model (== firmware when exact) compares with its float twin.

    Binary (K <= 2 outputs): decisions are signal score > ``working_point`` (``labels``: is_signal), AUCs of the
    signal score. K >= 3 classes (``labels``: the class index): decisions are the class index (argmax, first
    highest), score differences over all K softmax probabilities, accuracies, and one-vs-rest macro AUCs when
    every class is present."""
    z = np.asarray(q_logits, dtype=np.float64)
    if z.ndim == 2 and z.shape[1] >= 3:
        return _multiclass_agreement(z, np.asarray(f_logits, dtype=np.float64), labels)
    from sklearn.metrics import roc_auc_score

    qs, fs = _signal_score(q_logits), _signal_score(f_logits)
    y = np.asarray(labels).astype(int)
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


def _multiclass_agreement(q: np.ndarray, f: np.ndarray, labels: np.ndarray) -> dict:
    from sklearn.metrics import roc_auc_score

    from .outputs import TIE_RULE, class_index

    y = np.asarray(labels).astype(int).reshape(-1)
    k, n = q.shape[1], len(y)
    pq, pf = (_softmax(q), _softmax(f)) if n else (q, f)
    all_present = n > 0 and set(np.unique(y)) == set(range(k))

    def auc(p):
        return float(roc_auc_score(y, p, multi_class="ovr", average="macro")) if all_present else None

    return {
        "n_jets": int(n),
        "n_classes": int(k),
        "decision": f"class index ({TIE_RULE})",
        "decision_agreement": float(np.mean(class_index(q) == class_index(f))) if n else None,
        "max_score_diff": float(np.max(np.abs(pq - pf))) if n else None,
        "mean_score_diff": float(np.mean(np.max(np.abs(pq - pf), axis=1))) if n else None,
        "accuracy_quantized": float(np.mean(class_index(q) == y)) if n else None,
        "accuracy_float": float(np.mean(class_index(f) == y)) if n else None,
        "auc_quantized": auc(pq),  # one-vs-rest, macro average over the K classes
        "auc_float": auc(pf),
    }


def parity_report(csim: np.ndarray, q_logits: np.ndarray, lsb: float, float_block: dict | None = None,
                  backend: str = "", source: str = "hls4ml C-simulation (g++)", output: str = "logits") -> dict:
    """Firmware outputs against the quantised model on the same jets: the K logits bit for bit on the output grid
    (``output`` logits), or the class index (``output`` argmax: ``outputs.argmax_parity``). Either way no verdict on
    zero jets, outputs of another shape or a reference that is not finite (``compare_fixed``)."""
    _rows(csim, q_logits)
    if output == "argmax":
        from .outputs import argmax_parity

        report = argmax_parity(csim, q_logits, lsb)
    elif output == "logits":
        report = compare_fixed(csim, q_logits, lsb)
        report["output"] = "logits"
    else:
        raise TriggerKDError(f"parity is judged on the logits or the class index (argmax), not on {output!r}")
    report.update({
        "source": f"{source}{', ' + backend + ' backend' if backend else ''}",
        "compared_with": "quantised model outputs on the same jets",
        "first_mismatch_layer": None,
    })
    if float_block is not None:
        report["float_agreement"] = float_block
    return report
