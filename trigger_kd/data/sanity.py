"""Checks that refuse jets which would give a silently wrong result.

- Physics on load: constituents are (E, px, py, pz) with E >= |p| (within rounding) for nearly all
  of them, and jet masses in a plausible range; a file that stores (px, py, pz, E) is refused with a
  message naming the component order it seems to have.
- Leaks: the same jet (identical constituents) in two splits inflates every test metric; such jets
  are refused, naming the files they came from.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..errors import TriggerKDError

COMPONENTS = ("E", "px", "py", "pz")
MAX_UNPHYSICAL_FRACTION = 0.01  # "nearly all": public files carry rounded values
REL_TOL = 1e-3  # E may fall below |p| by this fraction of |p| (float32 / stored-precision rounding)
MASS_RANGE_GEV = (1.0, 3000.0)  # median mass of jets with >= 2 constituents


class DataSanityError(TriggerKDError):
    """Jets that cannot be right: unphysical 4-vectors, implausible masses, test jets also in training."""


def _energy_like(c: np.ndarray, mask: np.ndarray, k: int) -> float:
    """Fraction of constituents whose component k is >= the norm of the other three (an energy)."""
    e = c[..., k][mask]
    others = [j for j in range(4) if j != k]
    p = np.linalg.norm(c[..., others][mask], axis=-1)
    return float(np.mean(e >= p - REL_TOL * p - 1e-6)) if e.size else 0.0


def check_physics(constituents: np.ndarray, where: str) -> None:
    """Refuse jets whose constituents are not (E, px, py, pz) 4-vectors in GeV."""
    c = np.asarray(constituents, dtype=np.float64)
    mask = np.any(c != 0.0, axis=-1)
    n = int(mask.sum())
    if n == 0:
        return
    bad = 1.0 - _energy_like(c, mask, 0)
    if bad > MAX_UNPHYSICAL_FRACTION:
        scores = [_energy_like(c, mask, k) for k in range(4)]
        best = int(np.argmax(scores))
        hint = ""
        if best != 0 and scores[best] > 1.0 - MAX_UNPHYSICAL_FRACTION:
            order = [COMPONENTS[1 + i] for i in range(3)]
            order.insert(best, "E")
            hint = (f" Component {best} behaves like the energy (>= |p| for {scores[best]:.1%}): the file seems to "
                    f"store ({', '.join(order)}); reorder each constituent to (E, px, py, pz) before loading it.")
        raise DataSanityError(
            f"{where}: {bad:.1%} of {n} constituents have E < |p| when read as (E, px, py, pz): these are not "
            f"physical 4-vectors.{hint or ' Check the component order and units (GeV) of the file.'}")
    e, px, py, pz = np.moveaxis(c.sum(axis=1), -1, 0)
    m2 = e * e - (px * px + py * py + pz * pz)
    multi = mask.sum(axis=1) >= 2
    if not multi.any():
        return
    mass = np.sqrt(np.maximum(m2[multi], 0.0))
    med = float(np.median(mass))
    lo, hi = MASS_RANGE_GEV
    if not lo <= med <= hi:
        q = np.percentile(mass, [10, 50, 90])
        unit = " (values look like MeV: convert to GeV)" if med > hi else ""
        raise DataSanityError(
            f"{where}: implausible jet mass spectrum: median {med:.3g} GeV (10/50/90 %: "
            f"{q[0]:.3g} / {q[1]:.3g} / {q[2]:.3g}) over {int(multi.sum())} jets, expected {lo:g}-{hi:g} GeV"
            f"{unit}; check the units and the component order (E, px, py, pz).")


def jet_hashes(constituents: np.ndarray) -> np.ndarray:
    """One 16-byte digest per jet of its constituent values (float32 bytes)."""
    c = np.ascontiguousarray(np.asarray(constituents, dtype=np.float32).reshape(len(constituents), -1))
    return np.array([hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in c], dtype="S16")


def check_distinct_paths(paths: list[Path]) -> None:
    """The same file listed twice puts the same jets in training and test."""
    seen: dict[Path, Path] = {}
    for p in map(Path, paths):
        key = p.expanduser().resolve()
        if key in seen:
            raise DataSanityError(
                f"data.paths lists the same file twice ({seen[key]} and {p}): its jets would be in both the "
                f"training and the test split. List each file once.")
        seen[key] = p


def check_empty_jets(constituents: np.ndarray, origins: np.ndarray | None, files: list[str]) -> None:
    """Refuse jets without a single non-zero constituent (before the duplicate check, which would call every
    empty jet a duplicate of the others)."""
    c = np.asarray(constituents)
    empty = ~np.any(c.reshape(len(c), -1) != 0, axis=1) if len(c) else np.zeros(0, dtype=bool)
    if not empty.any():
        return
    rows = np.flatnonzero(empty)
    where = files if origins is None else sorted({files[origins[i]] for i in rows})
    raise DataSanityError(
        f"{len(rows)} of {len(c)} jets are empty (every constituent is zero) in {', '.join(where)}: an empty jet "
        f"has nothing to classify; remove them from the file(s) (first rows: {rows[:5].tolist()})")


def check_no_leaks(splits: dict[str, np.ndarray], origins: dict[str, np.ndarray] | None, files: list[str]) -> None:
    """Refuse jets that appear in more than one split; ``origins`` gives each jet's index into ``files``."""
    hashes = {name: jet_hashes(c) for name, c in splits.items()}
    names = list(splits)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            common, ia, ib = np.intersect1d(hashes[a], hashes[b], return_indices=True)
            if len(common) == 0:
                continue
            n_in_b = int(np.isin(hashes[b], common).sum())  # every copy counts, not each distinct jet once
            if origins is not None:
                pairs = sorted({(files[origins[a][x]], files[origins[b][y]]) for x, y in zip(ia, ib)})
                where = "; ".join(f"{fa} and {fb}" if fa != fb else f"{fa} (twice within it)" for fa, fb in pairs[:5])
            else:
                where = ", ".join(files)
            raise DataSanityError(
                f"{n_in_b} of the {len(hashes[b])} jets of the {b} split are also in the {a} split (identical "
                f"constituents{f'; {len(common)} distinct jets' if len(common) != n_in_b else ''}), which "
                f"inflates every test metric; they come from: {where}. Remove overlapping files or duplicated "
                f"jets from data.paths.")
