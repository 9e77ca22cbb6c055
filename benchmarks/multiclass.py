"""The 5-class (gluon, q, w, z, top) accuracy-per-LUT benchmark: what distillation buys a K-class FPGA tagger.

    python benchmarks/multiclass.py --profile quick --out benchmarks/out/multiclass_quick.json \
        [--seeds 1 2 3] [--workers 2] [--families hgq_kd hgq_scratch brevitas_kd] [--widths 0.5,1]
        [--points AXIS=V1,V2 ...] [--set SECTION.KEY=VALUE ...] [--reseed all|front] [--plot PNG] [--markdown]

Families (each one `trigger-kd front` sweep per seed, on the profile's jets and teacher, shared through the cache):

- ``hgq_kd``: ``hls_configs/mlp_kd_hgq_5class.yml``, HGQ2 learned bit widths, EBOPs penalty beta
  (1e-6 / 1e-5 / 1e-4) x widths, KD recipe;
- ``hgq_scratch``: the same points with ``distill.alpha=0`` (no teacher, everything else equal);
- ``brevitas_kd``: ``hls_configs/mlp_kd_5class.yml``, uniform bits (weights 3 / 4 / 6) x widths, KD recipe;
- ``brevitas_scratch`` (not run unless named): the Brevitas points with ``distill.alpha=0``.

Widths: ``--widths`` scales (default quick 0.5,1; study 0.5,1,2) of each config's hidden layers (HGQ2 64-32 from
its model file, Brevitas the profile's 32-16). ``--points AXIS=V1,V2`` replaces that axis of every family whose
framework has it (``trigger-kd front --points``; e.g. ``--points width=0.5 --points beta=1e-5 --points bits=4``:
one point per family). ``--reseed all`` (default) runs every point for every seed; ``--reseed front`` runs seed
2.. only on the points of seed 1's validation front of each family and their KD / scratch partners.

K classes rank on VALIDATION ACCURACY (``front.json`` rows: ``metric`` "accuracy", ``val_score`` / ``test_score``);
the macro one-vs-rest AUC is recorded beside it. Per point and family: mean and sample std over seeds of validation
/ test accuracy, macro AUC, LUT (da4ml's estimate, not a synthesis), FF, latency, C-simulation and RTL parity.
Reference lines: the teacher and both baselines (BDTs on the jet mass of the student's inputs, and on mass / tau21
/ tau32 / multiplicity: ``student/metrics.json`` ``baselines``), on validation and test jets.

Verdicts (test jets; every choice is made on validation figures, seed means):
- ``kd_vs_scratch``: each point on a KD family's validation front against the scratch point with the best
  validation accuracy at or under its LUT count; the test-accuracy gain must be >= max(3 std, 0.01), std the
  larger seed spread of the two (met: at every front point that has a scratch point to compare with);
- ``study``: the best student (any family) at <= ``--max-lut`` (40k) LUT, picked on validation accuracy: within
  0.03 test accuracy of its teacher and >= 0.03 above the substructure baseline (the target is stated for the
  study profile; a quick run reports it as measured);
- ``parity``: every point of every seed 100 % bit-exact in C-simulation and RTL simulation (a failed point, one
  without a figure, or 99.9 % fails it).
A target not reached is reported as measured. The JSON carries the git commit, the command, the machine and the
wall times; ``--plot`` writes test accuracy vs LUT per family with the teacher and both baselines as lines;
``--markdown`` prints the table for benchmarks/history/multiclass.md (``--from-json`` renders an earlier result, no
runs).
"""
from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from benchmarks.kd_gain import stats  # noqa: E402  (mean, sample std, n, the seeds' values)
from benchmarks.front import aggregate as front_aggregate  # noqa: E402
from benchmarks.front import knob_points  # noqa: E402  (a point's knobs as --points values)
from benchmarks.front import WORK_HELP, finish_lut_plot  # noqa: E402
from benchmarks.provenance import add_options, machine, provenance, write_record  # noqa: E402
from trigger_kd.front.record import read_front  # noqa: E402

