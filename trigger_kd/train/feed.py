"""What a student trains on, epoch by epoch, as numpy arrays (no framework code here).

- Labelled training jets, with their labels; transfer jets with label -1 (teacher targets only:
  the hard-label loss skips them).
- Teacher logits for every row, or none (from scratch).
- Boost-augmented views (``distill.augment_max_beta`` > 0): view v gives every jet its own
  random boost (direction uniform on the sphere, |beta| ~ U(0, b)), and epoch e trains on view
  e mod k with the teacher's logits on the same boosted jets (precomputed by the transfer
  stage). Only the jet is boosted, not the beams: that is the physical situation (a jet seen
  in another frame, the collision axis unchanged); LorentzNet with its two beam particles is
  then not invariant, which is why its logits are recomputed on every view. No rotations:
  a rotation about the beam leaves the student features (relative to the jet axis) unchanged,
  and the robustness check that the augmentation aims at measures boosts.
- SEAL pairs (``student.seal_lambda`` > 0): for a batch, the same jets under a fresh random
  boost (|beta| ~ U(0, ``seal_max_beta``), random direction), features recomputed from the
  boosted constituents; the loss adds lambda * mean ||f(L x) - f(x)||^2 of the logits.

Constituent order is kept under boosts (as in the robustness check), so a boosted jet's
features come from the same leading constituents and the boosted jet 4-vector.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from ..data.boost import apply_matrices, boost_matrices, random_boost_velocities
from ..data.boost import view_velocities  # noqa: F401 (the views' boosts: the transfer stage draws them)
from ..data.features import features_of, leading_and_axis
from ..errors import TriggerKDError

UNLABELLED = -1
_SEAL_STREAM = 7332  # data/boost.py view_velocities draws the views' boosts from stream 7331


@dataclass(frozen=True)
class LorentzJets:
    """The leading constituents (N, n, 4) and jet 4-vectors (N, 4) of jets, float64: what the student
    features are computed from, kept as 4-vectors so that Lorentz transformations apply to them;
    ``jet_pt``: the features include the jet's ln(pT / TeV) (``student.jet_pt_feature``)."""

    lead: np.ndarray
    axis: np.ndarray
    jet_pt: bool = False

    @classmethod
    def from_constituents(cls, constituents, n_particles: int, jet_pt: bool = False) -> "LorentzJets":
        return cls(*leading_and_axis(constituents, n_particles), jet_pt=jet_pt)

    def __len__(self) -> int:
        return len(self.axis)

    def boosted(self, betas) -> "LorentzJets":
        """Each jet boosted by its own velocity (N, 3)."""
        m = boost_matrices(betas)
        return replace(self, lead=apply_matrices(self.lead, m), axis=apply_matrices(self.axis, m))

    def features(self) -> np.ndarray:
        return features_of(self.lead, self.axis, jet_pt=self.jet_pt)

    def take(self, idx) -> "LorentzJets":
        return replace(self, lead=self.lead[idx], axis=self.axis[idx])

    @staticmethod
    def concat(parts: list["LorentzJets"]) -> "LorentzJets":
        if len({p.jet_pt for p in parts}) > 1:
            raise TriggerKDError("LorentzJets.concat: parts with and without the jet pT feature")
        return replace(parts[0], lead=np.concatenate([p.lead for p in parts]),
                       axis=np.concatenate([p.axis for p in parts]))


