"""The one training loop of every student, whichever framework (the model adapter handed in makes each step, on
the loss of ``train/steps.py``; the loop never imports the adapters).

Recipe: AdamW (``student.lr``, ``student.weight_decay``), the learning rate set before every step by the
schedule (``student.lr_schedule``: ``plateau``, a linear warm-up then the rate lowered by ``lr_factor``
whenever the validation AUC stalls for ``lr_patience`` epochs; or ``one_cycle``, :func:`lr_at` over
``max_epochs``), the KD loss of ``train/distill.py`` (+ the SEAL penalty), batches in a NumPy
permutation seeded by ``student.seed``, each epoch's inputs and teacher targets from the feed
(``train/feed.py``: transfer jets, boosted views). Early stopping on the validation AUC: up to
``max_epochs``, ended after ``patience`` epochs without a gain above ``min_delta``; the weights of the
best-validation epoch are kept. Every epoch's train loss, validation loss (cross entropy on the labels),
validation AUC and accuracy and learning rate are returned (``history``: the epoch curve).
"""
from __future__ import annotations

import math
import time

import numpy as np
from tqdm.auto import tqdm

from ..errors import TriggerKDError
from .steps import KDLoss


def lr_at(step: int, total: int, lr: float, warmup: float = 0.1) -> float:
    """One-cycle learning rate at ``step`` of ``total``: cosine from lr/25 up to lr over the first
    ``warmup`` of the steps, then cosine down to lr/25e4 (PyTorch's OneCycleLR values)."""
    up = max(1.0, warmup * total - 1)
    if step <= up:
        a, b, p = lr / 25, lr, step / up
    else:
        a, b, p = lr, lr / 25e4, (step - up) / max(1.0, total - 1 - up)
    return b + (a - b) * (1 + math.cos(math.pi * min(p, 1.0))) / 2


class PlateauSchedule:
    """Linear warm-up from lr/25 to lr over ``warmup_epochs``, then lr, multiplied by ``lr_factor`` (not below
    ``min_lr``) after every ``lr_patience`` epochs in a row without a validation gain (Keras ReduceLROnPlateau)."""

    def __init__(self, s, per_epoch: int):
        self.s, self.warm, self.rate, self.stall = s, s.warmup_epochs * per_epoch, s.lr, 0

    def at(self, step: int) -> float:
        if step < self.warm:
            return self.s.lr / 25 + (self.s.lr - self.s.lr / 25) * step / self.warm
        return self.rate

    def end_epoch(self, epoch: int, improved: bool) -> None:
        if epoch <= self.s.warmup_epochs:
            return
        self.stall = 0 if improved else self.stall + 1
        if self.stall >= self.s.lr_patience:
            self.rate, self.stall = max(self.rate * self.s.lr_factor, min(self.s.min_lr, self.rate)), 0


class OneCycleSchedule:
    """:func:`lr_at` over ``max_epochs`` (warm-up over the first 10 %, cosine decay after)."""

    def __init__(self, s, per_epoch: int):
        self.total, self.lr = s.max_epochs * per_epoch, s.lr

    def at(self, step: int) -> float:
        return lr_at(step, self.total, self.lr)

    def end_epoch(self, epoch: int, improved: bool) -> None:
        pass


SCHEDULES = {"plateau": PlateauSchedule, "one_cycle": OneCycleSchedule}


