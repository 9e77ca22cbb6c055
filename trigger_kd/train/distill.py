"""The knowledge-distillation loss (Hinton et al.; as in arXiv 2311.14160).

loss = (1 - alpha) * CE(student, hard labels) + alpha * T^2 * KL(softmax(t/T) || softmax(s/T))

``alpha = 0`` is training from scratch; the T^2 factor keeps the soft-target gradients
on the same scale as the hard-label ones when T changes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def kd_loss(student_logits: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor | None,
            alpha: float, temperature: float) -> torch.Tensor:
    hard = F.cross_entropy(student_logits, labels)
    if teacher_logits is None or alpha == 0:
        return hard
    t = temperature
    soft = F.kl_div(F.log_softmax(student_logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1),
                    reduction="batchmean", log_target=True)
    return (1.0 - alpha) * hard + alpha * t * t * soft
