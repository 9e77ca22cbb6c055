"""Crash consistency (issue 35): a stage killed with SIGKILL at any point is seen as interrupted by every tool
(`check-parity`, `report`, `evaluate`, the runner) exactly as after SIGTERM, and a rerun repairs it.

A property over stages x kill points x signals, with toy stages under the pipeline's names (what the tools read
is there, the contents are toys): a complete run at settings S1, then `trigger-kd run` at settings S2 (which
change the stage under test) in a forked process whose stage kills its own process at point k, by SIGKILL or by
SIGTERM (the CLI's handler: exit 143). Kill points: inside the stage function (before it writes anything, after
its first file, after its last) and inside the runner (after the manifest is written, after the result is swapped
in, after a shared stage's link is made). Then every tool's verdict after SIGKILL must equal its verdict after
SIGTERM (refused, naming the same stage), the runner reruns the same stages, and after that rerun every tool
accepts the run and no temporary entry or attempt record is left.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from trigger_kd.cli import main as cli
from trigger_kd.config import load_config
from trigger_kd.pipeline import Stage, run_pipeline
from pipeline_fixtures import _own_cache  # noqa: F401 (pytest fixture used by name)

FILES = ("one.txt", "sub/two.txt")
CHANGE = {"teacher": "teacher.epochs=7", "student": "student.seed=7", "firmware": "hls.reuse_factor=2",
          "synth": "synth.sim_jets=7"}  # a setting each stage under test reads: S2 reruns it
IN_STAGE = ("before-any-output", "after-first-file", "after-last-file")
IN_RUNNER = ("after-manifest", "after-swap-in", "after-link")
_KILL: dict = {}  # in the forked child: {"stage", "point", "signal"}
_CURRENT: list[str] = []  # the toy stage running now


def _die(stage: str, point: str) -> None:
    if _KILL and _KILL["stage"] == stage and _KILL["point"] == point:
        os.kill(os.getpid(), _KILL["signal"])  # SIGKILL: gone now; SIGTERM: the CLI's handler raises here


def _toy_stages(calls: list):
    from trigger_kd.stages import STAGES

    def func(name):
        def run(cfg, ctx, out):
            calls.append(name)
            _CURRENT[:] = [name]
            for k, f in enumerate(FILES):
                _die(name, IN_STAGE[k])
                (out / f).parent.mkdir(parents=True, exist_ok=True)
                (out / f).write_text(f"{name} {cfg.teacher.epochs} {cfg.student.seed} {cfg.hls.reuse_factor}")
            if name == "firmware":
                (out / "parity.json").write_text(json.dumps({"n_jets": 10, "bit_exact_fraction": 1.0}))
            if name == "report":
                (out / "report.json").write_text(json.dumps({"model": "toy"}))
            _die(name, IN_STAGE[-1])
            return {}
        return run

    return [Stage(s.name, s.reads, s.needs, func(s.name), shared=s.shared) for s in STAGES]


def _arm_runner_points() -> None:
    """In the child: kill points inside the runner, after the wrapped function did its work."""
    import trigger_kd.pipeline as pipeline

    for point, name in (("after-manifest", "write_manifest"), ("after-swap-in", "_swap_in"), ("after-link", "_link")):
        real = getattr(pipeline, name)

        def wrapped(*args, _real=real, _point=point, **kw):
            result = _real(*args, **kw)
            if _CURRENT:
                _die(_CURRENT[0], _point)
            return result

        setattr(pipeline, name, wrapped)


def _killed_attempt(config: Path, run: Path, stage: str, point: str, sig: int, monkeypatch) -> int:
    """`trigger-kd run CONFIG --set S2` in a forked process that kills itself at ``point`` of ``stage``; its
    wait status as an exit code (-9: SIGKILL)."""
    monkeypatch.setattr("trigger_kd.stages.STAGES", _toy_stages([]))
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 70
        try:
            _KILL.update(stage=stage, point=point, signal=sig)
            _arm_runner_points()
            code = cli(["run", str(config), "--run-dir", str(run), "--no-progress", "--set", CHANGE[stage]])
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _named_stage(err: str) -> str | None:
    import re

    m = re.search(r"Rerun the (\w+) stage", err)
    return m.group(1) if m else None


def _verdicts(run: Path, capsys, monkeypatch) -> dict:
    """What each tool says of ``run``: (exit code, the stage it names to rerun)."""
    from trigger_kd.errors import TriggerKDError

    def chain_accepted(*a, **k):  # evaluate: past its check of the run; the toy has no models to score
        raise TriggerKDError("CHAIN ACCEPTED")

    monkeypatch.setattr("trigger_kd.generalisation.run_models.completed_stage", chain_accepted)
    out = {}
    for tool, args in {"check-parity": ["check-parity", str(run)], "report": ["report", str(run)],
                       "evaluate": ["evaluate", str(run), "--on", str(run / "data")]}.items():
        capsys.readouterr()
        code = cli(args)
        err = capsys.readouterr().err
        assert "Traceback" not in err, err
        out[tool] = (code, "accepted" if "CHAIN ACCEPTED" in err or code == 0 else _named_stage(err))
    return out


def _leftovers(*dirs: Path) -> list[str]:
    return sorted(p.name for d in dirs for p in d.rglob(".*") if ".tmp-" in p.name or ".old-" in p.name
                  or ".link-" in p.name) + sorted(p.name for d in dirs for p in d.glob("*.attempt.json"))


def _case(tmp_path, repo, capsys, monkeypatch, stage, point, sig):
    """One (stage, kill point, signal): the tools' verdicts after the kill, the stages the rerun ran, and that the
    rerun repaired the run."""
    base = tmp_path / f"{stage}-{point}-{sig}"
    cache, run = base / "cache", base / "run"
    monkeypatch.setenv("TRIGGER_KD_CACHE", str(cache))
    config = repo / "hls_configs/mlp_kd.yml"
    run_pipeline(load_config(config), _toy_stages([]), run, progress=False)  # the previous run: S1, complete
    assert _verdicts(run, capsys, monkeypatch) == {t: (0, "accepted") if t != "evaluate" else (2, "accepted")
                                                   for t in ("check-parity", "report", "evaluate")}
    code = _killed_attempt(config, run, stage, point, sig, monkeypatch)
    assert code == (-9 if sig == signal.SIGKILL else 143), code
    seen = _verdicts(run, capsys, monkeypatch)
    calls: list[str] = []
    capsys.readouterr()
    run_pipeline(load_config(config, [CHANGE[stage]]), _toy_stages(calls), run, progress=False)  # the rerun
    said = capsys.readouterr().err
    repaired = _verdicts(run, capsys, monkeypatch)
    assert repaired == {"check-parity": (0, "accepted"), "report": (0, "accepted"), "evaluate": (2, "accepted")}
    assert _leftovers(run, cache) == [], (stage, point, sig)
    assert not (run / f"{stage}.failed").exists()
    return seen, calls, f"[{stage}] the last attempt did not finish" in said


def _points(stage):
    shared = stage == "teacher"
    return IN_STAGE + tuple(p for p in IN_RUNNER if shared or p != "after-link")


@pytest.mark.slow  # 4 x (5-6 kill points) x 2 signals, each a forked `trigger-kd run` and the tools: ~15 s in all
@pytest.mark.parametrize("stage", sorted(CHANGE))
def test_sigkill_at_any_point_is_seen_as_sigterm_by_every_tool(tmp_path, repo, capsys, monkeypatch, stage):
    for point in _points(stage):
        term = _case(tmp_path, repo, capsys, monkeypatch, stage, point, signal.SIGTERM)
        kill = _case(tmp_path, repo, capsys, monkeypatch, stage, point, signal.SIGKILL)
        assert kill == term, (stage, point, kill, term)
        verdicts, reran, noticed = kill
        assert noticed, (stage, point)  # the runner says the attempt did not finish
        reads = {"check-parity": ("teacher", "student", "firmware"), "report": tuple(CHANGE),
                 "evaluate": ("teacher", "student")}  # of the stages under test, what each tool's chain holds
        want = {t: ({"check-parity": 1}.get(t, 2), stage) if stage in reads[t] else
                ((2 if t == "evaluate" else 0), "accepted") for t in reads}
        assert verdicts == want, (stage, point, verdicts)
        complete = point in ("after-swap-in", "after-link")  # its new result was in place: up to date, not rerun
        assert (reran[:1] != [stage]) if complete else reran[0] == stage, (point, reran)


def test_a_killed_attempt_is_named_in_the_tools_message(tmp_path, repo, capsys, monkeypatch):
    config = repo / "hls_configs/mlp_kd.yml"
    run = tmp_path / "run"
    run_pipeline(load_config(config), _toy_stages([]), run, progress=False)
    assert _killed_attempt(config, run, "student", "after-first-file", signal.SIGKILL, monkeypatch) == -9
    capsys.readouterr()
    assert cli(["check-parity", str(run)]) == 1
    err = capsys.readouterr().err
    assert "parity STALE" in err and "the latest student run did not finish" in err, err
    assert "student.attempt.json" in err and "killed" in err and "Traceback" not in err, err
    shutil.rmtree(run / "student")  # also with no earlier result at all
    capsys.readouterr()
    assert cli(["check-parity", str(run)]) == 1
    assert "the student stage has no completed output" in capsys.readouterr().err