# family -> (model file, student.framework, its grid besides the widths, extra --set)
FAMILIES = {
    "hgq_kd": ("mlp_kd_hgq_5class.yml", "hgq", ["beta=1e-6,1e-5,1e-4"], []),
    "hgq_scratch": ("mlp_kd_hgq_5class.yml", "hgq", ["beta=1e-6,1e-5,1e-4"], ["distill.alpha=0"]),
    "brevitas_kd": ("mlp_kd_5class.yml", "brevitas", ["bits=3,4,6"], []),
    "brevitas_scratch": ("mlp_kd_5class.yml", "brevitas", ["bits=3,4,6"], ["distill.alpha=0"]),
}
DEFAULT_FAMILIES = ("hgq_kd", "hgq_scratch", "brevitas_kd")
WIDTHS = {"quick": "0.5,1", "study": "0.5,1,2"}
KEYS = ("val_score", "test_score", "val_accuracy", "test_accuracy", "val_auc", "test_auc", "lut", "ff",
        "latency_ns", "pipeline_stages", "parity_pct", "rtl_parity_pct")
ACC_MIN_GAIN = 0.01  # the KD-vs-scratch margin floor in ACCURACY (kd_gain's MIN_GAIN, 0.005, is in AUC)
MAX_LUT = 40000.0
TEACHER_GAP = 0.03
BASELINE_MARGIN = 0.03
LUT_SOURCE = ("LUT: da4ml's estimate (synth stage, open-source route, synth.yosys false), not a synthesis; "
              "latency: da4ml pipeline stages x clock")
NAMES = {"hgq_kd": "HGQ2 KD", "hgq_scratch": "HGQ2 scratch", "brevitas_kd": "Brevitas KD",
         "brevitas_scratch": "Brevitas scratch"}


# ----------------------------------------------------------------------------- bookkeeping (pure functions)
def scratch_of(family: str) -> str | None:
    return family.replace("_kd", "_scratch") if family.endswith("_kd") else None


def kd_of(family: str) -> str | None:
    return family.replace("_scratch", "_kd") if family.endswith("_scratch") else None


_PARITY_ERRORS = (("parity_pct", re.compile(r"C-simulation is bit-exact on only ([0-9.]+) ?%")),
                  ("rtl_parity_pct", re.compile(r"RTL simulation is bit-exact on only ([0-9.]+) ?%")))


def failed_parity(error: str) -> dict:
    """The parity a failed point's error names (the firmware and synth stages refuse below 100 %)."""
    return {k: float(m.group(1)) for k, rx in _PARITY_ERRORS if (m := rx.search(error or ""))}


def aggregate(runs: dict[str, dict[int, list[dict]]], keys=KEYS) -> dict[str, list[dict]]:
    """{family: {seed: front.json rows}} -> {family: [point: id, knobs, seeds, errors, stats {key: seed stats}]},
    by mean LUT (benchmarks/front.py); a failed row is kept under ``errors`` with the parity its error names."""
    return front_aggregate(runs, keys, failed_parity)


def _mean(p: dict, key: str):
    return p["stats"][key]["mean"]


def _std(p: dict, key: str):
    return p["stats"][key]["std"]


def usable(p: dict, metric: str = "accuracy") -> bool:
    """A point that can be on a front or picked: no failed seed, a mean LUT and a mean validation figure."""
    return not p["errors"] and bool(p["seeds"]) and _mean(p, "lut") is not None \
        and _mean(p, f"val_{metric}") is not None


def front_ids(points: list[dict], metric: str = "accuracy") -> list[str]:
    """Ids of the points no other beats on both mean validation ``metric`` (higher) and mean LUT (lower), by LUT."""
    ok = [p for p in points if usable(p, metric)]
    v = f"val_{metric}"
    front = [p for p in ok if not any(
        _mean(q, "lut") <= _mean(p, "lut") and _mean(q, v) >= _mean(p, v)
        and (_mean(q, "lut") < _mean(p, "lut") or _mean(q, v) > _mean(p, v)) for q in ok)]
    return [p["id"] for p in sorted(front, key=lambda p: (_mean(p, "lut"), -_mean(p, v), p["id"]))]


