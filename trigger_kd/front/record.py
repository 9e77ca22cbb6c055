"""One sweep point's row of ``front.json``, read from its run directory through the typed records of ``rundir``."""
from __future__ import annotations

from pathlib import Path

from ..rundir import FIRMWARE, METRICS, PARITY, RESOURCES, STUDENT, SYNTH, Parity, Resources, StudentMetrics, read_stamp

MASS_BASELINES = ("jet_mass_inputs", "jet_mass_all", "substructure")  # student/metrics.json ``baselines`` rows


def ranking_metric(m: StudentMetrics | None) -> str:
    """What the front ranks on: the metric early stopping watched (binary: AUC; K classes: accuracy)."""
    monitor = ((m.task or {}).get("monitor") if m is not None else None) or "val_auc"
    return monitor.removeprefix("val_")


def _f(x):
    return None if x is None else float(x)


def point_row(run_dir: Path) -> dict:
    """Validation and test metrics of the quantised student, resources of the synth stage, parity of the firmware.
    ``lut`` is da4ml's estimate (what the front and the budget use); ``yosys_lut`` is set when the synth record is
    a Yosys synthesis. Raises nothing: what is missing is None."""
    run_dir = Path(run_dir)
    m = StudentMetrics.read(run_dir / STUDENT / METRICS)
    res = Resources.read(run_dir / SYNTH / RESOURCES)
    par = Parity.read(run_dir / FIRMWARE / PARITY)
    val = (m.validation.get("student") or {}) if m else {}
    test = m.metrics("student") if m else {}
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
        "stamps": {s: (read_stamp(run_dir / s) or {}).get("stamp") for s in (STUDENT, FIRMWARE, SYNTH)},
    }
    return row


def reference_lines(run_dir: Path) -> dict[str, float]:
    """Horizontal lines of the plot, on the VALIDATION jets (the front's axis, ``ranking_metric``): the teacher and,
    when the student's metrics carry them, the baselines."""
    m = StudentMetrics.read(Path(run_dir) / STUDENT / METRICS)
    if m is None:
        return {}
    out = {}
    metric = ranking_metric(m)
    teacher = (m.validation.get("teacher") or {}).get(metric)
    if teacher is not None:
        out["teacher"] = float(teacher)
    for key in MASS_BASELINES:
        auc = ((m.baselines.get(key) or {}).get("val") or {}).get(metric) if isinstance(m.baselines, dict) else None
        if auc is not None:
            out[key] = float(auc)
    return out
