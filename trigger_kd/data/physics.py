"""Kinematics of jets and constituents stored as (E, px, py, pz) 4-vectors.

Computed in float64. Zero rows (padding) give pt = eta = phi = mass = 0, with no
floating-point warnings.
"""
from __future__ import annotations

import numpy as np

from ..errors import TriggerKDError


def _four(constituents) -> np.ndarray:
    c = np.asarray(constituents)
    if c.ndim < 1 or c.shape[-1] != 4:
        raise TriggerKDError(
            f"expected 4-vectors (E, px, py, pz) in the last axis, got shape {c.shape}; "
            "pass constituents as an (N, P, 4) array"
        )
    return c.astype(np.float64, copy=False)


def _pt_eta_phi(px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> tuple[np.ndarray, ...]:
    pt = np.hypot(px, py)
    ratio = np.divide(pz, pt, out=np.zeros_like(pt), where=pt > 0)
    eta = np.arcsinh(ratio)
    phi = np.where(pt > 0, np.arctan2(py, px), 0.0)
    return pt, eta, phi


def jet_kinematics(constituents) -> dict[str, np.ndarray]:
    """Jet = sum of its constituents: (N,) arrays pt, eta, phi, mass (GeV)."""
    c = _four(constituents)
    e, px, py, pz = np.moveaxis(c.sum(axis=-2), -1, 0)
    pt, eta, phi = _pt_eta_phi(px, py, pz)
    m2 = e * e - (px * px + py * py + pz * pz)
    return {"pt": pt, "eta": eta, "phi": phi, "mass": np.sqrt(np.maximum(m2, 0.0))}


def constituent_kinematics(constituents) -> dict[str, np.ndarray]:
    """Per constituent: (N, P) arrays pt, eta, phi and mask (False for zero padding)."""
    c = _four(constituents)
    e, px, py, pz = np.moveaxis(c, -1, 0)
    pt, eta, phi = _pt_eta_phi(px, py, pz)
    return {"pt": pt, "eta": eta, "phi": phi, "mask": np.any(c != 0.0, axis=-1)}
