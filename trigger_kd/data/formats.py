"""Jet files in and out.

Canonical layout (what every stage reads): HDF5 with ``constituents`` (N, P, 4) float32
(E, px, py, pz in GeV, sorted by pT descending, zero-padded), ``is_signal`` (N,) int8 (``is_top`` in older files), the
binary label (1 = signal: top in the default top-vs-QCD task, the dataset keeps its old
name so old files read unchanged), optionally ``jet_class`` (N,) bytes, each jet's class
name (``trigger_kd/classes.py``; files without it are top/QCD files), and attribute
``layout = "E,px,py,pz GeV"``. A multi-class file (``data.classes``) also holds ``label`` (N,) int8, each jet's
class index, and attribute ``classes``, the class of each index; :func:`read_canonical` then gives the index
(``is_signal`` stays: 1 for top, W and Z jets).

Public sources read by :func:`load_source`: the top tagging reference dataset
(``toptagging``), the hls4ml LHC jets 150p files (``hls4ml``), JetClass ROOT files
(``jetclass``) and canonical files (``canonical``).

Every reader validates what it reads, here, before anything uses it (a ``DataFormatError``: one line naming the
file, the dataset or column, and what was found):

- existence: the file, its datasets / columns / branches; a file of no jets is refused (each file named in
  ``data.paths`` answers for itself); a file none of whose jets belong to the task is reported with a warning;
- type: constituents and labels are numbers (not text, not complex), constituents finite and within float32;
- range: binary labels and one-hot labels hold 0 or 1; class names are known (``classes.JET_CLASSES``); the
  ``layout`` attribute, where present, is ``E,px,py,pz GeV``;
- contradictions: two sources of one fact must agree on every jet, else an error naming both: ``is_signal`` and
  ``is_top``; ``is_signal`` and ``jet_class`` (a class on both sides; the task of the ``summary.json`` beside the
  file; a multi-class file's signal classes top, W, Z; the task asked for, where ``is_signal`` says the
  opposite); ``label`` and ``jet_class``; in the hls4ml format the five one-hot labels (two, or none, on one
  jet); in JetClass the ``label_*`` branches (two, or none, on one jet), the ``part_*`` branches' lengths and
  ``jet_nparticles``; in top tagging ``is_signal_new`` and the truth top 4-momentum (``truthE`` ... zero for
  QCD jets, a top quark for top jets; columns that hold neither are reported and not used);
- physics: :func:`load_source` and :func:`load_unlabelled` run ``sanity.check_physics`` on each file's jets, per
  class, and say what they saw (``report``).

Warnings are printed and collected in the ``report`` a caller passes to :func:`load_source`.
"""
from __future__ import annotations

import contextlib
import errno
import io
import os
import shutil
from pathlib import Path
from typing import Callable, Iterator

import h5py
import numpy as np

from ..console import info, warn
from ..errors import TriggerKDError, one_line
from ..classes import JET_CLASSES, SIGNAL_CLASSES, Task

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
        unknown = np.setdiff1d(np.unique(names), JET_CLASSES).tolist()
        if unknown:
            raise DataFormatError(f"cannot write {path}: unknown jet classes {unknown}; use {list(JET_CLASSES)}")
    index = None
    if classes is not None:
        from ..classes import Task

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


@contextlib.contextmanager
def _open_h5(path: Path, what: str) -> Iterator[h5py.File]:
    """The HDF5 file at ``path``, open for reading; a file that cannot be opened, or whose data cannot be read
    in the ``with`` block (a damaged chunk, a failed decompression: found only when read), is a DataFormatError."""
    require_file(path, what)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataFormatError(f"{path}: not a readable HDF5 file ({one_line(exc)}); {what}") from None
    with f:
        try:
            yield f
        except (OSError, KeyError, RuntimeError) as exc:  # h5py: KeyError / RuntimeError "Unable to ..." for a
            if not isinstance(exc, OSError) and "Unable to" not in str(exc):  # damaged header or symbol table
                raise
            raise DataFormatError(f"{path}: its data cannot be read ({one_line(exc)}): the file is damaged; "
                                  "regenerate or re-download it") from None


