"""The loss a student's training step differentiates: the KD loss (``train/distill.py``) plus, on the boosted
views, ``student.seal_lambda`` times the SEAL penalty (``train/seal.py``). The model adapter
(``models/backend.py``) runs the forward pass on a batch and its boosted copy together, hands the logits here
(``torch`` for Brevitas, ``tf`` inside the compiled step of the Keras students) and makes the optimiser step.
"""
from __future__ import annotations


class KDLoss:
    """KD (+ SEAL) on the logits ``out`` of a batch of ``n`` jets followed, where ``boosted``, by their boosted
    views; labels ``yb``, teacher logits ``tb`` (None: no teacher)."""

    def __init__(self, distill, seal_lambda: float):  # ``cfg.distill``; ``student.seal_lambda``
        self.alpha, self.temperature, self.seal_lambda = distill.alpha, distill.temperature, seal_lambda

    def torch(self, out, n: int, yb, tb, boosted: bool):
        """PyTorch (Brevitas): ``yb`` and ``tb`` NumPy arrays."""
        import torch

        from .distill import kd_loss
        from .seal import seal_penalty

        logits = out[:n]
        loss = kd_loss(logits, torch.from_numpy(yb), None if tb is None else torch.from_numpy(tb),
                       self.alpha, self.temperature)
        if boosted:
            loss = loss + self.seal_lambda * seal_penalty(logits, out[n:])
        return loss

    def tf(self, out, n, yb, tb, boosted: bool):
        """TensorFlow (QKeras, HGQ2), traced into the adapter's compiled step."""
        from .distill import kd_loss_tf, seal_penalty_tf

        logits = out[:n]
        loss = kd_loss_tf(logits, yb, tb, self.alpha, self.temperature)
        if boosted:
            loss = loss + float(self.seal_lambda) * seal_penalty_tf(logits, out[n:])
        return loss


def kd_step(backend, model, distill):
    """The adapter's training step of ``model`` on the KD (+ SEAL) loss with ``backend.s``'s settings."""
    return backend.make_step(model, KDLoss(distill, backend.s.seal_lambda))
