"""Does knowledge distillation help? Scratch vs KD students, several seeds, one dataset.

    python benchmarks/kd_gain.py --out benchmarks/out/kd_gain.json [--seeds 1 2 3] [--set data.jets_per_class=10000]

Runs the real pipeline (data -> teacher -> student) for mlp_scratch, mlp_kd, deepset_scratch,
deepset_kd with the quick profile: the dataset and the teacher are made once (content-addressed
cache) and shared by every student. Writes the mean and spread (sample std) of accuracy, AUC
and background rejections of the quantised and float students per model, the teacher's
metrics, and the teacher's training throughput on this machine, as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from trigger_kd.config import load_config  # noqa: E402
from trigger_kd.pipeline import run_pipeline  # noqa: E402
from trigger_kd.stages import STAGES  # noqa: E402

MODELS = ("mlp_scratch", "mlp_kd", "deepset_scratch", "deepset_kd")
KEYS = ("accuracy", "auc", "rej30", "rej50")


def _stats(values):
    vals = [v for v in values if v is not None]
    if not vals:
        return {"mean": None, "std": None, "n": 0, "values": values}
    return {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else None,
            "n": len(vals), "values": values}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/out/kd_gain.json")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--work", default="benchmarks/out/kd_runs", help="run directories")
    ap.add_argument("--set", action="append", default=[], help="config override for every model")
    args = ap.parse_args()
    t0 = time.time()
    per_model: dict[str, dict] = {}
    teacher = None
    for model in args.models:
        runs = []
        for seed in args.seeds:
            cfg = load_config(REPO / "hls_configs" / f"{model}.yml", [*args.set, f"student.seed={seed}"])
            run_dir = Path(args.work) / f"{model}_seed{seed}"
            run_pipeline(cfg, STAGES, run_dir, to="student", progress=False)
            m = json.loads((run_dir / "student" / "metrics.json").read_text())
            runs.append(m)
            if teacher is None:
                tm = json.loads((run_dir / "teacher" / "metrics.json").read_text())
                teacher = {"test": tm["test"], "training": tm.get("training"), "n_params": tm.get("n_params")}
        per_model[model] = {
            "distill": runs[0]["distill"],
            "n_test_jets": runs[0]["n_test_jets"],
            "seeds": args.seeds,
            **{kind: {k: _stats([r[kind].get(k) for r in runs]) for k in KEYS} for kind in ("student", "student_float")},
        }
    verdict = {}
    for arch in ("mlp", "deepset"):
        kd, scratch = per_model.get(f"{arch}_kd"), per_model.get(f"{arch}_scratch")
        if kd and scratch:
            a, b = kd["student"]["auc"], scratch["student"]["auc"]
            spread = max(a["std"] or 0.0, b["std"] or 0.0)
            diff = a["mean"] - b["mean"]
            verdict[arch] = {
                "auc_gain_mean": diff,
                "accuracy_gain_mean": kd["student"]["accuracy"]["mean"] - scratch["student"]["accuracy"]["mean"],
                "largest_seed_std": spread,
                "kd_helps": bool(diff > spread) if spread else None,
                "teacher_ahead_of_scratch": teacher["test"]["auc"] > b["mean"] if teacher else None,
            }
    result = {
        "benchmark": "kd_gain",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "overrides": args.set,
        "teacher": teacher,
        "models": per_model,
        "verdict": verdict,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "wall_seconds": round(time.time() - t0, 1),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2, default=float))
    os.replace(tmp, out)
    print(json.dumps(verdict, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
