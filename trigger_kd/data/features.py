"""Student inputs from canonical constituents (after arXiv 2311.14160, scaled for fixed point).

Per constituent, for the ``n_particles`` leading ones (pT order of the input), four features,
and a fifth with ``student.jet_pt_feature``:

====  ==========================  ============================================
 idx  feature                     typical range
====  ==========================  ============================================
 0    2 * pT / pT_jet             [0, 2)  (pT / pT_jet <= 1)
 1    2 * (eta - eta_jet)         about [-1.6, 1.6] for R = 0.8 jets
 2    2 * wrap(phi - phi_jet)     about [-1.6, 1.6]; wrap into [-pi, pi) first
 3    m / GeV                     [0, 0.94] (photons 0, pions 0.14, kaons 0.49, protons 0.94)
 4    ln(pT_jet / TeV)            [-2, 2) holds 135 GeV to 7.4 TeV (-0.51 at 600 GeV); optional
====  ==========================  ============================================

The factor 2 on the first three spreads them over the signed fixed-point input range
[-2, 2) (``fixed<10, 2>`` by default) for twice the resolution of the paper's unscaled
features; the mass is kept in GeV as in the paper (m / pT_jet would round to zero).
The mass comes from float32 4-vectors: its m^2 carries a rounding error of about
1e-7 * E^2 GeV^2, so it tells particle species apart only below E of roughly 100 GeV.
The jet axis is the sum of all constituents.

Features 0-2 describe the jet's shape relative to its own pT and axis; they do not say how hard
the jet is. Seen from a boosted frame a jet's pT changes and its opening angles shrink or grow
with it, so a top jet at higher pT looks like a narrower, QCD-like jet: without the jet's pT a
student cannot tell the two apart (the teacher can: it sees 4-vectors). Feature 4, the same
value on every real constituent of the jet, gives the student that scale; trained with boosted
views (``distill.augment_max_beta``) it then keeps its accuracy under boosts (benchmarks/history/kd_gain.md,
"Boost robustness and the jet's pT"). Padded (all-zero) constituents, and slots
beyond a jet's constituent count, are exactly 0 in every feature.

The student stage refuses features that leave the input range in more than 1 % of the training
or transfer jets (``check_input_range``): the quantiser would clip them silently, in the model and
the firmware alike, and the student would learn from a clipped input (feature 4 of a 100 GeV jet).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import TriggerKDError
from ..fixedpoint import FixedFormat
from .physics import constituent_kinematics, jet_kinematics

N_FEATURES = 4  # without the jet's pT
FEATURE_NAMES = ("2*pt/pt_jet", "2*deta", "2*dphi", "mass_gev", "ln_pt_jet_tev")
SCALES = (2.0, 2.0, 2.0, 1.0)


def feature_names(jet_pt: bool = False) -> tuple[str, ...]:
    """Names of the features per constituent, in input order: 4, or 5 with the jet's ln(pT / TeV)."""
    return FEATURE_NAMES[:N_FEATURES + int(bool(jet_pt))]


def n_features(jet_pt: bool = False) -> int:
    return len(feature_names(jet_pt))


def student_features(constituents, n_particles: int, jet_pt: bool = False) -> np.ndarray:
    """(N, P, 4) E,px,py,pz -> (N, n_particles, 4 or 5) float32 features (see module docstring)."""
    return features_of(*leading_and_axis(constituents, n_particles), jet_pt=jet_pt)


def leading_and_axis(constituents, n_particles: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, P, 4) -> the leading n_particles constituents (N, n_particles, 4), zero-padded, and the jet
    4-vector (N, 4), both float64: all that the features need, and both transform as 4-vectors."""
    c = np.asarray(constituents)
    if c.ndim != 3 or c.shape[-1] != 4:
        raise TriggerKDError(f"student_features needs constituents of shape (N, P, 4), got {c.shape}")
    if n_particles <= 0:
        raise TriggerKDError(f"student.n_particles must be positive, got {n_particles}")
    lead = np.zeros((len(c), n_particles, 4))
    lead[:, : c.shape[1]] = c[:, :n_particles]
    return lead, c.astype(np.float64).sum(axis=1)


def features_of(lead: np.ndarray, axis: np.ndarray, jet_pt: bool = False) -> np.ndarray:
    """Leading constituents (N, n, 4) and jet 4-vectors (N, 4) -> (N, n, 4 or 5) float32 features."""
    jet = jet_kinematics(np.asarray(axis)[:, None, :])
    kin = constituent_kinematics(lead)
    pt_jet = jet["pt"][:, None]
    pt_rel = np.divide(kin["pt"], pt_jet, out=np.zeros_like(kin["pt"]), where=pt_jet > 0)
    d_eta = kin["eta"] - jet["eta"][:, None]
    d_phi = np.mod(kin["phi"] - jet["phi"][:, None] + np.pi, 2 * np.pi) - np.pi
    e, px, py, pz = np.moveaxis(np.asarray(lead, dtype=np.float64), -1, 0)
    mass = np.sqrt(np.maximum(e * e - (px * px + py * py + pz * pz), 0.0))
    cols = [pt_rel * SCALES[0], d_eta * SCALES[1], d_phi * SCALES[2], mass * SCALES[3]]
    if jet_pt:
        ln_pt = np.log(np.maximum(pt_jet, 1e-300) / 1000.0)  # GeV -> TeV; a jet of pT 0 has no real constituent
        cols.append(np.broadcast_to(ln_pt, pt_rel.shape))
    feats = np.stack(cols, axis=-1)
    feats[~kin["mask"]] = 0.0
    return feats.astype(np.float32)


def input_format(bits: int, int_bits: int) -> FixedFormat:
    """The student's signed input ``fixed<bits, int_bits + 1>`` (``student.input_bits``, ``input_int_bits``)."""
    return FixedFormat(signed=True, bits=bits, frac_bits=bits - 1 - int_bits)


