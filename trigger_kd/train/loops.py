"""The one training loop of every student, whichever framework (the backend makes each step).

Recipe: AdamW (``student.lr``, ``student.weight_decay``), the learning rate set before every step
from :func:`lr_at`, the KD loss of ``train/distill.py``, batches in a NumPy permutation seeded by
``student.seed``, and the weights of the epoch with the best validation accuracy kept.
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


def fit(backend, model, x, y, teacher, x_val, y_val, s, distill, progress: bool = True) -> dict:
    """Train ``model`` in place with ``cfg.student`` (``s``) and ``cfg.distill``; keep the best-val-accuracy weights."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    t = None if teacher is None or distill.alpha == 0 else np.asarray(teacher, dtype=np.float32)
    if t is not None and len(t) != len(x):
        raise ValueError(f"teacher logits for {len(t)} jets but {len(x)} training jets: rerun the teacher stage")
    step = backend.make_step(model, distill)
    rng = np.random.default_rng(s.seed)
    per_epoch = max(1, math.ceil(len(x) / s.batch_size))
    total = s.epochs * per_epoch
    best = (-1.0, backend.get_weights(model), 0)
    history, lrs = [], []
    t0 = time.perf_counter()
    bar = tqdm(total=total, desc=f"student ({backend.framework})", unit="step", disable=not progress, leave=False)
    for epoch in range(1, s.epochs + 1):
        order, loss_sum = rng.permutation(len(x)), 0.0
        for i, start in enumerate(range(0, len(x), s.batch_size)):
            idx = order[start:start + s.batch_size]
            loss, used = step(x[idx], y[idx], None if t is None else t[idx], lr_at((epoch - 1) * per_epoch + i, total, s.lr))
            loss_sum += loss * len(idx)
            lrs.append(used)
            bar.update(1)
        val_acc = float((backend.predict(model, x_val).argmax(1) == y_val).mean()) if len(y_val) else float("nan")
        history.append({"epoch": epoch, "loss": loss_sum / max(len(x), 1), "val_accuracy": val_acc})
        bar.set_postfix(loss=f"{history[-1]['loss']:.4f}", val_acc=f"{val_acc:.4f}")
        if val_acc > best[0]:
            best = (val_acc, backend.get_weights(model), epoch)
    bar.close()
    backend.set_weights(model, best[1])
    seconds = time.perf_counter() - t0
    return {"epochs": s.epochs, "best_epoch": best[2], "best_val_accuracy": best[0], "train_seconds": seconds,
            "jets_per_second": len(x) * s.epochs / max(seconds, 1e-9), "history": history, "lr_per_step": lrs}
