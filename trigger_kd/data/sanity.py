"""Checks that refuse jets which would give a silently wrong result.

- Physics on load (:func:`check_physics`: every jet file ``data.formats.load_source`` / ``load_unlabelled`` reads,
  and the transfer set): the constituents are (E, px, py, pz) 4-vectors in GeV, and the jets of each class (each
  jet class in the file; a file without labels: all its jets) look like jets a tagger can learn from. Each rule
  is a stated range, checked over the class's non-empty jets; a jet class outside it is refused with one line
  that says what was seen (``DataSanityError``), a borderline one is reported with a warning the summary carries.

  * E against |p|: E >= |p| (less 0.1 % for rounding) for at least 99 % of the constituents. A particle's energy
    is at least its momentum; public files round their values. A file storing (px, py, pz, E) fails, and is
    named as such.
  * constituents per jet: median >= 2 (``MIN_MEDIAN_MULTIPLICITY``); a warning above 5 % single-constituent jets
    (``WARN_SINGLE_FRACTION``). A tagger reads substructure: a jet of one particle has none (its mass is 0, nothing
    tells top from QCD); real jets have tens (top tagging ~50, hls4ml ~30).
  * jet pT: every non-empty jet above 0; median in ``PT_RANGE_GEV`` = 1 GeV to 50 TeV. A jet without transverse
    momentum has no direction; no collider makes jets above 50 TeV (the FCC-hh beams); above it the file is in MeV.
  * jet mass: median of the jets with >= 2 constituents in ``MASS_RANGE_GEV`` = 1 to 3000 GeV. QCD jets of 20 GeV
    already weigh a few GeV, W/Z/top jets 80-175 GeV; a median of 0 means collinear or one-particle jets, one
    above 3 TeV MeV units.
  * constituent energy: at most ``MAX_ENERGY_GEV`` = 1e5 GeV, above any collider's beam energy.
  * distinct jets: a class of >= 2 jets that all have one multiplicity, mass and pT is refused: copies of one jet,
    nothing to learn, and every split would hold the same jet.
  * empty jets: a class of empty jets only is refused, some empty jets are a warning (the data stage refuses
    every empty jet: :func:`check_empty_jets`).

  :func:`check_physics` returns what it saw (per class: jets, median and 10/90 % multiplicity, single-constituent
  fraction, mass and pT medians and 10/90 %, warnings); :func:`describe_physics` puts it on one line.
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
MASS_RANGE_GEV = (1.0, 3000.0)  # median mass of a class's jets with >= 2 constituents
PT_RANGE_GEV = (1.0, 5.0e4)  # median jet pT of a class
MIN_MEDIAN_MULTIPLICITY = 2  # median number of constituents of a class's jets
WARN_SINGLE_FRACTION = 0.05  # above this fraction of one-constituent jets in a class: a warning
MAX_ENERGY_GEV = 1.0e5  # of any constituent


class DataSanityError(TriggerKDError):
    """Jets that cannot be right: unphysical 4-vectors, implausible masses, test jets also in training."""


def _energy_like(c: np.ndarray, mask: np.ndarray, k: int) -> float:
    """Fraction of constituents whose component k is >= the norm of the other three (an energy)."""
    e = c[..., k][mask]
    others = [j for j in range(4) if j != k]
    p = np.linalg.norm(c[..., others][mask], axis=-1)
    return float(np.mean(e >= p - REL_TOL * p - 1e-6)) if e.size else 0.0


def _q(x: np.ndarray) -> list[float]:
    return [round(float(v), 4) for v in np.percentile(x, [10, 50, 90])] if len(x) else [None, None, None]


def _g(v) -> str:
    return "n/a" if v is None else f"{v:.3g}"


def _seen(s: dict) -> str:
    """One class's figures, as the messages quote them."""
    return (f"{s['jets']} jets, constituents median {_g(s['multiplicity_median'])} "
            f"({s['single_constituent_fraction']:.1%} single), mass median {_g(s['mass_median_gev'])} GeV, "
            f"pT median {_g(s['pt_median_gev'])} GeV")


