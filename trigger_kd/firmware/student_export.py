"""What the export stage writes for the firmware stage to convert, per student framework (Brevitas: QONNX, raw and
cleaned; QKeras and HGQ2: the saved model), checked against the student; the model adapter
(``models/backend.py``) stores and runs it.

A module of its own so that the export stage's code fingerprint does not hold the hls4ml build
(``firmware/from_student.py``), and the student stage's holds neither.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..rundir import KERAS_EXPORT, ONNX_CLEAN, ONNX_RAW

HGQ_EXPORT = "student.keras"


def export_for_firmware(backend, model, x: np.ndarray, out: Path) -> dict:
    """Write what the firmware stage converts into ``out``; return {"check": {..., "exact": bool}, ...}."""
    return _EXPORT[backend.framework](backend, model, x, Path(out))


def _brevitas_export(backend, model, x, out):
    from .qonnx_export import export_student

    result = export_student(model, x, backend.firmware_inputs(x), out)
    result["raw"], result["clean"] = ONNX_RAW, ONNX_CLEAN  # relative to ``out``
    return result


def _saved_model_export(name: str):
    """hls4ml converts the Keras model itself (QKeras; HGQ2's bit-exact path, the student stage's calibrated model,
    no new calibration here): store it as ``name`` and check that reloading reproduces it."""
    def export(backend, model, x, out):
        backend.save(model, out / name)
        diff = float(np.max(np.abs(backend.predict(backend._load(out / name), x) - backend.predict(model, x)))) \
            if len(x) else 0.0
        return {"check": {"n_jets": int(len(x)), "max_abs_diff": diff, "exact": diff == 0.0}, "model": name}
    return export


_EXPORT = {"brevitas": _brevitas_export, "qkeras": _saved_model_export(KERAS_EXPORT), "hgq": _saved_model_export(HGQ_EXPORT)}
