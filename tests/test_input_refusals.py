"""Inputs named precisely (issue 24): a bad input is one `error:` line naming the problem and the option or key,
exit 2, no traceback, before any work."""
from __future__ import annotations

import os

import numpy as np
import pytest
from onnx import TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper

from corpus_models import CORPUS
from trigger_kd.cli import main as cli
from trigger_kd.config import ConfigError, load_config
from trigger_kd.pipeline import Stage, run_pipeline
from pipeline_fixtures import _own_cache  # noqa: F401 (pytest fixture used by name)

MODEL = CORPUS / "zoo_qkeras_jettagging.onnx"


def _refused(capsys, args, *words):
    assert cli(args) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err
    return err


def _two(kind: str, path):
    vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4]) for n in ("a", "b", "y", "z")]
    if kind == "inputs":
        g = helper.make_graph([helper.make_node("Add", ["a", "b"], ["y"])], "g", vi[:2], [vi[2]])
    else:
        g = helper.make_graph([helper.make_node("Relu", ["a"], ["y"]), helper.make_node("Neg", ["a"], ["z"])],
                              "g", [vi[0]], vi[2:])
    ModelWrapper(helper.make_model(g)).save(str(path))
    return path


def test_import_qonnx_refusals(tmp_path, capsys, repo):
    out = ["--run-dir", str(tmp_path / "out")]
    (tmp_path / "empty.onnx").write_bytes(b"")
    _refused(capsys, ["import-qonnx", str(tmp_path / "empty.onnx"), *out], "empty file (0 bytes)")
    _refused(capsys, ["import-qonnx", str(_two("inputs", tmp_path / "two_in.onnx")), *out], "2 inputs (a, b)")
    _refused(capsys, ["import-qonnx", str(_two("outputs", tmp_path / "two_out.onnx")), *out], "2 outputs (y, z)")
    _refused(capsys, ["import-qonnx", str(MODEL), "--seed", "-1", *out], "--seed -1")
    (tmp_path / "afile").write_text("x")
    _refused(capsys, ["import-qonnx", str(MODEL), "--run-dir", str(tmp_path / "afile")], "is an existing file")
    np.save(tmp_path / "complex.npy", np.ones((3, 16)) * (1 + 2j))
    _refused(capsys, ["import-qonnx", str(MODEL), "--inputs", str(tmp_path / "complex.npy"), *out], "complex")
    np.save(tmp_path / "text.npy", np.array([["a"] * 16] * 3))
    _refused(capsys, ["import-qonnx", str(MODEL), "--inputs", str(tmp_path / "text.npy"), *out], "numeric array")
    assert not (tmp_path / "out").exists()
    # a pipeline run, or one of its stage directories, is not import-qonnx's to write
    run = tmp_path / "run"
    run_pipeline(load_config(repo / "hls_configs/mlp_kd.yml"),
                 [Stage("firmware", (), (), lambda cfg, ctx, o: (o / "parity.json").write_text("{}") and {})], run)
    before = (run / "firmware" / "parity.json").read_text()
    for target in (run, run / "firmware"):
        _refused(capsys, ["import-qonnx", str(MODEL), "--run-dir", str(target)], "belongs to the pipeline run")
    assert (run / "firmware" / "parity.json").read_text() == before
    # nor is a user's folder with files of its own (an hls4ml_prj/ of theirs would be replaced)
    mine = tmp_path / "mine"
    (mine / "hls4ml_prj").mkdir(parents=True)
    (mine / "hls4ml_prj" / "notes.txt").write_text("mine")
    _refused(capsys, ["import-qonnx", str(MODEL), "--run-dir", str(mine)], "folder with other files")
    assert (mine / "hls4ml_prj" / "notes.txt").read_text() == "mine" and sorted(os.listdir(mine)) == ["hls4ml_prj"]


@pytest.mark.parametrize("key,value", [("input_bits", 64), ("weight_bits", 32), ("bias_bits", 64), ("act_bits", 25)])
def test_bit_widths_beyond_float32_are_config_errors(repo, key, value):
    with pytest.raises(ConfigError, match=rf"student\.{key}.*at most 24"):
        load_config(repo / "hls_configs/mlp_kd.yml", [f"student.{key}={value}"])
    load_config(repo / "hls_configs/mlp_kd.yml", [f"student.{key}=24"])  # the bound itself is fine


