"""`trigger-kd front`'s request checked entirely before any work, each rule once: the budget (a positive finite
number), the user's ``--set`` against the keys the sweep sets itself (a swept knob, the synth route), and every path
the sweep makes under ``--out`` (the folder itself, ``shared/``, ``points/``, each point's folder, the lock). A
request that breaks one is refused in one line naming what and why; nothing is written. ``make_dirs`` makes the
sweep's folders and, when the filesystem refuses one, removes those it made and says so in one line."""
from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path

from ..config import parse_set
from ..errors import TriggerKDError
from .sweep import AXES, FrontError, Point

# what every point needs whatever the user's config says: the front ranks on da4ml's LUT estimate, which the
# open-source synth route makes (synth.yosys false too, but the picked config keeps the user's synth.yosys)
SWEEP_SETS = {"synth.tool": "open-source"}
BUDGET_EXAMPLE = {"--max-lut": "10000", "--max-latency-ns": "40"}


def check_budget(max_lut, max_latency_ns) -> None:
    """A budget is a positive finite number (NaN, infinity, zero or below would pick nothing, or anything)."""
    for option, value in (("--max-lut", max_lut), ("--max-latency-ns", max_latency_ns)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise FrontError(f"front {option} {value}: a budget must be a positive finite number; give e.g. "
                             f"{option} {BUDGET_EXAMPLE[option]}, or leave it out for no budget")


def _overlap(a: list[str], b: list[str]) -> bool:
    """Two dotted keys name the same setting (one is the other, or a section holding it)."""
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def check_sets(user_sets: list[str], grid: list[Point]) -> None:
    """Refuse a user's ``--set`` of a key the sweep sets itself: it would be overridden on every point it touches.
    A relative axis (width: a scale of the config's widths) takes the user's value as its base: not refused."""
    for text in user_sets:
        parts, value = parse_set(text)
        for key, needed in SWEEP_SETS.items():
            if _overlap(parts, key.split(".")) and value != needed:
                raise FrontError(f"front --set {text}: every point of the sweep runs {key}={needed} (the front ranks "
                                 f"points on da4ml's LUT estimate, which that route makes), so this --set would be "
                                 f"ignored; drop it, and pass it to `trigger-kd run` on the picked config instead")
        for axis in dict.fromkeys(a for p in grid for a in p.by_axis if not AXES[a].relative):
            hits = [(p.id, o) for p in grid for o in p.by_axis.get(axis, ()) if _overlap(parts, parse_set(o)[0])]
            if hits:
                keys = sorted({o.partition("=")[0] for _, o in hits})
                raise FrontError(
                    f"front --set {text}: the sweep sets {', '.join(keys)} itself through its {axis} axis (on "
                    f"{len({i for i, _ in hits})} of {len(grid)} points, e.g. {hits[0][0]}: {hits[0][1]}), so this "
                    f"--set would be overridden; drop it and give the values with --points {axis}=V1,V2")


def _what(path: Path) -> str:
    if path.is_symlink():
        return "a symlink to a file" if path.exists() else "a broken symlink"
    return "a folder" if path.is_dir() else "a file"


def _writable(folder: Path, out_dir: Path) -> None:
    if not os.access(folder, os.W_OK | os.X_OK):
        raise TriggerKDError(f"front --out {out_dir}: the folder {folder} is not writable; give --out a folder you "
                             "can write")


def check_paths(out_dir: Path, folders: list[Path], lock: Path) -> None:
    """``out_dir`` can be made or used; each of ``folders`` (what the sweep makes under it, parents first) is absent
    or a folder; ``lock`` is absent or an empty file (the sweep's own). Reads only."""
    if (out_dir.exists() or out_dir.is_symlink()) and not out_dir.is_dir():
        raise TriggerKDError(f"front --out {out_dir} is an existing {_what(out_dir).removeprefix('a ')}, not a folder; "
                             "nothing was replaced: give a new folder (or one an earlier `trigger-kd front` wrote)")
    existing = out_dir
    while not (existing.exists() or existing.is_symlink()):
        existing = existing.parent
    if not existing.is_dir():
        raise TriggerKDError(f"front --out {out_dir} cannot be made: {existing} is {_what(existing)}, not a folder; "
                             "give --out a folder you can write")
    _writable(existing, out_dir)
    for folder in folders:
        if (folder.exists() or folder.is_symlink()) and not folder.is_dir():
            raise TriggerKDError(f"front --out {out_dir}: {folder} is {_what(folder)} where the sweep makes a folder; "
                                 "nothing was replaced: move it away or give --out another folder")
        if folder.is_dir() and folder.parent == out_dir:
            _writable(folder, out_dir)
    if (lock.exists() or lock.is_symlink()) and (lock.is_symlink() or not lock.is_file() or lock.stat().st_size):
        raise TriggerKDError(f"front --out {out_dir}: {lock} is {_what(lock)}, not the empty lock file the sweep "
                             "keeps there; nothing was replaced: move it away or give --out another folder")


def make_dirs(path: Path) -> list[Path]:
    """Make ``path`` and its missing parents; the folders made, outermost first. When the filesystem refuses one,
    those made are removed and the refusal is one line."""
    missing, p = [], Path(path)
    while not (p.exists() or p.is_symlink()):
        missing.append(p)
        p = p.parent
    made: list[Path] = []
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:
            if folder.is_dir():  # made meanwhile by another process: not ours to remove
                continue
            remove_made(made)
            raise TriggerKDError(f"front --out {path}: {folder} appeared as {_what(folder)} while the sweep was "
                                 "making it a folder; nothing was replaced: give --out another folder") from None
        except OSError as exc:
            remove_made(made)
            raise TriggerKDError(f"front --out {path}: cannot make the folder {folder} ({exc.strerror or exc}); give "
                                 "--out a folder you can write") from None
        made.append(folder)
    return made


def remove_made(made: list[Path]) -> None:
    """Remove the (empty) folders ``make_dirs`` made, innermost first."""
    for folder in reversed(made):
        with contextlib.suppress(OSError):
            folder.rmdir()