def pick_on_validation(points: list[dict], max_lut: float | None, metric: str = "accuracy") -> dict | None:
    """The point with the best mean VALIDATION ``metric`` at or under ``max_lut`` (mean LUT); ties: fewer LUT, id."""
    v = f"val_{metric}"
    inside = [p for p in points if usable(p, metric) and (max_lut is None or _mean(p, "lut") <= max_lut)]
    return min(inside, key=lambda p: (-_mean(p, v), _mean(p, "lut"), p["id"])) if inside else None


def kd_vs_scratch(kd: list[dict], scratch: list[dict], metric: str = "accuracy",
                  min_gain: float = ACC_MIN_GAIN) -> dict:
    """Each point on the KD family's validation front against the scratch point picked on validation at or under
    its LUT count; the TEST gain must reach max(3 std, ``min_gain``), std the larger seed spread of the two (both
    need two seeds or more). Met: at every front point that has a scratch point to compare with."""
    rows = []
    by_id = {p["id"]: p for p in kd}
    t = f"test_{metric}"
    for pid in front_ids(kd, metric):
        p = by_id[pid]
        lut = _mean(p, "lut")
        row = {"kd": pid, "kd_lut": lut, "kd_seeds": len(p["seeds"]), "kd_val": _mean(p, f"val_{metric}"),
               "kd_test": _mean(p, t), "kd_test_std": _std(p, t)}
        q = pick_on_validation(scratch, lut, metric)
        if q is None or _mean(p, t) is None or _mean(q, t) is None:
            rows.append({**row, "scratch": None, "verdict": "no scratch point at or under this LUT count"})
            continue
        gain = _mean(p, t) - _mean(q, t)
        row.update({"scratch": q["id"], "scratch_lut": _mean(q, "lut"), "scratch_seeds": len(q["seeds"]),
                    "scratch_val": _mean(q, f"val_{metric}"), "scratch_test": _mean(q, t),
                    "scratch_test_std": _std(q, t), "gain": gain})
        if _std(p, t) is None or _std(q, t) is None:
            rows.append({**row, "required": None, "verdict": "fewer than 2 seeds: no spread, no verdict"})
            continue
        std = max(_std(p, t), _std(q, t))
        need = max(3 * std, min_gain)
        rows.append({**row, "std": std, "required": need, "verdict": "met" if gain >= need else "not met"})
    judged = [r for r in rows if r["verdict"] in ("met", "not met")]
    met = [r["kd"] for r in judged if r["verdict"] == "met"]
    return {"metric": metric, "rule": f"test {metric} gain >= max(3 std, {min_gain:g}) at equal or lower LUT, "
                                      f"both points chosen on validation {metric} (seed means)",
            "rows": rows, "met_at": met, "judged": len(judged),
            "three_seeds_everywhere": all(r["kd_seeds"] >= 3 and r.get("scratch_seeds", 0) >= 3 for r in judged),
            "met": (len(met) == len(judged)) if judged else None}


def line(lines: dict, name: str, split: str, metric: str):
    return ((lines.get(name) or {}).get(split) or {}).get(metric)


def study_verdict(families: dict[str, list[dict]], lines: dict, max_lut: float = MAX_LUT, metric: str = "accuracy",
                  teacher_gap: float = TEACHER_GAP, baseline_margin: float = BASELINE_MARGIN) -> dict:
    """The best student of any family at <= ``max_lut`` LUT picked on VALIDATION ``metric``; on test: within
    ``teacher_gap`` of the teacher and at least ``baseline_margin`` above the substructure baseline."""
    best, fam = None, None
    v = f"val_{metric}"
    for family, points in families.items():
        p = pick_on_validation(points, max_lut, metric)
        if p is not None and (best is None or (-_mean(p, v), _mean(p, "lut"), family)
                              < (-_mean(best, v), _mean(best, "lut"), fam)):
            best, fam = p, family
    teacher, sub = line(lines, "teacher", "test", metric), line(lines, "substructure", "test", metric)
    target = (f"test {metric} within {teacher_gap:g} of the teacher and >= {baseline_margin:g} above the substructure "
              f"baseline, at <= {max_lut:g} LUT (picked on validation {metric})")
    if best is None:
        return {"target": target, "picked": None, "met": False, "why": f"no usable point at <= {max_lut:g} LUT"}
    test = _mean(best, f"test_{metric}")
    gap = None if teacher is None or test is None else teacher - test
    over = None if sub is None or test is None else test - sub
    return {"target": target, "family": fam, "picked": best["id"], "seeds": best["seeds"],
            "lut": best["stats"]["lut"], "val": best["stats"][v], "test": best["stats"][f"test_{metric}"],
            "test_auc": best["stats"]["test_auc"], "latency_ns": best["stats"]["latency_ns"],
            "teacher_test": teacher, "substructure_test": sub, "teacher_gap": gap, "over_substructure": over,
            "teacher_gap_met": None if gap is None else gap <= teacher_gap,
            "baseline_met": None if over is None else over >= baseline_margin,
            "met": gap is not None and over is not None and gap <= teacher_gap and over >= baseline_margin}


