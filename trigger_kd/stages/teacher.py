"""Stage `teacher`: train the teacher (``teacher.arch``: LorentzNet or the transformer) on ``teacher.device``, then
cache its logits for every jet.

Output (content-addressed cache, linked from ``<run-dir>/teacher``):
``teacher.pt``, ``history.json``, ``logits_{train,val,test}.npy`` ((N, K) float32, K = 2 or data.classes, row
order of the data files), ``metrics.json`` (test metrics + boost/smearing robustness, the
architecture, the device and GPU it ran on).
Students read the cached logits and never rerun the teacher.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import Config
from ..console import info
from ..rundir import DATA, METRICS, SPLITS, TEACHER_MODEL, TeacherMetrics, split_file, teacher_logits_file
from ..stage import RunContext


def run_teacher(cfg: Config, ctx: RunContext, out: Path) -> dict:
    from ..data.formats import read_canonical, read_task
    from ..numerics import require
    from ..train.metrics import robustness
    from ..train.tagger import tagger_metrics, task_metrics_fn
    from ..train.teacher import load_teacher, teacher_logits, train_teacher

    arithmetic = require("the teacher stage")
    data = ctx.dir(DATA)
    settings = cfg.teacher.resolved  # the config section itself, device: auto resolved as in the stamp
    train_info = train_teacher(data / split_file("train"), data / split_file("val"), settings, out,
                               progress=ctx.progress)
    model = load_teacher(out / TEACHER_MODEL, settings.device)
    n = settings.n_particles
    for split in SPLITS:
        constituents, _ = read_canonical(data / split_file(split))
        logits = teacher_logits(model, constituents, n, progress=ctx.progress)
        np.save(out / teacher_logits_file(split), logits.astype(np.float32))
    constituents, labels = read_canonical(data / split_file("test"))
    task = read_task(data / split_file("test"))
    test_logits = np.load(out / teacher_logits_file("test"))
    metrics = tagger_metrics(task, labels, test_logits)
    rob = robustness(
        lambda c: teacher_logits(model, c, n, progress=False),
        constituents, labels, betas=cfg.checks.boost_betas, smear=cfg.checks.smear_sigmas, seed=0,
            metrics=task_metrics_fn(task),
    )
    device = {"name": train_info["device"], "gpu": train_info["gpu"], "amp": train_info["amp"]}
    result = TeacherMetrics(test=metrics, robustness=rob, training=train_info,
                            n_params=int(sum(p.numel() for p in model.parameters())),
                            rest={"arch": settings.arch, "device": device, "numerics": arithmetic})
    result.write(out / METRICS)
    info(f"[teacher] {settings.arch} on {device['gpu'] or device['name']} ({task.describe()}): test accuracy "
         f"{metrics['accuracy']:.3f}, AUC {metrics['auc']:.4f}{' (macro)' if task.multiclass else ''} on "
         f"{metrics['n_jets']} jets")
    return {"test": metrics, "n_params": result.n_params}
