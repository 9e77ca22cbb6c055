"""Stage `export`: the quantised student in the form the firmware stage converts, checked.

Brevitas: ``model_raw.onnx`` (QONNX from ``export_qonnx``, TorchScript exporter) and
``model_clean.onnx`` (qonnx cleanup, channels-last, GemmToMatMul); QONNX execution of both
graphs is compared with the Brevitas student on sample test jets.
QKeras: hls4ml converts the trained model directly; this stage stores it and checks that
reloading it reproduces the student's logits. ``check.json`` holds the check either way.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..config import Config
from ..console import info
from ..rundir import EXPORT_CHECK, STUDENT, TEST_INPUTS
from ..stage import RunContext, StageError


def run_export(cfg: Config, ctx: RunContext, out: Path) -> dict:
    from ..firmware.student_export import export_for_firmware
    from ..models.backend import student_backend

    sdir = ctx.dir(STUDENT)
    x = np.load(sdir / TEST_INPUTS)[: cfg.export.check_jets]
    backend = student_backend(cfg.student)
    result = export_for_firmware(backend, backend.load(sdir), x, out)
    check = result["check"]
    (out / EXPORT_CHECK).write_text(json.dumps(result, indent=2, default=str))
    if not check["exact"]:
        raise StageError(
            f"the exported {backend.framework} student differs from the trained one on {check['n_jets']} sample jets "
            f"(max |diff| {check['max_abs_diff']}); see {out / EXPORT_CHECK}")
    info(f"[export] exported {backend.framework} student == trained student on {check['n_jets']} jets")
    return {"check": check}
