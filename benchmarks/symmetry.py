"""Soft Lorentz symmetry (SEAL) vs an unconstrained LorentzNet teacher, W vs gluon, several seeds.

    python benchmarks/symmetry.py --out benchmarks/out/symmetry.json [--seeds 1 2 3] [--jets-per-class 10000]
        [--epochs 8] [--particles 32] [--hidden 32] [--layers 3] [--seal-lambda 0.1] [--workers 2]

The Glowacki comparison (../shared/ANCHORS.md) on our generated jets: for each seed, the real
pipeline (data -> teacher -> student, hls_configs/mlp_kd.yml, quick profile) trains an
unconstrained teacher (teacher.seal_lambda 0) and a SEAL teacher (teacher.seal_lambda LAMBDA)
on one W-vs-gluon dataset; then, with the library's own tools,
``trigger-kd evaluate`` scores each run on Z vs gluon and top vs gluon jets it never saw
(out of distribution) and ``trigger-kd diagnose`` measures the teacher's loss curvature
(leading Hessian eigenvalue and Hutchinson trace), its compressibility (validation MSE per
epoch of the fixed reference student distilled from its logits) and AUC vs pT smearing sigma.
Writes per-run values and the mean and sample std over seeds per variant, the SEAL /
unconstrained ratios (of the means, and per seed), sizes, jet counts, git commit and command
as JSON, and prints a short table. Runs (variant, seed) in ``--workers`` processes of one
thread each once the datasets exist.

Default sizes (10,000 jets per class: 12,000 training jets; 8 epochs; 32 particles, hidden 32,
3 layers) are chosen to finish within 60 minutes on 2 idle cores, estimated from measured teacher
throughput: 294 training jets/s per idle core unconstrained (benchmarks/RESULTS.md), and the SEAL
teacher at about a third of that (two forwards and a wider backward per batch; 84 vs 226-270
jets/s side by side in this benchmark's first run). 3 x 96k jet-epochs per variant is about 980
(unconstrained) + 2,900 (SEAL) core-seconds, plus about 300 core-seconds of jet generation (4
classes x 10k jets, measured rates) and about 100 s per run for student, evaluations, curvature
(2 x 20 Hessian-vector products on 256 jets) and the reference-student curve: about 4,800
core-seconds, 40-45 minutes with 2 workers.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from benchmarks.provenance import git_state  # noqa: E402

CONFIG = REPO / "hls_configs" / "mlp_kd.yml"
SIGNAL, BACKGROUND = "w", "gluon"
OOD = {"z_vs_gluon": ("z", "gluon"), "top_vs_gluon": ("top", "gluon")}
VARIANTS = ("unconstrained", "seal")


def data_overrides(args, signal: str, background: str) -> list[str]:
    return [f"data.signal=[{signal}]", f"data.background=[{background}]", f"data.jets_per_class={args.jets_per_class}",
            *args.set]


def run_overrides(args, lam: float, seed: int) -> list[str]:
    return [*data_overrides(args, SIGNAL, BACKGROUND), f"teacher.epochs={args.epochs}",
            f"teacher.n_particles={args.particles}", f"teacher.hidden={args.hidden}", f"teacher.layers={args.layers}",
            f"teacher.seed={seed}", f"teacher.seal_lambda={lam}", "teacher.threads=1", "student.threads=1"]


def _init_worker() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


def one_run(args, variant: str, lam: float, seed: int) -> dict:
    """Train (or reuse from the cache) one teacher + student, evaluate it out of distribution, diagnose it."""
    from trigger_kd.cli import run_data_stage
    from trigger_kd.config import load_config
    from trigger_kd.generalisation.diagnose import diagnose
    from trigger_kd.generalisation.evaluate import evaluate_run
    from trigger_kd.pipeline import run_pipeline
    from trigger_kd.stages import STAGES

    t0 = time.time()
    run_dir = Path(args.work) / f"{variant}_seed{seed}"
    cfg = load_config(CONFIG, run_overrides(args, lam, seed))
    run_pipeline(cfg, STAGES, run_dir, to="student", progress=False)
    t_train = time.time() - t0
    for name, (sig, bkg) in OOD.items():
        evaluate_run(run_dir, str(CONFIG), name=name, overrides=data_overrides(args, sig, bkg), progress=False,
                     run_data=run_data_stage)
    diag = diagnose(run_dir, curvature_jets=args.curvature_jets, power_iterations=args.power_iterations,
                    trace_samples=args.trace_samples, compress_epochs=args.compress_epochs, progress=False)
    teacher_metrics = json.loads((run_dir / "teacher" / "metrics.json").read_text())
    student_metrics = json.loads((run_dir / "student" / "metrics.json").read_text())
    curv = diag["curvature"]["teacher"]
    comp = diag["compressibility"]
    return {
        "variant": variant, "seal_lambda": lam, "seed": seed, "run_dir": str(run_dir),
        "accuracy": diag["in_distribution"]["teacher"]["accuracy"],
        "auc": diag["in_distribution"]["teacher"]["auc"],
        "lambda_max": curv["lambda_max"], "trace": curv["trace"], "trace_std_error": curv["trace_std_error"],
        "power_converged": curv["converged"],
        "ood_auc": {name: diag["ood"][name]["teacher"]["auc"] for name in OOD},
        "ood_student_auc": {name: diag["ood"][name]["student"]["auc"] for name in OOD},
        "smear_auc": {str(p["sigma"]): p["auc"] for p in diag["smearing"]["teacher"]},
        "compress_val_mse": [p["val_mse"] for p in comp["curve"]],
        "teacher_logit_variance": comp["teacher_logit_variance"],
        "jets": {"train": comp["n_train_jets"], "val": comp["n_val_jets"], "test": student_metrics["n_test_jets"],
                 "curvature": diag["settings"]["curvature_jets"],
                 **{f"ood_{name}": diag["ood"][name]["n_jets"] for name in OOD},
                 **{f"ood_{name}_left_out": diag["ood"][name]["n_left_out_training_jets"] for name in OOD}},
        "teacher_training": teacher_metrics.get("training"),
        "n_teacher_params": teacher_metrics.get("n_params"),
        "seconds": {"pipeline": round(t_train, 1), "total": round(time.time() - t0, 1)},
    }


def _stats(values: list) -> dict:
    vals = [float(v) for v in values if v is not None]
    return {"mean": statistics.fmean(vals) if vals else None,
            "std": statistics.stdev(vals) if len(vals) > 1 else None, "n": len(vals), "values": values}


def _series(run: dict) -> dict[str, float]:
    """The scalar figures of one run, flattened (the rows of the table)."""
    out = {"accuracy": run["accuracy"], "auc": run["auc"], "lambda_max": run["lambda_max"], "trace": run["trace"]}
    out.update({f"ood_auc_{k}": v for k, v in run["ood_auc"].items()})
    out.update({f"smear_auc_sigma_{k}": v for k, v in run["smear_auc"].items()})
    out.update({f"compress_val_mse_epoch_{i}": v for i, v in enumerate(run["compress_val_mse"])})
    return out


def aggregate(runs: list[dict], seeds: list[int]) -> dict:
    by = {(r["variant"], r["seed"]): _series(r) for r in runs}
    keys = list(_series(runs[0]))
    agg = {v: {k: _stats([by[(v, s)][k] for s in seeds if (v, s) in by]) for k in keys} for v in VARIANTS}
    ratios = {}
    for k in keys:
        u, c = agg["unconstrained"][k]["mean"], agg["seal"][k]["mean"]
        per_seed = [by[("seal", s)][k] / by[("unconstrained", s)][k] for s in seeds
                    if ("seal", s) in by and ("unconstrained", s) in by and by[("unconstrained", s)][k]]
        ratios[k] = {"ratio_of_means": c / u if u else None, "per_seed": _stats(per_seed)}
    return {"per_variant": agg, "seal_over_unconstrained": ratios}


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
    for k, u in agg["per_variant"]["unconstrained"].items():
        if k.startswith("compress_val_mse_epoch_"):
            epoch = int(k.rsplit("_", 1)[1])
            last = max(int(x.rsplit("_", 1)[1]) for x in agg["per_variant"]["unconstrained"]
                       if x.startswith("compress_val_mse_epoch_"))
            if epoch not in (0, 1, 2, 5, 10, last):
                continue
        r = agg["seal_over_unconstrained"][k]
        ratio = "-" if r["ratio_of_means"] is None else f"{r['ratio_of_means']:.3f}"
        if r["per_seed"]["std"] is not None:
            ratio += f" (per seed {_fmt(r['per_seed'], 3)})"
        rows.append(f"| {k} | {_fmt(u)} | {_fmt(agg['per_variant']['seal'][k])} | {ratio} |")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/out/symmetry.json")
    ap.add_argument("--work", default="benchmarks/out/symmetry_runs", help="run directories")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="teacher seeds (one dataset)")
    ap.add_argument("--jets-per-class", type=int, default=10000, help="generated jets per class (60/20/20 split)")
    ap.add_argument("--epochs", type=int, default=8, help="teacher epochs")
    ap.add_argument("--particles", type=int, default=32, help="teacher constituents per jet")
    ap.add_argument("--hidden", type=int, default=32, help="teacher width")
    ap.add_argument("--layers", type=int, default=3, help="teacher LGEB layers")
    ap.add_argument("--seal-lambda", type=float, default=0.1)
    ap.add_argument("--curvature-jets", type=int, default=256)
    ap.add_argument("--power-iterations", type=int, default=20)
    ap.add_argument("--trace-samples", type=int, default=20)
    ap.add_argument("--compress-epochs", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2, help="(variant, seed) runs in parallel, one thread each")
    ap.add_argument("--set", action="append", default=[], help="further config override for every run")
    args = ap.parse_args()
    if args.seal_lambda <= 0:
        ap.error("--seal-lambda must be > 0 (the unconstrained teacher is the lambda 0 baseline)")
    if args.workers < 1:
        ap.error("--workers must be at least 1")
    os.environ["OMP_NUM_THREADS"] = "1"
    from trigger_kd.config import load_config
    from trigger_kd.pipeline import run_pipeline
    from trigger_kd.stages import STAGES

    t0, git = time.time(), git_state()
    # the datasets first, in this process (generation on every core): the runs then reuse the cache
    for sig, bkg in [(SIGNAL, BACKGROUND), *OOD.values()]:
        cfg = load_config(CONFIG, data_overrides(args, sig, bkg))
        run_pipeline(cfg, STAGES, Path(args.work) / "data" / f"{sig}_vs_{bkg}", to="data", progress=False)
    t_data = time.time() - t0
    print(f"[symmetry] datasets ready in {t_data:.0f} s", flush=True)
    # the SEAL teachers first: they take 2-3 times longer (two forwards per batch), so the workers finish together
    jobs = [(v, args.seal_lambda if v == "seal" else 0.0, s) for v in reversed(VARIANTS) for s in args.seeds]
    runs = []
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=get_context("spawn"),
                             initializer=_init_worker) as pool:
        futures = [pool.submit(one_run, args, *job) for job in jobs]
        for fut in futures:
            r = fut.result()
            runs.append(r)
            print(f"[symmetry] {r['variant']} seed {r['seed']}: AUC {r['auc']:.4f}, lambda_max {r['lambda_max']:.4g}, "
                  f"trace {r['trace']:.4g}, OOD AUC " + ", ".join(f"{k} {v:.4f}" for k, v in r["ood_auc"].items())
                  + f" ({r['seconds']['total']:.0f} s)", flush=True)
    agg = aggregate(runs, args.seeds)
    result = {
        "benchmark": "symmetry",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "git_commit": git["commit"], "git_dirty": git["dirty"],
        "task": f"{SIGNAL} vs {BACKGROUND}", "ood_tasks": {k: f"{s} vs {b}" for k, (s, b) in OOD.items()},
        "config": str(CONFIG.relative_to(REPO)),
        "sizes": {"jets_per_class": args.jets_per_class, "teacher_epochs": args.epochs, "particles": args.particles,
                  "hidden": args.hidden, "layers": args.layers, "seeds": args.seeds, "seal_lambda": args.seal_lambda,
                  "curvature_jets": args.curvature_jets, "power_iterations": args.power_iterations,
                  "trace_samples": args.trace_samples, "compress_epochs": args.compress_epochs,
                  "workers": args.workers, "overrides": args.set},
        "jets": runs[0]["jets"],
        "n_teacher_params": runs[0]["n_teacher_params"],
        "aggregate": agg,
        "runs": runs,
        "source": "teacher figures; in-distribution and smearing on the W-vs-gluon test jets, curvature on the first "
                  "curvature_jets training jets, compressibility on the training/validation jets, OOD on the other "
                  "tasks' test jets with the run's training/validation jets left out",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_at_end": os.getloadavg()},
        "data_seconds": round(t_data, 1),
        "wall_seconds": round(time.time() - t0, 1),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2, default=float))
    os.replace(tmp, out)
    print(table(agg, args.seal_lambda))
    print(f"[symmetry] {len(runs)} runs, jets {result['jets']}, wall {result['wall_seconds']:.0f} s -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
