"""`trigger-kd report firmware/*`: several models side by side."""
from __future__ import annotations

import json
from pathlib import Path

from ..atomic import write_text_atomic
from ..errors import TriggerKDError
from ..rundir import REPORT, REPORT_JSON, is_run_dir, read_json
from ..runcheck import require_chain
from .build import model_row
from .multiclass import comparison_markdown, is_multiclass
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
    missing = []
    for d in run_dirs:  # N runs asked: N answered, or none (a comparison that leaves one out says nothing of it)
        path = Path(d) / REPORT / REPORT_JSON
        if is_run_dir(Path(d)):
            require_chain(Path(d), [REPORT], "report")
        if not path.is_file():
            missing.append(str(d))
            continue
        data = read_json(path)
        if data is None:
            raise TriggerKDError(f"{path} is not a report (not a JSON object); rerun the report stage")
        reports.append(data)
    if missing:
        raise TriggerKDError(
            f"no report.json under {', '.join(missing)} ({len(missing)} of the {len(run_dirs)} runs asked for); nothing "
            "was written: run `trigger-kd run CONFIG --run-dir DIR` (to the report stage) for each, or leave them out")
    rows = [model_row(r) for r in reports]
    res = {r["model"]: r["resources"] for r in reports if r.get("resources")}
    lines = [HEADER, ""]
    for kind in (False, True):  # binary and K-class taggers have different columns: a table each
        same = [row for row, r in zip(rows, reports) if is_multiclass(r.get("physics") or {}) == kind]
        if same:
            lines += [md_table(same), ""]
    multi = [r for r in reports if is_multiclass(r.get("physics") or {})]
    if multi:
        lines += comparison_markdown(multi)
    lines += ["Each row's resource figures come from the source named in its last column; "
              "physics figures are on each run's own test jets (see each report.md).", ""]
    if res:
        bars = out.with_name(out.stem + "_resources.png")
        resource_bars(res, bars)
        lines += [f"![Resources]({bars.name})", ""]
    write_text_atomic(out, "\n".join(lines) + "\n")
    write_text_atomic(out.with_suffix(".json"), json.dumps({"models": rows}, indent=2))
    return out
