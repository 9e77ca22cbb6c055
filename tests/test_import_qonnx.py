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


# ----------------------------------------------------------------------------- what the inputs let a verdict say
def _caveats(given, fmt_text="fixed<10,3,RND,SAT>"):
    from trigger_kd.firmware.import_qonnx import _on_grid, input_caveats
    from trigger_kd.fixedpoint import FixedFormat

    fmt = FixedFormat.from_hls(fmt_text)
    x, _ = _on_grid(np.asarray(given, dtype=np.float64), fmt)
    return input_caveats(given, x, fmt)


def test_saturating_and_degenerate_inputs_are_named(recwarn):
    """Generated input sets: values outside the input type (x1e6, -1e6, 1e300, just past the end) are said to
    saturate, with how many; all rows equal, one row, few distinct rows (also rows equal only on the grid) are
    said to limit the verdict; an ordinary set has no caveat. No numpy overflow warning on the way."""
    rng = np.random.default_rng(0)
    ok = rng.uniform(-3, 3, (200, 16))
    assert _caveats(ok) == []
    for scale in (1e6, -1e6, 1e300):
        (c,) = _caveats(ok * scale)
        assert "saturate" in c and "fixed<10,3,RND,SAT>" in c and "range [-4, 3.99219]" in c and "of 3200" in c, c
    edge = ok.copy()
    edge[5, 2] = 4.5  # one value just past the end: counted, one row
    (c,) = _caveats(edge)
    assert c.startswith("1 of 3200 given input values") and "in 1 of 200 rows" in c
    for name, given in {"all equal": np.repeat(ok[:1], 50, axis=0), "zeros": np.zeros((100, 16)),
                        "equal on the grid": ok[:1] + rng.uniform(0, 1e-4, (40, 16))}.items():
        cav = _caveats(given)
        assert any("one and the same row" in c for c in cav), (name, cav)
    few = np.repeat(ok[:3], 20, axis=0)
    assert any("only 3 distinct input rows" in c for c in _caveats(few))
    assert any("only 1 distinct input rows" in c for c in _caveats(ok[:1]))  # a single input
    both = _caveats(np.repeat(ok[:1], 50, axis=0) * 1e6)
    assert len(both) == 2 and "saturate" in both[0] and "one and the same row" in both[1]
    assert not [w for w in recwarn if "overflow" in str(w.message)]


@pytest.mark.slow
def test_verdict_on_saturated_copies_says_so(tmp_path, capsys):
    """The defect: inputs x1e6, 50 copies of one row, called "exact on 50 inputs" with exit 0. The verdict line
    and parity.json now carry both caveats."""
    path = export_brevitas("brevitas_pow2_float_input", tmp_path)
    given = np.repeat(np.random.default_rng(1).standard_normal((1, 16)) * 1e6, 50, axis=0)
    np.save(tmp_path / "x.npy", given)
    rc = _run(tmp_path, path, "--inputs", tmp_path / "x.npy")
    err = capsys.readouterr().err
    r = json.loads((tmp_path / "run" / "parity.json").read_text())
    assert rc == 0 and r["verdict"] == "exact" and len(r["input_caveats"]) == 2, (rc, r)
    assert "saturate" in err and "one and the same row" in err and "exact: bit-exact" in err, err
    from trigger_kd.cli import main as cli

    assert cli(["check-parity", str(tmp_path / "run")]) == 0  # the CI gate passes, and says what the inputs leave out
    err = capsys.readouterr().err
    assert "parity OK" in err and "parity holds on these inputs only" in err and "saturate" in err, err
