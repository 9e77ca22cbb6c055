"""What does distillation buy? Scratch vs KD variants, several seeds, one dataset and one teacher.

    python benchmarks/kd_gain.py --profile study --out benchmarks/out/kd_gain_study.json \
        [--seeds 1 2 3] [--archs mlp deepset] [--transfer N] [--augment-beta 0.5] [--seal-lambda 0.1] [--set k=v]
        [--jobs 2]

Variants per architecture (the shipped ``<arch>_kd.yml`` config with the profile's sizes):
``scratch`` (the scratch twin of the ``kd`` run: same initial weights, data and schedule, no teacher),
``kd`` (every option below switched off, whatever the profile ships), ``kd_transfer`` (``distill.transfer_jets_per_class``), ``kd_augment``
(``distill.augment_max_beta``), ``kd_seal`` (``student.seal_lambda``) and ``kd_best``, the
combination of the options whose mean VALIDATION AUC beats plain ``kd`` (test jets never choose).
Every run shares the dataset and teacher through the content-addressed cache. For each variant
and the quantised student: mean and sample std over seeds of accuracy, AUC, 1/eB at 30 % and 50 %,
accuracy under boosts of beta 0.3 and 0.5 (test jets), and validation accuracy / AUC; a verdict
per variant: gain over scratch > max(3 std, 0.005) AUC, std the larger seed spread of the two.
The JSON carries the git commit and the command.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from benchmarks.provenance import add_options, machine, provenance, write_record  # noqa: E402

KEYS = ("accuracy", "auc", "rej30", "rej50", "accuracy_beta0.3", "accuracy_beta0.5", "val_accuracy", "val_auc")
OPTIONS = {"kd_transfer": "transfer", "kd_augment": "augment", "kd_seal": "seal"}
MIN_GAIN = 0.005
# each option switched off explicitly, so that a variant is what its name says whatever the profile ships
# (the quick profile turns the transfer set and SEAL on)
OFF = {"transfer": ["distill.transfer_jets_per_class=0"], "augment": ["distill.augment_max_beta=0"],
       "seal": ["student.seal_lambda=0"]}


def variant_sets(option_sets: dict[str, list[str]], on: list[str]) -> list[str]:
    """--set overrides of a variant: the options in `on` with their settings, every other option off."""
    return [s for opt in OPTIONS.values() for s in (option_sets[opt] if opt in on else OFF[opt])]


def stats(values: list) -> dict:
    vals = [v for v in values if v is not None]
    return {"mean": statistics.fmean(vals) if vals else None,
            "std": statistics.stdev(vals) if len(vals) > 1 else None, "n": len(vals), "values": values}


def flatten(metrics: dict, name: str) -> dict:
    """One model's figures from a student/metrics.json: test metrics, boosted accuracy, validation metrics."""
    m = metrics[name]
    boost = {round(b["beta"], 6): b["accuracy"] for b in metrics["robustness"][name]["boost"]}
    val = metrics.get("validation", {}).get(name, {})
    return {"accuracy": m["accuracy"], "auc": m["auc"], "rej30": m.get("rej30"), "rej50": m.get("rej50"),
            "accuracy_beta0.3": boost.get(0.3), "accuracy_beta0.5": boost.get(0.5),
            "val_accuracy": val.get("accuracy"), "val_auc": val.get("auc")}


def summarise(runs: list[dict]) -> dict:
    return {k: stats([r[k] for r in runs]) for k in KEYS}


