"""HGQ2 front end of the shared hls4ml path (``hls_config.py``): a calibrated HGQ2 (Keras 3) student -> hls4ml
project (g++ C-simulation), through hls4ml's own bit-exact HGQ2 path.

hls4ml reads every type from the HGQ2 quantisers (each ``QDense`` input quantiser becomes an ``<name>_iq``
layer with per-element types), so no input precision or other rule is set here; ``hls.layer_precision``
overrides still apply after type inference. hls4ml takes its Keras-3 path because ``keras`` is Keras 3 here
(the QKeras front end aliases tf_keras as ``keras`` only inside its own parsing block).

Consecutive quantisers (the fixed input bus, then the first layer's learned input widths, ``learn_input_bits``)
round twice in Keras. hls4ml's ``FuseFixedPointQuantizer`` (its ``convert`` flow) folds every quantiser with one
width on all lanes into the type of the layer before it; for two in a row the second overwrites the first
("result_t ... propagated multiple times"), so the firmware rounded once where Keras rounds twice.
``KeepConsecutiveQuantizers``, put into that flow just before the fusion, keeps the second of such a pair as a
layer of its own (as hls4ml already does when its widths differ between lanes).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from hls4ml.model.optimizer import OptimizerPass
from hls4ml.model.optimizer.passes.bit_exact import get_input_layers
from hls4ml.model.optimizer.passes.hgq_proxy_model import FixedPointQuantizer

from ..config import HLSConfig
from ..errors import TriggerKDError
from ..models.students_hgq import QDense, keras
from . import hls_config
from .hls_config import KerasFrontEnd, record_applied

FUSE_PASS = "fuse_fixed_point_quantizer"  # hls4ml's pass (convert flow) that folds quantisers into types


class KeepConsecutiveQuantizers(OptimizerPass):
    """A quantiser right after another one stays a layer: fusing both into one type would round once, not twice.

    hls4ml's fusion matches only nodes its bit-exact pass has marked (``bit_exact_transformed``); unmarking the
    second quantiser of a pair leaves it to the C++ quantiser layer, which rounds and saturates as HGQ2 does."""

    name = "trigger_kd_keep_consecutive_quantizers"

    def match(self, node):
        return (isinstance(node, FixedPointQuantizer) and node.attributes.get("bit_exact_transformed", False)
                and any(isinstance(inp, FixedPointQuantizer) for inp in get_input_layers(node)))

    def transform(self, model, node):
        node.attributes["bit_exact_transformed"] = False  # what FuseFixedPointQuantizer matches on; nothing else reads it
        first = ", ".join(inp.name for inp in get_input_layers(node))
        record_applied(model, f"quantizer {node.name}: kept as a layer after quantizer {first} (two roundings, "
                              f"as in the model; hls4ml would fuse both into one type)")
        return False  # the graph is unchanged


def keep_consecutive_quantizers() -> None:
    """Put ``KeepConsecutiveQuantizers`` into hls4ml's ``convert`` flow just before its fusion pass (once)."""
    from hls4ml.model.flow.flow import get_flow, update_flow
    from hls4ml.model.optimizer import get_available_passes, register_pass

    name = KeepConsecutiveQuantizers.name
    if name not in get_available_passes():
        register_pass(name, KeepConsecutiveQuantizers)
    passes = list(get_flow("convert").optimizers)
    if name in passes:
        return
    if FUSE_PASS not in passes:
        raise TriggerKDError(f"hls4ml's convert flow has no {FUSE_PASS} pass: this hls4ml is not the pinned one "
                             "(run: make install)")
    tail = passes[passes.index(FUSE_PASS):]  # re-added after ours, in their order (hls4ml's flows append only)
    update_flow("convert", remove_optimizers=tail)
    update_flow("convert", add_optimizers=[name, *tail])


class HGQFrontEnd(KerasFrontEnd):
    """An HGQ2 student; hls4ml layer names are the Keras layer names (+ ``_iq`` / ``_relu`` parts)."""

    name = "HGQ2"

    def __init__(self, model):
        if not any(isinstance(layer, QDense) for layer in model.layers):
            raise TriggerKDError(f"model {model.name} has no HGQ2 layers: hls4ml needs the quantised student")
        self.model = model

    def hls4ml_config(self, settings: HLSConfig) -> dict:
        import hls4ml

        keep_consecutive_quantizers()  # before any conversion of an HGQ2 model

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
