"""QONNX -> hls4ml project, with the precision rules that make C-simulation bit-exact.

Rules (measured, see TOOLCHAIN_FACTS), applied automatically:
1. the model input's precision is the first Quant node's type (``fixed<b,i,RND_CONV,SAT>``),
   not hls4ml's default, which would round twice;
2. global average pooling gets accumulator/result types wide enough to hold the exact
   mean of its inputs over the particle count (hls4ml does not infer them);
3. the Transpose qonnx's channels-last conversion leaves in front of the pooling is removed
   (hls4ml would otherwise read the wrong layout).
Per-layer overrides from ``hls.layer_precision`` are applied last, so a user can change any
type (and the parity check will say when that breaks exactness).
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..config import HLSConfig
from ..errors import TriggerKDError

SUPPORTED_OPS = {"Quant", "MatMul", "Add", "Relu", "Conv", "GlobalAveragePool", "Transpose", "Reshape",
                 "Flatten", "Gemm", "Mul", "Sub", "BatchNormalization", "Softmax", "Sigmoid", "Identity",
                 "Concat", "MaxPool", "AveragePool", "BipolarQuant", "Squeeze", "Unsqueeze", "Tanh",
                 "LeakyRelu", "Clip", "Div", "Neg", "Abs", "Max", "Min"}


class FirmwareError(TriggerKDError):
    """The hls4ml project could not be built as configured."""


# ----------------------------------------------------------------------------- QONNX inspection
def quant_format(model_wrapper, node) -> dict:
    """Fixed-point format of a QONNX Quant node with a power-of-two scale and zero offset."""
    scale = np.asarray(model_wrapper.get_initializer(node.input[1]))
    zeropt = np.asarray(model_wrapper.get_initializer(node.input[2]))
    bits = model_wrapper.get_initializer(node.input[3])
    if scale is None or bits is None or scale.size == 0:
        raise FirmwareError(f"Quant node {node.name}: scale or bit width is not a constant")
    attrs = {a.name: a for a in node.attribute}
    signed = bool(attrs["signed"].i) if "signed" in attrs else True
    narrow = bool(attrs["narrow"].i) if "narrow" in attrs else False
    rounding = attrs["rounding_mode"].s.decode() if "rounding_mode" in attrs else "ROUND"
    s = float(np.max(scale))
    frac = -math.log2(s)
    pow2 = bool(np.all(scale == s)) and abs(frac - round(frac)) < 1e-9 and bool(np.all(zeropt == 0))
    b = int(np.max(bits))
    frac = int(round(frac)) if pow2 else None
    return {"node": node.name, "signed": signed, "narrow": narrow, "bits": b, "frac_bits": frac, "power_of_two": pow2,
            "rounding": rounding, "scale": s}


def hls_type(fmt: dict, rounding: bool = True) -> str:
    """ap_fixed type string of a Quant format (integer bits include the sign)."""
    base = "fixed" if fmt["signed"] else "ufixed"
    mode = {"ROUND": "RND_CONV", "FLOOR": "TRN", "ROUND_TO_ZERO": "TRN_ZERO"}.get(fmt["rounding"], "RND_CONV")
    t = f"{base}<{fmt['bits']},{fmt['bits'] - fmt['frac_bits']}"
    return t + (f",{mode},SAT>" if rounding else ">")


def first_input_quant(model_wrapper):
    """The Quant node that reads the graph input (the input quantiser)."""
    iname = model_wrapper.graph.input[0].name
    for node in model_wrapper.graph.node:
        if node.op_type == "Quant" and node.input[0] == iname:
            return node
    return None


def check_ops(model_wrapper, source: Path) -> None:
    for node in model_wrapper.graph.node:
        if node.op_type not in SUPPORTED_OPS:
            raise FirmwareError(
                f"{source}: node '{node.name}' uses op {node.op_type}, which the hls4ml QONNX frontend "
                f"does not convert (supported: {', '.join(sorted(SUPPORTED_OPS))})")


def pool_precision(in_fmt: dict, n: int) -> str:
    """A signed type holding the sum and the exact mean of ``n`` values of ``in_fmt`` (n a power of two)."""
    k = int(math.ceil(math.log2(max(n, 1))))
    int_bits = (in_fmt["bits"] - in_fmt["frac_bits"]) + k + 1
    frac = in_fmt["frac_bits"] + k
    return f"fixed<{int_bits + frac},{int_bits}>"


def _quant_before(model_wrapper, tensor: str):
    """Walk back through layout-only nodes to the Quant node producing ``tensor``."""
    node = model_wrapper.find_producer(tensor)
    while node is not None and node.op_type in ("Transpose", "Reshape", "Flatten", "Identity", "Relu"):
        node = model_wrapper.find_producer(node.input[0])
    return node if node is not None and node.op_type == "Quant" else None


# ----------------------------------------------------------------------------- config
def hls_config_for(model_wrapper, settings: HLSConfig, source: Path, n_particles: int | None = None) -> tuple[dict, list[str]]:
    """hls4ml config with the exactness rules applied; also the list of rules applied (for the record)."""
    import hls4ml

    check_ops(model_wrapper, source)
    with contextlib.redirect_stdout(io.StringIO()):
        config = hls4ml.utils.config.config_from_onnx_model(
            model_wrapper, granularity="name", backend=settings.backend, default_precision="fixed<16,6>",
            default_reuse_factor=settings.reuse_factor)
    config["Model"]["Strategy"] = settings.strategy
    config["Model"]["ReuseFactor"] = settings.reuse_factor
    rules = []
    layers = config["LayerName"]
    iname = model_wrapper.graph.input[0].name
    q0 = first_input_quant(model_wrapper)
    if q0 is None:
        raise FirmwareError(
            f"{source}: the graph input '{iname}' is not quantised (no Quant node reads it). Add an input "
            "quantiser (e.g. brevitas QuantIdentity) so the firmware input type is defined.")
    fmt = quant_format(model_wrapper, q0)
    if not fmt["power_of_two"]:
        raise FirmwareError(
            f"{source}: input quantiser {q0.name} has scale {fmt['scale']} (not a power of two with zero offset); "
            "only power-of-two fixed-point quantisers map exactly onto ap_fixed types")
    layers.setdefault(iname, {}).setdefault("Precision", {})["result"] = hls_type(fmt)
    rules.append(f"input {iname}: {hls_type(fmt)} (type of {q0.name})")
    for node in model_wrapper.graph.node:
        if node.op_type == "GlobalAveragePool":
            q = _quant_before(model_wrapper, node.input[0])
            shape = model_wrapper.get_tensor_shape(node.input[0])
            n = n_particles or (int(np.prod(shape[2:])) if shape and len(shape) > 2 else None)
            if q is None or n is None:
                raise FirmwareError(f"{source}: cannot size the pooling {node.name}: no Quant node feeds it")
            qf = quant_format(model_wrapper, q)
            t = pool_precision(qf, n)
            layers.setdefault(node.name, {})["Precision"] = {"accum": t, "result": t}
            rules.append(f"pooling {node.name}: accum/result {t} (mean of {n} x {hls_type(qf, rounding=False)}, exact)")
    for name in layers:
        layers[name]["Trace"] = True
    return config, rules


def apply_overrides(hls_model_config: dict, overrides: dict, valid: list[str]) -> None:
    for layer, precs in overrides.items():
        if layer not in valid:
            raise FirmwareError(
                f"hls.layer_precision names layer '{layer}', which is not in the hls4ml model; "
                f"layers: {', '.join(valid)}")
        entry = hls_model_config.setdefault(layer, {}).setdefault("Precision", {})
        if not isinstance(entry, dict):
            entry = hls_model_config[layer]["Precision"] = {"result": entry}
        for key, value in precs.items():
            entry[key] = value


# ----------------------------------------------------------------------------- build
def _remove_pool_transposes(hls_model) -> list[str]:
    """Drop the Transpose qonnx leaves before GlobalAveragePooling (hls4ml pools channels-last already)."""
    removed = []
    for layer in list(hls_model.get_layers()):
        if layer.class_name == "Transpose":
            nxt = [n for n in hls_model.get_layers() if layer.outputs[0] in n.inputs]
            if nxt and all("GlobalPooling" in n.class_name for n in nxt):
                hls_model.remove_node(layer)
                removed.append(layer.name)
    return removed


def convert_qonnx(onnx_path: Path, prj_dir: Path, settings: HLSConfig, n_particles: int | None = None):
    """Convert (not compile) a cleaned QONNX graph; returns (hls_model, rules applied)."""
    import hls4ml
    from qonnx.core.modelwrapper import ModelWrapper

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise FirmwareError(f"{onnx_path}: QONNX file not found")
    mw = ModelWrapper(str(onnx_path))
    config, rules = hls_config_for(mw, settings, onnx_path, n_particles)
    with contextlib.redirect_stdout(io.StringIO()):
        hls_model = hls4ml.converters.convert_from_onnx_model(
            mw, output_dir=str(prj_dir), project_name="myproject", backend=settings.backend, part=settings.part,
            clock_period=settings.clock_period, io_type=settings.io_type, hls_config=config)
    removed = _remove_pool_transposes(hls_model)
    rules += [f"removed {r} before global pooling" for r in removed]
    if settings.layer_precision:
        names = [layer.name for layer in hls_model.get_layers()]
        bad = [k for k in settings.layer_precision if k not in names]
        if bad:
            raise FirmwareError(f"hls.layer_precision names layer(s) {bad} not in the hls4ml model; layers: {', '.join(names)}")
        for layer in hls_model.get_layers():
            for key, value in settings.layer_precision.get(layer.name, {}).items():
                _set_layer_type(layer, key, value)
                rules.append(f"override {layer.name}.{key} = {value}")
    if removed or settings.layer_precision:
        # the C++ calls and layer configs were generated before these edits: regenerate them
        hls_model.apply_flow(f"{settings.backend.lower()}:apply_templates", reapply="single")
    return hls_model, rules


def _set_layer_type(layer, key: str, value: str) -> None:
    """Change one type of a converted layer in place (backend types keep their C++ definitions)."""
    from hls4ml.backends.fpga.fpga_types import APTypeConverter

    precision = APTypeConverter().convert(layer.model.config.backend.convert_precision_string(value))
    if key == "result":
        layer.get_output_variable().type.precision = precision
    elif key in ("weight", "bias"):
        w = layer.weights.get(key)
        if w is None:
            raise FirmwareError(f"hls.layer_precision: layer {layer.name} has no {key}")
        w.update_precision(precision)
    elif key == "accum":
        t = layer.get_attr("accum_t")
        if t is None:
            raise FirmwareError(f"hls.layer_precision: layer {layer.name} has no accumulator")
        t.precision = precision
    else:
        raise FirmwareError(f"hls.layer_precision key '{key}' for layer {layer.name}: use result, accum, weight or bias")


def build_hls_from_qonnx(onnx_path: Path, prj_dir: Path, settings: HLSConfig, n_particles: int | None = None):
    """Convert, write and compile (g++) the hls4ml project; record the rules in ``hls_rules.json``."""
    hls_model, rules = convert_qonnx(onnx_path, prj_dir, settings, n_particles)
    compile_model(hls_model)
    (Path(prj_dir).parent / "hls_rules.json").write_text(json.dumps({"rules": rules}, indent=2))
    return hls_model


def compile_model(hls_model) -> None:
    import shutil

    if shutil.which("g++") is None:
        raise FirmwareError("g++ not found: the C-simulation library is compiled with g++ (apt-get install g++)")
    with contextlib.redirect_stdout(io.StringIO()) as buf:
        try:
            hls_model.compile()
        except Exception as exc:
            raise FirmwareError(f"compiling the hls4ml project failed: {exc}\n{buf.getvalue()[-2000:]}") from exc


def hls_predict(hls_model, x: np.ndarray, progress: bool = True, chunk: int = 2048) -> np.ndarray:
    """C-simulation of every row (float64 outputs, exact ap_fixed values)."""
    outs = []
    x = np.ascontiguousarray(x, dtype=np.float64)
    with tqdm(total=len(x), desc="C-simulation", unit="jet", disable=not progress, leave=False) as bar:
        for i in range(0, len(x), chunk):
            y = np.asarray(hls_model.predict(x[i:i + chunk]), dtype=np.float64)
            outs.append(y.reshape(len(x[i:i + chunk]), -1))
            bar.update(len(outs[-1]))
    return np.concatenate(outs) if outs else np.zeros((0, 2))


# ----------------------------------------------------------------------------- diagnosis
def reference_tensors(onnx_path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every intermediate tensor of QONNX execution on the rows of ``x``: name -> (rows, -1)."""
    import onnxruntime
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    onnxruntime.set_default_logger_severity(3)
    mw = ModelWrapper(str(onnx_path))
    iname = mw.graph.input[0].name
    params = {i.name for i in mw.graph.initializer}
    ref: dict[str, list] = {}
    for row in np.asarray(x):
        ctx = execute_onnx(mw, {iname: row[None].astype(np.float32)}, return_full_exec_context=True)
        for k, v in ctx.items():
            if k not in params and not k.endswith(("_param0", "_param1", "_param2", "_param3")):
                v = np.asarray(v)
                ref.setdefault(k, []).append(v)
                if v.ndim == 3:  # the same tensor in the other layout
                    ref.setdefault(k + "^T", []).append(v.transpose(0, 2, 1))
    return {k: np.concatenate([a.reshape(1, -1) for a in v]).astype(np.float64) for k, v in ref.items()}


def first_mismatch_layer(hls_model, onnx_path: Path, x: np.ndarray) -> str | None:
    """First hls4ml layer (in graph order) whose traced output equals no tensor of QONNX execution.

    hls4ml fuses nodes (MatMul+Add -> Dense, Relu+Quant -> Activation), so layers are matched
    by value, not by name: in an exact design every layer's output is one of the QONNX tensors.
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    if len(x) == 0:
        return None
    with contextlib.redirect_stdout(io.StringIO()):
        _, trace = hls_model.trace(x)
    ref = list(reference_tensors(onnx_path, x).values())
    for layer in hls_model.get_layers():
        if layer.class_name == "Input" or layer.name not in trace:
            continue
        got = np.asarray(trace[layer.name], dtype=np.float64).reshape(len(x), -1)
        if not any(r.shape == got.shape and np.array_equal(r, got) for r in ref):
            return layer.name
    return None