def _auc(score: np.ndarray, positive: np.ndarray) -> float | None:
    """Mann-Whitney U with tied scores at their average rank (sklearn's roc_auc_score, no import); None with one
    class only."""
    n1 = int(positive.sum())
    if not 0 < n1 < len(positive):
        return None
    _, inv, count = np.unique(score, return_inverse=True, return_counts=True)
    rank = (np.cumsum(count) - (count - 1) / 2)[inv.reshape(-1)]
    return float((rank[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * (len(positive) - n1)))


def monitor_of(n_classes: int) -> str:
    """What early stopping (and the front's ranking) watches: the validation AUC of a binary tagger, the validation
    accuracy of a K-class one (the figure the 5-class benchmarks quote; a macro AUC is recorded beside it)."""
    return "val_auc" if n_classes == 2 else "val_accuracy"


def validation_scores(logits: np.ndarray, y: np.ndarray) -> dict:
    """Validation loss (cross entropy of the logits on the labels), AUC (binary: of the top score; K classes: the
    macro mean of one-vs-rest AUCs of the logit margins), accuracy. AUC is None when the validation jets hold one
    class only (or none)."""
    if not len(y):
        return {"val_loss": None, "val_auc": None, "val_accuracy": None}
    z = np.asarray(logits, dtype=np.float64)
    top = z.max(axis=1)
    lse = top + np.log(np.exp(z - top[:, None]).sum(axis=1))
    if z.shape[1] == 2:  # the binary formula as it always was (the same bits in old and new epoch curves)
        lse = np.logaddexp(z[:, 0], z[:, 1])
    loss = float(np.mean(lse - z[np.arange(len(y)), y]))
    if z.shape[1] == 2:
        auc = _auc(z[:, 1] - z[:, 0], y == 1)
    else:  # one-vs-rest on log softmax (monotonic in the class probability)
        aucs = [_auc(z[:, k] - lse, y == k) for k in range(z.shape[1])]
        aucs = [a for a in aucs if a is not None]
        auc = float(np.mean(aucs)) if aucs else None
    return {"val_loss": loss, "val_auc": auc, "val_accuracy": float((z.argmax(1) == y).mean())}


def fit(backend, model, feed, x_val, y_val, s, distill, progress: bool = True, bound_required: bool = True) -> dict:
    """Train ``model`` in place on ``feed`` (train/feed.py: the rows, their inputs per epoch, teacher targets,
    SEAL pairs) with ``cfg.student`` (``s``) and ``cfg.distill`` until early stopping or ``s.max_epochs``; keep
    the best-validation-AUC weights. Without a validation AUC (no jets, or one class) every epoch counts as
    an improvement: all ``max_epochs`` run and the last weights are kept. With ``student.max_ebops`` only epochs
    within it are kept; if none is, an error (``bound_required``, the deployed student) or the best-AUC epoch of
    all (a scratch twin, which only serves as a comparison: its history says so)."""
    step = backend.make_step(model, KDLoss(distill, s.seal_lambda))  # the adapter's step on the KD (+ SEAL) loss
    max_ebops = getattr(s, "max_ebops", None)
    rng = np.random.default_rng(s.seed)
    n = len(feed)
    per_epoch = max(1, math.ceil(n / s.batch_size))
    schedule = SCHEDULES[s.lr_schedule](s, per_epoch)
    monitor = monitor_of(getattr(backend, "n_classes", 2))
    best = {"score": -math.inf, "weights": backend.get_weights(model), "epoch": 0, "row": {}}
    best_any = dict(best)  # max_ebops on a twin: its best epoch outside the bound, kept if none is within
    since_best, stopped = 0, "max_epochs"
    history, lrs = [], []
    t0 = time.perf_counter()
    bar = tqdm(total=s.max_epochs * per_epoch, desc=f"student ({backend.framework})", unit="step",
               disable=not progress, leave=False)
    for epoch in range(1, s.max_epochs + 1):
        x, y, t = feed.epoch(epoch - 1)
        t = None if distill.alpha == 0 else t
        order, loss_sum = rng.permutation(n), 0.0
        for i, start in enumerate(range(0, n, s.batch_size)):
            idx = order[start:start + s.batch_size]
            loss, used = step(x[idx], y[idx], None if t is None else t[idx], schedule.at((epoch - 1) * per_epoch + i),
                              feed.seal_inputs(epoch - 1, idx))
            loss_sum += loss * len(idx)
            lrs.append(used)
            bar.update(1)
        row = {"epoch": epoch, "lr": lrs[-1], "train_loss": loss_sum / max(n, 1),
               **validation_scores(backend.predict(model, x_val), y_val), "seconds": time.perf_counter() - t0}
        ebops = backend.ebops(model)
        if ebops is not None:  # HGQ2: the resource the EBOPs penalty acts on, epoch by epoch (epoch_curve.json)
            row["ebops"] = ebops
        history.append(row)
        auc = row[monitor]  # the monitored validation figure (binary: AUC; K classes: accuracy)
        # student.max_ebops (HGQ2): only epochs within the bound can be kept; until the first one, no stall counts
        within = max_ebops is None or ebops is None or ebops <= max_ebops
        if not within and not bound_required and (auc or -math.inf) > best_any["score"]:
            best_any = {"score": auc, "weights": backend.get_weights(model), "epoch": epoch, "row": row}
        improved = within and (auc is None or auc > best["score"] + s.min_delta)
        if improved:
            best = {"score": -math.inf if auc is None else auc, "weights": backend.get_weights(model),
                    "epoch": epoch, "row": row}
            since_best = 0
        elif best["epoch"]:
            since_best += 1
        bar.set_postfix({"loss": f"{row['train_loss']:.4f}", monitor: f"{auc or float('nan'):.4f}", "best": best["epoch"]})
        schedule.end_epoch(epoch, improved or not within)
        if since_best >= s.patience:
            stopped = (f"early stopping: no validation {'AUC' if monitor == 'val_auc' else 'accuracy'} gain above "
                       f"{s.min_delta:g} in {s.patience} epochs")
            break
    bar.close()
    if not best["epoch"] and not bound_required and best_any["epoch"]:  # a comparison twin: its best epoch, said so
        stopped = f"{stopped}; no epoch within student.max_ebops={max_ebops:g}: kept the best of all"
        best = best_any
    if not best["epoch"]:  # max_ebops: no epoch within the bound
        lowest = min(history, key=lambda r: r.get("ebops", math.inf))
        raise TriggerKDError(
            f"student.max_ebops={max_ebops:g}: no epoch of the {backend.framework} student came within it in "
            f"{len(history)} epochs (lowest {lowest.get('ebops', math.nan):.0f} EBOPs at epoch {lowest['epoch']}); "
            "raise student.max_ebops, or student.ebops_beta to trim harder, or student.max_epochs")
    backend.set_weights(model, best["weights"])
    seconds = time.perf_counter() - t0
    return {"epochs": len(history), "max_epochs": s.max_epochs, "stopped": stopped, "lr_schedule": s.lr_schedule,
            "patience": s.patience, "min_delta": s.min_delta, "monitor": monitor, "max_ebops": max_ebops,
            "best_epoch": best["epoch"], "best_val_auc": best["row"].get("val_auc"),
            "best_val_accuracy": best["row"].get("val_accuracy"), "best_val_loss": best["row"].get("val_loss"),
            "train_seconds": seconds, "jets": n, "jets_per_second": n * len(history) / max(seconds, 1e-9),
            "history": history, "lr_per_step": lrs}
