"""The exactness rules, each a small named transformation (measured on hls4ml 1.3.0, see TOOLCHAIN_FACTS).

Config rules, pure functions (QONNX graph -> hls4ml config entries) returning their ``hls_rules.json`` line:
- ``input_precision``: the model input takes the first Quant node's type (``fixed<b,i,RND_CONV,SAT>``),
  not hls4ml's default, which would round twice;
- ``pooling_precision``: global average pooling gets accumulator/result types holding the exact
  mean over its inputs (``FixedFormat.pool``; hls4ml does not infer them).
hls4ml optimizer passes in the flow ``trigger_kd:exactness`` (after type inference, before templates):
- ``RemoveTransposeBeforeGlobalPooling``: the Transpose qonnx's channels-last conversion leaves
  before the pooling (hls4ml pools channels-last already; it would read the wrong layout);
- ``LayerPrecisionOverrides``: ``hls.layer_precision``, applied last so a user can change any type.
"""
from __future__ import annotations

import numpy as np
from hls4ml.model.optimizer import OptimizerPass

from ..errors import TriggerKDError
from ..fixedpoint import FixedFormat

PRECISION_KEYS = ("result", "accum", "weight", "bias")
FLOW = "trigger_kd:exactness"
_LAYOUT_OPS = ("Transpose", "Reshape", "Flatten", "Identity", "Relu")


def first_input_quant(model_wrapper):
    """The Quant node that reads the graph input (the input quantiser)."""
    iname = model_wrapper.graph.input[0].name
    return next((n for n in model_wrapper.graph.node if n.op_type == "Quant" and n.input[0] == iname), None)


def input_precision(model_wrapper, layers: dict, source, given: tuple[FixedFormat, str] | None = None) -> str:
    """The model input takes the first Quant node's type, or ``given`` (type, why) for an unquantised input."""
    iname = model_wrapper.graph.input[0].name
    q0 = first_input_quant(model_wrapper)
    if given is None and q0 is None:
        raise TriggerKDError(
            f"{source}: the graph input '{iname}' is not quantised (no Quant node reads it). Add an input "
            "quantiser (e.g. brevitas QuantIdentity) so the firmware input type is defined.")
    fmt, why = given or (FixedFormat.from_quant(model_wrapper, q0), f"type of {q0.name}")
    layers.setdefault(iname, {}).setdefault("Precision", {})["result"] = fmt.hls
    return f"input {iname}: {fmt.hls} ({why})"


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
        qf = FixedFormat.from_quant(model_wrapper, q)
        t = qf.pool(n).hls_type
        layers.setdefault(node.name, {})["Precision"] = {"accum": t, "result": t}
        rules.append(f"pooling {node.name}: accum/result {t} (mean of {n} x {qf.hls_type}, exact)")
    return rules


def check_precision_keys(overrides: dict) -> None:
    for name, prec in (overrides or {}).items():
        bad = sorted(set(prec) - set(PRECISION_KEYS))
        if bad:
            raise TriggerKDError(f"hls.layer_precision.{name} has unknown keys {bad}; use {', '.join(PRECISION_KEYS)}")


# ----------------------------------------------------------------------------- hls4ml passes
def _kd(model) -> dict:
    return model.config.config["HLSConfig"]["Model"].setdefault("TriggerKD", {"layer_precision": {}, "applied": []})


class RemoveTransposeBeforeGlobalPooling(OptimizerPass):
    name = "trigger_kd_remove_transpose_before_global_pooling"

    def match(self, node):
        if node.class_name != "Transpose":
            return False
        nxt = [n for n in node.model.get_layers() if node.outputs[0] in n.inputs]
        return bool(nxt) and all("GlobalPooling" in n.class_name for n in nxt)

    def transform(self, model, node):
        model.remove_node(node)
        _kd(model)["applied"].append(f"removed {node.name} before global pooling")
        return True


class LayerPrecisionOverrides(OptimizerPass):
    name = "trigger_kd_layer_precision"

    def match(self, node):
        kd = _kd(node.model)
        return node.name in kd["layer_precision"] and not any(a.startswith(f"override {node.name}.") for a in kd["applied"])

    def transform(self, model, node):
        kd = _kd(model)
        for key, value in kd["layer_precision"][node.name].items():
            precision = model.config.backend.convert_precision_string(value)
            target = node.get_output_variable().type if key == "result" else (
                node.get_attr("accum_t") if key == "accum" else node.weights.get(key))
            if target is None:
                raise TriggerKDError(f"hls.layer_precision: layer {node.name} has no {key}")
            target.update_precision(precision) if key in ("weight", "bias") else setattr(target, "precision", precision)
            kd["applied"].append(f"override {node.name}.{key} = {value}")
        return False  # types only: the graph is unchanged


def with_exactness_flow(config: dict, backend: str, overrides: dict) -> dict:
    """Run ``trigger_kd:exactness`` (registered once, after ``vivado:optimize``) before the backend's default flow."""
    import hls4ml
    from hls4ml.model.flow.flow import flow_map, register_flow
    from hls4ml.model.optimizer import register_pass

    check_precision_keys(overrides)
    if FLOW not in flow_map:
        passes = (RemoveTransposeBeforeGlobalPooling, LayerPrecisionOverrides)
        for cls in passes:
            register_pass(cls.name, cls)
        register_flow(FLOW, [cls.name for cls in passes], requires=["vivado:optimize"])
    config["Flows"] = [FLOW, hls4ml.backends.get_backend(backend).get_default_flow()]
    config["Model"]["TriggerKD"] = {"layer_precision": {k: dict(v) for k, v in (overrides or {}).items()}, "applied": []}
    return config
