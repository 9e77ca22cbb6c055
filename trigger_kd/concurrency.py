"""Several trigger-kd processes on one run directory or one cache: locks and leftovers of dead runs.

A second run that needs a run directory or a cache entry another run holds waits for it (saying so),
then finds the result the first one made and reuses it. Temporary directories named
``.<name>.tmp-PID`` (also ``.old-PID`` / ``.link-PID``) are removed once their maker is *proven* gone.

Liveness is judged by a lock the maker holds for the entry's whole life, never by the PID in its name: a PID means
nothing in another PID namespace (a container) or on another host sharing the cache, where a live run's PID is
simply absent here. (A file that names its writer with ``process_identity`` may also be proven gone by that
identity, but only under the same kernel boot and PID namespace, where a PID with its start time names one process:
a child forked without exec keeps its parent's flock after the parent died.) A run's temporary entries in its run
directory live under the run directory's lock (``.trigger-kd.lock``), a cache entry's under the entry's own lock
(``<key>.lock``), taken exclusively before ``.<key>.tmp-PID`` is made and kept until the result is swapped in and
the old one removed. ``flock`` locks are the kernel's, so this holds across PID namespaces on one host. On NFS,
Linux emulates ``flock`` with POSIX byte-range locks that the server arbitrates between hosts (NFSv4, or v3 with
lockd): advisory, and only as good as the mount's locking; a cache shared between hosts needs that (``nolock``
mounts make locks local to each host, and then neither this nor the waiting and reuse above protect anything across
hosts).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

from .console import info
from .rundir import LEFTOVER as _LEFTOVER
from .rundir import lock_nowait


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


def _try_exclusive(lock_path: Path) -> int | None:
    """An fd holding ``lock_path`` exclusively, taken without waiting; None when any process (this one included,
    through another descriptor) holds it shared or exclusively, or the lock cannot be taken."""
    try:
        return lock_nowait(lock_path, shared=False)
    except OSError:
        return None


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)


def remove_dead_leftovers(directory: Path, run_lock_held: bool = False) -> list[Path]:
    """Remove the ``.<name>.tmp-PID`` / ``.old-PID`` / ``.link-PID`` entries of ``directory`` whose maker is proven
    gone by a lock it would hold (module docstring); every other one is kept.

    ``run_lock_held``: ``directory`` is a run directory whose lock the caller holds, so no other run works there and
    each such entry is a leftover (the caller has made none yet). Otherwise ``directory`` is a cache stage directory:
    ``.<key>.tmp-PID`` goes only while this process takes ``<key>.lock`` exclusively without waiting (no run is making
    or using that entry), and the lock is held while it is removed, so no run can start making the entry meanwhile."""
    removed = []
    try:
        entries = sorted(Path(directory).iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = _LEFTOVER.match(entry.name)
        if not m:
            continue
        if run_lock_held:
            _remove(entry)
            removed.append(entry)
            continue
        fd = _try_exclusive(Path(directory) / f"{m.group(1)}.lock")
        if fd is None:
            continue  # its maker, or a run using that entry, holds the lock: alive, or not proven gone
        try:
            _remove(entry)
            removed.append(entry)
        finally:
            os.close(fd)
    if removed:
        info(f"removed {len(removed)} leftover temporary entr{'y' if len(removed) == 1 else 'ies'} of stopped runs "
             f"in {directory}: {', '.join(p.name for p in removed)}")
    return removed


def _start_ticks(pid: int) -> int | None:
    """The start time of ``pid`` (clock ticks since boot, /proc/PID/stat field 22); None when there is no such
    live process (absent, or a zombie: it holds no files any more)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return None if fields[0] in ("Z", "X") else int(fields[19])


def _kernel_view() -> tuple[str | None, str | None]:
    """(boot id, PID namespace) of this process: a PID names the same process only where both are equal."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return boot, os.readlink("/proc/self/ns/pid")
    except OSError:
        return None, None


def process_identity() -> dict:
    """Who this process is, for a file that names its writer: host, PID, and where that PID means something (the
    kernel's boot id and PID namespace) with the process's start time (a reused PID is another process)."""
    boot, ns = _kernel_view()
    return {"host": socket.gethostname(), "pid": os.getpid(), "boot": boot, "pidns": ns,
            "start": _start_ticks(os.getpid())}


def process_gone(ident: dict) -> bool:
    """True only when the process ``ident`` (``process_identity`` of its writer) is proven gone: it ran under this
    kernel boot in this PID namespace, and its PID is now absent, a zombie, or another process. A process of
    another host, boot or PID namespace, or an identity lacking any of these, is never judged gone here: the
    caller's lock decides (module docstring)."""
    boot, ns = _kernel_view()
    pid, start = ident.get("pid"), ident.get("start")
    if None in (boot, ns) or ident.get("boot") != boot or ident.get("pidns") != ns:
        return False
    if not isinstance(pid, int) or not isinstance(start, int):
        return False
    return _start_ticks(pid) != start


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
