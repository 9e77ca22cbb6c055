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


def kd_loss_tf(student_logits, labels, teacher_logits, alpha: float, temperature: float):
    """The same loss in TensorFlow (QKeras students)."""
    import tensorflow as tf

    s = tf.cast(student_logits, tf.float32)
    hard = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(labels, tf.int32), logits=s))
    if teacher_logits is None or alpha == 0:
        return hard
    t = float(temperature)
    log_ps = tf.nn.log_softmax(s / t, axis=-1)
    log_pt = tf.nn.log_softmax(tf.cast(teacher_logits, tf.float32) / t, axis=-1)
    soft = tf.reduce_mean(tf.reduce_sum(tf.exp(log_pt) * (log_pt - log_ps), axis=-1))
    return (1.0 - alpha) * hard + alpha * t * t * soft
