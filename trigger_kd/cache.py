"""`trigger-kd cache list | prune`: what the content-addressed cache holds, and removing what is not needed.

Entries: ``<cache>/<stage>/<key>/`` for shared stages (``data``, ``teacher``, ``transfer``; ``stamp.json`` says
what each was made from) and ``<cache>/jets/<key>/`` (generated shard pools). Each entry keeps ``.uses.json``:
when it was last used and which runs use it.

**References travel with the run.** What references an entry is a run directory's link to it (``<run>/teacher ->
<entry>``), and a run directory can be moved (``mv``) without the cache knowing. So each use records the run by
its id (``rundir.run_id``: in the run's ``.trigger-kd-run`` marker, which moves with it) and where its link was
then (``runs``: ``{id: {"link", "last_seen"}}``), refreshed every time a run uses the entry. An entry is:

- *linked* while some recorded link still resolves to it (whichever run is there now);
- *unlinked* when every run it recorded is where it was last seen and links elsewhere (rerun at other settings);
- *unsure* when a run it recorded is not where it was last seen (moved, or deleted: the cache cannot tell). A
  moved run still links to the entry, so ``prune --unreferenced`` keeps it and says so; the run's next use (from its
  new place) refreshes the record; ``--forget-missing`` removes such entries once the user knows those runs are gone.

Records from before run ids (``links``: paths only) count the same way, by path (a missing path: unsure).
A jet pool is referenced while a ``data`` entry names it. Entries a running run holds are never removed (their lock).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import write_text_atomic
from .paths import cache_root  # noqa: F401 (where the cache is: `trigger-kd cache` and the runner ask here)
from .rundir import is_run_dir, read_stamp, run_id

USES_FILE = ".uses.json"
USES_LOCK = ".uses.lock"  # serialises updates of .uses.json by runs sharing the entry
POOL_DIR = "jets"
LINKED, UNSURE, UNLINKED = "yes", "moved or deleted?", "no"


@contextlib.contextmanager
def _uses_locked(entry: Path):
    import fcntl

    try:
        fd = os.open(Path(entry) / USES_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield  # bookkeeping only: an unwritable entry is still usable
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def note_use(entry: Path, link: Path | None = None, made_from: dict | None = None) -> None:
    """Record that ``entry`` was used now (through ``link``, a run-directory symlink, when given: by that run's id
    and the link's path now)."""
    path = Path(entry) / USES_FILE
    with _uses_locked(entry):
        uses = _uses(entry)
        now = time.time()
        links = set(uses.get("links", [])) if isinstance(uses.get("links"), list) else set()
        runs = uses.get("runs") if isinstance(uses.get("runs"), dict) else {}
        if link is not None:
            link = Path(link).absolute()
            rid = run_id(link.parent)
            if rid is None:  # a run directory without an id (not the runner's marker): by path, as before ids
                links.add(str(link))
            else:
                runs[rid] = {"link": str(link), "last_seen": now}
                links.discard(str(link))  # that path's record is this run's now
        uses.update({"last_used": now, "links": sorted(links), "runs": runs})
        if made_from is not None:
            uses["made_from"] = made_from
        try:
            write_text_atomic(path, json.dumps(uses, indent=2))
        except OSError:
            pass  # bookkeeping only


@dataclass
class Entry:
    stage: str
    path: Path
    size: int
    last_used: float
    made_from: str
    links: str = UNLINKED  # LINKED, UNSURE or UNLINKED (module docstring)
    last_seen: list[str] = field(default_factory=list)  # UNSURE: the run directories not where they were seen

    @property
    def referenced(self) -> bool:
        """Kept by ``prune --unreferenced``: linked, or unsure (a moved run may still link to it)."""
        return self.links != UNLINKED

    def to_dict(self) -> dict:
        return {"stage": self.stage, "path": str(self.path), "size_bytes": self.size, "last_used": self.last_used,
                "made_from": self.made_from, "referenced": self.referenced, "links": self.links,
                "runs_not_found": self.last_seen}


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def _uses(entry: Path) -> dict:
    try:
        return json.loads((entry / USES_FILE).read_text())
    except (OSError, ValueError):
        return {}


def _made_from(stamp: dict | None, uses: dict) -> str:
    if stamp is None:
        mf = uses.get("made_from")
        return ", ".join(f"{k}={v}" for k, v in mf.items()) if isinstance(mf, dict) else "unknown (no stamp.json)"
    parts = []
    for section, values in (stamp.get("sections") or {}).items():
        if isinstance(values, dict):
            parts.append(section + "(" + ", ".join(f"{k}={v}" for k, v in values.items()
                                                   if v not in (None, [], {}, "")) + ")")
    files = [f"{Path(i['path']).name} sha256:{str(i.get('sha256'))[:8]}" for i in stamp.get("inputs") or []]
    if files:
        parts.append("files: " + ", ".join(files))
    if stamp.get("upstream"):
        parts.append("from " + ", ".join(f"{k} {str(v)[:8]}" for k, v in stamp["upstream"].items()))
    if stamp.get("code"):
        parts.append(f"code {str(stamp['code'])[:8]}")
    return "; ".join(parts)


def _judge(link: Path, target: Path, rid: str | None) -> str:
    """What one recorded use says now: LINKED (the link resolves to the entry), UNLINKED (the run recorded is there
    and links elsewhere) or UNSURE (it is not where it was seen: moved or deleted)."""
    try:
        if link.is_symlink() and link.resolve() == target:
            return LINKED  # whichever run is there now: never remove what a run links to
        there = link.parent
        if there.is_dir() and is_run_dir(there) and (rid is None or run_id(there) == rid):
            return UNLINKED
    except OSError:
        pass
    return UNSURE


def references(entry: Path, uses: dict | None = None) -> tuple[str, list[str]]:
    """(LINKED | UNSURE | UNLINKED, the run directories of the unsure records)."""
    uses = _uses(entry) if uses is None else uses
    target = Path(entry).resolve()
    runs = uses.get("runs") if isinstance(uses.get("runs"), dict) else {}
    records = [(Path(str(r.get("link", ""))), rid) for rid, r in runs.items() if isinstance(r, dict) and r.get("link")]
    records += [(Path(str(p)), None) for p in uses.get("links", []) if isinstance(uses.get("links"), list)]
    verdicts = [(_judge(link, target, rid), link) for link, rid in records]
    if any(v == LINKED for v, _ in verdicts):
        return LINKED, []
    unsure = sorted({str(link.parent) for v, link in verdicts if v == UNSURE})
    return (UNSURE, unsure) if unsure else (UNLINKED, [])


def list_entries(cache: Path) -> list[Entry]:
    cache = Path(cache)
    if not cache.is_dir():
        return []
    entries: list[Entry] = []
    pools_named: set[str] = set()
    for stage_dir in sorted(p for p in cache.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for entry in sorted(p for p in stage_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            stamp = read_stamp(entry)
            uses = _uses(entry)
            summary = (stamp or {}).get("summary", {})
            named = list(summary.get("pools", {}).values()) + ([summary["pool"]] if summary.get("pool") else [])
            pools_named.update(str(Path(p).resolve()) for p in named)  # "pool": datasets from before jet classes
            last = uses.get("last_used") or entry.stat().st_mtime
            links, unsure = references(entry, uses)
            entries.append(Entry(stage_dir.name, entry, _size(entry), float(last), _made_from(stamp, uses), links,
                                 unsure))
    for e in entries:
        if e.stage == POOL_DIR:
            e.links, e.last_seen = (LINKED if str(e.path.resolve()) in pools_named else UNLINKED), []
    return entries


def _age(seconds: float) -> str:
    days = seconds / 86400
    return f"{days:.1f} d" if days >= 1 else f"{seconds / 3600:.1f} h"


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def format_entries(entries: list[Entry], now: float | None = None) -> str:
    now = time.time() if now is None else now
    lines = [f"{'stage':8s} {'entry':26s} {'size':>10s} {'unused for':>10s} {'linked':6s} made from"]
    for e in entries:
        lines.append(f"{e.stage:8s} {e.path.name[:26]:26s} {_human(e.size):>10s} {_age(now - e.last_used):>10s} "
                     f"{'moved?' if e.links == UNSURE else e.links:6s} {e.made_from}")
    total = sum(e.size for e in entries)
    lines.append(f"{len(entries)} entries, {_human(total)}")
    unsure = [e for e in entries if e.links == UNSURE]
    if unsure:
        lines.append(f"moved?: {len(unsure)} entr{'y' if len(unsure) == 1 else 'ies'} whose runs are not where they "
                     "were last seen (moved or deleted); `prune --unreferenced` keeps them (see `cache prune --help`)")
    return "\n".join(lines)


def prune(cache: Path, older_than_days: float | None, unreferenced: bool, dry_run: bool,
          forget_missing: bool = False) -> list[Entry]:
    """Remove entries unused for ``older_than_days`` and/or not referenced (``unreferenced``: UNLINKED ones; with
    ``forget_missing`` UNSURE ones too). Entries in use are kept: every run holds the lock of each cache entry it
    uses (shared) or makes (exclusive) until it ends, and an entry whose lock is held is skipped."""
    from filelock import FileLock, Timeout

    if older_than_days is not None and not older_than_days >= 0:
        raise ValueError(f"older_than_days must be 0 or more, got {older_than_days}")
    now = time.time()
    chosen = [e for e in list_entries(cache)
              if (older_than_days is not None and now - e.last_used > older_than_days * 86400)
              or (unreferenced and (e.links == UNLINKED or (forget_missing and e.links == UNSURE)))]
    removed = []
    for e in chosen:
        if dry_run:
            removed.append(e)
            continue
        lock = FileLock(str(e.path.with_name(f"{e.path.name}.lock")))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue  # a run is using it right now
        try:
            shutil.rmtree(e.path)
            removed.append(e)
        finally:
            lock.release()
    return removed
