"""The validating readers of the result records that come from outside the process: ``RUN_DIR/evaluate/<name>.json``
(``trigger-kd evaluate``), ``RUN_DIR/diagnostics.json`` (``trigger-kd diagnose``) and a run's ``report/report.json``
(read by ``trigger-kd report DIR...`` and by the "Where it sits" section). One reader per kind; each checks every
figure it will show before it becomes one:

- type: a figure is a number (not text, not a boolean), a name is text, a section is an object or a list;
- range: AUC, accuracy, efficiency, purity and fractions in [0, 1]; counts (jets, parameters, epochs) whole, >= 0 and
  at most ``synth.reports.MAX_COUNT``; background rejections 1/eB >= 1; errors, variances, MSEs and smearing widths
  >= 0; every figure finite (a leading Hessian eigenvalue and a trace may be negative: power iteration returns the
  eigenvalue of largest magnitude, and a saddle has negative ones);
- contradictions (two fields stating the same fact): a model's jets against the record's, top + QCD jets against
  all jets, the resource record against itself (``synth.reports.validate_record``), ``latency_cycles`` against
  ``latency_max_cycles``.

A damaged record raises ``DamagedRecord`` naming the file and its first problems on one line: ``trigger-kd report``
refuses it, the report shows it as "damaged: <why>" and never as a figure.
"""
from __future__ import annotations

import math
from pathlib import Path

from ..errors import TriggerKDError
from ..rundir import EVALUATE_DIR, MODELS, SCRATCH_MODEL, read_evaluations, read_json
from ..synth.reports import MAX_COUNT, ReportError, ResourceRecord, validate_record

SCORE, COUNT, REJECTION, NONNEG, FINITE = (0.0, 1.0), (0.0, MAX_COUNT), (1.0, math.inf), (0.0, math.inf), \
    (-math.inf, math.inf)
_RECORD_FIELDS = set(ResourceRecord.__dataclass_fields__)


class DamagedRecord(TriggerKDError):
    """A result record that is not what its tool writes: unreadable, a figure of the wrong type or out of range, or
    two fields that contradict each other. ``why``: the problems alone, without the file."""

    def __init__(self, message: str, why: str = ""):
        super().__init__(message)
        self.why = why or message


class Problems(list):
    """The problems found in one record, each a short phrase naming the field."""

    def number(self, value, what: str, span: tuple[float, float], required: bool = False) -> None:
        if value is None:
            if required:
                self.append(f"{what} is missing")
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.append(f"{what} is {_show(value)}, not a number")
        elif not math.isfinite(value):
            self.append(f"{what} is {value}, not a finite number")
        elif not span[0] <= value <= span[1]:
            self.append(f"{what} = {value:g} is outside [{span[0]:g}, {span[1]:g}]")
        elif span is COUNT and value != int(value):
            self.append(f"{what} = {value:g} is not a whole count")

    def section(self, value, what: str, kind: type = dict, required: bool = False) -> bool:
        """Is ``value`` a section of ``kind`` (an absent, optional one is not, without a problem)?"""
        if value is None:
            if required:
                self.append(f"{what} is missing")
            return False
        if not isinstance(value, kind):
            self.append(f"{what} is {_show(value)}, not {'an object' if kind is dict else 'a list'}")
            return False
        return True

    def text(self, value, what: str, required: bool = False) -> None:
        if (value is not None or required) and not (isinstance(value, str) and value.strip()):
            self.append(f"{what} is {_show(value)}, not a name")


def _show(value) -> str:
    text = repr(value).replace("\n", " ")
    return text if len(text) <= 40 else text[:37] + "..."


def why(problems: list[str]) -> str:
    """The first problems of a record, on one line."""
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return f"{'; '.join(problems[:3])}{more}"


def _raise(path: Path, problems: list[str], what: str) -> None:
    if problems:
        raise DamagedRecord(f"{path}: damaged {what}: {why(problems)}", why(problems))


