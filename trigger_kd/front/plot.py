"""``front.png``: the validation figure (AUC; K classes: accuracy) against the da4ml LUT estimate, one curve per
family, the front marked."""
from __future__ import annotations

from pathlib import Path

from .sweep import score


def front_plot(rows: list[dict], front_ids: list[str], lines: dict[str, float], out: Path, title: str = "",
               picked: str | None = None, max_lut: float | None = None, software: str | None = None) -> Path:
    """The plot, written to ``out``; ``software``: the PNG's Software text (trigger-kd front's tag, outputs.py)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ok = [r for r in rows if r.get("lut") is not None and score(r) is not None and not r.get("error")]
    for fam in sorted({r["family"] for r in ok}):
        pts = sorted((r for r in ok if r["family"] == fam), key=lambda r: r["lut"])
        ax.plot([r["lut"] for r in pts], [score(r) for r in pts], "o-", alpha=0.8, label=fam)
    front = sorted((r for r in ok if r["id"] in front_ids), key=lambda r: r["lut"])
    if front:
        ax.step([r["lut"] for r in front], [score(r) for r in front], "k--", where="post", lw=1, label="front")
    for r in ok:
        if r["id"] == picked:
            ax.plot([r["lut"]], [score(r)], "r*", ms=16, label=f"picked: {r['id']}")
    styles = {"teacher": ("tab:gray", "-"), "jet_mass_inputs": ("tab:brown", ":"), "jet_mass_all": ("tab:olive", ":")}
    for name, auc in lines.items():
        colour, ls = styles.get(name, ("k", "-."))
        ax.axhline(auc, color=colour, ls=ls, lw=1.2, label=f"{name.replace('_', ' ')} ({auc:.3f})")
    if max_lut is not None:
        ax.axvline(max_lut, color="r", lw=0.8, alpha=0.5, label=f"budget {max_lut:g} LUT")
    if ok and max(r["lut"] for r in ok) / max(min(r["lut"] for r in ok), 1) > 8:
        ax.set_xscale("log")
    ax.set_xlabel("LUT (da4ml estimate)")
    metric = next((r.get("metric") for r in ok if r.get("metric")), "auc")
    ax.set_ylabel(f"validation {'AUC' if metric == 'auc' else metric} (quantised student)")
    ax.set_title(title or "accuracy per LUT")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # no point has results (all failed): no legend, and no warning about it
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(out, dpi=120, format="png", metadata={"Software": software} if software else None)
    plt.close(fig)
    return Path(out)