def verdict(variant: dict, scratch: dict) -> dict:
    """Gain in mean test AUC over scratch, and whether it exceeds max(3 std, 0.005)."""
    a, b = variant["auc"], scratch["auc"]
    spread = max(a["std"] or 0.0, b["std"] or 0.0)
    threshold = max(3 * spread, MIN_GAIN)
    gain = a["mean"] - b["mean"]
    paired = [x - y for x, y in zip(a["values"], b["values"])]
    return {"auc_gain": gain, "threshold": threshold, "largest_seed_std": spread,
            "paired_gain_std": statistics.stdev(paired) if len(paired) > 1 else None,
            "accuracy_gain": variant["accuracy"]["mean"] - scratch["accuracy"]["mean"],
            "val_auc_gain": _diff(variant["val_auc"]["mean"], scratch["val_auc"]["mean"]),
            "gain": bool(gain > threshold) if a["n"] > 1 else None}


def _diff(a, b):
    return None if a is None or b is None else a - b


def best_options(summary: dict) -> list[str]:
    """The options whose variant beats plain KD in mean validation AUC (validation jets only)."""
    base = summary["kd"]["val_auc"]["mean"]
    return [opt for var, opt in OPTIONS.items()
            if var in summary and summary[var]["val_auc"]["mean"] is not None and base is not None
            and summary[var]["val_auc"]["mean"] > base]


def best_by_validation(summary: dict) -> str | None:
    """The KD variant (kd_best included) with the highest mean validation AUC (validation jets only)."""
    scored = {v: s["val_auc"]["mean"] for v, s in summary.items()
              if v != "scratch" and s["val_auc"]["mean"] is not None}
    return max(scored, key=scored.get) if scored else None


def run_one(job: tuple) -> tuple[dict, dict]:
    """One pipeline run up to the student stage -> (student metrics, teacher metrics). Runs in a worker process."""
    from trigger_kd.config import load_config
    from trigger_kd.pipeline import run_pipeline
    from trigger_kd.stages import STAGES

    arch, variant, seed, extra, sets, profile, work = job
    cfg = load_config(REPO / "hls_configs" / f"{arch}_kd.yml", [*sets, *extra, f"student.seed={seed}"], profile=profile)
    run_dir = Path(work) / f"{arch}_{variant}_seed{seed}"
    t = time.time()
    run_pipeline(cfg, STAGES, run_dir, to="student", progress=False)
    print(f"{arch} {variant} seed {seed}: {time.time() - t:.0f} s", flush=True)
    return (json.loads((run_dir / "student" / "metrics.json").read_text()),
            json.loads((run_dir / "teacher" / "metrics.json").read_text()))


