"""Soft Lorentz symmetry (SEAL) vs an unconstrained teacher, W vs gluon, several seeds: Glowacki reproduced.

    python benchmarks/symmetry.py --out benchmarks/out/symmetry.json [--arch transformer|lorentznet]
        [--size cpu|gpu] [--seeds 1 2 3] [--seal-lambda 0.1] [--seal-generator-lambda 0] [--jets-per-class N]
        [--epochs N] [--particles N] [--d-model N --encoder-layers N --heads N --ff-dim N --head-hidden N ...]
        [--hidden N --layers N] [--lr X --weight-decay X --batch-size N] [--device D] [--eps-max X --eps-points N]
        [--workers 2] [--set k=v]

The Glowacki comparison (../shared/ANCHORS.md) on our generated jets. Default teacher: the plain
transformer encoder (``teacher.arch: transformer``, no symmetry built in: the paper's setup);
``--arch lorentznet`` is the earlier variant (SEAL on an already Lorentz-equivariant network, where it
acts through the fixed beams only). For each seed the real pipeline (data -> teacher -> student,
hls_configs/mlp_kd.yml, quick profile) trains an unconstrained teacher (teacher.seal_lambda 0) and a
SEAL teacher (teacher.seal_lambda LAMBDA, and teacher.seal_generator_lambda for the transformer) on one
W-vs-gluon dataset; then, with the library's own tools, ``trigger-kd evaluate`` scores each run on Z vs
gluon and top vs gluon jets it never saw (Table 3) and ``trigger-kd diagnose`` measures the teacher's
loss curvature (leading Hessian eigenvalue and Hutchinson trace, Table 2), its distillability (validation
MSE per epoch of the fixed reference student distilled from its logits with MSE, no labels: the final MSE
per teacher, also divided by the teacher's logit variance) and AUC vs pT smearing sigma (Fig. 7); the
in-distribution accuracy / AUC (Table 1) are the teacher's test metrics.

Figs. 5-6. This driver measures, per run, the teacher's mean cross-entropy L(theta + eps v) along the unit leading
Hessian eigenvector v (trigger_kd/train/curvature.py: ``loss_along_leading_eigenvector``; power iteration with
diagnose's settings: the same curvature_jets training jets in batches of 128, tol 1e-3, seed 0, so the same
lambda_max), for ``--eps-points`` eps evenly from -``--eps-max`` to +``--eps-max`` (default 21 points in
[-0.5, 0.5]: the grid of pyhessian's tutorial, pyhessian being the paper's tool; the paper's own grid is not
known here). That is the loss along the leading eigenvector of Fig. 5 as this project has described it; the
stored copy of the paper (arXiv 2601.06584v2, HTML) that could be searched holds only its abstract and
introduction, so neither Fig. 5's axes nor the definition of Fig. 6's R(epsilon) could be read. R(epsilon) is
therefore NOT reproduced; in its place, named as what it is, each run records the rise over the second-order
prediction, ``loss_rise_over_quadratic`` = (L(theta + eps v) - L(theta)) / (lambda_max eps^2 / 2) (1 where the
Hessian describes the slice, below 1 where the loss rises more slowly than the parabola), and the aggregate gives
the SEAL / unconstrained ratio of the mean rise per eps. ``figures_5_6`` in the JSON says the same. Cost: a second
power iteration (``--power-iterations`` Hessian-vector products) and ``--eps-points`` forward passes on the
curvature jets per run (see Sizes). The driver makes no plot; the curves are in the JSON.

Writes per-run values, the mean and sample std over seeds per variant, the SEAL / unconstrained ratios
(of the means, and per seed), a verdict against the paper's targets (``verdict``), sizes, jet counts, git
commit and command as JSON, and prints a short table. Runs (variant, seed) in ``--workers`` processes of
one thread each once the datasets exist.

Sizes (``--size``; each flag overrides its preset):
- ``cpu`` (default), transformer: 20,000 jets per class (24,000 training jets), 25 epochs, 32 particles,
  the quick/study profiles' encoder (d_model 64, 3 layers, 4 heads, feed-forward 64, head 64 -> 32 -> 1,
  82k parameters), the profile's lr / weight decay / batch 64; curvature on 256 jets (20 + 20 products),
  20 reference-student epochs. Chosen to finish within 90 minutes on 2 cores, estimated from a
  micro-benchmark of this encoder's training step (batch 64, one thread, on this session's 2-core machine
  with both cores busy, load average 6, so pessimistic): 1,116 jets/s unconstrained, 575 jets/s with the
  SEAL output term (two forwards). 24,000 x 25 = 600k jet-epochs per run: about 540 s (unconstrained) and
  1,040 s (SEAL) per run, plus about 150 s per run for logits, robustness checks, the quick-profile student
  (5k-per-class transfer set), the OOD evaluations, the curvature (40 Hessian-vector products on 256 jets)
  and the reference-student curve; with 2 workers, SEAL runs first: SEAL 1+2 side by side, then SEAL 3
  beside unconstrained 1 and 2, then unconstrained 3: about 3,100 s, plus about 300 s of jet generation
  (4 classes x 20k jets at 274 jets/s on 2 cores) where the cache does not hold them: about 57 minutes, plus
  Figs. 5-6 (20 more Hessian-vector products and 21 forward passes on the 256 curvature jets per run: about half
  the curvature's cost, not timed at this size; a few minutes at most over the 6 runs). Measured alone on an
  idle 2-core AMD EPYC (Zen 4), gluon jets generated and the other classes cached: 3,717 s (62 min); per run
  SEAL about 1,400 s, unconstrained about 800 s (benchmarks/history/symmetry.md).
  The generator term (--seal-generator-lambda > 0: a double backward per generator) costs several times
  more per epoch and is off by default. LorentzNet (``--arch lorentznet``): the earlier default, 10,000
  jets per class, 8 epochs, hidden 32, 3 LGEBs (about 45 minutes on 2 cores, benchmarks/history/symmetry.md).
- ``gpu``: the paper's sizes on ``teacher.device cuda``: transformer d_model 256, 3 layers, 4 heads,
  feed-forward 256, head 256 -> 128 -> 1, 32 particles, 100 epochs, AdamW lr 5e-4 (the SEAL code's; the
  paper's Adam 5e-3) and weight decay 5e-4, batch 256, 100,000 jets per class, curvature on 1,024 jets
  (50 + 50 products), 50 reference-student epochs (LorentzNet: 72 x 6, 35 epochs, the paper profile's).
  Not run or timed here; the diagnostics (curvature, reference student) run on the CPU.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from benchmarks.provenance import add_options, machine, provenance, write_record  # noqa: E402

CONFIG = REPO / "hls_configs" / "mlp_kd.yml"
SIGNAL, BACKGROUND = "w", "gluon"
OOD = {"z_vs_gluon": ("z", "gluon"), "top_vs_gluon": ("top", "gluon")}
VARIANTS = ("unconstrained", "seal")
# Glowacki's constrained / unconstrained curvature ratios (../shared/ANCHORS.md)
PAPER_RATIOS = {"lambda_max": 0.079, "trace": 0.119}
# teacher size keys of each arch (flag name = key with - for _): the others are refused by the config
ARCH_SIZES = {"transformer": ("d_model", "encoder_layers", "heads", "ff_dim", "head_hidden"),
              "lorentznet": ("hidden", "layers")}
_COMMON = {"seal_lambda": 0.1, "seal_generator_lambda": 0.0, "particles": 32, "lr": None, "weight_decay": None,
           "batch_size": None, "device": None, "eps_max": 0.5, "eps_points": 21}
SIZES = {  # --size presets per arch (None: the quick profile's value); the docstring says where they come from
    ("cpu", "transformer"): {**_COMMON, "jets_per_class": 20000, "epochs": 25, "d_model": 64, "encoder_layers": 3,
                             "heads": 4, "ff_dim": 64, "head_hidden": [64, 32], "curvature_jets": 256,
                             "power_iterations": 20, "trace_samples": 20, "compress_epochs": 20},
    ("cpu", "lorentznet"): {**_COMMON, "jets_per_class": 10000, "epochs": 8, "hidden": 32, "layers": 3,
                            "curvature_jets": 256, "power_iterations": 20, "trace_samples": 20, "compress_epochs": 20},
    ("gpu", "transformer"): {**_COMMON, "jets_per_class": 100000, "epochs": 100, "d_model": 256, "encoder_layers": 3,
                             "heads": 4, "ff_dim": 256, "head_hidden": [256, 128], "lr": 5e-4, "weight_decay": 5e-4,
                             "batch_size": 256, "device": "cuda", "curvature_jets": 1024, "power_iterations": 50,
                             "trace_samples": 50, "compress_epochs": 50},
    ("gpu", "lorentznet"): {**_COMMON, "jets_per_class": 100000, "epochs": 35, "particles": 128, "hidden": 72,
                            "layers": 6, "batch_size": 32, "device": "cuda", "curvature_jets": 1024,
                            "power_iterations": 50, "trace_samples": 50, "compress_epochs": 50},
}
FIGURES_5_6 = {  # what the JSON's eigvec_* figures are, and what they are not
    "fig5_loss_along_leading_eigenvector": (
        "measured: runs[].loss_along_eigenvector.loss = the teacher's mean cross-entropy at theta + eps v on the "
        "curvature jets (the first curvature_jets training jets), v the unit leading Hessian eigenvector from power "
        "iteration, eval mode; eps evenly in [-eps_max, eps_max] (pyhessian's tutorial grid by default, the paper's "
        "grid unknown); aggregate keys eigvec_loss_eps_*, eigvec_loss_rise_eps_* (L - L(theta))"),
    "fig6_R_epsilon": (
        "NOT reproduced: the stored text of arXiv 2601.06584v2 that could be searched (abstract and introduction) "
        "does not define R(epsilon). Measured in its place, not to be read as the paper's R: "
        "eigvec_rise_over_quadratic_eps_* = (L(theta + eps v) - L(theta)) / (lambda_max eps^2 / 2) per run, and "
        "seal_over_unconstrained[eigvec_loss_rise_eps_*] = the SEAL / unconstrained ratio of the mean rise per eps"),
}


def data_overrides(args, signal: str, background: str) -> list[str]:
    return [f"data.signal=[{signal}]", f"data.background=[{background}]", f"data.jets_per_class={args.jets_per_class}",
            *args.set]


def teacher_overrides(args, variant: str, seed: int) -> list[str]:
    """The teacher keys of one run: the arch's sizes only (the other arch's keys are refused), SEAL per variant."""
    seal = variant == "seal"
    out = [f"teacher.arch={args.arch}", f"teacher.epochs={args.epochs}", f"teacher.n_particles={args.particles}",
           f"teacher.seed={seed}", f"teacher.seal_lambda={args.seal_lambda if seal else 0.0}", "teacher.threads=1"]
    for key in ARCH_SIZES[args.arch]:
        value = getattr(args, key)
        text = f"[{','.join(map(str, value))}]" if isinstance(value, list) else value
        out.append(f"teacher.{key}={text}")
    if args.arch == "transformer":
        out.append(f"teacher.seal_generator_lambda={args.seal_generator_lambda if seal else 0.0}")
    out += [f"teacher.{k}={getattr(args, k)}" for k in ("lr", "weight_decay", "batch_size", "device")
            if getattr(args, k) is not None]
    return out


def run_overrides(args, variant: str, seed: int) -> list[str]:
    return [*data_overrides(args, SIGNAL, BACKGROUND), *teacher_overrides(args, variant, seed), "student.threads=1"]


def _init_worker() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


def one_run(args, variant: str, seed: int) -> dict:
    """Train (or reuse from the cache) one teacher + student, evaluate it out of distribution, diagnose it."""
    from trigger_kd.cli import run_data_stage
    from trigger_kd.config import load_config
    from trigger_kd.generalisation.diagnose import diagnose
    from trigger_kd.generalisation.evaluate import evaluate_run
    from trigger_kd.pipeline import run_pipeline
    from trigger_kd.stages import STAGES

    t0 = time.time()
    run_dir = Path(args.work) / f"{variant}_seed{seed}"
    cfg = load_config(CONFIG, run_overrides(args, variant, seed))
    run_pipeline(cfg, STAGES, run_dir, to="student", progress=False)
    t_train = time.time() - t0
    for name, (sig, bkg) in OOD.items():
        evaluate_run(run_dir, str(CONFIG), name=name, overrides=data_overrides(args, sig, bkg), progress=False,
                     run_data=run_data_stage)
    diag = diagnose(run_dir, curvature_jets=args.curvature_jets, power_iterations=args.power_iterations,
                    trace_samples=args.trace_samples, compress_epochs=args.compress_epochs, progress=False)
    slice_ = loss_along_eigenvector(run_dir, args)
    teacher_metrics = json.loads((run_dir / "teacher" / "metrics.json").read_text())
    student_metrics = json.loads((run_dir / "student" / "metrics.json").read_text())
    curv = diag["curvature"]["teacher"]
    comp = diag["compressibility"]
    return {
        "variant": variant, "seal_lambda": cfg.teacher.seal_lambda, "seed": seed, "run_dir": str(run_dir),
        "seal_generator_lambda": cfg.teacher.seal_generator_lambda if args.arch == "transformer" else None,
        "accuracy": diag["in_distribution"]["teacher"]["accuracy"],
        "auc": diag["in_distribution"]["teacher"]["auc"],
        "lambda_max": curv["lambda_max"], "trace": curv["trace"], "trace_std_error": curv["trace_std_error"],
        "power_converged": curv["converged"],
        "ood_auc": {name: diag["ood"][name]["teacher"]["auc"] for name in OOD},
        "ood_student_auc": {name: diag["ood"][name]["student"]["auc"] for name in OOD},
        "smear_auc": {str(p["sigma"]): p["auc"] for p in diag["smearing"]["teacher"]},
        "compress_val_mse": [p["val_mse"] for p in comp["curve"]],
        "loss_along_eigenvector": slice_,
        "teacher_logit_variance": comp["teacher_logit_variance"],
        "jets": {"train": comp["n_train_jets"], "val": comp["n_val_jets"], "test": student_metrics["n_test_jets"],
                 "curvature": diag["settings"]["curvature_jets"],
                 **{f"ood_{name}": diag["ood"][name]["n_jets"] for name in OOD},
                 **{f"ood_{name}_left_out": diag["ood"][name]["n_left_out_training_jets"] for name in OOD}},
        "teacher_arch": teacher_metrics.get("arch"), "teacher_device": teacher_metrics.get("device"),
        "teacher_training": teacher_metrics.get("training"),
        "n_teacher_params": teacher_metrics.get("n_params"),
        "seconds": {"pipeline": round(t_train, 1), "total": round(time.time() - t0, 1)},
    }


def eps_grid(args) -> list[float]:
    """``eps_points`` values evenly from -eps_max to eps_max (rounded to 10 digits: stable JSON keys, no -0)."""
    n, top = args.eps_points, args.eps_max
    return [float(f"{-top + 2 * top * i / (n - 1):.10g}") + 0.0 for i in range(n)]


def loss_along_eigenvector(run_dir: Path, args) -> dict:
    """Figs. 5-6 (``FIGURES_5_6``): the teacher's cross-entropy along its unit leading Hessian eigenvector, on
    diagnose's curvature jets and batches with diagnose's power-iteration settings (so the same lambda_max)."""
    import numpy as np
    import torch

    from trigger_kd.data.formats import read_canonical
    from trigger_kd.generalisation.run_models import RunModels
    from trigger_kd.models.teachers import teacher_batch
    from trigger_kd.rundir import split_file
    from trigger_kd.train.curvature import loss_along_leading_eigenvector

    t0 = time.time()
    models = RunModels(run_dir, "diagnose")
    c, y = read_canonical(models.dirs["data"] / split_file("train"))
    n = min(args.curvature_jets, len(y))
    c, y, size = c[:n], y[:n].astype(np.int64), 128  # diagnose's _teacher_curvature batches
    batches = [(teacher_batch(models.teacher, c[i:i + size], models.cfg.teacher.n_particles),
                torch.from_numpy(y[i:i + size])) for i in range(0, n, size)]

    def loss(m, batch):
        return torch.nn.functional.cross_entropy(m(batch[0]), batch[1])

    torch.manual_seed(0)
    out = loss_along_leading_eigenvector(models.teacher, batches, loss, eps_grid(args),
                                         max_iter=args.power_iterations, tol=1e-3, seed=0)
    return {**out, "loss_fn": "cross-entropy", "seconds": round(time.time() - t0, 1)}


def _stats(values: list) -> dict:
    vals = [float(v) for v in values if v is not None]
    return {"mean": statistics.fmean(vals) if vals else None,
            "std": statistics.stdev(vals) if len(vals) > 1 else None, "n": len(vals), "values": values}


def _series(run: dict) -> dict[str, float]:
    """The scalar figures of one run, flattened (the rows of the table)."""
    out = {"accuracy": run["accuracy"], "auc": run["auc"], "lambda_max": run["lambda_max"], "trace": run["trace"]}
    out.update({f"ood_auc_{k}": v for k, v in run["ood_auc"].items()})
    out.update({f"smear_auc_sigma_{k}": v for k, v in run["smear_auc"].items()})
    sigmas = sorted(run["smear_auc"], key=float)
    out["smear_auc_loss"] = run["smear_auc"][sigmas[0]] - run["smear_auc"][sigmas[-1]]  # AUC lost at the largest sigma
    out.update({f"compress_val_mse_epoch_{i}": v for i, v in enumerate(run["compress_val_mse"])})
    out["compress_final_val_mse"] = run["compress_val_mse"][-1]
    var = run["teacher_logit_variance"]
    out["compress_final_val_mse_over_logit_variance"] = run["compress_val_mse"][-1] / var if var else None
    curve = run.get("loss_along_eigenvector")  # Figs. 5-6 (FIGURES_5_6)
    if curve:
        for e, loss, rise, rq in zip(curve["eps"], curve["loss"], curve["loss_rise"],
                                     curve["loss_rise_over_quadratic"]):
            out[f"eigvec_loss_eps_{e:g}"] = loss
            out[f"eigvec_loss_rise_eps_{e:g}"] = rise
            out[f"eigvec_rise_over_quadratic_eps_{e:g}"] = rq
    return out


def _eigvec_eps(keys, prefix: str = "eigvec_loss_rise_eps_") -> list[float]:
    """The eps of the Figs. 5-6 keys present, sorted."""
    return sorted(float(k[len(prefix):]) for k in keys if k.startswith(prefix))


def aggregate(runs: list[dict], seeds: list[int]) -> dict:
    by = {(r["variant"], r["seed"]): _series(r) for r in runs}
    keys = list(_series(runs[0]))
    agg = {v: {k: _stats([by[(v, s)][k] for s in seeds if (v, s) in by]) for k in keys} for v in VARIANTS}
    ratios = {}
    for k in keys:
        u, c = agg["unconstrained"][k]["mean"], agg["seal"][k]["mean"]
        per_seed = [by[("seal", s)][k] / by[("unconstrained", s)][k] for s in seeds
                    if ("seal", s) in by and ("unconstrained", s) in by and by[("unconstrained", s)][k]
                    and by[("seal", s)][k] is not None]
        ratios[k] = {"ratio_of_means": c / u if u and c is not None else None, "per_seed": _stats(per_seed)}
    return {"per_variant": agg, "seal_over_unconstrained": ratios}


def compare(agg: dict, key: str, seal_better: str) -> dict:
    """SEAL vs unconstrained on one figure: better when its mean is ``higher`` / ``lower``; beyond the seed
    spread when the difference of the means exceeds the larger of the two seed std (None with one seed)."""
    u, s = agg["per_variant"]["unconstrained"][key], agg["per_variant"]["seal"][key]
    if u["mean"] is None or s["mean"] is None:
        return {"unconstrained": u["mean"], "seal": s["mean"], "seal_better": None, "beyond_seed_spread": None}
    diff = s["mean"] - u["mean"]
    better = diff > 0 if seal_better == "higher" else diff < 0
    spread = max(u["std"] or 0.0, s["std"] or 0.0) if u["std"] is not None or s["std"] is not None else None
    return {"unconstrained": u["mean"], "seal": s["mean"], "difference": diff, "seed_spread": spread,
            "seal_better": bool(better),
            "beyond_seed_spread": None if spread is None else bool(better and abs(diff) > spread)}


def verdict(agg: dict) -> dict:
    """The issue's targets for SEAL / unconstrained: curvature ratios below 1 beyond the seed spread (1 minus the
    ratio of the means larger than the std of the seed-paired ratios; the paper's ratios beside them), OOD AUC
    higher on every OOD set, a smaller AUC loss under pT smearing, a lower final distillation MSE."""
    out: dict = {}
    for k, paper in PAPER_RATIOS.items():
        r = agg["seal_over_unconstrained"][k]
        ratio, spread = r["ratio_of_means"], r["per_seed"]["std"]
        out[f"{k}_ratio"] = {
            "measured": ratio, "per_seed_std": spread, "paper": paper,
            "below_1": None if ratio is None else bool(ratio < 1),
            "below_1_beyond_seed_spread": None if ratio is None or spread is None else bool(1 - ratio > spread),
            "at_or_below_paper": None if ratio is None else bool(ratio <= paper)}
    ood = {name: compare(agg, f"ood_auc_{name}", "higher") for name in OOD}
    out["ood_auc_higher_for_seal"] = {**ood, "all": all(v["seal_better"] for v in ood.values())}
    out["smaller_auc_loss_under_smearing"] = compare(agg, "smear_auc_loss", "lower")
    out["lower_final_distillation_mse"] = compare(agg, "compress_final_val_mse", "lower")
    out["lower_final_distillation_mse_over_logit_variance"] = compare(
        agg, "compress_final_val_mse_over_logit_variance", "lower")
    out["in_distribution_auc"] = compare(agg, "auc", "higher")
    eps = _eigvec_eps(agg["per_variant"]["unconstrained"])
    if eps:  # Fig. 5: a flatter slice = a smaller loss rise at both ends of the eps grid
        ends = {f"eps_{e:g}": compare(agg, f"eigvec_loss_rise_eps_{e:g}", "lower") for e in (eps[0], eps[-1])}
        out["smaller_loss_rise_along_leading_eigenvector"] = {
            **ends, "both": all(v["seal_better"] for v in ends.values())}
    return out


def _fmt(s: dict, digits: int = 4) -> str:
    if s["mean"] is None:
        return "-"
    m = f"{s['mean']:.{digits}g}" if abs(s["mean"]) >= 10 else f"{s['mean']:.{digits}f}"
    if s["std"] is None:
        return m
    sd = f"{s['std']:.{digits}g}" if abs(s["std"]) >= 10 else f"{s['std']:.{digits}f}"
    return f"{m} ± {sd}"


def table(agg: dict, lam: float) -> str:
    rows = [f"| figure (teacher) | unconstrained | SEAL (lambda {lam:g}) | SEAL / unconstrained |", "|---|---|---|---|"]
    epochs = [int(x.rsplit("_", 1)[1]) for x in agg["per_variant"]["unconstrained"]
              if x.startswith("compress_val_mse_epoch_")]
    eps = _eigvec_eps(agg["per_variant"]["unconstrained"])
    shown_eps = {eps[0], eps[len(eps) // 4], eps[-1 - len(eps) // 4], eps[-1]} if eps else set()
    for k, u in agg["per_variant"]["unconstrained"].items():
        if k.startswith("compress_val_mse_epoch_") and int(k.rsplit("_", 1)[1]) not in (0, 1, 2, 5, 10, max(epochs)):
            continue
        hidden_eps = k.startswith("eigvec_") and float(k.rsplit("_", 1)[1]) not in shown_eps
        if k.startswith("eigvec_loss_eps_") or hidden_eps:
            continue  # Figs. 5-6: the rises at four eps in the table, every eps in the JSON
        r = agg["seal_over_unconstrained"][k]
        ratio = "-" if r["ratio_of_means"] is None else f"{r['ratio_of_means']:.3f}"
        if r["per_seed"]["std"] is not None:
            ratio += f" (per seed {_fmt(r['per_seed'], 3)})"
        rows.append(f"| {k} | {_fmt(u)} | {_fmt(agg['per_variant']['seal'][k])} | {ratio} |")
    return "\n".join(rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_options(ap, {"seeds": "teacher seeds (one dataset)", "workers": "(variant, seed) runs in parallel, one thread "
                     "each", "set": "further config override for every run"},
                out="benchmarks/out/symmetry.json", work="benchmarks/out/symmetry_runs", seeds=[1, 2, 3], workers=2,
                set=[])
    ap.add_argument("--arch", choices=["transformer", "lorentznet"], default="transformer", help="teacher.arch")
    ap.add_argument("--size", choices=["cpu", "gpu"], default="cpu", help="size preset (docstring); flags override it")
    ap.add_argument("--jets-per-class", type=int, help="generated jets per class (60/20/20 split)")
    ap.add_argument("--epochs", type=int, help="teacher epochs")
    ap.add_argument("--particles", type=int, help="teacher constituents per jet")
    ap.add_argument("--d-model", type=int, help="transformer width")
    ap.add_argument("--encoder-layers", type=int, help="transformer encoder layers")
    ap.add_argument("--heads", type=int, help="transformer attention heads")
    ap.add_argument("--ff-dim", type=int, help="transformer feed-forward width")
    ap.add_argument("--head-hidden", type=int, nargs="+", help="transformer head widths before the logit")
    ap.add_argument("--hidden", type=int, help="LorentzNet width")
    ap.add_argument("--layers", type=int, help="LorentzNet LGEB layers")
    ap.add_argument("--lr", type=float, help="teacher.lr (default: the profile's)")
    ap.add_argument("--weight-decay", type=float, help="teacher.weight_decay (default: the profile's)")
    ap.add_argument("--batch-size", type=int, help="teacher.batch_size (default: the profile's)")
    ap.add_argument("--device", help="teacher.device (default: auto; the gpu size: cuda)")
    ap.add_argument("--seal-lambda", type=float)
    ap.add_argument("--seal-generator-lambda", type=float, help="transformer only: the generator-gradient term")
    ap.add_argument("--curvature-jets", type=int)
    ap.add_argument("--power-iterations", type=int)
    ap.add_argument("--trace-samples", type=int)
    ap.add_argument("--compress-epochs", type=int)
    ap.add_argument("--eps-max", type=float, help="Figs. 5-6: eps from -X to X along the unit eigenvector (0.5)")
    ap.add_argument("--eps-points", type=int, help="Figs. 5-6: number of eps (21)")
    args = ap.parse_args(argv)
    preset = SIZES[(args.size, args.arch)]
    other = next(a for a in ARCH_SIZES if a != args.arch)
    given = [k for k in (*ARCH_SIZES[other], "seal_generator_lambda") if getattr(args, k) is not None
             and (k != "seal_generator_lambda" or args.arch != "transformer")]
    if given:
        ap.error(f"--{given[0].replace('_', '-')} does not apply to --arch {args.arch}")
    for key, value in preset.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.seal_lambda <= 0:
        ap.error("--seal-lambda must be > 0 (the unconstrained teacher is the lambda 0 baseline)")
    if args.workers < 1:
        ap.error("--workers must be at least 1")
    if args.eps_max <= 0 or args.eps_points < 2:
        ap.error("--eps-max must be > 0 and --eps-points at least 2")
    return args


def sizes(args) -> dict:
    keys = ("arch", "size", "jets_per_class", "epochs", "particles", *ARCH_SIZES[args.arch], "lr", "weight_decay",
            "batch_size", "device", "seeds", "seal_lambda", "seal_generator_lambda", "curvature_jets",
            "power_iterations", "trace_samples", "compress_epochs", "eps_max", "eps_points", "workers")
    return {**{k: getattr(args, k) for k in keys}, "overrides": args.set}


def main() -> int:
    args = parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"
    from trigger_kd.config import load_config
    from trigger_kd.pipeline import run_pipeline
    from trigger_kd.stages import STAGES

    t0, measured = time.time(), provenance(flat_git=True)  # the code that is measured
    # the datasets first, in this process (generation on every core): the runs then reuse the cache
    for sig, bkg in [(SIGNAL, BACKGROUND), *OOD.values()]:
        cfg = load_config(CONFIG, data_overrides(args, sig, bkg))
        run_pipeline(cfg, STAGES, Path(args.work) / "data" / f"{sig}_vs_{bkg}", to="data", progress=False)
    t_data = time.time() - t0
    print(f"[symmetry] datasets ready in {t_data:.0f} s", flush=True)
    # the SEAL teachers first: they take 2-3 times longer (two forwards per batch), so the workers finish together
    jobs = [(v, s) for v in reversed(VARIANTS) for s in args.seeds]
    runs = []
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=get_context("spawn"),
                             initializer=_init_worker) as pool:
        futures = [pool.submit(one_run, args, *job) for job in jobs]
        for fut in futures:
            r = fut.result()
            runs.append(r)
            print(f"[symmetry] {r['variant']} seed {r['seed']}: AUC {r['auc']:.4f}, lambda_max {r['lambda_max']:.4g}, "
                  f"trace {r['trace']:.4g}, OOD AUC " + ", ".join(f"{k} {v:.4f}" for k, v in r["ood_auc"].items())
                  + f", loss rise at eps {r['loss_along_eigenvector']['eps'][-1]:g} "
                  f"{r['loss_along_eigenvector']['loss_rise'][-1]:.4g} ({r['seconds']['total']:.0f} s)", flush=True)
    agg = aggregate(runs, args.seeds)
    result = {
        "benchmark": "symmetry",
        **measured,
        "task": f"{SIGNAL} vs {BACKGROUND}", "ood_tasks": {k: f"{s} vs {b}" for k, (s, b) in OOD.items()},
        "config": str(CONFIG.relative_to(REPO)),
        "teacher_arch": args.arch,
        "sizes": sizes(args),
        "jets": runs[0]["jets"],
        "n_teacher_params": runs[0]["n_teacher_params"],
        "aggregate": agg,
        "verdict": verdict(agg),
        "figures_5_6": FIGURES_5_6,
        "runs": runs,
        "source": "teacher figures; in-distribution and smearing on the W-vs-gluon test jets, curvature on the first "
                  "curvature_jets training jets, compressibility on the training/validation jets, OOD on the other "
                  "tasks' test jets with the run's training/validation jets left out",
        "machine": machine(load_average_at_end=os.getloadavg()),
        "data_seconds": round(t_data, 1),
        "wall_seconds": round(time.time() - t0, 1),
    }
    write_record(args.out, result, default=float)
    print(table(agg, args.seal_lambda))
    print(json.dumps(result["verdict"], indent=1, default=float))
    print(f"[symmetry] {len(runs)} runs ({args.arch}), jets {result['jets']}, wall {result['wall_seconds']:.0f} s "
          f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
