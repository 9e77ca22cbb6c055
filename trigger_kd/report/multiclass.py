"""The figures of a K-class tagger in the report: per class, the confusion matrix, the rejections a trigger
engineer reads, what distillation bought per class, and the baselines a physicist tries first.

Reads the student stage's metrics (``train/multiclass.py`` dicts) as ``physics_block`` hands them over; a figure
that was not measured is "n/a".
"""
from __future__ import annotations

from pathlib import Path

from ..rundir import CONFUSION_PLOT, SCRATCH_MODEL
from .tables import fmt, md_table

MODELS = ("teacher", "student", "student_float", SCRATCH_MODEL)
_NAMES = {"teacher": "teacher", "student": "KD student (quantised)", "student_float": "float twin",
          SCRATCH_MODEL: "scratch twin (quantised)"}


def is_multiclass(phys: dict) -> bool:
    return bool(((phys or {}).get("task") or {}).get("multiclass"))


def _models(phys: dict, scratch: dict | None) -> dict:
    out = {name: phys.get(name) for name in ("teacher", "student", "student_float") if phys.get(name)}
    if scratch:
        out[SCRATCH_MODEL] = scratch
    for key, b in (phys.get("baselines") or {}).items():
        if (b or {}).get("test"):
            out[f"baseline: {b.get('what', key)}"] = b["test"]
    return out


def summary_rows(models: dict) -> list[dict]:
    """Accuracy and macro one-vs-rest AUC per model, and the rejections of the signal classes."""
    rows = []
    for name, m in models.items():
        row = {"model": _NAMES.get(name, name), "accuracy": fmt(m.get("accuracy"), ".4f"),
               "macro AUC": fmt(m.get("auc"), ".4f")}
        for sig, r in (m.get("rejection") or {}).items():
            row[f"{sig}: 1/eB@30%"] = fmt(r.get("rej30"), ".1f")
            row[f"{sig}: 1/eB@50%"] = fmt(r.get("rej50"), ".1f")
        row["jets"] = fmt(m.get("n_jets"), "d")
        rows.append(row)
    return rows


def per_class_rows(models: dict) -> list[dict]:
    """One row per class: its jets, and each model's one-vs-rest AUC."""
    first = next((m for m in models.values() if m.get("per_class")), None)
    if first is None:
        return []
    rows = []
    for cls, c in first["per_class"].items():
        row = {"class": cls, "test jets": fmt(c.get("n_jets"), "d")}
        for name, m in models.items():
            row[f"AUC {_NAMES.get(name, name)}"] = fmt(((m.get("per_class") or {}).get(cls) or {}).get("auc"), ".4f")
        rows.append(row)
    return rows


def confusion_rows(confusion: dict | None) -> list[dict]:
    """Rows: true class; columns: predicted class; each cell the count and the row's fraction."""
    if not confusion:
        return []
    classes, counts = confusion["classes"], confusion["counts"]
    rows = []
    for cls, row in zip(classes, counts):
        total = sum(row) or 1
        rows.append({"true \\ predicted": cls, **{c: f"{n} ({100 * n / total:.1f} %)" for c, n in zip(classes, row)}})
    return rows


def kd_gain_rows(kd: dict, scratch: dict) -> list[dict]:
    """What distillation bought, per class: the KD student's one-vs-rest AUC and efficiency against the scratch
    twin's (same architecture, initial weights and jets; no teacher)."""
    rows = []
    for cls, k in (kd.get("per_class") or {}).items():
        s = (scratch.get("per_class") or {}).get(cls) or {}
        d_auc = None if k.get("auc") is None or s.get("auc") is None else k["auc"] - s["auc"]
        d_eff = (None if k.get("efficiency") is None or s.get("efficiency") is None
                 else k["efficiency"] - s["efficiency"])
        rows.append({"class": cls, "AUC KD": fmt(k.get("auc"), ".4f"), "AUC scratch": fmt(s.get("auc"), ".4f"),
                     "AUC gain": fmt(d_auc, "+.4f"), "efficiency KD": fmt(k.get("efficiency"), ".3f"),
                     "efficiency scratch": fmt(s.get("efficiency"), ".3f"), "efficiency gain": fmt(d_eff, "+.3f")})
    return rows


