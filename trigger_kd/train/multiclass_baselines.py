"""Multi-class baselines a physicist tries first: boosted decision trees on classic jet observables.

Both read only the leading ``n_particles`` constituents, the rows the student sees, so they measure what the
network adds over hand-made observables of its own inputs:

* ``jet_mass_inputs``: the jet mass alone;
* ``substructure``: jet mass, tau21, tau32 (N-subjettiness ratios) and constituent multiplicity
  (``substructure.substructure_features``).

Each is a scikit-learn ``HistGradientBoostingClassifier`` with default settings, a fixed ``random_state`` and no
early stopping, fitted on the train split only (nothing tuned on validation or test jets). Its raw multi-class
scores (``decision_function``, whose softmax is ``predict_proba``) are the logits given to
``multiclass.multiclass_metrics`` on every other split.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import TriggerKDError
from .multiclass import multiclass_metrics
from .substructure import substructure_features

MASS, SUBSTRUCTURE = "jet_mass_inputs", "substructure"
_FEATURES = {MASS: ("mass",), SUBSTRUCTURE: ("mass", "tau21", "tau32", "multiplicity")}


def _classifier(seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(early_stopping=False, random_state=seed)


def _logits(clf, x: np.ndarray, k: int) -> np.ndarray:
    """(N, K) logits whose softmax is ``clf.predict_proba`` (binary: [0, log-odds])."""
    raw = np.asarray(clf.decision_function(x), dtype=np.float64)
    if raw.ndim == 1:
        raw = np.stack([np.zeros_like(raw), raw], axis=1)
    out = np.empty((len(x), k))
    out[:, clf.classes_.astype(np.int64)] = raw
    return out


def substructure_baselines(splits: dict[str, tuple[np.ndarray, np.ndarray]], n_particles: int,
                           outputs: Sequence[str], signal: Sequence[int], qcd: Sequence[int],
                           seed: int = 0) -> dict:
    """{MASS: entry, SUBSTRUCTURE: entry}, each entry {"what", "features", "classifier", and per split other than
    "train": ``multiclass_metrics``} for ``splits`` = {"train": (constituents (N, P, 4), y (N,) class index),
    "val": ..., "test": ...}; ``outputs``, ``signal``, ``qcd`` as for ``multiclass_metrics``."""
    if "train" not in splits:
        raise TriggerKDError(f"the baselines are fitted on a 'train' split; got splits {sorted(splits)}")
    k = len(outputs)
    feats = {name: substructure_features(c, n_particles) for name, (c, _) in splits.items()}
    y_train = np.asarray(splits["train"][1]).astype(np.int64)
    missing = sorted(set(range(k)) - set(np.unique(y_train).tolist()))
    if missing:
        raise TriggerKDError(f"the train split has no jets of {[outputs[m] for m in missing]}: the baselines cannot "
                             "learn a class they never see")
    out = {}
    for key, what in ((MASS, f"BDT on the jet mass of the {n_particles} leading constituents (the student's inputs)"),
                      (SUBSTRUCTURE, f"BDT on jet mass, tau21, tau32 and multiplicity of the {n_particles} leading "
                                     "constituents (the student's inputs)")):
        cols = _FEATURES[key]
        clf = _classifier(seed)
        clf.fit(np.stack([feats["train"][f] for f in cols], axis=1).astype(np.float64), y_train)
        entry = {"what": what, "features": list(cols),
                 "classifier": f"sklearn HistGradientBoostingClassifier(early_stopping=False, random_state={seed}), "
                               "fitted on the train split; logits = its decision_function"}
        for split, (_, y) in splits.items():
            if split != "train":
                x = np.stack([feats[split][f] for f in cols], axis=1).astype(np.float64)
                entry[split] = multiclass_metrics(y, _logits(clf, x, k), outputs, signal, qcd)
        out[key] = entry
    return out
