"""The pipeline's stages, in order. Each is a plain function in its own module."""
from __future__ import annotations

import importlib

from ..pipeline import Stage


def _lazy(module: str, func: str):
    """Import a stage's module only when it runs (TensorFlow, hls4ml and Pythia are heavy)."""

    def call(cfg, ctx, out):
        return getattr(importlib.import_module(f"{__name__}.{module}"), func)(cfg, ctx, out)

    call.__name__ = func
    return call


STAGES: list[Stage] = [
    Stage("data", ("data",), (), _lazy("data", "run_data"), shared=True,
          help="generate (Pythia 8 + FastJet) or load jets; split train/val/test"),
    Stage("teacher", ("teacher", "checks"), ("data",), _lazy("teacher", "run_teacher"), shared=True,
          help="train the LorentzNet teacher; cache its logits for every jet"),
    Stage("student", ("student", "distill", "checks"), ("data", "teacher"), _lazy("student", "run_student"),
          help="train the quantised student with knowledge distillation, and its float twin"),
    Stage("export", ("export",), ("student",), _lazy("export", "run_export"),
          help="Brevitas -> QONNX -> cleanup (QKeras: saved model), checked against the student"),
    Stage("firmware", ("hls", "checks"), ("student", "export"), _lazy("firmware", "run_firmware"),
          help="hls4ml project, g++ C-simulation of every test jet, parity.json"),
    Stage("synth", ("synth", "hls"), ("student", "firmware"), _lazy("synth", "run_synth"),
          help="vendor HLS (local or docker) or the open-source route; resources.json"),
    Stage("report", ("checks",), ("data", "teacher", "student", "firmware", "synth"), _lazy("report", "run_report"),
          always=True, help="report.md + report.json + plots (KD vs scratch from a sibling scratch run when there is one)"),
]
STAGE_NAMES = [s.name for s in STAGES]
