"""The stage runner.

Each stage is a plain function ``func(cfg, ctx, out_dir) -> summary`` that reads
only what the stages it needs wrote (``ctx.dir(stage)``, ``trigger_kd/stage.py``) and
writes into ``out_dir``, a fresh temporary directory. The runner stamps each stage with a hash of the
config sections it reads plus the stamps of the stages it needs; a stage whose
stamp matches the one on disk is skipped. Outputs are swapped in atomically:
an interrupted or failed stage leaves the previous result untouched. Before an attempt starts any work the runner
writes ``<stage>.attempt.json`` (atomically) and removes it only when the attempt ends: by its success, or once
its failure or interrupt is recorded in ``<stage>.failed/FAILED.json``. So an attempt killed outright (SIGKILL)
is seen as unfinished by every tool and by the next run, exactly as one stopped by SIGTERM, and the next run
that completes the stage (or finds it up to date) clears the mark.

Stamps also cover the stage's code, the versions of the tools it calls and the
content of its input files (``trigger_kd/fingerprint.py``). Each completed stage
directory holds ``stamp.json`` (what it was made from) and ``config.resolved.yml``
(the full resolved config of the run that made it); ``trigger_kd/rundir.py`` names
every file of the run directory. Only the CLI imports this module.

Shared, expensive stages (data, teacher) live in a content-addressed cache
(``$TRIGGER_KD_CACHE``, default ``~/.cache/trigger_kd``) keyed by their stamp;
the run directory holds a symlink, so several model configs reuse them.
A run holds a lock on its run directory and on each cache entry it makes: a second
run waits, then reuses the result (``trigger_kd/concurrency.py``).
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from . import __version__
from .atomic import write_text_atomic
from .cache import cache_root, note_use
from .concurrency import EntryHold, remove_dead_leftovers, waiting_lock
from .config import Config, dump_config, stamp_of, to_plain
from .console import info, warn
from .errors import TriggerKDError
from .fingerprint import code_fingerprint, file_identity, identity_key, sha256_file, tool_versions
from .manifest import adopt, output_problem, write_manifest
from .rundir import (FAILED_FILE, RESOLVED_CONFIG, RUN_LOCK, STAMP_FILE, attempt_file, check_run_dir, failed_dir,
                     last_attempt_failed, mark_run_dir, read_stamp)
from .stage import RunContext, Stage, StageError

# Stage, RunContext and StageError live in stage.py, file names and read_stamp in rundir.py (the stages and the
# tools import those, never this module); they are imported here for the runner and its callers.
__all__ = ["FAILED_FILE", "RESOLVED_CONFIG", "RUN_LOCK", "STAMP_FILE", "RunContext", "Stage", "StageError",
           "cache_root", "compute_stamp", "is_environment_error", "last_attempt_failed", "read_stamp", "run_pipeline",
           "stage_dependencies"]
# OS errors that mean "the environment cannot hold the results", reported as messages, not tracebacks
_ENV_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EFBIG}


def config_part(cfg: Config, name: str):
    """A config section ("student") or one key of it ("distill.augment_views")."""
    section, _, key = name.partition(".")
    value = cfg.section(section)
    return getattr(value, key) if key else value


def stage_dependencies(stage: Stage, cfg: Config, cache: Path | None, run_dir: Path | None = None) -> dict:
    """What the stage's result depends on besides config and upstream stamps: code, tools, input files, and the
    tools' result files in the run directory it reads (``Stage.run_files``; by name and content, not by path)."""
    code = code_fingerprint(stage.code_module())
    return {
        "code": code["sha256"],
        "code_modules": code["modules"],
        "code_native": code["native"],
        "tools": tool_versions(stage.tool_names(cfg)),
        "inputs": [file_identity(p, cache) for p in (stage.inputs(cfg) if stage.inputs else [])],
        "run_files": run_file_hashes(run_dir, stage.run_files) if run_dir is not None else {},
    }


def run_file_hashes(run_dir: Path, patterns: tuple[str, ...]) -> dict[str, str]:
    """{name relative to the run directory: SHA-256} of the files matching ``patterns``."""
    run_dir = Path(run_dir)
    found = {p for pattern in patterns for p in run_dir.glob(pattern) if p.is_file()}
    return {p.relative_to(run_dir).as_posix(): sha256_file(p) for p in sorted(found)}


