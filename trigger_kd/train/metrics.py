"""Tagging metrics: accuracy, AUC, background rejection 1/eB at fixed signal efficiency, robustness curves."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..errors import TriggerKDError


def signal_score(logits) -> np.ndarray:
    """(N, 2) logits -> (N,) float64 softmax probability of class 1 (the signal: top, W or Z), stable for any logit size."""
    from scipy.special import expit

    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] != 2:
        raise TriggerKDError(f"signal_score needs (N, 2) logits (background, signal), got shape {z.shape}")
    return expit(z[:, 1] - z[:, 0])  # = softmax(z)[:, 1]


def _check(is_signal, score) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(is_signal).reshape(-1).astype(np.int64)
    s = np.asarray(score, dtype=np.float64).reshape(-1)
    if y.shape != s.shape:
        raise TriggerKDError(f"{len(y)} labels but {len(s)} scores: pass one score per jet")
    if not np.isin(y, (0, 1)).all():
        raise TriggerKDError("labels must be 0 (QCD) or 1 (top)")
    if not np.isfinite(s).all():
        raise TriggerKDError(f"{int((~np.isfinite(s)).sum())} scores are NaN or infinite: check the model outputs")
    if y.min(initial=1) == y.max(initial=0):
        raise TriggerKDError(f"metrics need both top and QCD jets, got {len(y)} jets of one class only")
    return y, s


def background_efficiency(fpr: np.ndarray, tpr: np.ndarray, eff_s: float) -> float:
    """eB at signal efficiency eff_s, linearly interpolated on the ROC (lowest eB where the ROC is flat)."""
    k = int(np.searchsorted(tpr, eff_s, side="left"))
    if k >= len(tpr):
        return float(fpr[-1])
    if tpr[k] == eff_s or k == 0:
        return float(fpr[k])
    t0, t1, f0, f1 = tpr[k - 1], tpr[k], fpr[k - 1], fpr[k]
    return float(f0 + (eff_s - t0) * (f1 - f0) / (t1 - t0))


def binary_metrics(is_signal, score, threshold: float = 0.5) -> dict:
    """accuracy (score > threshold is top), AUC, rej30/rej50 = 1/eB at eS = 30/50 %, class counts.

    A rejection is None when no background jet passes at that signal efficiency (eB = 0);
    `rejNN_note` then says so.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    y, s = _check(is_signal, score)
    fpr, tpr, _ = roc_curve(y, s)
    out = {"accuracy": float(np.mean((s > threshold) == (y == 1))), "auc": float(roc_auc_score(y, s))}
    for pct in (30, 50):
        eb = background_efficiency(fpr, tpr, pct / 100)
        out[f"rej{pct}"] = 1.0 / eb if eb > 0 else None
        if eb <= 0:
            out[f"rej{pct}_note"] = (f"no QCD jet passes at eS = {pct}% (eB = 0 on {int((y == 0).sum())} QCD jets): "
                                     "1/eB is unbounded; use more test jets")
    out.update(n_jets=int(len(y)), n_top=int(y.sum()), n_qcd=int((y == 0).sum()))
    return out


def robustness(score_fn: Callable[[np.ndarray], np.ndarray], constituents: np.ndarray, is_signal,
               betas: Sequence[float], smear: Sequence[float], seed: int = 0,
               metrics: Callable[[np.ndarray, np.ndarray], dict] | None = None) -> dict:
    """Accuracy and AUC of score_fn (constituents -> top score) under boosts along x and pT smearing. ``metrics``
    (labels, score_fn's output) -> {accuracy, auc, ...}: :func:`binary_metrics` unless given (a K-class tagger's:
    ``train/tagger.py`` tagger_metrics on its logits, the macro one-vs-rest AUC).

    Each smearing level draws from a fresh generator seeded with `seed`, so the levels share one
    set of normal draws scaled by sigma.
    """
    from ..data.boost import boost, smear_pt

    def point(c):
        m = (metrics or binary_metrics)(is_signal, score_fn(c))
        return {"accuracy": m["accuracy"], "auc": m["auc"]}

    return {
        "boost": [{"beta": float(b), **point(boost(constituents, b, "x"))} for b in betas],
        "smear": [{"sigma": float(s), **point(smear_pt(constituents, s, np.random.default_rng(seed)))}
                  for s in smear],
        "n_jets": int(len(constituents)),
        "boost_axis": "x",
    }
