"""LorentzNet (Gong et al., JHEP 07 (2022) 030), after sdogsq/LorentzNet-release.

Same layers, parameter names and input convention as the original, so its published
checkpoints load with ``load_state_dict`` (strip the DDP ``module.`` prefix):
momenta in GeV (scale 1), two beams (sqrt(2), 0, 0, +-1) prepended, scalars =
psi(one-hot(particle, beam) * sqrt(|p^2|)), edges between all pairs of real nodes.

Two deliberate differences, both about padding: the readout is a mean over real
nodes (the original divides by the padded width), and phi_h runs on real nodes only,
so padded nodes never enter BatchNorm statistics. On unpadded jets in eval mode the
outputs equal the original's.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..errors import TriggerKDError

BEAM_MASS = 1.0
BEAM_PZ = 1.0


def psi(p: torch.Tensor) -> torch.Tensor:
    """sign(p) * log(|p| + 1)."""
    return torch.sign(p) * torch.log1p(torch.abs(p))


def minkowski_dot(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """<p, q> with metric (+, -, -, -) over the last axis."""
    return p[..., 0] * q[..., 0] - (p[..., 1:] * q[..., 1:]).sum(-1)


def _segment_sum(data: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    return data.new_zeros((n, data.size(1))).index_add_(0, index, data)


def _segment_mean(data: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    count = data.new_zeros((n, 1)).index_add_(0, index, data.new_ones((index.numel(), 1)))
    return _segment_sum(data, index, n) / count.clamp(min=1)


class LGEB(nn.Module):
    """Lorentz group equivariant block: edge messages from Minkowski invariants, node and coordinate updates."""

    def __init__(self, n_hidden: int, n_node_attr: int, c_weight: float, last_layer: bool = False):
        super().__init__()
        self.c_weight = c_weight
        self.last_layer = last_layer
        self.phi_e = nn.Sequential(
            nn.Linear(2 * n_hidden + 2, n_hidden, bias=False), nn.BatchNorm1d(n_hidden), nn.ReLU(),
            nn.Linear(n_hidden, n_hidden), nn.ReLU())
        self.phi_h = nn.Sequential(
            nn.Linear(2 * n_hidden + n_node_attr, n_hidden), nn.BatchNorm1d(n_hidden), nn.ReLU(),
            nn.Linear(n_hidden, n_hidden))
        self.phi_m = nn.Sequential(nn.Linear(n_hidden, 1), nn.Sigmoid())
        if not last_layer:
            out = nn.Linear(n_hidden, 1, bias=False)
            nn.init.xavier_uniform_(out.weight, gain=0.001)
            self.phi_x = nn.Sequential(nn.Linear(n_hidden, n_hidden), nn.ReLU(), out)

    def forward(self, h, x, edges, scalars, real):
        """h (M, H), x (M, 4), edges (2, E) node indices, scalars (M, S), real (R,) indices of real nodes."""
        i, j = edges
        x_diff = x[i] - x[j]
        norms = psi(minkowski_dot(x_diff, x_diff)).unsqueeze(1)
        dots = psi(minkowski_dot(x[i], x[j])).unsqueeze(1)
        # phi_e's first layer on [h_i, h_j, norms, dots]: the h parts are projected per node, then gathered
        w, k = self.phi_e[0].weight, h.size(1)
        hi, hj = nn.functional.linear(h, torch.cat([w[:, :k], w[:, k:2 * k]])).split(w.size(0), dim=1)
        pre = torch.addmm(hi[i] + hj[j], torch.cat([norms, dots], dim=1), w[:, 2 * k:].t())
        m = self.phi_e[1:](pre)
        m = m * self.phi_m(m)
        n = h.size(0)
        if not self.last_layer:
            trans = torch.clamp(x_diff * self.phi_x(m), min=-100, max=100)  # clamp as in the original (EGNN)
            x = x + self.c_weight * _segment_mean(trans, i, n)
        agg = _segment_sum(m, i, n)
        update = self.phi_h(torch.cat([h[real], agg[real], scalars[real]], dim=1))
        h = h.index_add(0, real, update)
        return h, x


class LorentzNet(nn.Module):
    """LorentzNet: embedding of the scalars, n_layers LGEBs, masked mean over nodes, MLP to n_class logits."""

    def __init__(self, n_scalar: int = 2, n_hidden: int = 72, n_class: int = 2, n_layers: int = 6,
                 c_weight: float = 5e-3, dropout: float = 0.0):
        super().__init__()
        self.config = dict(n_scalar=n_scalar, n_hidden=n_hidden, n_class=n_class, n_layers=n_layers,
                           c_weight=c_weight, dropout=dropout)
        self.n_hidden = n_hidden
        self.embedding = nn.Linear(n_scalar, n_hidden)
        self.LGEBs = nn.ModuleList(
            LGEB(n_hidden, n_scalar, c_weight, last_layer=(k == n_layers - 1)) for k in range(n_layers))
        self.graph_dec = nn.Sequential(nn.Linear(n_hidden, n_hidden), nn.ReLU(), nn.Dropout(dropout),
                                       nn.Linear(n_hidden, n_class))

    def forward(self, batch: dict) -> torch.Tensor:
        """batch from `prepare_batch` -> logits (B, n_class)."""
        x, mask = batch["x"], batch["node_mask"]
        b, n, _ = x.shape
        scalars = batch["scalars"].reshape(b * n, -1)
        x = x.reshape(b * n, 4)
        real = torch.nonzero(mask.reshape(-1)).squeeze(1)
        h = self.embedding(scalars)
        for block in self.LGEBs:
            h, x = block(h, x, batch["edges"], scalars, real)
        w = mask.to(h.dtype).unsqueeze(-1)
        pooled = (h.reshape(b, n, -1) * w).sum(1) / w.sum(1).clamp(min=1)
        return self.graph_dec(pooled)


def prepare_batch(constituents, n_particles: int, add_beams: bool = True,
                  dtype: torch.dtype = torch.float32, device=None) -> dict:
    """Leading n_particles constituents (E, px, py, pz in GeV, zero-padded) -> LorentzNet inputs.

    Returns x (B, N, 4), scalars (B, N, 2), node_mask (B, N), edge_mask (B, N, N) and
    edges (2, E) flat node indices, with N = n_particles (+2 beams first when add_beams).
    A node is real when its energy is non-zero; edges join every ordered pair of distinct real nodes.
    """
    c = constituents if torch.is_tensor(constituents) else torch.from_numpy(np.asarray(constituents))
    if c.ndim != 3 or c.shape[-1] != 4:
        raise TriggerKDError(f"constituents must have shape (B, P, 4) with (E, px, py, pz), got {tuple(c.shape)}")
    if n_particles < 1:
        raise TriggerKDError(f"n_particles = {n_particles} must be at least 1")
    c = c[:, :n_particles].to(device=device, dtype=torch.float64)
    if c.shape[1] < n_particles:  # fewer stored constituents than asked for: pad with zeros
        c = torch.cat([c, c.new_zeros(c.shape[0], n_particles - c.shape[1], 4)], dim=1)
    bsz = c.shape[0]
    is_beam = torch.zeros(bsz, n_particles, dtype=torch.bool, device=c.device)
    if add_beams:
        e = math.sqrt(BEAM_MASS ** 2 + BEAM_PZ ** 2)
        beams = c.new_tensor([[e, 0.0, 0.0, BEAM_PZ], [e, 0.0, 0.0, -BEAM_PZ]]).expand(bsz, 2, 4)
        c = torch.cat([beams, c], dim=1)
        is_beam = torch.cat([torch.ones(bsz, 2, dtype=torch.bool, device=c.device), is_beam], dim=1)
    node_mask = c[..., 0] != 0
    mass = minkowski_dot(c, c).abs().sqrt()
    scalars = psi(torch.stack([torch.where(is_beam, 0.0, mass), torch.where(is_beam, mass, 0.0)], dim=-1))
    n = c.shape[1]
    eye = torch.eye(n, dtype=torch.bool, device=c.device)
    edge_mask = node_mask.unsqueeze(1) & node_mask.unsqueeze(2) & ~eye
    bi, ii, jj = torch.nonzero(edge_mask, as_tuple=True)
    edges = torch.stack([bi * n + ii, bi * n + jj])
    return {"x": c.to(dtype), "scalars": scalars.to(dtype), "node_mask": node_mask,
            "edge_mask": edge_mask, "edges": edges}
