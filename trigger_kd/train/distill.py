"""The knowledge-distillation loss (Hinton et al.; as in arXiv 2311.14160), with SEAL.

loss = (1 - alpha) * CE(student, hard labels) + alpha * T^2 * KL(softmax(t/T) || softmax(s/T))
       [+ seal_lambda * mean ||f(L x) - f(x)||^2]

``alpha = 0`` is training from scratch; the T^2 factor keeps the soft-target gradients
on the same scale as the hard-label ones when T changes. Jets labelled -1 (transfer jets)
are left out of the hard-label mean; the soft term averages over every jet of the batch.
The SEAL term (arXiv 2511.01982, ``train/seal.py``) compares the logits of each jet with those of
the same jet under a random Lorentz boost (student inputs from ``train/feed.py``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def kd_loss(student_logits: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor | None,
            alpha: float, temperature: float) -> torch.Tensor:
    labelled = (labels >= 0).to(student_logits.dtype)
    ce = F.cross_entropy(student_logits, labels.clamp(min=0), reduction="none")
    hard = (ce * labelled).sum() / labelled.sum().clamp(min=1.0)
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
    labels = tf.cast(labels, tf.int32)
    labelled = tf.cast(labels >= 0, tf.float32)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.maximum(labels, 0), logits=s)
    hard = tf.reduce_sum(ce * labelled) / tf.maximum(tf.reduce_sum(labelled), 1.0)
    if teacher_logits is None or alpha == 0:
        return hard
    t = float(temperature)
    log_ps = tf.nn.log_softmax(s / t, axis=-1)
    log_pt = tf.nn.log_softmax(tf.cast(teacher_logits, tf.float32) / t, axis=-1)
    soft = tf.reduce_mean(tf.reduce_sum(tf.exp(log_pt) * (log_pt - log_ps), axis=-1))
    return (1.0 - alpha) * hard + alpha * t * t * soft


def seal_penalty_tf(logits, boosted_logits):
    """The SEAL penalty in TensorFlow."""
    import tensorflow as tf

    return tf.reduce_mean(tf.reduce_sum(tf.square(boosted_logits - logits), axis=-1))
