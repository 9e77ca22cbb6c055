"""Where a sweep's points run, and what is checked before any point is sent there.

- The embedded ``LocalCluster`` (``--workers N``): N is bounded by this machine (``worker_limit``): one worker per
  usable core and per ``POINT_MEMORY`` of memory beyond the client's own ``CLIENT_MEMORY``. Its worker processes
  ignore SIGINT (a terminal's Ctrl-C reaches the whole process group): the client alone handles Ctrl-C and stops
  them, so an interrupted sweep prints one line, not a traceback per worker.
- A running cluster (``--scheduler``): the address is checked (``scheduler_address``), and before any point is
  submitted a probe runs on every worker (``worker_view``): it must see the token files this client wrote in the
  sweep directory and in the cache at the same paths, use the same cache path, and run the same trigger_kd code
  (version, source digest, Python and the pinned packages). Every point task repeats the check
  (``point_task``), so a worker that joins later is held to the same rule.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import platform
import signal
import socket
import sys
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from distributed.diagnostics.plugin import WorkerPlugin

from .. import __version__
from ..concurrency import process_gone, process_identity
from ..console import info, warn
from .sweep import FrontError


class WorkersRefused(FrontError):
    """The probe found a worker (or the scheduler) that cannot run this sweep's points: nothing was run."""


GIB = 2**30
# Memory held per worker: a point's stages (student to synth) peaked at 1.2 GB RSS, quick profile
# (benchmarks/history/synth.md, "`make synth` on a fresh clone (first session...)": `make synth MODEL=deepset_kd` with
# data and teacher cached, 1.19 GB); 1.5 GiB leaves headroom
POINT_MEMORY = 1.5 * GIB
CLIENT_MEMORY = 1.5 * GIB  # the client: the shared stages (data, teacher, transfer) run in it, peak 1.2 GB alike
DEFAULT_WORKERS = 2

SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")  # distributed's network comms (inproc is in-process only)
ADDRESS_FORMS = ("tcp://HOST:PORT (the address `dask scheduler` prints; its default port is 8786), HOST:PORT, "
                 "tls://, ws://, wss:// or ucx://HOST:PORT, or the JSON file `dask scheduler --scheduler-file FILE` "
                 "writes")
SHARED_RULE = ("trigger-kd front --scheduler needs the sweep directory and the cache on a filesystem every worker "
               "sees, at the same paths as on this client (set TRIGGER_KD_CACHE alike everywhere), and the same "
               "trigger_kd install (the same venv or an identical one) on every worker")


# ----------------------------------------------------------------------------- what this machine can hold
def _cgroup_value(name: str) -> str | None:
    try:
        return Path("/sys/fs/cgroup", name).read_text().strip()
    except OSError:
        return None


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity), bounded by a cgroup CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = (_cgroup_value("cpu.max") or "max").split()
    if quota and quota[0] != "max" and len(quota) == 2:
        try:
            cores = min(cores, max(1, int(int(quota[0]) / int(quota[1]))))
        except ValueError:
            pass
    return max(1, cores)


