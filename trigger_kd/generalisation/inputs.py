"""What `trigger-kd evaluate` and `trigger-kd diagnose` read from outside, validated in one place before any work.

- The jet file ``evaluate`` scores (:func:`read_scored_jets`) goes through the readers and checks of the data
  stage's inputs: ``data.formats.read_canonical`` (existence, layout attribute, numbers, NaN/inf, float32 range, label
  values, ``is_signal`` against ``jet_class``), ``data.sanity.check_physics`` per jet class ((E, px, py, pz) order
  and GeV units by the energy, mass and pT ranges, multiplicity, copies of one jet), ``data.sanity.check_empty_jets``
  and, for what the canonical layout states and a model relies on: each jet's constituents in pT order (highest
  first, zero padding last), jets not cut to fewer constituents than the run's models read, both signal and
  background jets. Each refusal is one line (``TriggerKDError``: exit 2); the borderline cases ``check_physics``
  warns about come back as warnings that the result carries.
- Jets the run trained or validated on are recognised by :func:`jet_keys`: a digest of each jet's leading
  constituents in a canonical order (pT, then the components), so neither the order a file stores them in nor how
  many it stores changes a jet's key.
- Arguments (:func:`check_counts`): whole numbers in their stated ranges, checked before anything is read or run.
"""
from __future__ import annotations

import numbers
from pathlib import Path

import numpy as np

from ..errors import TriggerKDError

KEY_PARTICLES = 8  # a jet is identified by its leading constituents (a file may store fewer than the run's data)
PT_ORDER_RTOL = 1e-6  # a constituent may exceed the pT of the one before it by this fraction (rounding)
TRUNCATED_FRACTION = 0.25  # above this fraction of jets at the file's largest multiplicity: the jets were cut there
TRUNCATED_JETS = 5  # ... and at least this many (a few jets may share a multiplicity by chance)
MAX_ARGUMENT = 100_000  # of an iteration, sample or epoch count (a typo's 1e9 would run for days)
MAX_SEED = 2 ** 63 - 1  # torch.Generator.manual_seed's range


def jet_keys(constituents: np.ndarray) -> np.ndarray:
    """One digest per jet (``data.sanity.jet_hashes``) of its ``KEY_PARTICLES`` leading constituents, sorted by pT
    (descending), ties by (E, px, py, pz): the same for any order of the constituents within a jet."""
    from ..data.sanity import jet_hashes

    c = np.asarray(constituents, dtype=np.float32) + np.float32(0.0)  # -0.0 -> 0.0: equal values, equal bytes
    if c.ndim != 3 or c.shape[-1] != 4:
        raise TriggerKDError(f"jets must be (N, P, 4) E,px,py,pz to be identified, got shape {c.shape}")
    pt2 = c[..., 1].astype(np.float64) ** 2 + c[..., 2].astype(np.float64) ** 2
    order = np.lexsort((c[..., 3], c[..., 2], c[..., 1], c[..., 0], -pt2), axis=-1)
    lead = np.take_along_axis(c, order[..., None], axis=1)[:, :KEY_PARTICLES]
    if lead.shape[1] < KEY_PARTICLES:  # a file storing fewer constituents: the missing ones are padding
        lead = np.concatenate([lead, np.zeros((len(c), KEY_PARTICLES - lead.shape[1], 4), np.float32)], axis=1)
    return jet_hashes(lead)


def unseen_mask(constituents: np.ndarray, seen: list[np.ndarray]) -> np.ndarray:
    """True for jets whose key (:func:`jet_keys`) matches none of the jets of the ``seen`` arrays."""
    known = [jet_keys(c) for c in seen if len(c)]
    keys = jet_keys(constituents)
    return ~np.isin(keys, np.concatenate(known)) if known else np.ones(len(keys), dtype=bool)


