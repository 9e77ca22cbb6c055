"""Jet class names, the signal / background selection of a binary tagger and the task of K outputs (Task).

Classes, as in the hls4ml LHC jet dataset: ``gluon``, ``q`` (light quark), ``w``, ``z``,
``top``; plus ``qcd`` (inclusive QCD jets, gluons and quarks mixed). Asking for ``qcd`` also
takes jets recorded as ``gluon`` or ``q`` (e.g. from hls4ml files); asking for ``gluon``
takes only jets known to be gluons.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import TriggerKDError

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


def describe(signal: Sequence[str], background: Sequence[str]) -> str:
    """'w vs gluon', 'w+z vs gluon+q' (the binary Task's description)."""
    return Task.binary(signal, background).describe()


# ----------------------------------------------------------------------------- the task: K outputs
SIGNAL_CLASSES = ("top", "w", "z")  # heavy-resonance jets: the signal classes of a multi-class tagger's figures
QCD_CLASSES = ("qcd", "gluon", "q")  # what their rejections are measured against


def check_classes(classes: Sequence[str], where: str = "data") -> None:
    """Raise unless ``classes`` is a list of at least 3 known, distinct, non-overlapping jet classes."""
    if len(classes) < 3:
        raise TriggerKDError(f"{where}.classes lists {len(classes)} class(es) {list(classes)}: a multi-class tagger "
                             "needs at least 3; for two, use data.signal and data.background")
    bad = [n for n in classes if n not in JET_CLASSES]
    if bad:
        raise TriggerKDError(f"{where}.classes: unknown jet class(es) {bad}; use names from {list(JET_CLASSES)}")
    if len(set(classes)) != len(classes):
        raise TriggerKDError(f"{where}.classes lists a class twice: {list(classes)}")
    taken: dict[str, str] = {}
    for cls in classes:
        for m in members(cls):
            if m in taken:
                raise TriggerKDError(f"{where}.classes: {taken[m]!r} and {cls!r} both take {m!r} jets (qcd holds "
                                     "gluon and q jets): a jet must belong to one class only")
            taken[m] = cls


class Task:
    """What the tagger's K outputs mean. Binary (``data.signal`` / ``data.background``): output 0 the background
    classes, output 1 the signal classes (K = 2, the label is ``is_signal``). Multi-class (``data.classes``): output
    k is ``classes[k]`` (K >= 3, the label is the class index)."""

    def __init__(self, groups: Sequence[Sequence[str]], outputs: Sequence[str], multiclass: bool):
        self.groups = tuple(tuple(g) for g in groups)
        self.outputs = tuple(outputs)
        self.multiclass = multiclass

    @classmethod
    def binary(cls, signal: Sequence[str], background: Sequence[str]) -> "Task":
        return cls((background, signal), ("+".join(background), "+".join(signal)), False)

    @classmethod
    def of_classes(cls, classes: Sequence[str]) -> "Task":
        return cls([(c,) for c in classes], classes, True)

    @property
    def n_classes(self) -> int:
        return len(self.outputs)

    @property
    def classes(self) -> tuple[str, ...]:
        """Every requested jet class, in generation order (binary: signal first, as it always was)."""
        return tuple(c for g in (self.groups[::-1] if not self.multiclass else self.groups) for c in g)

    def labels(self, names) -> tuple[np.ndarray, np.ndarray]:
        """(keep mask, label int8 of the kept jets: the output index) for per-jet class names."""
        names = np.asarray(names).astype(str)
        y = np.full(names.shape, -1, np.int8)
        for k, group in enumerate(self.groups):
            y[np.isin(names, [m for c in group for m in members(c)])] = k
        return y >= 0, y[y >= 0]

    def label_of(self, cls: str) -> int:
        return next(k for k, g in enumerate(self.groups) if cls in g)

    def describe(self) -> str:
        """'top vs qcd', '5 classes: gluon, q, w, z, top'."""
        if not self.multiclass:
            return f"{self.outputs[1]} vs {self.outputs[0]}"
        return f"{self.n_classes} classes: {', '.join(self.outputs)}"

    def signal_outputs(self) -> list[int]:
        """Outputs whose rejection of the QCD outputs a trigger engineer reads (top, W, Z; binary: output 1)."""
        if not self.multiclass:
            return [1]
        return [k for k, c in enumerate(self.outputs) if c in SIGNAL_CLASSES]

    def qcd_outputs(self) -> list[int]:
        if not self.multiclass:
            return [0]
        return [k for k, c in enumerate(self.outputs) if c in QCD_CLASSES]

    def __eq__(self, other) -> bool:
        return isinstance(other, Task) and (self.groups, self.outputs) == (other.groups, other.outputs)

    def __repr__(self) -> str:
        return f"Task({self.describe()})"


def task_of(data) -> Task:
    """The task of a ``cfg.data`` section."""
    classes = tuple(getattr(data, "classes", ()) or ())
    return Task.of_classes(classes) if classes else Task.binary(data.signal, data.background)