# ----------------------------------------------------------------------------- data.paths
def _jets(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p3 = rng.normal(scale=5.0, size=(n, 10, 3)) + np.array([40.0, 0.0, 0.0])
    return np.concatenate([np.linalg.norm(p3, axis=-1, keepdims=True), p3], axis=-1).astype(np.float32)


def _data_run(repo, tmp_path, paths, per_class=0):
    listed = ", ".join(f"'{p}'" for p in paths)
    return ["run", str(repo / "hls_configs/mlp_kd.yml"), "--to", "data", "--run-dir", str(tmp_path / "run"),
            "--no-progress", "--set", "data.source=canonical", "--set", f"data.paths=[{listed}]",
            "--set", f"data.jets_per_class={per_class}", "--set", "data.max_constituents=10",
            "--set", "teacher.n_particles=10", "--set", "student.n_particles=8"]


def test_data_paths_refusals(tmp_path, repo, capsys):
    from trigger_kd.data.formats import write_canonical

    labels = (np.arange(60) % 2).astype(np.int8)
    ok = write_canonical(tmp_path / "ok.h5", _jets(60, 0), labels)
    (tmp_path / "adir.h5").mkdir()
    _refused(capsys, _data_run(repo, tmp_path, [tmp_path / "adir.h5"]), "adir.h5: is a directory, not a file",
             "data.paths")
    (tmp_path / "loop.h5").symlink_to(tmp_path / "loop.h5")
    _refused(capsys, _data_run(repo, tmp_path, [tmp_path / "loop.h5"]), "loop.h5: a symlink loop", "data.paths")
    c = _jets(60, 1)
    c[[3, 10, 11]] = 0.0  # three empty jets (two of them would look like duplicates of each other)
    empty = write_canonical(tmp_path / "empty.h5", c, labels)
    err = _refused(capsys, _data_run(repo, tmp_path, [empty]), "3 of 60 jets are empty", "empty.h5")
    assert "duplicate" not in err and "also in the" not in err
    _refused(capsys, _data_run(repo, tmp_path, [ok], per_class=1), "data.jets_per_class=1", "without jets")
    assert not (tmp_path / "run" / "data").exists()


def test_a_run_made_with_a_profile_beside_its_config_can_be_read_back(tmp_path, repo):
    """evaluate/diagnose load a run's config.resolved.yml: it holds its profile's values, so the profile file
    (kept beside the model's own config, not in hls_configs/profiles) is not needed again."""
    import shutil

    from trigger_kd.config import dump_config

    (tmp_path / "profiles").mkdir()
    shutil.copy(repo / "hls_configs/profiles/quick.yml", tmp_path / "profiles" / "mine.yml")
    shutil.copy(repo / "hls_configs/mlp_kd.yml", tmp_path / "model.yml")
    cfg = load_config(tmp_path / "model.yml", ["student.seed=4"], profile="mine")
    (tmp_path / "run" / "student").mkdir(parents=True)
    resolved = tmp_path / "run" / "student" / "config.resolved.yml"
    resolved.write_text(dump_config(cfg))
    again = load_config(resolved)
    assert again.profile == "mine" and again.student == cfg.student and again.data == cfg.data


def _typed_options():
    """(command, option, bad value) for every option of every subcommand that converts its value (int, float, a
    choice): the parser itself, walked, so a new option is covered without a new test."""
    import argparse

    from trigger_kd.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in sub.choices.items():
        given = [next(iter(a.choices)) if a.choices else "somewhere" for a in parser._actions if not a.option_strings]
        for action in parser._actions:
            if not action.option_strings or action.nargs == 0:
                continue
            if action.type in (int, float) or action.choices:
                yield pytest.param([name, *given], action.option_strings[-1], id=f"{name} {action.option_strings[-1]}")


@pytest.mark.parametrize("given,option", list(_typed_options()))
def test_a_bad_option_value_is_one_line_for_every_command(capsys, given, option):
    command = given[0]
    with pytest.raises(SystemExit) as exc:
        cli([*given, option, "not-a-value"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "usage:" not in err and option in err and f"trigger-kd {command} --help" in err, err


@pytest.mark.parametrize("args", [[], ["no-such-command"], ["run"], ["check-parity"]])
def test_a_missing_or_unknown_command_is_one_line(capsys, args):
    with pytest.raises(SystemExit) as exc:
        cli(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "usage:" not in err and "--help" in err, err


@pytest.mark.parametrize("stage", ["data", "teacher", "transfer", "student", "export", "synth", "report"])
def test_check_parity_on_a_stage_folder_names_the_run(tmp_path, capsys, stage):
    from trigger_kd.rundir import mark_run_dir

    run = tmp_path / "run"
    (run / stage).mkdir(parents=True)
    mark_run_dir(run, "new")
    err = _refused(capsys, ["check-parity", str(run / stage)], f"the {stage} folder of the run {run}",
                   f"trigger-kd check-parity {run}")
    assert "rerun" not in err  # not advice to rerun a stage: the wrong folder was given