def check_metrics(p: Problems, m, what: str, n_jets=None) -> None:
    """The test metrics of one model (binary or K classes), as ``train/metrics.py`` and ``train/tagger.py`` write
    them; ``n_jets``: the record's count of the same jets (a different count contradicts it)."""
    if not p.section(m, what):
        return
    for key in ("accuracy", "auc"):
        p.number(m.get(key), f"{what}.{key}", SCORE)
    for key in ("rej30", "rej50"):
        p.number(m.get(key), f"{what}.{key}", REJECTION)
    for key in ("n_jets", "n_top", "n_qcd"):
        p.number(m.get(key), f"{what}.{key}", COUNT)
    parts = [m.get("n_top"), m.get("n_qcd")]
    if all(isinstance(v, int) for v in (*parts, m.get("n_jets"))) and sum(parts) != m["n_jets"]:
        p.append(f"{what}: n_top {parts[0]} + n_qcd {parts[1]} contradicts n_jets {m['n_jets']}")
    if isinstance(n_jets, int) and isinstance(m.get("n_jets"), int) and m["n_jets"] != n_jets:
        p.append(f"{what}.n_jets {m['n_jets']} contradicts the record's {n_jets} jets")
    if p.section(m.get("per_class"), f"{what}.per_class"):
        for cls, c in m["per_class"].items():
            if p.section(c, f"{what}.per_class.{cls}"):
                for key in ("auc", "efficiency", "purity"):
                    p.number(c.get(key), f"{what}.per_class.{cls}.{key}", SCORE)
                p.number(c.get("n_jets"), f"{what}.per_class.{cls}.n_jets", COUNT)
    if p.section(m.get("rejection"), f"{what}.rejection"):
        for sig, r in m["rejection"].items():
            if p.section(r, f"{what}.rejection.{sig}"):
                for key in ("rej30", "rej50"):
                    p.number(r.get(key), f"{what}.rejection.{sig}.{key}", REJECTION)


# ----------------------------------------------------------------------------- evaluate/<name>.json
def evaluation_problems(r: dict) -> list[str]:
    p = Problems()
    p.text(r.get("task"), "task")
    p.number(r.get("n_jets"), "n_jets", COUNT, required=True)
    p.number(r.get("n_left_out_training_jets"), "n_left_out_training_jets", COUNT)
    n = r.get("n_jets") if not p else None
    for m in MODELS:
        if p.section(r.get(m), m, required=True):
            check_metrics(p, r[m], m, n_jets=n)
    if p.section(r.get("warnings"), "warnings", kind=list):
        for i, w in enumerate(r["warnings"]):
            p.text(w, f"warnings[{i}]", required=True)
    return p


def current_and_damaged(run_dir: Path) -> tuple[dict, dict]:
    """(every ``evaluate/*.json`` that is an evaluation, by name; {file: why} for each that is not)."""
    good, damaged = {}, {}
    for name, result in read_evaluations(run_dir).items():
        problems = ["not a JSON object"] if result is None else evaluation_problems(result)
        if problems:
            damaged[f"{EVALUATE_DIR}/{name}.json"] = why(problems)
        else:
            good[name] = result
    return good, damaged


# ----------------------------------------------------------------------------- diagnostics.json
def _curvature(p: Problems, cur: dict) -> None:
    for m, c in cur.items():
        if m == "source":
            p.text(c, "curvature.source")
        elif p.section(c, f"curvature.{m}") and "skipped" not in c:
            for key in ("lambda_max", "trace"):
                p.number(c.get(key), f"curvature.{m}.{key}", FINITE, required=True)
            p.number(c.get("trace_std_error"), f"curvature.{m}.trace_std_error", NONNEG)
            for key in ("n_jets", "n_parameters", "power_iterations"):
                p.number(c.get(key), f"curvature.{m}.{key}", COUNT)


def _compressibility(p: Problems, comp: dict) -> None:
    if p.section(comp.get("curve"), "compressibility.curve", list, required=True) and not comp["curve"]:
        p.append("compressibility.curve is empty")
    for i, point in enumerate(comp.get("curve") or []):
        if p.section(point, f"compressibility.curve[{i}]"):
            p.number(point.get("epoch"), f"compressibility.curve[{i}].epoch", COUNT, required=True)
            p.number(point.get("val_mse"), f"compressibility.curve[{i}].val_mse", NONNEG, required=True)
            p.number(point.get("train_mse"), f"compressibility.curve[{i}].train_mse", NONNEG, required=i > 0)
    for key in ("final_val_mse", "teacher_logit_variance"):
        p.number(comp.get(key), f"compressibility.{key}", NONNEG)
    for key in ("n_train_jets", "n_val_jets"):
        p.number(comp.get(key), f"compressibility.{key}", COUNT)
    if p.section(comp.get("reference_student"), "compressibility.reference_student"):
        p.number(comp["reference_student"].get("n_parameters"), "compressibility.reference_student.n_parameters", COUNT)


