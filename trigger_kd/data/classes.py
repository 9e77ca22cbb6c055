"""Jet class names and the signal / background selection of a binary tagger.

Classes, as in the hls4ml LHC jet dataset: ``gluon``, ``q`` (light quark), ``w``, ``z``,
``top``; plus ``qcd`` (inclusive QCD jets, gluons and quarks mixed). Asking for ``qcd`` also
takes jets recorded as ``gluon`` or ``q`` (e.g. from hls4ml files); asking for ``gluon``
takes only jets known to be gluons.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import TriggerKDError

JET_CLASSES = ("top", "qcd", "gluon", "q", "w", "z")
_MEMBERS = {"qcd": ("qcd", "gluon", "q")}


def members(cls: str) -> tuple[str, ...]:
    """Recorded class names that a requested class accepts."""
    return _MEMBERS.get(cls, (cls,))


def check_selection(signal: Sequence[str], background: Sequence[str], where: str = "data") -> None:
    """Raise unless signal and background are non-empty lists of known, non-overlapping classes."""
    for side, names in (("signal", signal), ("background", background)):
        if not names:
            raise TriggerKDError(f"{where}.{side} is empty: list at least one jet class of {list(JET_CLASSES)}")
        bad = [n for n in names if n not in JET_CLASSES]
        if bad:
            raise TriggerKDError(f"{where}.{side}: unknown jet class(es) {bad}; use names from {list(JET_CLASSES)}")
        if len(set(names)) != len(names):
            raise TriggerKDError(f"{where}.{side} lists a class twice: {list(names)}")
    overlap = {m for s in signal for m in members(s)} & {m for b in background for m in members(b)}
    if overlap:
        raise TriggerKDError(f"{where}.signal {list(signal)} and {where}.background {list(background)} overlap "
                             f"in {sorted(overlap)}: a jet class can be on one side only")


def select(names: np.ndarray, signal: Sequence[str], background: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(keep mask, is_signal int8 of the kept jets) for per-jet class names."""
    names = np.asarray(names).astype(str)
    sig = np.isin(names, [m for s in signal for m in members(s)])
    bkg = np.isin(names, [m for b in background for m in members(b)])
    return sig | bkg, sig[sig | bkg].astype(np.int8)


def describe(signal: Sequence[str], background: Sequence[str]) -> str:
    """'w vs gluon', 'w+z vs gluon+q'."""
    return f"{'+'.join(signal)} vs {'+'.join(background)}"
