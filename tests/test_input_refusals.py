"""Inputs named precisely (issue 24): a bad input is one `error:` line naming the problem and the option or key,
exit 2, no traceback, before any work."""
from __future__ import annotations

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


@pytest.mark.parametrize("key,value", [("input_bits", 64), ("weight_bits", 32), ("bias_bits", 64), ("act_bits", 25)])
def test_bit_widths_beyond_float32_are_config_errors(repo, key, value):
    with pytest.raises(ConfigError, match=rf"student\.{key}.*at most 24"):
        load_config(repo / "hls_configs/mlp_kd.yml", [f"student.{key}={value}"])
    load_config(repo / "hls_configs/mlp_kd.yml", [f"student.{key}=24"])  # the bound itself is fine
