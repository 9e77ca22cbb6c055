"""Brevitas student -> QONNX (raw) -> qonnx cleanup (clean), checked by executing both graphs.

Export uses ``brevitas.export.export_qonnx`` with the TorchScript exporter (``dynamo=False``:
clean graphs in under a second; the dynamo path breaks qonnx's GemmToMatMul, see
TOOLCHAIN_FACTS). Cleanup: qonnx ``cleanup_model``, channels-last conversion for the
conv-form deep set (its input becomes (N, P, F)), ``GemmToMatMul``, cleanup again.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_path
from ..errors import TriggerKDError


def clean_qonnx(model_wrapper, channels_last: bool):
    """qonnx cleanup (+ channels-last for conv graphs) + GemmToMatMul, as hls4ml expects."""
    from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
    from qonnx.transformation.gemm_to_matmul import GemmToMatMul
    from qonnx.util.cleanup import cleanup_model

    m = cleanup_model(model_wrapper)
    if channels_last:
        m = m.transform(ConvertToChannelsLastAndClean(make_input_channels_last=True))
    m = m.transform(GemmToMatMul())
    return cleanup_model(m)


def execute_qonnx(model_wrapper, x: np.ndarray) -> np.ndarray:
    """Run a QONNX graph (exported for one row) on every row with qonnx's reference executor."""
    import onnxruntime
    from qonnx.core.onnx_exec import execute_onnx

    onnxruntime.set_default_logger_severity(3)  # qonnx runs single-node opset-1 models: silence the warnings
    iname = model_wrapper.graph.input[0].name
    oname = model_wrapper.graph.output[0].name
    outs = [execute_onnx(model_wrapper, {iname: np.ascontiguousarray(row[None], dtype=np.float32)})[oname]
            for row in x]
    if not outs:  # no rows: as many columns as the graph has outputs (K)
        dims = model_wrapper.get_tensor_shape(oname) or [1, 0]
        return np.zeros((0, int(np.prod(dims[1:]))))
    return np.concatenate(outs).astype(np.float64).reshape(len(x), -1)


def export_student(model: torch.nn.Module, x: np.ndarray, x_clean: np.ndarray, out_dir: Path) -> dict:
    """Export the quantised student; return paths and the execution check on ``x`` (the student's
    inputs) and ``x_clean`` (the same jets as the cleaned, channels-last graph takes them).
    """
    from brevitas.export import export_qonnx
    from qonnx.core.modelwrapper import ModelWrapper

    out_dir = Path(out_dir)
    raw, clean = out_dir / "model_raw.onnx", out_dir / "model_clean.onnx"
    model.eval()
    example = torch.from_numpy(np.ascontiguousarray(x[:1], dtype=np.float32))
    try:
        with atomic_path(raw) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_qonnx(model, example, export_path=str(tmp), dynamo=False)
    except Exception as exc:  # brevitas raises many types; say which model failed and why
        raise TriggerKDError(f"Brevitas QONNX export failed for the {model.spec.arch} student: {exc}") from exc
    raw_model = ModelWrapper(str(raw))
    cleaned = clean_qonnx(raw_model, channels_last=any(n.op_type == "Conv" for n in raw_model.graph.node))
    with atomic_path(clean) as tmp:
        cleaned.save(str(tmp))

    with torch.no_grad():
        ref = model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).double().numpy()
    from qonnx.transformation.infer_shapes import InferShapes

    got_raw = execute_qonnx(ModelWrapper(str(raw)).transform(InferShapes()), x)
    got_clean = execute_qonnx(ModelWrapper(str(clean)), x_clean)
    diff_raw = float(np.max(np.abs(got_raw - ref))) if len(x) else 0.0
    diff_clean = float(np.max(np.abs(got_clean - ref))) if len(x) else 0.0
    # float32 execution of exact fixed-point values: agreement must be exact on the output grid
    check = {"n_jets": int(len(x)), "max_abs_diff": max(diff_raw, diff_clean), "max_abs_diff_raw": diff_raw,
             "max_abs_diff_clean": diff_clean, "exact": diff_raw == 0.0 and diff_clean == 0.0}
    return {"raw": str(raw), "clean": str(clean), "check": check, "input_name": cleaned.graph.input[0].name,
            "input_shape": [d.dim_value for d in cleaned.graph.input[0].type.tensor_type.shape.dim]}
