"""The plain transformer teacher of Glowacki and of the SEAL paper (Hebbar et al. 2025, arXiv 2511.01982).

No symmetry is built in: per constituent the seven features d_eta, d_phi, log(pT/pT_jet), log pT,
log(E/E_jet), log E and dR (to the jet axis, the sum of the constituents' four-momenta; GeV), computed
inside ``forward`` from the four-momenta, so a Lorentz transformation of the inputs (SEAL's boosts and
generators, train/seal.py) moves them; a linear embedding to d_model with ReLU; ``layers``
``nn.TransformerEncoder`` layers (``heads`` heads, feed-forward ``ff_dim``, post-norm, ReLU, batch first) with
the padded particles masked out of the attention (``src_key_padding_mask``); the mean over the real
particles; a head of linear layers with ReLU through ``head_hidden`` down to one logit z, returned as the
pair (-z/2, z/2) so that the teacher contract (two logits, softmax, cross-entropy) holds: softmax gives
sigmoid(z), cross-entropy is the paper's BCE.

Input: the batch of ``lorentznet.prepare_batch(..., add_beams=False)`` (x (B, N, 4) as (E, px, py, pz),
node_mask (B, N): real where E != 0). The output depends neither on the padding nor on the particle order.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

N_FEATURES = 7
_TINY = 1e-12  # keeps square roots differentiable at 0 (a particle on the jet axis)


def _eta_phi_pt(p: torch.Tensor):
    pt = (p[..., 1].square() + p[..., 2].square() + _TINY).sqrt()
    return torch.asinh(p[..., 3] / pt), torch.atan2(p[..., 2], p[..., 1]), pt


def constituent_features(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, N, 4) four-momenta and (B, N) real-particle mask -> (B, N, 7) features, zero on padded particles.

    Padded entries are replaced by a harmless four-vector before any logarithm (and masked after), so values
    and derivatives stay finite."""
    real = mask.unsqueeze(-1)
    safe = torch.where(real, x, x.new_tensor([1.0, 1.0, 0.0, 0.0]))
    jet = (x * real).sum(1, keepdim=True)
    jet = torch.where(mask.any(1)[:, None, None], jet, x.new_tensor([1.0, 1.0, 0.0, 0.0]))
    eta, phi, pt = _eta_phi_pt(safe)
    eta_j, phi_j, pt_j = _eta_phi_pt(jet)
    d_eta = eta - eta_j
    d_phi = torch.atan2(torch.sin(phi - phi_j), torch.cos(phi - phi_j))  # wrapped to (-pi, pi]
    energy = safe[..., 0].clamp(min=_TINY)
    features = torch.stack([d_eta, d_phi, torch.log(pt / pt_j), torch.log(pt), torch.log(energy / jet[..., 0]),
                            torch.log(energy), (d_eta.square() + d_phi.square() + _TINY).sqrt()], -1)
    return features * real


@contextlib.contextmanager
def math_attention():
    """Attention as plain PyTorch ops (twice differentiable: the fused kernels are not), for SEAL's generator term
    and Hessian products."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.MATH):
        yield


class JetTransformer(nn.Module):
    """Constituent features -> linear + ReLU -> TransformerEncoder (padding masked) -> masked mean -> MLP -> z."""

    def __init__(self, d_model: int = 256, heads: int = 4, ff_dim: int = 256, layers: int = 3,
                 head_hidden: tuple[int, ...] = (256, 128), dropout: float = 0.0, n_classes: int = 2):
        super().__init__()
        self.config = dict(d_model=d_model, heads=heads, ff_dim=ff_dim, layers=layers, head_hidden=list(head_hidden),
                           dropout=dropout)
        if n_classes != 2:  # binary checkpoints keep the config (and the one-logit head) they always had
            self.config["n_classes"] = n_classes
        self.n_classes = n_classes
        self.embedding = nn.Sequential(nn.Linear(N_FEATURES, d_model), nn.ReLU())
        layer = nn.TransformerEncoderLayer(d_model, heads, ff_dim, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        widths = [d_model, *head_hidden]
        head: list[nn.Module] = []
        for a, b in zip(widths, widths[1:]):
            head += [nn.Linear(a, b), nn.ReLU()]
        # binary: one logit z, given as (-z/2, z/2) (SEAL's BCE); K classes: K logits
        self.head = nn.Sequential(*head, nn.Linear(widths[-1], 1 if n_classes == 2 else n_classes))

    def forward(self, batch: dict) -> torch.Tensor:
        """batch (``prepare_batch(..., add_beams=False)``) -> logits (B, 2) = (-z/2, z/2), or (B, K)."""
        x, mask = batch["x"], batch["node_mask"]
        h = self.embedding(constituent_features(x, mask))
        # a jet without constituents would mask every key (NaN attention): it attends to its first, zero, slot
        ignore = ~mask
        ignore[:, 0] &= mask.any(1)
        h = self.encoder(h, src_key_padding_mask=ignore)
        real = mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * real).sum(1) / real.sum(1).clamp(min=1)
        z = self.head(pooled)
        return torch.cat([-z / 2, z / 2], 1) if self.n_classes == 2 else z