def describe_physics(summary: dict) -> str:
    """What :func:`check_physics` saw, on one line."""
    parts = [f"{cls}: {_seen(s)}" for cls, s in summary.get("classes", {}).items()]
    return f"{summary.get('where', 'jets')}: " + ("; ".join(parts) or "no jets")


def check_physics(constituents: np.ndarray, where: str, names=None) -> dict:
    """Refuse jets whose constituents are not (E, px, py, pz) 4-vectors in GeV, or whose classes (``names``: each
    jet's class; None: one group) fall outside the ranges of the module docstring. Returns what it saw:
    {"where", "classes": {class: figures}, "warnings": [...]}."""
    c = np.asarray(constituents, dtype=np.float64)
    summary: dict = {"where": where, "classes": {}, "warnings": []}
    if c.ndim != 3 or c.shape[-1] != 4:
        raise DataSanityError(f"{where}: constituents must be (N, P, 4) E,px,py,pz, got shape {c.shape}")
    if not np.isfinite(c).all():
        raise DataSanityError(f"{where}: {int((~np.isfinite(c)).sum())} NaN/inf values in the constituents")
    mask = np.any(c != 0.0, axis=-1)
    n = int(mask.sum())
    if n:
        _check_energy_order(c, mask, n, where)
    mult = mask.sum(axis=1)
    e, px, py, pz = np.moveaxis(c.sum(axis=1), -1, 0)
    pt = np.hypot(px, py)
    mass = np.sqrt(np.maximum(e * e - (px * px + py * py + pz * pz), 0.0))
    groups = {"all": np.ones(len(c), bool)} if names is None else {
        str(k): np.asarray(names).astype(str) == k for k in sorted(set(np.asarray(names).astype(str).tolist()))}
    for cls, sel in groups.items():
        the = "the jets" if names is None else f"the {cls} jets"
        s = _class_figures(sel, mult, mass, pt)
        summary["classes"][cls] = s
        summary["warnings"] += _check_class(s, sel, mult, mass, pt, the, where)
    if n:
        emax = float(c[..., 0].max())
        if emax > MAX_ENERGY_GEV:
            k = int((c[..., 0] > MAX_ENERGY_GEV).sum())
            raise DataSanityError(
                f"{where}: {k} constituents have an energy above {MAX_ENERGY_GEV:g} GeV (highest {emax:.3g} GeV), "
                f"beyond any collider's beam energy; values in MeV? convert to GeV")
    return summary


def _check_energy_order(c: np.ndarray, mask: np.ndarray, n: int, where: str) -> None:
    """Refuse constituents that are not (E, px, py, pz): E < |p| for more than ``MAX_UNPHYSICAL_FRACTION`` of the
    ``n`` non-zero ones; names the component that behaves like the energy, if one does."""
    bad = 1.0 - _energy_like(c, mask, 0)
    if bad <= MAX_UNPHYSICAL_FRACTION:
        return
    scores = [_energy_like(c, mask, k) for k in range(4)]
    best = int(np.argmax(scores))
    hint = ""
    if best != 0 and scores[best] > 1.0 - MAX_UNPHYSICAL_FRACTION:
        order = [COMPONENTS[1 + i] for i in range(3)]
        order.insert(best, "E")
        hint = (f" Component {best} behaves like the energy (>= |p| for {scores[best]:.1%}): the file seems "
                f"to store ({', '.join(order)}); reorder each constituent to (E, px, py, pz) before loading "
                f"it.")
    raise DataSanityError(
        f"{where}: {bad:.1%} of {n} constituents have E < |p| when read as (E, px, py, pz): these are not "
        f"physical 4-vectors.{hint or ' Check the component order and units (GeV) of the file.'}")


def _class_figures(sel: np.ndarray, mult: np.ndarray, mass: np.ndarray, pt: np.ndarray) -> dict:
    """One class's figures (``sel``: its jets): jets, empty jets, multiplicity, mass and pT medians and 10/50/90 %."""
    full = sel & (mult > 0)
    m, multi = mult[full], full & (mult >= 2)
    return {"jets": int(full.sum()), "empty_jets": int((sel & (mult == 0)).sum()),
            "multiplicity_median": float(np.median(m)) if len(m) else None,
            "multiplicity_10_50_90": _q(m),
            "single_constituent_fraction": float(np.mean(m == 1)) if len(m) else 0.0,
            "mass_median_gev": float(np.median(mass[multi])) if multi.any() else None,
            "mass_10_50_90_gev": _q(mass[multi]),
            "pt_median_gev": float(np.median(pt[full])) if full.any() else None,
            "pt_10_50_90_gev": _q(pt[full])}


