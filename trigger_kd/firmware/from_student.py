"""The hls4ml project of a student, per framework, from what the export stage wrote
(``firmware/student_export.py``) and the model adapter's stored model (``models/backend.py``).

Neither the student nor the export stage imports this module, so an edit to the hls4ml path (``firmware/hls*.py``,
``firmware/rules.py``) reruns the firmware stage onwards and nothing before it (``trigger_kd/fingerprint.py``).
The output LSB the C-simulation is compared on is not made here: the firmware stage reads it from the student
stage's integer network (``intnet.json``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from ..console import info
from ..rundir import ONNX_CLEAN


class Firmware(NamedTuple):
    hls_model: object
    first_mismatch: Callable[[np.ndarray], str | None]  # firmware inputs -> first differing layer


def build_firmware(backend, model, export_dir: Path, prj: Path, settings, record_dir: Path) -> Firmware:
    """Build and compile the hls4ml project in ``prj``; the rules applied are recorded in ``record_dir``."""
    return _BUILD[backend.framework](backend, model, Path(export_dir), Path(prj), settings, Path(record_dir))


def _n_pool(backend) -> int | None:
    return backend.s.n_particles if backend.s.arch == "deepset" else None


# ----------------------------------------------------------------------------- Brevitas: QONNX
def _brevitas_build(backend, model, export_dir, prj, settings, record_dir):
    from .hls import build_hls_from_qonnx, first_mismatch_layer

    onnx_path = export_dir / ONNX_CLEAN
    info(f"[firmware] hls4ml {settings.backend} project from {onnx_path}")
    hls_model = build_hls_from_qonnx(onnx_path, prj, settings, n_particles=_n_pool(backend), record_dir=record_dir)
    return Firmware(hls_model, lambda xs: first_mismatch_layer(hls_model, onnx_path, xs))


# ----------------------------------------------------------------------------- QKeras: hls4ml converts the model
def _qkeras_build(backend, model, export_dir, prj, settings, record_dir):
    from .hls_keras import build_hls_from_keras, first_mismatch_layer_keras

    info(f"[firmware] hls4ml {settings.backend} project from the QKeras model")
    hls_model = build_hls_from_keras(model, prj, settings, n_particles=_n_pool(backend), record_dir=record_dir)
    return Firmware(hls_model, lambda xs: first_mismatch_layer_keras(hls_model, model, xs))


# ----------------------------------------------------------------------------- HGQ2: hls4ml's Keras-3 bit-exact path
def _hgq_build(backend, model, export_dir, prj, settings, record_dir):
    from .hls_hgq import build_hls_from_hgq, first_mismatch_layer_hgq

    info(f"[firmware] hls4ml {settings.backend} project from the HGQ2 model")
    hls_model = build_hls_from_hgq(model, prj, settings, record_dir=record_dir)
    return Firmware(hls_model, lambda xs: first_mismatch_layer_hgq(hls_model, model, xs))


_BUILD = {"brevitas": _brevitas_build, "qkeras": _qkeras_build, "hgq": _hgq_build}