def usable_memory() -> int:
    """Physical memory in bytes, bounded by a cgroup memory limit."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 0
    limit = _cgroup_value("memory.max")
    if limit and limit.isdigit():
        total = min(total, int(limit)) if total else int(limit)
    return int(total)


def worker_limit(cores: int, memory: int) -> int:
    """The most LocalCluster workers this machine holds: one per core and per POINT_MEMORY beyond the client's
    CLIENT_MEMORY; at least 1."""
    by_memory = int((memory - CLIENT_MEMORY) // POINT_MEMORY) if memory else cores
    return max(1, min(cores, by_memory))


def check_workers(requested: int | None, n_points: int) -> int:
    """How many LocalCluster workers to start: ``requested`` (default 2) when this machine holds them (else a
    FrontError, before any work), never more than there are points."""
    cores, memory = usable_cores(), usable_memory()
    limit = worker_limit(cores, memory)
    if requested is None:
        return max(1, min(DEFAULT_WORKERS, limit, n_points))
    if requested < 1:
        raise FrontError(f"--workers must be at least 1, got {requested}")
    if requested > limit:
        raise FrontError(
            f"--workers {requested}: this machine holds at most {limit} point worker{'s' if limit > 1 else ''}: one "
            f"per usable core ({cores} core{'s' if cores > 1 else ''}) and per {POINT_MEMORY / GIB:g} GiB of its "
            f"{memory / GIB:.1f} GiB memory beyond the client's {CLIENT_MEMORY / GIB:g} GiB (a point's measured peak: "
            f"1.2 GB, quick profile); nothing was started: give --workers {limit} or fewer, or run the points "
            "on a cluster with --scheduler")
    return max(1, min(requested, n_points))


# ----------------------------------------------------------------------------- a running cluster's address
def scheduler_address(text: str) -> str:
    """The scheduler address ``text`` names (an address, or a scheduler file), or a FrontError saying which forms
    work. Nothing is contacted here."""
    given = str(text).strip()
    path = Path(given).expanduser()
    if "://" not in given and (path.suffix == ".json" or path.is_file()):
        try:
            data = json.loads(path.read_text())
            address = data["address"] if isinstance(data, dict) else None
        except (OSError, ValueError, KeyError):
            address = None
        if not isinstance(address, str):
            raise FrontError(f"--scheduler {given}: not a readable scheduler file (a JSON object with an \"address\", "
                             f"as `dask scheduler --scheduler-file FILE` writes); give {ADDRESS_FORMS}")
        return _checked(address, f"--scheduler {given} (its address {address})")
    return _checked(given, f"--scheduler {given}")


def _checked(address: str, what: str) -> str:
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "tcp", address
    if scheme not in SCHEMES:
        hint = " (http:// is a web page, such as the scheduler's dashboard, not its address)" if scheme in (
            "http", "https") else ""
        raise FrontError(f"{what}: not a Dask scheduler address{hint}; give {ADDRESS_FORMS}")
    host, _, port = rest.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in rest:
        raise FrontError(f"{what}: expected HOST:PORT after {scheme}://; give {ADDRESS_FORMS}")
    return f"{scheme}://{rest}"


# ----------------------------------------------------------------------------- what every worker must see
@functools.cache
def software() -> dict:
    """What a point's results depend on in this process's install: trigger_kd's version and a digest of its source
    (Python and native files), Python's version, and the versions of the packages the stages record."""
    from ..fingerprint import TOOLS

    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for f in sorted(p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                    and p.suffix in (".py", ".cpp", ".c", ".h", ".hpp")):
        digest.update(f.relative_to(package).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    from importlib.metadata import PackageNotFoundError, version

    packages = {}
    for tool, (kind, dist) in TOOLS.items():
        if kind == "dist":
            try:
                packages[tool] = version(str(dist))
            except PackageNotFoundError:
                packages[tool] = None
    return {"trigger_kd": __version__, "code": digest.hexdigest()[:16], "python": platform.python_version(),
            "packages": packages}


def _software_differences(mine: dict, client: dict) -> list[str]:
    out = [f"it runs {what} {mine.get(key)}, this client {client.get(key)}"
           for key, what in (("trigger_kd", "trigger_kd version"), ("code", "trigger_kd source digest"),
                             ("python", "Python")) if mine.get(key) != client.get(key)]
    theirs = client.get("packages") or {}
    differ = [f"{k} {v} (client {theirs.get(k)})" for k, v in (mine.get("packages") or {}).items()
              if v != theirs.get(k)]
    if differ:
        out.append(f"its packages differ: {', '.join(differ)}")
    return out


@dataclass(frozen=True)
class Expect:
    """What this client expects every worker to see: the token in both probe files, its cache path, its software."""

    token: str
    out_dir: str
    out_probe: str
    cache_dir: str
    cache_probe: str
    software: dict = field(hash=False)


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def worker_view(expect: Expect) -> dict:
    """Run on a worker: who it is and what it lacks of ``expect`` (``problems``, empty when it may run points)."""
    from ..paths import cache_root

    me: dict = {"host": socket.gethostname(), "pid": os.getpid(), "cwd": os.getcwd()}
    try:
        from distributed import get_worker

        me["address"] = get_worker().address
    except (ImportError, ValueError):
        me["address"] = None
    problems = []
    if _probe_token(_read(expect.out_probe)) != expect.token:
        problems.append(f"it does not see {expect.out_probe}, which this client wrote in the sweep directory "
                        f"{expect.out_dir}")
    cache = str(cache_root().expanduser().resolve())
    me["cache"] = cache
    if cache != expect.cache_dir:
        problems.append(f"its cache is {cache}, not {expect.cache_dir} (TRIGGER_KD_CACHE)")
    elif _probe_token(_read(expect.cache_probe)) != expect.token:
        problems.append(f"it does not see {expect.cache_probe}, which this client wrote in the cache")
    mine = software()
    problems += _software_differences(mine, expect.software)
    me["problems"] = problems
    me["software"] = mine
    return me


def refusal(views: dict) -> str | None:
    """One line refusing the workers whose view has problems (None when every worker may run points)."""
    bad = {addr: v for addr, v in views.items() if not isinstance(v, dict) or v.get("problems")}
    if not bad:
        return None
    parts = []
    for addr, v in sorted(bad.items()):
        if isinstance(v, dict):
            parts.append(f"worker {addr} (host {v.get('host')}): " + "; ".join(v["problems"]))
        else:  # the probe itself failed there, e.g. trigger_kd cannot be imported
            parts.append(f"worker {addr}: the probe failed there ({type(v).__name__}: {v})")
    return (f"{len(bad)} of {len(views)} Dask worker{'s' if len(views) > 1 else ''} cannot run this sweep's points: "
            f"{' | '.join(parts)}. {SHARED_RULE}; nothing was run")


PROBE_PREFIX = ".front-probe-"


def _probe_token(text: str | None) -> str | None:
    """The token of a probe file (its first line; the second says who wrote it)."""
    return None if text is None else text.split("\n", 1)[0]


def _probe_writer(text: str) -> dict:
    """The writer a probe file names (its second line; {} when it names none)."""
    try:
        writer = json.loads(text.split("\n")[1])
    except (IndexError, ValueError):
        return {}
    return writer if isinstance(writer, dict) else {}


def remove_stale_probes(folder: Path) -> list[Path]:
    """Remove the probe files in ``folder`` whose writer is gone: each writer holds an flock on its file for as long
    as its sweep runs (a writer stopped by SIGKILL, or on another host, cannot remove its own). A lock still held
    once its writer is proven gone on this kernel (``concurrency.process_gone``: a child forked without exec keeps
    the lock's file description) does not keep the file either. Files are opened without O_CREAT: a file its writer
    has just removed is not made again."""
    import fcntl

    removed = []
    for f in sorted(Path(folder).glob(f"{PROBE_PREFIX}*")):
        try:
            fd = os.open(f, os.O_RDONLY)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # held: a live sweep's, unless its writer is proven gone
                if not process_gone(_probe_writer(Path(f).read_text(errors="replace"))):
                    continue
            f.unlink(missing_ok=True)
            removed.append(f)
        finally:
            os.close(fd)
    return removed


def _write_probe(path: Path, token: str) -> int:
    """Write ``path`` (token, then its writer) and return an fd holding an flock on it: taken on a temporary name
    before the rename, so no other sweep ever sees the file unlocked."""
    import fcntl

    tmp = path.with_name(f".tmp{path.name}")
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        writer = {**process_identity(), "argv": sys.argv[:6]}
        os.write(fd, f"{token}\n{json.dumps(writer)}\n".encode())
        os.replace(tmp, path)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    return fd


@contextmanager
def probe_files(out_dir: Path):
    """Token files in the sweep directory and in the cache (removed after the sweep, each flocked while it lives:
    the files of a sweep that could not remove its own, e.g. one stopped by SIGKILL, are removed by the next
    sweep); yields the ``Expect``."""
    from ..paths import cache_root

    token = uuid.uuid4().hex
    cache = cache_root().expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    cache = cache.resolve()
    files = [Path(out_dir) / f"{PROBE_PREFIX}{token}", cache / f"{PROBE_PREFIX}{token}"]
    for folder in (out_dir, cache):
        remove_stale_probes(folder)
    fds: list[int] = []
    try:
        for f in files:
            fds.append(_write_probe(f, token))
        yield Expect(token=token, out_dir=str(out_dir), out_probe=str(files[0]), cache_dir=str(cache),
                     cache_probe=str(files[1]), software=software())
    finally:
        for f in files:  # removed while still locked: no other sweep takes it for a dead one's
            try:
                f.unlink()
            except OSError:
                pass
        for fd in fds:
            os.close(fd)


# ----------------------------------------------------------------------------- the client
def _ignore_sigint() -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


class _IgnoreInterrupt(WorkerPlugin):
    """A worker plugin for the embedded cluster: a worker the nanny restarts ignores Ctrl-C too."""

    name = "trigger-kd-front-ignore-sigint"

    def setup(self, worker):
        _ignore_sigint()


@contextmanager
def _quiet_distributed(level: int = logging.CRITICAL):
    """distributed's loggers at ``level`` (closing a cluster whose workers were stopped logs warnings)."""
    logger = logging.getLogger("distributed")
    old = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(old)


def _kill_tree(pid: int) -> None:
    """SIGKILL a worker process this client started and every process under it (a point's g++, Yosys, Verilator:
    they ignore Ctrl-C as the worker does, and would run on, orphaned)."""
    import psutil  # a dependency of distributed

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=5)