def check_pt_order(c: np.ndarray, where: str) -> None:
    """Refuse jets whose constituents are not in pT order, highest first, zero padding last (the canonical layout:
    models read the leading ones)."""
    pt2 = c[..., 1].astype(np.float64) ** 2 + c[..., 2].astype(np.float64) ** 2
    bad = pt2[:, 1:] > pt2[:, :-1] * (1.0 + PT_ORDER_RTOL) ** 2  # padding (pT 0) before a constituent too
    if not bad.any():
        return
    jets = np.flatnonzero(bad.any(axis=1))
    j = int(jets[0])
    k = int(np.flatnonzero(bad[j])[0]) + 1
    raise TriggerKDError(
        f"{where}: the constituents of {len(jets)} of {len(c)} jets are not in pT order (first: jet {j}, constituent "
        f"{k} has pT {np.sqrt(pt2[j, k]):.4g} GeV after {np.sqrt(pt2[j, k - 1]):.4g} GeV); the models read each jet's "
        f"leading constituents, highest pT first, zero padding last: sort them (the data stage does, with "
        f"data.source canonical)")


def check_multiplicity(c: np.ndarray, where: str, needs: int, reader: str) -> None:
    """Refuse jets cut to fewer constituents than the models read (``needs``; ``reader``: which model): most jets at
    the file's largest multiplicity, below ``needs``, is a cut, not a spectrum."""
    mult = np.any(c != 0, axis=-1).sum(axis=1)
    top = int(mult.max()) if len(mult) else 0
    at_top = int((mult == top).sum())
    if top < needs and at_top >= TRUNCATED_JETS and at_top > TRUNCATED_FRACTION * len(mult):
        raise TriggerKDError(
            f"{where}: {at_top} of {len(mult)} jets have exactly {top} constituents and none has more, but {reader} "
            f"reads the {needs} leading ones: the jets were cut to {top} constituents (the file stores "
            f"{c.shape[1]} per jet); give the jets with all their constituents (at least {needs})")


def refuse_k_classes(classes, where, kind: str, instead: str) -> None:
    """Jets of a K-class task (``classes``; None: a binary one) are refused: evaluate scores a binary tagger's signal
    score. ``where``/``kind`` name what holds them (a file, a model YAML's task); ``instead``: what to give."""
    if classes:
        raise TriggerKDError(f"{where}: a {len(classes)}-class {kind} ({', '.join(classes)}); evaluate scores a binary "
                             f"tagger's signal score: give {instead}")


def read_scored_jets(path: Path, needs: int, reader: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(constituents, is_signal, jet class names, warnings) of a canonical file of a binary task, refused with one
    line where the data stage would refuse it or a model would read something else than jets (module docstring).
    ``needs``: the constituents per jet the models read; ``reader``: which model reads them, for the message."""
    from ..data.formats import read_canonical, read_classes, read_jet_classes
    from ..data.sanity import check_empty_jets, check_physics

    path = Path(path)
    refuse_k_classes(read_classes(path), path, "file", "a file of a binary task (is_signal, no 'label')")
    c, y = read_canonical(path)
    if len(c) == 0:
        raise TriggerKDError(f"{path}: holds no jets; give a file with signal and background jets")
    names = read_jet_classes(path)
    warnings = list(check_physics(c, str(path), names)["warnings"])
    check_empty_jets(c, None, [str(path)])
    check_pt_order(c, str(path))
    check_multiplicity(c, str(path), needs, reader)
    if len(np.unique(y)) < 2:
        side = "signal" if y[0] == 1 else "background"
        raise TriggerKDError(f"{path}: all {len(y)} jets are {side} jets (is_signal {int(y[0])}, classes "
                             f"{sorted(set(names.tolist()))}): an AUC needs both signal and background jets")
    return c, y, names, warnings


def check_counts(**args: tuple[object, int, int | None]) -> None:
    """Each argument ``name=(value, minimum, maximum)`` a whole number in [minimum, maximum] (None: no maximum);
    ``name`` as the command line spells it (``power_iterations`` -> ``--power-iterations``)."""
    for name, (value, lo, hi) in args.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TriggerKDError(f"{flag} must be a whole number, got {value!r}")
        if value < lo or (hi is not None and value > hi):
            raise TriggerKDError(f"{flag} must be {f'from {lo} to {hi}' if hi is not None else f'at least {lo}'}, "
                                 f"got {value}")
