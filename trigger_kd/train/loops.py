"""The one training loop of every student, whichever framework (the backend makes each step).

Recipe: AdamW (``student.lr``, ``student.weight_decay``), the learning rate set before every step
from :func:`lr_at`, the KD loss of ``train/distill.py`` (+ the SEAL penalty), batches in a NumPy
permutation seeded by ``student.seed``, each epoch's inputs and teacher targets from the feed
(``train/feed.py``: transfer jets, boosted views), and the weights of the epoch with the best
validation accuracy kept.
"""
from __future__ import annotations

import math
import time

import numpy as np
from tqdm.auto import tqdm


def lr_at(step: int, total: int, lr: float, warmup: float = 0.1) -> float:
    """One-cycle learning rate at ``step`` of ``total``: cosine from lr/25 up to lr over the first
    ``warmup`` of the steps, then cosine down to lr/25e4 (PyTorch's OneCycleLR values)."""
    up = max(1.0, warmup * total - 1)
    if step <= up:
        a, b, p = lr / 25, lr, step / up
    else:
        a, b, p = lr, lr / 25e4, (step - up) / max(1.0, total - 1 - up)
    return b + (a - b) * (1 + math.cos(math.pi * min(p, 1.0))) / 2


def fit(backend, model, feed, x_val, y_val, s, distill, progress: bool = True) -> dict:
    """Train ``model`` in place on ``feed`` (train/feed.py: the rows, their inputs per epoch, teacher
    targets, SEAL pairs) with ``cfg.student`` (``s``) and ``cfg.distill``; keep the best-val-accuracy weights."""
    step = backend.make_step(model, distill)
    rng = np.random.default_rng(s.seed)
    n = len(feed)
    per_epoch = max(1, math.ceil(n / s.batch_size))
    total = s.epochs * per_epoch
    best = (-1.0, backend.get_weights(model), 0)
    history, lrs = [], []
    t0 = time.perf_counter()
    bar = tqdm(total=total, desc=f"student ({backend.framework})", unit="step", disable=not progress, leave=False)
    for epoch in range(1, s.epochs + 1):
        x, y, t = feed.epoch(epoch - 1)
        t = None if distill.alpha == 0 else t
        order, loss_sum = rng.permutation(n), 0.0
        for i, start in enumerate(range(0, n, s.batch_size)):
            idx = order[start:start + s.batch_size]
            loss, used = step(x[idx], y[idx], None if t is None else t[idx], lr_at((epoch - 1) * per_epoch + i, total, s.lr),
                              feed.seal_inputs(epoch - 1, idx))
            loss_sum += loss * len(idx)
            lrs.append(used)
            bar.update(1)
        val_acc = float((backend.predict(model, x_val).argmax(1) == y_val).mean()) if len(y_val) else float("nan")
        history.append({"epoch": epoch, "loss": loss_sum / max(n, 1), "val_accuracy": val_acc})
        bar.set_postfix(loss=f"{history[-1]['loss']:.4f}", val_acc=f"{val_acc:.4f}")
        if val_acc > best[0]:
            best = (val_acc, backend.get_weights(model), epoch)
    bar.close()
    backend.set_weights(model, best[1])
    seconds = time.perf_counter() - t0
    return {"epochs": s.epochs, "best_epoch": best[2], "best_val_accuracy": best[0], "train_seconds": seconds,
            "jets": n, "jets_per_second": n * s.epochs / max(seconds, 1e-9), "history": history, "lr_per_step": lrs}
