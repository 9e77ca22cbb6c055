"""`trigger-kd cache list | prune`: what the content-addressed cache holds, and removing what is not needed.

Entries: ``<cache>/<stage>/<key>/`` for shared stages (``data``, ``teacher``; ``stamp.json`` says what
each was made from) and ``<cache>/jets/<key>/`` (generated shard pools). Each entry keeps ``.uses.json``:
when it was last used and which run-directory links point at it. An entry is *referenced* while one of
those links still resolves to it (a jet pool: while a ``data`` entry names it).
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .atomic import write_text_atomic
from .paths import cache_root  # noqa: F401 (where the cache is: `trigger-kd cache` and the runner ask here)
from .rundir import read_stamp

USES_FILE = ".uses.json"
POOL_DIR = "jets"


def note_use(entry: Path, link: Path | None = None, made_from: dict | None = None) -> None:
    """Record that ``entry`` was used now (through ``link``, a run-directory symlink, when given)."""
    path = Path(entry) / USES_FILE
    try:
        uses = json.loads(path.read_text())
    except (OSError, ValueError):
        uses = {}
    links = set(uses.get("links", []))
    if link is not None:
        links.add(str(Path(link).absolute()))
    uses.update({"last_used": time.time(), "links": sorted(links)})
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
    referenced: bool

    def to_dict(self) -> dict:
        return {"stage": self.stage, "path": str(self.path), "size_bytes": self.size, "last_used": self.last_used,
                "made_from": self.made_from, "referenced": self.referenced}


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


def _linked(entry: Path, uses: dict) -> bool:
    for link in uses.get("links", []):
        try:
            if Path(link).is_symlink() and Path(link).resolve() == entry.resolve():
                return True
        except OSError:
            continue
    return False


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
            entries.append(Entry(stage_dir.name, entry, _size(entry), float(last), _made_from(stamp, uses),
                                 referenced=_linked(entry, uses)))
    for e in entries:
        if e.stage == POOL_DIR:
            e.referenced = str(e.path.resolve()) in pools_named
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
                     f"{'yes' if e.referenced else 'no':6s} {e.made_from}")
    total = sum(e.size for e in entries)
    lines.append(f"{len(entries)} entries, {_human(total)}")
    return "\n".join(lines)


def prune(cache: Path, older_than_days: float | None, unreferenced: bool, dry_run: bool) -> list[Entry]:
    """Remove entries unused for ``older_than_days`` and/or not referenced. Entries in use are kept: every run
    holds the lock of each cache entry it uses (shared) or makes (exclusive) until it ends, and an entry whose lock
    is held is skipped."""
    from filelock import FileLock, Timeout

    if older_than_days is not None and not older_than_days >= 0:
        raise ValueError(f"older_than_days must be 0 or more, got {older_than_days}")
    now = time.time()
    chosen = [e for e in list_entries(cache)
              if (older_than_days is not None and now - e.last_used > older_than_days * 86400)
              or (unreferenced and not e.referenced)]
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