def main() -> int:
    from trigger_kd.config import load_config

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_options(ap, {"jobs": "runs at a time (processes); use 2 on 2 cores with student.threads 1; the first run goes "
                             "alone and fills the cache (dataset, teacher)"},
                out="benchmarks/out/kd_gain.json", profile="study", seeds=[1, 2, 3], work="benchmarks/out/kd_runs",
                set=[], jobs=1)
    ap.add_argument("--archs", nargs="+", default=["mlp", "deepset"], choices=["mlp", "deepset"])
    ap.add_argument("--variants", nargs="+", default=["kd", *OPTIONS, "kd_best"])
    ap.add_argument("--transfer", type=int, default=None,
                    help="distill.transfer_jets_per_class of kd_transfer (default: the profile's, else its data.jets_per_class)")
    ap.add_argument("--augment-beta", type=float, default=0.5, help="distill.augment_max_beta of kd_augment")
    ap.add_argument("--seal-lambda", type=float, default=0.1, help="student.seal_lambda of kd_seal")
    args = ap.parse_args()
    if args.transfer is None:
        base = load_config(REPO / "hls_configs" / "mlp_kd.yml", args.set, profile=args.profile)
        args.transfer = base.distill.transfer_jets_per_class or base.data.jets_per_class
    option_sets = {"transfer": [f"distill.transfer_jets_per_class={args.transfer}"],
                   "augment": [f"distill.augment_max_beta={args.augment_beta}"],
                   "seal": [f"student.seal_lambda={args.seal_lambda}"]}
    t0 = time.time()
    result: dict = {"benchmark": "kd_gain", **provenance(), "profile": args.profile, "overrides": args.set, "seeds": args.seeds,
                    "options": option_sets, "archs": {}}

    def job(arch: str, variant: str, seed: int, extra: list[str]) -> tuple:
        return (arch, variant, seed, extra, args.set, args.profile, args.work)

    def run_all(jobs: list[tuple], first_alone: bool) -> list[dict]:
        """The runs, args.jobs at a time; with first_alone the first runs alone so that it fills the
        shared cache (dataset, teacher) that every other run reuses."""
        results = [run_one(jobs[0])] if jobs and first_alone else []
        rest = jobs[len(results):]
        if args.jobs > 1 and len(rest) > 1:
            ctx = multiprocessing.get_context("spawn")  # no torch state forked into workers
            with ProcessPoolExecutor(args.jobs, mp_context=ctx) as pool:
                results += list(pool.map(run_one, rest))
        else:
            results += [run_one(j) for j in rest]
        if "teacher" not in result:
            metrics, tm = results[0]
            result["teacher"] = {"test": tm["test"], "validation": metrics.get("validation", {}).get("teacher"),
                                 "n_params": tm.get("n_params"), "training": tm.get("training")}
            result["n_test_jets"] = metrics["n_test_jets"]
        return [m for m, _ in results]

    plan = [(arch, variant, seed) for arch in args.archs for variant in args.variants if variant != "kd_best"
            for seed in args.seeds]
    twin = {v: "true" if v == "kd" else "false" for v in args.variants}  # the scratch variant is the kd run's twin
    metrics = run_all([job(a, v, s, [*variant_sets(option_sets, [OPTIONS[v]] if v in OPTIONS else []),
                                     f"distill.scratch_twin={twin[v]}"])
                       for a, v, s in plan], first_alone=True)
    per: dict[str, dict[str, list]] = {arch: {} for arch in args.archs}
    for (arch, variant, _), m in zip(plan, metrics):
        per[arch].setdefault(variant, []).append(flatten(m, "student"))
        if variant == "kd":
            per[arch].setdefault("scratch", []).append(flatten(m, "student_scratch"))
    summaries = {arch: {v: summarise(r) for v, r in per[arch].items()} for arch in args.archs}
    chosen = {arch: best_options(summaries[arch]) if "kd" in summaries[arch] else [] for arch in args.archs}
    best_jobs = [(arch, seed) for arch in args.archs if "kd_best" in args.variants and len(chosen[arch]) > 1
                 for seed in args.seeds]
    best = run_all([job(arch, "kd_best", seed, [*variant_sets(option_sets, chosen[arch]),
                                                "distill.scratch_twin=false"]) for arch, seed in best_jobs],
                   first_alone=False)  # data, teacher and transfer logits are cached by the runs before
    for arch in args.archs:
        summary = summaries[arch]
        if len(chosen[arch]) > 1 and "kd_best" in args.variants:
            summary["kd_best"] = summarise([flatten(m, "student") for (a, _), m in zip(best_jobs, best) if a == arch])
        elif len(chosen[arch]) == 1:
            summary["kd_best"] = summary[next(v for v, o in OPTIONS.items() if o == chosen[arch][0])]
        verdicts = {v: verdict(s, summary["scratch"]) for v, s in summary.items() if v != "scratch" and "scratch" in summary}
        teacher_auc = result["teacher"]["test"]["auc"]
        top = best_by_validation(summary)
        result["archs"][arch] = {
            "variants": summary, "verdict": verdicts, "best_options": chosen[arch],
            "best_chosen_by": "mean validation AUC above plain kd",
            "best_by_validation": {"variant": top, "verdict": verdicts.get(top)},
            "teacher_auc_gap": {v: teacher_auc - s["auc"]["mean"] for v, s in summary.items()},
        }
    result["wall_seconds"] = round(time.time() - t0, 1)
    result["machine"] = machine()
    write_record(args.out, result, default=float)
    print(json.dumps({a: r["verdict"] for a, r in result["archs"].items()}, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
