"""LorentzNet (Gong et al., JHEP 07 (2022) 030), after sdogsq/LorentzNet-release.

Same layers, parameter names and input convention as the original, so its published
checkpoints load with ``load_state_dict`` (strip the DDP ``module.`` prefix):
momenta in GeV (scale 1), two beams (sqrt(2), 0, 0, +-1) prepended, scalars =
psi(one-hot(particle, beam) * sqrt(|p^2|)), edges between all pairs of real nodes.

Two deliberate differences, both about padding: the readout is a mean over real
nodes (the original divides by the padded width), and phi_h runs on real nodes only,
so padded nodes never enter BatchNorm statistics. On unpadded jets in eval mode the
outputs equal the original's.

The computation is dense per jet instead of the original's edge lists (gather, index_add):
jets are grouped by multiplicity (`group_jets`) into groups whose (G, N, N, H) edge tensors fit
the CPU caches, with 0/1 weights for the real i != j pairs; messages are summed with tensor
reductions, and phi_e's first layer and BatchNorm are factorised into per-node projections (the
BatchNorm statistics over the real edges come from per-node sums). The per-edge work (invariants,
phi_e's second layer, phi_m, phi_x, message and coordinate sums, and their gradients) runs in a
compiled CPU kernel (`edge_kernel`, built with g++ on first use) one jet row at a time; where it
cannot be built, or second derivatives are wanted (`edge_kernel.torch_edges()`), the same
arithmetic runs as PyTorch ops. Same parameters, same buffers, same outputs and gradients as the
edge-list forward on both paths (tests/lorentznet_reference.py, compared in
tests/test_lorentznet.py); speed against it in benchmarks/history/teacher_throughput.md (`make bench-teacher`).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..errors import TriggerKDError
from . import edge_kernel

BEAM_MASS = 1.0
BEAM_PZ = 1.0


def psi(p: torch.Tensor) -> torch.Tensor:
    """sign(p) * log(|p| + 1)."""
    return torch.sign(p) * torch.log1p(torch.abs(p))


def minkowski_dot(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """<p, q> with metric (+, -, -, -) over the last axis."""
    return p[..., 0] * q[..., 0] - (p[..., 1:] * q[..., 1:]).sum(-1)


# Edge-tensor budget per group, in floats (G * N * N * H): jets of similar multiplicity share a group, so
# little padding is computed. Measured on 2 AMD EPYC cores, 1 thread, with the edge kernel and
# `edge_kernel.keep_freed_memory` (2026-11-24): inference 2,554 / 2,948 / 2,917 jets/s at 4e5 / 2e6 / 1e7
# (quick size, 512-jet batches) and 92 / 98 / 97 (paper size, 64); training fastest with the whole batch in
# few groups (per-group overhead; backward keeps the activations anyway): 1e7 (quick size: 64 jets in one
# group, 126 -> 114 ms per step against 1e6).
INFER_ELEMENTS = 2_000_000
TRAIN_ELEMENTS = 10_000_000


class Group:
    """Jets of similar multiplicity, real nodes first, cut to the group's widest jet (dense tensors).

    rows: positions of these jets in the batch; x (G, N, 4), scalars (G, N, S); node (G, N, 1) and
    edge (G, N, N) 0/1 weights of real nodes and of real i != j pairs; degree (G, N, 1) = edges per node;
    real: flat indices of the real nodes in (G * N).
    """

    def __init__(self, rows, x, scalars, mask):
        n = x.shape[1]
        self.rows, self.x, self.scalars = rows, x, scalars
        self.node = mask.to(x.dtype).unsqueeze(-1)
        eye = torch.eye(n, dtype=torch.bool, device=x.device)
        self.edge = (mask.unsqueeze(1) & mask.unsqueeze(2) & ~eye).to(x.dtype)
        self.degree = self.edge.sum(2, keepdim=True)
        self.real = torch.nonzero(mask.reshape(-1)).squeeze(1)
        self.all_real = len(self.real) == mask.numel()  # no padding in the group: no gather / scatter of nodes


def group_jets(batch: dict, max_elements: int = INFER_ELEMENTS, hidden: int = 1) -> list[Group]:
    """Split a batch into Groups: jets sorted by number of real nodes, each group as many consecutive
    jets as keep its edge tensors (jets x width^2 x hidden floats) within max_elements (at least one jet).

    Each group is only as wide as its widest jet (little padding), and small enough for the CPU
    caches: the (G, N, N, H) edge tensors dominate the time, and smaller groups are faster until the
    per-group overhead takes over (the budgets above). The output does not depend on node order,
    padding or grouping."""
    x, scalars, mask = batch["x"], batch["scalars"], batch["node_mask"]
    count = mask.sum(1)
    order = torch.argsort(count, stable=True)
    width = torch.arange(mask.shape[1], device=mask.device)
    prefix = width < count.unsqueeze(1)
    if not torch.equal(mask, prefix):  # move each jet's real nodes to the front (stable)
        perm = torch.argsort((~mask).to(torch.uint8), dim=1, stable=True)
        x = torch.gather(x, 1, perm.unsqueeze(-1).expand_as(x))
        scalars = torch.gather(scalars, 1, perm.unsqueeze(-1).expand_as(scalars))
    counts = [max(1, c) for c in count[order].tolist()]
    cuts, start = [], 0
    for k in range(1, len(counts) + 1):  # counts ascend: the group's width is its last jet's
        if k == len(counts) or (k + 1 - start) * counts[k] ** 2 * hidden > max_elements:
            cuts.append((start, k))
            start = k
    groups = []
    for a, b in cuts:
        rows = order[a:b]
        n = counts[b - 1]
        groups.append(Group(rows, x[rows, :n], scalars[rows, :n], prefix[rows, :n]))
    return groups


def _edge_stats_torch(inv: torch.Tensor, edge: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sums over the real pairs of the invariants inv (G, N, N, 2), in float64: r (G, N, 2) = sum_j e_ij inv_ij,
    mom (G, 2, 2) = sum_ij e_ij inv_ij inv_ij^T (what `edge_kernel.EdgeStats` computes from the coordinates)."""
    vi, e = inv.double(), edge.double()
    return (vi * e.unsqueeze(-1)).sum(2), torch.einsum("gijk,gijl,gij->gkl", vi, vi, e)


