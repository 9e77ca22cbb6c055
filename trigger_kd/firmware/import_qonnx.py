"""`trigger-kd import-qonnx`: firmware and a parity report for a QONNX model trained elsewhere.

The model gets the same cleanup and precision rules as our own students, an hls4ml project
compiled with g++, and ``parity.json`` comparing C-simulation with QONNX execution (qonnx's
reference executor) on the given inputs or on N random inputs on the firmware's input grid.
Layers hls4ml implements approximately by design (lookup-table Softmax, Sigmoid, Tanh) are
listed; exactness is then measured at the last exactly-implemented layer, and the final
output gets its max |diff| and argmax agreement.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..atomic import atomic_path, write_text_atomic
from ..config import HLSConfig
from ..console import info
from ..errors import TriggerKDError
from ..fixedpoint import FixedFormat
from .hls import FirmwareError, build_hls_from_qonnx, check_ops, first_mismatch_layer, hls_predict, reference_tensors
from .parity import compare_fixed
from .qonnx_export import clean_qonnx, execute_qonnx
from .rules import first_input_quant

APPROXIMATE_OPS = {"Softmax": "lookup-table softmax", "Sigmoid": "lookup-table sigmoid", "Tanh": "lookup-table tanh"}


def _lsb_of(precision) -> float:
    width = int(precision.width)
    integer = int(precision.integer)
    return 2.0 ** -(width - integer)


def import_qonnx(model_path: Path, run_dir: Path, settings: HLSConfig, inputs: np.ndarray | None = None,
                 n: int = 1000, seed: int = 0) -> dict:
    from qonnx.core.modelwrapper import ModelWrapper

    model_path, run_dir = Path(model_path), Path(run_dir)
    if not model_path.is_file():
        raise TriggerKDError(f"{model_path}: file not found (expected a QONNX .onnx model)")
    try:
        mw = ModelWrapper(str(model_path))
    except Exception as exc:
        raise TriggerKDError(f"{model_path}: not a readable ONNX model ({exc})") from exc
    check_ops(mw, model_path)
    run_dir.mkdir(parents=True, exist_ok=True)
    in_shape = [d.dim_value for d in mw.graph.input[0].type.tensor_type.shape.dim]
    channels_last = len(in_shape) == 3 and any(nd.op_type == "Conv" for nd in mw.graph.node)
    clean = clean_qonnx(mw, channels_last)
    clean_path = run_dir / "model_clean.onnx"
    with atomic_path(clean_path) as tmp:
        clean.save(str(tmp))
    q0 = first_input_quant(clean)
    if q0 is None:
        raise FirmwareError(f"{model_path}: the input is not quantised (no Quant node reads it)")
    fmt = FixedFormat.from_quant(clean, q0)
    clean_shape = tuple(d.dim_value for d in clean.graph.input[0].type.tensor_type.shape.dim)[1:]

    if inputs is None:
        x = fmt.grid(np.random.default_rng(seed), (n, *clean_shape))
        input_source = f"{n} random inputs on the input grid {fmt.hls} (seed {seed})"
    else:
        x = np.asarray(inputs, dtype=np.float64)
        if channels_last and x.ndim == 3:
            x = np.ascontiguousarray(x.transpose(0, 2, 1))
        if tuple(x.shape[1:]) != clean_shape:
            raise TriggerKDError(f"--inputs has rows of shape {tuple(x.shape[1:])}, the model takes {clean_shape}")
        input_source = f"{len(x)} given inputs"

    approx = [(nd.name, nd.op_type) for nd in clean.graph.node if nd.op_type in APPROXIMATE_OPS]
    hls_model = build_hls_from_qonnx(clean_path, run_dir / "hls4ml_prj", settings)
    info(f"[import-qonnx] C-simulation of {len(x)} inputs")
    csim = hls_predict(hls_model, x, progress=True)
    ref_out = execute_qonnx(clean, x).reshape(len(x), -1)
    layers = [layer for layer in hls_model.get_layers() if layer.class_name != "Input"]
    result: dict = {"model": str(model_path), "n_jets": int(len(x)), "inputs": input_source,
                    "source": f"hls4ml C-simulation (g++), {settings.backend} backend",
                    "compared_with": "qonnx execution of the cleaned graph",
                    "approximate_layers": [{"node": nm, "op": op, "why": APPROXIMATE_OPS[op]} for nm, op in approx]}
    if approx:
        first_approx = next(i for i, layer in enumerate(layers) if layer.class_name in ("Softmax", "Activation")
                            and layer.get_attr("activation", "").lower() in ("softmax", "sigmoid", "tanh"))
        at = layers[first_approx - 1]
        _, trace = hls_model.trace(np.ascontiguousarray(x))
        got = np.asarray(trace[at.name], dtype=np.float64).reshape(len(x), -1)
        approx_node = next(nd for nd in clean.graph.node if nd.name == approx[0][0])
        want = reference_tensors(clean_path, x)[approx_node.input[0]]
        cmp = compare_fixed(got, want, _lsb_of(at.get_output_variable().type.precision))
        result.update(cmp)
        result["compared_at"] = at.name
        result["output_max_abs_diff"] = float(np.max(np.abs(csim - ref_out))) if len(x) else 0.0
        result["argmax_agreement"] = float(np.mean(csim.argmax(1) == ref_out.argmax(1))) if len(x) else None
    else:
        out_layer = layers[-1]
        result.update(compare_fixed(csim, ref_out, _lsb_of(out_layer.get_output_variable().type.precision)))
        result["compared_at"] = "output"
    result["first_mismatch_layer"] = None
    if result["bit_exact_fraction"] < 1.0:
        bad = result["first_mismatched_jets"]
        result["first_mismatch_layer"] = first_mismatch_layer(hls_model, clean_path, x[bad])
    write_text_atomic(run_dir / "parity.json", json.dumps(result, indent=2, default=float))
    info(f"[import-qonnx] bit-exact on {result['bit_exact_fraction'] * 100:.3f} % of {len(x)} inputs "
         f"(at {result['compared_at']}); report {run_dir / 'parity.json'}")
    return result
