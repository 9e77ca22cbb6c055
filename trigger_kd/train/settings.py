"""Training settings shared by the Brevitas and QKeras students."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 10
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 1
    alpha: float = 0.7  # weight of the distillation term; 0 = from scratch
    temperature: float = 3.0
    threads: int = 0  # 0 = torch default
