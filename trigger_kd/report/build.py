"""The report a trigger engineer reads: ``report.json``, ``report.md`` and plots.

Everything comes from files earlier stages wrote (read as the records of ``trigger_kd/rundir.py``);
every figure carries its source and the number of jets it was measured on. A figure that was
not measured is shown as "n/a" (JSON null), never guessed.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..rundir import (CONFUSION_PLOT, DATA, EPOCH_CURVE, EPOCH_CURVE_PLOT, FIRMWARE, METRICS, PARITY, REPORT_JSON, REPORT_MD,
                      RESOURCES, ROBUSTNESS_PLOT, ROC_PLOT, SCRATCH_MODEL, STUDENT, SUMMARY, SYNTH, TEACHER, EpochCurve,
                      Parity, Resources, StudentMetrics, TeacherMetrics, read_json)
from .binary import binary_physics_markdown, inputs_markdown, physics_rows, robustness_markdown
from .generalisation import generalisation_block, generalisation_markdown
from .hardware import parity_markdown, resources_markdown
from .multiclass import is_multiclass, multiclass_markdown
from .plots import resource_bars
from .quantisation import quantisation_block, quantisation_markdown
from .standing import standing_block, standing_markdown
from .tables import fmt, md_table


def physics_block(run_dir: Path) -> dict:
    m = StudentMetrics.read(run_dir / STUDENT / METRICS) or StudentMetrics()
    block = {k: m.models.get(k) for k in ("teacher", "student", "student_float")}
    block["n_test_jets"] = m.n_test_jets
    block["robustness"] = m.robustness or None
    block["source"] = m.source
    block["inputs"] = m.inputs
    block["baselines"] = m.baselines or None
    block["task"] = m.task  # what the K outputs mean (None: a binary run from before multi-class taggers)
    scratch = m.models.get(SCRATCH_MODEL)  # the same student trained without the teacher, in this run
    if scratch:
        kd = m.metrics("student")
        block["kd_vs_scratch"] = {
            "scratch": scratch,
            "kd": m.models.get("student"),
            "delta": {k: _delta(kd.get(k), scratch.get(k)) for k in ("accuracy", "auc", "rej30", "rej50")},
        }
        block["distillation"] = distillation_block(m)
    return block


def numerics_block(run_dir: Path) -> dict:
    """The arithmetic the teacher and the student were trained with (``numerics.state()`` as their stages recorded
    it; None for a stage that recorded none, e.g. one run before the record existed)."""
    t = TeacherMetrics.read(run_dir / TEACHER / METRICS)
    m = StudentMetrics.read(run_dir / STUDENT / METRICS)
    return {"teacher": None if t is None else t.rest.get("numerics"),
            "student": None if m is None else (m.runtime or {}).get("numerics")}


def numerics_markdown(block: dict | None) -> list[str]:
    """One line: on which CPU each model was trained, and whether the pinned arithmetic held (MKL's AVX2 path)."""
    parts = []
    for who, st in (block or {}).items():
        if not st:
            parts.append(f"{who}: not recorded")
            continue
        cpu = st.get("cpu") or {}
        branch = st.get("mkl_branch")
        path = "MKL AVX2 path (pinned)" if branch == 10 else ("MKL not used" if branch is None else f"MKL path {branch}")
        parts.append(f"{who} on {cpu.get('model') or 'an unnamed CPU'} ({cpu.get('widest_vectors') or 'vectors n/a'}), "
                     f"{path}, MKL_CBWR={st.get('MKL_CBWR')}, ONEDNN_MAX_CPU_ISA={st.get('ONEDNN_MAX_CPU_ISA')}")
    return [f"Arithmetic: {'; '.join(parts)}.", ""] if parts else []


def distillation_block(m: StudentMetrics) -> dict:
    """KD student, scratch twin and teacher side by side: test metrics and accuracy under boosts."""
    models = {}
    for name in ("student", SCRATCH_MODEL, "teacher"):
        met = m.metrics(name)
        models[name] = {**{k: met.get(k) for k in ("accuracy", "auc", "rej30", "rej50")},
                        "boost_accuracy": {b["beta"]: b["accuracy"]
                                           for b in (m.robustness.get(name) or {}).get("boost", [])}}
    return {"seed": m.seed, "distill": m.distill or {}, "seal": m.seal or {},
            "n_test_jets": m.n_test_jets, "n_training_jets": m.n_training_jets, "models": models}


_LABELS = {"student": "KD student (quantised)", "student_scratch": "scratch twin (quantised)", "teacher": "teacher"}


def distillation_markdown(block: dict, kd: dict) -> list[str]:
    d, seal, n = block["distill"], block["seal"], block.get("n_training_jets") or {}
    betas = sorted({b for m in block["models"].values() for b in m["boost_accuracy"] if b > 0})
    multi = all(m.get("rej30") is None and m.get("rej50") is None for m in block["models"].values())
    rows = [{"model": _LABELS[name], "accuracy": fmt(m["accuracy"], ".4f"),
             ("macro AUC" if multi else "AUC"): fmt(m["auc"], ".4f"),
             **({} if multi else {"1/eB @ eS=30%": fmt(m["rej30"], ".1f"), "1/eB @ eS=50%": fmt(m["rej50"], ".1f")}),
             **{f"acc @ boost {b:g}": fmt(m["boost_accuracy"].get(b), ".4f") for b in betas}}
            for name, m in block["models"].items()]
    how = (f"alpha {fmt(d.get('alpha'), 'g')}, T {fmt(d.get('temperature'), 'g')}, "
           f"{fmt(n.get('transfer'), 'd')} transfer jets, {fmt(n.get('boosted_views'), 'd')} boosted views "
           f"(|beta| <= {fmt(d.get('augment_max_beta'), 'g')}), SEAL lambda {fmt(seal.get('lambda'), 'g')}")
    delta = kd["delta"]
    rej = "" if multi else (f", 1/eB@30% {fmt(delta['rej30'], '+.1f')}, 1/eB@50% {fmt(delta['rej50'], '+.1f')}")
    return ["## What distillation bought", "",
            f"The KD student against its scratch twin (same architecture, initial weights, labelled jets, boosted "
            f"views, SEAL and schedule; no teacher) and the teacher, on {fmt(block['n_test_jets'], 'd')} test jets; "
            f"student seed {fmt(block['seed'], 'd')}; distillation: {how}. Boosts along x (robustness check).", "",
            md_table(rows), "",
            f"KD vs scratch: accuracy {fmt(delta['accuracy'], '+.4f')}, {'macro ' if multi else ''}AUC "
            f"{fmt(delta['auc'], '+.4f')}{rej}. One seed: see benchmarks/RESULTS.md "
            f"({'multiclass' if multi else 'kd_gain'}) for the spread over seeds.", ""]


def unequal_cost_note(training: dict | None) -> list[str]:
    """With ``student.max_ebops`` the KD student keeps its best epoch within the bound; a scratch twin that never
    came within it keeps its best of all, at more EBOPs: the comparison above then favours the twin (said here)."""
    kd, twin = (training or {}).get("student") or {}, (training or {}).get(SCRATCH_MODEL) or {}
    if "kept the best of all" not in str(twin.get("stopped") or ""):
        return []
    return [f"Not at equal cost: the scratch twin never came within student.max_ebops, so it kept its best epoch of "
            f"all at {fmt(twin.get('ebops_kept'), '.0f')} EBOPs, against {fmt(kd.get('ebops_kept'), '.0f')} for the "
            "KD student (the difference above favours the twin); `trigger-kd front` compares at equal LUT.", ""]


def _delta(a, b):
    return None if a is None or b is None else a - b


def resources_block(run_dir: Path) -> dict | None:
    """The primary resource record, flattened for the report, with all records and the route's extras."""
    res = Resources.read(run_dir / SYNTH / RESOURCES)
    if res is None:
        return None
    primary = dict(res.primary)
    primary["latency_cycles"] = primary.get("latency_max_cycles", primary.get("latency_cycles"))
    primary["all_records"] = res.records
    primary["rtl_parity"], primary["da4ml_estimate"], primary["notes"] = res.rtl_parity, res.da4ml_estimate, res.notes
    return primary


def training_block(run_dir: Path) -> dict | None:
    """How each student model trained (``student/epoch_curve.json``): epochs run, the best-validation epoch kept,
    its validation AUC and loss, why training stopped; None for a run without the file."""
    curve = EpochCurve.read(Path(run_dir) / STUDENT / EPOCH_CURVE)
    if curve is None:
        return None
    out = {}
    for name, m in curve.models.items():
        best = curve.best(name) or {}
        out[name] = {"epochs": m.get("epochs"), "max_epochs": m.get("max_epochs"), "best_epoch": m.get("best_epoch"),
                     "best_val_auc": best.get("val_auc"), "best_val_loss": best.get("val_loss"),
                     "stopped": m.get("stopped"), "lr_schedule": m.get("lr_schedule"),
                     "train_seconds": m.get("train_seconds"), "ebops_kept": best.get("ebops")}
    return out


def training_markdown(block: dict | None, out: Path) -> list[str]:
    if not block:
        return []
    rows = [{"model": name, "epochs run": fmt(t.get("epochs"), "d"), "max epochs": fmt(t.get("max_epochs"), "d"),
             "best epoch (kept)": fmt(t.get("best_epoch"), "d"), "val AUC": fmt(t.get("best_val_auc"), ".4f"),
             "val loss": fmt(t.get("best_val_loss"), ".4f"), "train s": fmt(t.get("train_seconds"), ".0f"),
             "stopped by": t.get("stopped") or "n/a",
             **({"EBOPs (kept epoch)": fmt(t.get("ebops_kept"), ".0f")} if any(
                 b.get("ebops_kept") is not None for b in block.values()) else {})} for name, t in block.items()]
    lines = ["### Training (epoch curve)", "", f"Schedule `{next(iter(block.values())).get('lr_schedule')}`, early stopping "
             "on the validation AUC, the best-validation weights kept (student/epoch_curve.json).", "", md_table(rows), ""]
    if (out / EPOCH_CURVE_PLOT).is_file():
        lines += [f"![Epoch curve]({EPOCH_CURVE_PLOT})", ""]
    return lines


def build_report(run_dir: Path, out: Path, model: str, config_file: str = "") -> dict:
    run_dir, out = Path(run_dir), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    parity = Parity.read(run_dir / FIRMWARE / PARITY)
    report = {
        "model": model,
        "config": config_file,
        "run_dir": str(run_dir),
        "data": read_json(run_dir / DATA / SUMMARY),
        "physics": physics_block(run_dir),
        "parity": None if parity is None else parity.to_dict(),
        "resources": resources_block(run_dir),
        "generalisation": generalisation_block(run_dir),
        "training": training_block(run_dir),
        "quantisation": quantisation_block(run_dir),
        "numerics": numerics_block(run_dir),
    }
    report["standing"] = standing_block(run_dir, report)
    (out / REPORT_JSON).write_text(json.dumps(report, indent=2, default=float))
    for name in (ROC_PLOT, ROBUSTNESS_PLOT, EPOCH_CURVE_PLOT, CONFUSION_PLOT):
        src = run_dir / STUDENT / name
        if src.is_file():
            (out / name).write_bytes(src.read_bytes())
    if report["resources"]:
        resource_bars({model: report["resources"]}, out / "resources.png")
    (out / REPORT_MD).write_text(render_markdown(report, out))
    return report


def model_row(report: dict) -> dict:
    """One row of the at-a-glance table."""
    phys = report.get("physics") or {}
    s = phys.get("student") or {}
    r = report.get("resources") or {}
    p = report.get("parity") or {}
    pct = r.get("utilization_pct") or {}
    base = phys.get("baselines") or {}
    if is_multiclass(phys):  # K classes: accuracy first, the substructure classifier beside it
        figures = {"accuracy": fmt(s.get("accuracy"), ".4f"), "macro AUC": fmt(s.get("auc"), ".4f"),
                   "substructure BDT accuracy": fmt(((base.get("substructure") or {}).get("test") or {})
                                                    .get("accuracy"), ".4f"),
                   "output": p.get("output") or "logits"}
    else:
        figures = {"accuracy": fmt(s.get("accuracy"), ".3f"), "AUC": fmt(s.get("auc"), ".4f"),
                   "jet-mass AUC (own inputs)": fmt(((base.get("jet_mass_inputs") or {}).get("test") or {})
                                                    .get("auc"), ".4f"),
                   "1/eB@30%": fmt(s.get("rej30"), ".1f"), "1/eB@50%": fmt(s.get("rej50"), ".1f")}
    return {
        "model": report["model"],
        **figures,
        "latency": f"{fmt(r.get('latency_max_ns'), '.1f')} ns / {fmt(r.get('latency_cycles'), 'd')} cyc",
        "II": fmt(r.get("interval_max"), "d"),
        "DSP": _with_pct(r.get("dsp"), pct.get("dsp")),
        "LUT": _with_pct(r.get("lut"), pct.get("lut")),
        "FF": _with_pct(r.get("ff"), pct.get("ff")),
        "BRAM18": _with_pct(r.get("bram_18k"), pct.get("bram_18k")),
        "parity": (f"{p['bit_exact_fraction'] * 100:.2f} % of {p['n_jets']}" if p.get("n_jets") else "n/a"),
        "resources from": r.get("source", "n/a"),
    }


def _with_pct(value, pct) -> str:
    if value is None:
        return "n/a"
    return f"{fmt(value, 'g')} ({pct:.2f} %)" if pct is not None else fmt(value, "g")


def render_markdown(report: dict, out: Path) -> str:
    """report.md, in the order a trigger engineer reads it: what distillation bought, the figures at a glance and
    where the tagger sits among those built beside it, then physics, training, quantisation, firmware, resources."""
    phys = report.get("physics") or {}
    lines = opening_markdown(report)
    lines += ["## At a glance", "", md_table([model_row(report)]), ""]
    lines += standing_markdown(report.get("standing"))
    lines += physics_markdown(phys, out)
    lines += training_markdown(report.get("training"), out)
    lines += quantisation_markdown(report.get("quantisation"))
    lines += parity_markdown(report.get("parity"))
    lines += resources_markdown(report.get("resources"), out)
    lines += generalisation_markdown(report.get("generalisation"), out)
    return "\n".join(lines) + "\n"


def opening_markdown(report: dict) -> list[str]:
    """The title, what distillation bought (with the equal-cost caveat) and where the run came from."""
    phys = report.get("physics") or {}
    lines = [f"# {report['model']}: trigger_kd report", ""]
    if phys.get("distillation") and phys.get("kd_vs_scratch"):
        lines += distillation_markdown(phys["distillation"], phys["kd_vs_scratch"])
        lines += unequal_cost_note(report.get("training"))
    if report.get("config"):
        lines += [f"Config: `{report['config']}`. Run directory: `{report['run_dir']}`.", ""]
    return lines + numerics_markdown(report.get("numerics"))


def physics_markdown(phys: dict, out: Path) -> list[str]:
    """The physics section: a K-class tagger's figures (report/multiclass.py), or the binary ones
    (report/binary.py) with robustness to boosts and the plots."""
    if is_multiclass(phys):
        return multiclass_markdown(phys, out) + inputs_markdown(phys, True) + robustness_markdown(phys, out)
    return (binary_physics_markdown(phys) + inputs_markdown(phys, bool(physics_rows(phys)))
            + robustness_markdown(phys, out))