def parity_verdict(families: dict[str, list[dict]]) -> dict:
    """100 % bit-exact on every point of every seed, in C-simulation (``parity_pct``) and RTL simulation
    (``rtl_parity_pct``). A failed point, or one with a figure missing, fails it."""
    failures, checked = [], 0
    for family, points in families.items():
        for p in points:
            for e in p["errors"]:
                failures.append({"family": family, "id": p["id"], "seed": e["seed"], "why": "point failed",
                                 "parity_pct": e.get("parity_pct"), "rtl_parity_pct": e.get("rtl_parity_pct"),
                                 "error": e["error"][:300]})
            for i, seed in enumerate(p["seeds"]):
                checked += 1
                for key, what in (("parity_pct", "C-simulation"), ("rtl_parity_pct", "RTL simulation")):
                    val = p["stats"][key]["values"][i]
                    if val is None or val != 100.0:
                        failures.append({"family": family, "id": p["id"], "seed": seed, key: val,
                                         "why": f"{what} {'not measured' if val is None else f'{val:g} %'}"})
    return {"target": "100 % bit-exact on every point and seed, C-simulation and RTL simulation",
            "point_seeds_checked": checked, "failures": failures, "met": checked > 0 and not failures}


def lines_from(student_metrics: dict, teacher_metrics: dict | None = None) -> dict:
    """Reference lines from a point's student/metrics.json (and teacher/metrics.json when the student's has no
    teacher): {"teacher" | "jet_mass_inputs" | "substructure": {"val": {accuracy, auc}, "test": {...}}}."""
    def pick(m):
        return {k: m.get(k) for k in ("accuracy", "auc", "n_jets") if m and m.get(k) is not None} or None

    out = {}
    teacher = pick(student_metrics.get("teacher")) or pick((teacher_metrics or {}).get("test"))
    val = pick((student_metrics.get("validation") or {}).get("teacher"))
    if teacher or val:
        out["teacher"] = {"test": teacher, "val": val}
    for key, b in (student_metrics.get("baselines") or {}).items():
        if isinstance(b, dict) and (b.get("test") or b.get("val")):
            out[key] = {"what": b.get("what"), "test": pick(b.get("test")), "val": pick(b.get("val"))}
    return out


def point_specs(knobs: dict) -> list[str]:
    """A point's knobs as `trigger-kd front --points` values that make exactly that point (benchmarks/front.py)."""
    return knob_points(knobs)


def grid_specs(family: str, widths: str, points: list[str]) -> list[str]:
    """The family's `--points`: widths and its own grid, each axis that ``points`` names replaced by it (axes of
    another framework left out)."""
    from trigger_kd.front.sweep import knobs_for

    _, framework, grid, _ = FAMILIES[family]
    axes = {a.name for a in knobs_for(framework)}
    given = {p.partition("=")[0].strip(): p for p in points}
    specs = {s.partition("=")[0]: s for s in [f"width={widths}", *grid]}
    specs.update({k: v for k, v in given.items() if k in axes})
    return list(specs.values())


def front_command(family: str, seed: int, profile: str, workers: int, out: Path, specs: list[str],
                  sets: list[str], exe: str | None = None) -> list[str]:
    config, _, _, fam_sets = FAMILIES[family]
    exe = exe or str(Path(sys.executable).parent / "trigger-kd")
    return [exe, "front", str(REPO / "hls_configs" / config), "--profile", profile, "--workers", str(workers),
            "--out", str(out), *(x for p in specs for x in ("--points", p)),
            *(x for s in [*fam_sets, f"student.seed={seed}", "distill.scratch_twin=false", *sets]
              for x in ("--set", s))]


