"""Jet files in and out.

Canonical layout (what every stage reads): HDF5 with ``constituents`` (N, P, 4) float32
(E, px, py, pz in GeV, sorted by pT descending, zero-padded), ``is_signal`` (N,) int8 (``is_top`` in older files), the
binary label (1 = signal: top in the default top-vs-QCD task, the dataset keeps its old
name so old files read unchanged), optionally ``jet_class`` (N,) bytes, each jet's class
name (``trigger_kd/data/classes.py``; files without it are top/QCD files), and attribute
``layout = "E,px,py,pz GeV"``. A multi-class file (``data.classes``) also holds ``label`` (N,) int8, each jet's
class index, and attribute ``classes``, the class of each index; :func:`read_canonical` then gives the index
(``is_signal`` stays: 1 for top, W and Z jets).

Public sources read by :func:`load_source`: the top tagging reference dataset
(``toptagging``), the hls4ml LHC jets 150p files (``hls4ml``), JetClass ROOT files
(``jetclass``) and canonical files (``canonical``).
"""
from __future__ import annotations

import errno
import io
import os
import shutil
from pathlib import Path
from typing import Callable

import h5py
import numpy as np

from ..errors import TriggerKDError
from .classes import JET_CLASSES, Task

LAYOUT = "E,px,py,pz GeV"
SOURCES = ("toptagging", "hls4ml", "jetclass", "canonical")


class DataFormatError(TriggerKDError):
    """A jet file that is missing or not in the layout it should have."""


# ----------------------------------------------------------------------------- canonical
LABEL = "is_signal"  # the binary label's dataset (1 = a jet of the signal classes: top, W or Z)
LEGACY_LABEL = "is_top"  # its name in files written before 2026-12 (read, never written)
CLASS_LABEL = "label"  # multi-class files: the class index (attribute CLASSES names each index)
CLASSES_ATTR = "classes"


def _label_name(f: h5py.File) -> str | None:
    return LABEL if LABEL in f else (LEGACY_LABEL if LEGACY_LABEL in f else None)


