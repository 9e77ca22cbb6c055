"""`trigger-kd diagnose RUN_DIR`: generalisation diagnostics of a run in ``RUN_DIR/diagnostics.json``.

- curvature: leading Hessian eigenvalue and trace of the training loss of the teacher
  (cross-entropy) and of the float twin (its KD loss, with the cached teacher logits), on the
  first ``curvature_jets`` training jets (``trigger_kd/train/curvature.py``);
- compressibility: the run's teacher distilled into the fixed reference student with MSE on
  logits, MSE per epoch (``compressibility.py``);
- smearing: AUC and accuracy vs sigma of p'T = pT (1 + sigma eps), from the student stage's
  robustness checks on the test jets;
- ood: every ``RUN_DIR/evaluate/*.json`` (``trigger-kd evaluate``).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import TriggerKDError
from ..rundir import DIAGNOSTICS, METRICS, read_json, split_file, teacher_logits_file


def _teacher_curvature(models, c, y, batch_size, **kw) -> dict:
    import torch

    from ..models.teachers import teacher_batch
    from ..train.curvature import loss_curvature

    model = models.teacher
    n = models.cfg.teacher.n_particles
    batches = [(teacher_batch(model, c[i:i + batch_size], n), torch.from_numpy(y[i:i + batch_size]))
               for i in range(0, len(y), batch_size)]

    def loss(m, batch):
        return torch.nn.functional.cross_entropy(m(batch[0]), batch[1])

    return {"loss": "cross-entropy", **loss_curvature(model, batches, loss, **kw)}


def _student_curvature(models, c, y, t_logits, batch_size, **kw) -> dict:
    import torch

    from ..train.curvature import loss_curvature
    from ..train.distill import kd_loss

    model = models.float_student_torch()
    if model is None:
        return {"skipped": f"the {models.cfg.student.framework} float twin is not a torch model: "
                           "curvature is measured for Brevitas students only"}
    d = models.cfg.distill
    x = models.student_inputs(c).astype(np.float32)
    t = None if d.alpha == 0 else torch.from_numpy(t_logits.astype(np.float32))
    # batch = ((inputs, teacher logits), labels): the labels last, as loss_curvature counts jets by them
    batches = [((torch.from_numpy(x[i:i + batch_size]), None if t is None else t[i:i + batch_size]),
                torch.from_numpy(y[i:i + batch_size])) for i in range(0, len(y), batch_size)]

    def loss(m, batch):
        (xb, tb), yb = batch
        return kd_loss(m(xb), yb, tb, d.alpha, d.temperature)

    name = "cross-entropy" if d.alpha == 0 else f"KD loss (alpha {d.alpha}, T {d.temperature})"
    return {"loss": name, **loss_curvature(model, batches, loss, **kw)}


def _points(smear):
    if not isinstance(smear, list):
        return smear
    return [{k: p.get(k) for k in ("sigma", "auc", "accuracy")} if isinstance(p, dict) else p for p in smear]


def _smearing(student_metrics: dict) -> dict:
    """The smearing points of the student stage's ``robustness``; a damaged one keeps what it lacks as None (or a
    non-list), for ``report.records.diagnostics_problems`` to name before anything is written."""
    rob = student_metrics.get("robustness")
    rob = {m: r for m, r in rob.items() if isinstance(r, dict)} if isinstance(rob, dict) else {}
    out = {m: _points(r.get("smear", [])) for m, r in rob.items()}
    n = {m: r.get("n_jets") for m, r in rob.items()}
    return {**out, "n_jets": n, "source": "student/metrics.json robustness (test jets; the same draws per sigma)"}


def _logits(teacher_dir: Path, split: str, n_jets: int, jets: Path) -> np.ndarray:
    """The teacher stage's cached logits of one split, (n_jets, 2) finite, as many as the split's jets (``jets``)."""
    path = teacher_dir / teacher_logits_file(split)
    try:
        t = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise TriggerKDError(f"{path}: unreadable ({e}); rerun the teacher stage") from None
    if t.ndim != 2 or t.shape[1] != 2 or t.dtype.kind != "f":
        raise TriggerKDError(f"{path}: teacher logits must be (jets, 2) floats, found {t.dtype} {t.shape}; rerun the "
                             "teacher stage")
    if len(t) != n_jets:
        raise TriggerKDError(f"{path} holds the logits of {len(t)} jets, {jets} has {n_jets}: they contradict each "
                             "other; rerun the teacher stage")
    if not np.isfinite(t).all():
        raise TriggerKDError(f"{path}: {int((~np.isfinite(t)).sum())} NaN/inf teacher logits; rerun the teacher stage")
    return t


def diagnose(run_dir: Path, curvature_jets: int = 256, power_iterations: int = 20, trace_samples: int = 20,
             compress_epochs: int = 20, seed: int = 0, progress: bool = True) -> dict:
    """Compute the diagnostics of ``run_dir`` and write ``RUN_DIR/diagnostics.json``; every argument is checked
    before any work, and a result its reader would refuse (``report.records``) is never written."""
    from .inputs import MAX_ARGUMENT, MAX_SEED, check_counts

    check_counts(curvature_jets=(curvature_jets, 1, None),  # more than the training jets: all of them
                 power_iterations=(power_iterations, 1, MAX_ARGUMENT), trace_samples=(trace_samples, 2, MAX_ARGUMENT),
                 compress_epochs=(compress_epochs, 1, MAX_ARGUMENT), seed=(seed, 0, MAX_SEED))
    import torch

    from ..atomic import write_text_atomic
    from ..console import info
    from ..classes import describe
    from ..data.formats import read_canonical
    from ..report.generalisation import current_evaluations
    from ..report.records import diagnostics_problems, why
    from .compressibility import distillation_curve, reference_inputs
    from .run_models import RunModels

    run_dir = Path(run_dir)
    models = RunModels(run_dir, "diagnose")
    data, teacher_dir = models.dirs["data"], models.dirs["teacher"]
    c_train, y_train = read_canonical(data / split_file("train"))
    c_val, _ = read_canonical(data / split_file("val"))
    t_train = _logits(teacher_dir, "train", len(c_train), data / split_file("train"))
    t_val = _logits(teacher_dir, "val", len(c_val), data / split_file("val"))
    student_metrics = read_json(models.dirs["student"] / METRICS)
    if student_metrics is None:
        raise TriggerKDError(f"{models.dirs['student'] / METRICS}: missing or not a JSON object; rerun the student "
                             "stage")
    n = min(curvature_jets, len(y_train))
    c, y = c_train[:n], y_train[:n].astype(np.int64)
    kw = {"max_iter": power_iterations, "tol": 1e-3, "trace_samples": trace_samples, "seed": seed}
    torch.manual_seed(seed)
    info(f"[diagnose] loss curvature of the teacher and the float twin on {n} training jets")
    curvature = {
        "teacher": _teacher_curvature(models, c, y, batch_size=128, **kw),
        "student_float": _student_curvature(models, c, y, t_train[:n], batch_size=256, **kw),
        "source": f"first {n} training jets of {data / split_file('train')}",
    }
    info(f"[diagnose] compressibility: the teacher's logits distilled into the reference student "
         f"({compress_epochs} epochs, {len(c_train)} training jets)")
    compress = distillation_curve(reference_inputs(c_train), t_train, reference_inputs(c_val), t_val,
                                  epochs=compress_epochs)
    cfg = models.cfg
    result = {
        "run_dir": str(run_dir),
        "model": cfg.name,
        "task": describe(cfg.data.signal, cfg.data.background),
        "in_distribution": {m: student_metrics.get(m) for m in ("teacher", "student", "student_float")},
        "curvature": curvature,
        "compressibility": compress,
        "smearing": _smearing(student_metrics),
        "ood": current_evaluations(run_dir)[0],
        "made_from": models.made_from,  # the stages' outputs it was computed from (runcheck.stale_result)
        "settings": {"curvature_jets": n, "power_iterations": power_iterations, "power_tol": 1e-3,
                     "trace_samples": trace_samples, "compress_epochs": compress_epochs, "seed": seed},
    }
    problems = diagnostics_problems(result)  # what its reader would refuse is never written
    if problems:
        raise TriggerKDError(f"{run_dir}: the diagnostics came out invalid ({why(problems)}); nothing written to "
                             f"{run_dir / DIAGNOSTICS}")
    write_text_atomic(run_dir / DIAGNOSTICS, json.dumps(result, indent=2, default=float))
    info(f"[diagnose] lambda_max teacher {curvature['teacher']['lambda_max']:.4g}, trace "
         f"{curvature['teacher']['trace']:.4g}; reference-student val MSE {compress['final_val_mse']:.4g} "
         f"-> {run_dir / DIAGNOSTICS}")
    return result