# ----------------------------------------------------------------------------- running the sweeps
def _read_lines(front_dir: Path, rows: list[dict]) -> dict:
    """The first point's reference lines; a point that failed after its student stage (firmware, synth) has them."""
    for r in rows:
        run = Path(r.get("run_dir") or front_dir / "points" / r["id"])
        sm = run / "student" / "metrics.json"
        if not sm.is_file():
            continue
        tm = run / "teacher" / "metrics.json"
        found = lines_from(json.loads(sm.read_text()), json.loads(tm.read_text()) if tm.is_file() else None)
        if found:
            return found
    return {}


def run_sweep(family: str, seed: int, args, specs: list[str], tag: str = "",
              workers: int | None = None) -> tuple[list[dict], dict, dict]:
    """One `trigger-kd front` sweep (its log next to it): its rows, what ran, its reference lines. A sweep with
    failed points exits non-zero but writes front.json: the failures are kept as rows (the parity verdict needs
    them); no front.json stops the benchmark."""
    out = Path(args.work) / f"{family}_seed{seed}{tag}"
    out.mkdir(parents=True, exist_ok=True)
    front = out / "front.json"
    front.unlink(missing_ok=True)  # never read an earlier run's result (the points themselves are reused by stamp)
    cmd = front_command(family, seed, args.profile, workers or args.workers, out, specs, args.set)
    log = out / "bench.log"
    print(f"[bench-multiclass] {family} seed {seed}: {shlex.join(cmd)}", flush=True)
    t0 = time.time()
    code = 0
    with open(log, "w") as fh:
        try:
            subprocess.run(cmd, check=True, stdout=fh, stderr=subprocess.STDOUT, text=True)
        except subprocess.CalledProcessError as exc:
            code = exc.returncode
    wall = time.time() - t0
    if not front.is_file():
        raise SystemExit(f"{family} seed {seed}: trigger-kd front wrote no front.json (exit {code}); log {log}:\n"
                         + log.read_text()[-3000:])
    rows = read_front(front)["points"]  # every row's figures checked (trigger_kd/front/record.py)
    bad = [r["id"] for r in rows if r.get("error")]
    print(f"[bench-multiclass] {family} seed {seed}: {len(rows)} point(s), {len(bad)} failed, {wall:.0f} s"
          + (f" (failed: {', '.join(bad)})" if bad else ""), flush=True)
    return rows, {"family": family, "seed": seed, "seconds": round(wall, 1), "exit": code,
                  "command": shlex.join(cmd), "front": str(front), "log": str(log)}, _read_lines(out, rows)


def reseed_jobs(agg: dict[str, list[dict]], seeds: list[int], metric: str) -> list[tuple[str, int, dict]]:
    """--reseed front: (family, seed, knobs) for seeds 2..: each family's seed-1 validation front and the same
    knobs in its KD / scratch partner family."""
    ids = {f: set(front_ids(points, metric)) for f, points in agg.items()}
    for f in list(ids):
        partner = scratch_of(f) or kd_of(f)
        if partner in ids:
            both = ids[f] | ids[partner]
            ids[f] = ids[partner] = both
    return [(f, seed, p["knobs"]) for f, points in agg.items() for seed in seeds for p in points if p["id"] in ids[f]]


def reseed(jobs: list[tuple[str, int, dict]], args) -> list[tuple[str, int, list[dict], dict]]:
    """One one-worker single-point sweep per (family, seed, knobs), ``args.workers`` at a time."""
    from concurrent.futures import ThreadPoolExecutor

    def one(job):
        family, seed, knobs = job
        specs = point_specs(knobs)
        tag = "_" + "_".join(specs).replace("=", "").replace("/", "-").replace(",", "-")
        rows, info, _ = run_sweep(family, seed, args, specs, tag=tag, workers=1)
        return family, seed, rows, info

    with ThreadPoolExecutor(max_workers=max(1, args.workers)) as pool:
        return list(pool.map(one, jobs))


