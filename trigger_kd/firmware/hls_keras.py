"""QKeras student -> hls4ml project (g++ C-simulation), with the precision rules that make it bit-exact.

The same rules as the QONNX route (``rules.py``), as config entries: input type = the input
QActivation's type, pooling types = ``FixedFormat.pool``; hls4ml infers the rest from the quantisers.
hls4ml parses tf_keras models only when it sees ``tf_keras`` as ``keras`` (aliased while it parses).
"""
from __future__ import annotations

import copy
import json
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..atomic import write_text_atomic
from ..config import HLSConfig
from ..errors import TriggerKDError
from ..fixedpoint import FixedFormat
from ..models.students_keras import QActivation, quiet_serialisation, tf_keras
from .hls import compile_model
from .rules import check_precision_keys

_MISSING = object()


@contextmanager
def keras_is_tf_keras():
    """Let hls4ml's ``import keras`` see tf_keras (legacy Keras 2) for the duration of the block."""
    saved = sys.modules.get("keras", _MISSING)
    sys.modules["keras"] = tf_keras
    try:
        with quiet_serialisation():
            yield
    finally:
        if saved is _MISSING:
            sys.modules.pop("keras", None)
        else:
            sys.modules["keras"] = saved


def hls_config_for_keras(model, settings: HLSConfig, n_particles: int | None = None) -> dict:
    """hls4ml config (granularity ``name``) with the bit-exact precision rules and the settings' overrides."""
    import hls4ml

    with keras_is_tf_keras():
        cfg = hls4ml.utils.config_from_keras_model(
            model, granularity="name", backend=settings.backend, default_reuse_factor=settings.reuse_factor
        )
    layers = cfg["LayerName"]
    in_name = model.layers[0].name
    first_q = next((lay for lay in model.layers if isinstance(lay, QActivation)), None)
    if first_q is None or first_q.name not in layers:
        raise TriggerKDError(f"model {model.name} has no input QActivation: hls4ml needs the quantised student")
    layers[in_name]["Precision"]["result"] = layers[first_q.name]["Precision"]["result"]
    for i, layer in enumerate(model.layers):
        if isinstance(layer, tf_keras.layers.GlobalAveragePooling1D):
            n = int(layer.input_shape[1])
            if n_particles is not None and n != n_particles:
                raise TriggerKDError(f"model pools over {n} particles but student.n_particles is {n_particles}")
            prev = model.layers[i - 1]
            if not isinstance(prev, QActivation):
                raise TriggerKDError(f"{layer.name} must follow a QActivation (got {prev.name}) to size its precision")
            t = FixedFormat.from_qkeras(prev.quantizer).pool(n).hls_type
            layers[layer.name]["Precision"].update(accum=t, result=t)
    _apply_overrides(layers, settings.layer_precision)
    cfg["Model"].update(Strategy=settings.strategy, ReuseFactor=settings.reuse_factor)
    for lc in layers.values():
        lc["Trace"] = True
        if "ReuseFactor" in lc:
            lc["ReuseFactor"] = settings.reuse_factor
    return cfg


def _apply_overrides(layers: dict, overrides: dict) -> None:
    check_precision_keys(overrides)
    for name, prec in (overrides or {}).items():
        if name not in layers:
            raise TriggerKDError(f"hls.layer_precision names layer {name!r}, which the model does not have; "
                                 f"valid layer names: {', '.join(layers)}")
        layers[name].setdefault("Precision", {}).update({k: str(v) for k, v in prec.items()})


def build_hls_from_keras(model, prj_dir: Path, settings: HLSConfig, n_particles: int | None = None,
                         record_dir: Path | None = None):
    """Convert the quantised QKeras student into an hls4ml project in ``prj_dir`` and compile it (g++).

    Where ``record_dir`` is given, the final hls4ml config is written to ``record_dir/hls_config.json``.
    """
    import hls4ml

    prj_dir = Path(prj_dir)
    cfg = hls_config_for_keras(model, settings, n_particles)
    with keras_is_tf_keras():
        hls_model = hls4ml.converters.convert_from_keras_model(
            model, hls_config=copy.deepcopy(cfg), output_dir=str(prj_dir), part=settings.part,
            clock_period=settings.clock_period, io_type=settings.io_type, backend=settings.backend,
            project_name="myproject",
        )
    if record_dir is not None:
        write_text_atomic(Path(record_dir) / "hls_config.json", json.dumps(cfg, indent=2, default=str))
    with keras_is_tf_keras():  # the project writer saves the Keras model next to its YAML config
        compile_model(hls_model)
    return hls_model


def keras_layer_outputs(model, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every layer's output (float64, batch-first) on ``x``, keyed by layer name, in model order."""
    layers = [lay for lay in model.layers if not isinstance(lay, tf_keras.layers.InputLayer)]
    probe = tf_keras.Model(model.inputs, [lay.output for lay in layers])
    outs = probe(np.asarray(x, dtype=np.float32), training=False)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    return {lay.name: np.asarray(o, dtype=np.float64) for lay, o in zip(layers, outs)}


def first_mismatch_layer_keras(hls_model, keras_model, x: np.ndarray) -> str | None:
    """First layer (model order) whose C-simulation trace differs from the QKeras layer output on ``x``."""
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float64))
    if len(x) == 0:
        return None
    want_shape = tuple(int(d) for d in keras_model.input_shape[1:])
    if x.shape[1:] != want_shape:
        raise TriggerKDError(f"inputs of shape {x.shape[1:]} for a student that takes {want_shape} per jet")
    with keras_is_tf_keras():  # trace() rewrites and recompiles the project
        _, trace = hls_model.trace(x)
    ref = keras_layer_outputs(keras_model, x)
    if not set(ref) & set(trace):
        raise TriggerKDError(
            f"the hls4ml trace ({', '.join(trace) or 'empty'}) shares no layer name with the QKeras model "
            f"({', '.join(ref)}): was the project built by build_hls_from_keras from this model?"
        )
    for name, want in ref.items():
        if name not in trace:
            continue  # folded into a neighbour by hls4ml (e.g. the input quantiser)
        got = np.asarray(trace[name], dtype=np.float64).reshape(len(x), -1)
        if not np.array_equal(got, want.reshape(len(x), -1)):
            return name
    return None
