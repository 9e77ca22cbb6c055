"""Lorentz boosts, rotations and pT smearing of constituent 4-vectors (E, px, py, pz).

All functions take arrays of shape (..., 4), return a new array of the same shape and
dtype (computed in float64) and keep zero-padded entries at zero.
"""
from __future__ import annotations

import numpy as np

from ..errors import TriggerKDError

_AXES = {"x": 1, "y": 2, "z": 3}


def _check(constituents) -> np.ndarray:
    c = np.asarray(constituents)
    if c.ndim < 1 or c.shape[-1] != 4:
        raise TriggerKDError(f"expected 4-vectors (E, px, py, pz) in the last axis, got shape {c.shape}; "
                             "pass constituents as an (N, P, 4) array")
    return c


def _axis(axis: str) -> int:
    if axis not in _AXES:
        raise TriggerKDError(f"unknown axis {axis!r}: use one of 'x', 'y', 'z'")
    return _AXES[axis]


def apply_matrix(constituents, matrix: np.ndarray) -> np.ndarray:
    """x'^mu = L^mu_nu x^nu for every 4-vector; dtype kept."""
    c = _check(constituents)
    out = np.einsum("ij,...j->...i", np.asarray(matrix, dtype=np.float64), c.astype(np.float64))
    return out.astype(c.dtype if np.issubdtype(c.dtype, np.floating) else np.float64)


def apply_matrices(constituents, matrices) -> np.ndarray:
    """One Lorentz matrix per jet: (N, ..., 4) 4-vectors and (N, 4, 4) matrices -> (N, ..., 4) float64."""
    c = _check(constituents)
    m = np.asarray(matrices, dtype=np.float64)
    if m.shape != (len(c), 4, 4):
        raise TriggerKDError(f"need one 4x4 matrix per jet: {len(c)} jets, matrices of shape {m.shape}")
    return np.einsum("nij,n...j->n...i", m, c.astype(np.float64, copy=False))


def boost_matrix(beta_vec) -> np.ndarray:
    """4x4 pure boost with velocity vector beta_vec (|beta| < 1), acting on (E, p)."""
    return boost_matrices(np.asarray(beta_vec, dtype=np.float64).reshape(1, 3))[0]


def boost_matrices(betas) -> np.ndarray:
    """(..., 3) velocity vectors (|beta| < 1) -> (..., 4, 4) pure boosts acting on (E, p)."""
    b = np.asarray(betas, dtype=np.float64)
    if b.ndim < 1 or b.shape[-1] != 3:
        raise TriggerKDError(f"boost velocities must have shape (..., 3), got {b.shape}")
    b2 = np.einsum("...i,...i->...", b, b)
    if not np.all(b2 < 1.0):
        raise TriggerKDError(f"boost velocity |beta| = {np.sqrt(b2.max()):.4g} must be below 1")
    gamma = 1.0 / np.sqrt(1.0 - b2)
    m = np.zeros(b.shape[:-1] + (4, 4))
    m[..., 0, 0] = gamma
    m[..., 0, 1:] = m[..., 1:, 0] = -gamma[..., None] * b
    coef = np.divide(gamma - 1.0, b2, out=np.zeros_like(b2), where=b2 > 0)
    m[..., 1:, 1:] = np.eye(3) + coef[..., None, None] * b[..., :, None] * b[..., None, :]
    return m


