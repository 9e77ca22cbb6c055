"""Helpers shared by the student and firmware tests: a non-trivial untrained student and inputs."""
from __future__ import annotations

import numpy as np
import torch

from trigger_kd.config import StudentConfig
from trigger_kd.data.features import n_features
from trigger_kd.models.backend import BrevitasBackend


def perturbed_student(spec: StudentConfig, seed: int = 0):
    """A quantised student with weights and biases moved off their initial values (parity needs no training)."""
    model = BrevitasBackend(spec).build(quantized=True)
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return model.eval()


def random_inputs(spec: StudentConfig, n: int, seed: int = 1) -> np.ndarray:
    """Brevitas student inputs: (n, P*F) for the MLP, (n, F, P) for the deep set."""
    f = n_features(spec.jet_pt_feature)
    shape = (spec.n_particles * f,) if spec.arch == "mlp" else (f, spec.n_particles)
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype(np.float32)