def _check_class(s: dict, sel, mult, mass, pt, the: str, where: str) -> list[str]:
    """Refuse one class (figures ``s``, jets ``sel``; ``the``: how the messages name it) outside the stated
    ranges; returns its warnings."""
    full = sel & (mult > 0)
    multi = full & (mult >= 2)
    if sel.any() and not full.any():
        raise DataSanityError(f"{where}: all {int(sel.sum())} of {the} are empty (every constituent is zero): "
                              f"nothing to classify; check the file")
    if not full.any():
        return []
    if s["multiplicity_median"] < MIN_MEDIAN_MULTIPLICITY:
        raise DataSanityError(
            f"{where}: {the} are degenerate: {s['single_constituent_fraction']:.1%} of {s['jets']} jets have a "
            f"single constituent (median {s['multiplicity_median']:g}, expected >= {MIN_MEDIAN_MULTIPLICITY}), "
            f"so their mass is 0 GeV and they have no substructure to tag; seen: {_seen(s)}. Check how the "
            f"file was made (constituents, not jets, per row?)")
    zero_pt = full & (pt <= 0.0)
    if zero_pt.any():
        rows = np.flatnonzero(zero_pt)
        raise DataSanityError(
            f"{where}: {len(rows)} of {the} have zero transverse momentum (first rows: {rows[:5].tolist()}): a "
            f"jet needs pT > 0 to have a direction; check the component order (E, px, py, pz)")
    _check_spectra(s, int(multi.sum()), the, where)
    if s["jets"] >= 2 and np.ptp(mult[full]) == 0 and np.ptp(mass[full]) == 0 and np.ptp(pt[full]) == 0:
        raise DataSanityError(
            f"{where}: all {s['jets']} of {the} have the same multiplicity, mass and pT "
            f"({_g(s['multiplicity_median'])} constituents, mass {_g(float(mass[full][0]))} GeV, pT "
            f"{_g(float(pt[full][0]))} GeV): copies of one jet, nothing to learn; check the file")
    warnings = []
    if s["single_constituent_fraction"] > WARN_SINGLE_FRACTION:
        warnings.append(f"{where}: {s['single_constituent_fraction']:.1%} of {the} have a single "
                        f"constituent (mass 0 GeV)")
    if s["empty_jets"]:
        warnings.append(f"{where}: {s['empty_jets']} of {the} are empty")
    return warnings


def _check_spectra(s: dict, n_multi: int, the: str, where: str) -> None:
    """Refuse a class whose median jet mass (over its ``n_multi`` jets with >= 2 constituents) or median pT is
    outside ``MASS_RANGE_GEV`` / ``PT_RANGE_GEV``."""
    lo, hi = MASS_RANGE_GEV
    med = s["mass_median_gev"]
    if med is not None and not lo <= med <= hi:
        q = s["mass_10_50_90_gev"]
        unit = " (values look like MeV: convert to GeV)" if med > hi else ""
        raise DataSanityError(
            f"{where}: implausible jet mass spectrum of {the}: median {med:.3g} GeV (10/50/90 %: "
            f"{q[0]:.3g} / {q[1]:.3g} / {q[2]:.3g}) over {n_multi} jets, expected {lo:g}-{hi:g} GeV"
            f"{unit}; check the units and the component order (E, px, py, pz).")
    lo, hi = PT_RANGE_GEV
    if not lo <= s["pt_median_gev"] <= hi:
        unit = " (values look like MeV: convert to GeV)" if s["pt_median_gev"] > hi else ""
        raise DataSanityError(
            f"{where}: implausible jet pT of {the}: median {s['pt_median_gev']:.3g} GeV, expected {lo:g} GeV to "
            f"{hi / 1000:g} TeV{unit}; seen: {_seen(s)}")


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
