"""`import-qonnx` on the models people publish: refusals before any build, the fixing transformations
on tiny graphs, and one model of each verdict (exact, inexact measured, approximate by design, refused)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from onnx import helper
from qonnx.core.onnx_exec import execute_onnx

import qonnx_graphs as tg
from corpus_models import CORPUS, export_brevitas
from trigger_kd.cli import main as cli
from trigger_kd.config import HLSConfig
from trigger_kd.firmware import qonnx_rules
from trigger_kd.firmware.import_qonnx import ImportRefused, import_qonnx


def _run(tmp_path, *args):
    return cli(["import-qonnx", *map(str, args), "--run-dir", str(tmp_path / "run")])


# ----------------------------------------------------------------------------- refused before any build
def test_bad_requests_are_refused_before_any_build(tmp_path, capsys):
    model = CORPUS / "zoo_qkeras_jettagging.onnx"
    assert _run(tmp_path, model, "--n", "0") == 2
    assert "--n 0" in capsys.readouterr().err
    (tmp_path / "x.csv").write_text("1,2")
    assert _run(tmp_path, model, "--inputs", tmp_path / "x.csv") == 2
    assert ".npy" in capsys.readouterr().err
    x = np.zeros((3, 16))
    x[1, 4] = np.nan
    x[2, 0] = np.inf
    np.save(tmp_path / "x.npy", x)
    assert _run(tmp_path, model, "--inputs", tmp_path / "x.npy") == 2
    assert "NaN or inf in 2 rows (first: [1, 2])" in capsys.readouterr().err
    assert _run(tmp_path, model, "--input-precision", "float32") == 2
    assert "not an hls4ml fixed-point type" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_unsupported_op_is_named_after_cleanup(tmp_path):
    with pytest.raises(ImportRefused, match="node '/input_quant/export_handler/FloatQuant' uses op FloatQuant.*after qonnx cleanup"):
        import_qonnx(CORPUS / "qonnx_floatquant_exec_qonnx_act_weight_fp8.onnx", tmp_path / "run", HLSConfig(), n=4)


def test_ops_are_checked_after_cleanup(tmp_path):
    """Brevitas FINN TFC models carry Shape/Gather nodes that qonnx cleanup folds away."""
    from qonnx.core.modelwrapper import ModelWrapper

    from trigger_kd.firmware.import_qonnx import check_ops, prepare

    raw = ModelWrapper(str(CORPUS / "zoo_TFC_2W2A.onnx"))
    assert "Shape" in {n.op_type for n in raw.graph.node}
    clean, _, _ = prepare(raw, "tfc")
    check_ops(clean, "tfc")  # no refusal
    assert "Shape" not in {n.op_type for n in clean.graph.node}


# ----------------------------------------------------------------------------- fixing transformations
def _same_function(before, after, shape):
    from qonnx.transformation.infer_shapes import InferShapes

    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    out = lambda m: execute_onnx(m.transform(InferShapes()), {m.graph.input[0].name: x})[m.graph.output[0].name]  # noqa: E731
    np.testing.assert_array_equal(out(before), out(after))


def test_fill_quant_defaults():
    mw = tg.dense(rounding=None)
    fixed, applied = qonnx_rules.apply_fixes(mw)
    attrs = {a.name: a.s for a in fixed.graph.node[0].attribute}
    assert attrs["rounding_mode"] == b"ROUND" and applied == ["Quant_0: rounding_mode ROUND (qonnx's default, written out for hls4ml)"]
    _same_function(mw, fixed, (1, 4))


def test_remove_trailing_identity():
    mw = tg.dense()
    mm = mw.graph.node[-1]
    mm.output[0] = "pre"
    mw.graph.node.append(helper.make_node("Identity", ["pre"], [mw.graph.output[0].name], name="Identity_0"))
    fixed, applied = qonnx_rules.apply_fixes(mw)
    assert [n.op_type for n in fixed.graph.node] == ["Quant", "MatMul"] and "Identity_0" in applied[0]
    _same_function(mw, fixed, (1, 4))


def test_remove_unsqueeze_squeeze_pair_around_batchnorm():
    from onnx import numpy_helper

    mw = tg.dense(n_out=3)
    mm = mw.graph.node[-1]
    out = mw.graph.output[0].name
    mm.output[0] = "mm"
    c = 3
    bn_params = [numpy_helper.from_array(np.linspace(0.5, 1.5, c).astype(np.float32), n) for n in ("g", "b", "mu", "var")]
    mw.graph.initializer.extend(bn_params + [numpy_helper.from_array(np.array([2], dtype=np.int64), "ax")])
    mw.graph.node.extend([helper.make_node("Unsqueeze", ["mm", "ax"], ["u"], name="Unsqueeze_0"),
                          helper.make_node("BatchNormalization", ["u", "g", "b", "mu", "var"], ["bn"], name="BN_0"),
                          helper.make_node("Squeeze", ["bn", "ax"], [out], name="Squeeze_0")])
    fixed, applied = qonnx_rules.apply_fixes(mw)
    assert [n.op_type for n in fixed.graph.node] == ["Quant", "MatMul", "BatchNormalization"]
    assert applied == ["removed Unsqueeze_0/Squeeze_0 around BN_0 (hls4ml 1.3 has no Unsqueeze; the ops between are per-channel)"]
    _same_function(mw, fixed, (1, 4))


# ----------------------------------------------------------------------------- one model of each verdict (g++)
@pytest.mark.slow
def test_verdict_exact_float_input(tmp_path):
    """Power-of-two Brevitas quantisers without an input quantiser: hls4ml's default input type, exact."""
    path = export_brevitas("brevitas_pow2_float_input", tmp_path)
    r = import_qonnx(path, tmp_path / "run", HLSConfig(), n=300)
    assert r["verdict"] == "exact" and r["bit_exact_fraction"] == 1.0 and r["argmax_agreement"] == 1.0
    assert (r["input_precision"], r["input_precision_source"]) == ("fixed<16,6,TRN,WRAP>",
                                                                   "hls4ml default (no Quant node reads the input)")
    assert cli(["check-parity", str(tmp_path / "run")]) == 0
    _check_parity_reads_the_evidence(tmp_path / "run", path)


