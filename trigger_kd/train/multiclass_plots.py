"""Multi-class plots (matplotlib, Agg backend), saved atomically: confusion matrix, one-vs-rest ROCs."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..atomic import atomic_path  # noqa: E402
from ..errors import TriggerKDError  # noqa: E402
from .multiclass import log_odds  # noqa: E402

_EXTRA_STYLES = ("--", ":", "-.")


def _save(fig, path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def confusion_plot(confusion: dict, path, title: str) -> None:
    """The confusion matrix of ``multiclass_metrics(...)["confusion"]``: row = true class, column = predicted class;
    colour and upper number = fraction of the true class's jets (each row sums to 1, the diagonal is the per-class
    efficiency), lower number = jet count."""
    names = list(confusion["classes"])
    counts = np.asarray(confusion["counts"], dtype=np.int64)
    rows = counts.sum(axis=1, keepdims=True)
    frac = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    k = len(names)
    fig, ax = plt.subplots(figsize=(1.2 * k + 2.2, 1.1 * k + 1.6))
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{frac[i, j]:.2f}\n({counts[i, j]})", ha="center", va="center", fontsize=8,
                    color="white" if frac[i, j] > 0.5 else "black")
    ax.set_xticks(range(k), names)
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted class (highest output)")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label="fraction of the true class's jets")
    fig.tight_layout()
    _save(fig, path)


def _roc(ax, y: np.ndarray, logits: np.ndarray, c: int, k: int, label: str, **style) -> float | None:
    from sklearn.metrics import roc_auc_score, roc_curve

    pos = y == c
    if not pos.any() or pos.all():
        return None
    s = log_odds(logits, c, [j for j in range(k) if j != c])
    fpr, tpr, _ = roc_curve(pos, s)
    keep = (fpr > 0) & (tpr > 0)
    auc = float(roc_auc_score(pos, s))
    ax.plot(tpr[keep], 1.0 / fpr[keep], **style, label=f"{label} (AUC {auc:.4f})")
    return auc


def per_class_roc_plot(y, logits, outputs, path, extra: dict | None = None, title: str = "") -> None:
    """One-vs-rest ROC of each class (its jets against all others, scored by its softmax probability): background
    rejection 1/eB (log scale) vs signal efficiency eS, one colour per class, solid for the model; ``extra`` =
    {name: (y, logits)} of other taggers (e.g. baselines) with the same outputs, dashed / dotted in the class's
    colour; ``title`` goes above the default one. Classes without jets in the labels are not drawn."""
    names = list(outputs)
    k = len(names)
    fig, ax = plt.subplots(figsize=(6.0, 4.6))
    curves = []
    for i, (name, (yy, zz)) in enumerate([("", (y, logits)), *(extra or {}).items()]):
        yy, zz = np.asarray(yy).reshape(-1).astype(np.int64), np.asarray(zz, dtype=np.float64)
        if zz.shape != (len(yy), k):
            raise TriggerKDError(f"ROC plot{' of ' + name if name else ''}: need logits ({len(yy)}, {k}) for outputs "
                                 f"{names}, got {zz.shape}")
        curves.append((f", {name}" if name else "", yy, zz, _EXTRA_STYLES[(i - 1) % len(_EXTRA_STYLES)] if i else "-"))
    for c, cls in enumerate(names):
        for suffix, yy, zz, ls in curves:
            _roc(ax, yy, zz, c, k, color=f"C{c}", ls=ls, lw=1.2, label=f"{cls}{suffix}")
    ax.set_yscale("log")
    ax.set_xlim(0, 1)
    ax.set_xlabel("signal efficiency $\\epsilon_S$ (the class's jets)")
    ax.set_ylabel("background rejection $1/\\epsilon_B$ (all other jets)")
    ax.set_title(f"{title}\none-vs-rest ROC per class" if title else "one-vs-rest ROC per class", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=6, ncol=2 if len(curves) * k > 8 else 1)
    fig.tight_layout()
    _save(fig, path)
