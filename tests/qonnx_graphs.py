"""Tiny hand-built QONNX graphs for the firmware-rule tests (a few nodes each, no training)."""
from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.util.cleanup import cleanup_model


def quant(name: str, inp: str, out: str, scale, bits: int, signed: bool = True, narrow: bool = False,
          rounding: str | None = "ROUND") -> tuple[object, list]:
    """A QONNX Quant node and its constant scale / zero point / bit width."""
    inits = [numpy_helper.from_array(np.asarray(scale, dtype=np.float32), f"{name}_s"),
             numpy_helper.from_array(np.zeros_like(np.asarray(scale, dtype=np.float32)), f"{name}_z"),
             numpy_helper.from_array(np.asarray(float(bits), dtype=np.float32), f"{name}_b")]
    attrs = {"signed": int(signed), "narrow": int(narrow)} | ({"rounding_mode": rounding} if rounding else {})
    node = helper.make_node("Quant", [inp, f"{name}_s", f"{name}_z", f"{name}_b"], [out], name=name,
                            domain="qonnx.custom_op.general", **attrs)
    return node, inits


def graph(nodes: list, inits: list, in_shape: list, out_shape: list, extra_inits=()) -> ModelWrapper:
    g = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], list(inits) + list(extra_inits))
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("qonnx.custom_op.general", 1)])
    model.ir_version = 8
    return cleanup_model(ModelWrapper(model))


def dense(in_scale=0.125, n_in=4, n_out=3, seed=0, **quant_kw) -> ModelWrapper:
    """x -> Quant -> MatMul (weights on a 2^-2 grid) -> y."""
    q, inits = quant("Quant_in", "x", "xq", in_scale, 8, **quant_kw)
    w = np.random.default_rng(seed).integers(-4, 4, (n_in, n_out)).astype(np.float32) / 4
    mm = helper.make_node("MatMul", ["xq", "W"], ["y"], name="MatMul_0")
    return graph([q, mm], inits, [1, n_in], [1, n_out], [numpy_helper.from_array(w, "W")])


def pooled(n: int = 8, c: int = 3) -> ModelWrapper:
    """Channels-last (1, n, c) -> Quant -> Relu -> Quant (unsigned 6 bits, 2^-3) -> Transpose -> GlobalAveragePool -> Flatten."""
    q0, i0 = quant("Quant_in", "x", "xq", 0.125, 8)
    relu = helper.make_node("Relu", ["xq"], ["r"], name="Relu_0")
    q1, i1 = quant("Quant_act", "r", "rq", 0.125, 6, signed=False)
    tr = helper.make_node("Transpose", ["rq"], ["t"], name="Transpose_0", perm=[0, 2, 1])
    gap = helper.make_node("GlobalAveragePool", ["t"], ["p"], name="GlobalAveragePool_0")
    fl = helper.make_node("Flatten", ["p"], ["y"], name="Flatten_0")
    return graph([q0, relu, q1, tr, gap, fl], i0 + i1, [1, n, c], [1, c])
