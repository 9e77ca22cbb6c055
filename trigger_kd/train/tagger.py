"""A tagger's figures for its task (``trigger_kd/classes.py`` Task): binary or K classes, one entry point for the stages."""
from __future__ import annotations

from typing import Callable

import numpy as np

from .metrics import binary_metrics, signal_score


def tagger_metrics(task, y, logits, threshold: float = 0.5) -> dict:
    """The test figures of a tagger's (N, K) logits for its task (``trigger_kd/classes.py``): binary, those of
    :func:`binary_metrics` on the signal score; K classes, ``train/multiclass.py``'s (accuracy, macro and
    per-class one-vs-rest AUC, confusion matrix, rejection of the QCD classes for top, W and Z)."""
    if not task.multiclass:
        return binary_metrics(y, signal_score(logits), threshold)
    from .multiclass import multiclass_metrics

    return multiclass_metrics(y, logits, task.outputs, task.signal_outputs(), task.qcd_outputs())


def task_metrics_fn(task) -> Callable[[np.ndarray, np.ndarray], dict]:
    """(labels, logits) -> figures, for ``metrics.robustness`` with a score function that gives the logits."""
    return lambda y, out: tagger_metrics(task, y, out)