# ----------------------------------------------------------------------------- output
def _fmt(s: dict | None, digits: int = 4, std: bool = True) -> str:
    if not s or s.get("mean") is None:
        return "-"
    text = f"{s['mean']:.{digits}f}"
    return text + (f" +- {s['std']:.{digits}f}" if std and s.get("std") is not None else "")


def _int(s: dict | None) -> str:
    return "-" if not s or s.get("mean") is None else f"{s['mean']:,.0f}" + (
        f" +- {s['std']:,.0f}" if s.get("std") is not None else "")


def markdown(result: dict) -> str:
    """The benchmarks/history/multiclass.md table: one row per point and family, then the reference lines and the
    verdicts."""
    m = result.get("metric", "accuracy")
    out = [f"| family | point | n | val {m} | test {m} (+- seed std) | test macro AUC | LUT (da4ml est.) | "
           f"latency ns | C-sim / RTL parity | on the front |", "|---|---|---|---|---|---|---|---|---|---|"]
    for family, points in result["families"].items():
        front = set(result.get("fronts", {}).get(family, []))
        for p in points:
            s = p["stats"]
            if not p["seeds"]:
                out.append(f"| {NAMES.get(family, family)} | {p['id']} | 0 | failed: {p['errors'][0]['error'][:80]} "
                           f"| | | | | | |")
                continue
            par = f"{_fmt(s['parity_pct'], 2, False)} / {_fmt(s['rtl_parity_pct'], 2, False)} %"
            fail = f" ({len(p['errors'])} failed)" if p["errors"] else ""
            out.append(f"| {NAMES.get(family, family)} | {p['id']}{fail} | {len(p['seeds'])} | "
                       f"{_fmt(s[f'val_{m}'], 4, False)} | {_fmt(s[f'test_{m}'])} | {_fmt(s['test_auc'])} | "
                       f"{_int(s['lut'])} | {_fmt(s['latency_ns'], 0, False)} | {par} | "
                       f"{'yes' if p['id'] in front else ''} |")
    out.append("")
    for name, ln in result.get("lines", {}).items():
        t, v = ln.get("test") or {}, ln.get("val") or {}
        out.append(f"- {name}: test {m} {t.get(m, float('nan')):.4f}, macro AUC {t.get('auc', float('nan')):.4f} "
                   f"(validation {m} {v.get(m, float('nan')):.4f})" + (f"; {ln['what']}" if ln.get("what") else ""))
    ver = result.get("verdicts", {})
    for fam, k in ver.get("kd_vs_scratch", {}).items():
        out.append(f"- KD vs scratch ({fam}): {'met' if k['met'] else 'no verdict' if k['met'] is None else 'NOT met'}"
                   f" (met at {len(k['met_at'])} of the {k['judged']} front point(s) judged; {k['rule']})")
        for r in k["rows"]:
            out.append(f"  - {r['kd']} ({r['kd_lut']:,.0f} LUT, n={r['kd_seeds']}) vs {r.get('scratch')}"
                       + (f" ({r['scratch_lut']:,.0f} LUT, n={r['scratch_seeds']}): gain {r['gain']:+.4f}, required "
                          + ("-" if r["required"] is None else f"{r['required']:.4f}") if r.get("scratch") else "")
                       + f": {r['verdict']}")
    st = ver.get("study")
    if st:
        if st.get("picked") is None:
            out.append(f"- study target ({st['target']}): NOT met: {st.get('why')}")
        else:
            gap, over = st.get("teacher_gap"), st.get("over_substructure")
            out.append(f"- study target ({st['target']}): {'met' if st['met'] else 'NOT met'}: picked "
                       f"{NAMES.get(st['family'], st['family'])} {st['picked']}, val {_fmt(st['val'], 4, False)}, test "
                       f"{_fmt(st['test'])} at {_int(st['lut'])} LUT; teacher gap "
                       f"{'-' if gap is None else f'{gap:+.4f}'}, over substructure "
                       f"{'-' if over is None else f'{over:+.4f}'} ({result.get('profile')} profile)")
    par = ver.get("parity")
    if par:
        out.append(f"- bit-exact: {'met' if par['met'] else 'NOT met'} ({par['point_seeds_checked']} point-seeds "
                   f"checked, {len(par['failures'])} failure(s))")
    out.append(f"- {result.get('lut_source', LUT_SOURCE)}")
    return "\n".join(out)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = result.get("metric", "accuracy")
    fig, ax = plt.subplots(figsize=(7.5, 5))
    styles = {"brevitas_kd": ("C0", "o", "-"), "brevitas_scratch": ("C0", "o", ":"),
              "hgq_kd": ("C3", "s", "-"), "hgq_scratch": ("C3", "s", ":")}
    for family, points in result["families"].items():
        pts = [p for p in points if p["seeds"] and _mean(p, "lut") is not None and _mean(p, f"test_{m}") is not None]
        if not pts:
            continue
        c, mk, ls = styles.get(family, ("k", "x", "-"))
        xs, ys = [_mean(p, "lut") for p in pts], [_mean(p, f"test_{m}") for p in pts]
        ax.errorbar(xs, ys, yerr=[_std(p, f"test_{m}") or 0 for p in pts], color=c, marker=mk, ls="none",
                    mfc="none" if family.endswith("_scratch") else c, alpha=0.8, capsize=2,
                    label=NAMES.get(family, family))
        front = [p for p in pts if p["id"] in set(result.get("fronts", {}).get(family, []))]
        if front:  # the validation front, drawn at its test figures
            ax.plot([_mean(p, "lut") for p in front], [_mean(p, f"test_{m}") for p in front], color=c, ls=ls, lw=1)
    for i, name in enumerate(n for n in ("teacher", "jet_mass_inputs", "substructure") if n in result.get("lines", {})):
        y = line(result["lines"], name, "test", m)
        if y is not None:
            ax.axhline(y, color="0.3", ls=["--", "-.", ":"][i % 3], lw=1, label=f"{name} ({y:.4f})")
    n = line(result.get("lines", {}), "teacher", "test", "n_jets")
    finish_lut_plot(fig, ax, path, result, f"test {m} ({result['profile']} profile, {n or '?'} test jets)",
                    "5-class accuracy per LUT")


