"""Where a run sits: the taggers built beside it (sibling run directories under the same folder, e.g.
``firmware/mlp_kd`` and ``firmware/mlp_kd_hgq_10k``, the front's pick), as their own reports state them.

A sibling's figures are shown only when it was measured on the same test jets: the data stage's record of the test
split (``data/manifest.json``, its ``test.h5``: size and SHA-256) must be the same in both runs; otherwise the row
says "not comparable" and why, with no number. A sibling that is not one consistent run (``runcheck.py``), or whose
``report.json`` is not a report, is named with the reason and not read. The section is a snapshot taken when this
report was made; ``trigger-kd report DIR...`` compares runs afresh.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..rundir import DATA, MANIFEST_FILE, REPORT, REPORT_JSON, is_run_dir, split_file
from ..runcheck import chain_problems
from .multiclass import is_multiclass
from .records import DamagedRecord, read_report, resource_problems
from .tables import fmt, md_table

# what `trigger-kd front` picked under the 10k LUT budget (benchmarks/history/front.md, "The 10k-LUT target reached")
FRONT_PICK = "mlp_kd_hgq_10k"


def tested_on(run_dir: Path) -> dict | None:
    """The data stage's record of the test split (size and hash), or None where the run has none."""
    try:
        manifest = json.loads((Path(run_dir) / DATA / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return None
    record = ((manifest if isinstance(manifest, dict) else {}).get("files") or {}).get(split_file("test"))
    return record if isinstance(record, dict) and record else None


def _number(value, lo: float = 0.0, hi: float = float("inf")):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and lo <= value <= hi
    return value if ok else None


def figures(report: dict, check: bool = True) -> dict:
    """The figures a row shows, from a report.json: the headline (K classes: test accuracy; binary: test AUC), LUT
    with its source and latency, every one checked (``check``: the resource record too, by
    ``records.resource_problems``; this run's own was checked when its synth stage wrote it)."""
    phys = report.get("physics") or {}
    student = phys.get("student") or {}
    multi = is_multiclass(phys)
    r = report.get("resources") or {}
    problems = resource_problems(r) if r and check else []
    if problems:
        raise DamagedRecord(problems[0])
    return {"figure": "test accuracy" if multi else "test AUC",
            "value": _number(student.get("accuracy" if multi else "auc"), 0.0, 1.0),
            "n_test_jets": _number(phys.get("n_test_jets")), "multiclass": multi,
            "lut": _number(r.get("lut")), "lut_source": r.get("source") if isinstance(r.get("source"), str) else None,
            "latency_ns": _number(r.get("latency_max_ns")), "latency_cycles": _number(r.get("latency_cycles"))}


def _sibling(path: Path, mine: dict, multi: bool) -> dict:
    row = {"model": path.name, "run_dir": str(path)}
    if is_run_dir(path):
        problems = chain_problems(path, [REPORT])
        if problems:
            return {**row, "comparable": False, "why": f"not read: {problems[0][1]}"}
    try:
        report = read_report(path / REPORT / REPORT_JSON)
        shown = figures(report)
    except DamagedRecord as e:
        return {**row, "comparable": False, "why": f"not read: {e.why}"}
    row["model"] = str(report.get("model") or path.name)
    theirs = tested_on(path)
    if shown["multiclass"] != multi:
        why = "not comparable: another task (binary vs K classes)"
    elif mine is None or theirs is None:
        why = "not comparable: test jets unknown (no data-stage record of them)"
    elif theirs != mine:
        why = "not comparable: other test jets"
    else:
        return {**row, **shown, "comparable": True, "why": None}
    return {**row, "comparable": False, "why": why}  # no figure: it was measured on other jets (or unknown ones)


def standing_block(run_dir: Path, report: dict) -> dict:
    """This run's figures and every sibling that has a report, for ``report.json``."""
    run_dir = Path(run_dir).absolute()
    mine = tested_on(run_dir)
    multi = is_multiclass(report.get("physics") or {})
    siblings = []
    for path in sorted(run_dir.parent.iterdir()):
        if path.name.startswith(".") or not path.is_dir() or path.resolve() == run_dir.resolve():
            continue
        if (path / REPORT / REPORT_JSON).is_file():
            siblings.append(_sibling(path, mine, multi))
    return {"this_run": {"model": report.get("model"), **figures(report, check=False)}, "test_jets": mine,
            "siblings": siblings, "parent": str(run_dir.parent)}


def _row(s: dict, label: str, figure: str) -> dict:
    if not s.get("comparable", True):
        return {"tagger": label, figure: s.get("why"), "LUT": "", "LUT from": "", "latency": ""}
    return {"tagger": label, figure: fmt(s.get("value"), ".4f"), "LUT": fmt(s.get("lut"), "g"),
            "LUT from": (s.get("lut_source") or "n/a").split(";")[0],  # the tool; its notes are in that run's report
            "latency": f"{fmt(s.get('latency_ns'), '.1f')} ns / {fmt(s.get('latency_cycles'), 'd')} cyc"}


def _front_hint(block: dict) -> str:
    """How to build the front's pick beside a binary run that does not have it yet ('' where it is there)."""
    me = block["this_run"]
    if me["multiclass"]:
        return "" if block["siblings"] else \
            "Build another K-class tagger beside it (e.g. `make synth MODEL=mlp_kd_hgq_5class`) to compare."
    if me.get("model") == FRONT_PICK:
        return "This run is the front's pick (`trigger-kd front`, best under a 10k LUT budget)."
    if any(s["model"] == FRONT_PICK for s in block["siblings"]):
        return ""
    return (f"The front's pick is not built here: `make synth MODEL={FRONT_PICK}` builds it beside this run (rerun "
            "this report after, or compare with `trigger-kd report firmware/*/`).")


def standing_markdown(block: dict | None) -> list[str]:
    if not block:
        return []
    me, hint = block["this_run"], _front_hint(block)
    lines = ["## Where it sits", ""]
    if not block["siblings"]:
        return lines + [f"No other tagger with a report under `{block['parent']}/`. {hint}".rstrip(), ""]
    rows = [_row(me, f"**{me.get('model')}** (this run)", me["figure"])]
    rows += [_row(s, s["model"], me["figure"]) for s in block["siblings"]]
    lines += [f"The taggers built beside this one under `{block['parent']}/`, from their own report.json as they "
              f"stood when this report was made; figures only where measured on the same test jets "
              f"(`trigger-kd report DIR...` compares afresh).", "", md_table(rows), ""]
    return lines + ([hint, ""] if hint else [])
