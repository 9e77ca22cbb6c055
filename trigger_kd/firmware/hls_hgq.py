"""HGQ2 front end of the shared hls4ml path (``hls_config.py``): a calibrated HGQ2 (Keras 3) student -> hls4ml
project (g++ C-simulation), through hls4ml's own bit-exact HGQ2 path.

hls4ml reads every type from the HGQ2 quantisers (each ``QDense`` input quantiser becomes an ``<name>_iq``
layer with per-element types), so no input precision or other rule is set here; ``hls.layer_precision``
overrides still apply after type inference. hls4ml takes its Keras-3 path because ``keras`` is Keras 3 here
(the QKeras front end aliases tf_keras as ``keras`` only inside its own parsing block).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import HLSConfig
from ..errors import TriggerKDError
from ..models.students_hgq import QDense, keras
from . import hls_config
from .hls_config import KerasFrontEnd


class HGQFrontEnd(KerasFrontEnd):
    """An HGQ2 student; hls4ml layer names are the Keras layer names (+ ``_iq`` / ``_relu`` parts)."""

    name = "HGQ2"

    def __init__(self, model):
        if not any(isinstance(layer, QDense) for layer in model.layers):
            raise TriggerKDError(f"model {model.name} has no HGQ2 layers: hls4ml needs the quantised student")
        self.model = model

    def hls4ml_config(self, settings: HLSConfig) -> dict:
        import hls4ml

        return hls4ml.utils.config_from_keras_model(
            self.model, granularity="name", backend=settings.backend, default_reuse_factor=settings.reuse_factor)

    def input_precision(self, layers: dict) -> None:
        return None  # the first QDense's input quantiser is a layer of its own: hls4ml types the input from it

    def reference_outputs(self, hls_model, x: np.ndarray) -> dict[str, np.ndarray]:
        """Each QDense's output (after its ReLU where it has one: hls4ml's ``<name>_relu`` layer)."""
        names = {layer.name for layer in hls_model.get_layers()}
        layers = [lay for lay in self.model.layers if isinstance(lay, QDense)]
        probe = keras.Model(self.model.inputs, [lay.output for lay in layers])
        outs = probe(np.asarray(x, dtype=np.float32), training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        ref = {}
        for lay, o in zip(layers, outs):
            name = f"{lay.name}_relu" if f"{lay.name}_relu" in names else lay.name
            ref[name] = np.asarray(o, dtype=np.float64)
        return ref


def build_hls_from_hgq(model, prj_dir: Path, settings: HLSConfig, record_dir: Path | None = None):
    """Convert the calibrated HGQ2 student into an hls4ml project in ``prj_dir`` and compile it (g++)."""
    return hls_config.build(HGQFrontEnd(model), Path(prj_dir), settings, record_dir)


def first_mismatch_layer_hgq(hls_model, model, x: np.ndarray) -> str | None:
    """First layer (hls4ml graph order) whose C-simulation trace differs from the HGQ2 model's output of it."""
    return hls_config.first_mismatch_layer(hls_model, HGQFrontEnd(model), x)