def random_boost_velocities(rng: np.random.Generator, n: int, max_beta: float) -> np.ndarray:
    """(n, 3) velocities: directions uniform on the sphere, speeds |beta| ~ U(0, max_beta)."""
    if not 0.0 <= max_beta < 1.0:
        raise TriggerKDError(f"max_beta = {max_beta} must be in [0, 1)")
    direction = rng.normal(size=(n, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    return rng.uniform(0.0, max_beta, size=n)[:, None] * direction


_VIEW_STREAM = 7331  # seed stream of the boosted views (train/feed.py draws SEAL boosts from 7332)


def view_velocities(seed: int, part: int, n_views: int, n_jets: int, max_beta: float) -> np.ndarray:
    """(n_views, n_jets, 3) boost velocities of the augmented views, reproducible from (seed, part).
    Here, not in train/feed.py, so that the transfer stage, which draws them, does not carry the student
    features in its code fingerprint."""
    rng = np.random.default_rng([seed, _VIEW_STREAM, part])
    return np.stack([random_boost_velocities(rng, n_jets, max_beta) for _ in range(n_views)]) if n_views else \
        np.zeros((0, n_jets, 3))


def rotation_matrix(angle: float, axis: str = "z") -> np.ndarray:
    """4x4 rotation of the 3-momentum by `angle` (radians, right-handed) about `axis`."""
    k = _axis(axis)
    i, j = [a for a in (1, 2, 3) if a != k]
    if k == 2:  # keep the right-handed order (z, x) for rotations about y
        i, j = 3, 1
    m = np.eye(4)
    cos, sin = np.cos(angle), np.sin(angle)
    m[i, i], m[i, j], m[j, i], m[j, j] = cos, -sin, sin, cos
    return m


def boost(constituents, beta: float, axis: str = "x") -> np.ndarray:
    """Boost every 4-vector into a frame moving with velocity beta along `axis`:
    E' = gamma (E - beta p), p' = gamma (p - beta E)."""
    vec = np.zeros(3)
    vec[_axis(axis) - 1] = beta
    return apply_matrix(constituents, boost_matrix(vec))


def rotate(constituents, angle: float, axis: str = "z") -> np.ndarray:
    """Rotate every 3-momentum by `angle` radians about `axis`; E unchanged."""
    return apply_matrix(constituents, rotation_matrix(angle, axis))


def random_lorentz_matrix(rng: np.random.Generator, max_beta: float = 0.5) -> np.ndarray:
    """A random rotation (uniform on SO(3)) followed by a boost of speed U(0, max_beta) in a random direction."""
    from scipy.spatial.transform import Rotation

    rot = np.eye(4)
    rot[1:, 1:] = Rotation.random(random_state=rng).as_matrix()
    return boost_matrix(random_boost_velocities(rng, 1, max_beta)[0]) @ rot


def random_lorentz_transform(constituents, rng: np.random.Generator, max_beta: float = 0.5) -> np.ndarray:
    """Apply one random proper orthochronous Lorentz transformation to every 4-vector."""
    return apply_matrix(constituents, random_lorentz_matrix(rng, max_beta))


def smear_pt(constituents, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Scale each constituent's 4-vector by max(1 + sigma * N(0, 1), 0); padded entries stay zero.

    This is the smearing of Glowacki (SEAL): p'T = pT (1 + sigma eps), eps ~ N(0, 1) drawn
    independently per constituent. Scaling the whole 4-vector scales pT and E alike and keeps
    the direction (eta, phi); a factor below zero (probability 3e-7 at sigma 0.2) is clipped to
    zero rather than giving a negative pT."""
    c = _check(constituents)
    if sigma < 0:
        raise TriggerKDError(f"smearing sigma = {sigma} must be >= 0")
    factor = np.clip(1.0 + sigma * rng.standard_normal(c.shape[:-1]), 0.0, None)
    return (c.astype(np.float64) * factor[..., None]).astype(c.dtype)


def random_lorentz(n: int, max_beta: float, generator=None, dtype=None):
    """(n, 4, 4) torch tensor of pure Lorentz boosts acting on (E, px, py, pz), as `boost_matrix`:
    direction uniform on the sphere, speed |beta| uniform in [0, max_beta]. No rotation.
    Apply one per jet with `apply_lorentz`; `generator` is a torch.Generator (reproducible draws)."""
    import torch

    if not 0.0 <= max_beta < 1.0:
        raise TriggerKDError(f"max_beta = {max_beta} must be in [0, 1)")
    direction = torch.randn(n, 3, generator=generator, dtype=torch.float64)
    direction = direction / direction.norm(dim=1, keepdim=True).clamp(min=1e-12)
    beta = torch.rand(n, 1, generator=generator, dtype=torch.float64) * max_beta
    return torch.from_numpy(boost_matrices((beta * direction).numpy())).to(dtype or torch.get_default_dtype())


def apply_lorentz(matrices, constituents):
    """Torch: x'_k = L_k x_k for every 4-vector of jet k; matrices (B, 4, 4), constituents (B, ..., 4)."""
    import torch

    return torch.einsum("bij,b...j->b...i", matrices.to(constituents.dtype), constituents)
