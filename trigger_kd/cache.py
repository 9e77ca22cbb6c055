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

**Only what trigger_kd made is an entry** (``read_entry``, the one reader of a cache folder's content): a real folder
(not a symlink) ``<stage>/<key>`` whose name has the shape the cache gives (24 hex digits; ``jets/<class>-<24 hex>``)
and that holds the records trigger_kd writes (``stamp.json`` naming that stage and a stamp starting with the key, or
``.uses.json``; a pool: ``.uses.json`` or its shards). Anything else in the folder (a user's files, folders at any
depth, symlinks) is named as left alone, and never removed or locked. A record that is there but damaged (not JSON,
a time before 2020 or in the future, NaN, a wrong type, a stamp naming another stage) makes the entry *damaged*: one
line says which value, and ``prune`` leaves it alone (a run's next use rewrites ``.uses.json``).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import write_text_atomic
from .classes import JET_CLASSES
from .errors import TriggerKDError
from .paths import cache_root, check_cache_root  # noqa: F401 (`trigger-kd cache` and the runner ask here)
from .rundir import STAMP_FILE, is_run_dir, read_stamp, run_id

USES_FILE = ".uses.json"
USES_LOCK = ".uses.lock"  # serialises updates of .uses.json by runs sharing the entry
POOL_DIR = "jets"
LINKED, UNSURE, UNLINKED, DAMAGED = "yes", "moved or deleted?", "no", "damaged"
KNOWN_FILES = ("file_index.json",)  # top-level files trigger_kd writes (fingerprint's index); dot-names are its own
_KEY = r"[0-9a-f]{24}"
_ENTRY_NAME = re.compile(_KEY)
_POOL_NAME = re.compile(rf"({'|'.join(JET_CLASSES)})-{_KEY}")
_LOCK_NAME = re.compile(rf"(?:(?:{'|'.join(JET_CLASSES)})-)?{_KEY}\.lock")
_SHARD = re.compile(r"shard_\d{5}\.h5")
_USES_KEYS = {"last_used", "links", "runs", "made_from"}
EARLIEST = 1577836800.0  # 2020-01-01: no trigger_kd record is older
CLOCK_SLACK = 3600.0  # hosts sharing a cache may disagree on the time by this much
_MISSING = object()


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
    and the link's path now). What is sound in the old record is kept; a damaged value is dropped (repaired)."""
    path = Path(entry) / USES_FILE
    with _uses_locked(entry):
        uses, _ = check_uses(_json_file(path)[0])
        now = time.time()
        links, runs = set(uses.get("links", [])), uses.get("runs", {})
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


# ----------------------------------------------------------------------------- the one reader of an entry's records
def _json_file(path: Path) -> tuple[object, str | None]:
    """(the JSON in ``path``, None); (_MISSING, None) when there is no such file; (None, why) when unreadable."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return _MISSING, None
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"{path.name} is unreadable ({getattr(exc, 'strerror', None) or exc})"
    try:
        return json.loads(text), None
    except ValueError:
        return None, f"{path.name} is not JSON"


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def time_problem(value: object, what: str, now: float | None = None) -> str | None:
    """Why ``value`` is not a time a record of this cache can hold (seconds since 1970, 2020 to now), or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{what} {_short(value)} is not a time (seconds since 1970)"
    now = time.time() if now is None else now
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an integer beyond any float
        finite = False
    if not finite:
        return f"{what} {_short(value)} is not a finite time"
    if value < EARLIEST:
        return f"{what} {_short(value)} is before 2020"
    if value > now + CLOCK_SLACK:
        return f"{what} {_short(value)} is in the future (now is {now:.0f})"
    return None


def _check_runs(runs: object) -> tuple[dict, list[str]]:
    if not isinstance(runs, dict):
        return {}, [f"{USES_FILE} runs {_short(runs)} is not a record of runs"]
    clean, problems = {}, []
    for rid, r in runs.items():
        if not isinstance(r, dict) or not isinstance(r.get("link"), str) or not r["link"]:
            problems.append(f"{USES_FILE} run {_short(rid)}: {_short(r)} names no link")
            continue
        why = time_problem(r.get("last_seen"), f"{USES_FILE} run {_short(rid)} last_seen")
        if why:
            problems.append(why)
            continue
        clean[rid] = {"link": r["link"], "last_seen": float(r["last_seen"])}
    return clean, problems


def check_uses(raw: object) -> tuple[dict, list[str]]:
    """An entry's ``.uses.json`` as read (``_json_file``): (its sound values, one line per damaged value). No file:
    nothing, and no problem (the entry's folder time stands in for its last use)."""
    if raw is _MISSING:
        return {}, []
    if not isinstance(raw, dict):
        return {}, [f"{USES_FILE} holds {_short(raw)}, not a record"]
    clean: dict = {}
    why = time_problem(raw["last_used"], f"{USES_FILE} last_used") if "last_used" in raw else \
        f"{USES_FILE} has no last_used"
    problems = [why] if why else []
    if not why:
        clean["last_used"] = float(raw["last_used"])
    links = raw.get("links", [])
    if isinstance(links, list) and all(isinstance(x, str) and x for x in links):
        clean["links"] = list(links)
    else:
        problems.append(f"{USES_FILE} links {_short(links)} is not a list of paths")
    clean["runs"], bad = _check_runs(raw.get("runs", {}))
    problems += bad
    made_from = raw.get("made_from", {})
    if isinstance(made_from, dict):
        clean["made_from"] = made_from
    else:
        problems.append(f"{USES_FILE} made_from {_short(made_from)} is not a record")
    return clean, problems


def _check_stamp(stamp: object, stage: str, key: str) -> tuple[list[str], list[str]]:
    """(the jet pools a stage entry's stamp.json names, one line per damaged or contradicting value)."""
    if not isinstance(stamp, dict):
        return [], [f"{STAMP_FILE} is missing or not a record"]
    problems = []
    if stamp.get("stage") != stage:
        problems.append(f"{STAMP_FILE} says stage {_short(stamp.get('stage'))}, its folder {stage}/")
    if not isinstance(stamp.get("stamp"), str) or not stamp["stamp"].startswith(key):
        problems.append(f"{STAMP_FILE} stamp {_short(stamp.get('stamp'))} is not the one its folder name {key} "
                        "starts")
    summary = stamp.get("summary", {})
    if not isinstance(summary, dict):
        return [], [*problems, f"{STAMP_FILE} summary {_short(summary)} is not a record"]
    pools = summary.get("pools", {})
    if not isinstance(pools, dict) or not all(isinstance(p, str) for p in pools.values()):
        return [], [*problems, f"{STAMP_FILE} summary.pools {_short(pools)} is not a record of class: folder"]
    named = list(pools.values())
    if "pool" in summary:  # datasets from before jet classes
        if not isinstance(summary["pool"], str):
            return named, [*problems, f"{STAMP_FILE} summary.pool {_short(summary['pool'])} is not a folder"]
        named.append(summary["pool"])
    return named, problems


@dataclass
class Records:
    """What an entry's own records say (``read_entry``)."""
    uses: dict
    stamp: dict | None
    pools: list[str]  # the jet pools its stamp names
    problems: list[str]  # one line per damaged value: the entry is damaged when any


def read_entry(stage_dir: Path, entry: Path) -> Records | None:
    """The records of ``entry`` (a child of ``stage_dir``), or None when trigger_kd did not make it (module
    docstring): a symlink, not a folder, a name of another shape, or without the records that prove it ours."""
    stage, name = stage_dir.name, entry.name
    pool = stage == POOL_DIR
    if not (_POOL_NAME if pool else _ENTRY_NAME).fullmatch(name) or entry.is_symlink() or not entry.is_dir():
        return None
    raw_uses, uses_why = _json_file(entry / USES_FILE)
    ours = isinstance(raw_uses, dict) and bool(_USES_KEYS & set(raw_uses))
    if pool:
        with contextlib.suppress(OSError):
            ours = ours or any(_SHARD.fullmatch(p.name) for p in entry.iterdir())
        stamp, named, problems = None, [], []
        made = raw_uses.get("made_from") if isinstance(raw_uses, dict) else None
        if isinstance(made, dict) and "class" in made and made["class"] != name.split("-")[0]:
            problems.append(f"{USES_FILE} says class {_short(made['class'])}, its folder name {name}")
    else:
        raw_stamp = read_stamp(entry)
        ours = ours or (isinstance(raw_stamp, dict) and {"stage", "stamp"} <= set(raw_stamp))
        stamp = raw_stamp if isinstance(raw_stamp, dict) else None
        named, problems = _check_stamp(raw_stamp, stage, name)
    if not ours:
        return None
    uses, bad = ({}, [uses_why]) if uses_why else check_uses(raw_uses)
    return Records(uses, stamp, named, [*problems, *bad])


# ----------------------------------------------------------------------------- entries and references
@dataclass
class Entry:
    stage: str
    path: Path
    size: int
    last_used: float | None  # None: its record is damaged (``damaged``)
    made_from: str
    links: str = UNLINKED  # LINKED, UNSURE, UNLINKED (module docstring) or DAMAGED
    last_seen: list[str] = field(default_factory=list)  # UNSURE: the run directories not where they were seen
    damaged: str = ""  # what is wrong with its records (one line); prune leaves a damaged entry alone

    @property
    def referenced(self) -> bool:
        """Kept by ``prune --unreferenced``: linked, or unsure (a moved run may still link to it), or damaged."""
        return self.links != UNLINKED

    def to_dict(self) -> dict:
        return {"stage": self.stage, "path": str(self.path), "size_bytes": self.size, "last_used": self.last_used,
                "made_from": self.made_from, "referenced": self.referenced, "links": self.links,
                "runs_not_found": self.last_seen, "damaged": self.damaged or None}


class Listing(list):
    """``list_entries``' answer: the entries (a list), and what else the cache folder holds (``foreign``: named,
    left alone); ``exists``: False when the cache folder is not there at all."""

    def __init__(self, root: Path, entries=(), foreign=(), exists: bool = True):
        super().__init__(entries)
        self.root, self.foreign, self.exists = Path(root), list(foreign), exists


def _size(path: Path) -> int:
    total = 0
    for f in path.rglob("*"):
        with contextlib.suppress(OSError):
            if f.is_file() and not f.is_symlink():
                total += f.stat().st_size
    return total


def _made_from(stamp: dict | None, uses: dict) -> str:
    if stamp is None:
        mf = uses.get("made_from")
        return ", ".join(f"{k}={v}" for k, v in mf.items()) if isinstance(mf, dict) else "unknown (no stamp.json)"
    parts = []
    sections = stamp.get("sections")
    for section, values in (sections.items() if isinstance(sections, dict) else ()):
        if isinstance(values, dict):
            parts.append(section + "(" + ", ".join(f"{k}={v}" for k, v in values.items()
                                                   if v not in (None, [], {}, "")) + ")")
    inputs = stamp.get("inputs")
    files = [f"{Path(str(i.get('path'))).name} sha256:{str(i.get('sha256'))[:8]}"
             for i in (inputs if isinstance(inputs, list) else ()) if isinstance(i, dict)]
    if files:
        parts.append("files: " + ", ".join(files))
    if isinstance(stamp.get("upstream"), dict) and stamp["upstream"]:
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
    except (OSError, RuntimeError, ValueError):  # RuntimeError: a symlink loop; ValueError: a NUL in the path
        pass
    return UNSURE


def references(entry: Path, uses: dict) -> tuple[str, list[str]]:
    """(LINKED | UNSURE | UNLINKED, the run directories of the unsure records); ``uses``: ``check_uses``' sound
    values."""
    target = Path(entry).resolve()
    records = [(Path(r["link"]), rid) for rid, r in uses.get("runs", {}).items()]
    records += [(Path(p), None) for p in uses.get("links", [])]
    verdicts = [(_judge(link, target, rid), link) for link, rid in records]
    if any(v == LINKED for v, _ in verdicts):
        return LINKED, []
    unsure = sorted({str(link.parent) for v, link in verdicts if v == UNSURE})
    return (UNSURE, unsure) if unsure else (UNLINKED, [])


def _ours_beside_entries(name: str) -> bool:
    """A name in a stage folder that trigger_kd writes beside its entries: locks, its dot-named temporaries."""
    return name.startswith(".") or bool(_LOCK_NAME.fullmatch(name))


def _scan_stage(stage_dir: Path) -> tuple[list[tuple[Path, Records]], list[Path]]:
    """(the entries of one folder of the cache, what else it holds); a folder with nothing of trigger_kd's in it is
    foreign as a whole."""
    try:
        children = sorted(stage_dir.iterdir())
    except OSError:
        return [], [stage_dir]
    entries, other = [], []
    for child in children:
        records = read_entry(stage_dir, child)
        if records is not None:
            entries.append((child, records))
        elif not _ours_beside_entries(child.name):
            other.append(child)
    if other and not entries and len(other) == len(children):
        return [], [stage_dir]
    return entries, other


def _scan(cache: Path) -> tuple[list[tuple[str, Path, Records]], list[Path]]:
    try:
        tops = sorted(p for p in cache.iterdir() if not p.name.startswith("."))
    except OSError as exc:
        raise TriggerKDError(f"cannot read the cache folder {cache} ({exc.strerror or exc}): make it readable, or "
                             "point TRIGGER_KD_CACHE at another folder") from None
    found, foreign = [], []
    for top in tops:
        if top.name in KNOWN_FILES and top.is_file():
            continue
        if not top.is_dir():
            foreign.append(top)
            continue
        entries, other = _scan_stage(top)
        found += [(top.name, path, records) for path, records in entries]
        foreign += other
    return found, foreign


def list_entries(cache: Path) -> Listing:
    """The entries of the cache folder ``cache`` (only what trigger_kd made: ``read_entry``) and what else it holds."""
    cache = check_cache_root(Path(cache))
    if not cache.is_dir():
        return Listing(cache, exists=False)
    found, foreign = _scan(cache)
    entries: list[Entry] = []
    pools_named = set()
    for p in (p for _, _, r in found for p in r.pools):
        with contextlib.suppress(OSError, RuntimeError, ValueError):
            pools_named.add(str(Path(p).resolve()))
    for stage, path, r in found:
        last = r.uses.get("last_used")
        if last is None and not r.problems:
            with contextlib.suppress(OSError):
                last = path.stat().st_mtime  # no .uses.json: its folder's time
        if stage == POOL_DIR:
            links, unsure = (LINKED if str(path.resolve()) in pools_named else UNLINKED), []
        else:
            links, unsure = references(path, r.uses)
        damaged = "; ".join(r.problems)
        entries.append(Entry(stage, path, _size(path), last, _made_from(r.stamp, r.uses),
                             DAMAGED if damaged else links, [] if damaged else unsure, damaged))
    return Listing(cache, entries, foreign)


# ----------------------------------------------------------------------------- cache list | prune
def _age(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = max(seconds, 0.0)  # a use stamped by a host whose clock is ahead (within CLOCK_SLACK)
    days = seconds / 86400
    return f"{days:.1f} d" if days >= 1 else f"{seconds / 3600:.1f} h"


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def foreign_note(listing: Listing, shown: int = 8) -> str:
    """One line naming what the cache folder holds that trigger_kd did not make ("" when nothing)."""
    if not getattr(listing, "foreign", None):
        return ""
    names = [f"{p.relative_to(listing.root)}{'/' if p.is_dir() and not p.is_symlink() else ''}"
             for p in sorted(listing.foreign, key=lambda p: (len(p.parts), p))]  # the top of the folder first
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return (f"not trigger_kd cache entries, left alone: {', '.join(names[:shown])}{more} (in {listing.root}; "
            "is TRIGGER_KD_CACHE the folder you meant?)")


def damaged_note(e: Entry) -> str:
    return (f"damaged: {e.stage}/{e.path.name}: {e.damaged}; prune leaves it alone (a run's next use rewrites "
            f".uses.json; if no run needs it, remove it by hand: rm -r {e.path})")


def format_entries(entries: list[Entry], now: float | None = None) -> str:
    now = time.time() if now is None else now
    lines = [f"{'stage':8s} {'entry':26s} {'size':>10s} {'unused for':>10s} {'linked':6s} made from"]
    for e in entries:
        age = None if e.last_used is None else now - e.last_used
        lines.append(f"{e.stage:8s} {e.path.name[:26]:26s} {_human(e.size):>10s} {_age(age):>10s} "
                     f"{'moved?' if e.links == UNSURE else e.links:6s} {e.made_from}")
    total = sum(e.size for e in entries)
    lines.append(f"{len(entries)} entries, {_human(total)}")
    lines += [damaged_note(e) for e in entries if e.damaged]
    unsure = [e for e in entries if e.links == UNSURE]
    if unsure:
        lines.append(f"moved?: {len(unsure)} entr{'y' if len(unsure) == 1 else 'ies'} whose runs are not where they "
                     "were last seen (moved or deleted); `prune --unreferenced` keeps them (see `cache prune --help`)")
    if getattr(entries, "exists", True) is False:
        lines.append(f"the cache folder {entries.root} does not exist: nothing is cached yet (or TRIGGER_KD_CACHE "
                     "names another folder)")
    note = foreign_note(entries) if isinstance(entries, Listing) else ""
    return "\n".join(lines + ([note] if note else []))


def _chosen(listing: Listing, older_than_days: float | None, unreferenced: bool, forget_missing: bool) -> list[Entry]:
    """The entries ``prune`` removes; it says what it leaves alone (foreign content, damaged entries)."""
    from .console import warn

    if not listing.exists:
        warn(f"nothing to prune: the cache folder {listing.root} does not exist")
    if listing.foreign:
        warn(foreign_note(listing))
    for e in listing:
        if e.damaged:
            warn(f"kept {damaged_note(e)}")
    now = time.time()
    return [e for e in listing if not e.damaged and (
        (older_than_days is not None and e.last_used is not None and now - e.last_used > older_than_days * 86400)
        or (unreferenced and (e.links == UNLINKED or (forget_missing and e.links == UNSURE))))]


def prune(cache: Path, older_than_days: float | None, unreferenced: bool, dry_run: bool,
          forget_missing: bool = False) -> list[Entry]:
    """Remove entries unused for ``older_than_days`` and/or not referenced (``unreferenced``: UNLINKED ones; with
    ``forget_missing`` UNSURE ones too). Only entries (``read_entry``): what else the folder holds, and damaged
    entries, are left alone and named. Entries in use are kept: every run holds the lock of each cache entry it
    uses (shared) or makes (exclusive) until it ends, and an entry whose lock is held is skipped."""
    from filelock import FileLock, Timeout

    from .console import warn

    if older_than_days is not None and not older_than_days >= 0:
        raise ValueError(f"older_than_days must be 0 or more, got {older_than_days}")
    removed = []
    for e in _chosen(list_entries(cache), older_than_days, unreferenced, forget_missing):
        if dry_run:
            removed.append(e)
            continue
        lock = FileLock(str(e.path.with_name(f"{e.path.name}.lock")))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue  # a run is using it right now
        except OSError as exc:
            warn(f"kept {e.stage}/{e.path.name}: cannot take its lock ({exc.strerror or exc})")
            continue
        try:
            if e.path.is_symlink() or not e.path.is_dir():
                continue  # replaced since it was read: not the entry judged
            shutil.rmtree(e.path)  # removes symlinks inside, never what they point at
            removed.append(e)
        except OSError as exc:
            warn(f"could not remove {e.stage}/{e.path.name} ({exc.strerror or exc}); it may be part-removed: "
                 f"remove it by hand: rm -r {e.path}")
        finally:
            lock.release()
    return removed