def _check_parity_reads_the_evidence(run, model):
    """check-parity on an import directory: a verdict from the saved evidence, never from an editable number."""
    import shutil

    from trigger_kd.rundir import IMPORT_CSIM, IMPORT_RECORD, PARITY

    keep = run.with_name("kept")
    shutil.copytree(run, keep, symlinks=True)

    def fresh():
        shutil.rmtree(run)
        shutil.copytree(keep, run, symlinks=True)

    cases = {  # each damage -> check-parity fails (exit 1, never 0)
        "evidence edited": lambda: np.save(run / IMPORT_CSIM, np.load(run / IMPORT_CSIM) + 1.0),
        "parity.json edited": lambda: (run / PARITY).write_text(
            (run / PARITY).read_text().replace('"n_jets": 300', '"n_jets": 301')),
        "project file removed": lambda: next((run / "hls4ml_prj").rglob("*.cpp")).unlink(),
        "import unfinished": lambda: (run / IMPORT_RECORD).write_text('{"complete": false}'),
        "no record (older import)": lambda: (run / IMPORT_RECORD).unlink(),
    }
    for name, damage in cases.items():
        fresh()
        damage()
        assert cli(["check-parity", str(run)]) == 1, name
    fresh()
    model.write_bytes(model.read_bytes() + b" ")  # the model the firmware was built from changed since
    assert cli(["check-parity", str(run)]) == 1


@pytest.mark.slow
def test_verdict_inexact_measured_brevitas_defaults(tmp_path):
    """Brevitas' default float-scale quantisers and float bias: built, measured, reasons named."""
    path = export_brevitas("brevitas_defaults", tmp_path)
    assert _run(tmp_path, path, "--n", "300") == 1
    r = json.loads((tmp_path / "run" / "parity.json").read_text())
    assert r["verdict"] == "inexact, measured" and r["bit_exact_fraction"] < 1.0
    assert "scales no ap_fixed type holds" in r["reason"] and r["max_abs_diff_lsb"] > 0
    assert r["first_mismatch_layer"] and 0.0 <= r["argmax_agreement"] <= 1.0
    assert cli(["check-parity", str(tmp_path / "run")]) == 1


@pytest.mark.slow
def test_verdict_approximate_by_design_zoo_jet_tagger(tmp_path):
    """The QONNX zoo jet tagger (QKeras, float input, lookup-table softmax): exact before the softmax."""
    r = import_qonnx(CORPUS / "zoo_qkeras_jettagging.onnx", tmp_path / "run", HLSConfig(), n=300)
    assert r["verdict"] == "approximate by design" and r["bit_exact_fraction"] == 1.0
    assert r["compared_at"] != "output" and [a["op"] for a in r["approximate_layers"]] == ["Softmax"]
    assert 0.9 <= r["argmax_agreement"] <= 1.0
    assert json.loads((tmp_path / "run" / "hls_rules.json").read_text())["rules"][0].startswith("input global_in")


@pytest.mark.slow
def test_plain_float_onnx_is_built_measured_and_explained(tmp_path):
    """hls4ml's example-models two-layer Keras MLP (no Quant nodes): built with hls4ml's defaults, measured."""
    r = import_qonnx(CORPUS / "ex_two_layer_keras.onnx", tmp_path / "run", HLSConfig(), n=200)
    assert r["verdict"] in ("inexact, measured", "approximate by design")
    assert "float ONNX model (no Quant nodes), not QONNX" in (r["reason"] or "") or r["verdict"] == "approximate by design"
    assert r["input_precision"] == "fixed<16,6,TRN,WRAP>"
