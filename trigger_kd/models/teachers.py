"""The teacher models by ``teacher.arch``: how each is built from the config, saved, restored and fed.

Both take the batch of ``lorentznet.prepare_batch`` and give (B, K) logits (K = 2 for a binary tagger): LorentzNet with its two beam
particles, the transformer without (SEAL then transforms every particle it sees).
"""
from __future__ import annotations

import torch

from ..config import TeacherConfig
from .lorentznet import LorentzNet, prepare_batch
from .transformer import JetTransformer

CLASSES = {"lorentznet": LorentzNet, "transformer": JetTransformer}
# checkpoint format per arch (trigger_kd.lorentznet.v1 predates the transformer: its files still load)
FORMATS = {"lorentznet": "trigger_kd.lorentznet.v1", "transformer": "trigger_kd.transformer.v1"}


def build_teacher(settings: TeacherConfig, n_classes: int = 2) -> torch.nn.Module:
    if settings.arch == "transformer":
        return JetTransformer(d_model=settings.d_model, heads=settings.heads, ff_dim=settings.ff_dim,
                              layers=settings.encoder_layers, head_hidden=settings.head_hidden,
                              dropout=settings.dropout, n_classes=n_classes)
    return LorentzNet(n_scalar=2, n_hidden=settings.hidden, n_class=n_classes, n_layers=settings.layers,
                      c_weight=settings.c_weight, dropout=settings.dropout)


def n_logits(model: torch.nn.Module) -> int:
    """The number of logits a teacher gives."""
    return int(model.config.get("n_class", model.config.get("n_classes", 2)))


def arch_of(model: torch.nn.Module) -> str:
    return next(arch for arch, cls in CLASSES.items() if isinstance(model, cls))


def from_checkpoint(ckpt: dict) -> torch.nn.Module | None:
    """The model a checkpoint dict describes (weights loaded), or None when its format is not a teacher's."""
    arch = next((a for a, f in FORMATS.items() if ckpt.get("format") == f), None)
    if arch is None:
        return None
    model = CLASSES[arch](**ckpt["model"])
    model.load_state_dict(ckpt["state_dict"])
    return model


def teacher_batch(model: torch.nn.Module, constituents, n_particles: int) -> dict:
    """The model's input for the leading n_particles constituents, in its dtype on its device."""
    p = next(model.parameters())
    return prepare_batch(constituents, n_particles, add_beams=isinstance(model, LorentzNet), dtype=p.dtype,
                         device=p.device)
