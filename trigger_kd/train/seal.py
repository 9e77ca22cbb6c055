"""SEAL soft symmetry penalties (Hebbar et al. 2025, arXiv 2511.01982).

Output term: lambda * mean ||f(L x) - f(x)||^2, L a random Lorentz boost per jet
(`trigger_kd.data.boost.random_lorentz`: direction uniform on the sphere, |beta| uniform up to max_beta)
applied to the jet's constituents. The squared norm is over the logits, the mean over the jets of the batch.

Generator term (`teacher.seal_generator_lambda`, the transformer): mean over jets of
sum_G ||d/de f(exp(e G) x)|_{e=0}||^2 over the six generators G of the Lorentz group (three boosts, three
rotations) acting on every particle's four-momentum: the directional derivatives of f along the group,
exact (a Jacobian-vector product by double backward), zero for an exactly invariant f. Padded (zero)
particles stay zero under both.

What is transformed: the constituents, the particles the model sees. For the transformer (no beams) that
is every particle, as in the paper. LorentzNet's beams are added afterwards, fixed at (sqrt(2), 0, 0, +-1):
LorentzNet is exactly invariant when everything, beams included, is transformed (its penalty would be
identically zero and teach nothing), so for it the penalty measures and reduces how much the output
depends on the jet's boost relative to the beams (the lab frame). For a student (no beams) transforming
the constituents is the paper's recipe too.
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


def _generators() -> torch.Tensor:
    """(6, 4, 4) generators acting on (E, px, py, pz): boosts along x, y, z, then rotations about x, y, z."""
    g = torch.zeros(6, 4, 4)
    for k in range(3):
        g[k, 0, k + 1] = g[k, k + 1, 0] = 1.0  # boost: E <-> p_k
        i, j = [a for a in (1, 2, 3) if a != k + 1]
        g[3 + k, j, i], g[3 + k, i, j] = 1.0, -1.0  # rotation about axis k (its sign does not matter to the penalty)
    return g


LORENTZ_GENERATORS = _generators()


def generator_derivatives(f, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """f(x) and, per generator G, d/de f(exp(e G) x) at e = 0 (= J_f(x) . (G x)), for f: (B, P, 4) -> (B, K).

    Jacobian-vector products by double backward (f's graph kept, so they train f's parameters); no
    second derivatives through fused attention kernels (`models.transformer.math_attention`)."""
    from ..models.transformer import math_attention

    x = x.detach().requires_grad_(True)
    with math_attention():
        out = f(x)
        probe = torch.zeros_like(out, requires_grad=True)
        (pullback,) = torch.autograd.grad(out, x, probe, create_graph=True)  # J^T probe, linear in probe
        derivs = [torch.autograd.grad(pullback, probe, x.detach() @ g.to(x).T, create_graph=True)[0]
                  for g in LORENTZ_GENERATORS]
    return out, derivs


def generator_penalty(f, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """f(x) and mean over jets of sum over the six generators of ||d/de f(exp(e G) x)||^2 (sum over outputs)."""
    out, derivs = generator_derivatives(f, x)
    return out, sum(d.square().sum(1) for d in derivs).mean()


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


def _rng_state(device: torch.device):
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def _set_rng_state(state, device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


class PairForward(nn.Module):
    """One module call giving f(x), f(L x) when moved inputs are given (with the same dropout masks, and
    without the moved batch entering the BatchNorm running statistics), and the generator penalty when asked
    (one call, so DDP sees each parameter once per step)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch, moved=None, generators: bool = False):
        """(logits, moved logits or None, generator penalty or None)."""
        device = batch["x"].device
        rng = _rng_state(device)
        if generators:
            logits, penalty = generator_penalty(lambda x: self.model({**batch, "x": x}), batch["x"])
        else:
            logits, penalty = self.model(batch), None
        if moved is None:
            return logits, None, penalty
        after = _rng_state(device)
        _set_rng_state(rng, device)  # the same dropout masks for f(L x)
        with frozen_running_stats(self.model):
            moved_logits = self.model(moved)
        _set_rng_state(after, device)
        return logits, moved_logits, penalty
