"""Stage `firmware`: the hls4ml project, compiled with g++, C-simulated on every test jet.

Output ``<run-dir>/firmware/``: ``hls4ml_prj/`` (the hls4ml project: firmware sources,
build scripts, the compiled C-simulation library), ``csim_outputs.npy`` (what the firmware outputs, as
``hls.output`` says: the K logits, or for ``argmax`` the one-hot word of the class index) and ``parity.json``
(agreement with the quantised student on every test jet: the logits compared as integers on the output grid,
or the class index against the argmax of the student's logits, first highest winning ties; and agreement with
the float twin). If C-simulation is not exact the stage fails naming the first differing layer.
``hls.output: softmax`` is built and C-simulated, measured against the exact softmax of the student's logits
(``softmax_check.json``, kept in ``firmware.failed/``) and refused with those numbers (``firmware/outputs.py``).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..atomic import write_text_atomic
from ..config import Config
from ..console import info
from ..rundir import (CSIM_OUTPUTS, EXPORT, FIRMWARE, HLS_PROJECT, INTNET, PARITY, STUDENT, TEST_INPUTS, TEST_LABELS,
                      TEST_LOGITS, TEST_LOGITS_FLOAT, Parity)
from ..stage import RunContext, StageError

SOFTMAX_CHECK = "softmax_check.json"  # hls.output softmax: what was measured before the refusal


def run_firmware(cfg: Config, ctx: RunContext, out: Path) -> dict:
    from ..firmware.from_student import build_firmware
    from ..firmware.hls import hls_predict
    from ..firmware.parity import float_agreement, parity_report
    from ..models.backend import student_backend
    from ..synth.da4ml_comb import load_integer_network

    sdir = ctx.dir(STUDENT)
    q_logits = np.load(sdir / TEST_LOGITS)  # (N, K)
    backend = student_backend(cfg.student, n_classes=int(q_logits.shape[1]))  # a Brevitas student is built for K
    x_fw = backend.firmware_inputs(np.load(sdir / TEST_INPUTS))
    f_logits = np.load(sdir / TEST_LOGITS_FLOAT)
    labels = np.load(sdir / TEST_LABELS)  # is_signal (binary) or the class index (K classes)
    settings = cfg.hls
    # the output grid: the student stage's integer network (its IntNet, or the HGQ2 student's da4ml trace), not a
    # second trace of the model
    lsb = 2.0 ** -load_integer_network(sdir / INTNET).output_frac_bits
    fw = build_firmware(backend, backend.load(sdir), ctx.dir(EXPORT), out / HLS_PROJECT, settings, record_dir=out)
    info(f"[firmware] C-simulation of {len(x_fw)} test jets (output: {settings.output})")
    csim = hls_predict(fw.hls_model, x_fw, progress=ctx.progress)
    np.save(out / CSIM_OUTPUTS, csim)
    if settings.output == "softmax":
        _measure_and_refuse_softmax(csim, q_logits, fw.hls_model, out)
    fa = float_agreement(q_logits, f_logits, labels, working_point=cfg.checks.working_point)
    report = parity_report(csim, q_logits, lsb, float_block=fa, backend=settings.backend, output=settings.output)
    if report["bit_exact_fraction"] < 1.0:
        report["first_mismatch_layer"] = fw.first_mismatch(x_fw[report["first_mismatched_jets"]])
    parity = Parity.from_dict(report)
    # check-parity applies the same threshold; the class index (argmax) is the deployed decision: every jet
    parity.required_fraction = 1.0 if settings.output == "argmax" else cfg.checks.parity_min_fraction
    parity.write(out / PARITY)
    _point_project_at_final_dir(out / HLS_PROJECT, ctx.run_dir / FIRMWARE / HLS_PROJECT)
    what = "class index equal" if settings.output == "argmax" else "bit-exact"
    info(f"[firmware] {what} on {parity.bit_exact_fraction * 100:.3f} % of {parity.n_jets} test jets")
    if parity.bit_exact_fraction < parity.required_fraction:
        raise StageError(
            f"C-simulation is {what} on only {parity.bit_exact_fraction * 100:.3f} % of {parity.n_jets} "
            f"test jets (required {parity.required_fraction * 100:g} %"
            f"{'; hls.output argmax: every jet' if settings.output == 'argmax' else ''}); first differing layer: "
            f"{parity.first_mismatch_layer}. Check hls.layer_precision overrides for that layer."
        )
    return {"n_jets": parity.n_jets, "bit_exact_fraction": parity.bit_exact_fraction,
            "max_abs_diff": parity.max_abs_diff, "output": settings.output}


def _measure_and_refuse_softmax(csim: np.ndarray, q_logits: np.ndarray, hls_model, out: Path) -> None:
    """Measure the built softmax on the test jets, record it, refuse it (never returns)."""
    from ..firmware.outputs import SoftmaxRefused, softmax_agreement, softmax_refusal, softmax_tables
    from ..fixedpoint import FixedFormat

    tables = softmax_tables(hls_model)
    m = softmax_agreement(csim, q_logits, FixedFormat.from_hls(tables["result_t"]), tables)
    write_text_atomic(out / SOFTMAX_CHECK, json.dumps(m, indent=2))
    raise SoftmaxRefused(softmax_refusal(m))


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
