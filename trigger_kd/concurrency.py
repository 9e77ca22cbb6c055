"""Several trigger-kd processes on one run directory or one cache: locks and leftovers of dead runs.

A second run that needs a run directory or a cache entry another run holds waits for it (saying so),
then finds the result the first one made and reuses it. Temporary directories named
``.<name>.tmp-PID`` (also ``.old-PID`` / ``.link-PID``) whose process is gone are removed.
"""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

from .console import info
from .rundir import LEFTOVER as _LEFTOVER


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


class EntryHold:
    """A run's hold on a cache entry, through the entry's lock file (``<key>.lock``, the file ``waiting_lock`` and
    ``cache prune`` lock): shared while the run uses the entry (any number of runs at once; `cache prune` skips the
    entry), exclusive while it makes it (waiting until the runs using it have finished). Released by ``release``."""

    def __init__(self, path: Path, what: str):
        import fcntl

        self._fcntl = fcntl
        self.path, self.what = Path(path), what
        self._fd: int | None = None

    def _take(self, mode: int, why: str) -> bool:
        """Take the lock in ``mode`` (after dropping any held); True when it had to wait."""
        self.release()
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self._fcntl.flock(self._fd, mode | self._fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            info(f"{self.what} {why}; waiting for it to finish (lock file {self.path})")
            self._fcntl.flock(self._fd, mode)
            return True

    def share(self) -> bool:
        return self._take(self._fcntl.LOCK_SH, "is being made by another trigger-kd run")

    def exclusive(self) -> bool:
        return self._take(self._fcntl.LOCK_EX, "is in use by another trigger-kd run")

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops its flock
            self._fd = None
