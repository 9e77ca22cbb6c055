"""Which teacher gives the best quantised FPGA student? LorentzNet vs the SEAL transformer vs the unconstrained one.

    python benchmarks/teachers.py --out benchmarks/out/teachers_study.json [--profile study|quick] [--seeds 1 2 3]
        [--archs mlp deepset] [--teachers lorentznet transformer_seal transformer] [--seal-lambda 0.1]
        [--jobs 2] [--set k=v] [--tiny]

The same quantised students, the shipped ``hls_configs/<arch>_kd.yml`` (its distillation recipe: alpha and
temperature of the file, transfer set and student SEAL of the profile) at the profile's sizes (``study`` by
default), distilled from three teachers: ``lorentznet`` (hard symmetry; ``teacher.seal_lambda`` 0),
``transformer_seal`` (``teacher.arch: transformer``, ``teacher.seal_lambda`` --seal-lambda) and ``transformer``
(the same encoder, unconstrained); the profile sizes both teachers. Seed s sets ``teacher.seed`` and
``student.seed``: the spread covers teacher and student training. Every run goes through the CLI
(``trigger-kd run CONFIG --profile P --run-dir D --to student --set teacher.arch=... --set
teacher.seal_lambda=...``), data, teachers and transfer logits shared through the content-addressed cache
(the data stage runs alone first; a run needing a teacher another run is training waits for it). Each run is
then scored out of distribution with ``trigger-kd evaluate`` on the config's background against the other
signal classes (W vs QCD, Z vs QCD, the same jets per class; jets the run trained on are left out).

Per teacher and student arch, mean and sample std over seeds of the quantised student's test accuracy, AUC,
1/eB at 30 % and 50 % signal efficiency, accuracy under boosts (beta 0.3, 0.5), validation AUC and OOD AUC,
the teacher's own test AUC, the jet-mass baselines on the same test jets (``jet_mass_inputs_auc``: the student's
own constituents; ``jet_mass_all_auc``) and the student's cost (``lut_da4ml``: da4ml's LUT estimate of its
integer network, pipeline stages, latency at the config's clock; no Yosys); each teacher's cost: parameters, training jets/s (from its metrics, measured
while other runs shared the machine) and inference jets/s measured afterwards on this machine, alone, on the
seed-1 teacher's test jets, with 1 thread and with every core. Verdict per student arch (``rank_teachers``):
the teacher whose student has the highest mean AUC, and for every other teacher whether its student is behind
by more than max(3 std, 0.005), std the larger seed spread of the two (a smaller difference is a tie). JSON
with the git commit and the command, and a plot (student AUC per teacher, one panel per student arch, seed
spread as bars) next to it.

Wall time, study profile, every teacher trained in the run (9 teachers, each labelling a 100k-per-class transfer
set, 18 study-size students, W and Z jets for the OOD sets; benchmarks/history/teachers.md): the MLP half 2 h 9 min
on a 2-core Zen 3
sharing its cores with tests, the deep-set half (``--archs deepset``) 64 min on an idle 2-core Zen 4; both halves
in one process not timed, about 2-3 hours on 2 cores. ``--profile quick`` (10k jets per class, 3 teacher epochs,
5k-per-class transfer set): 23 min on 2 idle cores.
``--tiny`` shrinks everything (as tests/test_e2e.py) for a smoke test.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from benchmarks.kd_gain import MIN_GAIN, flatten, stats, verdict  # noqa: E402
from benchmarks.provenance import add_options, machine, provenance, write_record  # noqa: E402

TEACHERS = ("lorentznet", "transformer_seal", "transformer")
OOD_SIGNALS = ("w", "z")  # default --ood-signals, against the config's background (QCD)
TINY = ["data.jets_per_class=300", "data.shard_size=300", "teacher.n_particles=16", "teacher.epochs=1",
        "student.n_particles=4", "student.max_epochs=2", "student.batch_size=64", "student.mlp_hidden=[8]",
        "student.phi_hidden=[8]", "student.rho_hidden=[8]", "distill.transfer_jets_per_class=100"]
TINY_ARCH = {"lorentznet": ["teacher.hidden=16", "teacher.layers=2"],
             "transformer": ["teacher.d_model=16", "teacher.encoder_layers=1", "teacher.heads=2", "teacher.ff_dim=16",
                             "teacher.head_hidden=[16]"]}


def teacher_sets(teacher: str, seal_lambda: float, tiny: bool = False) -> list[str]:
    """--set overrides choosing one teacher (the profile sizes both archs; --tiny shrinks the chosen one)."""
    arch = "lorentznet" if teacher == "lorentznet" else "transformer"
    lam = seal_lambda if teacher == "transformer_seal" else 0.0
    return [f"teacher.arch={arch}", f"teacher.seal_lambda={lam}", *(TINY_ARCH[arch] if tiny else [])]


def student_row(metrics: dict, ood: dict[str, dict], cost: dict | None = None) -> dict:
    """One run's figures: the quantised student's (kd_gain.flatten), its OOD AUC per task, the teacher's AUC, the
    jet-mass baselines of the same test jets (the student's own constituents and all of them) and the student's
    hardware cost (`student_cost`)."""
    base = metrics.get("baselines", {})
    return {**flatten(metrics, "student"), **{f"ood_auc_{k}": v["student"]["auc"] for k, v in ood.items()},
            "teacher_auc": metrics["teacher"]["auc"],
            **{f"{k}_auc": base[k]["test"]["auc"] if k in base else None for k in ("jet_mass_inputs", "jet_mass_all")},
            **(cost or {})}


def student_cost(run_dir: Path) -> dict:
    """The run's quantised student in hardware: da4ml's LUT estimate of its integer network, traced and pipelined
    exactly as the synth stage's open-source route does (synth.latency_cutoff at hls.clock_period; no Yosys, no
    RTL simulation), its pipeline stages and the latency at that clock."""
    from trigger_kd.config import load_config
    from trigger_kd.rundir import INTNET, RESOLVED_CONFIG, STUDENT
    from trigger_kd.synth.da4ml_comb import load_integer_network
    from trigger_kd.synth.da4ml_trace import trace
    from trigger_kd.synth.opensource import stage_cutoff

    cfg = load_config(run_dir / STUDENT / RESOLVED_CONFIG)
    traced = trace(load_integer_network(run_dir / STUDENT / INTNET),
                   stage_cutoff(cfg.synth.latency_cutoff, cfg.hls.clock_period))
    return {"lut_da4ml": traced.cost_lut, "pipeline_stages": traced.stages,
            "latency_ns": traced.stages * cfg.hls.clock_period}


def summarise(rows: list[dict]) -> dict:
    """Mean, std, n and values over seeds of every figure of the rows."""
    return {k: stats([r.get(k) for r in rows]) for k in rows[0]}


def rank_teachers(by_teacher: dict[str, dict]) -> dict:
    """For one student arch: {teacher: summary} -> the best teacher (highest mean student AUC) and, per teacher,
    its gap to the best and whether that gap exceeds max(3 std, 0.005) (kd_gain.verdict; None with one seed)."""
    best = max(by_teacher, key=lambda t: by_teacher[t]["auc"]["mean"])
    per = {}
    for t, s in by_teacher.items():
        v = verdict(by_teacher[best], s)  # "gain" of the best over this teacher
        status = "best" if t == best else {True: "behind best", False: "tied with best", None: "one seed"}[v["gain"]]
        per[t] = {"status": status, "auc": s["auc"]["mean"], "auc_std": s["auc"]["std"],
                  "gap_to_best": v["auc_gain"], "threshold": v["threshold"], "behind_beyond_spread": v["gain"]}
    tied = [t for t, p in per.items() if p["status"] in ("tied with best", "one seed")]
    return {"best": best, "clear_best": all(p["behind_beyond_spread"] for p in per.values() if p["status"] != "best"),
            "tied_with_best": tied, "teachers": per, "rule": f"behind when the gap > max(3 std, {MIN_GAIN})"}


def teacher_verdicts(ranks: dict[str, dict]) -> dict[str, str]:
    """One line per teacher over the student archs, e.g. 'mlp: best (AUC 0.9601 ± 0.0010); deepset: tied with best'."""
    out: dict[str, list[str]] = {}
    for arch, r in ranks.items():
        for t, p in r["teachers"].items():
            spread = "" if p["auc_std"] is None else f" ± {p['auc_std']:.4f}"
            gap = ("" if p["status"] == "best"
                   else f", {p['gap_to_best']:+.4f} to the best vs threshold {p['threshold']:.4f}")
            out.setdefault(t, []).append(f"{arch}: {p['status']} (AUC {p['auc']:.4f}{spread}{gap})")
    return {t: "; ".join(lines) for t, lines in out.items()}


def cli(args: list[str], threads: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-m", "trigger_kd.cli", *args, "--no-progress"], check=True, cwd=REPO, env=env)


def teacher_cost(run_dir: Path, seconds: float) -> dict:
    """Parameters, training jets/s (teacher metrics) and inference jets/s measured now on the run's test jets."""
    import torch

    from trigger_kd.config import load_config
    from trigger_kd.data.formats import read_canonical
    from trigger_kd.rundir import DATA, METRICS, RESOLVED_CONFIG, STUDENT, TEACHER, TEACHER_MODEL, split_file
    from trigger_kd.train.teacher import load_teacher, teacher_logits

    m = json.loads((run_dir / TEACHER / METRICS).read_text())
    c, _ = read_canonical(run_dir / DATA / split_file("test"))
    model = load_teacher(run_dir / TEACHER / TEACHER_MODEL)
    n = load_config(run_dir / STUDENT / RESOLVED_CONFIG).teacher.n_particles
    infer = {}
    for threads in sorted({1, os.cpu_count() or 1}):
        torch.set_num_threads(threads)
        with torch.inference_mode():
            teacher_logits(model, c[:512], n, progress=False)  # warm-up
            t0, jets = time.perf_counter(), 0
            while jets == 0 or time.perf_counter() - t0 < seconds:
                jets += len(teacher_logits(model, c, n, progress=False))
        infer[f"{threads}_threads"] = jets / (time.perf_counter() - t0)
    return {"arch": m.get("arch"), "n_params": m.get("n_params"), "device": m.get("device"),
            "train_jets_per_second": m["training"].get("jets_per_second"), "inference_jets_per_second": infer,
            "inference_jets": int(len(c)), "test_auc": m["test"]["auc"]}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    archs = list(result["archs"])
    fig, axes = plt.subplots(1, len(archs), figsize=(4.6 * len(archs), 3.8), squeeze=False)
    for ax, arch in zip(axes[0], archs):
        teachers = list(result["archs"][arch]["summary"])
        for i, t in enumerate(teachers):
            auc = result["archs"][arch]["summary"][t]["auc"]
            ax.errorbar([i], [auc["mean"]], yerr=[auc["std"] or 0.0], fmt="o", capsize=5, color="C0")
            ax.plot([i] * len(auc["values"]), auc["values"], "x", color="C1", alpha=0.7)
            lut = result["archs"][arch]["summary"][t].get("lut_da4ml", {}).get("mean")
            if lut is not None:
                ax.annotate(f"{lut / 1000:.1f}k LUT", (i, auc["mean"]), textcoords="offset points", xytext=(8, -3),
                            fontsize=7)
        mass = result["archs"][arch]["summary"][teachers[0]].get("jet_mass_inputs_auc", {}).get("mean")
        if mass is not None:  # the same test jets for every teacher
            ax.axhline(mass, color="grey", ls="--", lw=1, label="jet mass of the student's inputs")
            ax.legend(fontsize=7, loc="lower right")
        ax.set_xticks(range(len(teachers)), teachers, rotation=15)
        ax.set_title(f"quantised {arch} student ({result['profile']})")
        ax.set_ylabel("test AUC (mean ± std over seeds; x: seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    from trigger_kd.config import load_config

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_options(ap, {"jobs": "runs at a time (one thread each when more than one)"},
                out="benchmarks/out/teachers.json", profile="study", seeds=[1, 2, 3],
                work="benchmarks/out/teacher_runs", set=[], jobs=2)
    ap.add_argument("--archs", nargs="+", default=["mlp", "deepset"], choices=["mlp", "deepset"])
    ap.add_argument("--teachers", nargs="+", default=list(TEACHERS), choices=TEACHERS)
    ap.add_argument("--seal-lambda", type=float, default=0.1, help="teacher.seal_lambda of transformer_seal")
    ap.add_argument("--cost-seconds", type=float, default=3.0, help="least time of each inference measurement")
    ap.add_argument("--ood-signals", nargs="+", default=list(OOD_SIGNALS), choices=["top", "w", "z"],
                    help="signal classes scored against the config's background (the training signal is skipped)")
    ap.add_argument("--tiny", action="store_true", help="tiny sizes (smoke test)")
    args = ap.parse_args()
    sets = [*(TINY if args.tiny else []), *args.set]
    threads = 1 if args.jobs > 1 else (os.cpu_count() or 1)
    if args.jobs > 1:
        sets += ["teacher.threads=1", "student.threads=1"]
    work = Path(args.work)
    t0 = time.time()

    def config(arch: str) -> str:
        return str(REPO / "hls_configs" / f"{arch}_kd.yml")

    def run_sets(teacher: str, seed: int) -> list[str]:
        return [*sets, *teacher_sets(teacher, args.seal_lambda, args.tiny), f"teacher.seed={seed}",
                f"student.seed={seed}"]

    base = load_config(config(args.archs[0]), run_sets(args.teachers[0], args.seeds[0]), profile=args.profile)
    ood_sets = [f"data.jets_per_class={base.data.jets_per_class}",
                f"data.max_constituents={base.data.max_constituents}", *(s for s in sets if s.startswith("data."))]
    signal = "+".join(base.data.signal)
    ood = {f"{s}_vs_{'+'.join(base.data.background)}": s for s in args.ood_signals if s not in base.data.signal}
    as_cli = [x for s in sets for x in ("--set", s)]
    cli(["run", config(args.archs[0]), "--profile", args.profile, "--run-dir", str(work / "data"), "--to", "data",
         *as_cli], os.cpu_count() or 1)  # alone: generation on every core; every run then reuses it

    def one(job: tuple[str, str, int]) -> dict:
        arch, teacher, seed = job
        run_dir = work / f"{arch}_{teacher}_seed{seed}"
        t = time.time()
        cli(["run", config(arch), "--profile", args.profile, "--run-dir", str(run_dir), "--to", "student",
             *(x for s in run_sets(teacher, seed) for x in ("--set", s))], threads)
        scores = {}
        for name, sig in ood.items():
            cli(["evaluate", str(run_dir), "--on", config(arch), "--name", name, "--set", f"data.signal=[{sig}]",
                 *(x for s in ood_sets for x in ("--set", s))], threads)
            scores[name] = json.loads((run_dir / "evaluate" / f"{name}.json").read_text())
        print(f"[teachers] {arch} from {teacher}, seed {seed}: {time.time() - t:.0f} s", flush=True)
        return student_row(json.loads((run_dir / "student" / "metrics.json").read_text()), scores,
                           student_cost(run_dir))

    # one arch's runs first (each trains its teacher), then the others (their teachers and transfer logits cached)
    plan = [(arch, t, s) for arch in args.archs for t in args.teachers for s in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:  # the work runs in the CLI subprocesses
        rows = list(pool.map(one, plan))
    t_runs = time.time() - t0
    result: dict = {"benchmark": "teachers", **provenance(), "profile": args.profile, "tiny": args.tiny, "overrides": sets,
                    "seeds": args.seeds, "task": f"{signal} vs {'+'.join(base.data.background)}",
                    "ood_tasks": list(ood), "teachers": {t: teacher_sets(t, args.seal_lambda) for t in args.teachers},
                    "archs": {}}
    for arch in args.archs:
        summary = {t: summarise([r for (a, tt, _), r in zip(plan, rows) if (a, tt) == (arch, t)])
                   for t in args.teachers}
        result["archs"][arch] = {"summary": summary, "ranking": rank_teachers(summary)}
    result["verdict"] = teacher_verdicts({a: r["ranking"] for a, r in result["archs"].items()})
    result["teacher_cost"] = {t: teacher_cost(work / f"{args.archs[0]}_{t}_seed{args.seeds[0]}", args.cost_seconds)
                              for t in args.teachers}
    result["runs_seconds"] = round(t_runs, 1)
    result["wall_seconds"] = round(time.time() - t0, 1)
    result["machine"] = machine(load_average_at_end=os.getloadavg())
    out = write_record(args.out, result, default=float)
    plot(result, out.with_suffix(".png"))
    print(json.dumps(result["verdict"], indent=2))
    print(f"[teachers] {len(rows)} runs, wall {result['wall_seconds']:.0f} s -> {out}, {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