def _edge_sums_torch(a, b, r, mom, w2, g: Group):
    """phi_e's BatchNorm sums over the real pairs of one group, float64: s1 = sum e (a_i + b_j + c_ij) and
    s2 = sum e (a_i + b_j + c_ij)^2 with c_ij = inv_ij @ w2.T, from per-node sums without forming the
    (G, N, N, H) pre-activations: s2 = sum_i deg_i (a_i^2 + b_i^2) + sum_ij e_ij (c_ij^2 + 2 a_i b_j +
    2 (a_i + b_j) c_ij), where the edge weights e and the invariants are symmetric in i, j; (r, mom) are the
    group's invariant sums of `_edge_stats_torch`. `edge_kernel.EdgeNorm` computes the same."""
    a, b, node, deg = a.double(), b.double(), g.node.double(), g.degree.double()
    c = r @ w2.double().t()  # (G, N, H): sum_j e_ij c_ij
    # sum_j e_ij b_j with e_ij = node_i node_j (i != j): node_i (sum_j node_j b_j - b_i)
    eb = node * ((node * b).sum(1, keepdim=True) - b)
    s1 = (deg * (a + b) + c).sum((0, 1))
    s2 = ((deg * (a.square() + b.square())).sum((0, 1)) + 2 * (a * eb).sum((0, 1)) + 2 * ((a + b) * c).sum((0, 1))
          + torch.einsum("hk,kl,hl->h", w2.double(), mom.sum(0), w2.double()))
    return s1, s2


