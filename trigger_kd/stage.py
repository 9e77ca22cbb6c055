"""What a stage is and what it is given: ``Stage`` (its declaration), ``RunContext`` (its view of the run
directory) and ``StageError``. The stages import this module, never the runner (``pipeline.py``).

A stage is a plain function ``func(cfg, ctx, out_dir) -> summary``; it reads the outputs of the stages
it ``needs`` through ``ctx.dir(name)`` (nothing else: its stamp follows only those) and writes into
``out_dir``. File names inside stage directories are in ``trigger_kd/rundir.py``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .errors import TriggerKDError
from .rundir import STAMP_FILE

if TYPE_CHECKING:
    from .config import Config


class StageError(TriggerKDError):
    """A stage could not run; the message says what is wrong and what to do."""


@dataclass(frozen=True)
class Stage:
    name: str
    reads: tuple[str, ...]  # config sections, or single keys as "section.key"
    needs: tuple[str, ...]  # upstream stages: the only ones ``ctx.dir`` serves it
    func: Callable[["Config", "RunContext", Path], dict]
    shared: bool = False  # output lives in the content-addressed cache
    help: str = ""
    tools: tuple[str, ...] | Callable[["Config"], tuple[str, ...]] = ()  # fingerprint.TOOLS names it calls
    inputs: Callable[["Config"], list] | None = None  # input files outside the run directory
    # files in the run directory that no stage writes but this stage reads (the tools' results, glob patterns
    # relative to the run directory): their contents are in its stamp, so a new diagnostics.json reruns it
    run_files: tuple[str, ...] = ()

    def code_module(self) -> str:
        return getattr(self.func, "module", None) or self.func.__module__

    def tool_names(self, cfg: "Config") -> tuple[str, ...]:
        return tuple(self.tools(cfg) if callable(self.tools) else self.tools)


@dataclass
class RunContext:
    run_dir: Path
    cache: Path
    progress: bool = True
    stamps: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)  # stage -> hash of its manifest (trigger_kd/manifest.py)
    stage: str | None = None  # the stage running now (None: a context made outside the runner, e.g. a test)
    needs: tuple[str, ...] | None = None  # what it declared; ``dir`` refuses any other stage

    def for_stage(self, stage: Stage) -> "RunContext":
        """The context ``stage`` runs with: the same run directory, cache and stamps, its own ``needs``."""
        return replace(self, stage=stage.name, needs=tuple(stage.needs))

    def dir(self, stage: str) -> Path:
        """Output directory of a completed stage this stage needs (resolving cache links)."""
        if self.needs is not None and stage not in self.needs:
            raise StageError(
                f"stage '{self.stage}' reads the output of stage '{stage}' but does not declare it in its needs "
                f"({', '.join(self.needs) or 'none'}); add '{stage}' to its needs in trigger_kd/stages/__init__.py "
                f"so that its stamp follows that stage"
            )
        path = self.run_dir / stage
        if not (path / STAMP_FILE).is_file():
            raise StageError(
                f"stage '{stage}' has no completed output in {self.run_dir}; "
                f"run `trigger-kd run CONFIG --to {stage} --run-dir {self.run_dir}` first"
            )
        return path.resolve()
