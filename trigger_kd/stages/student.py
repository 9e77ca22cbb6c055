"""Stage `student`: the quantisation-aware student, trained with knowledge distillation, its float
twin (same layers, no quantisers, same initial weights, same loss) and its scratch twin (the same
quantised student, same initial weights, labelled jets, boosted views, SEAL and schedule, no teacher).

Output ``<run-dir>/student/``:
- ``student.pt`` (Brevitas) or ``student.h5`` (QKeras), ``student_float.*``, ``student_scratch.*``;
- ``intnet.json``: the quantised student as an integer network (the RTL route traces it) and
  ``quant_layers.json``, its per-layer fixed-point formats;
- golden I/O for the later stages: ``test_inputs.npy`` (the exact student input for every
  test jet), ``test_logits.npy`` (quantised), ``test_logits_float.npy``, ``test_is_signal.npy``;
- ``metrics.json``: teacher / student / student_float / student_scratch metrics on the test jets,
  the same on the validation jets (``validation``: what settings are chosen by), and robustness
  to Lorentz boosts and pT smearing, and the jet-mass baselines on the same test and validation jets
  (``baselines``: the mass of the student's own input constituents and of all constituents,
  ``train/baselines.py``); ``roc.png``, ``robustness.png``;
- ``epoch_curve.json`` (``EpochCurve``): per model and epoch, train loss, validation loss and AUC, learning
  rate, the best-validation epoch kept and why training stopped; ``epoch_curve.png``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..config import Config
from ..console import info
from ..train.loops import monitor_of
from ..rundir import (CONFUSION_PLOT, DATA, EPOCH_CURVE, EPOCH_CURVE_PLOT, INTNET, METRICS, QUANT_LAYERS, ROBUSTNESS_PLOT, ROC_PLOT,
                      SPLITS, TEACHER, TEST_INPUTS, TEST_LABELS, TEST_LOGITS, TEST_LOGITS_FLOAT, TRANSFER, TRANSFER_JETS,
                      TRANSFER_LOGITS, EpochCurve, StudentMetrics, TeacherMetrics, split_file, teacher_logits_file, view_betas_file,
                      view_logits_file)
from ..stage import RunContext


def training_feed(cfg: Config, backend, train, teacher: Path, transfer: Path):
    """The KD student's rows: labelled training jets, plus (with a teacher) the transfer jets; their
    teacher targets; the boosted views of the transfer stage; the SEAL setting. The features are the
    adapter's (``backend.features``: made once from the config)."""
    from ..data.transfer import read_transfer
    from ..train.feed import UNLABELLED, DistillFeed, LorentzJets

    distill, student, features = cfg.distill, cfg.student, backend.features
    c, y = train
    jets, labels = [LorentzJets.from_constituents(c, features.n_particles, features.jet_pt)], [y.astype(np.int64)]
    kd = distill.uses_teacher
    t = [np.load(teacher / teacher_logits_file("train"))] if kd else None
    views = distill.augment_max_beta > 0
    betas = [np.load(transfer / view_betas_file("train"))] if views else None
    view_t = [np.load(transfer / view_logits_file("train"))] if views and kd else None
    if kd and (transfer / TRANSFER_JETS).is_file():  # the transfer stage makes none from scratch
        c_tr = read_transfer(transfer / TRANSFER_JETS)
        jets.append(LorentzJets.from_constituents(c_tr, features.n_particles, features.jet_pt))
        labels.append(np.full(len(c_tr), UNLABELLED))
        t.append(np.load(transfer / TRANSFER_LOGITS))
        if views:
            betas.append(np.load(transfer / view_betas_file("transfer")))
            view_t.append(np.load(transfer / view_logits_file("transfer")))
    return DistillFeed(LorentzJets.concat(jets), np.concatenate(labels), backend.inputs_from_features,
                       teacher=None if t is None else np.concatenate(t),
                       view_betas=None if betas is None else np.concatenate(betas, axis=1),
                       view_teacher=None if view_t is None else np.concatenate(view_t, axis=1),
                       seal_lambda=student.seal_lambda, seal_max_beta=student.seal_max_beta, seed=student.seed)


