"""Stage `student`: the quantisation-aware student, trained with knowledge distillation,
and its float twin (same layers, no quantisers, same initial weights, same loss) for comparison.

Output ``<run-dir>/student/``:
- ``student.pt`` (Brevitas) or ``student.h5`` (QKeras), ``student_float.*``;
- ``intnet.json``: the quantised student as an integer network (the RTL route traces it) and
  ``quant_layers.json``, its per-layer fixed-point formats;
- golden I/O for the later stages: ``test_inputs.npy`` (the exact student input for every
  test jet), ``test_logits.npy`` (quantised), ``test_logits_float.npy``, ``test_is_top.npy``;
- ``metrics.json``: teacher / student / student_float metrics on the test jets and robustness
  to Lorentz boosts and pT smearing; ``roc.png``, ``robustness.png``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..config import Config
from ..console import info
from ..pipeline import RunContext


def run_student(cfg: Config, ctx: RunContext, out: Path) -> dict:
    from ..data.formats import read_canonical
    from ..models.backend import NAMES, student_backend
    from ..train.metrics import binary_metrics, robustness, top_score
    from ..train.plots import robustness_plot, roc_plot

    data, teacher = ctx.dir("data"), ctx.dir("teacher")
    s = cfg.student
    backend = student_backend(s)
    splits = {k: read_canonical(data / f"{k}.h5") for k in ("train", "val", "test")}
    x = {k: backend.inputs(c) for k, (c, _) in splits.items()}
    y = {k: v[1].astype(np.int64) for k, v in splits.items()}
    t_train = np.load(teacher / "logits_train.npy") if cfg.distill.alpha > 0 else None
    histories = backend.train_twins(x["train"], y["train"], t_train, x["val"], y["val"], cfg.distill, out,
                                    progress=ctx.progress)
    models = {name: backend.load(out, name) for name in NAMES}
    net = backend.intnet(models["student"])
    net.save(out / "intnet.json")
    (out / "quant_layers.json").write_text(json.dumps(net.layer_table(), indent=2))
    c_test, is_top = splits["test"]
    q_logits, f_logits = (backend.predict(models[name], x["test"]) for name in NAMES)
    t_logits = np.load(teacher / "logits_test.npy")
    np.save(out / "test_inputs.npy", x["test"].astype(np.float32))
    np.save(out / "test_logits.npy", q_logits)
    np.save(out / "test_logits_float.npy", f_logits)
    np.save(out / "test_is_top.npy", is_top.astype(np.int8))
    scores = {"teacher": top_score(t_logits), "student": top_score(q_logits), "student_float": top_score(f_logits)}
    metrics = {k: binary_metrics(is_top, v) for k, v in scores.items()}
    teacher_metrics = json.loads((teacher / "metrics.json").read_text())
    rob = {"teacher": teacher_metrics["robustness"]}
    for name in NAMES:
        rob[name] = robustness(
            lambda c, m=models[name]: top_score(backend.predict(m, backend.inputs(c))),
            c_test, is_top, betas=cfg.checks.boost_betas, smear=cfg.checks.smear_sigmas, seed=0,
        )
    result = {
        "model": cfg.name,
        "framework": s.framework,
        "arch": s.arch,
        "distill": cfg.distill.model_dump(),
        "n_test_jets": int(len(is_top)),
        **metrics,
        "robustness": rob,
        "training": histories,
        "source": f"{len(is_top)} test jets from {data}",
    }
    (out / "metrics.json").write_text(json.dumps(result, indent=2, default=float))
    roc_plot({k: (is_top, v) for k, v in scores.items()}, out / "roc.png")
    robustness_plot(rob, out / "robustness.png")
    info("[student] " + "; ".join(f"{k}: acc {m['accuracy']:.3f} AUC {m['auc']:.4f}" for k, m in metrics.items()))
    return {k: metrics[k] for k in scores}
