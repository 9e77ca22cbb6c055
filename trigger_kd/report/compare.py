"""`trigger-kd report firmware/*`: several models side by side."""
from __future__ import annotations

import json
from pathlib import Path

from ..atomic import write_text_atomic
from ..errors import TriggerKDError
from .build import model_row
from .plots import resource_bars
from .tables import md_table


def compare_runs(run_dirs: list[Path], out: Path) -> Path:
    """Write the comparison to ``out`` (Markdown; JSON and the resource bars beside it)."""
    reports = []
    for d in run_dirs:
        path = Path(d) / "report" / "report.json"
        if path.is_file():
            reports.append(json.loads(path.read_text()))
    if not reports:
        raise TriggerKDError(
            f"no report.json under {', '.join(map(str, run_dirs))}; run `trigger-kd run CONFIG` (to the report stage) first"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = [model_row(r) for r in reports]
    res = {r["model"]: r["resources"] for r in reports if r.get("resources")}
    lines = ["# trigger_kd: models side by side", "", md_table(rows), ""]
    lines += ["Each row's resource figures come from the source named in its last column; "
              "physics figures are on each run's own test jets (see each report.md).", ""]
    if res:
        bars = out.with_name(out.stem + "_resources.png")
        resource_bars(res, bars)
        lines += [f"![Resources]({bars.name})", ""]
    write_text_atomic(out, "\n".join(lines) + "\n")
    write_text_atomic(out.with_suffix(".json"), json.dumps({"models": rows}, indent=2))
    return out
