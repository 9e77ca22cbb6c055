"""`trigger-kd report firmware/*`: several models side by side."""
from __future__ import annotations

import json
from pathlib import Path

from ..atomic import write_text_atomic
from ..errors import TriggerKDError
from ..rundir import REPORT, REPORT_JSON, is_run_dir, read_json
from ..runcheck import require_chain
from .build import model_row
from .plots import resource_bars
from .tables import md_table


def comparison_path(out: Path) -> Path:
    """``--out``: a Markdown file, or an existing directory to write ``comparison.md`` into."""
    out = Path(out)
    if out.is_dir():
        return out / "comparison.md"
    if out.suffix.lower() != ".md":
        raise TriggerKDError(f"report --out {out}: give a .md file to write (or an existing directory)")
    if not out.parent.is_dir():
        raise TriggerKDError(f"report --out {out}: the folder {out.parent} does not exist")
    return out


HEADER = "# trigger_kd: models side by side"


def check_ours(out: Path) -> None:
    """The comparison replaces ``out`` (.md), its .json and its _resources.png: only when they are an earlier
    comparison's (the .md opens with our header), never a user's files of the same names."""
    files = [out, out.with_suffix(".json"), out.with_name(out.stem + "_resources.png")]
    present = [f for f in files if f.exists() or f.is_symlink()]
    if not present:
        return
    try:
        ours = out.is_file() and not out.is_symlink() and out.read_text(errors="replace").startswith(HEADER)
    except OSError:
        ours = False
    if not ours:
        raise TriggerKDError(f"report: {', '.join(map(str, present))} already exist{'s' if len(present) == 1 else ''} "
                             f"and {out} is not a comparison trigger-kd wrote; nothing was replaced: give "
                             "--out NEW.md (or a folder of its own)")


def compare_runs(run_dirs: list[Path], out: Path) -> Path:
    """Write the comparison to ``out`` (Markdown; JSON and the resource bars beside it). Every run directory the
    runner made must hold one consistent run: a report made before its student (or any stage it shows) was rerun
    is refused, naming the stage and the command that rebuilds it."""
    out = comparison_path(out)
    check_ours(out)
    reports = []
    for d in run_dirs:
        path = Path(d) / REPORT / REPORT_JSON
        if is_run_dir(Path(d)):
            require_chain(Path(d), [REPORT], "report")
        if path.is_file():
            data = read_json(path)
            if data is None:
                raise TriggerKDError(f"{path} is not a report (not a JSON object); rerun the report stage")
            reports.append(data)
    if not reports:
        raise TriggerKDError(
            f"no report.json under {', '.join(map(str, run_dirs))}; run `trigger-kd run CONFIG` (to the report stage) first"
        )
    rows = [model_row(r) for r in reports]
    res = {r["model"]: r["resources"] for r in reports if r.get("resources")}
    lines = [HEADER, "", md_table(rows), ""]
    lines += ["Each row's resource figures come from the source named in its last column; "
              "physics figures are on each run's own test jets (see each report.md).", ""]
    if res:
        bars = out.with_name(out.stem + "_resources.png")
        resource_bars(res, bars)
        lines += [f"![Resources]({bars.name})", ""]
    write_text_atomic(out, "\n".join(lines) + "\n")
    write_text_atomic(out.with_suffix(".json"), json.dumps({"models": rows}, indent=2))
    return out
