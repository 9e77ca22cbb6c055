"""Stage `firmware`: the hls4ml project, compiled with g++, C-simulated on every test jet.

Output ``<run-dir>/firmware/``: ``hls4ml_prj/`` (the hls4ml project: firmware sources,
build scripts, the compiled C-simulation library), ``csim_outputs.npy`` and ``parity.json``
(bit-exact agreement with the quantised student on every test jet, compared as integers
on the output grid, and agreement with the float twin).
If C-simulation is not bit-exact the stage fails naming the first differing layer.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import Config
from ..console import info
from ..rundir import (CSIM_OUTPUTS, EXPORT, FIRMWARE, HLS_PROJECT, PARITY, STUDENT, TEST_INPUTS, TEST_LABELS,
                      TEST_LOGITS, TEST_LOGITS_FLOAT, Parity)
from ..stage import RunContext, StageError


def run_firmware(cfg: Config, ctx: RunContext, out: Path) -> dict:
    from ..firmware.hls import hls_predict
    from ..firmware.parity import float_agreement, parity_report
    from ..models.backend import student_backend
    from ..models.backend_firmware import build_firmware

    sdir = ctx.dir(STUDENT)
    backend = student_backend(cfg.student)
    x_fw = backend.firmware_inputs(np.load(sdir / TEST_INPUTS))
    q_logits = np.load(sdir / TEST_LOGITS)
    f_logits = np.load(sdir / TEST_LOGITS_FLOAT)
    is_signal = np.load(sdir / TEST_LABELS)
    settings = cfg.hls
    fw = build_firmware(backend, backend.load(sdir), ctx.dir(EXPORT), out / HLS_PROJECT, settings, record_dir=out)
    info(f"[firmware] C-simulation of {len(x_fw)} test jets")
    csim = hls_predict(fw.hls_model, x_fw, progress=ctx.progress)
    np.save(out / CSIM_OUTPUTS, csim)
    fa = float_agreement(q_logits, f_logits, is_signal, working_point=cfg.checks.working_point)
    report = parity_report(csim, q_logits, fw.lsb, float_block=fa, backend=settings.backend)
    if report["bit_exact_fraction"] < 1.0:
        report["first_mismatch_layer"] = fw.first_mismatch(x_fw[report["first_mismatched_jets"]])
    parity = Parity.from_dict(report)
    parity.required_fraction = cfg.checks.parity_min_fraction  # check-parity applies the same threshold
    parity.write(out / PARITY)
    _point_project_at_final_dir(out / HLS_PROJECT, ctx.run_dir / FIRMWARE / HLS_PROJECT)
    info(f"[firmware] bit-exact on {parity.bit_exact_fraction * 100:.3f} % of {parity.n_jets} test jets")
    if parity.bit_exact_fraction < cfg.checks.parity_min_fraction:
        raise StageError(
            f"C-simulation is bit-exact on only {parity.bit_exact_fraction * 100:.3f} % of {parity.n_jets} "
            f"test jets (required {cfg.checks.parity_min_fraction * 100:g} %); first differing layer: "
            f"{parity.first_mismatch_layer}. Check hls.layer_precision overrides for that layer."
        )
    return {"n_jets": parity.n_jets, "bit_exact_fraction": parity.bit_exact_fraction,
            "max_abs_diff": parity.max_abs_diff}


def _point_project_at_final_dir(prj: Path, final: Path) -> None:
    """hls4ml records its OutputDir (here the stage's temporary directory, renamed when the stage
    completes) in hls4ml_config.yml: name the directory the project will live in instead."""
    cfg_file = prj / "hls4ml_config.yml"
    if not cfg_file.is_file():
        return
    lines = cfg_file.read_text().splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith("OutputDir:") and Path(line.split(":", 1)[1].strip()).resolve() == prj.resolve():
            lines[i] = f"OutputDir: {final.resolve()}\n"
    cfg_file.write_text("".join(lines))
