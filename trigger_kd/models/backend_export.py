"""The export part of the student interface: per framework, what the export stage writes for the firmware
stage to convert (Brevitas: QONNX, raw and cleaned; QKeras: the saved model), checked against the student.

A module of its own (not a method of ``models/backend.py``) so that the student stage's code fingerprint does
not hold the QONNX export, and the export stage's does not hold the hls4ml build (``models/backend_firmware.py``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..rundir import KERAS_EXPORT, ONNX_CLEAN, ONNX_RAW
from .backend import StudentBackend


def export_for_firmware(backend: StudentBackend, model, x: np.ndarray, out: Path) -> dict:
    """Write what the firmware stage converts into ``out``; return {"check": {..., "exact": bool}, ...}."""
    return _EXPORT[backend.framework](backend, model, x, Path(out))


def _brevitas_export(backend, model, x, out):
    from ..firmware.qonnx_export import export_student

    result = export_student(model, x, backend.firmware_inputs(x), out)
    result["raw"], result["clean"] = ONNX_RAW, ONNX_CLEAN  # relative to ``out``
    return result


def _qkeras_export(backend, model, x, out):
    """hls4ml converts the QKeras model itself: store it and check that reloading reproduces it."""
    backend.save(model, out / KERAS_EXPORT)
    diff = float(np.max(np.abs(backend.predict(backend._load(out / KERAS_EXPORT), x) - backend.predict(model, x)))) \
        if len(x) else 0.0
    return {"check": {"n_jets": int(len(x)), "max_abs_diff": diff, "exact": diff == 0.0}, "model": KERAS_EXPORT}


HGQ_EXPORT = "student.keras"


def _hgq_export(backend, model, x, out):
    """hls4ml converts the calibrated HGQ2 model itself (its bit-exact path): store it, check the reload."""
    backend.save(model, out / HGQ_EXPORT)  # the student stage's model, calibrated there; no new calibration here
    diff = float(np.max(np.abs(backend.predict(backend._load(out / HGQ_EXPORT), x) - backend.predict(model, x)))) \
        if len(x) else 0.0
    return {"check": {"n_jets": int(len(x)), "max_abs_diff": diff, "exact": diff == 0.0}, "model": HGQ_EXPORT}


_EXPORT = {"brevitas": _brevitas_export, "qkeras": _qkeras_export, "hgq": _hgq_export}
