"""QONNX front end of the shared hls4ml path (``hls_config.py``), with the exactness rules of ``rules.py``
(listed in ``hls_rules.json``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..config import HLSConfig
from . import hls_config
from .hls_config import FirmwareError, FrontEnd, compile_model  # noqa: F401  (compile_model: re-exported)
from .rules import RemoveTransposeBeforeGlobalPooling, input_type, pooling_precision

# nodes that only move values: a layer's output is the tensor before them (hls4ml may have removed them,
# as it does the Transpose before pooling, or made them layers of their own)
_LAYOUT_OPS = ("Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze")


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


class QonnxFrontEnd(FrontEnd):
    """A cleaned QONNX graph (Brevitas export, or a model imported with ``import-qonnx``).

    ``input_format``: (FixedFormat, why) for a model whose input no power-of-two Quant node reads.
    """

    name = "QONNX"
    passes = (RemoveTransposeBeforeGlobalPooling,)

    def __init__(self, onnx_path: Path, n_particles: int | None = None, input_format=None):
        from qonnx.core.modelwrapper import ModelWrapper

        self.path = Path(onnx_path)
        if not self.path.is_file():
            raise FirmwareError(f"{self.path}: QONNX file not found")
        self.mw = ModelWrapper(str(self.path))
        self.n_particles, self.input_format = n_particles, input_format

    def hls4ml_config(self, settings: HLSConfig) -> dict:
        import hls4ml

        if self.input_format is None:  # import-qonnx checks the graph before cleanup itself, naming the original node
            check_ops(self.mw, self.path)
        return hls4ml.utils.config.config_from_onnx_model(
            self.mw, granularity="name", backend=settings.backend, default_precision="fixed<16,6>",
            default_reuse_factor=settings.reuse_factor)

    def input_precision(self, layers: dict) -> tuple[str, str, str]:
        return input_type(self.mw, self.path, self.input_format)

    def precision_rules(self, layers: dict) -> list[str]:
        return pooling_precision(self.mw, layers, self.path, self.n_particles)

    def convert(self, **kwargs):
        import hls4ml

        return hls4ml.converters.convert_from_onnx_model(self.mw, **kwargs)

    def layer_tensors(self, hls_model) -> dict[str, str]:
        """hls4ml layer name -> the QONNX tensor holding that layer's output.

        hls4ml names a layer's output after the first ONNX node it took in (MatMul+Add -> Dense writes
        ``MatMul_0_out0``; Relu+Quant -> Activation writes ``Relu_0_out0``). Its value is the tensor at
        the end of that run of nodes: follow single consumers until the node that starts the next
        hls4ml layer (it produces another layer's output), a layout-only node or a branch.
        """
        g = self.mw.graph
        known = {v.name for v in g.input} | {t for n in g.node for t in n.output}
        layer_outputs = {out for layer in hls_model.get_layers() for out in layer.outputs}
        tensors = {}
        for layer in hls_model.get_layers():
            if layer.class_name == "Input" or len(layer.outputs) != 1 or layer.outputs[0] not in known:
                continue
            t = layer.outputs[0]
            while True:
                nxt = self.mw.find_consumers(t) or []
                if len(nxt) != 1 or len(nxt[0].output) != 1 or nxt[0].op_type in _LAYOUT_OPS \
                        or nxt[0].output[0] in layer_outputs:
                    break
                t = nxt[0].output[0]
            tensors[layer.name] = t
        return tensors

    def reference_outputs(self, hls_model, x: np.ndarray) -> dict[str, np.ndarray]:
        """QONNX execution of each layer's tensor (``layer_tensors``); a layer hls4ml created itself, or whose
        tensor has another size than the layer's output, has none (``first_mismatch_layer`` skips it)."""
        tensors = self.layer_tensors(hls_model)
        ref = reference_tensors(self.path, x, keep=set(tensors.values()))
        sizes = {layer.name: int(np.prod(layer.get_output_variable().shape)) for layer in hls_model.get_layers()}
        return {name: ref[t] for name, t in tensors.items() if t in ref and ref[t].shape[1] == sizes[name]}


def convert_qonnx(onnx_path: Path, prj_dir: Path, settings: HLSConfig, n_particles: int | None = None,
                  input_format=None):
    """Convert (not compile) a cleaned QONNX graph; returns (hls_model, rules applied).

    ``input_format``: (FixedFormat, why) for a model whose input no power-of-two Quant node reads.
    """
    hls_model, rules, _ = hls_config.convert(QonnxFrontEnd(onnx_path, n_particles, input_format), prj_dir, settings)
    return hls_model, rules


def build_hls_from_qonnx(onnx_path: Path, prj_dir: Path, settings: HLSConfig, n_particles: int | None = None,
                         record_dir: Path | None = None):
    """Convert, write and compile (g++) the hls4ml project; record the rules in ``record_dir/hls_rules.json``
    and the config in ``record_dir/hls_config.json`` (only where a ``record_dir`` is given)."""
    return hls_config.build(QonnxFrontEnd(onnx_path, n_particles), prj_dir, settings, record_dir)


def hls_predict(hls_model, x: np.ndarray, progress: bool = True, chunk: int = 2048) -> np.ndarray:
    """C-simulation of every row (float64 outputs, exact ap_fixed values)."""
    outs = []
    x = np.ascontiguousarray(x, dtype=np.float64)
    with tqdm(total=len(x), desc="C-simulation", unit="jet", disable=not progress, leave=False) as bar:
        for i in range(0, len(x), chunk):
            y = np.asarray(hls_model.predict(x[i:i + chunk]), dtype=np.float64)
            outs.append(y.reshape(len(x[i:i + chunk]), -1))
            bar.update(len(outs[-1]))
    if not outs:  # no rows: as many columns as the firmware has outputs (K logits, or K one-hot bits)
        return np.zeros((0, sum(int(v.size()) for v in hls_model.get_output_variables())))
    return np.concatenate(outs)


# ----------------------------------------------------------------------------- diagnosis
def reference_tensors(onnx_path: Path, x: np.ndarray, keep: set[str] | None = None) -> dict[str, np.ndarray]:
    """Every intermediate tensor of QONNX execution on the rows of ``x`` (or those in ``keep``): name -> (rows, -1)."""
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
                ref.setdefault(k, []).append(np.asarray(v))
    return {k: np.concatenate([a.reshape(1, -1) for a in v]).astype(np.float64) for k, v in ref.items()}


def first_mismatch_layer(hls_model, onnx_path: Path, x: np.ndarray) -> str | None:
    """First hls4ml layer whose traced output differs from QONNX execution of the same layer
    (``hls_config.first_mismatch_layer``: by hls4ml layer name; ``QonnxFrontEnd.layer_tensors`` names
    the QONNX tensor of each layer)."""
    return hls_config.first_mismatch_layer(hls_model, QonnxFrontEnd(onnx_path), x)
