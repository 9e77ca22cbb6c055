"""Resource bars: % of the part per resource, one group per model, source in the title."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..atomic import atomic_path  # noqa: E402

KEYS = ("dsp", "lut", "ff", "bram_18k")


def resource_bars(resources: dict[str, dict], path: Path) -> None:
    """Bar chart of utilisation (% of the part) for each model; absolute counts when no % is known."""
    names = list(resources)
    use_pct = all((r.get("utilization_pct") or {}).get("lut") is not None for r in resources.values())
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(KEYS), 3.6))
    width = 0.8 / max(len(names), 1)
    x = np.arange(len(KEYS))
    for i, name in enumerate(names):
        r = resources[name]
        vals = [((r.get("utilization_pct") or {}).get(k) if use_pct else r.get(k)) for k in KEYS]
        vals = [np.nan if v is None else v for v in vals]
        bars = ax.bar(x + i * width, vals, width, label=name)
        for b, v, k in zip(bars, vals, KEYS):
            count = r.get(k)
            label = "n/a" if np.isnan(v) or count is None else f"{count:,}"
            ax.annotate(label, (b.get_x() + b.get_width() / 2, 0 if np.isnan(v) else v), ha="center",
                        va="bottom", fontsize=7)
    ax.set_xticks(x + width * (len(names) - 1) / 2, [k.upper().replace("_18K", "18k") for k in KEYS])
    ax.set_ylabel("% of part" if use_pct else "count")
    sources = sorted({str(r.get("source", "?")) for r in resources.values()})
    ax.set_title("; ".join(sources), fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
