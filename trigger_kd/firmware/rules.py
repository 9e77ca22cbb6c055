"""The QONNX exactness rules, each a small named transformation (measured on hls4ml 1.3.0, see TOOLCHAIN_FACTS).

Config rules, pure functions (QONNX graph -> hls4ml config entries) returning their ``hls_rules.json`` line:
- ``input_precision``: the model input takes the first Quant node's type (``fixed<b,i,RND_CONV,SAT>``),
  not hls4ml's default, which would round twice;
- ``pooling_precision``: global average pooling gets accumulator/result types holding the exact
  mean over its inputs (``FixedFormat.pool``; hls4ml does not infer them).
hls4ml optimizer pass of the QONNX front end, run in its flow ``trigger_kd:exactness_qonnx`` (after type
inference, before templates and before the shared ``LayerPrecisionOverrides`` of ``hls_config.py``):
- ``RemoveTransposeBeforeGlobalPooling``: the Transpose qonnx's channels-last conversion leaves
  before the pooling (hls4ml pools channels-last already; it would read the wrong layout).
"""
from __future__ import annotations

import numpy as np
from hls4ml.model.optimizer import OptimizerPass

from ..errors import TriggerKDError
from ..fixedpoint import FixedFormat
from .hls_config import record_applied, set_input_precision, set_pooling_precision

_LAYOUT_OPS = ("Transpose", "Reshape", "Flatten", "Identity", "Relu")


def first_input_quant(model_wrapper):
    """The Quant node that reads the graph input (the input quantiser)."""
    iname = model_wrapper.graph.input[0].name
    return next((n for n in model_wrapper.graph.node if n.op_type == "Quant" and n.input[0] == iname), None)


def input_type(model_wrapper, source, given: tuple[FixedFormat, str] | None = None) -> tuple[str, str, str]:
    """(graph input name, its firmware type: the first Quant node's type or ``given`` (type, why), why)."""
    iname = model_wrapper.graph.input[0].name
    q0 = first_input_quant(model_wrapper)
    if given is None and q0 is None:
        raise TriggerKDError(
            f"{source}: the graph input '{iname}' is not quantised (no Quant node reads it). Add an input "
            "quantiser (e.g. brevitas QuantIdentity) so the firmware input type is defined.")
    fmt, why = given or (FixedFormat.from_quant(model_wrapper, q0), f"type of {q0.name}")
    return iname, fmt.hls, why


def input_precision(model_wrapper, layers: dict, source, given: tuple[FixedFormat, str] | None = None) -> str:
    """The model input takes the first Quant node's type, or ``given`` (type, why) for an unquantised input."""
    return set_input_precision(layers, *input_type(model_wrapper, source, given))


def _quant_before(model_wrapper, tensor: str):
    """Walk back through layout-only nodes to the Quant node producing ``tensor``."""
    node = model_wrapper.find_producer(tensor)
    while node is not None and node.op_type in _LAYOUT_OPS:
        node = model_wrapper.find_producer(node.input[0])
    return node if node is not None and node.op_type == "Quant" else None


def pooling_precision(model_wrapper, layers: dict, source, n_particles: int | None = None) -> list[str]:
    rules = []
    for node in (n for n in model_wrapper.graph.node if n.op_type == "GlobalAveragePool"):
        q = _quant_before(model_wrapper, node.input[0])
        shape = model_wrapper.get_tensor_shape(node.input[0])
        n = n_particles or (int(np.prod(shape[2:])) if shape and len(shape) > 2 else None)
        if q is None or n is None:
            raise TriggerKDError(f"{source}: cannot size the pooling {node.name}: no Quant node feeds it")
        rules.append(set_pooling_precision(layers, node.name, FixedFormat.from_quant(model_wrapper, q), n))
    return rules


# ----------------------------------------------------------------------------- hls4ml passes
class RemoveTransposeBeforeGlobalPooling(OptimizerPass):
    name = "trigger_kd_remove_transpose_before_global_pooling"

    def match(self, node):
        if node.class_name != "Transpose":
            return False
        nxt = [n for n in node.model.get_layers() if node.outputs[0] in n.inputs]
        return bool(nxt) and all("GlobalPooling" in n.class_name for n in nxt)

    def transform(self, model, node):
        model.remove_node(node)
        record_applied(model, f"removed {node.name} before global pooling")
        return True
