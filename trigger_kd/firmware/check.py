"""`trigger-kd check-parity RUN`: is the firmware in a run directory bit-exact with the student it was built from?

For a pipeline run the verdict is not read from ``parity.json``: the run's stages must agree (``runcheck.py``:
firmware, export, student and what they were made from, every output as its stage wrote it), and the
fraction of bit-exact test jets is recomputed from the evidence, the C-simulation outputs
(``firmware/csim_outputs.npy``) against the student's logits on the same jets (``student/test_logits.npy``),
both covered by their stages' manifests. The threshold is ``checks.parity_min_fraction`` as recorded in the
firmware stage's stamp. ``parity.json`` must agree with that evidence. What is judged is what the firmware outputs,
``hls.output`` as the firmware stage's stamp records it: the K logits, or (``argmax``) the class index, the
one-hot words decoded and compared with the argmax of the student's logits (``firmware/outputs.py``: the first
highest wins ties); any jet whose index differs fails the check.

A directory ``import-qonnx`` wrote is judged the same way: its record (``import.json``) must say the import
completed, every file the import wrote must be as it was (its manifest), the model file it was made from must be
unchanged (when it is still there), and the fraction is recomputed from the firmware's and the QONNX execution's
values at the compared layer (``csim_compared.npy`` vs ``reference_compared.npy``).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..console import error, info, warn
from ..errors import TriggerKDError
from ..fingerprint import sha256_file
from ..manifest import manifest_problem
from ..rundir import (CSIM_OUTPUTS, FIRMWARE, IMPORT_CSIM, IMPORT_RECORD, IMPORT_REFERENCE, PARITY, STUDENT,
                      TEST_LOGITS, read_json, read_stamp)
from ..runcheck import chain_problems, describe
from .outputs import index_evidence
from .parity import compare_fixed


def _record(path: Path) -> tuple[dict, float, int]:
    try:
        p = json.loads(path.read_text())
        return p, float(p["bit_exact_fraction"]), int(p["n_jets"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TriggerKDError(f"{path} is not a parity report ({exc}); rerun the firmware stage") from exc


def recomputed(fw_dir: Path, output: str = "logits") -> tuple[float, int] | None:
    """(fraction of jets the firmware gets exactly right, jets) from the C-simulation outputs and the student's
    logits (``output`` argmax: the class index); None without them."""
    csim_path, want_path = fw_dir / CSIM_OUTPUTS, fw_dir.parent / STUDENT / TEST_LOGITS
    if output == "argmax":
        if not csim_path.is_file() or not want_path.is_file():
            return None
        return index_evidence(np.load(csim_path), np.load(want_path))
    return _exact_rows(csim_path, want_path)


def deployed_output(stamp: dict | None) -> str:
    """``hls.output`` the firmware stage ran with (a stamp from before the key: the logits)."""
    hls = ((stamp or {}).get("sections") or {}).get("hls") or {}
    return str(hls.get("output", "logits"))


def _exact_rows(csim_path: Path, want_path: Path) -> tuple[float, int] | None:
    """(fraction of rows of ``csim_path`` equal to those of ``want_path``, rows); None when either is absent."""
    if not csim_path.is_file() or not want_path.is_file():
        return None
    want, csim = np.load(want_path), np.load(csim_path)
    try:  # the values as they were saved: equal or not (an LSB of 1, no grid check)
        return compare_fixed(csim, want, 1.0, strict=False)["bit_exact_fraction"], len(want)
    except TriggerKDError:  # no rows, rows of another shape, or a reference that is not finite: none is exact
        return 0.0, len(want)


def check_parity(fw_dir: Path) -> int:
    """0 only when the firmware is current and bit-exact on at least the required fraction of test jets (with
    ``hls.output: argmax``: the class index equal on every test jet)."""
    fw_dir = Path(fw_dir)
    path = fw_dir / PARITY
    stamp = read_stamp(fw_dir)
    is_stage = stamp is not None or fw_dir.name == FIRMWARE
    output = "logits"
    if is_stage:
        problems = chain_problems(fw_dir.parent, [FIRMWARE])
        if problems:
            error(f"parity STALE: {describe(fw_dir.parent, problems, 'check-parity')}")
            return 1
        output = deployed_output(stamp)
        recorded = _record(path)[0].get("output", "logits") if path.is_file() else output
        if recorded != output:
            error(f"parity FAILED: {path} judges hls.output {recorded}, but the firmware stage was built with "
                  f"hls.output {output}; rerun the firmware stage")
            return 1
        evidence = recomputed(fw_dir, output)
        evidence_names = (f"{CSIM_OUTPUTS} (class index) against the argmax of {STUDENT}/{TEST_LOGITS}"
                          if output == "argmax" else f"{CSIM_OUTPUTS} against {STUDENT}/{TEST_LOGITS}")
    elif not path.is_file() and not (fw_dir / IMPORT_RECORD).is_file():
        raise TriggerKDError(f"{path} not found: give a run directory (its firmware stage) or a directory "
                             "`trigger-kd import-qonnx` wrote")
    else:
        why = import_problem(fw_dir)
        if why:
            error(f"parity STALE: {why}")
            return 1
        evidence = _exact_rows(fw_dir / IMPORT_CSIM, fw_dir / IMPORT_REFERENCE)
        evidence_names = f"{IMPORT_CSIM} against {IMPORT_REFERENCE}"
    p, frac, n = _record(path)
    what = "class index (argmax) equal" if output == "argmax" else "bit-exact"
    required = float(p.get("required_fraction", 1.0))
    if is_stage:
        required = float(((stamp.get("sections") or {}).get("checks") or {}).get("parity_min_fraction", required))
    if output == "argmax":  # the deployed decision: checks.parity_min_fraction relaxes logits parity only
        required = 1.0
    if evidence is not None and (abs(evidence[0] - frac) > 1e-12 or evidence[1] != n):
        error(f"parity FAILED: {path} says {frac * 100:.3f} % of {n} jets, but {evidence_names} gives "
              f"{evidence[0] * 100:.3f} % of {evidence[1]}")
        return 1
    if evidence is not None:
        frac, n = evidence
    if n > 0 and frac >= required:
        if frac == 1.0:
            at = f" up to {p['compared_at']} ({p.get('verdict')})" if p.get("compared_at", "output") != "output" else ""
            info(f"parity OK: C-simulation {what} on all {n} jets{at} ({path})")
            for caveat in p.get("input_caveats") or []:  # what the inputs it holds on leave out (import-qonnx)
                warn(f"parity holds on these inputs only: {caveat}")
        else:
            warn(f"parity accepted below 100 %: {what} on {frac * 100:.3f} % of {n} jets "
                 f"({p.get('n_mismatched', '?')} differ), at or above checks.parity_min_fraction = {required:g} "
                 f"that the firmware stage applied ({path})")
        return 0
    error(f"parity FAILED: {what} on {frac * 100:.3f} % of {n} jets (required {required * 100:g} %); "
          f"first differing layer: {p.get('first_mismatch_layer')} ({path})")
    return 1


def import_problem(out_dir: Path) -> str | None:
    """Why the files of an import-qonnx directory are not what one complete import wrote (None: they are)."""
    rerun = f"rerun `trigger-kd import-qonnx MODEL --run-dir {out_dir}`"
    record = read_json(out_dir / IMPORT_RECORD)
    if record is None:
        return (f"{out_dir} has no {IMPORT_RECORD} (made by an older trigger-kd, or not by import-qonnx), so its "
                f"{PARITY} cannot be checked against evidence; {rerun}")
    if not record.get("complete") or not record.get("outputs"):
        return f"the import-qonnx run into {out_dir} did not finish (model {record.get('model')}); {rerun}"
    damage = manifest_problem(out_dir, record["outputs"], str(out_dir), IMPORT_RECORD)
    if damage:
        return f"{damage} since import-qonnx wrote it; {rerun}"
    model = Path(record.get("model") or "")
    if model.is_file() and sha256_file(model) != record.get("model_sha256"):
        return (f"{model} changed since its firmware was built in {out_dir}: the firmware is another model's; "
                f"rerun `trigger-kd import-qonnx {model} --run-dir {out_dir}`")
    if not model.is_file():
        warn(f"{model}, the model this firmware was built from, is no longer there: parity is judged against the "
             f"QONNX execution saved when it was imported")
    return None