class DistillFeed:
    """Training rows for one student: inputs per epoch, labels (-1 = unlabelled), teacher logits, SEAL pairs.

    ``to_input`` turns features (N, n, 4) into the model's input layout.
    """

    def __init__(self, jets: LorentzJets, labels, to_input: Callable[[np.ndarray], np.ndarray],
                 teacher=None, view_betas=None, view_teacher=None, seal_lambda: float = 0.0,
                 seal_max_beta: float = 0.95, seed: int = 0):
        self.jets, self.to_input = jets, to_input
        self.labels = np.asarray(labels, dtype=np.int64)
        self.teacher = None if teacher is None else np.asarray(teacher, dtype=np.float32)
        self.view_betas = None if view_betas is None or len(view_betas) == 0 else np.asarray(view_betas)
        self.view_teacher = None if view_teacher is None else np.asarray(view_teacher, dtype=np.float32)
        self.seal_lambda, self.seal_max_beta, self.seed = float(seal_lambda), float(seal_max_beta), seed
        n = len(jets)
        if self.labels.shape != (n,):
            raise TriggerKDError(f"{len(self.labels)} labels for {n} training jets")
        if self.teacher is not None and (self.teacher.ndim != 2 or self.teacher.shape[0] != n
                                         or self.teacher.shape[1] < 2):
            raise TriggerKDError(f"teacher logits of shape {self.teacher.shape} for {n} training jets")
        k = 2 if self.teacher is None else self.teacher.shape[1]
        if self.teacher is not None and (self.labels >= k).any():
            raise TriggerKDError(f"labels up to {int(self.labels.max())} but the teacher gives {k} logits: the teacher "
                                 "was trained for another task; rerun the teacher stage")
        if self.view_betas is not None:
            if self.view_betas.shape[1:] != (n, 3):
                raise TriggerKDError(f"view boosts of shape {self.view_betas.shape} for {n} training jets")
            if self.teacher is not None and (self.view_teacher is None or
                                             self.view_teacher.shape != (len(self.view_betas), n, k)):
                raise TriggerKDError("teacher logits on every augmented view are needed for distillation: "
                                     "rerun the transfer stage")
        if self.teacher is None and (self.labels == UNLABELLED).any():
            raise TriggerKDError("unlabelled (transfer) jets need teacher targets: train them with distill.alpha > 0")
        self._seal_rng = np.random.default_rng([seed, _SEAL_STREAM])
        self._cached: tuple[int, LorentzJets, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_views(self) -> int:
        return 0 if self.view_betas is None else len(self.view_betas)

    def _view(self, epoch: int) -> tuple[int, LorentzJets, np.ndarray]:
        v = epoch % self.n_views if self.n_views else -1
        if self._cached is None or self._cached[0] != v:
            jets = self.jets if v < 0 else self.jets.boosted(self.view_betas[v])
            self._cached = (v, jets, np.ascontiguousarray(self.to_input(jets.features()), dtype=np.float32))
        return self._cached

    def epoch(self, epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(inputs, labels, teacher logits or None) of every row for this epoch (0-based)."""
        v, _, x = self._view(epoch)
        t = self.teacher if v < 0 or self.teacher is None else self.view_teacher[v]
        return x, self.labels, t

    def seal_inputs(self, epoch: int, idx) -> np.ndarray | None:
        """Inputs of rows ``idx`` (as seen this epoch) under fresh random boosts; None when SEAL is off."""
        if self.seal_lambda <= 0:
            return None
        _, jets, _ = self._view(epoch)
        part = jets.take(np.asarray(idx))
        betas = random_boost_velocities(self._seal_rng, len(part), self.seal_max_beta)
        return np.ascontiguousarray(self.to_input(part.boosted(betas).features()), dtype=np.float32)

    def labelled_only(self) -> "DistillFeed":
        """The same labelled rows, views and SEAL setting without the teacher: the from-scratch twin's feed."""
        keep = np.flatnonzero(self.labels != UNLABELLED)
        return DistillFeed(self.jets.take(keep), self.labels[keep], self.to_input,
                           view_betas=None if self.view_betas is None else self.view_betas[:, keep],
                           seal_lambda=self.seal_lambda, seal_max_beta=self.seal_max_beta, seed=self.seed)


class InputFeed:
    """Fixed model inputs (no boosted views, no SEAL): the same interface as DistillFeed, for inputs
    that do not come from constituents (tests, models trained elsewhere)."""

    n_views = 0

    def __init__(self, x, labels, teacher=None):
        self.x = np.ascontiguousarray(x, dtype=np.float32)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.teacher = None if teacher is None else np.asarray(teacher, dtype=np.float32)
        if len(self.labels) != len(self.x) or (self.teacher is not None and len(self.teacher) != len(self.x)):
            raise TriggerKDError(f"{len(self.x)} inputs, {len(self.labels)} labels and "
                                 f"{'no' if self.teacher is None else len(self.teacher)} teacher logits: one each per jet")

    def __len__(self) -> int:
        return len(self.labels)

    def epoch(self, epoch: int):
        return self.x, self.labels, self.teacher

    def seal_inputs(self, epoch: int, idx):
        return None

    def labelled_only(self) -> "InputFeed":
        keep = self.labels != UNLABELLED
        return InputFeed(self.x[keep], self.labels[keep])
