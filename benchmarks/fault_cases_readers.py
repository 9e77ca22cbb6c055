"""Issue 35's kinds for the fault sweep (`make bench-faults`): every reader validates what it reads.

Case groups of ``benchmarks/fault_sweep.py`` (``--only GROUP``), each case a user's action through the real
`trigger-kd` command line on a tiny run, judged by its outcome (exit code, files before/after, what was printed) with
the sweep's verdicts (ok / wrong / traceback / lost):

- ``cache``: a user's folders inside ``$TRIGGER_KD_CACHE``, damaged or impossible ``.uses.json`` times, a cache that
  is a file, ``prune --unreferenced`` after the user moved a run directory (table rows 1, 11, 12);
- ``interrupted``: SIGKILL of the student, firmware and synth stages mid-way, then check-parity, report, a rerun;
- ``front``: a folder holding the user's front.json / front.png / picked.yml, ``points`` a file, ``--out /proc``,
  a ``--set`` the sweep sets, a NaN budget, an http scheduler, 1000 workers; a real one-point sweep that fits, then
  a damaged ``front_yosys.json`` under ``--yosys``, then a budget nothing fits (rows 3, 7, 11, 14);
- ``results``: damaged evaluate/diagnostics records, ``report A B`` with a damaged report.json, into a run's folder,
  two runs of one model, a diagnostics.json not made from this student, ``diagnose --power-iterations 0``
  (rows 4, 5, 6, 8, 9, 18);
- ``inputs``: degenerate jet files for ``evaluate --on``, training jets reordered, unbounded sizes (rows 2, 13);
- ``reports``: parse-report clocks, units and two parts; import-qonnx on saturating copies (rows 15, 16, 17);
- ``paths``: a run directory with a space; a run's config.resolved.yml rerun where another jets.h5 lies (row 10).

The rows are those of "A fresh adversarial sweep" in benchmarks/history/fault_sweep.md.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np

from benchmarks.fault_sweep import CLI, CONFIG, REPO, changed, cli, judge, run, sets, snapshot

REPORTS = REPO / "tests" / "fixtures" / "reports"
POINT = ["--points", "width=1", "bits=3"]  # one point: mlp_hidden [8], 3-bit weights


@contextlib.contextmanager
def cache_at(path: Path):
    """``TRIGGER_KD_CACHE`` for the commands run inside (a cache of the case's own)."""
    old = os.environ.get("TRIGGER_KD_CACHE")
    os.environ["TRIGGER_KD_CACHE"] = str(path)
    try:
        yield path
    finally:
        if old is None:
            os.environ.pop("TRIGGER_KD_CACHE", None)
        else:
            os.environ["TRIGGER_KD_CACHE"] = old


def touched(before: dict, root: Path) -> list[str]:
    """Files of ``before`` gone or changed, and files new in ``root``: a folder a refusal must leave as it was."""
    return changed(before, root) + sorted(set(snapshot(root)) - set(before))


def copy_run(base: Path, rd: Path) -> Path:
    shutil.copytree(base, rd, symlinks=True)
    return rd


def refused(step: dict) -> bool:
    """Refused: exit 2, no traceback, the last line an error (one line; argparse's own type errors print the usage
    before theirs: ``one_line`` in the step says which)."""
    lines = [ln for ln in step["stderr"].splitlines() if ln.strip()]
    step["one_line"] = len(lines) == 1
    return step["rc"] == 2 and bool(lines) and "error:" in lines[-1] and not step["traceback"]


# ----------------------------------------------------------------------------------------------------- cache
def cache_user_files_cases(base: Path, work: Path) -> list[dict]:
    """Row 1: a user's photos/2020 in the cache folder; row 11/12: a .uses.json time that is text, in the future,
    negative; a cache folder that is a file."""
    cases = []
    root = work / "cache_user"
    shutil.copytree(Path(os.environ["TRIGGER_KD_CACHE"]), root, symlinks=True)
    (root / "photos" / "2020").mkdir(parents=True)
    (root / "photos" / "2020" / "x.jpg").write_bytes(b"\xff\xd8my photo")
    (root / "notes.txt").write_text("mine")
    mine = {k: v for k, v in snapshot(root).items() if k.startswith(("photos", "notes"))}
    with cache_at(root):
        steps = [cli("cache", "prune", "--unreferenced"), cli("cache", "prune", "--older-than", "0")]
    lost = changed(mine, root) + [str(p.relative_to(root)) for p in (root / "photos").rglob("*.lock")]
    lost += ["photos.lock"] if (root / "photos.lock").exists() else []
    cases.append(judge({"name": "cache prune --unreferenced / --older-than 0 with a user's photos/2020/x.jpg in the "
                                "cache folder", "steps": steps},
                       wrong=any(s["rc"] != 0 for s in steps), lost=lost))
    key = (base / "data").resolve().name  # the base run's data entry, copied into a cache of the case's own
    for label, last_used in (("text 'yesterday'", "yesterday"), ("in the future (+30 days)", time.time() + 30 * 86400),
                             ("negative", -5.0), ("NaN", math.nan)):
        root = work / f"cache_time_{len(cases)}"
        (root / "data").mkdir(parents=True)
        entry = root / "data" / key
        shutil.copytree((base / "data").resolve(), entry, symlinks=True)
        uses = json.loads((entry / ".uses.json").read_text())
        (entry / ".uses.json").write_text(json.dumps({**uses, "last_used": last_used}, allow_nan=True))
        with cache_at(root):
            steps = [cli("cache", "list"), cli("cache", "list", "--json"), cli("cache", "prune", "--older-than", "0")]
        negative_age = bool(re.search(r"\s-\d[\d.]* ?[hd]\b", steps[0]["stderr"] + steps[0].get("stdout", "")))
        named = "damaged" in steps[0].get("stdout", "") + steps[0]["stderr"]
        case = {"name": f"cache list / prune --older-than 0 with an entry's .uses.json last_used {label}",
                "steps": steps, "named_damaged": named, "entry_kept": entry.is_dir()}
        cases.append(judge(case, wrong=negative_age or not named or not entry.is_dir()
                           or any(s["rc"] != 0 for s in steps)))
    f = work / "cache_file"
    f.write_text("not a folder")
    with cache_at(f):
        steps = [cli("cache", "list"), cli("cache", "prune", "--older-than", "0")]
    cases.append(judge({"name": "TRIGGER_KD_CACHE is a file: cache list, cache prune", "steps": steps},
                       wrong=not all(refused(s) for s in steps),
                       lost=[] if f.read_text() == "not a folder" else ["cache_file"]))
    return cases


def moved_run_case(work: Path) -> dict:
    """`mv` a run directory, then `cache prune --unreferenced`: the entries it links to stay; it passes check-parity."""
    src, dst = work / "mv_before", work / "mv_after"
    steps = [run(src, "teacher.seed=7", to="firmware")]  # its own teacher and transfer entries
    mine = sorted(str((src / s).resolve()) for s in ("teacher", "transfer"))
    src.rename(dst)
    steps += [cli("cache", "prune", "--unreferenced"), cli("check-parity", dst)]
    lost = [p for p in mine if not Path(p).is_dir()]
    return judge({"name": "mv RUN elsewhere, cache prune --unreferenced, check-parity on the moved run",
                  "steps": steps, "entries": mine},
                 wrong=steps[0]["rc"] != 0 or steps[2]["rc"] != 0, lost=lost)


def cache_cases(base: Path, work: Path) -> list[dict]:
    return cache_user_files_cases(base, work) + [moved_run_case(work)]


# ----------------------------------------------------------------------------------------------------- interrupted
KILL = {"student": "student.seed=5", "firmware": "hls.reuse_factor=2", "synth": "synth.sim_jets=50"}
CHECKS_PARITY = ("student", "firmware")  # check-parity's chain holds these; its verdict after synth is still true


def killed_run(rd: Path, stage: str) -> dict:
    """`trigger-kd run` with a setting that reruns ``stage``, SIGKILLed (its process group) once the stage works."""
    cmd = [CLI, "run", str(CONFIG), "--run-dir", str(rd), "--no-progress", *sets([KILL[stage]])]
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    killed = False
    while proc.poll() is None and time.time() - t0 < 1800:
        if any(rd.glob(f".{stage}.tmp-*")):
            time.sleep(0.3)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
                killed = True
            break
        time.sleep(0.2)
    _, err = proc.communicate(timeout=600)
    return {"args": ["run", "--set", KILL[stage], f"(SIGKILL in {stage})"], "rc": proc.returncode,
            "seconds": round(time.time() - t0, 1), "stderr_tail": err[-600:], "stderr": err,
            "traceback": "Traceback (most recent call last)" in err, "killed": killed}


def interrupted_cases(base: Path, work: Path) -> list[dict]:
    cases = []
    for stage in KILL:
        rd = copy_run(base, work / f"kill_{stage}")
        kill = killed_run(rd, stage)
        mid_way = kill["killed"] and (rd / f"{stage}.attempt.json").is_file()
        after = {"check-parity": cli("check-parity", rd), "report": cli("report", rd)}
        steps = [kill, *after.values(), run(rd, KILL[stage])]  # the same command again: it must repair the run
        noticed = f"[{stage}] the last attempt did not finish" in steps[-1]["stderr"]
        redone = f"[{stage}] running" in steps[-1]["stderr"]
        steps += [cli("check-parity", rd), cli("report", rd)]
        answered = [t for t, s in after.items() if s["rc"] == 0 and (t == "report" or stage in CHECKS_PARITY)]
        said_ok = "parity OK" in after["check-parity"]["stderr"] and stage in CHECKS_PARITY
        case = {"name": f"SIGKILL mid-way through {stage} ({KILL[stage]}), check-parity, report, rerun",
                "steps": steps, "killed_mid_way": mid_way, "answered_after_kill": answered,
                "rerun_noticed": noticed, "rerun_redid_the_stage": redone}
        # not killed mid-way (the stage ended first): nothing to judge the tools by; the rerun must still pass
        wrong = mid_way and (bool(answered) or said_ok or not noticed or not redone)
        cases.append(judge(case, wrong=wrong or not kill["killed"] or any(s["rc"] != 0 for s in steps[-3:])))
    return cases


# ----------------------------------------------------------------------------------------------------- front
def front(out: Path, *extra) -> dict:
    """`trigger-kd front` at the tiny settings, one point, one worker (unless ``extra`` names the workers)."""
    workers = [] if {"--workers", "--scheduler"} & set(extra) else ["--workers", "1"]
    return cli("front", CONFIG, *POINT, *workers, "--out", out, *extra, *sets(), timeout=3600)


def front_refusal_cases(base: Path, work: Path) -> list[dict]:
    """Refusals before any work: each must exit 2 in one line and leave the folder as it was (or not make it)."""
    cases = []
    users = {"front.json": b'{"points": [], "command": "my-tool"}', "front.png": b"\x89PNG\r\n\x1a\nmine",
             "picked.yml": b"# my config\nname: x\n"}
    for name, data in users.items():
        out = work / f"front_users_{name.replace('.', '_')}"
        out.mkdir()
        (out / name).write_bytes(data)
        before = snapshot(out)
        steps = [front(out, "--max-lut", "5000")]
        cases.append(judge({"name": f"front --out a folder holding the user's own {name}", "steps": steps},
                           wrong=not refused(steps[0]), lost=touched(before, out)))
    out = work / "front_points_file"
    out.mkdir()
    (out / "points").write_text("mine\n")
    steps = [front(out, "--max-lut", "5000")]
    cases.append(judge({"name": "front --out a folder where points is the user's file", "steps": steps},
                       wrong=not refused(steps[0]), lost=changed({"points": b"mine\n"}, out)))
    fresh = {"--out /proc/trigger_kd_front": ("/proc/trigger_kd_front", []),
             "--set student.weight_bits=5 with --points bits=3": (None, ["--set", "student.weight_bits=5"]),
             "--max-lut nan": (None, ["--max-lut", "nan"]),
             "--scheduler http://127.0.0.1:8787": (None, ["--scheduler", "http://127.0.0.1:8787"]),
             "--workers 1000": (None, ["--workers", "1000"])}
    for label, (where, extra) in fresh.items():
        out = Path(where) if where else work / f"front_fresh_{len(cases)}"
        steps = [front(out, *extra)]
        made = out.exists() and where is None
        cases.append(judge({"name": f"front {label}: refused before any work", "steps": steps},
                           wrong=not refused(steps[0]) or made))
    return cases


def front_sweep_cases(base: Path, work: Path) -> list[dict]:
    """A real one-point sweep that fits; its front_yosys.json damaged (-7 LUT, "abc" FF) and swept again with
    --yosys; then a budget nothing fits: no picked.yml of the earlier sweep left for `trigger-kd run` to build."""
    cases = []
    out = work / "front_real"
    first = front(out, "--yosys", "--max-lut", "1000000")
    picked = (out / "picked.yml").is_file()
    cases.append(judge({"name": "front, one point, --yosys, a budget it fits: picked.yml", "steps": [first]},
                       wrong=first["rc"] != 0 or not picked))
    damaged = sorted((out / "points").glob("*/front_yosys.json"))
    for f in damaged:
        f.write_text(json.dumps({**json.loads(f.read_text()), "yosys_lut": -7, "yosys_ff": "abc"}))
    steps = [front(out, "--yosys", "--max-lut", "1000000")]
    rows = json.loads((out / "front.json").read_text()).get("points", []) if (out / "front.json").is_file() else []
    shown = [r.get("id") for r in rows if any(v == -7 or v == "abc" for v in r.values())]  # any field: ff too
    cases.append(judge({"name": "front --yosys after the user damaged points/*/front_yosys.json (-7 LUT, 'abc' FF)",
                        "steps": steps, "damaged_files": [str(f) for f in damaged], "impossible_rows": shown},
                       wrong=not damaged or bool(shown) or steps[0]["rc"] not in (0, 2)))
    steps = [front(out, "--max-lut", "1")]
    left = (out / "picked.yml").is_file()
    cases.append(judge({"name": "front again with --max-lut 1 (fits none): exit 2 and no earlier picked.yml left",
                        "steps": steps, "picked_left": left}, wrong=steps[0]["rc"] == 0 or left or not picked))
    return cases


def front_cases(base: Path, work: Path) -> list[dict]:
    return front_refusal_cases(base, work) + front_sweep_cases(base, work)


# ----------------------------------------------------------------------------------------------------- results
def rebuild_report(rd: Path) -> tuple[dict, str]:
    """The run's report stage again, from the records there now: (the step, report.md)."""
    step = cli("run", CONFIG, "--run-dir", rd, "--from", "report", "--no-progress", *sets())
    md = rd / "report" / "report.md"
    return step, md.read_text() if md.is_file() else ""


def edited(path: Path, keys: tuple, value) -> None:
    """Set ``keys`` (a path into the JSON object) of ``path`` to ``value``."""
    doc = json.loads(path.read_text())
    node = doc
    for k in keys[:-1]:
        node = node[k]
    if value is KeyError:
        node.pop(keys[-1], None)
    else:
        node[keys[-1]] = value
    path.write_text(json.dumps(doc, allow_nan=True))


def record_cases(base: Path, work: Path) -> list[dict]:
    """Rows 4 and 18: a run's evaluate/*.json and diagnostics.json edited (AUC 7.5, text, MSE -1, not JSON, made_from
    without the student): the report names each as damaged or stale and never shows it as a figure."""
    rd = copy_run(base, work / "results_run")
    made = [cli("evaluate", rd, "--on", rd / "data" / "test.h5", "--name", "own", "--no-progress"),
            cli("diagnose", rd, "--curvature-jets", 32, "--power-iterations", 3, "--trace-samples", 2,
                "--compress-epochs", 1, "--no-progress")]
    ev, diag = rd / "evaluate" / "own.json", rd / "diagnostics.json"
    originals = {p: p.read_text() for p in (ev, diag) if p.is_file()}
    edits = [("evaluate/own.json student.auc = 7.5", ev, ("student", "auc"), 7.5, "damaged"),
             ("evaluate/own.json student.accuracy = 'high'", ev, ("student", "accuracy"), "high", "damaged"),
             ("evaluate/own.json n_jets = -5", ev, ("n_jets",), -5, "damaged"),
             ("evaluate/own.json not JSON", ev, None, "not json {", "damaged"),
             ("diagnostics.json curvature.teacher.lambda_max = 'x'", diag, ("curvature", "teacher", "lambda_max"),
              "x", "damaged"),
             ("diagnostics.json compressibility.final_val_mse = -1", diag, ("compressibility", "final_val_mse"), -1.0,
              "damaged"),
             ("diagnostics.json made_from without the student", diag, ("made_from", "student"), KeyError, "stale")]
    control, md = rebuild_report(rd)  # the untouched records are shown: else "never shown" below proves nothing
    shows = "| own |" in md and "### Loss curvature" in md
    cases = [judge({"name": "untouched evaluate/own.json and diagnostics.json: the report shows both (control)",
                    "steps": [*made, control], "shows_both": shows}, wrong=control["rc"] != 0 or not shows)]
    made = []
    for label, path, keys, value, word in edits:
        for p, text in originals.items():
            p.write_text(text)
        if path not in originals:  # evaluate or diagnose failed: nothing real to damage
            cases.append(judge({"name": label, "steps": made}, wrong=True))
            continue
        if keys is None:
            path.write_text(value)
        else:
            edited(path, keys, value)
        step, md = rebuild_report(rd)
        rel = str(path.relative_to(rd))
        named = f"Left out, {word}: `{rel}`" in md
        shown = ("### Loss curvature" in md) if path == diag else (f"| {path.stem} |" in md)
        cases.append(judge({"name": f"{label}, then the report stage", "steps": [step], "named": named,
                            "shown_as_figures": shown}, wrong=step["rc"] == 0 and (not named or shown)))
    for p, text in originals.items():
        p.write_text(text)
    return cases


def diagnose_argument_cases(base: Path, work: Path) -> list[dict]:
    """Row 9: `diagnose --power-iterations 0` wrote diagnostics.json with null, then a TypeError; its neighbours."""
    cases = []
    rd = copy_run(base, work / "results_diag_args")
    for flag, value in (("--power-iterations", "0"), ("--curvature-jets", "-1"), ("--trace-samples", "0"),
                        ("--compress-epochs", "nan"), ("--seed", "x")):
        steps = [cli("diagnose", rd, flag, value, "--no-progress")]
        written = (rd / "diagnostics.json").exists()
        cases.append(judge({"name": f"diagnose {flag} {value}", "steps": steps, "written": written},
                           wrong=not refused(steps[0]) or written))
        if written:
            (rd / "diagnostics.json").unlink()
    return cases


def compare_cases(base: Path, work: Path) -> list[dict]:
    """Rows 5, 6, 8: `report A B` of two runs of one model, with one run twice, into a run's folder, with a
    damaged report.json."""
    cases = []
    r1, r3 = copy_run(base, work / "cmp_r1"), copy_run(base, work / "cmp_r3")
    out = work / "cmp" / "c.md"
    out.parent.mkdir()
    steps = [cli("report", r1, r3, "--out", out)]
    table = out.with_suffix(".json")
    rows = json.loads(table.read_text()).get("models", []) if table.is_file() else []
    apart = len(rows) == 2 and len({r.get("model") for r in rows}) == 2
    cases.append(judge({"name": "report r1 r3 (two runs of one model): two rows told apart", "steps": steps,
                        "rows": [r.get("model") for r in rows]}, wrong=steps[0]["rc"] != 0 or not apart))
    steps = [cli("report", r1, f"{r1}/", "--out", work / "cmp" / "twice.md")]
    cases.append(judge({"name": "report r1 r1/ (one run named twice)", "steps": steps},
                       wrong=not refused(steps[0]) or (work / "cmp" / "twice.md").exists()))
    for where in ("report/c.md", "student/c.md"):
        before = snapshot(r1)
        steps = [cli("report", r1, r3, "--out", r1 / where)]
        cases.append(judge({"name": f"report r1 r3 --out r1/{where}", "steps": steps},
                           wrong=not refused(steps[0]), lost=touched(before, r1)))
    for keys, value in ((("resources", "lut"), -100), (("physics", "student", "auc"), 7.5), (("model",), None)):
        rpt = copy_run(base, work / f"cmp_bad_{len(cases)}") / "report" / "report.json"
        edited(rpt, keys, value)
        dest = work / "cmp" / f"bad_{len(cases)}.md"
        steps = [cli("report", r1, rpt.parent.parent, "--out", dest, "--print")]
        cases.append(judge({"name": f"report r1 R with R's report.json {'.'.join(keys)} = {value!r}", "steps": steps},
                           wrong=not refused(steps[0]) or dest.exists()))
    return cases


def results_cases(base: Path, work: Path) -> list[dict]:
    return record_cases(base, work) + diagnose_argument_cases(base, work) + compare_cases(base, work)


# ----------------------------------------------------------------------------------------------------- inputs
def jets_like(src: Path, dest: Path, constituents: np.ndarray, take=None) -> Path:
    """A copy of the canonical file ``src`` with other constituents (its jets ``take``, default all)."""
    with h5py.File(src) as f:
        labels = {k: f[k][()] for k in f if k != "constituents"}
        attrs = dict(f.attrs)
    take = np.arange(len(constituents)) if take is None else take
    with h5py.File(dest, "w") as f:
        f["constituents"] = constituents
        for k, v in labels.items():
            f[k] = v[take]
        f.attrs.update(attrs)
    return dest


def shuffled_within(c: np.ndarray, seed: int = 1) -> np.ndarray:
    rng, out = np.random.default_rng(seed), c.copy()
    for i in range(len(out)):
        n = int(np.any(out[i] != 0, axis=-1).sum())
        out[i, :n] = out[i, rng.permutation(n)]
    return out


def degenerate_files(test: Path) -> dict[str, np.ndarray]:
    with h5py.File(test) as f:
        c = f["constituents"][()]
    nan = c.copy()
    nan[3, 0, 1] = np.nan
    one, two = np.zeros_like(c), np.zeros_like(c)
    one[:, :1], two[:, :2] = c[:, :1], c[:, :2]
    return {"all-zero jets": np.zeros_like(c), "MeV units (x1000)": c * 1000.0,
            "(px, py, pz, E) order": c[..., [1, 2, 3, 0]], "one-particle jets": one,
            "jets cut to 2 constituents": two, "constituents out of pT order": shuffled_within(c),
            "a NaN": nan, "negative energies": c * np.array([-1.0, 1.0, 1.0, 1.0], dtype=c.dtype),
            "all jets equal": np.repeat(c[:1], len(c), axis=0)}


def evaluate_input_cases(base: Path, work: Path) -> list[dict]:
    """Row 2: degenerate jet files for `evaluate --on FILE` (refused, or scored with a warning the result carries);
    training jets in another order and padding passed among unseen ones (they must be left out)."""
    cases = []
    rd = copy_run(base, work / "inputs_run")
    test, train = rd / "data" / "test.h5", rd / "data" / "train.h5"
    for i, (label, c) in enumerate(degenerate_files(test).items()):
        f = jets_like(test, work / f"degenerate_{i}.h5", c)
        steps = [cli("evaluate", rd, "--on", f, "--name", f"degenerate_{i}", "--no-progress")]
        result = rd / "evaluate" / f"degenerate_{i}.json"
        warned = result.is_file() and bool(json.loads(result.read_text()).get("warnings"))
        cases.append(judge({"name": f"evaluate --on a file of {label}", "steps": steps},
                           wrong=steps[0]["rc"] == 0 and not warned))
    with h5py.File(test) as f, h5py.File(train) as g:
        ct, cr = f["constituents"][()], g["constituents"][()]
    n, order = len(ct), np.random.default_rng(3).permutation(len(ct))
    mixed = work / "mixed.h5"
    jets_like(train, mixed, np.pad(np.concatenate([ct, cr[order]]), ((0, 0), (0, 20), (0, 0))))  # 20 more slots
    with h5py.File(test) as f, h5py.File(train) as g, h5py.File(mixed, "a") as m:
        for k in ("is_signal", "jet_class"):
            del m[k]
            m[k] = np.concatenate([f[k][()], g[k][()][order]])
    steps = [cli("evaluate", rd, "--on", mixed, "--name", "mixed", "--no-progress")]
    result = rd / "evaluate" / "mixed.json"
    rec = json.loads(result.read_text()) if result.is_file() else {}
    left_out = rec.get("n_left_out_training_jets")
    cases.append(judge({"name": f"evaluate --on {n} test jets + {n} training jets reordered and padded",
                        "steps": steps, "left_out": left_out, "scored": rec.get("n_jets")},
                       wrong=steps[0]["rc"] == 0 and (left_out != n or rec.get("n_jets") != n)))
    return cases


def size_cases(base: Path, work: Path) -> list[dict]:
    """Row 13: sizes with no bound (10 GB tensors), a teacher reading more constituents than the data keep."""
    cases = []
    for change in (["teacher.n_particles=100000"], ["student.mlp_hidden=[4000000000]"], ["student.batch_size=10000000"],
                   ["teacher.n_particles=300"], ["data.max_constituents=100", "teacher.n_particles=150"]):
        steps = [cli("show-config", CONFIG, *sets(change))]
        cases.append(judge({"name": f"show-config --set {' --set '.join(change)}", "steps": steps},
                           wrong=not refused(steps[0])))
    return cases


def inputs_cases(base: Path, work: Path) -> list[dict]:
    return evaluate_input_cases(base, work) + size_cases(base, work)


# ----------------------------------------------------------------------------------------------------- reports
def with_tag(text: str, tag: str, value: str, section: str | None = None) -> str:
    """``text`` with the first ``<tag>`` (inside ``<section>`` when given) holding ``value``."""
    start = text.index(f"<{section}>") if section else 0
    head, tail = text[:start], text[start:]
    return head + re.sub(rf"<{tag}>[^<]*</{tag}>", f"<{tag}>{value}</{tag}>", tail, count=1)


def parse_report_cases(base: Path, work: Path) -> list[dict]:
    """Rows 16, 17: parse-report given an impossible clock, a unit it must honour, two designs in one folder."""
    cases = []
    xml = (REPORTS / "vitis_hls_2022.2_myproject_csynth.xml").read_text()  # xcu250, 5 ns
    rpt = (REPORTS / "vivado_2020.1_vivado_synth.rpt").read_text()  # xczu9eg
    bodies = {"TargetClockPeriod 1e-6 ns": with_tag(xml, "TargetClockPeriod", "1e-6"),
              "EstimatedClockPeriod 0.01 ns": with_tag(xml, "EstimatedClockPeriod", "0.01"),
              "<unit>us</unit> over a 5.00 clock": with_tag(xml, "unit", "us", "UserAssignments"),
              "<unit>furlongs</unit>": with_tag(xml, "unit", "furlongs", "UserAssignments")}
    for i, (label, body) in enumerate(bodies.items()):
        f = work / f"csynth_{i}" / "myproject_csynth.xml"
        f.parent.mkdir()
        f.write_text(body)
        steps = [cli("parse-report", f, "--json")]
        recs = json.loads(steps[0]["stdout"]) if steps[0]["rc"] == 0 else []
        clocks = [r.get("clock_target_ns") for r in recs]
        # exit 0 only with the clock as the unit says (5 us = 5000 ns); never the 1e-6 ns or the unit ignored
        cases.append(judge({"name": f"parse-report a csynth.xml with {label}", "steps": steps, "clocks": clocks},
                           wrong=steps[0]["rc"] == 0 and not (label.startswith("<unit>us") and clocks == [5000.0])))
    prj = work / "two_parts"
    (prj / "myproject_prj" / "solution1" / "syn" / "report").mkdir(parents=True)
    (prj / "myproject_prj" / "solution1" / "syn" / "report" / "myproject_csynth.xml").write_text(xml)
    (prj / "vivado_synth.rpt").write_text(rpt)
    steps = [cli("parse-report", prj)]
    both = all(w in steps[0]["stderr"] for w in ("myproject_csynth.xml", "vivado_synth.rpt"))
    cases.append(judge({"name": "parse-report a folder with an xcu250 csynth report and an xczu9eg vivado_synth.rpt",
                        "steps": steps, "names_both": both}, wrong=not (refused(steps[0]) and both)))
    return cases


def import_caveat_case(base: Path, work: Path) -> dict:
    """Row 15: import-qonnx --inputs x1e6, 50 copies of one row: "exact" must say what those inputs leave out."""
    x = np.repeat(np.random.default_rng(1).standard_normal((1, 16)) * 1e6, 50, axis=0).astype(np.float32)
    np.save(work / "saturating_copies.npy", x)
    rd = work / "import_copies"
    steps = [cli("import-qonnx", base / "export" / "model_clean.onnx", "--run-dir", rd, "--inputs",
                 work / "saturating_copies.npy")]
    steps.append(cli("check-parity", rd))
    said = all(w in steps[0]["stderr"] for w in ("saturate", "one and the same row"))
    gate_said = "parity holds on these inputs only" in steps[1]["stderr"]
    return judge({"name": "import-qonnx --inputs x1e6, 50 copies of one row; check-parity", "steps": steps,
                  "verdict_says": said, "gate_says": gate_said},
                 wrong=(steps[0]["rc"] == 0 and not said) or (steps[1]["rc"] == 0 and not gate_said))


def reports_cases(base: Path, work: Path) -> list[dict]:
    return parse_report_cases(base, work) + [import_caveat_case(base, work)]


# ----------------------------------------------------------------------------------------------------- paths
def space_case(base: Path, work: Path) -> dict:
    """Row 10: a run directory with a space: works to the end, or is refused before any training."""
    rd = work / "my run"
    steps = [run(rd)]
    late = steps[0]["rc"] != 0 and (rd / "student").exists()
    if steps[0]["rc"] == 0:
        steps.append(cli("check-parity", rd))
    return judge({"name": "run --run-dir 'my run' (a space) to the report, check-parity", "steps": steps,
                  "failed_after_training": late},
                 wrong=late or (steps[0]["rc"] == 0 and steps[-1]["rc"] != 0) or steps[0]["rc"] not in (0, 2))


def data_inputs(rd: Path) -> list[str]:
    """The files the run's data stage read (its stamp's inputs)."""
    stamp = rd / "data" / "stamp.json"
    return [i.get("path") for i in json.loads(stamp.read_text()).get("inputs", [])] if stamp.is_file() else []


def resolved_config_case(base: Path, work: Path) -> dict:
    """A run's data/config.resolved.yml (data.paths: [jets.h5], relative in the model file) rerun from another
    folder holding another jets.h5: the run's own file is read, never that one."""
    project, other = work / "cfg_project", work / "cfg_other"
    project.mkdir()
    other.mkdir()
    shutil.copy(base / "data" / "train.h5", project / "jets.h5")
    shutil.copy(base / "data" / "val.h5", other / "jets.h5")  # same name, other jets
    (project / "model.yml").write_text("data:\n  source: canonical\n  jets_per_class: 0\n  paths: [jets.h5]\n")
    rd, rd2 = work / "cfg_run", work / "cfg_run_again"
    steps = [cli("run", project / "model.yml", "--to", "data", "--run-dir", rd, "--no-progress", cwd=project)]
    first = data_inputs(rd)
    resolved = rd / "data" / "config.resolved.yml"
    for r in (rd, rd2):
        steps.append(cli("run", resolved, "--to", "data", "--run-dir", r, "--no-progress", cwd=other))
    read = {str(r): data_inputs(r) for r in (rd, rd2)}
    wrong = steps[0]["rc"] != 0 or first != [str(project / "jets.h5")] or any(
        s["rc"] == 0 and read[str(r)] != first for s, r in zip(steps[1:], (rd, rd2)))
    return judge({"name": "run RUN/data/config.resolved.yml from a folder holding another jets.h5 (same and new "
                          "run directory)", "steps": steps, "read": read},
                 wrong=wrong or any(s["rc"] != 0 for s in steps[1:]))


def paths_cases(base: Path, work: Path) -> list[dict]:
    return [resolved_config_case(base, work), space_case(base, work)]


GROUPS = {"cache": cache_cases, "interrupted": interrupted_cases, "front": front_cases, "results": results_cases,
          "inputs": inputs_cases, "reports": reports_cases, "paths": paths_cases}
