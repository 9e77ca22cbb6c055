"""QKeras front end of the shared hls4ml path (``hls_config.py``): a QKeras student -> hls4ml project
(g++ C-simulation), with the precision rules that make it bit-exact.

The same rules as the QONNX route (``rules.py``), as config entries: input type = the input
QActivation's type, pooling types = ``FixedFormat.pool``; hls4ml infers the rest from the quantisers.
hls4ml parses tf_keras models only when it sees ``tf_keras`` as ``keras`` (aliased while it parses,
converts, writes and traces: ``QKerasFrontEnd.parsing``).
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..config import HLSConfig
from ..errors import TriggerKDError
from ..fixedpoint import FixedFormat
from ..models.students_keras import QActivation, quiet_serialisation, tf_keras
from . import hls_config
from .hls_config import KerasFrontEnd, set_pooling_precision

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


class QKerasFrontEnd(KerasFrontEnd):
    """A QKeras (tf_keras) student; hls4ml layer names are the Keras layer names."""

    name = "QKeras"

    def __init__(self, model, n_particles: int | None = None):
        self.model, self.n_particles = model, n_particles

    def parsing(self):
        return keras_is_tf_keras()

    def hls4ml_config(self, settings: HLSConfig) -> dict:
        import hls4ml

        return hls4ml.utils.config_from_keras_model(
            self.model, granularity="name", backend=settings.backend, default_reuse_factor=settings.reuse_factor)

    def input_precision(self, layers: dict) -> tuple[str, str, str]:
        first_q = next((lay for lay in self.model.layers if isinstance(lay, QActivation)), None)
        if first_q is None or first_q.name not in layers:
            raise TriggerKDError(f"model {self.model.name} has no input QActivation: hls4ml needs the quantised student")
        return self.model.layers[0].name, layers[first_q.name]["Precision"]["result"], f"type of {first_q.name}"

    def precision_rules(self, layers: dict) -> list[str]:
        rules = []
        for i, layer in enumerate(self.model.layers):
            if isinstance(layer, tf_keras.layers.GlobalAveragePooling1D):
                n = int(layer.input_shape[1])
                if self.n_particles is not None and n != self.n_particles:
                    raise TriggerKDError(f"model pools over {n} particles but student.n_particles is {self.n_particles}")
                prev = self.model.layers[i - 1]
                if not isinstance(prev, QActivation):
                    raise TriggerKDError(f"{layer.name} must follow a QActivation (got {prev.name}) to size its precision")
                rules.append(set_pooling_precision(layers, layer.name, FixedFormat.from_qkeras(prev.quantizer), n))
        return rules

    def reference_outputs(self, hls_model, x: np.ndarray) -> dict[str, np.ndarray]:
        return keras_layer_outputs(self.model, x)


def hls_config_for_keras(model, settings: HLSConfig, n_particles: int | None = None) -> dict:
    """The hls4ml config (granularity ``name``) the shared path builds for this student."""
    return hls_config.hls_config(QKerasFrontEnd(model, n_particles), settings)[0]


def convert_keras(model, prj_dir: Path, settings: HLSConfig, n_particles: int | None = None):
    """Convert (not compile) the QKeras student; returns (hls_model, rules applied)."""
    hls_model, rules, _ = hls_config.convert(QKerasFrontEnd(model, n_particles), Path(prj_dir), settings)
    return hls_model, rules


def build_hls_from_keras(model, prj_dir: Path, settings: HLSConfig, n_particles: int | None = None,
                         record_dir: Path | None = None):
    """Convert the quantised QKeras student into an hls4ml project in ``prj_dir`` and compile it (g++).

    Where ``record_dir`` is given, the rules applied go to ``record_dir/hls_rules.json`` and the hls4ml
    config to ``record_dir/hls_config.json``.
    """
    return hls_config.build(QKerasFrontEnd(model, n_particles), Path(prj_dir), settings, record_dir)


def keras_layer_outputs(model, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every layer's output (float64, batch-first) on ``x``, keyed by layer name, in model order."""
    layers = [lay for lay in model.layers if not isinstance(lay, tf_keras.layers.InputLayer)]
    probe = tf_keras.Model(model.inputs, [lay.output for lay in layers])
    outs = probe(np.asarray(x, dtype=np.float32), training=False)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    return {lay.name: np.asarray(o, dtype=np.float64) for lay, o in zip(layers, outs)}


def first_mismatch_layer_keras(hls_model, keras_model, x: np.ndarray) -> str | None:
    """First layer (hls4ml graph order) whose C-simulation trace differs from the QKeras layer output on ``x``
    (``hls_config.first_mismatch_layer``)."""
    return hls_config.first_mismatch_layer(hls_model, QKerasFrontEnd(keras_model), x)