class Session:
    """A Dask client and, for the embedded cluster, the cluster it started."""

    def __init__(self, client, cluster=None, address: str | None = None, own: bool = True):
        self.client, self.cluster, self.address, self.own = client, cluster, address, own
        self.worker_pids: dict[str, int] = {}

    def probe(self, expect: Expect) -> dict:
        """The probe on every worker (waiting for the first one); a FrontError naming what a worker lacks."""
        if not self.client.scheduler_info().get("workers"):
            info(f"[front] waiting for the first worker of the Dask scheduler {self.address}")
            self.client.wait_for_workers(1)
        views = self.client.run(worker_view, expect, on_error="return")
        if self.cluster is not None:
            self.worker_pids = {a: v["pid"] for a, v in views.items() if isinstance(v, dict) and "pid" in v}
        problem = refusal(views)
        if problem:
            raise WorkersRefused(problem)
        # the scheduler unpickles the tasks (they name trigger_kd's functions): it needs the same install too
        try:
            theirs = self.client.run_on_scheduler(software)
        except Exception as exc:  # noqa: BLE001 - e.g. trigger_kd cannot be imported there
            theirs = exc
        differ = _software_differences(theirs, expect.software) if isinstance(theirs, dict) else [
            f"the probe failed there ({type(theirs).__name__}: {str(theirs).splitlines()[0] if str(theirs) else ''})"]
        if differ:
            raise WorkersRefused(f"the Dask scheduler {self.address} cannot take this sweep's points: {'; '.join(differ)}. "
                             "It unpickles every task, which names trigger_kd's functions: run it in the same "
                             "trigger_kd install (the same venv or an identical one) as the workers; nothing was run")
        return views

    def interrupted(self, futures) -> None:
        """Ctrl-C (or SIGTERM): stop this sweep's work. The embedded cluster's workers are stopped (their point's
        stage is interrupted as by SIGKILL: a rerun repairs it); on a running cluster this sweep's queued points
        are cancelled, and the ones already running finish there (a rerun waits for their run directories)."""
        with _quiet_distributed():
            keys = {f.key for f in futures or ()}
            try:
                running = keys & {k for ks in self.client.processing().values() for k in ks} if keys else set()
            except Exception:  # noqa: BLE001 - stopping anyway
                running = set()
            try:
                if futures:
                    self.client.cancel(list(futures))
            except Exception:  # noqa: BLE001 - stopping anyway
                pass
            if self.cluster is not None:
                for pid in self.worker_pids.values():
                    _kill_tree(pid)
            elif running:
                warn(f"[front] interrupted: {len(running)} point(s) already running on the cluster's workers run to "
                     "their end there; rerunning the same command reuses them (it waits for their run directories)")

    def close(self) -> None:
        if not self.own or self.client is None:
            return
        with _quiet_distributed(logging.ERROR if self.cluster is None else logging.CRITICAL):
            try:
                self.client.close()
            finally:
                self.client = None
                if self.cluster is not None:
                    self.cluster.close()


