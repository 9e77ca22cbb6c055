"""The edge-list LorentzNet forward (gather + index_add over a (2, E) edge list), kept as the reference.

This was `trigger_kd.models.lorentznet` before the dense formulation: it runs the same
modules (same parameters and BatchNorm buffers) of a `LorentzNet`, so the two can be
compared on shared weights (tests/test_lorentznet.py) and timed side by side
(benchmarks/teacher_throughput.py).
"""
from __future__ import annotations

import torch
from torch import nn

from trigger_kd.models.lorentznet import LGEB, LorentzNet, minkowski_dot, psi


def _segment_sum(data: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    return data.new_zeros((n, data.size(1))).index_add_(0, index, data)


def _segment_mean(data: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    count = data.new_zeros((n, 1)).index_add_(0, index, data.new_ones((index.numel(), 1)))
    return _segment_sum(data, index, n) / count.clamp(min=1)


def edge_list(node_mask: torch.Tensor) -> torch.Tensor:
    """(2, E) flat node indices of every ordered pair of distinct real nodes."""
    n = node_mask.shape[1]
    eye = torch.eye(n, dtype=torch.bool, device=node_mask.device)
    bi, ii, jj = torch.nonzero(node_mask.unsqueeze(1) & node_mask.unsqueeze(2) & ~eye, as_tuple=True)
    return torch.stack([bi * n + ii, bi * n + jj])


def lgeb_reference(block: LGEB, h, x, edges, scalars, real):
    """h (M, H), x (M, 4), edges (2, E) node indices, scalars (M, S), real (R,) indices of real nodes."""
    i, j = edges
    x_diff = x[i] - x[j]
    norms = psi(minkowski_dot(x_diff, x_diff)).unsqueeze(1)
    dots = psi(minkowski_dot(x[i], x[j])).unsqueeze(1)
    # phi_e's first layer on [h_i, h_j, norms, dots]: the h parts are projected per node, then gathered
    w, k = block.phi_e[0].weight, h.size(1)
    hi, hj = nn.functional.linear(h, torch.cat([w[:, :k], w[:, k:2 * k]])).split(w.size(0), dim=1)
    pre = torch.addmm(hi[i] + hj[j], torch.cat([norms, dots], dim=1), w[:, 2 * k:].t())
    m = block.phi_e[1:](pre)
    m = m * block.phi_m(m)
    n = h.size(0)
    if not block.last_layer:
        trans = torch.clamp(x_diff * block.phi_x(m), min=-100, max=100)  # clamp as in the original (EGNN)
        x = x + block.c_weight * _segment_mean(trans, i, n)
    agg = _segment_sum(m, i, n)
    update = block.phi_h(torch.cat([h[real], agg[real], scalars[real]], dim=1))
    h = h.index_add(0, real, update)
    return h, x


def reference_forward(model: LorentzNet, batch: dict) -> torch.Tensor:
    """Logits (B, n_class) of `model` computed over edge lists, as the original implementation did."""
    x, mask = batch["x"], batch["node_mask"]
    b, n, _ = x.shape
    edges = edge_list(mask)
    scalars = batch["scalars"].reshape(b * n, -1)
    x = x.reshape(b * n, 4)
    real = torch.nonzero(mask.reshape(-1)).squeeze(1)
    h = model.embedding(scalars)
    for block in model.LGEBs:
        h, x = lgeb_reference(block, h, x, edges, scalars, real)
    w = mask.to(h.dtype).unsqueeze(-1)
    pooled = (h.reshape(b, n, -1) * w).sum(1) / w.sum(1).clamp(min=1)
    return model.graph_dec(pooled)
