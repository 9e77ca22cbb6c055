"""The fault sweep of issue 24, rerunnable: a user's mistakes and accidents against a real run, at tiny size.

Every case runs the real `trigger-kd` command line (a subprocess, as a user types it) on a real run of
``hls_configs/mlp_kd.yml`` at tiny sizes (Pythia jets, LorentzNet, Brevitas student, hls4ml C-simulation, the
open-source synthesis route) and judges what came back:

- **wrong**: exit code 0 with a wrong or stale answer (the worst outcome);
- **traceback**: a Python traceback on stderr for a user's mistake;
- **lost**: a file of the user's (or of another run) gone or changed;
- otherwise **ok** (refused with a message, repaired, or marked stale).

Kinds of cases: delete or edit each stage's outputs and rerun (the run must repair exactly that and say so, and
the firmware gate must pass afterwards); retrain one stage and call every tool on the run (each must refuse or mark
stale, never answer from the mixed run); a run directory over a user's folders; `cache prune` while a run is in
its student stage; check-parity against edited evidence. Issue 35's kinds (every reader validates what it reads:
cache folders and records, interrupted stages, front sweep folders and budgets, result records, jet files, sizes,
synthesis reports, import inputs, paths) are the groups of ``benchmarks/fault_cases_readers.py``. JSON with the
commit and the command.

    python benchmarks/fault_sweep.py --out benchmarks/out/fault_sweep.json
    python benchmarks/fault_sweep.py --only cache,front --work /tmp/fw --out /tmp/fw.json   # some groups
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.provenance import add_options, provenance, write_record  # noqa: E402
from trigger_kd.manifest import output_problem  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).with_name("trigger-kd"))
CONFIG = REPO / "hls_configs" / "mlp_kd.yml"
TINY = ["data.jets_per_class=300", "data.shard_size=300", "teacher.n_particles=16", "teacher.hidden=16",
        "teacher.layers=2", "teacher.epochs=1", "student.n_particles=4", "student.max_epochs=2",
        "student.batch_size=64", "student.mlp_hidden=[8]", "distill.transfer_jets_per_class=100",
        "synth.tool=open-source", "synth.sim_jets=100"]
STAGES = ["data", "teacher", "transfer", "student", "export", "firmware", "synth", "report"]


def sets(extra=()):
    out = []
    for s in TINY + list(extra):
        out += ["--set", s]
    return out


def cli(*args, timeout=1800, cwd=None) -> dict:
    """`trigger-kd ARGS` as a user types it (in ``cwd``: default, where the sweep runs)."""
    t0 = time.time()
    p = subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd)
    return {"args": [str(a) for a in args], "rc": p.returncode, "seconds": round(time.time() - t0, 1),
            "traceback": "Traceback (most recent call last)" in p.stderr, "stderr_tail": p.stderr[-600:],
            "stderr": p.stderr, "stdout": p.stdout}


def said(step: dict, text: str) -> bool:
    return text in step["stderr"]


def run(run_dir: Path, *extra, to="report") -> dict:
    return cli("run", CONFIG, "--run-dir", run_dir, "--to", to, "--no-progress", *sets(extra))


def snapshot(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def changed(before: dict, root: Path) -> list[str]:
    """Files of ``before`` (a snapshot of ``root``) gone or changed now."""
    return [k for k, v in before.items() if not (root / k).is_file() or (root / k).read_bytes() != v]


def judge(case: dict, wrong: bool = False, lost: list | None = None) -> dict:
    steps = case["steps"]
    case["traceback"] = any(s["traceback"] for s in steps)
    case["wrong_exit0"] = bool(wrong)
    case["lost"] = lost or []
    case["verdict"] = ("wrong" if wrong else "traceback" if case["traceback"] else "lost" if case["lost"] else "ok")
    print(f"  {case['verdict']:9s} {case['name']}", flush=True)
    return case


def first_output(stage_dir: Path) -> str:
    """A file the stage wrote (its manifest's largest hashed entry: a real artefact, not a log)."""
    files = json.loads((stage_dir / "manifest.json").read_text())["files"]
    real = {k: v for k, v in files.items() if "size" in v and not k.endswith((".yml", ".log"))}
    return max(real, key=lambda k: real[k]["size"])


def damage_cases(base: Path, work: Path) -> list[dict]:
    """Delete, then edit, the main output of each stage in a copy of the run; rerun; gate. The copies share the
    data, teacher and transfer stages through the cache, whose repair gives them a new finish time: so the damage is
    done to a run of its own (another data seed, its own cache entries), and the base every other group copies stays
    one consistent run."""
    own, seed = work / "damage_base", "data.seed=11"
    first = run(own, seed)
    if first["rc"] != 0:
        return [judge({"name": f"the damage group's own run ({seed})", "steps": [first]}, wrong=True)]
    base = own
    cases = []
    for how in ("delete", "edit"):
        for stage in STAGES:
            rd = work / f"{how}_{stage}"
            shutil.copytree(base, rd, symlinks=True)
            target_dir = (rd / stage).resolve()  # a cache entry for shared stages
            name = first_output(target_dir)
            f = target_dir / name
            if how == "delete":
                f.unlink()
            else:
                data = bytearray(f.read_bytes())
                data[len(data) // 2] ^= 1
                f.write_bytes(bytes(data))
            steps = [run(rd, seed)]
            said_why = said(steps[0], f"[{stage}] {stage}/{name} ")
            # repaired: the stage's outputs are whole again (a rebuilt file may get a new name: da4ml's .so)
            repaired = output_problem(target_dir, stage) is None
            steps.append(cli("check-parity", rd))
            steps.append(cli("report", rd))
            wrong = steps[0]["rc"] == 0 and not (repaired and said_why)
            case = {"name": f"{how} {stage}/{name}, rerun, check-parity, report", "steps": steps,
                    "said_why": said_why, "repaired": repaired}
            cases.append(judge(case, wrong=wrong or steps[1]["rc"] != 0 or steps[2]["rc"] != 0))
    return cases


# the last stage each tool reads (its chain goes up from there): after `--to S` it may answer only if S is at or
# after that stage (everything it reads was then remade in order); otherwise it must refuse or mark stale
TOOL_READS = {"check-parity": "firmware", "report": "synth", "evaluate": "student", "diagnose": "student"}


def retrain_cases(base: Path, work: Path) -> list[dict]:
    """Rerun one stage with other settings (--to it), then call each tool: none may answer from the mixed run."""
    cases = []
    for stage, change in (("data", "data.seed=5"), ("teacher", "teacher.seed=5"), ("student", "student.seed=5"),
                          ("firmware", "hls.reuse_factor=2")):
        rd = work / f"retrain_{stage}"
        shutil.copytree(base, rd, symlinks=True)
        steps = [run(rd, change, to=stage)]
        tools = {"check-parity": cli("check-parity", rd), "report": cli("report", rd),
                 "evaluate": cli("evaluate", rd, "--on", rd / "data" / "test.h5"), "diagnose": cli("diagnose", rd)}
        steps += tools.values()
        may_answer = {t: STAGES.index(stage) >= STAGES.index(last) for t, last in TOOL_READS.items()}
        wrong = [t for t, s in tools.items() if s["rc"] == 0 and not may_answer[t]]
        refused_needlessly = [t for t, s in tools.items() if s["rc"] != 0 and may_answer[t]]
        case = {"name": f"--to {stage} with {change}, then check-parity / report / evaluate / diagnose",
                "steps": steps, "answered_from_a_mixed_run": wrong, "refused_a_consistent_chain": refused_needlessly}
        cases.append(judge(case, wrong=bool(wrong) or steps[0]["rc"] != 0))
    return cases


def user_folder_cases(base: Path, work: Path) -> list[dict]:
    cases = []
    home = work / "user_folder"
    (home / "firmware" / "other_run").mkdir(parents=True)
    (home / "firmware" / "other_run" / "notes.txt").write_text("mine")
    (home / "data").mkdir()
    shutil.copy(base / "data" / "test.h5", home / "data" / "myjets.h5")
    before = snapshot(home)
    steps = [run(home, to="data")]
    lost = changed(before, home)
    cases.append(judge({"name": "run --run-dir over a folder with firmware/other_run/notes.txt and data/myjets.h5",
                        "steps": steps}, wrong=steps[0]["rc"] == 0, lost=lost))
    steps = [cli("import-qonnx", base / "export" / "model_clean.onnx", "--run-dir", base / "firmware")]
    cases.append(judge({"name": "import-qonnx into a pipeline run's firmware/", "steps": steps},
                       wrong=steps[0]["rc"] == 0))
    mine = work / "my_hls"
    (mine / "hls4ml_prj").mkdir(parents=True)
    (mine / "hls4ml_prj" / "keep.txt").write_text("mine")
    steps = [cli("import-qonnx", base / "export" / "model_clean.onnx", "--run-dir", mine)]
    lost = [] if (mine / "hls4ml_prj" / "keep.txt").is_file() else ["my_hls/hls4ml_prj/keep.txt"]
    cases.append(judge({"name": "import-qonnx into a user's folder with its own hls4ml_prj/", "steps": steps},
                       wrong=steps[0]["rc"] == 0, lost=lost))
    return cases


def prune_during_run_case(work: Path) -> dict:
    rd = work / "prune_run"
    env = dict(os.environ)
    proc = subprocess.Popen([CLI, "run", str(CONFIG), "--run-dir", str(rd), "--to", "firmware", "--no-progress",
                             *sets(["student.seed=9"])], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    steps, deadline = [], time.time() + 1800
    while proc.poll() is None and time.time() < deadline:
        if any(rd.glob(".student.tmp*")) or any(rd.glob("student.tmp*")) or (rd / "transfer" / "stamp.json").is_file():
            break
        time.sleep(0.5)
    steps.append(cli("cache", "prune", "--older-than", "0"))
    steps.append(cli("cache", "prune", "--older-than", "-1"))
    out, err = proc.communicate(timeout=1800)
    steps.append({"args": ["run (in the background)"], "rc": proc.returncode, "seconds": None,
                  "traceback": "Traceback (most recent call last)" in err, "stderr_tail": err[-600:]})
    lost = [s for s in ("data", "teacher", "transfer") if not (rd / s / "stamp.json").is_file()]
    steps.append(cli("check-parity", rd))
    return judge({"name": "cache prune --older-than 0 (and -1) while a run trains its student", "steps": steps},
                 wrong=steps[1]["rc"] == 0 or proc.returncode != 0 or steps[-1]["rc"] != 0, lost=lost)


def parity_evidence_cases(base: Path, work: Path) -> list[dict]:
    cases = []
    rd = work / "parity_edit"
    shutil.copytree(base, rd, symlinks=True)
    p = rd / "firmware" / "parity.json"
    rec = json.loads(p.read_text())
    rec.update(bit_exact_fraction=0.5, required_fraction=0.5)
    p.write_text(json.dumps(rec))
    steps = [cli("check-parity", rd), cli("report", rd)]
    cases.append(judge({"name": "hand-edited parity.json (0.5 / 0.5), check-parity and report", "steps": steps},
                       wrong=steps[0]["rc"] == 0 or steps[1]["rc"] == 0))
    rd = work / "parity_missing"
    shutil.copytree(base, rd, symlinks=True)
    (rd / "firmware" / "parity.json").unlink()
    steps = [cli("check-parity", rd), run(rd), cli("check-parity", rd)]
    cases.append(judge({"name": "firmware/parity.json deleted: check-parity, rerun, check-parity", "steps": steps},
                       wrong=steps[0]["rc"] == 0 or steps[2]["rc"] != 0))
    return cases


def case_groups() -> dict:
    """name -> cases(base, work): issue 24's groups and issue 35's (benchmarks/fault_cases_readers.py), in the order
    they run: those that prune the shared cache or damage its entries last, so every group before them copies a
    base that is one consistent run."""
    from benchmarks.fault_cases_readers import GROUPS

    return {"retrain": retrain_cases, "user-folder": user_folder_cases, "parity-evidence": parity_evidence_cases,
            **GROUPS, "prune-during-run": lambda base, work: [prune_during_run_case(work)], "damage": damage_cases}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_options(ap, {"work": "working folder (default: a temporary one, removed afterwards)"},
                out="benchmarks/out/fault_sweep.json", work=None)
    groups = case_groups()
    ap.add_argument("--only", metavar="GROUP[,GROUP]", help=f"run only these case groups: {', '.join(groups)} "
                    "(the base run is always made)")
    args = ap.parse_args()
    only = args.only.split(",") if args.only else list(groups)
    unknown = [g for g in only if g not in groups]
    if unknown:
        ap.error(f"--only: no case group {', '.join(unknown)}; the groups: {', '.join(groups)}")
    t0 = time.time()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="fault_sweep."))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["TRIGGER_KD_CACHE"] = str(work / "cache")
    base = work / "base"
    print(f"[fault-sweep] base run in {base}", flush=True)
    first = run(base)
    if first["rc"] != 0:
        print(first["stderr_tail"], file=sys.stderr)
        return 1
    cases = []
    for name in only:
        print(f"[fault-sweep] {name}", flush=True)
        cases += groups[name](base, work)
    counts = {v: sum(c["verdict"] == v for c in cases) for v in ("ok", "wrong", "traceback", "lost")}
    for c in cases:
        for st in c["steps"]:
            st.pop("stderr", None)
            st.pop("stdout", None)
    result = {**provenance(), "base_run_seconds": first["seconds"], "wall_seconds": round(time.time() - t0, 1),
              "groups": only, "counts": counts, "cases": cases}
    write_record(args.out, result)
    print(f"[fault-sweep] {len(cases)} cases: {counts}; {args.out}")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if counts["ok"] == len(cases) else 1


if __name__ == "__main__":
    raise SystemExit(main())
