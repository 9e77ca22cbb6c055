"""ROC and robustness plots (matplotlib, Agg backend), saved atomically."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..atomic import atomic_path  # noqa: E402


def _save(fig, path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def roc_plot(curves: dict, path) -> None:
    """Background rejection 1/eB (log scale) vs signal efficiency; curves = {name: (is_signal, score)}."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    for name, (is_signal, score) in curves.items():
        y = np.asarray(is_signal).reshape(-1)
        s = np.asarray(score, dtype=np.float64).reshape(-1)
        fpr, tpr, _ = roc_curve(y, s)
        keep = (fpr > 0) & (tpr > 0)
        ax.plot(tpr[keep], 1.0 / fpr[keep], ls=":" if name.startswith("jet mass") else "-",
                label=f"{name} (AUC {roc_auc_score(y, s):.4f})")
    ax.set_yscale("log")
    ax.set_xlim(0, 1)
    ax.set_xlabel("signal efficiency $\\epsilon_S$ (top)")
    ax.set_ylabel("background rejection $1/\\epsilon_B$ (QCD)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def robustness_plot(rob: dict, path) -> None:
    """Accuracy vs boost beta and vs smearing sigma, one line per model; rob = {name: robustness dict}."""
    fig, (ax_b, ax_s) = plt.subplots(1, 2, figsize=(9, 3.8), sharey=True)
    for name, r in rob.items():
        r = r or {}
        boost, smear = r.get("boost") or [], r.get("smear") or []
        ax_b.plot([p["beta"] for p in boost], [p["accuracy"] for p in boost], "o-", label=name)
        ax_s.plot([p["sigma"] for p in smear], [p["accuracy"] for p in smear], "o-", label=name)
    axis = next((r.get("boost_axis") for r in rob.values() if r), "x")
    ax_b.set_xlabel(f"boost $\\beta$ along {axis}")
    ax_s.set_xlabel("4-vector smearing $\\sigma$")
    ax_b.set_ylabel("accuracy")
    for ax in (ax_b, ax_s):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def epoch_curve_plot(models: dict, path) -> None:
    """Per epoch, one colour per model: train (dashed) and validation (solid) loss, validation AUC (the best
    epoch, whose weights are kept, marked), learning rate; models = {name: fit() result (``history``, ``best_epoch``)}."""
    fig, (ax_l, ax_a, ax_r) = plt.subplots(1, 3, figsize=(12, 3.6))
    for i, (name, m) in enumerate(models.items()):
        h, colour = m.get("history") or [], f"C{i}"
        ep = [r["epoch"] for r in h]
        ax_l.plot(ep, [r.get("train_loss") for r in h], ls="--", color=colour, label=f"{name} train")
        ax_l.plot(ep, [np.nan if r.get("val_loss") is None else r["val_loss"] for r in h], color=colour,
                  label=f"{name} val")
        auc = [np.nan if r.get("val_auc") is None else r["val_auc"] for r in h]
        ax_a.plot(ep, auc, color=colour, label=f"{name} (best epoch {m.get('best_epoch')} of {len(h)})")
        best = next((r for r in h if r["epoch"] == m.get("best_epoch")), None)
        if best is not None and best.get("val_auc") is not None:
            ax_a.plot([best["epoch"]], [best["val_auc"]], "*", color=colour, ms=10)
        ax_r.plot(ep, [r.get("lr") for r in h], color=colour, label=name)
    ax_l.set_ylabel("loss (train: KD + SEAL; val: cross entropy)")
    ax_a.set_ylabel("validation AUC")
    ax_r.set_ylabel("learning rate (last step of the epoch)")
    ax_r.set_yscale("log")
    for ax in (ax_l, ax_a, ax_r):
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6)
    fig.tight_layout()
    _save(fig, path)