def _check_finite(c: np.ndarray, path: Path, source: str) -> None:
    bad = ~np.isfinite(c)
    if bad.any():
        jets = np.flatnonzero(bad.reshape(len(c), -1).any(axis=1))
        raise DataFormatError(
            f"{path}: {int(bad.sum())} NaN/inf values in the constituents of {len(jets)} jets "
            f"(first: jet {int(jets[0])}); the {source} file is damaged: re-download or regenerate it"
        )


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _show(values, k: int = 5) -> str:
    """A few distinct values read from a file, on one line."""
    u = np.unique(np.asarray(values).ravel())
    out = [v.decode(errors="replace") if isinstance(v, bytes) else v.item() if hasattr(v, "item") else v
           for v in u[:k]]
    return (repr(out) + (f" and {len(u) - k} more" if len(u) > k else "")).replace("\n", " ")


def _numbers(raw, path: Path, what: str) -> np.ndarray:
    """``raw`` as a numeric array, or a DataFormatError naming ``what`` and the type found."""
    a = np.asarray(raw)
    if a.dtype.kind not in "biuf":
        raise DataFormatError(f"{path}: {what} must hold numbers, found {a.dtype} values"
                              f"{' ' + _show(a, 3) if a.size and a.dtype.kind in 'SUO' else ''}; the file is damaged "
                              "or not in this format")
    return a


def _constituents(raw, path: Path, source: str, what: str = "'constituents'") -> np.ndarray:
    """Constituent values as float32: numbers, finite, within float32's range."""
    a = _numbers(raw, path, what)
    if a.dtype.kind == "f":
        _check_finite(a, path, source)
    if a.dtype.itemsize > 4 or a.dtype.kind != "f":  # float64, int64: values float32 cannot hold
        big = np.abs(a) > _FLOAT32_MAX
        if big.any():
            raise DataFormatError(f"{path}: {int(big.sum())} values of {what} are beyond float32's range "
                                  f"(largest {float(np.abs(a).max()):.3g}); the file is damaged")
    return np.asarray(a, dtype=np.float32)


def _binary(raw, path: Path, what: str, meaning: str = "0 (background) or 1 (signal)") -> np.ndarray:
    """A 0/1 label array (int8), or a DataFormatError naming ``what`` and the values found."""
    y = _numbers(raw, path, what)
    if y.size and not np.isin(y, (0, 1)).all():
        bad = y[~np.isin(y, (0, 1))]
        raise DataFormatError(f"{path}: {what} must hold {meaning}, found {_show(bad)} on {len(bad)} of {y.size} "
                              "values")
    return y.astype(np.int8)


class _Read:
    """What a reader is told (the task, when known) and what it reports (warnings)."""

    def __init__(self, task: Task | None = None, notes: list[str] | None = None):
        self.task, self.notes = task, notes if notes is not None else []

    def note(self, msg: str) -> None:
        warn(msg)
        self.notes.append(msg)


