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
    """Background rejection 1/eB (log scale) vs signal efficiency; curves = {name: (is_top, score)}."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    for name, (is_top, score) in curves.items():
        y = np.asarray(is_top).reshape(-1)
        s = np.asarray(score, dtype=np.float64).reshape(-1)
        fpr, tpr, _ = roc_curve(y, s)
        keep = (fpr > 0) & (tpr > 0)
        ax.plot(tpr[keep], 1.0 / fpr[keep], label=f"{name} (AUC {roc_auc_score(y, s):.4f})")
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
