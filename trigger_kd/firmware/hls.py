"""QONNX -> hls4ml project with the exactness rules of ``rules.py`` (listed in ``hls_rules.json``)."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..atomic import write_text_atomic
from ..config import HLSConfig
from ..errors import TriggerKDError
from .rules import input_precision, pooling_precision, with_exactness_flow

class FirmwareError(TriggerKDError):
    """The hls4ml project could not be built as configured."""


def check_ops(model_wrapper, source: Path, original=None) -> None:
    """Refuse, naming the node, an op hls4ml's ONNX frontend has no handler for (``original``: the graph before cleanup)."""
    import hls4ml

    supported = set(hls4ml.converters.get_supported_onnx_layers())
    for node in model_wrapper.graph.node:
        if node.op_type not in supported:
            name = next((n.name for n in (original or model_wrapper).graph.node if n.op_type == node.op_type), node.name)
            raise FirmwareError(
                f"{source}: node '{name}' uses op {node.op_type}, which the hls4ml {hls4ml.__version__} ONNX frontend "
                f"does not convert (checked after qonnx cleanup; supported: {', '.join(sorted(supported))})")


def convert_qonnx(onnx_path: Path, prj_dir: Path, settings: HLSConfig, n_particles: int | None = None,
                  input_format=None):
    """Convert (not compile) a cleaned QONNX graph; returns (hls_model, rules applied).

    ``input_format``: (FixedFormat, why) for a model whose input no power-of-two Quant node reads.
    """
    import hls4ml
    from qonnx.core.modelwrapper import ModelWrapper

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise FirmwareError(f"{onnx_path}: QONNX file not found")
    mw = ModelWrapper(str(onnx_path))
    if input_format is None:
        check_ops(mw, onnx_path)
    with contextlib.redirect_stdout(io.StringIO()):
        config = hls4ml.utils.config.config_from_onnx_model(
            mw, granularity="name", backend=settings.backend, default_precision="fixed<16,6>",
            default_reuse_factor=settings.reuse_factor)
        config["Model"].update(Strategy=settings.strategy, ReuseFactor=settings.reuse_factor)
        layers = config["LayerName"]
        rules = [input_precision(mw, layers, onnx_path, input_format)] + pooling_precision(mw, layers, onnx_path, n_particles)
        for layer_config in layers.values():
            layer_config["Trace"] = True
        with_exactness_flow(config, settings.backend, settings.layer_precision)
        hls_model = hls4ml.converters.convert_from_onnx_model(
            mw, output_dir=str(prj_dir), project_name="myproject", backend=settings.backend, part=settings.part,
            clock_period=settings.clock_period, io_type=settings.io_type, hls_config=config)
    names = [layer.name for layer in hls_model.get_layers()]
    bad = [k for k in settings.layer_precision if k not in names]
    if bad:
        raise FirmwareError(f"hls.layer_precision names layer(s) {bad} not in the hls4ml model; layers: {', '.join(names)}")
    return hls_model, rules + hls_model.config.config["HLSConfig"]["Model"]["TriggerKD"]["applied"]


def build_hls_from_qonnx(onnx_path: Path, prj_dir: Path, settings: HLSConfig, n_particles: int | None = None,
                         record_dir: Path | None = None):
    """Convert, write and compile (g++) the hls4ml project; record the rules in ``record_dir/hls_rules.json``
    (only where a ``record_dir`` is given: nothing is written outside the directories the caller names)."""
    hls_model, rules = convert_qonnx(onnx_path, prj_dir, settings, n_particles)
    compile_model(hls_model)
    if record_dir is not None:
        write_text_atomic(Path(record_dir) / "hls_rules.json", json.dumps({"rules": rules}, indent=2))
    return hls_model


def compile_model(hls_model) -> None:
    import shutil

    if shutil.which("g++") is None:
        raise FirmwareError("g++ not found: the C-simulation library is compiled with g++ (apt-get install g++)")
    with contextlib.redirect_stdout(io.StringIO()) as buf:
        try:
            hls_model.compile()
        except Exception as exc:
            errors = [line for line in buf.getvalue().splitlines() if "error" in line.lower()][:6]
            raise FirmwareError(f"g++ could not compile the hls4ml project ({exc}); first errors:\n"
                                + "\n".join(errors or buf.getvalue().splitlines()[-6:])) from exc


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
def reference_tensors(onnx_path: Path, x: np.ndarray, keep: set[str] | None = None) -> dict[str, np.ndarray]:
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
            if (keep is None or k in keep) and k not in params and not k.endswith(("_param0", "_param1", "_param2", "_param3")):
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