def _file_task(path: Path) -> Task | None:
    """The binary task named by the data stage's ``summary.json`` beside a split file (None where there is none)."""
    import json

    try:
        s = json.loads((Path(path).parent / "summary.json").read_text())
        return Task.binary(tuple(s["signal"]), tuple(s["background"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _signal_agrees(path: Path, label: str, y: np.ndarray, names: np.ndarray, multiclass: bool) -> None:
    """``is_signal`` and ``jet_class`` state one fact (is this jet signal?): they must agree on every jet."""
    both = np.intersect1d(np.unique(names[y == 1]), np.unique(names[y == 0])).tolist()
    if both:
        cls = both[0]
        n1, n0 = int(((names == cls) & (y == 1)).sum()), int(((names == cls) & (y == 0)).sum())
        raise DataFormatError(f"{path}: '{label}' and 'jet_class' contradict each other: the {cls} jets are signal "
                              f"({label} 1) on {n1} jets and background (0) on {n0} (classes on both sides: "
                              f"{both}); a class is on one side only: fix the file")
    if multiclass:
        expected, why = np.isin(names, SIGNAL_CLASSES), f"a multi-class file marks {'/'.join(SIGNAL_CLASSES)} jets"
    else:
        task = _file_task(path)
        if task is None:
            return
        keep, lab = task.labels(names)
        expected = np.zeros(len(names), bool)
        expected[keep] = lab == 1
        why = f"summary.json beside it names the task {task.describe()}"
    bad = expected != (y == 1)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataFormatError(f"{path}: '{label}' and 'jet_class' disagree on {int(bad.sum())} of {len(y)} jets "
                              f"({why} signal; first: jet {i}, a {names[i]} jet with {label} {int(y[i])}): the "
                              "file is damaged; rerun the data stage")


def _signal_fits_task(path: Path, y: np.ndarray, names: np.ndarray, ctx: _Read) -> None:
    """A canonical file's ``is_signal`` against the binary task it is read for (its labels follow ``jet_class``):
    an ``is_signal`` that says the opposite of the task on every jet is refused; one written for another task is
    reported."""
    task = ctx.task
    if task is None or task.multiclass or not len(y):
        return
    keep, lab = task.labels(names)
    f = y[keep]
    if not len(f) or (f == lab).all():
        return
    sig_as_bkg = (lab == 1) & (f == 0)
    bkg_as_sig = (lab == 0) & (f == 1)
    a = sorted(set(names[keep][sig_as_bkg].tolist()))
    b = sorted(set(names[keep][bkg_as_sig].tolist()))
    if a and b and (f != lab).all():
        raise DataFormatError(
            f"{path}: 'is_signal' and 'jet_class' contradict each other for the task {task.describe()}: is_signal "
            f"marks the {'/'.join(a)} jets as background and the {'/'.join(b)} jets as signal, jet_class the "
            f"opposite, on all {len(f)} jets; fix is_signal or jet_class (if the file was made for the reverse "
            f"task, rewrite is_signal)")
    ctx.note(f"{path}: 'is_signal' differs from the task {task.describe()} on {int((f != lab).sum())} of {len(f)} "
             f"jets (it marks {'/'.join(a + b)} the other way: written for another task?); the labels follow "
             f"'jet_class'")


def read_canonical(path) -> tuple[np.ndarray, np.ndarray]:
    """(constituents (N, P, 4) float32, label (N,) int8) from a canonical file: the class index of a multi-class
    file (``label``, checked against ``jet_class`` and the ``classes`` attribute), else ``is_signal`` (files that
    name it ``is_top``, as before 2026-12, load the same). Validated (module docstring)."""
    c, y, _, index = _read_canonical_checked(Path(path))
    if index is not None:
        return c, _class_index(Path(path), index, len(c))
    return c, y


def _read_canonical_checked(path: Path):
    """(constituents, is_signal int8, jet_class names or None, class index or None), every dataset checked against
    its type, its range and the others that state the same fact."""
    with _open_h5(path, "run the data stage first (trigger-kd run <config> --to data) or fix data.paths") as f:
        label = _label_name(f)
        for name in ("constituents", label or LABEL):
            _require_dataset(f, path, name)
        c = _canonical_constituents(f, path)
        y = _binary(f[label][...], path, f"'{label}'")
        if label == LABEL and LEGACY_LABEL in f:
            old = _binary(f[LEGACY_LABEL][...], path, f"'{LEGACY_LABEL}'")
            if old.shape != y.shape or (old != y).any():
                bad = int((old != y).sum()) if old.shape == y.shape else len(y)
                raise DataFormatError(f"{path}: '{LABEL}' and '{LEGACY_LABEL}' (its old name) both hold the label and "
                                      f"disagree on {bad} of {len(y)} jets: the file is damaged; keep one of them")
        names = np.asarray(f["jet_class"][...]) if "jet_class" in f else None
        index = np.asarray(f[CLASS_LABEL][...]) if CLASS_LABEL in f else None
    if y.shape != (c.shape[0],):
        raise DataFormatError(f"{path}: '{label}' must be ({c.shape[0]},) to match the constituents, got {y.shape}")
    if names is not None:
        names = _class_names(names, path, len(y), label)
        _signal_agrees(path, label, y, names, multiclass=index is not None)
    if index is not None:
        index = _numbers(index, path, f"'{CLASS_LABEL}'")
    return c, y, names, index


def _require_dataset(f: h5py.File, path: Path, name: str) -> None:
    if name not in f:
        raise DataFormatError(f"{path}: no dataset '{name}' (found {sorted(f.keys())}); this is not a canonical jet "
                              "file: convert it with data.source set to its format")


def _canonical_constituents(f: h5py.File, path: Path) -> np.ndarray:
    """A canonical file's constituents (N, P, 4) float32, labelled or not: the ``layout`` attribute, where present,
    must be the canonical one; the values numbers, finite, within float32 (the one reader of this dataset)."""
    _require_dataset(f, path, "constituents")
    layout = f.attrs.get("layout")
    layout = layout.decode(errors="replace") if isinstance(layout, bytes) else layout
    if layout is not None and str(layout) != LAYOUT:
        raise DataFormatError(f"{path}: its 'layout' attribute says {str(layout)[:60]!r}, the canonical layout "
                              f"is {LAYOUT!r}: convert the file (component order, units) before reading it")
    c = _constituents(f["constituents"][...], path, "canonical")
    if c.ndim != 3 or c.shape[-1] != 4:
        raise DataFormatError(f"{path}: 'constituents' must be (N, P, 4) E,px,py,pz, got shape {c.shape}")
    return c


def _class_names(raw, path: Path, n: int, label: str) -> np.ndarray:
    """A canonical file's ``jet_class`` (N,) str: known class names, one per jet."""
    a = np.asarray(raw)
    if a.dtype.kind not in "SUO":
        raise DataFormatError(f"{path}: 'jet_class' must hold class names, found {a.dtype} values")
    try:
        names = a.astype(str) if a.dtype.kind != "S" else np.char.decode(a, "utf-8")
    except (UnicodeDecodeError, ValueError) as exc:
        raise DataFormatError(f"{path}: 'jet_class' holds names that are not text ({exc})") from None
    if names.shape != (n,):
        raise DataFormatError(f"{path}: 'jet_class' has shape {names.shape}, '{label}' ({n},): one class per jet")
    unknown = np.setdiff1d(np.unique(names), JET_CLASSES).tolist()
    if unknown:
        raise DataFormatError(f"{path}: 'jet_class' holds unknown classes {_show(np.array(unknown))} "
                              f"(on {int((~np.isin(names, JET_CLASSES)).sum())} of {n} jets); known: "
                              f"{list(JET_CLASSES)}")
    return names


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
    from ..classes import Task

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
            if label not in f:
                raise DataFormatError(f"{path}: 'jet_class' has shape {f['jet_class'].shape}, '{label}' is missing")
            return _class_names(f["jet_class"][...], path, f[label].shape[0] if f[label].ndim else -1, label)
        if label not in f:
            raise DataFormatError(f"{path}: no dataset '{LABEL}' (found {sorted(f.keys())}); not a canonical jet file")
        return np.where(_binary(f[label][...], path, f"'{label}'") == 1, "top", "qcd")


def _read_canonical_classes(path: Path, ctx: _Read | None = None) -> tuple[np.ndarray, np.ndarray]:
    c, y, names, index = _read_canonical_checked(path)
    if index is not None:
        _class_index(path, index, len(c))
    if names is None:
        return c, np.where(y == 1, "top", "qcd")
    _signal_fits_task(path, y, names, ctx or _Read())
    return c, names


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
_TRUTH = ("truthE", "truthPX", "truthPY", "truthPZ")
TOP_MASS_RANGE_GEV = (100.0, 250.0)  # a truth top 4-momentum (Pythia: 172.5 GeV, width 1.4 GeV) lies well inside


def _read_toptagging(path: Path, ctx: _Read | None = None) -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd

    ctx = ctx or _Read()
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
    except (OSError, ValueError, TypeError, RuntimeError, LookupError) as exc:  # tables: HDF5ExtError is a
        # RuntimeError, NoSuchNodeError (a damaged table's missing node) a LookupError
        raise DataFormatError(f"{path}: cannot read it as a pandas HDF5 table ({one_line(exc)}); the file is "
                              "damaged or not a top tagging file: re-download it") from None
    missing = [c for c in ("E_0", "PX_0", "PY_0", "PZ_0", "is_signal_new") if c not in df.columns]
    if missing:
        raise DataFormatError(
            f"{path}: missing columns {missing}; expected the top tagging layout "
            "E_i, PX_i, PY_i, PZ_i (i = 0..199), truthE..., ttv, is_signal_new"
        )
    n = _constituent_slots(df.columns, path)
    cols = [f"{k}_{i}" for i in range(n) for k in ("E", "PX", "PY", "PZ")]
    text = [c for c in cols + ["is_signal_new"] if df[c].dtype.kind not in "biuf"]
    if text:
        raise DataFormatError(f"{path}: columns {text[:4]} must hold numbers, found {df[text[0]].dtype} values; "
                              "the file is damaged or not a top tagging file")
    c = _constituents(df[cols].to_numpy(), path, "toptagging", "the constituent columns").reshape(len(df), n, 4)
    y = _binary(df["is_signal_new"].to_numpy(), path, "'is_signal_new'", "0 (QCD) or 1 (top)")
    if all(t in df.columns for t in _TRUTH):
        _truth_agrees(path, df[list(_TRUTH)], y, ctx)
    return c, np.where(y == 1, "top", "qcd")


def _constituent_slots(columns, path: Path) -> int:
    """The number of constituent slots of a top tagging table: E_i, PX_i, PY_i and PZ_i for every i from 0 up to
    the last slot any of them names (a gap would drop every constituent after it without a word)."""
    import re

    comps = ("E", "PX", "PY", "PZ")
    found: dict[str, set[int]] = {k: set() for k in comps}
    for col in map(str, columns):
        m = re.fullmatch(r"(E|PX|PY|PZ)_(\d+)", col)
        if m:
            found[m[1]].add(int(m[2]))
    n = max(max(s, default=-1) for s in found.values()) + 1
    for i in range(n):
        lacking = [f"{k}_{i}" for k in comps if i not in found[k]]
        if lacking:
            have = [f"{k}_{i}" for k in comps if i in found[k]]
            raise DataFormatError(f"{path}: the constituent columns have a gap: slot {i} lacks {lacking}"
                                  f"{' (it has ' + ', '.join(have) + ')' if have else ''} while columns up to slot "
                                  f"{n - 1} exist; the file is truncated or damaged: re-download it")
    return n


def _truth_agrees(path: Path, truth, y: np.ndarray, ctx: _Read) -> None:
    """``is_signal_new`` and the truth top 4-momentum state one fact (is there a top?): zero for QCD jets, a top
    quark (mass in ``TOP_MASS_RANGE_GEV``) for top jets. Columns holding neither are reported and not used."""
    if any(truth[t].dtype.kind not in "biuf" for t in _TRUTH):
        ctx.note(f"{path}: the truth columns {list(_TRUTH)} do not hold numbers; not used to check is_signal_new")
        return
    t = truth.to_numpy(dtype=np.float64)
    if not len(t):
        return
    zero = ~np.any(t != 0.0, axis=1)
    with np.errstate(over="ignore", invalid="ignore"):  # a damaged value beyond float64: not finite, not a top
        m2 = t[:, 0] ** 2 - (t[:, 1:] ** 2).sum(axis=1)
    mass = np.sqrt(np.maximum(m2, 0.0))
    lo, hi = TOP_MASS_RANGE_GEV
    top = np.isfinite(m2) & (t[:, 0] > 0) & (mass >= lo) & (mass <= hi)
    if not (zero | top).all():
        i = int(np.argmax(~(zero | top)))
        ctx.note(f"{path}: the truth columns {list(_TRUTH)} hold neither zero nor a top quark's 4-momentum on "
                 f"{int((~(zero | top)).sum())} of {len(t)} jets (first: jet {i}, mass {mass[i]:.3g} GeV); not "
                 "used to check is_signal_new")
        return
    bad = (y == 1) != top
    if bad.any():
        i = int(np.argmax(bad))
        raise DataFormatError(
            f"{path}: 'is_signal_new' and the truth top 4-momentum ({', '.join(_TRUTH)}) disagree on "
            f"{int(bad.sum())} of {len(y)} jets (first: jet {i}, is_signal_new {int(y[i])} with "
            f"{'a truth top' if top[i] else 'no truth top'}): the file is damaged; re-download it")


def _names_describe(names: list[str], path: Path, what: str, data: str, n_columns: int) -> None:
    """A list of feature names and the columns it names state one fact (which column holds what): one distinct
    name per column, else a DataFormatError naming both datasets."""
    if len(names) != n_columns:
        raise DataFormatError(f"{path}: '{what}' names {len(names)} features, {data} has {n_columns} per "
                              f"{'jet' if what.startswith('jet') else 'particle'}: the names do not describe the "
                              "columns (which column holds which feature is unknown); the file is damaged")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DataFormatError(f"{path}: '{what}' names {twice[:4]} more than once ({data} has one column each): "
                              "which column holds it is ambiguous; the file is damaged")


_HLS4ML_LABELS = ("j_g", "j_q", "j_w", "j_z", "j_t")
_HLS4ML_CLASSES = ("gluon", "q", "w", "z", "top")  # the class name of each label above


def _read_hls4ml(path: Path, ctx: _Read | None = None) -> tuple[np.ndarray, np.ndarray]:
    ctx = ctx or _Read()
    with _open_h5(path, "check data.paths (hls4ml LHC jets 150p files)") as f:
        missing = [k for k in ("jets", "jetConstituentList") if k not in f]
        if missing:
            raise DataFormatError(
                f"{path}: missing datasets {missing} (found {sorted(f.keys())}); "
                "expected the hls4ml LHC jets layout (jets, jetConstituentList, jetFeatureNames, particleFeatureNames)"
            )
        jets = _numbers(f["jets"][...], path, "'jets'")
        parts = _numbers(f["jetConstituentList"][...], path, "'jetConstituentList'")
        jet_names = _names(f["jetFeatureNames"][...]) if "jetFeatureNames" in f else None
        part_names = _names(f["particleFeatureNames"][...]) if "particleFeatureNames" in f else None
    if jets.ndim != 2 or parts.ndim != 3 or len(jets) != len(parts):
        raise DataFormatError(
            f"{path}: 'jets' must be (N, features) and 'jetConstituentList' (N, particles, features), "
            f"got {jets.shape} and {parts.shape}"
        )
    undef = None
    if jet_names is not None:
        _names_describe(jet_names, path, "jetFeatureNames", "'jets'", jets.shape[1])
        missing = [n for n in _HLS4ML_LABELS if n not in jet_names]
        if missing:
            raise DataFormatError(f"{path}: jetFeatureNames lacks the labels {missing}")
        lab = [jet_names.index(n) for n in _HLS4ML_LABELS]
        undef = jet_names.index("j_undef") if "j_undef" in jet_names else None
    else:
        if jets.shape[1] < 6:
            raise DataFormatError(f"{path}: 'jets' has {jets.shape[1]} columns, too few for labels in columns -6..-2")
        lab = [jets.shape[1] - 6 + i for i in range(5)]
        undef = jets.shape[1] - 1
    wanted = ("j1_e", "j1_px", "j1_py", "j1_pz")
    if part_names is not None:
        _names_describe(part_names, path, "particleFeatureNames", "'jetConstituentList'", parts.shape[2])
        missing = [n for n in wanted if n not in part_names]
        if missing:
            raise DataFormatError(f"{path}: particleFeatureNames lacks {missing}")
        cols = [part_names.index(n) for n in wanted]
    else:
        if parts.shape[2] < 4:
            raise DataFormatError(f"{path}: 'jetConstituentList' has {parts.shape[2]} features, need px, py, pz, e")
        cols = [3, 0, 1, 2]
    onehot = _binary(jets[:, lab], path, f"the labels {list(_HLS4ML_LABELS)}", "0 or 1 (one-hot)") == 1
    count = onehot.sum(axis=1)
    many = count > 1
    if many.any():
        i = int(np.argmax(many))
        set_ = [n for n, on in zip(_HLS4ML_LABELS, onehot[i]) if on]
        raise DataFormatError(f"{path}: {int(many.sum())} of {len(jets)} jets carry two or more of the one-hot labels "
                              f"{list(_HLS4ML_LABELS)} (first: jet {i}, {' and '.join(set_)}): two labels contradict "
                              "each other; the file is damaged")
    none = count == 0
    if none.any():
        flagged = (jets[:, undef] == 1) if undef is not None else np.zeros(len(jets), bool)
        unlabelled = none & ~flagged
        if unlabelled.any():
            i = int(np.argmax(unlabelled))
            raise DataFormatError(f"{path}: {int(unlabelled.sum())} of {len(jets)} jets carry none of the one-hot "
                                  f"labels {list(_HLS4ML_LABELS)} (first: jet {i}) and are not marked j_undef: their "
                                  "class is missing; the file is damaged")
        ctx.note(f"{path}: {int(none.sum())} of {len(jets)} jets are marked j_undef (no class): left out")
    keep = count == 1
    names = np.asarray(_HLS4ML_CLASSES)[np.argmax(onehot[keep], axis=1)]
    # only the four features read are checked: the others (eta, phi, ... of padding) are not this reader's to judge
    return _constituents(parts[keep][:, :, cols], path, "hls4ml", "the E, px, py, pz of 'jetConstituentList'"), names


_JETCLASS_BRANCHES = ("part_px", "part_py", "part_pz", "part_energy", "label_Tbqq", "label_QCD")
_JETCLASS_LABELS = {"label_Tbqq": "top", "label_QCD": "qcd", "label_Wqq": "w", "label_Zqq": "z"}
_JETCLASS_PARTS = ("part_energy", "part_px", "part_py", "part_pz")


def _jetclass_arrays(path: Path):
    """(the JetClass branches read: awkward array, the label_* branch names, ["jet_nparticles"] or []); a file
    that is not ROOT, is cut short or damaged (found only when its structure or baskets are read), or lacks the
    tree or its branches is a DataFormatError on one line."""
    import uproot

    require_file(path, "check data.paths (JetClass ROOT files)")
    try:
        f = uproot.open(path)
    except Exception as exc:  # uproot raises many types for a non-ROOT file
        raise DataFormatError(f"{path}: not a readable ROOT file ({one_line(exc)})") from None
    try:
        with f:
            if "tree" not in f:
                raise DataFormatError(f"{path}: no TTree 'tree' (found {list(f.keys())}); expected a JetClass file")
            tree = f["tree"]
            keys = list(tree.keys())
            missing = [b for b in _JETCLASS_BRANCHES if b not in keys]
            if missing:
                raise DataFormatError(f"{path}: tree 'tree' lacks the branches {missing}; expected the JetClass "
                                      "layout")
            labels = [b for b in keys if b.startswith("label_")]  # every class of the file, ours or not
            extra = ["jet_nparticles"] if "jet_nparticles" in keys else []
            try:
                return tree.arrays(list(_JETCLASS_PARTS) + labels + extra, library="ak"), labels, extra
            except Exception as exc:  # a damaged basket, a branch of another type
                raise DataFormatError(f"{path}: cannot read the branches of tree 'tree' ({one_line(exc)})") from None
    except DataFormatError:
        raise
    except Exception as exc:  # a file cut short: uproot finds it when it reads the directory or the tree
        raise DataFormatError(f"{path}: a damaged or truncated ROOT file ({one_line(exc)}); re-download it") from None


def _read_jetclass(path: Path, ctx: _Read | None = None) -> tuple[np.ndarray, np.ndarray]:
    import awkward as ak

    ctx = ctx or _Read()
    arr, labels, extra = _jetclass_arrays(path)
    try:
        onehot = np.stack([_binary(ak.to_numpy(arr[b]), path, f"branch {b}", "0 or 1 (one-hot)") == 1
                           for b in labels], axis=1)
    except (ValueError, TypeError) as exc:
        raise DataFormatError(f"{path}: the label_* branches must hold one 0/1 value per jet ({exc})") from None
    count = onehot.sum(axis=1)
    if (count != 1).any():
        i = int(np.argmax(count != 1))
        set_ = [b for b, on in zip(labels, onehot[i]) if on]
        what = f"two or more ({' and '.join(set_)})" if count[i] > 1 else "none"
        raise DataFormatError(f"{path}: {int((count != 1).sum())} of {len(count)} jets carry not exactly one of the "
                              f"label branches {labels} (first: jet {i}, {what}): labels that contradict each other "
                              "or are missing; the file is damaged")
    for b in _JETCLASS_PARTS:
        if arr[b].ndim != 2:
            raise DataFormatError(f"{path}: branch {b} must hold a list per jet, one number per particle; found "
                                  f"{arr[b].type.content} per jet: not the JetClass layout, or the file is damaged")
    counts = [ak.to_numpy(ak.num(arr[b])) for b in _JETCLASS_PARTS]
    for b, n in zip(_JETCLASS_PARTS[1:], counts[1:]):
        if (n != counts[0]).any():
            i = int(np.argmax(n != counts[0]))
            raise DataFormatError(f"{path}: the branches part_energy and {b} hold {int(counts[0][i])} and {int(n[i])} "
                                  f"particles for jet {i} ({int((n != counts[0]).sum())} jets differ): one jet's "
                                  "particles must be listed once in every part_* branch; the file is damaged")
    if extra:
        stated = _numbers(ak.to_numpy(arr["jet_nparticles"]), path, "branch jet_nparticles")
        bad = stated != counts[0]
        if bad.any():
            i = int(np.argmax(bad))
            raise DataFormatError(f"{path}: jet_nparticles says {stated[i]:g} particles for jet {i}, the part_* "
                                  f"branches hold {int(counts[0][i])} ({int(bad.sum())} jets differ): two counts of "
                                  "the same particles disagree; the file is damaged")
    # jets of classes trigger-kd has no name for (label_Hbb -> "Hbb") keep the branch's name: no task selects them
    names = np.asarray([_JETCLASS_LABELS.get(b, b.removeprefix("label_")) for b in labels])[np.argmax(onehot, axis=1)]
    n = int(ak.max(ak.num(arr["part_px"]), initial=0)) if len(arr) else 0
    comps = []
    for b in _JETCLASS_PARTS:
        try:
            flat = ak.to_numpy(ak.fill_none(ak.pad_none(arr[b], n, clip=True), 0.0)).reshape(len(arr), n)
        except (ValueError, TypeError) as exc:
            raise DataFormatError(f"{path}: branch {b} must hold numbers per particle ({exc})") from None
        comps.append(_constituents(flat, path, "jetclass", f"branch {b}"))
    return np.stack(comps, axis=-1), names


_READERS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "toptagging": _read_toptagging,
    "hls4ml": _read_hls4ml,
    "jetclass": _read_jetclass,
    "canonical": _read_canonical_classes,
}


def load_source(source: str, paths: list[Path], max_constituents: int, signal=("top",),
                background=("qcd",), with_origin: bool = False, task: Task | None = None,
                report: dict | None = None):
    """Read jet files of one public format into (constituents (N, P, 4) float32, label int8,
    class names (N,) str).

    Constituents come back as E, px, py, pz (GeV), sorted by pT descending and
    padded/truncated to ``max_constituents``. Only jets of the ``signal`` classes (label 1)
    and ``background`` classes (label 0) are kept (``qcd`` takes gluon and quark jets too); with a
    multi-class ``task`` (``data.classes``) the jets of its classes, labelled with their class index.
    Each file is validated (module docstring) and its jets checked for physics sanity per class
    (``data.sanity.check_physics``); ``report``, where given, receives what was seen: ``files`` (per file: jets
    read, jets kept, the physics figures per class) and ``warnings``. With ``with_origin`` a fourth array gives
    each jet's index into ``paths``.
    """
    from .sanity import check_physics, describe_physics

    if source not in _READERS:
        raise DataFormatError(f"unknown data source {source!r}: use one of {list(SOURCES)}")
    if not paths:
        raise DataFormatError(f"data source {source!r} needs at least one input file in data.paths")
    if max_constituents <= 0:
        raise DataFormatError(f"max_constituents must be positive, got {max_constituents}")
    task = task or Task.binary(signal, background)
    report = report if report is not None else {}
    notes: list[str] = report.setdefault("warnings", [])
    files: dict = report.setdefault("files", {})
    cs, ns, origin = [], [], []
    for i, p in enumerate(map(Path, paths)):
        c, names = _READERS[source](p, _Read(task, notes))
        if len(c) == 0:
            raise DataFormatError(f"{p}: holds no jets ({source}); every file in data.paths must contribute jets: "
                                  "remove it or fix it")
        keep, _ = task.labels(names)
        kinds, counts = np.unique(names, return_counts=True)
        found = {str(k): int(v) for k, v in zip(kinds, counts)}
        c = c[keep]
        _check_finite(c, p, source)
        entry = {"jets": int(len(names)), "kept": int(keep.sum()), "classes": found}
        if not keep.any():
            msg = (f"{p}: none of its {len(names)} jets ({', '.join(f'{k} {v}' for k, v in found.items())}) are of "
                   f"the task {task.describe()}; it contributes nothing")
            warn(msg)
            notes.append(msg)
        else:
            seen = check_physics(c, f"{p} ({source})", names[keep])
            entry["physics"] = seen["classes"]
            for w in seen["warnings"]:
                warn(w)
                notes.append(w)
            info(f"[data] {describe_physics(seen)}")
        files[str(p)] = entry
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
    (e.g. recorded collision data used as a transfer set); canonical files need no ``is_signal``.
    Each file is validated and checked for physics sanity (all its jets as one group); a file of no jets is
    refused."""
    from .sanity import check_physics

    if source not in _READERS:
        raise DataFormatError(f"unknown data source {source!r}: use one of {list(SOURCES)}")
    if max_constituents <= 0:
        raise DataFormatError(f"max_constituents must be positive, got {max_constituents}")
    cs = []
    for p in map(Path, paths):
        if source == "canonical":
            with _open_h5(p, "fix the file list") as f:
                c = _canonical_constituents(f, p)
        else:
            c = _READERS[source](p, _Read())[0]
        _check_finite(c, p, source)
        if len(c) == 0:
            raise DataFormatError(f"{p}: holds no jets ({source}); remove it from the list or fix it")
        for w in check_physics(c, f"{p} ({source})")["warnings"]:
            warn(w)
        cs.append(sort_and_pad(c, max_constituents))
    if not cs or not sum(len(c) for c in cs):
        raise DataFormatError(f"no jets in {', '.join(map(str, paths)) or 'an empty file list'} ({source})")
    return np.concatenate(cs)


def read_task(split_path) -> Task:
    """The task a data split file was made for: its classes (multi-class), else the binary task named by the
    ``summary.json`` the data stage wrote beside it; without one the task is not known, and is not guessed."""
    classes = read_classes(split_path)
    if classes is not None:
        return Task.of_classes(classes)
    task = _file_task(Path(split_path))
    if task is None:
        raise DataFormatError(f"{split_path}: a binary split file without a readable summary.json beside it naming "
                              "its signal and background classes (the data stage writes both): the data stage's "
                              "output is incomplete; rerun it (trigger-kd run <config> --to data)")
    return task
