"""Several trigger-kd processes on one run directory or one cache: locks and leftovers of dead runs.

A second run that needs a run directory or a cache entry another run holds waits for it (saying so),
then finds the result the first one made and reuses it. Temporary directories named
``.<name>.tmp-PID`` (also ``.old-PID`` / ``.link-PID``) whose process is gone are removed.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

from .console import info

_LEFTOVER = re.compile(r"^\..+\.(tmp|old|link)-(\d+)$")


@contextlib.contextmanager
def waiting_lock(path: Path, what: str) -> Iterator[bool]:
    """Hold the lock file ``path``; yields True when another process held it and this one waited."""
    lock = FileLock(str(path))
    waited = False
    try:
        lock.acquire(timeout=0)
    except Timeout:
        info(f"{what} is in use by another trigger-kd run; waiting for it to finish (lock file {path})")
        waited = True
        lock.acquire()
    try:
        yield waited
    finally:
        lock.release()


def pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_dead_leftovers(directory: Path) -> list[Path]:
    """Remove ``.<name>.tmp-PID`` / ``.old-PID`` / ``.link-PID`` entries whose process no longer runs."""
    removed = []
    try:
        entries = list(Path(directory).iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = _LEFTOVER.match(entry.name)
        if not m or pid_alive(int(m.group(2))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    if removed:
        info(f"removed {len(removed)} leftover temporary entr{'y' if len(removed) == 1 else 'ies'} of stopped runs "
             f"in {directory}: {', '.join(p.name for p in removed)}")
    return removed
