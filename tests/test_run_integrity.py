"""Run directories that cannot lie (issue 24), with toy stages (fast):

- a stage is up to date only if every output it wrote is there and unchanged: each output file of each stage,
  deleted or edited in turn, is found and repaired by the next run (cache entries alike), and what was made
  from it reruns too;
- every tool refuses a run whose stages disagree, naming the stage and a command that reruns it;
- nothing of the user's is replaced: a folder that is not a run is refused before any work, old runs are
  adopted, `cache prune` leaves entries a running run uses alone and refuses negative ages;
- paths in a config (issue 35): relative ones are read against the YAML file that names them and recorded
  absolute, so a run's config.resolved.yml reads the same files wherever it is rerun; a run stamped with the
  old relative spelling is not retrained for it.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trigger_kd import cache, manifest
from trigger_kd.cli import main as cli
from trigger_kd.config import load_config
from trigger_kd.pipeline import Stage, run_pipeline
from trigger_kd.rundir import MANIFEST_FILE, RUN_MARKER, STAMP_FILE
from pipeline_fixtures import _own_cache, forked_until  # noqa: F401 (pytest fixture used by name)


def _cfg(repo, *sets):
    return load_config(repo / "hls_configs/mlp_kd.yml", list(sets))


def _writer(calls, name, files, need=None, salt=lambda: ""):
    def func(cfg, ctx, out):
        calls.append(name)
        upstream = (ctx.dir(need) / files_of[need][0]).read_text() if need else ""
        for f in files:
            (out / f).parent.mkdir(parents=True, exist_ok=True)
            (out / f).write_text(f"{name}:{f}:{cfg.student.seed}:{salt()}:{upstream}")
        return {}

    return func


files_of = {"a": ["a1.txt", "sub/a2.bin"], "b": ["b.txt"], "c": ["c.txt", "deep/er/c2.txt"]}


def _toy(calls):
    """a (shared: in the cache) -> b -> c, each writing a few files (one in a subfolder)."""
    return [Stage("a", ("teacher",), (), _writer(calls, "a", files_of["a"]), shared=True),
            Stage("b", ("student",), ("a",), _writer(calls, "b", files_of["b"], "a")),
            Stage("c", ("export",), ("b",), _writer(calls, "c", files_of["c"], "b"))]


def _damage(path, how):
    if how == "delete":
        path.unlink()
    else:  # same size, other bytes: only the hash tells
        data = path.read_bytes()
        path.write_bytes(bytes([data[0] ^ 1]) + data[1:])


CASES = [(s, f) for s, fs in files_of.items() for f in fs + ["config.resolved.yml", MANIFEST_FILE]]


@pytest.mark.parametrize("how", ["delete", "edit"])
@pytest.mark.parametrize("stage,name", CASES)
def test_every_damaged_output_is_found_and_repaired(tmp_path, repo, capsys, stage, name, how):
    calls = []
    run = tmp_path / "run"
    run_pipeline(_cfg(repo), _toy(calls), run, progress=False)
    stamp = json.loads((run / stage / STAMP_FILE).read_text())
    listed = json.loads((run / stage / MANIFEST_FILE).read_text())["files"]
    assert name in listed or name == MANIFEST_FILE  # the manifest lists every output the stage wrote
    before = {s: {f: (run / s / f).read_bytes() for f in files_of[s]} for s in files_of}
    _damage(run / stage / name, how)
    capsys.readouterr()
    calls.clear()
    run_pipeline(_cfg(repo), _toy(calls), run, progress=False)
    err = capsys.readouterr().err
    assert f"[{stage}] {stage}/{name} " in err and "; rerunning" in err, err
    assert calls == [stage]  # the damaged stage; it made the same bytes again, so what follows stays valid
    assert {s: {f: (run / s / f).read_bytes() for f in files_of[s]} for s in files_of} == before  # repaired
    assert json.loads((run / stage / STAMP_FILE).read_text())["stamp"] == stamp["stamp"]
    calls.clear()
    run_pipeline(_cfg(repo), _toy(calls), run, progress=False)
    assert calls == []  # and then up to date


def test_a_rerun_upstream_stage_reruns_what_was_made_from_it(tmp_path, repo, capsys):
    """A cache entry repaired by another run (new outputs, same stamp) makes this run's b and c rerun."""
    calls = []
    run1, run2 = tmp_path / "run1", tmp_path / "run2"
    stages = _toy(calls)
    stages[0] = Stage("a", ("teacher",), (), _writer(calls, "a", files_of["a"], salt=lambda: len(calls)), shared=True)
    run_pipeline(_cfg(repo), stages, run1, progress=False)
    run_pipeline(_cfg(repo), stages, run2, progress=False)
    assert calls == ["a", "b", "c", "b", "c"]
    (run2 / "a" / "a1.txt").unlink()  # the shared cache entry
    run_pipeline(_cfg(repo), stages, run2, progress=False, to="a")  # made again: other bytes (not deterministic)
    calls.clear()
    capsys.readouterr()
    run_pipeline(_cfg(repo), stages, run1, progress=False)
    assert calls == ["b", "c"]
    assert "[b] the a stage's output changed since this b result was made; rerunning" in capsys.readouterr().err


