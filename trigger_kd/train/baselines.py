"""The baselines a physicist tries first, measured on the same jets as the networks.

The jet mass as the tagger's score (higher mass = more signal-like: top, W and Z jets are heavier than
light-quark and gluon jets), once from the constituents the student sees (its leading
``student.n_particles``, pT order) and once from all stored constituents: what the network adds over
the mass of its own inputs is the first thing a trigger engineer asks.

A mass in GeV has no cut of its own, so its accuracy is that of the mass cut that maximises the accuracy on the
validation jets, applied to every split (``cut``); without validation jets there is no cut and no accuracy (None).
AUC and rejections need no cut.
"""
from __future__ import annotations

import numpy as np

from ..data.physics import jet_kinematics
from .metrics import binary_metrics

INPUTS, ALL = "jet_mass_inputs", "jet_mass_all"
CUT_SPLIT = "val"


def best_cut(is_signal: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    """(threshold, accuracy): the cut ``score > threshold`` = signal with the highest accuracy on these jets
    (every cut between two distinct scores, and below / above all of them, is tried)."""
    y = np.asarray(is_signal).reshape(-1) == 1
    s = np.asarray(score, dtype=np.float64).reshape(-1)
    order = np.argsort(s, kind="stable")
    s, y = s[order], y[order]
    n = len(s)
    # the first i jets (lowest scores) called background, the rest signal: i = 0 .. n
    background_below = np.concatenate([[0], np.cumsum(~y)])
    signal_above = int(y.sum()) - np.concatenate([[0], np.cumsum(y)])
    correct = background_below + signal_above
    valid = np.ones(n + 1, bool)
    valid[1:n] = s[1:] > s[:-1]  # a cut cannot fall between two equal scores
    i = int(np.argmax(np.where(valid, correct, -1)))
    threshold = s[0] - 1.0 if i == 0 else (s[-1] if i == n else (s[i - 1] + s[i]) / 2)
    return float(threshold), float(correct[i] / n)


def jet_mass_scores(constituents: np.ndarray, n_particles: int) -> dict[str, np.ndarray]:
    """{INPUTS: mass of the leading ``n_particles`` constituents, ALL: mass of all of them}, in GeV, per jet."""
    c = np.asarray(constituents)
    return {INPUTS: jet_kinematics(c[:, :n_particles])["mass"], ALL: jet_kinematics(c)["mass"]}


CURVE_LABELS = {INPUTS: "jet mass of the student's {n} inputs", ALL: "jet mass of all constituents"}


def baseline_curves(is_signal: np.ndarray, constituents: np.ndarray, n_particles: int) -> dict:
    """{label: (is_signal, mass)} of both baselines, for ``train/plots.py`` roc_plot beside the students' curves."""
    return {CURVE_LABELS[key].format(n=n_particles): (is_signal, mass)
            for key, mass in jet_mass_scores(constituents, n_particles).items()}


def jet_mass_baselines(splits: dict[str, tuple[np.ndarray, np.ndarray]], n_particles: int) -> dict:
    """{INPUTS: ..., ALL: ...}, each {"what", "score", "cut", split name: binary metrics on that split's jets} for
    ``splits`` = {name: (constituents (N, P, 4) pT-ordered, is_signal (N,))}. ``cut``: {"threshold" (GeV),
    "chosen_on", "n_jets", "val_accuracy"} of the mass cut chosen on the validation split, None without one."""
    what = {INPUTS: f"jet mass of the {n_particles} leading constituents (the student's inputs)",
            ALL: "jet mass of all stored constituents"}
    masses = {split: (jet_mass_scores(c, n_particles), y) for split, (c, y) in splits.items()}
    out = {}
    for key in (INPUTS, ALL):
        cut = None
        if CUT_SPLIT in masses:
            scores, y = masses[CUT_SPLIT]
            threshold, acc = best_cut(y, scores[key])
            cut = {"threshold": threshold, "chosen_on": CUT_SPLIT, "n_jets": int(len(y)), "val_accuracy": acc}
        entry = {"what": what[key], "score": "the mass in GeV (higher = signal)", "cut": cut}
        for split, (scores, y) in masses.items():
            m = binary_metrics(y, scores[key], threshold=cut["threshold"] if cut else 0.0)
            entry[split] = m if cut else {**m, "accuracy": None}
        out[key] = entry
    return out
