"""Stage `export`: the quantised student in the form the firmware stage converts.

Brevitas: ``model_raw.onnx`` (QONNX from ``export_qonnx``, TorchScript exporter) and
``model_clean.onnx`` (qonnx cleanup, channels-last, GemmToMatMul), with ``check.json``:
QONNX execution of both graphs compared with the Brevitas student on sample test jets.
QKeras: the trained model is converted by hls4ml directly; this stage copies it and checks
that reloading it reproduces the student's logits.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from ..config import Config
from ..console import info
from ..pipeline import RunContext, StageError


def run_export(cfg: Config, ctx: RunContext, out: Path) -> dict:
    from .student import TrainedStudent

    sdir = ctx.dir("student")
    x = np.load(sdir / "test_inputs.npy")[: cfg.export.check_jets]
    if cfg.student.framework == "brevitas":
        from ..firmware.qonnx_export import export_student

        trained = TrainedStudent(cfg, sdir)
        result = export_student(trained.quant, x, out)
        result["raw"], result["clean"] = "model_raw.onnx", "model_clean.onnx"  # relative to this stage's directory
        check = result["check"]
        (out / "check.json").write_text(json.dumps(result, indent=2, default=str))
        if not check.get("exact", False):
            raise StageError(
                f"QONNX execution differs from the Brevitas student on {check.get('n_jets')} sample jets "
                f"(max |diff| {check.get('max_abs_diff')}); see {out / 'check.json'}"
            )
        info(f"[export] QONNX execution == Brevitas on {check['n_jets']} jets (raw and cleaned graphs)")
        return {"check": check, "clean": str(result["clean"])}
    shutil.copy2(sdir / "student.h5", out / "student.h5")
    trained = TrainedStudent(cfg, sdir)
    again = trained.logits(x)
    ref = np.load(sdir / "test_logits.npy")[: len(x)]
    diff = float(np.max(np.abs(again - ref))) if len(x) else 0.0
    check = {"n_jets": int(len(x)), "max_abs_diff": diff, "exact": diff == 0.0}
    (out / "check.json").write_text(json.dumps({"check": check}, indent=2))
    if diff != 0.0:
        raise StageError(f"reloaded QKeras student differs from the trained one (max |diff| {diff})")
    return {"check": check}
