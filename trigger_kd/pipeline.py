"""The stage runner.

Each stage is a plain function ``func(cfg, ctx, out_dir) -> summary`` that reads
only what earlier stages wrote (``ctx.dir(stage)``) and writes into ``out_dir``,
a fresh temporary directory. The runner stamps each stage with a hash of the
config sections it reads plus the stamps of the stages it needs; a stage whose
stamp matches the one on disk is skipped. Outputs are swapped in atomically:
an interrupted or failed stage leaves the previous result untouched.

Shared, expensive stages (data, teacher) live in a content-addressed cache
(``$TRIGGER_KD_CACHE``, default ``~/.cache/trigger_kd``) keyed by their stamp;
the run directory holds a symlink, so several model configs reuse them.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import __version__
from .config import Config, dump_config, stamp_of
from .console import info, warn
from .errors import TriggerKDError

STAMP_FILE = "stamp.json"


class StageError(TriggerKDError):
    """A stage could not run; the message says what is wrong and what to do."""


@dataclass(frozen=True)
class Stage:
    name: str
    reads: tuple[str, ...]  # config sections
    needs: tuple[str, ...]  # upstream stages
    func: Callable[["Config", "RunContext", Path], dict]
    shared: bool = False  # output lives in the content-addressed cache
    always: bool = False  # also reads outside the run directory (sibling runs): cheap, so rerun every time
    help: str = ""


def cache_root() -> Path:
    env = os.environ.get("TRIGGER_KD_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "trigger_kd"


@dataclass
class RunContext:
    run_dir: Path
    cache: Path
    progress: bool = True
    stamps: dict[str, str] = field(default_factory=dict)

    def dir(self, stage: str) -> Path:
        """Output directory of a completed stage (resolving cache links)."""
        path = self.run_dir / stage
        if not (path / STAMP_FILE).is_file():
            raise StageError(
                f"stage '{stage}' has no completed output in {self.run_dir}; "
                f"run `trigger-kd run CONFIG --to {stage} --run-dir {self.run_dir}` first"
            )
        return path.resolve()


def _read_stamp(path: Path) -> dict | None:
    try:
        return json.loads((path / STAMP_FILE).read_text())
    except (OSError, ValueError):
        return None


def compute_stamp(stage: Stage, cfg: Config, upstream: dict[str, str]) -> str:
    return stamp_of(
        stage.name,
        __version__,
        {s: cfg.section(s) for s in stage.reads},
        {n: upstream[n] for n in stage.needs},
    )


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
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.resolved.yml").write_text(dump_config(cfg))
    ctx = RunContext(run_dir=run_dir, cache=cache_root(), progress=progress)
    results: dict[str, dict] = {}
    for i, stage in enumerate(stages[: last + 1]):
        stamp = compute_stamp(stage, cfg, ctx.stamps)
        ctx.stamps[stage.name] = stamp
        final = run_dir / stage.name
        if first_forced is not None and i < first_forced:
            existing = _read_stamp(final)
            if existing is None:
                raise StageError(
                    f"--from {start}: stage '{stage.name}' has no output in {run_dir}; "
                    f"run without --from first"
                )
            if existing.get("stamp") != stamp:
                warn(f"{stage.name}: config changed since it ran; using the existing output because of --from")
            ctx.stamps[stage.name] = existing["stamp"]
            continue
        forced = first_forced is not None and i >= first_forced
        existing = _read_stamp(final)
        if not forced and not stage.always and existing and existing.get("stamp") == stamp:
            info(f"[{stage.name}] up to date (stamp {stamp[:12]}), skipped")
            results[stage.name] = existing.get("summary", {})
            continue
        if stage.shared:
            home = ctx.cache / stage.name / stamp[:24]
            cached = _read_stamp(home)
            if not forced and cached and cached.get("stamp") == stamp:
                info(f"[{stage.name}] found in cache {home}, reused")
                _link(home, final)
                results[stage.name] = cached.get("summary", {})
                continue
            home.parent.mkdir(parents=True, exist_ok=True)
            dest = home
        else:
            dest = final
        tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        info(f"[{stage.name}] running -> {final}")
        t0 = time.time()
        try:
            summary = stage.func(cfg, ctx, tmp.resolve()) or {}  # absolute: tools may run in other directories
        except BaseException as exc:
            _keep_failed(tmp, final, exc)
            raise
        record = {
            "stage": stage.name,
            "stamp": stamp,
            "config": cfg.source_file,
            "sections": {s: json.loads(json.dumps(_plain(cfg.section(s)))) for s in stage.reads},
            "upstream": {n: ctx.stamps[n] for n in stage.needs},
            "seconds": round(time.time() - t0, 2),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "summary": summary,
        }
        (tmp / STAMP_FILE).write_text(json.dumps(record, indent=2, default=str))
        _swap_in(tmp, dest)
        if stage.shared:
            _link(dest, final)
        info(f"[{stage.name}] done in {record['seconds']:.1f} s")
        results[stage.name] = summary
    return results


def _keep_failed(tmp: Path, final: Path, exc: BaseException) -> None:
    """Move a failed stage's partial output aside for inspection; the previous result stays."""
    if isinstance(exc, KeyboardInterrupt) or not tmp.exists() or not any(tmp.iterdir()):
        shutil.rmtree(tmp, ignore_errors=True)
        return
    failed = final.with_name(f"{final.name}.failed")
    if failed.exists():
        shutil.rmtree(failed, ignore_errors=True)
    shutil.move(str(tmp), str(failed))
    warn(f"[{final.name}] failed; its partial output is kept in {failed} for inspection")


def _plain(obj):
    from .config import to_plain

    return to_plain(obj)