def write_canonical(path, constituents, is_signal, attrs: dict | None = None, jet_class=None,
                    classes: tuple[str, ...] | None = None) -> Path:
    """Write jets in the canonical layout atomically (temp file, then rename).

    ``is_signal`` is the binary label (1 = signal); ``jet_class`` the per-jet class names. With ``classes`` (a
    multi-class task's outputs, in index order) the file also holds each jet's class index (``label``), from
    ``jet_class``, which must then be given and hold only those classes."""
    path = Path(path)
    c = np.asarray(constituents)
    y = np.asarray(is_signal)
    if c.ndim != 3 or c.shape[-1] != 4:
        raise DataFormatError(f"cannot write {path}: constituents must be (N, P, 4), got shape {c.shape}")
    if y.shape != (c.shape[0],):
        raise DataFormatError(f"cannot write {path}: is_signal must be ({c.shape[0]},), got shape {y.shape}")
    names = None
    if jet_class is not None:
        names = np.asarray(jet_class).astype(str)
        if names.shape != y.shape:
            raise DataFormatError(f"cannot write {path}: jet_class must be ({len(y)},), got shape {names.shape}")
        unknown = sorted(set(names.tolist()) - set(JET_CLASSES))
        if unknown:
            raise DataFormatError(f"cannot write {path}: unknown jet classes {unknown}; use {list(JET_CLASSES)}")
    index = None
    if classes is not None:
        from .classes import Task

        if names is None:
            raise DataFormatError(f"cannot write {path}: a multi-class file needs jet_class (the class of each jet)")
        keep, index = Task.of_classes(classes).labels(names)
        if not keep.all():
            raise DataFormatError(f"cannot write {path}: jets of class(es) {sorted(set(names[~keep].tolist()))} are "
                                  f"none of the task's classes {list(classes)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    opts = {"compression": "gzip", "compression_opts": 4, "shuffle": True} if len(y) else {}

    def fill(f: h5py.File) -> None:
        f.create_dataset("constituents", data=c.astype(np.float32, copy=False), **opts)
        f.create_dataset(LABEL, data=y.astype(np.int8, copy=False), **opts)
        if names is not None:
            f.create_dataset("jet_class", data=names.astype("S8"), **opts)
        if index is not None:
            f.create_dataset(CLASS_LABEL, data=index, **opts)
            f.attrs[CLASSES_ATTR] = ",".join(classes)
        f.attrs["layout"] = LAYOUT
        for key, value in (attrs or {}).items():
            f.attrs[key] = value

    try:
        if shutil.disk_usage(path.parent).free > 2 * (c.nbytes + y.nbytes) + (1 << 20):
            with h5py.File(tmp, "w") as f:
                fill(f)
        else:
            # Little room left: build the file in memory and write its bytes with Python, so a full disk is a
            # plain OSError (ENOSPC). HDF5 that hits ENOSPC itself leaves a half-closed file behind and the
            # interpreter crashes (segmentation fault) at exit.
            buf = io.BytesIO()
            with h5py.File(buf, "w") as f:
                fill(f)
            try:
                with open(tmp, "wb") as out:
                    out.write(buf.getbuffer())
            except OSError as exc:
                raise OSError(exc.errno, exc.strerror, str(path)) from None
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def require_file(path: Path, what: str) -> None:
    """A readable file at ``path``, or a DataFormatError saying what is there instead (``what``: where to look)."""
    path = Path(path)
    try:
        path.resolve(strict=True)
    except (RuntimeError, OSError) as exc:  # RuntimeError: Python's "Symlink loop" before 3.13
        if isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == errno.ELOOP:
            raise DataFormatError(f"{path}: a symlink loop (the link leads back to itself), not a file; {what}") from None
        raise DataFormatError(f"{path}: file not found; {what}") from None
    if path.is_dir():
        raise DataFormatError(f"{path}: is a directory, not a file; {what}")
    if not path.is_file():
        raise DataFormatError(f"{path}: not a regular file; {what}")


def _open_h5(path: Path, what: str) -> h5py.File:
    require_file(path, what)
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DataFormatError(f"{path}: not a readable HDF5 file ({exc}); {what}") from None


def _check_finite(c: np.ndarray, path: Path, source: str) -> None:
    bad = ~np.isfinite(c)
    if bad.any():
        jets = np.flatnonzero(bad.reshape(len(c), -1).any(axis=1))
        raise DataFormatError(
            f"{path}: {int(bad.sum())} NaN/inf values in the constituents of {len(jets)} jets "
            f"(first: jet {int(jets[0])}); the {source} file is damaged: re-download or regenerate it"
        )


def read_canonical(path) -> tuple[np.ndarray, np.ndarray]:
    """(constituents (N, P, 4) float32, label (N,) int8) from a canonical file: the class index of a multi-class
    file (``label``, checked against ``jet_class`` and the ``classes`` attribute), else ``is_signal`` (files that
    name it ``is_top``, as before 2026-12, load the same)."""
    path = Path(path)
    with _open_h5(path, "run the data stage first (trigger-kd run <config> --to data) or fix data.paths") as f:
        label = _label_name(f)
        for name in ("constituents", label or LABEL):
            if name not in f:
                raise DataFormatError(
                    f"{path}: no dataset '{name}' (found {sorted(f.keys())}); "
                    "this is not a canonical jet file: convert it with data.source set to its format"
                )
        c = np.asarray(f["constituents"][...], dtype=np.float32)
        y = np.asarray(f[label][...])
        index = np.asarray(f[CLASS_LABEL][...]) if CLASS_LABEL in f else None
    if c.ndim != 3 or c.shape[-1] != 4:
        raise DataFormatError(f"{path}: 'constituents' must be (N, P, 4) E,px,py,pz, got shape {c.shape}")
    if y.shape != (c.shape[0],):
        raise DataFormatError(f"{path}: '{label}' must be ({c.shape[0]},) to match the constituents, got {y.shape}")
    if len(y) and not np.isin(y, (0, 1)).all():
        raise DataFormatError(f"{path}: '{label}' must hold 0 (background) or 1 (signal), found {sorted(np.unique(y))[:5]}")
    _check_finite(c, path, "canonical")
    if index is not None:
        return c, _class_index(path, index, len(c))
    return c, y.astype(np.int8)


def read_classes(path) -> tuple[str, ...] | None:
    """A multi-class file's classes in index order (attribute ``classes``), None for a binary file."""
    path = Path(path)
    with _open_h5(path, "run the data stage first (trigger-kd run <config> --to data) or fix data.paths") as f:
        if CLASS_LABEL not in f:
            return None
        raw = f.attrs.get(CLASSES_ATTR)
    raw = raw.decode() if isinstance(raw, bytes) else raw
    if not isinstance(raw, str) or not raw:
        raise DataFormatError(f"{path}: has '{CLASS_LABEL}' but no '{CLASSES_ATTR}' attribute naming its classes; "
                              "rerun the data stage")
    return tuple(raw.split(","))


def _class_index(path: Path, index: np.ndarray, n: int) -> np.ndarray:
    """A multi-class file's ``label``, checked against its classes and its ``jet_class`` names (two sources of the
    same fact: they must agree on every jet)."""
    from .classes import Task

    classes = read_classes(path)
    if index.shape != (n,):
        raise DataFormatError(f"{path}: '{CLASS_LABEL}' must be ({n},) to match the constituents, got {index.shape}")
    if n and (index.min() < 0 or index.max() >= len(classes)):
        raise DataFormatError(f"{path}: '{CLASS_LABEL}' must hold class indices 0..{len(classes) - 1} "
                              f"({', '.join(classes)}), found {sorted(np.unique(index))[:6]}")
    _, expected = Task.of_classes(classes).labels(read_jet_classes(path))
    if len(expected) != n or (expected != index).any():
        bad = int((expected != index).sum()) if len(expected) == n else n
        raise DataFormatError(f"{path}: '{CLASS_LABEL}' and 'jet_class' disagree on {bad} of {n} jets (two labels of "
                              "the same jets): the file is damaged; rerun the data stage")
    return index.astype(np.int8)


def read_jet_classes(path) -> np.ndarray:
    """Per-jet class names (N,) str of a canonical file; files without ``jet_class`` are top vs QCD."""
    path = Path(path)
    with _open_h5(path, "run the data stage first (trigger-kd run <config> --to data) or fix data.paths") as f:
        label = _label_name(f) or LABEL
        if "jet_class" in f:
            names = np.asarray(f["jet_class"][...]).astype(str)
            if label not in f or names.shape != f[label].shape:
                raise DataFormatError(f"{path}: 'jet_class' has shape {names.shape}, '{label}' "
                                      f"{f[label].shape if label in f else 'is missing'}")
            return names
        if label not in f:
            raise DataFormatError(f"{path}: no dataset '{LABEL}' (found {sorted(f.keys())}); not a canonical jet file")
        return np.where(np.asarray(f[label][...]) == 1, "top", "qcd")


def _read_canonical_classes(path: Path) -> tuple[np.ndarray, np.ndarray]:
    c, _ = read_canonical(path)
    return c, read_jet_classes(path)


# ----------------------------------------------------------------------------- helpers
def sort_and_pad(c: np.ndarray, max_constituents: int) -> np.ndarray:
    """Sort each jet's constituents by pT (descending; padding last), pad/truncate to P."""
    c = np.asarray(c, dtype=np.float32)
    pt2 = c[..., 1].astype(np.float64) ** 2 + c[..., 2].astype(np.float64) ** 2
    order = np.argsort(-pt2, axis=1, kind="stable")
    c = np.take_along_axis(c, order[..., None], axis=1)[:, :max_constituents]
    if c.shape[1] < max_constituents:
        c = np.concatenate([c, np.zeros((len(c), max_constituents - c.shape[1], 4), np.float32)], axis=1)
    return np.ascontiguousarray(c)


def _names(raw) -> list[str]:
    return [n.decode() if isinstance(n, bytes) else str(n) for n in np.asarray(raw).ravel()]


# ----------------------------------------------------------------------------- sources
def _read_toptagging(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd

    require_file(path, "check data.paths (top tagging files: train.h5, val.h5, test.h5)")
    if not h5py.is_hdf5(path):
        raise DataFormatError(f"{path}: not an HDF5 file (no HDF5 signature); the top tagging reference files "
                              "(Zenodo 2603256) are pandas HDF5 tables: check data.paths and the download")
    try:
        df = pd.read_hdf(path, key="table")
    except KeyError:
        raise DataFormatError(
            f"{path}: no pandas key 'table'; this is not a top tagging reference file (Zenodo 2603256)"
        ) from None
    except (OSError, ValueError, TypeError, RuntimeError) as exc:  # tables' HDF5ExtError is a RuntimeError
        raise DataFormatError(f"{path}: cannot read it as a pandas HDF5 table ({exc})") from None
    missing = [c for c in ("E_0", "PX_0", "PY_0", "PZ_0", "is_signal_new") if c not in df.columns]
    if missing:
        raise DataFormatError(
            f"{path}: missing columns {missing}; expected the top tagging layout "
            "E_i, PX_i, PY_i, PZ_i (i = 0..199), truthE..., ttv, is_signal_new"
        )
    n = 0
    while all(f"{k}_{n}" in df.columns for k in ("E", "PX", "PY", "PZ")):
        n += 1
    cols = [f"{k}_{i}" for i in range(n) for k in ("E", "PX", "PY", "PZ")]
    c = df[cols].to_numpy(dtype=np.float32).reshape(len(df), n, 4)
    y = df["is_signal_new"].to_numpy()
    if not np.isin(y, (0, 1)).all():
        raise DataFormatError(f"{path}: 'is_signal_new' must be 0 or 1, found {sorted(np.unique(y))[:5]}")
    return c, np.where(y == 1, "top", "qcd")


_HLS4ML_LABELS = ("j_g", "j_q", "j_w", "j_z", "j_t")
_HLS4ML_CLASSES = ("gluon", "q", "w", "z", "top")  # the class name of each label above


def _read_hls4ml(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with _open_h5(path, "check data.paths (hls4ml LHC jets 150p files)") as f:
        missing = [k for k in ("jets", "jetConstituentList") if k not in f]
        if missing:
            raise DataFormatError(
                f"{path}: missing datasets {missing} (found {sorted(f.keys())}); "
                "expected the hls4ml LHC jets layout (jets, jetConstituentList, jetFeatureNames, particleFeatureNames)"
            )
        jets = np.asarray(f["jets"][...])
        parts = np.asarray(f["jetConstituentList"][...], dtype=np.float32)
        jet_names = _names(f["jetFeatureNames"][...]) if "jetFeatureNames" in f else None
        part_names = _names(f["particleFeatureNames"][...]) if "particleFeatureNames" in f else None
    if jets.ndim != 2 or parts.ndim != 3 or len(jets) != len(parts):
        raise DataFormatError(
            f"{path}: 'jets' must be (N, features) and 'jetConstituentList' (N, particles, features), "
            f"got {jets.shape} and {parts.shape}"
        )
    if jet_names is not None:
        missing = [n for n in _HLS4ML_LABELS if n not in jet_names]
        if missing:
            raise DataFormatError(f"{path}: jetFeatureNames lacks the labels {missing}")
        lab = [jet_names.index(n) for n in _HLS4ML_LABELS]
    else:
        if jets.shape[1] < 6:
            raise DataFormatError(f"{path}: 'jets' has {jets.shape[1]} columns, too few for labels in columns -6..-2")
        lab = [jets.shape[1] - 6 + i for i in range(5)]
    wanted = ("j1_e", "j1_px", "j1_py", "j1_pz")
    if part_names is not None:
        missing = [n for n in wanted if n not in part_names]
        if missing:
            raise DataFormatError(f"{path}: particleFeatureNames lacks {missing}")
        cols = [part_names.index(n) for n in wanted]
    else:
        if parts.shape[2] < 4:
            raise DataFormatError(f"{path}: 'jetConstituentList' has {parts.shape[2]} features, need px, py, pz, e")
        cols = [3, 0, 1, 2]
    onehot = jets[:, lab] == 1
    keep = onehot.sum(axis=1) == 1  # jets with exactly one label
    names = np.asarray(_HLS4ML_CLASSES)[np.argmax(onehot[keep], axis=1)]
    return parts[keep][:, :, cols], names


_JETCLASS_BRANCHES = ("part_px", "part_py", "part_pz", "part_energy", "label_Tbqq", "label_QCD")
_JETCLASS_LABELS = {"label_Tbqq": "top", "label_QCD": "qcd", "label_Wqq": "w", "label_Zqq": "z"}


def _read_jetclass(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import awkward as ak
    import uproot

    require_file(path, "check data.paths (JetClass ROOT files)")
    try:
        f = uproot.open(path)
    except Exception as exc:  # uproot raises many types for a non-ROOT file
        raise DataFormatError(f"{path}: not a readable ROOT file ({exc})") from None
    with f:
        if "tree" not in f:
            raise DataFormatError(f"{path}: no TTree 'tree' (found {list(f.keys())}); expected a JetClass file")
        tree = f["tree"]
        missing = [b for b in _JETCLASS_BRANCHES if b not in tree.keys()]
        if missing:
            raise DataFormatError(f"{path}: tree 'tree' lacks the branches {missing}; expected the JetClass layout")
        labels = [b for b in _JETCLASS_LABELS if b in tree.keys()]
        arr = tree.arrays(list(_JETCLASS_BRANCHES[:4]) + labels, library="ak")
    onehot = np.stack([ak.to_numpy(arr[b]).astype(bool) for b in labels], axis=1)
    keep = onehot.sum(axis=1) == 1
    names = np.asarray([_JETCLASS_LABELS[b] for b in labels])[np.argmax(onehot[keep], axis=1)]
    arr = arr[keep]
    n = int(ak.max(ak.num(arr["part_px"]), initial=0)) if len(arr) else 0
    comps = [
        ak.to_numpy(ak.fill_none(ak.pad_none(arr[b], n, clip=True), 0.0)).astype(np.float32).reshape(len(arr), n)
        for b in ("part_energy", "part_px", "part_py", "part_pz")
    ]
    return np.stack(comps, axis=-1), names


_READERS: dict[str, Callable[[Path], tuple[np.ndarray, np.ndarray]]] = {
    "toptagging": _read_toptagging,
    "hls4ml": _read_hls4ml,
    "jetclass": _read_jetclass,
    "canonical": _read_canonical_classes,
}


def load_source(source: str, paths: list[Path], max_constituents: int, signal=("top",),
                background=("qcd",), with_origin: bool = False, task: Task | None = None):
    """Read jet files of one public format into (constituents (N, P, 4) float32, label int8,
    class names (N,) str).

    Constituents come back as E, px, py, pz (GeV), sorted by pT descending and
    padded/truncated to ``max_constituents``. Only jets of the ``signal`` classes (label 1)
    and ``background`` classes (label 0) are kept (``qcd`` takes gluon and quark jets too); with a
    multi-class ``task`` (``data.classes``) the jets of its classes, labelled with their class index.
    Each file's 4-vectors are checked for physics sanity (``data.sanity.check_physics``). With
    ``with_origin`` a fourth array gives each jet's index into ``paths``.
    """
    from .sanity import check_physics

    if source not in _READERS:
        raise DataFormatError(f"unknown data source {source!r}: use one of {list(SOURCES)}")
    if not paths:
        raise DataFormatError(f"data source {source!r} needs at least one input file in data.paths")
    if max_constituents <= 0:
        raise DataFormatError(f"max_constituents must be positive, got {max_constituents}")
    task = task or Task.binary(signal, background)
    cs, ns, origin = [], [], []
    for i, p in enumerate(map(Path, paths)):
        c, names = _READERS[source](p)
        keep, _ = task.labels(names)
        c = c[keep]
        _check_finite(c, p, source)
        check_physics(c, f"{p} ({source})")
        cs.append(sort_and_pad(c, max_constituents))
        ns.append(names[keep])
        origin.append(np.full(len(c), i, np.int32))
    c = np.concatenate(cs)
    names = np.concatenate(ns)
    _, y = task.labels(names)
    files = ", ".join(str(p) for p in paths)
    for label, side in reversed(list(enumerate(task.groups))):
        if not (y == label).any():
            raise DataFormatError(
                f"no {' or '.join(side)} jets in {files} ({source}) for the task {task.describe()}; "
                f"add files that contain them ({'both sides' if not task.multiclass else 'every class'} are needed)"
            )
    return (c, y, names, np.concatenate(origin)) if with_origin else (c, y, names)


def load_unlabelled(source: str, paths: list[Path], max_constituents: int) -> np.ndarray:
    """Constituents (N, P, 4) float32 of every jet in jet files of one format, labels ignored
    (e.g. recorded collision data used as a transfer set); canonical files need no ``is_signal``."""
    if source not in _READERS:
        raise DataFormatError(f"unknown data source {source!r}: use one of {list(SOURCES)}")
    if max_constituents <= 0:
        raise DataFormatError(f"max_constituents must be positive, got {max_constituents}")
    cs = []
    for p in map(Path, paths):
        if source == "canonical":
            with _open_h5(p, "fix the file list") as f:
                if "constituents" not in f:
                    raise DataFormatError(f"{p}: no dataset 'constituents' (found {sorted(f.keys())}); "
                                          "not a canonical jet file: set the format of the files")
                c = np.asarray(f["constituents"][...], dtype=np.float32)
            if c.ndim != 3 or c.shape[-1] != 4:
                raise DataFormatError(f"{p}: 'constituents' must be (N, P, 4) E,px,py,pz, got shape {c.shape}")
        else:
            c = _READERS[source](p)[0]
        _check_finite(c, p, source)
        cs.append(sort_and_pad(c, max_constituents))
    if not cs or not sum(len(c) for c in cs):
        raise DataFormatError(f"no jets in {', '.join(map(str, paths)) or 'an empty file list'} ({source})")
    return np.concatenate(cs)


def read_task(split_path) -> Task:
    """The task a data split file was made for: its classes (multi-class), else the binary task named by the
    ``summary.json`` beside it (top vs qcd where there is none)."""
    import json

    classes = read_classes(split_path)
    if classes is not None:
        return Task.of_classes(classes)
    summary = Path(split_path).parent / "summary.json"
    try:
        s = json.loads(summary.read_text())
        return Task.binary(tuple(s["signal"]), tuple(s["background"]))
    except (OSError, ValueError, KeyError, TypeError):
        return Task.binary(("top",), ("qcd",))
