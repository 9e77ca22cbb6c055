"""Do the stages of a run directory still describe one run? What the tools check before they read it.

``check-parity``, ``report``, ``evaluate`` and ``diagnose`` combine files of several stages. Each stage's
``stamp.json`` names the stamps (``upstream``) and output hashes (``upstream_outputs``) of the stages it was made
from, and its ``manifest.json`` every file it wrote (``trigger_kd/manifest.py``). ``chain_problems`` walks from
the stages a tool reads up through everything they were made from and lists what no longer agrees: a missing
stage, a damaged or edited output, a stage rerun after the ones made from it, a last attempt that failed, was interrupted or was killed (its
``<stage>.attempt.json``, written before the attempt began, is still there: ``rundir.last_attempt_failed``).
``require_chain`` turns that into one error naming the stage and a command that reruns it (the runner itself
reruns damaged stages and everything made from an older output).
"""
from __future__ import annotations

from pathlib import Path

from .errors import TriggerKDError
from .manifest import output_problem
from .rundir import DATA, RESOLVED_CONFIG, STAGE_NAMES, STUDENT, TEACHER, last_attempt_failed, read_stamp

RESULT_STAGES = (DATA, TEACHER, STUDENT)  # what `evaluate` and `diagnose` results are made from (their made_from)


class StaleRun(TriggerKDError):
    """The stages of a run directory do not describe one run; the message names the stage and the rerun."""


def chain_problems(run_dir: Path, stages: list[str] | tuple[str, ...]) -> list[tuple[str, str]]:
    """(stage to rerun, why) for ``stages`` of ``run_dir`` and every stage they were made from."""
    run_dir = Path(run_dir)
    problems: list[tuple[str, str]] = []
    todo, seen = list(stages), set()
    while todo:
        stage = todo.pop(0)
        if stage in seen:
            continue
        seen.add(stage)
        stamp = read_stamp(run_dir / stage)
        if stamp is None:
            problems.append((stage, f"the {stage} stage has not completed in {run_dir}"))
            continue
        damage = output_problem(run_dir / stage, stage)
        if damage:
            problems.append((stage, damage))
            continue
        made_from = stamp.get("upstream_outputs")
        for up, built_from in (stamp.get("upstream") or {}).items():
            now = read_stamp(run_dir / up)
            if now is None:
                problems.append((up, f"the {up} stage has no completed output in {run_dir}"))
            elif now.get("stamp") != built_from or (made_from is not None and made_from.get(up) != now.get("outputs")):
                problems.append((stage, f"the {up} stage was rerun (finished {now.get('finished')}) after the {stage} "
                                        f"stage was made from its earlier output"))
            todo.append(up)
        failed = last_attempt_failed(run_dir / stage)
        if failed is not None:
            see = failed.get("see") or f"{stage}.failed/"
            problems.append((stage, f"the latest {stage} run did not finish ({failed.get('error')}, "
                                    f"{failed.get('time')}; see {see}), so {stage}/ is from an earlier run"))
    order = {s: i for i, s in enumerate(STAGE_NAMES)}
    return sorted(problems, key=lambda p: order.get(p[0], len(order)))  # the earliest stage to rerun first


def rerun_command(run_dir: Path, stage: str) -> str:
    """A command that reruns ``stage`` (and what follows it) in ``run_dir``: with the config of its latest run."""
    run_dir = Path(run_dir)
    configs = [run_dir / s / RESOLVED_CONFIG for s in STAGE_NAMES if (run_dir / s / RESOLVED_CONFIG).is_file()]
    newest = max(configs, key=lambda p: p.stat().st_mtime_ns, default=None)
    config = str(newest) if newest is not None else "CONFIG"
    to = "" if read_stamp(run_dir / stage) is not None else f" --to {stage}"
    return f"`trigger-kd run {config} --run-dir {run_dir}{to}` (or your own config and --set options)"


def describe(run_dir: Path, problems: list[tuple[str, str]], what: str) -> str:
    stage, why = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return (f"{what}: {run_dir} does not hold one consistent run: {why}{more}. Rerun the {stage} stage and what "
            f"follows it: {rerun_command(run_dir, stage)}")


def require_chain(run_dir: Path, stages: list[str] | tuple[str, ...], what: str) -> None:
    """Raise ``StaleRun`` unless ``stages`` of ``run_dir`` and everything they were made from agree."""
    problems = chain_problems(run_dir, stages)
    if problems:
        raise StaleRun(describe(run_dir, problems, what))


def made_from(run_dir: Path, stages: tuple[str, ...] | list[str]) -> dict[str, str | None]:
    """What a tool's result was computed from: each stage's output hash (its stamp for a stage from before
    manifests). Written into ``evaluate/*.json`` and ``diagnostics.json``; ``stale_result`` compares."""
    out = {}
    for s in stages:
        stamp = read_stamp(Path(run_dir) / s) or {}
        out[s] = stamp.get("outputs") or stamp.get("stamp")
    return out


def stale_result(run_dir: Path, result: dict, what: str, stages: tuple[str, ...] = RESULT_STAGES) -> str | None:
    """Why a tool's result (``made_from``) is not proven to describe the run's current ``stages`` (the stages
    ``evaluate`` and ``diagnose`` read), or None. A stage the record does not name counts as not proven: the result may
    come from another run or an older tool."""
    recorded = result.get("made_from")
    if not isinstance(recorded, dict):
        if not any(made_from(run_dir, STAGE_NAMES).values()):
            return None  # no stage of the runner's here (a directory put together by hand): nothing to compare
        return f"{what} does not record which stage outputs it was made from (made by an older trigger-kd)"
    unknown = sorted(str(s) for s in recorded if s not in STAGE_NAMES)
    if unknown:
        return f"{what} names stages trigger-kd does not have ({', '.join(unknown)}): it is not a record of this run"
    missing = [s for s in stages if s not in recorded]
    if missing:
        return (f"{what} does not record which {', '.join(missing)} output{'s' if len(missing) > 1 else ''} it was "
                "made from, so it is not proven to be this run's")
    now = made_from(run_dir, tuple(recorded))
    changed = [s for s in recorded if recorded[s] != now[s]]
    if changed:
        return (f"{what} was made from another {', '.join(changed)} output than this run's current one (that stage "
                "was rerun since, or the file comes from another run)")
    return None
