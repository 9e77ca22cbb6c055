"""`trigger-kd report firmware/*`: several models side by side."""
from __future__ import annotations

import json
from pathlib import Path

from ..atomic import write_text_atomic
from ..errors import TriggerKDError
from ..rundir import REPORT, REPORT_JSON, is_run_dir, run_dir_above
from ..runcheck import require_chain
from .build import model_row
from .multiclass import comparison_markdown, is_multiclass
from .plots import resource_bars
from .records import DamagedRecord, read_report
from .tables import md_table


def comparison_path(out: Path) -> Path:
    """``--out``: a Markdown file, or an existing directory to write ``comparison.md`` into; never inside a run
    directory's stage folders (the next run of that stage replaces them, and what is in them)."""
    out = Path(out)
    if out.is_dir():
        out = out / "comparison.md"
    elif out.suffix.lower() != ".md":
        raise TriggerKDError(f"report --out {out}: give a .md file to write (or an existing directory)")
    elif not out.parent.is_dir():
        raise TriggerKDError(f"report --out {out}: the folder {out.parent} does not exist")
    run = run_dir_above(out.parent)
    if run is not None:
        raise TriggerKDError(f"report --out {out}: that is inside the run directory {run}, whose stage folders a rerun "
                             f"replaces with what is in them; write the comparison elsewhere (e.g. --out "
                             f"{run.parent / 'comparison.md'})")
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


def read_reports(run_dirs: list[Path]) -> list[dict]:
    """The report.json of every run asked for, each checked (``records.read_report``); N runs asked: N reports, or
    a refusal naming what is missing, damaged, named twice or no longer one consistent run."""
    seen: dict[Path, Path] = {}
    for d in map(Path, run_dirs):
        if d.resolve() in seen:
            raise TriggerKDError(f"report: {seen[d.resolve()]} and {d} are the same run directory; name each run once")
        seen[d.resolve()] = d
    missing = [str(d) for d in run_dirs if not (Path(d) / REPORT / REPORT_JSON).is_file()]
    if missing:
        raise TriggerKDError(
            f"no report.json under {', '.join(missing)} ({len(missing)} of the {len(run_dirs)} runs asked for); nothing "
            "was written: run `trigger-kd run CONFIG --run-dir DIR` (to the report stage) for each, or leave them out")
    reports = []
    for d in map(Path, run_dirs):
        if is_run_dir(d):
            require_chain(d, [REPORT], "report")
        try:
            reports.append(read_report(d / REPORT / REPORT_JSON))
        except DamagedRecord as e:
            rebuild = (f"rebuild it (`trigger-kd run CONFIG --run-dir {d} --from report`)" if is_run_dir(d) else
                       f"{d} is not a run directory: put there a report trigger-kd wrote")
            raise DamagedRecord(f"{e}; nothing was written: {rebuild}, or leave that run out") from None
    return reports


def labelled(reports: list[dict], run_dirs: list[Path]) -> list[dict]:
    """The reports with the name each row shows: the model, with its run directory where two runs share a name."""
    names = [r["model"] for r in reports]
    return [{**r, "model": f"{r['model']} ({d})" if names.count(r["model"]) > 1 else r["model"]}
            for r, d in zip(reports, run_dirs)]


def compare_runs(run_dirs: list[Path], out: Path) -> Path:
    """Write the comparison to ``out`` (Markdown; JSON and the resource bars beside it). Every run directory the
    runner made must hold one consistent run: a report made before its student (or any stage it shows) was rerun
    is refused, naming the stage and the command that rebuilds it; a damaged report.json is refused, naming it."""
    out = comparison_path(out)
    check_ours(out)
    reports = labelled(read_reports(run_dirs), run_dirs)
    rows = [model_row(r) for r in reports]
    res = {r["model"]: r["resources"] for r in reports if r.get("resources")}  # every run's bars: labels are unique
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
    try:
        if res:
            bars = out.with_name(out.stem + "_resources.png")
            resource_bars(res, bars)
            lines += [f"![Resources]({bars.name})", ""]
        write_text_atomic(out, "\n".join(lines) + "\n")
        write_text_atomic(out.with_suffix(".json"), json.dumps(
            {"models": [{**row, "run_dir": str(d)} for row, d in zip(rows, run_dirs)]}, indent=2))
    except OSError as e:
        raise TriggerKDError(f"report --out {out}: cannot write there ({e.strerror or e}); give --out a .md file in a "
                             "folder you can write") from None
    return out
