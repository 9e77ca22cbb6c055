"""One sweep point's row of ``front.json``, read from its run directory through the typed records of ``rundir``."""
from __future__ import annotations

import math
from pathlib import Path

from ..errors import TriggerKDError
from ..synth.reports import MAX_COUNT  # no FPGA holds 1e9 of anything
from ..rundir import FIRMWARE, METRICS, PARITY, RESOURCES, STUDENT, SYNTH, Parity, Resources, StudentMetrics, read_stamp

MASS_BASELINES = ("jet_mass_inputs", "jet_mass_all", "substructure")  # student/metrics.json ``baselines`` rows


def ranking_metric(m: StudentMetrics | None) -> str:
    """What the front ranks on: the metric early stopping watched (binary: AUC; K classes: accuracy)."""
    monitor = _dig(m.task, "monitor") if m is not None else None
    return (monitor if isinstance(monitor, str) and monitor else "val_auc").removeprefix("val_")


def _dig(d, *keys):
    """``d[k1][k2]...``; None where a level is missing or not a mapping (a damaged record)."""
    for key in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(key)
    return d


def stamp_of(stage_dir: Path) -> str | None:
    """The stamp of a completed stage directory; None when it has none or its stamp.json is no stamp record."""
    record = read_stamp(stage_dir)
    stamp = record.get("stamp") if isinstance(record, dict) else None
    return stamp if isinstance(stamp, str) else None


def _f(x):
    """A figure as a float; anything else as it is, for ``check_row`` to name (a damaged record)."""
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else x


def point_row(run_dir: Path) -> dict:
    """Validation and test metrics of the quantised student, resources of the synth stage, parity of the firmware.
    ``lut`` is da4ml's estimate (what the front and the budget use); ``yosys_lut`` is set when the synth record is
    a Yosys synthesis. Raises nothing: what is missing is None."""
    run_dir = Path(run_dir)
    m = StudentMetrics.read(run_dir / STUDENT / METRICS)
    res = Resources.read(run_dir / SYNTH / RESOURCES)
    par = Parity.read(run_dir / FIRMWARE / PARITY)
    val = _dig(m.validation, "student") if m else None
    val = val if isinstance(val, dict) else {}
    test = m.metrics("student") if m else {}
    test = test if isinstance(test, dict) else {}
    prim = res.primary if res else {}
    extra = prim.get("extra") or {}
    metric = ranking_metric(m)
    row = {
        "metric": metric, "val_score": _f(val.get(metric)), "test_score": _f(test.get(metric)),
        "val_auc": _f(val.get("auc")), "val_accuracy": _f(val.get("accuracy")),
        "val_rej30": _f(val.get("rej30")), "val_rej50": _f(val.get("rej50")),
        "test_auc": _f(test.get("auc")), "test_accuracy": _f(test.get("accuracy")),
        "test_rej30": _f(test.get("rej30")), "test_rej50": _f(test.get("rej50")),
        "lut": _f(res.da4ml_estimate) if res and res.da4ml_estimate is not None else _f(extra.get("da4ml_estimate_lut")),
        "ff": extra.get("da4ml_register_bits", prim.get("ff")),  # da4ml's pipeline registers (Yosys: yosys_ff)
        "pipeline_stages": extra.get("da4ml_pipeline_stages", prim.get("latency_max_cycles")),
        "latency_ns": _f(prim.get("latency_max_ns")),
        "clock_ns": _f(prim.get("clock_target_ns")),
        "yosys_lut": prim.get("lut") if prim.get("kind") == "open-source-synthesis" else None,
        "yosys_ff": prim.get("ff") if prim.get("kind") == "open-source-synthesis" else None,
        "resource_source": prim.get("source"),
        "parity_pct": None if par is None else 100.0 * par.bit_exact_fraction,
        "parity_jets": None if par is None else par.n_jets,
        "rtl_parity_pct": (None if not res or not res.rtl_parity or res.rtl_parity.get("bit_exact_fraction") is None
                           else 100.0 * res.rtl_parity["bit_exact_fraction"]),
        "stamps": {s: stamp_of(run_dir / s) for s in (STUDENT, FIRMWARE, SYNTH)},
    }
    return row