def input_range(bits: int, int_bits: int) -> tuple[float, float, float]:
    """The student's input format: its lowest and highest value and its LSB."""
    fmt = input_format(bits, int_bits)
    lsb = 2.0 ** -fmt.frac_bits
    return fmt.int_min * lsb, fmt.int_max * lsb, lsb


def saturated_jets(feats, bits: int, int_bits: int) -> np.ndarray:
    """(N, P, F) features -> (F,) the fraction of jets in which feature k leaves the input range on some
    constituent, i.e. where the input quantiser saturates it (beyond half an LSB, the rounding error)."""
    lo, hi, lsb = input_range(bits, int_bits)
    f = np.asarray(feats)
    if not len(f):
        return np.zeros(f.shape[-1])
    out = (f < lo - lsb / 2) | (f > hi + lsb / 2)
    return out.any(axis=1).mean(axis=0)


MAX_SATURATED_JETS = 0.01  # above this fraction of jets a feature's saturation is refused (check_input_range)


def check_input_range(feats, names, bits: int, int_bits: int, what: str) -> dict[str, float]:
    """Refuse features that the input quantiser would saturate in more than 1 % of the jets: the model
    and the firmware would agree (both saturate), but on a clipped input that no longer says what it
    should (e.g. the jet pT feature of jets softer than 135 GeV). Returns the saturated fractions."""
    frac = dict(zip(names, (float(v) for v in saturated_jets(feats, bits, int_bits))))
    bad = {k: v for k, v in frac.items() if v > MAX_SATURATED_JETS}
    if not bad:
        return frac
    lo, hi, _ = input_range(bits, int_bits)
    fmt = input_format(bits, int_bits).hls_type
    msgs = []
    for k, v in bad.items():
        msg = f"feature {k} is outside the student's input range [{lo:g}, {hi:g}] ({fmt}) in {100 * v:.1f} % of the {what} jets"
        if k == FEATURE_NAMES[4]:
            msg += (f": ln(pT_jet / TeV) fits only jets from {1000 * np.exp(lo):.0f} GeV to {np.exp(hi):.1f} TeV; "
                    "raise student.input_int_bits (each bit doubles the log range) or turn student.jet_pt_feature off")
        else:
            msg += ": the jets are not what the features are scaled for (trigger_kd/data/features.py); "\
                   "check the jet radius and the input files, or raise student.input_int_bits"
        msgs.append(msg)
    raise TriggerKDError("; ".join(msgs) + f" (more than {100 * MAX_SATURATED_JETS:g} % would saturate silently, "
                         "in the model and the firmware alike)")


def student_input(feats, layout: str) -> np.ndarray:
    """Features (N, P, F) -> model input: 'flat' (N, P*F) particle-major, 'NFP' (N, F, P) or 'NPF' (N, P, F)."""
    f = np.asarray(feats, dtype=np.float32)
    if f.ndim != 3:
        raise TriggerKDError(f"student_input needs features of shape (N, P, F), got {f.shape}")
    if layout not in ("flat", "NFP", "NPF"):
        raise TriggerKDError(f"unknown input layout {layout!r}: use 'flat', 'NFP' or 'NPF'")
    shaped = {"flat": lambda: f.reshape(len(f), -1), "NFP": lambda: f.transpose(0, 2, 1), "NPF": lambda: f}[layout]()
    return np.ascontiguousarray(shaped)


@dataclass(frozen=True)
class StudentFeatures:
    """What the student sees of a jet, fixed once per stage from ``cfg.student`` (:meth:`of`) and handed down: the
    features of its ``n_particles`` leading constituents (with the jet's ln pT where ``jet_pt``) on the input bus
    ``fixed<input_bits, input_int_bits + 1>``. The config enters this module through :meth:`of` only."""

    n_particles: int
    jet_pt: bool
    input_bits: int
    input_int_bits: int

    @classmethod
    def of(cls, s) -> "StudentFeatures":
        """From ``cfg.student`` (``n_particles``, ``jet_pt_feature``, ``input_bits``, ``input_int_bits``)."""
        return cls(int(s.n_particles), bool(s.jet_pt_feature), int(s.input_bits), int(s.input_int_bits))

    def __call__(self, constituents) -> np.ndarray:
        """(N, P, 4) E,px,py,pz -> (N, n_particles, F) float32 features (:func:`student_features`)."""
        return student_features(constituents, self.n_particles, self.jet_pt)

    @property
    def names(self) -> tuple[str, ...]:
        return feature_names(self.jet_pt)

    def saturated(self, feats) -> dict[str, float]:
        """Per feature, the fraction of jets the input quantiser saturates (:func:`saturated_jets`)."""
        return dict(zip(self.names, saturated_jets(feats, self.input_bits, self.input_int_bits).tolist()))

    def check_range(self, feats, what: str) -> dict[str, float]:
        """:func:`check_input_range` on the student's input bus."""
        return check_input_range(feats, self.names, self.input_bits, self.input_int_bits, what)
