"""The stage runner: stamps, skipping, --from/--to, atomic swaps, failures keep earlier results."""
from __future__ import annotations

import json

import pytest

from trigger_kd.config import load_config
from trigger_kd.pipeline import Stage, StageError, run_pipeline
from pipeline_fixtures import _own_cache, cfg  # noqa: F401 (pytest fixtures used by name)


def _stages(calls, fail_b=False):
    def a(cfg, ctx, out):
        calls.append("a")
        (out / "a.txt").write_text(str(cfg.teacher.epochs))
        return {"n": 1}

    def b(cfg, ctx, out):
        calls.append("b")
        (out / "partial.txt").write_text("half")
        if fail_b:
            raise RuntimeError("boom")
        (out / "b.txt").write_text((ctx.dir("a") / "a.txt").read_text() + str(cfg.student.max_epochs))
        return {}

    return [Stage("a", ("teacher",), (), a, shared=True), Stage("b", ("student",), ("a",), b)]


def test_skip_rerun_and_invalidation(tmp_path, cfg, repo):
    calls = []
    run_pipeline(cfg, _stages(calls), tmp_path / "run")
    assert calls == ["a", "b"]
    assert (tmp_path / "run/b/b.txt").read_text() == "23"
    assert (tmp_path / "run/a").is_symlink()  # shared stage lives in the cache
    run_pipeline(cfg, _stages(calls), tmp_path / "run")
    assert calls == ["a", "b"]  # both up to date
    cfg2 = load_config(repo / "hls_configs/mlp_kd.yml", ["teacher.epochs=2", "student.epochs=4"])
    run_pipeline(cfg2, _stages(calls), tmp_path / "run")
    assert calls == ["a", "b", "b"]  # only b reads the student section
    cfg3 = load_config(repo / "hls_configs/mlp_kd.yml", ["teacher.epochs=5", "student.epochs=4"])
    run_pipeline(cfg3, _stages(calls), tmp_path / "run")
    assert calls == ["a", "b", "b", "a", "b"]  # upstream change propagates
    stamp = json.loads((tmp_path / "run/b/stamp.json").read_text())
    assert stamp["sections"]["student"]["max_epochs"] == 4  # student.epochs is its old name


def test_cache_shared_between_run_dirs(tmp_path, cfg):
    calls = []
    run_pipeline(cfg, _stages(calls), tmp_path / "run1")
    run_pipeline(cfg, _stages(calls), tmp_path / "run2")
    assert calls == ["a", "b", "b"]
    assert (tmp_path / "run1/a").resolve() == (tmp_path / "run2/a").resolve()


def test_to_and_from(tmp_path, cfg):
    calls = []
    run_pipeline(cfg, _stages(calls), tmp_path / "run", to="a")
    assert calls == ["a"]
    run_pipeline(cfg, _stages(calls), tmp_path / "run", start="b")
    run_pipeline(cfg, _stages(calls), tmp_path / "run", start="b")
    assert calls == ["a", "b", "b"]
    with pytest.raises(StageError, match="unknown stage"):
        run_pipeline(cfg, _stages(calls), tmp_path / "run", to="nope")
    with pytest.raises(StageError, match="no output"):
        run_pipeline(cfg, _stages(calls), tmp_path / "other", start="b")
    assert not (tmp_path / "other").exists()  # refused before the run directory is made: nothing left behind


def test_failure_keeps_previous_result(tmp_path, cfg, repo):
    calls = []
    run_pipeline(cfg, _stages(calls), tmp_path / "run")
    cfg2 = load_config(repo / "hls_configs/mlp_kd.yml", ["teacher.epochs=2", "student.epochs=9"])
    with pytest.raises(RuntimeError, match="boom"):
        run_pipeline(cfg2, _stages(calls, fail_b=True), tmp_path / "run")
    assert (tmp_path / "run/b/b.txt").read_text() == "23"  # old result intact
    assert (tmp_path / "run/b.failed/partial.txt").is_file()  # partial output kept aside
    assert not list((tmp_path / "run").glob(".b.tmp-*"))


def test_failure_message_names_the_kept_logs(tmp_path, cfg):
    def b(cfg, ctx, out):
        (out / "tool.log").write_text("the tool's complaint")
        raise StageError(f"tool failed; log: {out / 'tool.log'}")

    stages = [Stage("b", ("student",), (), b)]
    with pytest.raises(StageError) as exc:
        run_pipeline(cfg, stages, tmp_path / "run")
    kept = (tmp_path / "run" / "b.failed" / "tool.log").resolve()
    assert str(exc.value) == f"tool failed; log: {kept}" and kept.read_text() == "the tool's complaint"


def test_stage_table_is_the_one_list_of_stage_names():
    """rundir.STAGE_NAMES is the one list of stages; the stage table holds each of them once, in that order."""
    from trigger_kd import rundir, stages

    assert stages.STAGE_NAMES is rundir.STAGE_NAMES
    assert tuple(s.name for s in stages.STAGES) == rundir.STAGE_NAMES
    assert all(set(s.needs) <= set(rundir.STAGE_NAMES[:i]) for i, s in enumerate(stages.STAGES))
