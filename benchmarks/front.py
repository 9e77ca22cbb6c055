"""The accuracy-per-LUT front, family by family: what distillation and learned bit widths buy at a given LUT count.

    python benchmarks/front.py --profile quick --out benchmarks/out/front_quick.json \
        [--seeds 1 2 3] [--workers 2] [--families brevitas_kd brevitas_scratch hgq_kd hgq_scratch] [--max-lut 10000]

Families (each one `trigger-kd front` sweep per seed, on the profile's jets and teacher, shared through the cache):

- ``brevitas_kd``: ``hls_configs/mlp_kd.yml``, uniform bits (weights 3 / 4 / 6) x widths (0.5 / 1 / 2), KD recipe;
- ``brevitas_scratch``: the same points with ``distill.alpha=0`` (no teacher, everything else equal);
- ``hgq_kd``: ``hls_configs/mlp_kd_hgq.yml``, HGQ2 learned bit widths, EBOPs penalty beta (1e-6 / 1e-5 / 1e-4)
  x the kept epoch's EBOPs bound (``student.max_ebops``: none / 40,000) x widths, KD recipe (the 10k-LUT pick
  of the quick profile, 64-32, needs ``--widths 0.5,1,2``);
- ``hgq_scratch``: the same with ``distill.alpha=0``.

Seed 1 runs every point. Seeds 2.. run only the points near the budget (``--max-lut``): for each KD family, the
points with the best VALIDATION AUC at or under the budget and the smallest point above it, and the same knobs of
its scratch family, so the verdicts near the target have seed spreads. Per point and family: mean and sample std
over seeds of validation / test AUC, test accuracy, 1/eB at 30 % and 50 %, da4ml LUT, FF, latency, parity.

Verdicts (test jets, never used to choose):
- ``budget``: per KD family, the point picked by validation AUC under ``--max-lut`` and its test AUC (target
  ``--target-auc``, issue 23: 0.945 at <= 10k LUT on the quick profile);
- ``kd_vs_scratch``: for each KD point, the best scratch point of the same framework at or under its LUT count
  (seed means); the gain must exceed max(3 std, 0.005) with std the larger seed spread of the two points.

The JSON carries the git commit and the command; ``--plot`` writes AUC vs LUT of every family with the teacher
and the jet-mass baselines (test jets) as lines.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from benchmarks.kd_gain import MIN_GAIN, stats  # noqa: E402  (seed statistics and the margin, as bench-kd)
from benchmarks.provenance import add_options, machine, provenance, write_record  # noqa: E402
from trigger_kd.front.record import read_front  # noqa: E402

FAMILIES = {
    "brevitas_kd": ("mlp_kd.yml", ["bits=3,4,6"], []),
    "brevitas_scratch": ("mlp_kd.yml", ["bits=3,4,6"], ["distill.alpha=0"]),
    # max_ebops: the best validation epoch within 40k EBOPs, beside the best of any (issue-23 sweep,
    # benchmarks/history/front.md, "HGQ2 + distillation with an EBOPs bound": the bound moved the quick front from
    # 0.936 to 0.944 under 10k LUT)
    "hgq_kd": ("mlp_kd_hgq.yml", ["beta=1e-6,1e-5,1e-4", "max_ebops=none,40000"], []),
    "hgq_scratch": ("mlp_kd_hgq.yml", ["beta=1e-6,1e-5,1e-4", "max_ebops=none,40000"], ["distill.alpha=0"]),
}
KEYS = ("val_auc", "test_auc", "test_accuracy", "test_rej30", "test_rej50", "lut", "ff", "latency_ns",
        "pipeline_stages", "parity_pct")

WORK_HELP = "sweep directories (default: next to --out, <stem>_work/)"


def scratch_of(family: str) -> str | None:
    return family.replace("_kd", "_scratch") if family.endswith("_kd") else None


def aggregate(runs: dict[str, dict[int, list[dict]]], keys=KEYS, error_info=None) -> dict[str, list[dict]]:
    """{family: {seed: rows}} -> {family: [point with per-key seed stats and the seeds' values]}, by mean LUT. A
    failed row is kept under ``errors`` (plus what ``error_info(error)`` reads from its message), never averaged."""
    out = {}
    for family, by_seed in runs.items():
        points: dict[str, dict] = {}
        for seed, rows in sorted(by_seed.items()):
            for r in rows:
                p = points.setdefault(r["id"], {"id": r["id"], "knobs": r.get("knobs"), "seeds": [], "errors": [],
                                                "values": {k: [] for k in keys}})
                if r.get("error"):
                    p["errors"].append({"seed": seed, "error": r["error"],
                                        **(error_info(r["error"]) if error_info else {})})
                    continue
                p["seeds"].append(seed)
                for k in keys:
                    p["values"][k].append(r.get(k))
        for p in points.values():
            p["stats"] = {k: stats(v) for k, v in p.pop("values").items()}  # each with the seeds' values
        out[family] = sorted(points.values(), key=lambda p: (p["stats"]["lut"]["mean"] is None,
                                                            p["stats"]["lut"]["mean"] or 0, p["id"]))
    return out


def _mean(p: dict, key: str):
    return p["stats"][key]["mean"]


def budget_pick(points: list[dict], max_lut: float) -> dict | None:
    """The point with the best mean VALIDATION AUC at or under ``max_lut`` (mean LUT over seeds)."""
    inside = [p for p in points if _mean(p, "lut") is not None and _mean(p, "val_auc") is not None
              and _mean(p, "lut") <= max_lut]
    return max(inside, key=lambda p: (_mean(p, "val_auc"), -_mean(p, "lut"))) if inside else None


def near_budget(points: list[dict], max_lut: float, k: int = 2) -> list[str]:
    """Ids worth more seeds: the ``k`` best by validation AUC under the budget and the smallest one above it."""
    ok = [p for p in points if _mean(p, "lut") is not None and _mean(p, "val_auc") is not None]
    inside = sorted((p for p in ok if _mean(p, "lut") <= max_lut), key=lambda p: -_mean(p, "val_auc"))[:k]
    above = sorted((p for p in ok if _mean(p, "lut") > max_lut), key=lambda p: _mean(p, "lut"))[:1]
    return [p["id"] for p in inside + above]


def kd_vs_scratch(kd: list[dict], scratch: list[dict]) -> list[dict]:
    """Each KD point against the best scratch point (test AUC, seed means) at or under its LUT count."""
    rows = []
    for p in kd:
        lut, auc = _mean(p, "lut"), _mean(p, "test_auc")
        if lut is None or auc is None:
            continue
        cands = [q for q in scratch if _mean(q, "lut") is not None and _mean(q, "test_auc") is not None
                 and _mean(q, "lut") <= lut]
        if not cands:
            rows.append({"kd": p["id"], "kd_lut": lut, "kd_test_auc": auc, "scratch": None,
                         "verdict": "no scratch point at or under this LUT count"})
            continue
        q = max(cands, key=lambda q: _mean(q, "test_auc"))
        spreads = [s for s in (p["stats"]["test_auc"]["std"], q["stats"]["test_auc"]["std"]) if s is not None]
        std = max(spreads) if spreads else None
        need = max(3 * std, MIN_GAIN) if std is not None else None
        gain = auc - _mean(q, "test_auc")
        rows.append({"kd": p["id"], "kd_lut": lut, "kd_test_auc": auc, "kd_seeds": len(p["seeds"]),
                     "scratch": q["id"], "scratch_lut": _mean(q, "lut"), "scratch_test_auc": _mean(q, "test_auc"),
                     "scratch_seeds": len(q["seeds"]), "gain": gain, "required": need,
                     "verdict": ("one seed: no spread, no verdict" if need is None
                                 else "met" if gain > need else "not met")})
    return rows


def _lines(front_dir: Path) -> dict:
    """Teacher and jet-mass baselines on the TEST jets, from the first point's student metrics."""
    from trigger_kd.rundir import METRICS, STUDENT, StudentMetrics

    for run in sorted((front_dir / "points").glob("*")):
        m = StudentMetrics.read(run / STUDENT / METRICS)
        if m is None:
            continue
        out = {"teacher": (m.metrics("teacher") or {}).get("auc")}
        for key, b in (m.baselines or {}).items():
            out[key] = ((b or {}).get("test") or {}).get("auc")
        return {k: v for k, v in out.items() if v is not None}
    return {}


def knob_points(knobs: dict) -> list[str]:
    """A point's knobs as `trigger-kd front --points` values that make exactly that point (None: a knob left at its
    "any" default, max_ebops; the ``inputs`` axis's booleans as its values 'learned' / 'fixed')."""
    def text(v) -> str:
        if isinstance(v, bool):
            return "learned" if v else "fixed"
        return "/".join(map(str, v)) if isinstance(v, (list, tuple)) else repr(v)

    return [f"{k}={text(v)}" for k, v in knobs.items() if v is not None]


def run_family(family: str, seed: int, args, points: list[str] | None = None, tag: str = "",
               workers: int | None = None) -> tuple[list[dict], dict, dict]:
    """One `trigger-kd front` sweep of a family for one seed: its grid, or the one point ``points`` names."""
    config, grid, sets = FAMILIES[family]
    out = Path(args.work) / f"{family}_seed{seed}{tag}"
    points = points or [f"width={args.widths}", *grid]
    cmd = [str(Path(sys.executable).parent / "trigger-kd"), "front", str(REPO / "hls_configs" / config),
           "--profile", args.profile, "--workers", str(workers or args.workers), "--out", str(out),
           *(x for p in points for x in ("--points", p)),
           *(x for s in [*sets, f"student.seed={seed}", "distill.scratch_twin=false", *args.set] for x in ("--set", s))]
    t0 = time.time()
    print(f"[bench-front] {family} seed {seed}: {' '.join(cmd)}", flush=True)
    proc = subprocess.run(cmd, text=True, capture_output=True)
    wall = time.time() - t0
    front = out / "front.json"
    if not front.is_file():
        raise SystemExit(f"{family} seed {seed}: trigger-kd front wrote no front.json (exit {proc.returncode}):\n"
                         f"{proc.stderr[-3000:]}")
    doc = read_front(front)  # every row's figures checked (trigger_kd/front/record.py)
    return doc["points"], {"family": family, "seed": seed, "seconds": round(wall, 1), "exit": proc.returncode,
                           "command": " ".join(cmd), "front": str(front)}, _lines(out)


def reseed(jobs: list[tuple[str, int, dict]], args) -> list[tuple[str, int, list[dict], dict]]:
    """More seeds of single points: one one-worker sweep per (family, seed, knobs), ``args.workers`` at a time."""
    from concurrent.futures import ThreadPoolExecutor

    def one(job):
        family, seed, knobs = job
        tag = "_" + "_".join(knob_points(knobs)).replace("=", "").replace("/", "-").replace(",", "-")
        rows, info, _ = run_family(family, seed, args, knob_points(knobs), tag=tag, workers=1)
        return family, seed, rows, info

    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        return list(pool.map(one, jobs))


def plot(result: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    styles = {"brevitas_kd": ("C0", "o", "-"), "brevitas_scratch": ("C0", "o", ":"),
              "hgq_kd": ("C3", "s", "-"), "hgq_scratch": ("C3", "s", ":")}
    for family, points in result["families"].items():
        pts = [p for p in points if _mean(p, "lut") is not None and _mean(p, "test_auc") is not None]
        if not pts:
            continue
        c, m, ls = styles.get(family, ("k", "x", "-"))
        xs = [_mean(p, "lut") for p in pts]
        ys = [_mean(p, "test_auc") for p in pts]
        es = [p["stats"]["test_auc"]["std"] or 0 for p in pts]
        ax.errorbar(xs, ys, yerr=es, color=c, marker=m, ls="none", alpha=0.8, capsize=2, label=family)
        best, frontier = -1.0, []
        for x, y in sorted(zip(xs, ys)):
            if y > best:
                frontier.append((x, y))
                best = y
        ax.plot(*zip(*frontier), color=c, ls=ls, lw=1)
    for i, (name, auc) in enumerate(sorted(result["lines"].items())):
        ax.axhline(auc, color="0.4", ls=["--", "-.", ":"][i % 3], lw=1, label=f"{name} ({auc:.4f})")
    finish_lut_plot(fig, ax, out, result, f"test AUC ({result['profile']} profile, "
                    f"{result.get('test_jets') or '?'} test jets)", "accuracy per LUT")


def finish_lut_plot(fig, ax, path: Path, result: dict, ylabel: str, title: str) -> None:
    """Log LUT axis, the budget line (``max_lut``), labels, legend and grid; saved to ``path``."""
    import matplotlib.pyplot as plt

    if result.get("max_lut"):
        ax.axvline(result["max_lut"], color="k", lw=0.8, alpha=0.5)
    ax.set_xscale("log")
    ax.set_xlabel("LUT (da4ml estimate)")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title}, {result['profile']} profile (seed means, bars: seed std)")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_options(ap, {"work": WORK_HELP, "set": "extra --set for every point", "workers": "Dask workers of each sweep"},
                profile="quick", out="benchmarks/out/front_quick.json", work=None, seeds=[1, 2, 3], workers=2, set=[])
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    ap.add_argument("--widths", default="0.5,1", help="width scales of every family (trigger-kd front --points)")
    ap.add_argument("--max-lut", type=float, default=10000)
    ap.add_argument("--target-auc", type=float, default=0.945)
    ap.add_argument("--plot", default=None, help="AUC vs LUT plot (default: --out with .png)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    args.work = args.work or str(out.with_name(out.stem + "_work"))
    t0 = time.time()
    runs: dict[str, dict[int, list[dict]]] = {f: {} for f in args.families}
    sweeps, lines = [], {}
    first, rest = args.seeds[0], args.seeds[1:]
    for family in args.families:
        rows, info, found = run_family(family, first, args, None)
        runs[family][first] = rows
        sweeps.append(info)
        lines = lines or found
    agg = aggregate(runs)
    again, jobs = {}, []
    for family in args.families:
        if not family.endswith("_kd"):
            continue
        ids = near_budget(agg[family], args.max_lut)
        knobs = {p["id"]: p["knobs"] for p in agg[family]}
        for fam in (family, scratch_of(family)):
            if fam in args.families:
                again[fam] = ids
                jobs += [(fam, seed, knobs[i]) for seed in rest for i in ids]
    for family, seed, rows, info in reseed(jobs, args):
        runs[family].setdefault(seed, []).extend(rows)
        sweeps.append(info)
    agg = aggregate(runs)
    budget = {}
    for family in args.families:
        if not family.endswith("_kd"):
            continue
        p = budget_pick(agg[family], args.max_lut)
        budget[family] = None if p is None else {
            "id": p["id"], "seeds": p["seeds"], "lut": p["stats"]["lut"], "val_auc": p["stats"]["val_auc"],
            "test_auc": p["stats"]["test_auc"], "latency_ns": p["stats"]["latency_ns"],
            "parity_pct": p["stats"]["parity_pct"],
            "target": f"test AUC >= {args.target_auc} at <= {args.max_lut:g} LUT",
            "met": (p["stats"]["test_auc"]["mean"] or 0) >= args.target_auc}
    comparisons = {f: kd_vs_scratch(agg[f], agg[scratch_of(f)]) for f in args.families
                   if f.endswith("_kd") and scratch_of(f) in args.families}
    parity = [p["stats"]["parity_pct"] for f in agg.values() for p in f]
    result = {
        "benchmark": "front", "profile": args.profile, **provenance(argv, script=__file__),
        "machine": machine(cpu=platform.processor() or platform.machine(), cores=os.cpu_count()),
        "seconds": round(time.time() - t0, 1), "max_lut": args.max_lut, "target_auc": args.target_auc,
        "lut_source": "da4ml estimate (synth stage, open-source route); AUC on the profile's test jets, chosen on val",
        "lines": lines, "seeds": args.seeds, "reseeded": again, "sweeps": sweeps,
        "families": agg, "budget": budget, "kd_vs_scratch": comparisons,
        "all_points_bit_exact": all(s["mean"] == 100.0 for s in parity if s["n"]),
    }
    write_record(out, result)
    plot(result, Path(args.plot or out.with_suffix(".png")))
    for family, b in budget.items():
        print(f"[bench-front] {family}: under {args.max_lut:g} LUT picked "
              + ("nothing" if b is None else f"{b['id']} (val {b['val_auc']['mean']:.4f}, test "
                 f"{b['test_auc']['mean']:.4f} +- {b['test_auc']['std'] or 0:.4f}, {b['lut']['mean']:.0f} LUT): "
                 f"target {'met' if b['met'] else 'NOT met'}"))
    print(f"[bench-front] {out} ({result['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