def run_student(cfg: Config, ctx: RunContext, out: Path) -> dict:
    from ..data.formats import read_canonical, read_task
    from ..models.backend import NAMES, SCRATCH, student_backend
    from ..numerics import require
    from ..train.plots import robustness_plot
    from ..train.tagger import tagger_metrics

    require("the student stage")
    data, teacher, transfer = ctx.dir(DATA), ctx.dir(TEACHER), ctx.dir(TRANSFER)
    task = read_task(data / split_file("test"))
    backend = student_backend(cfg.student, n_classes=task.n_classes)
    features = backend.features  # computed once from the config, handed down to the feed and the checks
    splits = {k: read_canonical(data / split_file(k)) for k in SPLITS}
    feats = {k: features(splits[k][0]) for k in ("val", "test")}
    x = {k: backend.inputs_from_features(f) for k, f in feats.items()}
    y = {k: v[1].astype(np.int64) for k, v in splits.items()}
    feed = training_feed(cfg, backend, splits["train"], teacher, transfer)
    saturated = {"training": features.check_range(feed.jets.features(), "training and transfer"),
                 "test": features.saturated(feats["test"])}
    histories = _train(backend, feed, x["val"], y["val"], cfg.distill, out, ctx)
    names = [*NAMES, SCRATCH] if cfg.distill.with_scratch_twin else list(NAMES)
    models = _load_and_trace(backend, names, out)
    c_test, is_signal = splits["test"]
    scores = {"teacher": np.load(teacher / teacher_logits_file("test"))} | _golden_io(backend, models, x["test"],
                                                                                     is_signal, out)
    metrics = {k: tagger_metrics(task, is_signal, v) for k, v in scores.items()}
    val_scores = {"teacher": np.load(teacher / teacher_logits_file("val"))} | {
        name: backend.predict(models[name], x["val"]) for name in names}
    validation = {k: tagger_metrics(task, y["val"], v) for k, v in val_scores.items()}
    rob = _robustness(cfg, task, backend, models, teacher / METRICS, c_test, is_signal)
    _write_metrics(cfg, task, backend, splits, feed, out / METRICS, saturated=saturated, input_shape=x["test"].shape,
                   models=metrics, validation=validation, robustness=rob, histories=histories, data=data)
    _plots(task, is_signal, scores, metrics, out, splits["test"][0], cfg.student.n_particles)
    robustness_plot(rob, out / ROBUSTNESS_PLOT)
    info("[student] " + "; ".join(f"{k}: acc {m['accuracy']:.3f} AUC {m['auc']:.4f}" for k, m in metrics.items()))
    return {k: metrics[k] for k in scores}


def _train(backend, feed, x_val, y_val, distill, out: Path, ctx: RunContext) -> dict:
    """Train the student and its twins; write the epoch curve (``epoch_curve.json``, ``epoch_curve.png``) and say
    each model's best validation figure. Returns the histories."""
    from ..train.plots import epoch_curve_plot
    from ..train.twins import train_twins

    histories = train_twins(backend, feed, x_val, y_val, distill, out, progress=ctx.progress,
                            scratch_twin=distill.with_scratch_twin)
    for h in histories.values():
        h.pop("lr_per_step", None)  # the epoch curve has the rate per epoch
    EpochCurve(models=histories).write(out / EPOCH_CURVE)
    epoch_curve_plot(histories, out / EPOCH_CURVE_PLOT)
    for name, h in histories.items():
        what = "AUC" if h["monitor"] == "val_auc" else "accuracy"
        best = h["best_val_auc"] if h["monitor"] == "val_auc" else h["best_val_accuracy"]
        info(f"[student] {name}: best validation {what} {best or float('nan'):.4f} at epoch {h['best_epoch']} "
             f"of {h['epochs']} ({h['stopped']}; max {h['max_epochs']})")
    return histories


def _load_and_trace(backend, names: list[str], out: Path) -> dict:
    """The trained models by name; the quantised student traced once into ``intnet.json`` and
    ``quant_layers.json`` (the later stages read them)."""
    from ..synth.hgq_trace import student_intnet

    models = {name: backend.load(out, name) for name in names}
    net = student_intnet(backend, models["student"])
    net.save(out / INTNET)
    (out / QUANT_LAYERS).write_text(json.dumps(net.layer_table(), indent=2))
    return models


def _golden_io(backend, models: dict, x_test: np.ndarray, is_signal: np.ndarray, out: Path) -> dict:
    """Every model's test logits; the golden I/O of the later stages written (inputs, quantised and float logits,
    labels)."""
    logits = {name: backend.predict(model, x_test) for name, model in models.items()}
    np.save(out / TEST_INPUTS, x_test.astype(np.float32))
    np.save(out / TEST_LOGITS, logits["student"])
    np.save(out / TEST_LOGITS_FLOAT, logits["student_float"])
    np.save(out / TEST_LABELS, is_signal.astype(np.int8))
    return logits