def test_tool_results_the_report_reads_rerun_it(tmp_path, repo, capsys):
    """A stage's ``run_files`` (the report's diagnostics.json and evaluate/*.json, which tools write beside the
    stages) are in its stamp: a new, changed or removed one reruns that stage only; the same one does not."""
    from trigger_kd.rundir import DIAGNOSTICS, EVALUATE_DIR
    from trigger_kd.stages import STAGES

    report = next(s for s in STAGES if s.name == "report")
    assert set(report.run_files) == {DIAGNOSTICS, f"{EVALUATE_DIR}/*.json"}  # what report/generalisation.py reads
    calls, run = [], tmp_path / "run"
    stages = _toy(calls)
    stages[2] = Stage("c", ("export",), ("b",), _writer(calls, "c", files_of["c"], "b"), run_files=report.run_files)
    run_pipeline(_cfg(repo), stages, run, progress=False)
    steps = [lambda: None,
             lambda: (run / DIAGNOSTICS).write_text('{"a": 1}'),
             lambda: None,
             lambda: ((run / EVALUATE_DIR).mkdir(), (run / EVALUATE_DIR / "w.json").write_text("{}")),
             lambda: (run / DIAGNOSTICS).write_text('{"a": 2}'),
             lambda: (run / EVALUATE_DIR / "w.json").unlink()]
    reran = []
    for step in steps:
        step()
        calls.clear()
        run_pipeline(_cfg(repo), stages, run, progress=False)
        reran.append(calls == ["c"])
        assert calls in ([], ["c"])
    assert reran == [False, True, False, True, True, True]


def test_stages_made_before_manifests_are_adopted(tmp_path, repo):
    calls = []
    run = tmp_path / "run"
    run_pipeline(_cfg(repo), _toy(calls), run, progress=False)
    for s in ("a", "b", "c"):  # as a run from before this change left them
        stamp = json.loads((run / s / STAMP_FILE).read_text())
        del stamp["outputs"], stamp["upstream_outputs"]
        (run / s / STAMP_FILE).write_text(json.dumps(stamp))
        (run / s / MANIFEST_FILE).unlink()
    (run / RUN_MARKER).unlink()
    calls.clear()
    run_pipeline(_cfg(repo), _toy(calls), run, progress=False)
    assert calls == [] and (run / RUN_MARKER).is_file()
    assert manifest.output_problem(run / "b") is None and "outputs" in json.loads((run / "b" / STAMP_FILE).read_text())
    (run / "b" / "b.txt").unlink()
    run_pipeline(_cfg(repo), _toy(calls), run, progress=False)
    assert calls == ["b"] and (run / "b" / "b.txt").is_file()


def test_from_refuses_a_damaged_earlier_stage(tmp_path, repo):
    calls = []
    run = tmp_path / "run"
    run_pipeline(_cfg(repo), _toy(calls), run, progress=False)
    (run / "a" / "a1.txt").unlink()
    with pytest.raises(Exception, match=r"--from c: a/a1.txt is missing; run without --from"):
        run_pipeline(_cfg(repo), _toy(calls), run, start="c", progress=False)