def compute_stamp(stage: Stage, cfg: Config, upstream: dict[str, str], deps: dict | None = None) -> str:
    deps = deps if deps is not None else stage_dependencies(stage, cfg, None)
    return stamp_of(
        stage.name,
        __version__,
        {s: config_part(cfg, s) for s in stage.reads},
        {n: upstream[n] for n in stage.needs},
        deps["code"],
        deps["tools"],
        [identity_key(i) for i in deps["inputs"]],
        *([deps["run_files"]] if deps.get("run_files") else []),  # absent: the stamps of runs before run_files
    )


def prepare_dir(path: Path, what: str, hint: str) -> Path:
    """Create ``path`` and prove it can hold files, or raise a StageError saying what is wrong."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise StageError(f"{what} {path} is an existing file, not a directory; {hint}")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise StageError(f"cannot write to {what} {path} ({exc.strerror or exc}); {hint}") from None
    return path


def _swap_in(tmp: Path, final: Path) -> None:
    """Replace ``final`` by ``tmp`` so that at no time a half-written result is visible."""
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.is_symlink():
        final.unlink()
    elif final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)


def _link(target: Path, link: Path) -> None:
    tmp_link = link.with_name(f".{link.name}.link-{os.getpid()}")
    if tmp_link.is_symlink() or tmp_link.exists():
        tmp_link.unlink()
    tmp_link.symlink_to(target, target_is_directory=True)
    if link.exists() and not link.is_symlink():
        old = link.with_name(f".{link.name}.old-{os.getpid()}")
        os.replace(link, old)
        shutil.rmtree(old, ignore_errors=True)
    os.replace(tmp_link, link)
    note_use(target, link)


def run_pipeline(
    cfg: Config,
    stages: list[Stage],
    run_dir: Path,
    to: str | None = None,
    start: str | None = None,
    progress: bool = True,
) -> dict[str, dict]:
    """Run ``stages`` in order up to ``to``; ``start`` forces a rerun from that stage on."""
    names = [s.name for s in stages]
    for given in (to, start):
        if given is not None and given not in names:
            raise StageError(f"unknown stage '{given}'; stages are: {', '.join(names)}")
    last = names.index(to) if to else len(names) - 1
    first_forced = names.index(start) if start else None
    if first_forced is not None and first_forced > last:
        raise StageError(f"--from {start} comes after --to {to}")
    claim = check_run_dir(Path(run_dir), names)
    for n in names[: first_forced or 0]:  # refused before the run directory is made: nothing left behind
        if not (Path(run_dir) / n).exists():
            raise _no_output(start, n, run_dir)
    run_dir = prepare_dir(Path(run_dir), "run directory", "choose another --run-dir")
    with waiting_lock(run_dir / RUN_LOCK, f"run directory {run_dir}") as waited, contextlib.ExitStack() as holds:
        if waited:
            info(f"the other run on {run_dir} finished; continuing (its completed stages are reused)")
        mark_run_dir(run_dir, claim)
        remove_dead_leftovers(run_dir, run_lock_held=True)  # we hold the run lock: no other run is working here
        ctx = RunContext(run_dir=run_dir, cache=cache_root(), progress=progress)
        return _run_stages(cfg, stages[: last + 1], ctx, first_forced, start, holds)


def _why_rerun(stage: Stage, final: Path, stamp: str, ctx: RunContext, where: str = "") -> str | None:
    """None when ``final`` holds this stage's result, complete and unchanged, made from the outputs its needs
    hold now; else why it must run ("" when it simply has no result at these settings)."""
    existing = read_stamp(final)
    if existing is None or existing.get("stamp") != stamp:
        return ""
    problem = output_problem(final, stage.name)
    if problem:
        return problem + where
    made_from = existing.get("upstream_outputs")
    if "outputs" not in existing or made_from is None:  # made before manifests: record its outputs now
        adopt(final, {n: ctx.outputs[n] for n in stage.needs})
        return None
    for n in stage.needs:
        if made_from.get(n) != ctx.outputs.get(n):
            return f"the {n} stage's output changed since this {stage.name} result was made{where}"
    return None


def _no_output(start: str, stage: str, run_dir: Path) -> StageError:
    return StageError(f"--from {start}: stage '{stage}' has no output in {run_dir}; run without --from first")


def _forced_earlier(stage: Stage, final: Path, stamp: str, ctx: RunContext, start: str) -> None:
    """A stage before ``--from``: used as it is, if it is complete."""
    existing = read_stamp(final)
    if existing is None:
        raise _no_output(start, stage.name, ctx.run_dir)
    problem = output_problem(final, stage.name)
    if problem:
        raise StageError(f"--from {start}: {problem}; run without --from (it reruns that stage) first")
    if existing.get("stamp") != stamp:
        warn(f"{stage.name}: config or code changed since it ran; using the existing output because of --from")
    ctx.stamps[stage.name] = existing["stamp"]
    ctx.outputs[stage.name] = existing.get("outputs") or adopt(final, {})


def _run_stages(cfg: Config, stages: list[Stage], ctx: RunContext, first_forced: int | None,
                start: str | None, holds: contextlib.ExitStack) -> dict[str, dict]:
    run_dir = ctx.run_dir
    results: dict[str, dict] = {}
    for i, stage in enumerate(stages):
        deps = stage_dependencies(stage, cfg, ctx.cache if stage.inputs else None, run_dir)
        final = run_dir / stage.name
        stamp = _as_spelled_before(stage, cfg, ctx, deps, compute_stamp(stage, cfg, ctx.stamps, deps), final)
        ctx.stamps[stage.name] = stamp
        if first_forced is not None and i < first_forced:
            if final.is_symlink():
                _hold(holds, final.resolve()).share()
            _forced_earlier(stage, final, stamp, ctx, start)
            continue
        forced = first_forced is not None and i >= first_forced
        unfinished = last_attempt_failed(final, running=False)  # we hold the run lock: no other attempt runs here
        if unfinished is not None:
            info(f"[{stage.name}] the last attempt did not finish ({unfinished.get('error')}, "
                 f"{unfinished.get('time')}; {unfinished.get('see') or failed_dir(final).name + '/'})")
        if stage.shared:
            results[stage.name] = _shared_stage(stage, cfg, ctx, stamp, deps, forced, holds)
            continue
        why = "" if forced else _why_rerun(stage, final, stamp, ctx)
        if why is None:
            results[stage.name] = _up_to_date(stage, final, stamp, ctx)
            continue
        if why:
            info(f"[{stage.name}] {why}; rerunning")
        results[stage.name] = _run_one(stage, cfg, ctx, stamp, deps, final, final)
    return results


def _as_spelled_before(stage: Stage, cfg: Config, ctx: RunContext, deps: dict, stamp: str, final: Path) -> str:
    """``stamp``, or the stamp of the result at ``final`` when that result was made from the same settings with the
    input paths (``config.PATH_KEYS``) spelled relative, as configs were stamped before paths were made absolute at
    load time (issue 35): the same files then, so the same result; no stage reruns for a spelling. Safe because the
    stamp compared is recomputed in full from the old spelling: input files by resolved path and content, upstream
    stamps, code and tools must all still agree."""
    from .config import PATH_KEYS

    existing = read_stamp(final)
    if existing is None or existing.get("stamp") in (None, stamp):
        return stamp
    recorded = existing.get("sections") or {}
    update: dict = {}
    for section, key in PATH_KEYS:
        if section in stage.reads:
            old = (recorded.get(section) or {}).get(key) if isinstance(recorded.get(section), dict) else None
        elif f"{section}.{key}" in stage.reads:
            old = recorded.get(f"{section}.{key}")
        else:
            continue
        new = list(getattr(cfg.section(section), key))
        if not isinstance(old, list) or len(old) != len(new) or old == new:
            continue
        if all(o == n or (isinstance(o, str) and not Path(o).is_absolute() and Path(o).parts
                          and Path(n).parts[-len(Path(o).parts):] == Path(o).parts) for o, n in zip(old, new)):
            update[section] = getattr(cfg, section).model_copy(update={key: tuple(old)})
    if not update:
        return stamp
    before = compute_stamp(stage, cfg.model_copy(update=update), ctx.stamps, deps)
    return before if before == existing["stamp"] else stamp


def _up_to_date(stage: Stage, final: Path, stamp: str, ctx: RunContext) -> dict:
    info(f"[{stage.name}] up to date (stamp {stamp[:12]}), skipped")
    _remove_failed(final)  # a failed attempt at other settings no longer describes this run
    existing = read_stamp(final) or {}
    ctx.outputs[stage.name] = existing.get("outputs", "")
    return existing.get("summary", {})


def _hold(holds: contextlib.ExitStack, entry: Path) -> EntryHold:
    hold = EntryHold(entry.with_name(f"{entry.name}.lock"), f"cache entry {entry}")
    holds.callback(hold.release)
    return hold


def _shared_stage(stage: Stage, cfg: Config, ctx: RunContext, stamp: str, deps: dict, forced: bool,
                  holds: contextlib.ExitStack) -> dict:
    """A stage whose result lives in the cache: reuse the entry (holding it shared, so that `cache prune` and
    other runs leave it alone while this run uses it), or make it (holding it exclusively) and link to it."""
    final = ctx.run_dir / stage.name
    parent = prepare_dir(ctx.cache / stage.name, "cache directory", "set TRIGGER_KD_CACHE to a writable directory")
    remove_dead_leftovers(parent)
    home = parent / stamp[:24]
    label = f" (cache entry {home})"
    hold = _hold(holds, home)
    waited = hold.share()
    why = "" if forced else _why_rerun(stage, home, stamp, ctx, label)
    if why is not None:
        waited = hold.exclusive() or waited  # runs using the entry finish first: it is not replaced under them
        if waited and not forced:
            why = _why_rerun(stage, home, stamp, ctx, label)  # another run may have made or repaired it meanwhile
        if why is not None:
            if why:
                info(f"[{stage.name}] {why}; rerunning")
            summary = _run_one(stage, cfg, ctx, stamp, deps, home, final)
            hold.share()
            return summary
        hold.share()
    if final.is_symlink() and final.resolve() == home.resolve():
        summary = _up_to_date(stage, final, stamp, ctx)
        note_use(home, final)  # `cache prune --older-than` counts this as a use
        return summary
    info(f"[{stage.name}] {'made by the run we waited for' if waited else 'found in cache'}: {home}, reused")
    _link(home, final)
    _remove_failed(final)
    existing = read_stamp(home) or {}
    ctx.outputs[stage.name] = existing.get("outputs", "")
    return existing.get("summary", {})


def _run_one(stage: Stage, cfg: Config, ctx: RunContext, stamp: str, deps: dict, dest: Path, final: Path) -> dict:
    """Run one stage into a temporary directory, then swap it in at ``dest`` (linked from ``final``)."""
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    t0 = time.time()
    working = False
    try:
        _begin_attempt(stage, final, stamp, cfg)  # before any work: a SIGKILL from here on leaves this mark
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        working = True  # from here until the swap, the attempt's work lives in tmp
        info(f"[{stage.name}] running -> {final}")
        summary = stage.func(cfg, ctx.for_stage(stage), tmp.resolve()) or {}  # absolute: tools may run in other directories
        record = {
            "stage": stage.name,
            "stamp": stamp,
            "config": cfg.source_file,
            "sections": {s: json.loads(json.dumps(to_plain(config_part(cfg, s)))) for s in stage.reads},
            "upstream": {n: ctx.stamps[n] for n in stage.needs},
            **deps,
            "seconds": round(time.time() - t0, 2),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "summary": summary,
        }
        (tmp / RESOLVED_CONFIG).write_text(dump_config(cfg))
        record["upstream_outputs"] = {n: ctx.outputs[n] for n in stage.needs}
        record["outputs"] = write_manifest(tmp)
        (tmp / STAMP_FILE).write_text(json.dumps(record, indent=2, default=str))
        _swap_in(tmp, dest)
        working = False
        if stage.shared:
            _link(dest, final)
    except BaseException as exc:
        vanished = working and isinstance(exc, OSError) and not tmp.exists()
        _keep_failed(tmp, final, stamp, exc)
        _point_at_kept(exc, tmp, final)
        if is_environment_error(exc):
            raise StageError(_environment_message(stage.name, exc, final)) from None
        if vanished:  # e.g. removed by hand, or by a tool that judged it a leftover: a message, not a traceback
            raise StageError(f"stage '{stage.name}' stopped: its temporary directory {tmp} disappeared while it ran "
                             f"({type(exc).__name__}: {exc}); nothing was swapped in and earlier results are kept. "
                             "Did something remove it? Rerun the same command") from None
        raise
    _remove_failed(final)  # the attempt ended well: its mark and an older failed attempt go
    ctx.outputs[stage.name] = record["outputs"]
    info(f"[{stage.name}] done in {record['seconds']:.1f} s")
    return summary


_FULL = ("No space left on device", "Disk quota exceeded", "errno = 28,")  # h5py/HDF5 put errno in the text


def is_environment_error(exc: BaseException) -> bool:
    """A full disk or a write refused by the file system (HDF5 reports these as RuntimeError text)."""
    if isinstance(exc, OSError) and exc.errno in _ENV_ERRNOS:
        return True
    return isinstance(exc, (OSError, RuntimeError)) and any(t in str(exc) for t in _FULL)


def _environment_message(stage: str, exc: BaseException, final: Path) -> str:
    import re

    filename = getattr(exc, "filename", None)
    if filename is None:
        m = re.search(r"filename = '([^']+)'", str(exc))
        filename = m.group(1) if m else None
    where = f" ({filename})" if filename else ""
    if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) or any(t in str(exc) for t in _FULL):
        what = "the disk is full"
        todo = "free space there (or point --run-dir / TRIGGER_KD_CACHE at a bigger file system) and rerun"
    else:
        what = f"a file could not be written: {getattr(exc, 'strerror', None) or exc}"
        todo = "make that location writable (or choose another --run-dir / TRIGGER_KD_CACHE) and rerun"
    return (f"stage '{stage}' stopped: {what}{where}; {todo}. Earlier results are kept; "
            f"see {failed_dir(final)} for what this attempt wrote")


def _point_at_kept(exc: BaseException, tmp: Path, final: Path) -> None:
    """A stage's error may name files (logs) in its temporary directory, now moved to ``<stage>.failed/``."""
    failed = failed_dir(final)
    if (isinstance(exc, TriggerKDError) and exc.args and isinstance(exc.args[0], str)
            and not tmp.exists() and failed.is_dir()):
        exc.args = (exc.args[0].replace(str(tmp.resolve()), str(failed.resolve())), *exc.args[1:])