def connect(workers: int, address: str | None) -> Session:
    """A client on the running cluster at ``address`` (checked by ``scheduler_address``) or on an embedded
    LocalCluster of ``workers`` processes that ignore Ctrl-C."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - a pinned dependency
        raise FrontError(f"trigger-kd front needs dask and distributed ({exc}); run `make install`") from None
    if address:
        try:
            with _quiet_distributed():
                return Session(Client(address, timeout="30s"), address=address)
        except (OSError, TimeoutError) as exc:
            raise FrontError(f"--scheduler {address}: cannot reach the Dask scheduler ({exc})") from None
        except (ValueError, TypeError) as exc:  # e.g. tls:// without Dask's TLS settings
            raise FrontError(f"--scheduler {address}: distributed refuses this address ({exc}); give "
                             f"{ADDRESS_FORMS}") from None
    # The worker processes inherit SIGINT ignored (set while they are spawned): a terminal's Ctrl-C goes to the
    # whole process group, and this client stops them. One thread per worker process (a point's stages set their
    # own thread counts); no memory limit (workers are bounded by check_workers; a nanny that killed a point
    # would only rerun it). The resource tracker's note about semaphores of stopped workers is dropped.
    main = threading.current_thread() is threading.main_thread()
    old_handler = signal.getsignal(signal.SIGINT) if main else None
    old_warnings = os.environ.get("PYTHONWARNINGS")
    os.environ["PYTHONWARNINGS"] = ",".join(w for w in (old_warnings, "ignore:resource_tracker:UserWarning") if w)
    try:
        if main:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        with _quiet_distributed(logging.ERROR):
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, memory_limit=0,
                                   dashboard_address="127.0.0.1:0", host="127.0.0.1")
    finally:
        if main:
            signal.signal(signal.SIGINT, old_handler)
        if old_warnings is None:
            os.environ.pop("PYTHONWARNINGS", None)
        else:
            os.environ["PYTHONWARNINGS"] = old_warnings
    client = Client(cluster)
    try:
        client.register_plugin(_IgnoreInterrupt())
    except Exception:  # noqa: BLE001 - the processes already ignore SIGINT; only restarted ones would not
        pass
    return Session(client, cluster)

