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


def softdrop_mass(constituents, zcut: float = 0.1, beta: float = 0.0, r0: float = 0.8) -> np.ndarray:
    """(N,) soft-drop groomed jet mass (GeV): constituents reclustered with Cambridge/Aachen
    (FastJet), soft wide-angle branches dropped until z > zcut (dR / r0)^beta."""
    import awkward as ak
    import fastjet

    c = _four(constituents)
    if c.ndim != 3:
        raise TriggerKDError(f"expected jets as an (N, P, 4) array, got shape {c.shape}")
    mask = np.any(c != 0.0, axis=-1)
    out = jet_kinematics(c)["mass"]  # jets of 0 or 1 constituents: nothing to groom
    many = mask.sum(axis=1) >= 2
    if not many.any():
        return out
    flat = c[many][mask[many]]
    parts = ak.unflatten(ak.zip({"px": flat[:, 1], "py": flat[:, 2], "pz": flat[:, 3], "E": flat[:, 0]},
                                with_name="Momentum4D"), mask[many].sum(axis=1))
    fastjet._swig.ClusterSequence.set_fastjet_banner_stream(None)
    cs = fastjet.ClusterSequence(parts, fastjet.JetDefinition(fastjet.cambridge_algorithm, 10.0))
    groomed = cs.exclusive_jets_softdrop_grooming(njets=1, beta=beta, symmetry_cut=zcut, R0=r0)
    out[many] = np.nan_to_num(ak.to_numpy(groomed["msoftdrop"]).astype(np.float64))
    return out
