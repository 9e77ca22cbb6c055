"""SEAL soft symmetry penalty (Hebbar et al. 2025, arXiv 2511.01982): lambda * mean ||f(L x) - f(x)||^2.

L is a random Lorentz boost per jet (`trigger_kd.data.boost.random_lorentz`: direction uniform on
the sphere, |beta| uniform up to max_beta) applied to the jet's constituents. The squared norm is
over the logits, the mean over the jets of the batch.

What is transformed: only the constituents. LorentzNet's beams are added afterwards, fixed at
(sqrt(2), 0, 0, +-1): LorentzNet is exactly invariant when everything, beams included, is
transformed (its penalty would be identically zero and teach nothing), so the penalty measures
and reduces how much the teacher's output depends on the jet's boost relative to the beams (the
lab frame), the information the fixed beams let it use. Glowacki's paper applies L to all particles
of models without beams; for a student (no beams) transforming the constituents is exactly that.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from ..data.boost import apply_lorentz, random_lorentz


def boosted(constituents: torch.Tensor, max_beta: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Every jet of (B, P, 4) boosted by its own random boost (float64); zero padding stays zero."""
    return apply_lorentz(random_lorentz(len(constituents), max_beta, generator, torch.float64),
                         constituents.to(torch.float64))


def seal_penalty(logits: torch.Tensor, moved_logits: torch.Tensor) -> torch.Tensor:
    """mean over jets of ||f(L x) - f(x)||^2 (sum over the logits)."""
    return (moved_logits - logits).square().sum(1).mean()


@contextlib.contextmanager
def frozen_running_stats(model: nn.Module):
    """BatchNorm layers normalise with batch statistics as usual but leave their running statistics alone."""
    saved = [(b, b.clone()) for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
             for b in m.buffers()]
    try:
        yield
    finally:
        for buf, old in saved:  # through .data: training-mode BatchNorm saves these for backward but
            buf.data.copy_(old)  # does not use their values, so no autograd version bump


class PairForward(nn.Module):
    """One module call giving f(x) and, when moved inputs are given, f(L x) with the same dropout masks and
    without the moved batch entering the BatchNorm running statistics (one call, so DDP sees each
    parameter once per step)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch, moved=None):
        if moved is None:
            return self.model(batch), None
        rng = torch.get_rng_state()
        logits = self.model(batch)
        after = torch.get_rng_state()
        torch.set_rng_state(rng)  # the same dropout masks for f(L x)
        with frozen_running_stats(self.model):
            moved_logits = self.model(moved)
        torch.set_rng_state(after)
        return logits, moved_logits
