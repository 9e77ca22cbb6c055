"""Helpers shared by the student and firmware tests: a non-trivial untrained student and inputs."""
from __future__ import annotations

import numpy as np
import torch

from trigger_kd.models.spec import StudentSpec
from trigger_kd.models.students import build_student


def perturbed_student(spec: StudentSpec, seed: int = 0):
    """A quantised student with weights and biases moved off their initial values (parity needs no training)."""
    torch.manual_seed(seed)
    model = build_student(spec, quantized=True)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return model.eval()


def random_inputs(spec: StudentSpec, n: int, seed: int = 1) -> np.ndarray:
    shape = (spec.n_particles * spec.n_features,) if spec.arch == "mlp" else (spec.n_features, spec.n_particles)
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype(np.float32)