def _edge_batch_norm(bn: nn.BatchNorm1d, sums, s0, dtype):
    """Scale and shift (H,) of `bn` applied to the edge pre-activations a_i + b_j + inv_ij @ w2.T.

    In training, `sums` holds each group's (s1, s2) (`_edge_sums_torch` or `edge_kernel.EdgeNorm`) and s0
    is the number of real edges: batch mean s1 / s0 and variance s2 / s0 - mean^2 over all real edges of
    all groups, in float64. Running statistics are updated as `bn` would (momentum, unbiased variance).
    """
    if bn.training:
        s1 = sum(x[0] for x in sums)
        s2 = sum(x[1] for x in sums)
        if float(s0) < 2:
            raise ValueError(f"BatchNorm in training needs more than 1 edge, got {int(s0)}")
        mean = s1 / s0
        var = (s2 / s0 - mean.square()).clamp(min=0)
        with torch.no_grad():
            bn.num_batches_tracked.add_(1)
            bn.running_mean.mul_(1 - bn.momentum).add_(mean.to(bn.running_mean.dtype), alpha=bn.momentum)
            bn.running_var.mul_(1 - bn.momentum).add_((var * (s0 / (s0 - 1))).to(bn.running_var.dtype),
                                                      alpha=bn.momentum)
        mean, var = mean.to(dtype), var.to(dtype)
    else:
        mean, var = bn.running_mean, bn.running_var
    scale = bn.weight * torch.rsqrt(var + bn.eps)
    return scale, bn.bias - mean * scale


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

    def forward(self, hs: list, xs: list, groups: list[Group]) -> tuple[list, list]:
        """One block on every group: hs[k] (G, N, H) node features, xs[k] (G, N, 4) coordinates.

        Dense over all (i, j) pairs of a jet, the edge weights select the real edges. phi_e's first
        layer on [h_i, h_j, norms, dots] is W_i h_i + W_j h_j + W_inv [norms, dots]: the h parts are
        projected per node, and its BatchNorm is folded into those projections, so the first
        (G, N, N, H) tensor is the post-BatchNorm pre-activation.
        """
        w, k = self.phi_e[0].weight, hs[0].size(-1)
        w_node, w2 = torch.cat([w[:, :k], w[:, k:2 * k]]), w[:, 2 * k:]
        bn, lin, gate_layer = self.phi_e[1], self.phi_e[3], self.phi_m[0]
        ab = [nn.functional.linear(h, w_node).split(w.size(0), dim=-1) for h in hs]
        a, b = [p[0] for p in ab], [p[1] for p in ab]
        lib = edge_kernel.library(k, hs[0].dtype) if hs[0].device.type == "cpu" else "not on the CPU"
        sums = []
        if isinstance(lib, str):  # PyTorch ops (no compiled kernel, or twice differentiable wanted)
            inv = [_invariants(x) for x in xs]
            if bn.training:
                for ai, bi, vi, g in zip(a, b, inv, groups):
                    sums.append(_edge_sums_torch(ai, bi, *_edge_stats_torch(vi, g.edge), w2, g))
        else:
            pairs = [edge_kernel.pair_table(lib, x, g.edge) for x, g in zip(xs, groups)]
            if bn.training:
                for ai, bi, x, g, pair in zip(a, b, xs, groups, pairs):
                    r, mom = edge_kernel.EdgeStats.apply(lib, x, g.edge, pair)
                    sums.append(edge_kernel.EdgeNorm.apply(lib, ai, bi, g.node, g.degree, r, mom, w2))
        s0 = float(sum(float(g.degree.sum()) for g in groups)) if bn.training else 0.0
        scale, shift = _edge_batch_norm(bn, sums, s0, hs[0].dtype)
        w2s = (w2 * scale.unsqueeze(1)).t()
        px = (None, None, None) if self.last_layer else \
            (self.phi_x[0].weight, self.phi_x[0].bias, self.phi_x[2].weight.view(-1))
        nodes, new_xs = [], []
        for k_group, (h, x, g, ai, bi) in enumerate(zip(hs, xs, groups, a, b)):
            ai, bi = ai * scale, bi * scale + shift
            if isinstance(lib, str):
                agg, xsum = self._edges_torch(x, inv[k_group], g.edge, ai, bi, w2s)
            else:
                agg, xsum = edge_kernel.EdgeBlock.apply(lib, x, g.edge, pairs[k_group], ai, bi, w2s, lin.weight, lin.bias,
                                                        gate_layer.weight.view(-1), gate_layer.bias, *px)
            if not self.last_layer:
                x = x + self.c_weight * xsum / g.degree.clamp(min=1)  # clamp as in the original
            new_xs.append(x)
            node_in = torch.cat([h, agg, g.scalars], dim=-1).reshape(-1, 2 * k + g.scalars.size(-1))
            nodes.append(node_in if g.all_real else node_in[g.real])
        # phi_h on the real nodes of all groups together (its BatchNorm sees real nodes only)
        update = self.phi_h(torch.cat(nodes) if len(nodes) > 1 else nodes[0]).split([len(g.real) for g in groups])
        new_hs = [h + u.view_as(h) if g.all_real else h.reshape(-1, k).index_add(0, g.real, u).view_as(h)
                  for h, g, u in zip(hs, groups, update)]
        return new_hs, new_xs

    def _edges_torch(self, x, inv, edge, a, b, w2s):
        """The edge MLP and coordinate sums with PyTorch ops (what `edge_kernel.EdgeBlock` computes):
        x (G, N, 4), invariants inv (G, N, N, 2), edge (G, N, N) weights, a_i, b_j (G, N, H) folded
        projections -> message sums agg (G, N, H) and xsum (G, N, 4) = sum_j clamp((x_i - x_j) phi_x(m_ij))
        (None in the last block)."""
        k = a.size(-1)
        lin, gate_layer = self.phi_e[3], self.phi_m[0]
        z = a.unsqueeze(2) + b.unsqueeze(1)
        z = torch.addmm(z.reshape(-1, k), inv.reshape(-1, 2), w2s).relu_()
        m = torch.addmm(lin.bias, z, lin.weight.t()).relu_()
        gate = torch.sigmoid(torch.addmm(gate_layer.bias, m, gate_layer.weight.t()))
        m = m * (gate * edge.reshape(-1, 1))  # gated messages, zero on non-edges
        agg = m.view(*edge.shape, k).sum(2)
        if self.last_layer:
            return agg, None
        hidden, out = self.phi_x[0], self.phi_x[2]
        gx = (torch.addmm(hidden.bias, m, hidden.weight.t()).relu_() @ out.weight.t()).view(edge.shape)
        x_diff = x.unsqueeze(2) - x.unsqueeze(1)
        return agg, torch.clamp(x_diff * (gx * edge).unsqueeze(-1), min=-100, max=100).sum(2)