def _robustness(cfg: Config, task, backend, models: dict, teacher_metrics: Path, c_test, is_signal) -> dict:
    """Robustness to Lorentz boosts and pT smearing per model (the teacher's from its stage's metrics)."""
    from ..train.metrics import robustness
    from ..train.tagger import task_metrics_fn

    rob = {"teacher": TeacherMetrics.read(teacher_metrics).robustness}
    for name, model in models.items():
        rob[name] = robustness(
            lambda c, m=model: backend.predict(m, backend.inputs(c)),
            c_test, is_signal, betas=cfg.checks.boost_betas, smear=cfg.checks.smear_sigmas, seed=0,
            metrics=task_metrics_fn(task),
        )
    return rob


def _write_metrics(cfg: Config, task, backend, splits: dict, feed, path: Path, *, saturated: dict, input_shape,
                   models: dict, validation: dict, robustness: dict, histories: dict, data: Path) -> None:
    """``metrics.json`` (``StudentMetrics``)."""
    from .. import numerics

    student, distill, features = cfg.student, cfg.distill, backend.features
    n_test, n_val = len(splits["test"][1]), len(splits["val"][1])
    StudentMetrics(
        model=cfg.name,
        framework=student.framework,
        arch=student.arch,
        seed=student.seed,
        distill=distill.model_dump(),
        seal={"lambda": student.seal_lambda, "max_beta": student.seal_max_beta},
        inputs={"n_particles": features.n_particles, "features": list(features.names),
                "layout": backend.layout, "shape": list(input_shape[1:]),
                "saturated_jets": saturated},
        n_test_jets=int(n_test),
        n_training_jets={"labelled": int(len(splits["train"][1])), "transfer": int((feed.labels < 0).sum()),
                         "boosted_views": feed.n_views},
        models=models,
        validation=validation,
        robustness=robustness,
        training={k: {key: v for key, v in h.items() if key != "history"} for k, h in histories.items()},
        baselines=_baselines(task, splits, student.n_particles),
        task={"outputs": list(task.outputs), "multiclass": task.multiclass, "describe": task.describe(),
              "monitor": monitor_of(task.n_classes)},
        runtime={"threads_requested": student.threads, **backend.runtime(), "numerics": numerics.state()},
        source=f"{n_test} test jets and {n_val} validation jets from {data}",
    ).write(path)


def _baselines(task, splits, n_particles: int) -> dict:
    """What a physicist tries first, on the same jets: binary, the jet mass as the score (of the student's inputs
    and of all constituents); K classes, classifiers on the jet mass of the student's inputs and on classic
    substructure (mass, tau21, tau32, multiplicity), fitted on the training jets (``train/multiclass_baselines.py``)."""
    if not task.multiclass:
        from ..train.baselines import jet_mass_baselines

        return jet_mass_baselines({"test": splits["test"], "val": splits["val"]}, n_particles)
    from ..train.multiclass_baselines import substructure_baselines

    return substructure_baselines(splits, n_particles, task.outputs, task.signal_outputs(), task.qcd_outputs())


def _plots(task, labels, scores: dict, metrics: dict, out: Path, test_constituents, n_particles: int) -> None:
    """roc.png (binary: background rejection vs signal efficiency per model and of the jet-mass baselines, dotted;
    K classes: one-vs-rest per class of the quantised student, teacher dashed) and, for K classes, confusion.png
    (the quantised student's). ``scores``: each model's test logits."""
    if not task.multiclass:
        from ..train.baselines import baseline_curves
        from ..train.metrics import signal_score
        from ..train.plots import roc_plot

        roc_plot({k: (labels, signal_score(v)) for k, v in scores.items()}
                 | baseline_curves(labels, test_constituents, n_particles), out / ROC_PLOT)
        return
    from ..train.multiclass_plots import confusion_plot, per_class_roc_plot

    per_class_roc_plot(labels, scores["student"], task.outputs, out / ROC_PLOT,
                       extra={"teacher": (labels, scores["teacher"])})
    confusion_plot(metrics["student"]["confusion"], out / CONFUSION_PLOT,
                   f"quantised student, {metrics['student']['n_jets']} test jets")