# ----------------------------------------------------------------------------- nothing of the user's is replaced
def test_a_folder_that_is_not_a_run_is_refused_before_any_work(tmp_path, repo, monkeypatch, capsys):
    (tmp_path / "firmware" / "other_run").mkdir(parents=True)
    (tmp_path / "firmware" / "other_run" / "notes.txt").write_text("mine")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "myjets.h5").write_bytes(b"jets")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    monkeypatch.chdir(tmp_path)
    assert cli(["run", str(repo / "hls_configs/mlp_kd.yml"), "--run-dir", ".", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "Traceback" not in err
    assert "is an existing folder that is not a trigger-kd run directory" in err
    assert "data" in err and "firmware" in err
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before
    assert (tmp_path / "firmware" / "other_run" / "notes.txt").read_text() == "mine"


def test_runs_are_marked_and_old_runs_adopted(tmp_path, repo):
    calls = []
    run = tmp_path / "run"
    run.mkdir()  # empty: fine
    run_pipeline(_cfg(repo), _toy(calls), run, progress=False)
    assert (run / RUN_MARKER).is_file()
    (run / RUN_MARKER).unlink()  # a run from before the marker: it has completed stages
    run_pipeline(_cfg(repo), _toy(calls), run, progress=False)
    assert (run / RUN_MARKER).is_file()


def test_prune_leaves_entries_a_running_run_uses(tmp_path, repo):
    calls = []
    stages = _toy(calls)
    pruned = []

    def b_prunes(cfg, ctx, out):  # `trigger-kd cache prune --older-than 0` while this run is in stage b
        pruned.extend(cache.prune(ctx.cache, 0, False, False))
        return _writer(calls, "b", files_of["b"], "a")(cfg, ctx, out)

    stages[1] = Stage("b", ("student",), ("a",), b_prunes)
    run_pipeline(_cfg(repo), stages, tmp_path / "run", progress=False)
    assert pruned == [] and (tmp_path / "run" / "a" / "a1.txt").is_file()
    run_pipeline(_cfg(repo, "student.seed=3"), stages, tmp_path / "run", progress=False)  # a is up to date: held
    assert pruned == []
    assert [e.stage for e in cache.prune(tmp_path / "cache", 0, False, False)] == ["a"]  # no run holds it now


def test_prune_from_another_process_leaves_a_running_runs_entries(tmp_path, repo):
    """`trigger-kd cache prune --older-than 0` typed in another shell while a run is in its b stage: the entries
    that run holds stay (the shared lock works across processes, not only within one)."""
    started, release, run = tmp_path / "started", tmp_path / "release", tmp_path / "run"

    def run_until_released():
        def b_waits(cfg, ctx, out):
            started.touch()
            deadline = time.monotonic() + 120
            while not release.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            return _writer([], "b", files_of["b"], "a")(cfg, ctx, out)

        stages = _toy([])
        stages[1] = Stage("b", ("student",), ("a",), b_waits)
        run_pipeline(_cfg(repo), stages, run, progress=False)

    child = forked_until(run_until_released, started)
    try:
        assert started.exists(), "the run did not reach its b stage"
        prune = [str(Path(sys.executable).with_name("trigger-kd")), "cache", "prune", "--older-than", "0"]
        done = subprocess.run(prune, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        assert (run / "a" / "a1.txt").is_file() and (run / "a" / "sub" / "a2.bin").is_file()
    finally:
        release.touch()
        child.join(60)
    assert child.exitcode == 0 and (run / "b" / "b.txt").is_file()
    done = subprocess.run(prune, capture_output=True, text=True, check=False)  # no run holds it now: removed
    assert done.returncode == 0 and not (run / "a" / "a1.txt").exists(), done.stderr


def test_prune_refuses_negative_ages(tmp_path, repo, capsys):
    run_pipeline(_cfg(repo), _toy([]), tmp_path / "run", progress=False)
    capsys.readouterr()
    assert cli(["cache", "prune", "--older-than", "-1"]) == 2
    assert "--older-than -1" in capsys.readouterr().err
    assert (tmp_path / "run" / "a" / "a1.txt").is_file()


def test_damaged_cache_entry_found_through_another_run(tmp_path, repo, capsys):
    calls = []
    run_pipeline(_cfg(repo), _toy(calls), tmp_path / "run1", progress=False)
    entry = (tmp_path / "run1" / "a").resolve()
    shutil.rmtree(entry / "sub")
    capsys.readouterr()
    run_pipeline(_cfg(repo), _toy(calls), tmp_path / "run2", progress=False)  # would reuse the entry
    err = capsys.readouterr().err
    assert f"[a] a/sub/a2.bin is missing (cache entry {entry}); rerunning" in err
    assert (entry / "sub" / "a2.bin").is_file()


# ----------------------------------------------------------------------------- every tool checks the chain it reads
def _named_toy(calls):
    """Toy stages with the pipeline's names and needs: what the tools read is there (file contents are toys)."""
    from trigger_kd.stages import STAGES

    def func(name):
        def run(cfg, ctx, out):
            calls.append(name)
            (out / f"{name}.txt").write_text(f"{name} data.seed={cfg.data.seed} student.seed={cfg.student.seed}")
            if name == "firmware":
                (out / "parity.json").write_text(json.dumps({"n_jets": 10, "bit_exact_fraction": 1.0}))
            if name == "report":
                (out / "report.json").write_text(json.dumps({"model": "toy"}))
            return {}
        return run

    return [Stage(s.name, s.reads, s.needs, func(s.name), shared=s.shared) for s in STAGES]


TOOLS = {
    "check-parity": (lambda run: ["check-parity", str(run)], 1),
    "report": (lambda run: ["report", str(run)], 2),
    "evaluate": (lambda run: ["evaluate", str(run), "--on", str(run / "data")], 2),
    "diagnose": (lambda run: ["diagnose", str(run)], 2),
}


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_every_tool_refuses_a_run_whose_stages_disagree(tmp_path, repo, capsys, tool):
    calls = []
    run = tmp_path / "run"
    run_pipeline(_cfg(repo), _named_toy(calls), run, progress=False)
    run_pipeline(_cfg(repo, "data.seed=5"), _named_toy(calls), run, to="data", progress=False)  # new jets only
    capsys.readouterr()
    args, code = TOOLS[tool]
    assert cli(args(run)) == code
    err = capsys.readouterr().err
    assert "the data stage was rerun" in err and "Traceback" not in err, err
    assert f"trigger-kd run {run / 'data' / 'config.resolved.yml'} --run-dir {run}" in err  # the newest config
    assert err.count("error:") == 1


def test_report_refuses_a_report_older_than_its_student(tmp_path, repo, capsys):
    calls = []
    run = tmp_path / "run"
    run_pipeline(_cfg(repo), _named_toy(calls), run, progress=False)
    assert cli(["report", str(run)]) == 0
    run_pipeline(_cfg(repo, "student.seed=7"), _named_toy(calls), run, to="student", progress=False)
    capsys.readouterr()
    assert cli(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert "the student stage was rerun" in err and "Rerun the export stage" in err
    run_pipeline(load_config(run / "student" / "config.resolved.yml"), _named_toy(calls), run, progress=False)
    assert calls[-4:] == ["export", "firmware", "synth", "report"]  # the command it named reruns what was stale
    assert cli(["report", str(run)]) == 0


def test_report_out_may_name_a_directory(tmp_path, repo, capsys):
    run = tmp_path / "run"
    run_pipeline(_cfg(repo), _named_toy([]), run, progress=False)
    (tmp_path / "out").mkdir()
    assert cli(["report", str(run), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "comparison.md").is_file()
    assert cli(["report", str(run), "--out", str(tmp_path / "out" / "x.png")]) == 2
    assert "give a .md file" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["comparison.json", "comparison.md"]


def test_report_never_replaces_a_users_comparison_files(tmp_path, repo, capsys):
    """`trigger-kd report RUN` writes comparison.md/.json/_resources.png beside the run: a user's files of those
    names are refused, not replaced; an earlier comparison of ours is replaced."""
    run = tmp_path / "run"
    run_pipeline(_cfg(repo), _named_toy([]), run, progress=False)
    for name in ("comparison.md", "comparison.json", "comparison_resources.png"):
        mine = tmp_path / name
        mine.write_text("my own notes")
        capsys.readouterr()
        assert cli(["report", str(run)]) == 2
        assert "nothing was replaced" in capsys.readouterr().err and mine.read_text() == "my own notes"
        mine.unlink()
    assert cli(["report", str(run)]) == 0 and cli(["report", str(run)]) == 0  # its own comparison: replaced
    assert (tmp_path / "comparison.md").read_text().startswith("# trigger_kd: models side by side")


# ----------------------------------------------------------------------------- paths in a config (issue 35)
def _jets_file(path: Path, seed: int) -> Path:
    import numpy as np

    from trigger_kd.data.formats import write_canonical

    rng = np.random.default_rng(seed)
    p3 = rng.normal(scale=5.0, size=(80, 10, 3)) + np.array([300.0, 0.0, 0.0])
    c = np.concatenate([np.linalg.norm(p3, axis=-1, keepdims=True), p3], axis=-1).astype(np.float32)
    return write_canonical(path, c, (np.arange(80) % 2).astype(np.int8))


def _file_config(where: Path, **paths) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    lines = ["student: {seed: 1, n_particles: 8}", "teacher: {n_particles: 10}", "data:", "  source: canonical", "  jets_per_class: 0", "  max_constituents: 10",
             f"  paths: [{', '.join(paths['data'])}]"]
    if paths.get("transfer"):
        lines += ["distill:", f"  transfer_paths: [{', '.join(paths['transfer'])}]"]
    (where / "model.yml").write_text("\n".join(lines) + "\n")
    return where / "model.yml"


@pytest.mark.parametrize("standing", ["config_dir", "elsewhere"])
def test_relative_paths_are_read_against_the_config_file(tmp_path, monkeypatch, standing):
    """The rule: a relative path in a YAML file is relative to that file's directory (a --set value: to the current
    directory); the loaded config, and every config.resolved.yml, holds it absolute."""
    from trigger_kd.config import dump_config

    config = _file_config(tmp_path / "project", data=["jets.h5", "../shared/more.h5", "/abs/other.h5"],
                          transfer=["unlabelled/t.h5"])
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(config.parent if standing == "config_dir" else tmp_path / "elsewhere")
    cfg = load_config(config)
    assert cfg.data.paths == (str(tmp_path / "project" / "jets.h5"), str(tmp_path / "project" / "../shared/more.h5"),
                              "/abs/other.h5")
    assert cfg.distill.transfer_paths == (str(tmp_path / "project" / "unlabelled" / "t.h5"),)
    assert load_config(config, ["data.paths=[cwd.h5]"]).data.paths == (str(Path.cwd() / "cwd.h5"),)
    resolved = tmp_path / "run" / "data" / "config.resolved.yml"
    resolved.parent.mkdir(parents=True)
    resolved.write_text(dump_config(cfg))
    monkeypatch.chdir(tmp_path)
    again = load_config(resolved)
    assert again.data.paths == cfg.data.paths and again.distill.transfer_paths == cfg.distill.transfer_paths


def test_a_resolved_config_rerun_from_another_directory_reads_the_same_file(tmp_path, repo, monkeypatch, capsys):
    """The issue's case through the CLI: a run made from its config's folder, then the command the tools advise
    (`trigger-kd run RUN/data/config.resolved.yml`) typed in another folder that holds a different jets.h5."""
    config = _file_config(tmp_path / "project", data=["jets.h5"])
    mine = _jets_file(tmp_path / "project" / "jets.h5", 1)
    _jets_file(tmp_path / "other" / "jets.h5", 2)  # same name, other jets
    run = tmp_path / "run"
    monkeypatch.chdir(tmp_path / "project")
    assert cli(["run", str(config), "--to", "data", "--run-dir", str(run), "--no-progress"]) == 0
    stamp = json.loads((run / "data" / STAMP_FILE).read_text())
    assert [i["path"] for i in stamp["inputs"]] == [str(mine)]
    assert str(mine) in (run / "data" / "config.resolved.yml").read_text()
    monkeypatch.chdir(tmp_path / "other")
    capsys.readouterr()
    assert cli(["run", str(run / "data" / "config.resolved.yml"), "--to", "data", "--run-dir", str(run),
                "--no-progress"]) == 0
    assert "[data] up to date" in capsys.readouterr().err  # the same file, not the jets.h5 of where we stand
    assert json.loads((run / "data" / STAMP_FILE).read_text())["stamp"] == stamp["stamp"]


def test_a_resolved_config_of_an_older_version_with_relative_paths_is_refused(tmp_path, repo, capsys):
    """A config.resolved.yml written before this rule holds the path as typed, relative to a directory it did not
    record: refused, naming the file that run read (its data stage's stamp), not read against where we stand."""
    config = _file_config(tmp_path / "project", data=[str(_jets_file(tmp_path / "project" / "jets.h5", 1))])
    run = tmp_path / "run"
    assert cli(["run", str(config), "--to", "data", "--run-dir", str(run), "--no-progress"]) == 0
    old = tmp_path / "old" / "student"
    old.mkdir(parents=True)
    text = (run / "data" / "config.resolved.yml").read_text().replace(str(tmp_path / "project") + "/", "")
    assert "- jets.h5" in text
    (old / "config.resolved.yml").write_text(text)
    shutil.copytree(run / "data", tmp_path / "old" / "data", symlinks=True)
    capsys.readouterr()
    assert cli(["run", str(old / "config.resolved.yml"), "--to", "data", "--run-dir", str(tmp_path / "r2"),
                "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "data.paths" in err and "'jets.h5'" in err and "relative" in err and "Traceback" not in err, err
    assert str(tmp_path / "project" / "jets.h5") in err and "--set" in err, err


def test_runs_stamped_with_relative_paths_are_not_rerun_for_the_spelling(tmp_path, repo, monkeypatch, capsys):
    """A run made before paths were absolute stamped data.paths as typed ('jets.h5', read from where the user
    stood). Loaded now, the same config names the same file absolutely: its stages are up to date, not retrained;
    another file of that name elsewhere is not mistaken for it."""
    calls: list = []
    project = tmp_path / "project"
    config = _file_config(project, data=["jets.h5"], transfer=["t.h5"])
    (project / "jets.h5").write_text("jets")
    (project / "t.h5").write_text("transfer jets")

    def stage(name, reads, needs, shared=False, inputs=None):
        def run(cfg, ctx, out):
            calls.append(name)
            (out / "f.txt").write_text(name)
            return {}
        return Stage(name, reads, needs, run, shared=shared, inputs=inputs)

    stages = [stage("data", ("data",), (), True, lambda cfg: list(cfg.data.paths)),
              stage("transfer", ("distill.transfer_paths",), ("data",), True, lambda cfg: list(cfg.distill.transfer_paths)),
              stage("student", ("student", "distill"), ("data", "transfer"))]
    monkeypatch.chdir(project)
    cfg = load_config(config)
    as_before = cfg.model_copy(update={"data": cfg.data.model_copy(update={"paths": ("jets.h5",)}),
                                       "distill": cfg.distill.model_copy(update={"transfer_paths": ("t.h5",)})})
    run = tmp_path / "run"
    run_pipeline(as_before, stages, run, progress=False)  # as an older trigger-kd stamped it
    assert json.loads((run / "data" / STAMP_FILE).read_text())["sections"]["data"]["paths"] == ["jets.h5"]
    assert calls == ["data", "transfer", "student"]
    monkeypatch.chdir(tmp_path)
    calls.clear()
    run_pipeline(load_config(config), stages, run, progress=False)
    assert calls == []  # the same files: up to date
    (tmp_path / "jets.h5").write_text("other jets")  # where we stand now: another file of that name
    run_pipeline(load_config(config, ["data.paths=[jets.h5]"]), stages, run, progress=False)
    assert calls == ["data", "transfer", "student"]  # named from here by --set: that other file, so rerun
