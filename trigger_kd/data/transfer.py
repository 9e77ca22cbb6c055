"""Transfer sets: extra jets the student is distilled on with teacher targets only.

Two kinds, which add up: generated jets (``distill.transfer_jets_per_class`` per class, from
the ``transfer`` seed stream of the generator, so never the same Pythia seeds as the
train/val/test pool) and unlabelled jet files (``distill.transfer_paths``). Either way the
labels are dropped, and :func:`check_disjoint` proves by constituent hashes that no transfer
jet is also a train, validation or test jet.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from ..atomic import atomic_path
from ..errors import TriggerKDError
from .formats import LAYOUT
from .sanity import jet_hashes


class TransferSetError(TriggerKDError):
    """A transfer set that would leak evaluation jets or cannot be built."""


def check_disjoint(transfer, splits: dict[str, np.ndarray]) -> dict:
    """Raise TransferSetError if a transfer jet is also in one of ``splits``; else counts per split."""
    h = jet_hashes(transfer)
    dup_inside = len(h) - len(np.unique(h))
    report = {"transfer_jets": int(len(h)), "duplicates_within_transfer": int(dup_inside)}
    for name, c in splits.items():
        shared = int(np.isin(h, jet_hashes(c)).sum())
        if shared:
            raise TransferSetError(
                f"{shared} of {len(h)} transfer jets are also {name} jets (same constituents): distilling on "
                f"them would leak {name} jets into training; remove those files from distill.transfer_paths"
            )
        report[f"shared_with_{name}"] = 0
    return report


def write_transfer(path: Path, constituents: np.ndarray, attrs: dict) -> Path:
    """Transfer jets in the canonical constituent layout, without labels (there are none to use)."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        c = np.asarray(constituents, dtype=np.float32)
        f.create_dataset("constituents", data=c, **({"compression": "gzip", "compression_opts": 4} if len(c) else {}))
        f.attrs["layout"] = LAYOUT
        f.attrs["labels"] = "none: teacher targets only"
        for key, value in attrs.items():
            f.attrs[key] = value
    return Path(path)


def read_transfer(path: Path) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return np.asarray(f["constituents"][...], dtype=np.float32)
