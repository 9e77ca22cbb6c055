"""The pipeline's stages, in order. Each is a plain function in its own module.

This table is runner code: what each stage reads, needs and calls is in its stamp as values, and its code
fingerprint starts at its own module (``trigger_kd/stages/<stage>.py``) and leaves this one out
(``fingerprint.RUNNER``). Stage modules and the student interface are imported only when needed.
"""
from __future__ import annotations

import importlib

from ..config import DistillConfig
from ..rundir import (DATA, DIAGNOSTICS, EVALUATE_DIR, EXPORT, FIRMWARE, REPORT, STAGE_NAMES, STUDENT, SYNTH,
                      TEACHER, TRANSFER)
from ..stage import Stage

TRANSFER_KEYS = DistillConfig.transfer_keys()  # marked on the fields in trigger_kd/config.py, not kept by hand here


def _lazy(module: str, func: str):
    """Import a stage's module only when it runs (TensorFlow, hls4ml and Pythia are heavy)."""

    def call(cfg, ctx, out):
        return getattr(importlib.import_module(f"{__name__}.{module}"), func)(cfg, ctx, out)

    call.__name__ = func
    call.module = f"{__name__}.{module}"  # its code is fingerprinted into the stage's stamp
    return call


def _framework_tools(cfg) -> tuple[str, ...]:
    """The student interface names its framework's tools (imported when a stamp is made, not with this table)."""
    from ..models.backend import backend_class

    return backend_class(cfg.student.framework).tools


def _data_inputs(cfg) -> list:
    return [] if cfg.data.source == "pythia" else list(cfg.data.paths)


STAGES: list[Stage] = [
    Stage(DATA, ("data",), (), _lazy("data", "run_data"), shared=True,
          help="generate (Pythia 8 + FastJet) or load jets; split train/val/test",
          tools=("pythia", "fastjet", "numpy", "h5py", "pandas", "tables", "uproot", "awkward"), inputs=_data_inputs),
    # teacher.resolved: the teacher section with device: auto resolved to the device that computes (cpu, cuda, ...)
    Stage(TEACHER, ("teacher.resolved", "checks"), (DATA,), _lazy("teacher", "run_teacher"), shared=True,
          help="train the teacher (LorentzNet or transformer, CPU or GPU); cache its logits for every jet",
          tools=("torch", "g++", "numpy", "scikit-learn")),  # g++ builds LorentzNet's edge kernel
    Stage(TRANSFER, tuple(f"distill.{k}" for k in TRANSFER_KEYS), (DATA, TEACHER),
          _lazy("transfer", "run_transfer"), shared=True,
          help="transfer jets and boosted views of the training jets, with the teacher's logits on them",
          tools=("pythia", "fastjet", "torch", "g++", "numpy", "h5py", "pandas", "tables", "uproot", "awkward"),
          inputs=lambda cfg: list(cfg.distill.transfer_paths)),
    Stage(STUDENT, ("student", "distill", "checks"), (DATA, TEACHER, TRANSFER), _lazy("student", "run_student"),
          help="train the quantised student with knowledge distillation, and its float twin",
          tools=lambda cfg: ("torch", "g++", "numpy", "scikit-learn") + _framework_tools(cfg)),
    Stage(EXPORT, ("export",), (STUDENT,), _lazy("export", "run_export"),
          help="Brevitas -> QONNX -> cleanup (QKeras: saved model), checked against the student",
          tools=lambda cfg: ("torch", "numpy") + _framework_tools(cfg)),
    Stage(FIRMWARE, ("hls", "checks"), (STUDENT, EXPORT), _lazy("firmware", "run_firmware"),
          help="hls4ml project, g++ C-simulation of every test jet, parity.json",
          tools=lambda cfg: ("hls4ml", "g++", "numpy", "scikit-learn") + _framework_tools(cfg)),
    Stage(SYNTH, ("synth", "hls"), (STUDENT, FIRMWARE), _lazy("synth", "run_synth"),
          help="vendor HLS (local or docker) or the open-source route; resources.json",
          tools=("hls4ml", "da4ml", "yosys", "verilator", "numpy")),
    Stage(REPORT, ("checks",), (DATA, TEACHER, STUDENT, FIRMWARE, SYNTH), _lazy("report", "run_report"),
          help="report.md + report.json + plots, from this run's directory only",
          run_files=(DIAGNOSTICS, f"{EVALUATE_DIR}/*.json")),  # trigger-kd diagnose / evaluate results
]
# the stage names and their order are rundir.STAGE_NAMES, the one list (re-exported here for the CLI); the table
# names its stages by rundir's constants, and tests/test_pipeline.py checks that it holds each name once, in order
__all__ = ["STAGES", "STAGE_NAMES", "TRANSFER_KEYS"]