def summarise(runs: dict[str, dict[int, list[dict]]], lines: dict, args, metric: str) -> dict:
    agg = aggregate(runs)
    fronts = {f: front_ids(points, metric) for f, points in agg.items()}
    kd = {f: kd_vs_scratch(agg[f], agg[scratch_of(f)], metric) for f in agg
          if f.endswith("_kd") and scratch_of(f) in agg}
    return {"metric": metric, "families": agg, "fronts": fronts,
            "verdicts": {"kd_vs_scratch": kd,
                         "study": study_verdict(agg, lines, args.max_lut, metric, args.teacher_gap,
                                                args.baseline_margin),
                         "parity": parity_verdict(agg)}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.split("\n")[1:]))
    add_options(ap, {"profile": "config profile (quick | study | paper); default quick",
                     "out": "result JSON (default benchmarks/out/multiclass_<profile>.json)", "work": WORK_HELP,
                     "seeds": "student.seed values (default 1 2 3)", "workers": "Dask workers of each sweep (default 2)",
                     "set": "extra --set for every point (after the family's own and student.seed)"},
                profile="quick", out=None, work=None, seeds=[1, 2, 3], workers=2, set=[])
    ap.add_argument("--families", nargs="+", default=list(DEFAULT_FAMILIES), choices=list(FAMILIES))
    ap.add_argument("--widths", default=None, help="width scales of every family (default quick 0.5,1; study 0.5,1,2)")
    ap.add_argument("--points", action="append", default=[], metavar="AXIS=V1,V2",
                    help="replace this axis of every family that has it (trigger-kd front --points); repeatable")
    ap.add_argument("--reseed", choices=["all", "front"], default="all",
                    help="seeds 2..: every point (all, default) or seed 1's validation fronts and partners (front)")
    ap.add_argument("--max-lut", type=float, default=MAX_LUT, help="budget of the study verdict (default 40000)")
    ap.add_argument("--teacher-gap", type=float, default=TEACHER_GAP)
    ap.add_argument("--baseline-margin", type=float, default=BASELINE_MARGIN)
    ap.add_argument("--plot", default=None, help="accuracy vs LUT plot (default: --out with .png)")
    ap.add_argument("--markdown", action="store_true",
                    help="print the benchmarks/history/multiclass.md table at the end")
    ap.add_argument("--from-json", default=None, help="render --markdown / --plot from an earlier result; no runs")
    ap.add_argument("--dry-run", action="store_true", help="print seed 1's trigger-kd front commands and stop")
    args = ap.parse_args(argv)
    if args.from_json:
        result = json.loads(Path(args.from_json).read_text())
        if args.plot:
            plot(result, Path(args.plot))
        print(markdown(result))
        return 0
    if args.workers < 1:
        ap.error("--workers must be at least 1")
    args.widths = args.widths or WIDTHS.get(args.profile, "0.5,1")
    from trigger_kd.front.sweep import AXES

    unknown = [p for p in args.points if p.partition("=")[0].strip() not in AXES]
    if unknown:
        ap.error(f"--points {unknown}: axes are {', '.join(AXES)}")
    out = Path(args.out or f"benchmarks/out/multiclass_{args.profile}.json")
    args.work = args.work or str(out.with_name(out.stem + "_work"))
    specs = {f: grid_specs(f, args.widths, args.points) for f in args.families}
    if args.dry_run:
        for f in args.families:
            print(shlex.join(front_command(f, args.seeds[0], args.profile, args.workers,
                                           Path(args.work) / f"{f}_seed{args.seeds[0]}", specs[f], args.set)))
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    runs: dict[str, dict[int, list[dict]]] = {f: {} for f in args.families}
    sweeps, seen_lines = [], []
    first, rest = args.seeds[0], args.seeds[1:]
    for seed in ([first] if args.reseed == "front" else args.seeds):
        for f in args.families:
            rows, info, found = run_sweep(f, seed, args, specs[f])
            runs[f][seed] = rows
            sweeps.append(info)
            if found:
                seen_lines.append(found)
    metric = next((r["metric"] for by in runs.values() for rows in by.values() for r in rows if r.get("metric")),
                  "accuracy")
    reseeded = None
    if args.reseed == "front" and rest:
        jobs = reseed_jobs(aggregate(runs), rest, metric)
        reseeded = [{"family": f, "seed": s, "knobs": k} for f, s, k in jobs]
        for f, seed, rows, info in reseed(jobs, args):
            runs[f].setdefault(seed, []).extend(rows)
            sweeps.append(info)
    lines = seen_lines[0] if seen_lines else {}
    differ = [i for i, x in enumerate(seen_lines) if json.dumps(x, sort_keys=True) != json.dumps(lines, sort_keys=True)]
    result = {
        "benchmark": "multiclass", "profile": args.profile,
        **provenance(argv, script=__file__),
        "machine": machine(),
        "seconds": round(time.time() - t0, 1),
        "settings": {"seeds": args.seeds, "families": args.families, "widths": args.widths, "points": args.points,
                     "sets": args.set, "workers": args.workers, "reseed": args.reseed,
                     "grid": {f: specs[f] for f in args.families},
                     "family_sets": {f: FAMILIES[f][3] for f in args.families}},
        "max_lut": args.max_lut, "lut_source": LUT_SOURCE,
        "chosen_on": f"validation {metric} (seed means); every verdict on test jets",
        "lines": lines, "lines_differ_between_sweeps": differ, "reseeded": reseeded, "sweeps": sweeps,
        **summarise(runs, lines, args, metric),
    }
    write_record(out, result)
    plot(result, Path(args.plot or out.with_suffix(".png")))
    v = result["verdicts"]
    for fam, k in v["kd_vs_scratch"].items():
        said = "no verdict" if k["met"] is None else "met" if k["met"] else "not met"
        print(f"[bench-multiclass] KD vs scratch ({fam}): {said} "
              f"(met at {len(k['met_at'])} of {k['judged']} judged front points)")
    print(f"[bench-multiclass] study: {'met' if v['study']['met'] else 'not met'} ({v['study'].get('picked')}); "
          f"bit-exact: {'met' if v['parity']['met'] else 'not met'}")
    if args.markdown:
        print(markdown(result))
    print(f"[bench-multiclass] {out} ({result['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