def _invariants(x: torch.Tensor) -> torch.Tensor:
    """psi of the Minkowski invariants of every pair: (G, N, 4) -> (G, N, N, 2) (<x_i - x_j, x_i - x_j>, <x_i, x_j>)."""
    xi, xj = x.unsqueeze(2), x.unsqueeze(1)
    x_diff = xi - xj
    return psi(torch.stack([minkowski_dot(x_diff, x_diff), minkowski_dot(xi, xj)], dim=-1))


class LorentzNet(nn.Module):
    """LorentzNet: embedding of the scalars, n_layers LGEBs, masked mean over nodes, MLP to n_class logits."""

    def __init__(self, n_scalar: int = 2, n_hidden: int = 72, n_class: int = 2, n_layers: int = 6,
                 c_weight: float = 5e-3, dropout: float = 0.0):
        super().__init__()
        self.config = dict(n_scalar=n_scalar, n_hidden=n_hidden, n_class=n_class, n_layers=n_layers,
                           c_weight=c_weight, dropout=dropout)
        self.n_hidden = n_hidden
        self.infer_elements, self.train_elements = INFER_ELEMENTS, TRAIN_ELEMENTS
        self.embedding = nn.Linear(n_scalar, n_hidden)
        self.LGEBs = nn.ModuleList(
            LGEB(n_hidden, n_scalar, c_weight, last_layer=(k == n_layers - 1)) for k in range(n_layers))
        self.graph_dec = nn.Sequential(nn.Linear(n_hidden, n_hidden), nn.ReLU(), nn.Dropout(dropout),
                                       nn.Linear(n_hidden, n_class))

    def forward(self, batch: dict) -> torch.Tensor:
        """batch from `prepare_batch` -> logits (B, n_class)."""
        groups = group_jets(batch, self.train_elements if self.training else self.infer_elements, self.n_hidden)
        hs = [self.embedding(g.scalars) for g in groups]
        xs = [g.x for g in groups]
        for block in self.LGEBs:
            hs, xs = block(hs, xs, groups)
        pooled = torch.cat([(h * g.node).sum(1) / g.node.sum(1).clamp(min=1) for h, g in zip(hs, groups)])
        rows = torch.cat([g.rows for g in groups])
        pooled = pooled.new_empty(pooled.shape).index_copy(0, rows, pooled)
        return self.graph_dec(pooled)


def prepare_batch(constituents, n_particles: int, add_beams: bool = True,
                  dtype: torch.dtype = torch.float32, device=None) -> dict:
    """Leading n_particles constituents (E, px, py, pz in GeV, zero-padded) -> LorentzNet inputs.

    Returns x (B, N, 4), scalars (B, N, 2), node_mask (B, N) and edge_mask (B, N, N),
    with N = n_particles (+2 beams first when add_beams).
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
    return {"x": c.to(dtype), "scalars": scalars.to(dtype), "node_mask": node_mask, "edge_mask": edge_mask}