def multiclass_markdown(phys: dict, out: Path) -> list[str]:
    """The physics section of a K-class report."""
    task = phys.get("task") or {}
    scratch = (phys.get("kd_vs_scratch") or {}).get("scratch")
    models = _models(phys, scratch)
    n = phys.get("n_test_jets")
    lines = ["## Physics", "",
             f"{task.get('describe', 'K classes')}; measured on {fmt(n, 'd')} test jets ({phys.get('source') or 'n/a'}). "
             "Accuracy: the highest logit is the class. Rejection: 1/eB of the QCD classes at 30 % / 50 % "
             "efficiency of each signal class, with the discriminant p_sig / (p_sig + sum of p_QCD). Early stopping "
             f"watched the validation {'accuracy' if task.get('monitor') == 'val_accuracy' else 'AUC'}.", "",
             md_table(summary_rows(models)), ""]
    student, base = phys.get("student") or {}, (phys.get("baselines") or {})
    sub = (base.get("substructure") or {}).get("test") or {}
    mass = (base.get("jet_mass_inputs") or {}).get("test") or {}
    if student.get("accuracy") is not None and sub.get("accuracy") is not None:
        lines += [f"What the network adds: the quantised student's accuracy is "
                  f"{student['accuracy'] - sub['accuracy']:+.4f} over the substructure classifier and "
                  f"{student['accuracy'] - mass.get('accuracy', float('nan')):+.4f} over the jet mass of its own "
                  f"inputs, on the same test jets.", ""]
    lines += ["### Per class (one-vs-rest AUC)", "", md_table(per_class_rows(models)), ""]
    lines += ["### Confusion matrix of the quantised student (test jets)", "",
              md_table(confusion_rows(student.get("confusion"))), ""]
    if (out / CONFUSION_PLOT).is_file():
        lines += [f"![Confusion matrix]({CONFUSION_PLOT})", ""]
    if scratch and student:
        lines += ["### What distillation bought, per class", "", md_table(kd_gain_rows(student, scratch)), ""]
    return lines


def comparison_markdown(reports: list[dict]) -> list[str]:
    """``trigger-kd report RUN_A RUN_B``: the K-class runs side by side, per class (one-vs-rest AUC and efficiency
    of each quantised student, the KD gain over its scratch twin where the run has one) and the signal classes'
    rejections."""
    rows, rej = [], []
    for r in reports:
        phys = r.get("physics") or {}
        s = phys.get("student") or {}
        scratch = (phys.get("kd_vs_scratch") or {}).get("scratch") or {}
        row = {"model": r.get("model")}
        for cls, c in (s.get("per_class") or {}).items():
            gain = (None if c.get("auc") is None or ((scratch.get("per_class") or {}).get(cls) or {}).get("auc") is None
                    else c["auc"] - scratch["per_class"][cls]["auc"])
            row[f"{cls} AUC"] = fmt(c.get("auc"), ".4f") + (f" ({fmt(gain, '+.4f')} KD)" if gain is not None else "")
            row[f"{cls} eff."] = fmt(c.get("efficiency"), ".3f")
        rows.append(row)
        rej.append({"model": r.get("model"), **{f"{sig}: 1/eB@{p}%": fmt(v.get(f"rej{p}"), ".1f")
                                                 for sig, v in (s.get("rejection") or {}).items() for p in (30, 50)}})
    return ["## K-class taggers, per class (quantised students, each on its own test jets)", "",
            "One-vs-rest AUC per class (in brackets: the gain over the run's scratch twin, what distillation bought) "
            "and efficiency (the fraction of the class's jets given that class).", "", md_table(rows), "",
            "Rejection of the QCD classes at 30 % / 50 % efficiency of each signal class:", "", md_table(rej), ""]
