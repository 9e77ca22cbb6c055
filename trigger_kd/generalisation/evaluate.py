"""`trigger-kd evaluate RUN_DIR --on CONFIG_OR_DATA`: a run's models on another task's jets.

``--on`` is a model YAML (its data stage runs, cached as usual, with ``--set`` overrides;
its test split is scored), a data or run directory (its ``test.h5``) or a canonical jet file
(all its jets). The jets pass the data stage's checks first (``inputs.read_scored_jets``: one line,
exit 2, nothing written). Jets that the run learnt from (training, validation, transfer jets; the
same leading constituents, in any order) are left out, so a task sharing a class pool with the run
(W vs gluon and Z vs gluon share the gluon jets) is scored on unseen jets only. Writes
``RUN_DIR/evaluate/NAME.json``: accuracy, AUC, 1/eB at 30 % and 50 % signal efficiency of the
teacher, quantised student and float twin, with the task, the jets per class, where they came
from and the checks' warnings.

This module does not run the pipeline: for an ``--on`` model YAML the caller passes ``run_data``,
which runs that config's data stage (the CLI's ``trigger_kd.cli.run_data_stage``).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from ..errors import TriggerKDError
from ..rundir import DATA, EVALUATE_DIR, split_file
from .inputs import refuse_k_classes, unseen_mask

__all__ = ["RunData", "check_arguments", "evaluate_run", "resolve_jets", "unseen_mask"]

if TYPE_CHECKING:
    from ..config import Config

# (config of the --on YAML, run directory, progress) -> that config's completed data directory
RunData = Callable[["Config", Path, bool], Path]

_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")


def _test_file(path: Path) -> Path:
    for candidate in (path / split_file("test"), path / DATA / split_file("test")):
        if candidate.is_file():
            return candidate
    raise TriggerKDError(f"--on {path}: a directory without test.h5 or data/test.h5; give a data or run "
                         "directory, a canonical jet file or a model YAML")


def check_arguments(on: str, name: str | None, overrides: list[str]) -> Path:
    """``--on`` (an existing path), ``--name`` (a file name) and ``--set`` (for an --on model YAML only), checked
    before any work; the path of ``on``."""
    if name is not None and not (isinstance(name, str) and _NAME.match(name)):
        raise TriggerKDError(f"--name {name!r}: use letters, digits and . _ + - only (it becomes a file name)")
    if not isinstance(on, (str, Path)) or not str(on).strip():
        raise TriggerKDError(f"--on {on!r}: give a model YAML, a data or run directory or a canonical .h5")
    path = Path(on)
    if not path.exists():
        raise TriggerKDError(f"--on {on}: not found; give a model YAML, a data or run directory or a canonical .h5")
    if overrides and path.suffix not in (".yml", ".yaml"):
        raise TriggerKDError("--set applies to an --on model YAML only; the jets of a data file are fixed")
    return path


def resolve_jets(on: str, overrides: list[str], work_dir: Path, progress: bool = True,
                 run_data: RunData | None = None) -> tuple[Path, dict, str]:
    """(canonical file to score, description of where it came from, default name).

    A model YAML's jets come from its data stage, which ``run_data`` runs (in ``work_dir/<task>``)."""
    from ..classes import describe

    path = check_arguments(on, None, overrides)
    if path.suffix in (".yml", ".yaml"):
        from ..config import load_config

        cfg = load_config(path, overrides)
        if run_data is None:
            raise TriggerKDError(f"--on {on}: a model YAML's jets come from its data stage, and nothing was given "
                                 "to run it; use `trigger-kd evaluate` (or pass run_data=trigger_kd.cli.run_data_stage)")
        if cfg.data.task.multiclass:  # known from the config: refused before its data stage makes the jets
            refuse_k_classes(cfg.data.task.outputs, path, "task", "a model YAML of a binary task (data.signal and "
                             "data.background, no data.classes)")
        task = describe(cfg.data.signal, cfg.data.background)
        name = task.replace(" vs ", "_vs_")
        data = Path(run_data(cfg, work_dir / name, progress)).resolve()
        return data / split_file("test"), {"config": str(path), "set": list(overrides), "task": task, "split": "test",
                                  "data_dir": str(data)}, name
    if path.is_dir():
        test = _test_file(path)
        return test, {"data_dir": str(test.parent.resolve()), "split": "test"}, path.resolve().name
    return path, {"file": str(path.resolve()), "split": "all jets of the file"}, path.stem


def evaluate_run(run_dir: Path, on: str, name: str | None = None, overrides: list[str] | tuple[str, ...] = (),
                 progress: bool = True, run_data: RunData | None = None) -> dict:
    """Score the run's models on the jets ``on`` names; write and return ``RUN_DIR/evaluate/NAME.json``.
    ``run_data`` runs the data stage of an ``on`` model YAML (``resolve_jets``)."""
    from ..atomic import write_text_atomic
    from ..console import info, warn
    from ..classes import describe
    from ..report.records import evaluation_problems, why
    from ..train.metrics import binary_metrics
    from .inputs import read_scored_jets
    from .run_models import MODELS, RunModels

    check_arguments(on, name, list(overrides))
    run_dir = Path(run_dir)
    models = RunModels(run_dir)
    out_dir = run_dir / EVALUATE_DIR
    path, source, default_name = resolve_jets(on, list(overrides), out_dir / "data", progress=progress,
                                              run_data=run_data)
    name = name or default_name
    seen = models.trained_on()
    c, y, names, warnings = read_scored_jets(path, *models.reads(seen[:2]))
    for w in warnings:
        warn(w)
    keep = unseen_mask(c, seen)
    c, y, names = c[keep], y[keep], names[keep]
    if len(np.unique(y)) < 2:
        raise TriggerKDError(f"{path}: after leaving out the jets the run learnt from, {len(y)} jets remain with "
                             f"labels {sorted(set(y.tolist()))}: both signal and background jets are needed")
    scores = models.scores(c)
    cfg = models.cfg
    result = {
        "name": name,
        "run_dir": str(run_dir),
        "run_task": describe(cfg.data.signal, cfg.data.background),
        "task": source.get("task") or _task_of(names, y),
        "on": source,
        "n_jets": int(len(y)),
        "n_left_out_training_jets": int((~keep).sum()),
        "classes": {str(k): int((names == k).sum()) for k in sorted(set(names.tolist()))},
        **{m: binary_metrics(y, scores[m]) for m in MODELS},  # as the student stage's metrics.json
        "warnings": warnings,  # what the data stage's checks found borderline in the jets (data/sanity.py)
        "source": f"{len(y)} jets of {path} (signal = is_signal 1), the run's training, validation and transfer "
                  "jets left out",
        "made_from": models.made_from,  # the stages' outputs it was computed from (runcheck.stale_result)
    }
    problems = evaluation_problems(result)  # what its reader would refuse is never written
    if problems:
        raise TriggerKDError(f"{path}: the run's models give no valid figures on these jets ({why(problems)}); "
                             f"nothing written to {out_dir / (name + '.json')}")
    write_text_atomic(out_dir / f"{name}.json", json.dumps(result, indent=2, default=float))
    info(f"[evaluate] {result['run_task']} run on {result['task']} ({len(y)} jets): "
         + "; ".join(f"{m} AUC {result[m]['auc']:.4f}" for m in MODELS) + f" -> {out_dir / (name + '.json')}")
    return result


def _task_of(names: np.ndarray, y: np.ndarray) -> str:
    from ..classes import describe

    return describe(sorted(set(names[y == 1].tolist())), sorted(set(names[y == 0].tolist())))
