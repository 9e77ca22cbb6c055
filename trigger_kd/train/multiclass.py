"""Multi-class tagging metrics: accuracy, one-vs-rest AUCs, confusion matrix, signal-vs-QCD rejections.

For a tagger with K outputs (logits, class k = ``outputs[k]``), what each figure means:

* ``accuracy``: fraction of jets whose highest logit is their true class (numpy's argmax: on a tie, the first
  of the highest outputs wins).
* ``per_class[name]["auc"]``: one-vs-rest ROC AUC of the softmax probability p_k (jets of class k against all
  other jets). Computed on the log-odds ``z_k - logsumexp(z_j, j != k)`` = log(p_k / (1 - p_k)), a monotone
  function of p_k (so the same ROC) that does not round to 0 or 1 for large logits. None (with ``auc_note``) for
  a class with no jet in ``y``.
* ``auc``: macro average of those AUCs over the classes present in ``y``.
* ``per_class[name]["efficiency"]``: fraction of the class's jets classified as it (recall);
  ``purity``: fraction of the jets classified as it that are of that class (precision). None when undefined.
* ``confusion``: counts of jets by true class (rows) and predicted class (columns).
* ``rejection[signal]``: the trigger figure. The standard multi-class tagger discriminant
  ``D = p_sig / (p_sig + sum of p_qcd)`` over the QCD outputs (e.g. top vs gluon + q), on the jets whose true class is
  the signal (signal) or one of the QCD outputs (background); jets of other classes are left out. ``rej30`` /
  ``rej50`` = 1/eB at signal efficiency 30 / 50 % on the ROC of D (interpolated as ``metrics.binary_metrics`` does),
  None with a ``rejNN_note`` when no background jet passes (eB = 0); ``auc`` of D. D is evaluated through its
  log-odds ``z_sig - logsumexp(z_qcd)`` (same ROC, no rounding to 1). For K = 2, signal = [1], qcd = [0], D is
  the binary signal score and the figures equal ``binary_metrics``'.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import TriggerKDError
from .metrics import background_efficiency


def _check(y, logits, outputs: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    names = [str(o) for o in outputs]
    k = len(names)
    if k < 2 or len(set(names)) != k:
        raise TriggerKDError(f"multi-class metrics need at least 2 distinct output names, got {names}")
    z = np.asarray(logits, dtype=np.float64)
    lab = np.asarray(y)
    if lab.ndim != 1 or z.ndim != 2 or z.shape != (len(lab), k):
        raise TriggerKDError(f"need labels (N,) and logits (N, {k}) for outputs {names}, got labels {lab.shape} and "
                             f"logits {z.shape}")
    if len(lab) == 0:
        raise TriggerKDError("no jets to measure: the labels and logits are empty")
    if not np.isfinite(z).all():
        raise TriggerKDError(f"{int((~np.isfinite(z)).any(axis=1).sum())} jets have NaN or infinite logits: check the "
                             "model outputs")
    if lab.dtype.kind not in "iub":
        if lab.dtype.kind != "f" or not np.isfinite(lab).all() or not np.array_equal(lab, np.round(lab)):
            raise TriggerKDError(f"labels must be integer class indices 0..{k - 1}, got dtype {lab.dtype}")
    lab = lab.astype(np.int64)
    bad = (lab < 0) | (lab >= k)
    if bad.any():
        raise TriggerKDError(f"{int(bad.sum())} labels are outside 0..{k - 1} (e.g. {int(lab[bad][0])}): labels must "
                             f"index the outputs {names}")
    if len(np.unique(lab)) < 2:
        raise TriggerKDError(f"metrics need jets of at least 2 classes, got {len(lab)} jets of "
                             f"{names[int(lab[0])]!r} only")
    return lab, z, names


def _indices(idx: Sequence[int], k: int, what: str) -> list[int]:
    out = [int(i) for i in idx]
    if any(i < 0 or i >= k for i in out) or len(set(out)) != len(out):
        raise TriggerKDError(f"{what} outputs {list(idx)} must be distinct indices in 0..{k - 1}")
    return out


def log_odds(logits: np.ndarray, k: int, against: Sequence[int]) -> np.ndarray:
    """(N,) ``z_k - logsumexp(z[against])`` = log(p_k / sum of p_j over ``against``), finite for finite logits."""
    from scipy.special import logsumexp

    z = np.asarray(logits, dtype=np.float64)
    return z[:, k] - logsumexp(z[:, list(against)], axis=1)


def _rejection(lab: np.ndarray, z: np.ndarray, s: int, qcd: list[int], names: list[str]) -> dict:
    from sklearn.metrics import roc_auc_score, roc_curve

    keep = (lab == s) | np.isin(lab, qcd)
    ys, score = (lab[keep] == s).astype(np.int64), log_odds(z[keep], s, qcd)
    p = " + ".join(f"p_{names[q]}" for q in qcd)
    out = {"against": [names[q] for q in qcd],
           "score": f"p_{names[s]} / (p_{names[s]} + {p}) of the softmax outputs; jets of other classes left out",
           "n_signal": int(ys.sum()), "n_background": int((ys == 0).sum())}
    if out["n_signal"] == 0 or out["n_background"] == 0:
        note = (f"no {names[s]} jets" if out["n_signal"] == 0 else f"no {'/'.join(out['against'])} jets") + \
               " among the labels: rejection undefined"
        return {**out, "auc": None, "rej30": None, "rej50": None, "note": note}
    fpr, tpr, _ = roc_curve(ys, score)
    out["auc"] = float(roc_auc_score(ys, score))
    for pct in (30, 50):
        eb = background_efficiency(fpr, tpr, pct / 100)
        out[f"rej{pct}"] = 1.0 / eb if eb > 0 else None
        if eb <= 0:
            out[f"rej{pct}_note"] = (f"no {'/'.join(out['against'])} jet passes at eS = {pct}% (eB = 0 on "
                                     f"{out['n_background']} jets): 1/eB is unbounded; use more test jets")
    return out


def multiclass_metrics(y, logits, outputs: Sequence[str], signal: Sequence[int] = (),
                       qcd: Sequence[int] = ()) -> dict:
    """JSON-able figures of a K-output tagger (see the module docstring): ``accuracy``, ``auc``, ``per_class``,
    ``confusion``, ``rejection`` (one entry per index in ``signal``, against the outputs in ``qcd``), ``n_jets``.

    y: (N,) class indices into ``outputs``; logits: (N, K) finite reals (any scale: only softmax ratios matter);
    signal, qcd: output indices (e.g. ``Task.signal_outputs()``, ``Task.qcd_outputs()``). Raises TriggerKDError on
    NaN/inf logits, mismatched shapes, labels outside 0..K-1, or fewer than 2 classes among the labels.
    """
    from sklearn.metrics import roc_auc_score

    lab, z, names = _check(y, logits, outputs)
    k = len(names)
    sig, bkg = _indices(signal, k, "signal"), _indices(qcd, k, "qcd")
    if set(sig) & set(bkg):
        raise TriggerKDError(f"signal outputs {sig} and qcd outputs {bkg} overlap")

    pred = np.argmax(z, axis=1)
    counts = np.bincount(lab * k + pred, minlength=k * k).reshape(k, k)
    per_class, aucs = {}, []
    for c, name in enumerate(names):
        n_c, n_pred = int(counts[c].sum()), int(counts[:, c].sum())
        entry = {"auc": None, "n_jets": n_c, "efficiency": counts[c, c] / n_c if n_c else None,
                 "purity": counts[c, c] / n_pred if n_pred else None}
        if n_c:
            entry["auc"] = float(roc_auc_score(lab == c, log_odds(z, c, [j for j in range(k) if j != c])))
            aucs.append(entry["auc"])
        else:
            entry["auc_note"] = f"no {name} jets among the labels: no one-vs-rest AUC (left out of the macro AUC)"
        if n_c and not n_pred:
            entry["purity_note"] = f"no jet is classified as {name}"
        per_class[name] = {key: (float(v) if isinstance(v, np.floating) else v) for key, v in entry.items()}

    out = {"accuracy": float(np.mean(pred == lab)), "auc": float(np.mean(aucs)),
           "auc_classes": [n for n in names if per_class[n]["auc"] is not None],
           "per_class": per_class,
           "confusion": {"classes": names, "counts": counts.astype(int).tolist()},
           "rejection": {names[s]: _rejection(lab, z, s, bkg, names) for s in sig} if bkg else {},
           "n_jets": int(len(lab))}
    if sig and not bkg:
        out["rejection_note"] = "no QCD output among the outputs: signal rejections are not measured"
    return out