def reference_lines(run_dir: Path, problems: list[str] | None = None) -> dict[str, float]:
    """Horizontal lines of the plot, on the VALIDATION jets (the front's axis, ``ranking_metric``): the teacher and,
    when the student's metrics carry them, the baselines. A value that is not a fraction in [0, 1] is left out and
    said in ``problems`` (front.json carries them)."""
    path = Path(run_dir) / STUDENT / METRICS
    m = StudentMetrics.read(path)
    if m is None:
        return {}
    metric = ranking_metric(m)
    found = {"teacher": _dig(m.validation, "teacher", metric),
             **{key: _dig(m.baselines, key, "val", metric) for key in MASS_BASELINES}}
    out = {}
    for name, value in found.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            if problems is not None:
                problems.append(f"{path}: the {name} validation {metric} is {value!r}, not a fraction in [0, 1]; "
                                "its reference line is left out")
            continue
        out[name] = float(value)
    return out


# ----------------------------------------------------------------------------- reading a front.json back
SCORES = ("val_score", "test_score", "val_auc", "test_auc", "val_accuracy", "test_accuracy")  # fractions in [0, 1]
COUNTS = ("lut", "ff", "yosys_lut", "yosys_ff", "pipeline_stages", "parity_jets")  # whole-ish counts >= 0
TIMES = ("latency_ns", "clock_ns", "seconds")
PERCENTS = ("parity_pct", "rtl_parity_pct")
REJECTIONS = ("val_rej30", "val_rej50", "test_rej30", "test_rej50")  # background rejection 1/eps_b: >= 1


class FrontFileError(TriggerKDError):
    """A front.json that is not one trigger-kd front wrote, or whose figures cannot be right."""


def _number(row_id: str, key: str, value) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise FrontFileError(f"point {row_id}: {key} = {value!r} is not a finite number")
    return float(value)


def check_row(row: dict) -> list[str]:
    """The problems of one front.json row: a figure outside its physical range, a contradiction between two
    fields of the row (empty: the row may be used). A failed point (``error``) may lack its figures."""
    rid = str(row.get("id", "?"))
    problems = []
    ranges = [(k, 0.0, 1.0) for k in SCORES] + [(k, 0.0, MAX_COUNT) for k in COUNTS] + \
        [(k, 0.0, math.inf) for k in TIMES] + [(k, 0.0, 100.0) for k in PERCENTS] + [(k, 1.0, math.inf) for k in REJECTIONS]
    for key, lo, hi in ranges:
        try:
            v = _number(rid, key, row.get(key))
        except FrontFileError as exc:
            problems.append(str(exc))
            continue
        if v is not None and not lo <= v <= hi:
            problems.append(f"point {rid}: {key} = {v:g} outside [{lo:g}, {hi:g}]")
    metric = row.get("metric")
    if metric is not None and metric not in ("auc", "accuracy"):
        problems.append(f"point {rid}: metric {metric!r} is neither 'auc' nor 'accuracy'")
    elif metric and not row.get("error"):
        for split in ("val", "test"):
            score, named = row.get(f"{split}_score"), row.get(f"{split}_{metric}")
            if score is not None and named is not None and score != named:
                problems.append(f"point {rid}: {split}_score {score} contradicts {split}_{metric} {named}")
    if not row.get("error"):
        missing = [k for k in ("val_score", "lut") if row.get(k) is None]
        if missing:
            problems.append(f"point {rid}: no {', '.join(missing)} and no error")
    return problems


def read_front(path: Path) -> dict:
    """A front.json, every row checked (``check_row``), ids unique, the front and the pick among them; a
    ``FrontFileError`` naming the file and every problem otherwise."""
    import json

    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise FrontFileError(f"{path}: not a readable front.json ({exc})") from None
    rows = doc.get("points") if isinstance(doc, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "id" in r for r in rows):
        raise FrontFileError(f"{path}: not a front.json of trigger-kd front (no list of points with ids)")
    problems = [p for r in rows for p in check_row(r)]
    ids = [r["id"] for r in rows]
    if len(set(ids)) != len(ids):
        problems.append(f"point ids repeated: {sorted({i for i in ids if ids.count(i) > 1})}")
    unknown = [i for i in doc.get("front") or [] if i not in ids]
    if unknown:
        problems.append(f"the front names points that are not rows: {unknown}")
    picked = doc.get("picked")
    if picked and picked.get("id") not in ids:
        problems.append(f"the pick {picked.get('id')!r} is not a row")
    if problems:
        raise FrontFileError(f"{path}: {len(problems)} problem{'s' if len(problems) > 1 else ''}: "
                             f"{'; '.join(problems[:8])}{' ...' if len(problems) > 8 else ''}. "
                             "Rerun the sweep (completed points are reused) instead of using these figures")
    return doc