def _begin_attempt(stage: Stage, final: Path, stamp: str, cfg: Config) -> None:
    """Write ``<stage>.attempt.json`` (atomically) before the attempt does anything: it stays until the attempt has
    ended and said how (``_remove_failed`` on success, ``_keep_failed`` on a failure or an interrupt)."""
    import socket

    write_text_atomic(attempt_file(final), json.dumps({
        "stage": stage.name,
        "stamp": stamp,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "config": cfg.source_file,
    }, indent=2))


def _remove_failed(final: Path) -> None:
    """A result at the current settings (made now, up to date, or reused) makes an old ``<stage>.failed/`` and the
    mark of an unfinished attempt obsolete."""
    failed = failed_dir(final)
    if failed.exists():
        shutil.rmtree(failed, ignore_errors=True)
    attempt_file(final).unlink(missing_ok=True)


def _keep_failed(tmp: Path, final: Path, stamp: str, exc: BaseException) -> None:
    """Move a failed stage's partial output aside for inspection; the previous result stays.

    ``<stage>.failed/FAILED.json`` records that the latest attempt did not finish (also after an
    interrupt), so ``check-parity`` does not accept the previous result as current.
    """
    failed = failed_dir(final)
    interrupted = isinstance(exc, KeyboardInterrupt)
    try:
        if failed.exists():
            shutil.rmtree(failed, ignore_errors=True)
        if interrupted or not tmp.exists() or not any(tmp.iterdir()):
            shutil.rmtree(tmp, ignore_errors=True)
            failed.mkdir(parents=True, exist_ok=True)
        else:
            shutil.move(str(tmp), str(failed))
            warn(f"[{final.name}] failed; its partial output is kept in {failed} for inspection")
        write_text_atomic(failed / FAILED_FILE, json.dumps({
            "stage": final.name,
            "stamp": stamp,
            "error": "interrupted" if interrupted else f"{type(exc).__name__}: {exc}",
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "pid": os.getpid(),
        }, indent=2))
        attempt_file(final).unlink(missing_ok=True)  # FAILED.json now says how the attempt ended
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # e.g. a full disk: do not hide the original error (the attempt
        # record stays: the attempt still reads as unfinished)




