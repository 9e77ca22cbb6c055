"""Each firmware exactness rule on a tiny graph, and the one fixed-point type they share."""
from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

import qonnx_graphs as tg
from trigger_kd.errors import TriggerKDError
from trigger_kd.firmware import hls_config, rules
from trigger_kd.firmware.hls import convert_qonnx
from trigger_kd.config import HLSConfig
from trigger_kd.fixedpoint import FixedFormat, NotFixedPoint


# ----------------------------------------------------------------------------- the fixed-point type
@pytest.mark.parametrize("text,fmt", [
    ("fixed<8,3,RND_CONV,SAT>", FixedFormat(True, 8, 5)),
    ("ufixed<6,3>", FixedFormat(False, 6, 3, "TRN", "WRAP")),
    ("fixed<16,6>", FixedFormat(True, 16, 10, "TRN", "WRAP")),
    ("fixed<4,-1,TRN,SAT_SYM>", FixedFormat(True, 4, 5, "TRN", "SAT_SYM")),
])
def test_fixed_format_hls_round_trip(text, fmt):
    assert FixedFormat.from_hls(text) == fmt
    assert FixedFormat.from_hls(fmt.hls) == fmt


def test_fixed_format_views():
    f = FixedFormat(True, 8, 5)
    assert (f.integer, f.int_min, f.int_max, f.kif) == (3, -128, 127, (1, 2, 5))
    u = FixedFormat(False, 6, 3)
    assert (u.int_min, u.int_max, u.kif) == (0, 63, (0, 3, 3))
    assert FixedFormat(True, 8, 5, saturation="SAT_SYM").int_min == -127
    x = f.grid(np.random.default_rng(0), (1000,))
    assert np.array_equal(x * 32, np.rint(x * 32)) and x.min() >= -4 and x.max() <= 127 / 32
    with pytest.raises(NotFixedPoint, match="not an hls4ml fixed-point type"):
        FixedFormat.from_hls("float")


def test_one_pooling_formula_is_exact():
    """Sum of n values of the input type fits, and the mean (2**-k) keeps every bit."""
    for fmt in (FixedFormat(False, 6, 3), FixedFormat(True, 8, 5), FixedFormat(False, 4, 0)):
        for n in (1, 4, 16, 32):
            p = fmt.pool(n)
            total_max, total_min = n * fmt.int_max, n * fmt.int_min
            assert p.signed and p.frac_bits == fmt.frac_bits + int(np.log2(n))
            assert p.int_min <= total_min and total_max <= p.int_max  # the sum, at the mean's grid
    assert FixedFormat(False, 6, 3).pool(16).hls_type == "fixed<15,8>"


def test_fixed_format_from_scale_and_quant():
    assert FixedFormat.from_scale(True, 8, 0.25, "w") == FixedFormat(True, 8, 2)
    with pytest.raises(NotFixedPoint, match="scale 0.3 is not one power of two"):
        FixedFormat.from_scale(True, 8, 0.3, "w")
    with pytest.raises(NotFixedPoint, match="2 scales"):
        FixedFormat.from_scale(True, 8, [0.25, 0.5], "w")
    mw = tg.dense(narrow=True, rounding="FLOOR")
    q = rules.first_input_quant(mw)
    assert FixedFormat.from_quant(mw, q) == FixedFormat(True, 8, 3, "TRN", "SAT_SYM")
    plain = tg.dense(rounding=None)
    assert FixedFormat.from_quant(plain, rules.first_input_quant(plain)).rounding == "RND_CONV"  # default ROUND


def test_fixed_format_from_qkeras():
    from qkeras import quantized_bits, quantized_relu

    assert FixedFormat.from_qkeras(quantized_bits(8, 2, alpha=1)) == FixedFormat(True, 8, 5)
    assert FixedFormat.from_qkeras(quantized_relu(6, 3)) == FixedFormat(False, 6, 3)
    with pytest.raises(NotFixedPoint, match="alpha=1"):
        FixedFormat.from_qkeras(quantized_bits(8, 2, alpha="auto_po2"))


# ----------------------------------------------------------------------------- config rules
def test_input_precision_rule():
    layers: dict = {}
    line = rules.input_precision(tg.dense(), layers, "tiny")
    assert layers["global_in"]["Precision"]["result"] == "fixed<8,5,RND_CONV,SAT>"  # qonnx cleanup's names
    assert line == "input global_in: fixed<8,5,RND_CONV,SAT> (type of Quant_0)"
    with pytest.raises(NotFixedPoint, match="Quant node Quant_0: scale 0.1 is not one power of two"):
        rules.input_precision(tg.dense(in_scale=0.1), {}, "tiny")


def test_input_precision_rule_needs_an_input_quantiser():
    mw = tg.dense()
    mw.graph.node.remove(mw.graph.node[0])  # drop the input Quant: MatMul reads the float input
    mw.graph.node[0].input[0] = "global_in"
    with pytest.raises(TriggerKDError, match="not quantised"):
        rules.input_precision(mw, {}, "tiny")


def test_pooling_precision_rule():
    layers: dict = {}
    (line,) = rules.pooling_precision(tg.pooled(n=8), layers, "tiny")
    assert layers["GlobalAveragePool_0"]["Precision"] == {"accum": "fixed<13,7>", "result": "fixed<13,7>"}
    assert "mean of 8 x ufixed<6,3>" in line


def test_unknown_override_key_is_named():
    with pytest.raises(TriggerKDError, match=r"fc1 has unknown keys \['width'\]"):
        hls_config.check_precision_keys({"fc1": {"width": "8"}})


# ----------------------------------------------------------------------------- hls4ml passes (conversion only)
def _convert(mw, tmp_path, **kw):
    path = tmp_path / "tiny.onnx"
    mw.save(str(path))
    with contextlib.redirect_stderr(io.StringIO()):
        return convert_qonnx(path, tmp_path / "prj", HLSConfig(**kw))


def test_transpose_before_pooling_is_removed(tmp_path):
    hls_model, applied = _convert(tg.pooled(), tmp_path)
    assert "Transpose" not in [layer.class_name for layer in hls_model.get_layers()]
    assert "removed Transpose_0 before global pooling" in applied
    assert any(r.startswith("pooling GlobalAveragePool_0") for r in applied)


def test_layer_precision_override_pass(tmp_path):
    hls_model, applied = _convert(tg.dense(), tmp_path, layer_precision={"Dense_MatMul_0": {"result": "fixed<9,4>",
                                                                                          "weight": "fixed<5,2>"}})
    layer = next(la for la in hls_model.get_layers() if la.name == "Dense_MatMul_0")
    res, w = layer.get_output_variable().type.precision, layer.weights["weight"].type.precision
    assert (res.width, res.integer, w.width, w.integer) == (9, 4, 5, 2)
    assert "override Dense_MatMul_0.result = fixed<9,4>" in applied


def test_override_of_a_missing_type_is_named(tmp_path):
    with pytest.raises(TriggerKDError, match="global_in has no accum"):
        _convert(tg.dense(), tmp_path, layer_precision={"global_in": {"accum": "fixed<9,4>"}})
