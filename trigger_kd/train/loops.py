"""One training loop for the PyTorch (Brevitas and float) students."""
from __future__ import annotations

import copy
import time

import numpy as np
import torch
from tqdm.auto import tqdm

from .distill import kd_loss
from .settings import TrainSettings


@torch.no_grad()
def predict_logits(model: torch.nn.Module, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """Logits (N, 2) as float64 (the quantised student's outputs are exact on their grid)."""
    model.eval()
    out = [model(torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size], dtype=np.float32))).double()
           for i in range(0, len(x), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0, 2))


def _accuracy(model, x, y) -> float:
    return float((predict_logits(model, x).argmax(1) == y).mean()) if len(y) else float("nan")


def train_student(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, teacher_logits: np.ndarray | None,
                  x_val: np.ndarray, y_val: np.ndarray, settings: TrainSettings, progress: bool = True) -> dict:
    """Train in place (AdamW, cosine schedule, KD loss); keep the best-validation-accuracy weights."""
    if settings.threads > 0:
        torch.set_num_threads(settings.threads)
    gen = torch.Generator().manual_seed(settings.seed)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    tt = None if teacher_logits is None or settings.alpha == 0 else torch.from_numpy(
        np.asarray(teacher_logits, dtype=np.float32))
    if tt is not None and len(tt) != len(xt):
        raise ValueError(f"teacher logits for {len(tt)} jets but {len(xt)} training jets")
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    steps = max(1, settings.epochs * int(np.ceil(len(xt) / settings.batch_size)))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=settings.lr, total_steps=steps, pct_start=0.1)
    best = (-1.0, copy.deepcopy(model.state_dict()), 0)
    history = []
    t0 = time.perf_counter()
    bar = tqdm(total=steps, desc="student", unit="step", disable=not progress, leave=False)
    for epoch in range(settings.epochs):
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        total, n = 0.0, 0
        for i in range(0, len(perm), settings.batch_size):
            idx = perm[i:i + settings.batch_size]
            logits = model(xt[idx])
            loss = kd_loss(logits, yt[idx], None if tt is None else tt[idx], settings.alpha, settings.temperature)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            n += len(idx)
            bar.update(1)
        val_acc = _accuracy(model, x_val, y_val)
        history.append({"epoch": epoch + 1, "loss": total / max(n, 1), "val_accuracy": val_acc})
        bar.set_postfix(loss=f"{total / max(n, 1):.4f}", val_acc=f"{val_acc:.4f}")
        if val_acc > best[0]:
            best = (val_acc, copy.deepcopy(model.state_dict()), epoch + 1)
    bar.close()
    model.load_state_dict(best[1])
    model.eval()
    seconds = time.perf_counter() - t0
    return {"epochs": settings.epochs, "best_epoch": best[2], "best_val_accuracy": best[0],
            "train_seconds": seconds, "jets_per_second": len(xt) * settings.epochs / max(seconds, 1e-9),
            "history": history}
