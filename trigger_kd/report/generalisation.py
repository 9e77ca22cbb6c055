"""The report's "Generalisation" section: other tasks' jets, loss curvature, compressibility, smearing.

Reads ``RUN_DIR/diagnostics.json`` (``trigger-kd diagnose``) and ``RUN_DIR/evaluate/*.json``
(``trigger-kd evaluate``); absent files leave the section out.
"""
from __future__ import annotations

from pathlib import Path

from ..console import warn
from ..rundir import DIAGNOSTICS, EVALUATE_DIR, MODELS
from ..runcheck import stale_result
from .records import DamagedRecord, current_and_damaged, read_diagnostics
from .tables import fmt, md_table


def current_evaluations(run_dir: Path) -> tuple[dict, dict, dict]:
    """(``evaluate/*.json`` made from the run's current stages, {file: why stale} for those made from others,
    {file: why damaged} for those that are not evaluations: each named in a warning too)."""
    checked, damaged = current_and_damaged(run_dir)
    for name, why in damaged.items():
        warn(f"{Path(run_dir) / name}: damaged ({why}); left out: rerun `trigger-kd evaluate {run_dir} --on ...`")
    current, stale = {}, {}
    for name, result in checked.items():
        why = stale_result(run_dir, result, f"{EVALUATE_DIR}/{name}.json")
        if why:
            stale[f"{EVALUATE_DIR}/{name}.json"] = f"{why}: rerun `trigger-kd evaluate {run_dir} --on ...`"
        else:
            current[name] = result
    return current, stale, damaged


def generalisation_block(run_dir: Path) -> dict | None:
    """diagnostics.json and evaluate/*.json, without those made from earlier stages (listed in ``stale``) or
    damaged (listed in ``damaged``: never shown as figures)."""
    run_dir = Path(run_dir)
    ood, stale, damaged = current_evaluations(run_dir)  # newer than a diagnostics.json that predates them
    try:
        diag = read_diagnostics(run_dir / DIAGNOSTICS)
    except DamagedRecord as e:
        diag, damaged[DIAGNOSTICS] = None, f"{e.why}: rerun `trigger-kd diagnose {run_dir}`"
    if diag is not None:
        why = stale_result(run_dir, diag, DIAGNOSTICS)
        if why:
            stale[DIAGNOSTICS] = f"{why}: rerun `trigger-kd diagnose {run_dir}`"
            diag = None
    if diag is None and not ood and not stale and not damaged:
        return None
    return {**(diag or {}), "ood": ood, "stale": stale, "damaged": damaged,
            "diagnostics_file": str(run_dir / DIAGNOSTICS) if diag else None}


def compressibility_plot(block: dict, path: Path) -> bool:
    """Validation MSE of the reference student vs epoch; False when there is no curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..atomic import atomic_path

    comp = block.get("compressibility") or {}
    curve = comp.get("curve") or []
    if not curve:
        return False
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    ax.plot([p["epoch"] for p in curve], [p["val_mse"] for p in curve], marker="o", ms=3, label="validation")
    ax.plot([p["epoch"] for p in curve[1:]], [p["train_mse"] for p in curve[1:]], ls="--", label="training")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE (reference student vs teacher logits)")
    ax.set_yscale("log")
    ax.set_title(f"{comp.get('n_train_jets')} training / {comp.get('n_val_jets')} validation jets", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return True


def generalisation_markdown(block: dict | None, out: Path) -> list[str]:
    if not block:
        return []
    lines = ["## Generalisation", ""]
    for name, why in (block.get("stale") or {}).items():
        lines += [f"- Left out, stale: `{name}` ({why}).", ""]
    for name, why in (block.get("damaged") or {}).items():
        lines += [f"- Left out, damaged: `{name}` ({why}).", ""]
    if block.get("task"):
        lines += [f"Trained on **{block['task']}**; `trigger-kd diagnose` results from `{block.get('diagnostics_file')}`.", ""]
    ood = block.get("ood") or {}
    if ood:
        rows = [{"evaluation": name, "task": r.get("task"), "jets": fmt(r.get("n_jets"), "d"),
                 "left out (trained on)": fmt(r.get("n_left_out_training_jets"), "d"),
                 **{f"AUC {m}": fmt((r.get(m) or {}).get("auc"), ".4f") for m in MODELS},
                 **{f"acc {m}": fmt((r.get(m) or {}).get("accuracy"), ".4f") for m in MODELS}}
                for name, r in ood.items()]
        lines += ["### Other tasks' jets (`trigger-kd evaluate`)", "", md_table(rows), ""]
        said = [f"- `{name}`: {w}" for name, r in ood.items() for w in r.get("warnings") or []]
        lines += ["What the data checks found borderline in the scored jets:", "", *said, ""] if said else []
    cur = block.get("curvature") or {}
    rows = [{"model": m, "loss": c.get("loss"), "lambda_max": fmt(c.get("lambda_max"), ".4g"),
             "trace": f"{fmt(c.get('trace'), '.4g')} ± {fmt(c.get('trace_std_error'), '.2g')}",
             "converged": c.get("converged"), "jets": fmt(c.get("n_jets"), "d"),
             "parameters": fmt(c.get("n_parameters"), "d")}
            for m, c in cur.items() if isinstance(c, dict) and "lambda_max" in c]
    if rows:
        lines += ["### Loss curvature", "", f"Hessian of the training loss on the {cur.get('source', 'n/a')}: "
                  "leading eigenvalue by power iteration, trace by Hutchinson (± its standard error).", "",
                  md_table(rows), ""]
        lines += [f"- {m}: {c['skipped']}" for m, c in cur.items() if isinstance(c, dict) and "skipped" in c]
    comp = block.get("compressibility")
    if comp:
        ref = comp.get("reference_student") or {}
        lines += ["### Compressibility", "",
                  f"The teacher distilled into the fixed reference student ({fmt(ref.get('n_parameters'), 'd')} "
                  f"parameters, MSE on logits): validation MSE {fmt(comp['curve'][0]['val_mse'], '.4g')} before "
                  f"training, {fmt(comp.get('final_val_mse'), '.4g')} after {len(comp['curve']) - 1} epochs "
                  f"(teacher logit variance {fmt(comp.get('teacher_logit_variance'), '.4g')}; "
                  f"{comp.get('n_val_jets')} validation jets).", ""]
        if compressibility_plot(block, out / "compressibility.png"):
            lines += ["![Compressibility](compressibility.png)", ""]
    smear = block.get("smearing") or {}
    sigmas = sorted({p["sigma"] for m in MODELS for p in smear.get(m) or []})
    if sigmas:
        rows = [{"sigma": fmt(s, "g"), **{f"AUC {m}": fmt(next((p["auc"] for p in smear.get(m) or []
                                                               if p["sigma"] == s), None), ".4f") for m in MODELS}}
                for s in sigmas]
        lines += ["### pT smearing", "", "p'T = pT (1 + sigma eps), eps ~ N(0, 1) per constituent, on the test jets "
                  f"({smear.get('source', 'n/a')}).", "", md_table(rows), ""]
    return lines