def _smearing(p: Problems, smear: dict) -> None:
    for m in MODELS:
        if p.section(smear.get(m), f"smearing.{m}", list):
            for i, point in enumerate(smear[m]):
                if p.section(point, f"smearing.{m}[{i}]"):
                    p.number(point.get("sigma"), f"smearing.{m}[{i}].sigma", NONNEG, required=True)
                    for key in ("auc", "accuracy"):
                        p.number(point.get(key), f"smearing.{m}[{i}].{key}", SCORE)


def diagnostics_problems(d: dict) -> list[str]:
    p = Problems()
    p.text(d.get("task"), "task")
    if p.section(d.get("in_distribution"), "in_distribution"):
        for m, met in d["in_distribution"].items():
            check_metrics(p, met, f"in_distribution.{m}")
    for key, check in (("curvature", _curvature), ("compressibility", _compressibility), ("smearing", _smearing)):
        if p.section(d.get(key), key):
            check(p, d[key])
    return p


def read_diagnostics(path: Path) -> dict | None:
    """``diagnostics.json`` checked (None: there is none); ``DamagedRecord`` when it is not one."""
    path = Path(path)
    if not path.exists():
        return None
    d = read_json(path)
    _raise(path, ["not a JSON object"] if d is None else diagnostics_problems(d), "diagnostics")
    return d


# ----------------------------------------------------------------------------- report/report.json
def resource_problems(r: dict) -> list[str]:
    """The report's resource block (a flattened ``ResourceRecord`` with the route's extras) against the rules of
    ``synth.reports.validate_record``, and its latency in cycles against the record's worst case."""
    try:
        validate_record(ResourceRecord(**{k: v for k, v in r.items() if k in _RECORD_FIELDS}))
    except (ReportError, TypeError, ValueError, AttributeError) as e:
        return [f"its resource record is damaged ({e})"]
    p = Problems()
    p.number(r.get("latency_cycles"), "resources.latency_cycles", COUNT)
    if not p and None not in (r.get("latency_cycles"), r.get("latency_max_cycles")) \
            and r["latency_cycles"] != r["latency_max_cycles"]:
        p.append(f"resources.latency_cycles {r['latency_cycles']} contradicts latency_max_cycles "
                 f"{r['latency_max_cycles']}")
    return p


def report_problems(report: dict) -> list[str]:
    p = Problems()
    p.text(report.get("model"), "model", required=True)
    if p.section(report.get("physics"), "physics"):
        phys = report["physics"]
        p.number(phys.get("n_test_jets"), "physics.n_test_jets", COUNT)
        n = phys.get("n_test_jets") if not p else None
        for m in ("teacher", "student", "student_float"):
            check_metrics(p, phys.get(m), f"physics.{m}", n_jets=n)
        if p.section(phys.get("kd_vs_scratch"), "physics.kd_vs_scratch"):
            check_metrics(p, phys["kd_vs_scratch"].get("scratch"), f"physics.{SCRATCH_MODEL}", n_jets=n)
        if p.section(phys.get("baselines"), "physics.baselines"):
            for key, b in phys["baselines"].items():
                if p.section(b, f"physics.baselines.{key}"):
                    check_metrics(p, b.get("test"), f"physics.baselines.{key}.test")
    if p.section(report.get("parity"), "parity"):
        par = report["parity"]
        p.number(par.get("n_jets"), "parity.n_jets", COUNT)
        p.number(par.get("bit_exact_fraction"), "parity.bit_exact_fraction", SCORE)
        p.number(par.get("max_abs_diff"), "parity.max_abs_diff", NONNEG)
    if p.section(report.get("resources"), "resources"):
        p.extend(resource_problems(report["resources"]))
    return p


def read_report(path: Path) -> dict:
    """A ``report.json`` checked; ``DamagedRecord`` naming the file when it is missing, not JSON or damaged."""
    path = Path(path)
    report = read_json(path)
    _raise(path, ["not a JSON object (missing or unreadable)"] if report is None else report_problems(report),
           "report")
    return report
