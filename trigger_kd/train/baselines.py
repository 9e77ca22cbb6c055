"""The baselines a physicist tries first, measured on the same jets as the networks.

The jet mass as the tagger's score (higher mass = more signal-like: top, W and Z jets are heavier than
light-quark and gluon jets), once from the constituents the student sees (its leading
``student.n_particles``, pT order) and once from all stored constituents: what the network adds over
the mass of its own inputs is the first thing a trigger engineer asks.
"""
from __future__ import annotations

import numpy as np

from ..data.physics import jet_kinematics
from .metrics import binary_metrics

INPUTS, ALL = "jet_mass_inputs", "jet_mass_all"


def jet_mass_baselines(splits: dict[str, tuple[np.ndarray, np.ndarray]], n_particles: int) -> dict:
    """{INPUTS: ..., ALL: ...}, each {"what", "score", split name: binary metrics on that split's jets} for
    ``splits`` = {name: (constituents (N, P, 4) pT-ordered, is_signal (N,))}."""
    out = {}
    for key, what, n in ((INPUTS, f"jet mass of the {n_particles} leading constituents (the student's inputs)",
                          n_particles),
                         (ALL, "jet mass of all stored constituents", None)):
        entry = {"what": what, "score": "the mass in GeV (higher = signal)"}
        for split, (c, y) in splits.items():
            entry[split] = binary_metrics(y, jet_kinematics(c if n is None else c[:, :n])["mass"])
        out[key] = entry
    return out
