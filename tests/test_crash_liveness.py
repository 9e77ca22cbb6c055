"""Liveness judged by something that travels (issue 35): what a run uses is protected across `mv`, other PID
namespaces and other hosts sharing the cache.

- `cache prune --unreferenced` finds references by the run's id (in its `.trigger-kd-run` marker, which moves with
  it) recorded in the cache entry on every use: a moved run's entries are kept (and say so) until the run is seen
  again, which refreshes its reference; an entry whose runs are proven to link elsewhere goes;
- a live run's temporary cache entry is never removed as a leftover because its PID is absent here (a second PID
  namespace, another host): only a lock its maker holds for the entry's life proves the maker gone.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from trigger_kd.cli import main as cli
from trigger_kd.config import load_config
from trigger_kd.pipeline import Stage, run_pipeline
from pipeline_fixtures import _own_cache, forked_until  # noqa: F401 (pytest fixture used by name)


def _cfg(repo, *sets):
    return load_config(repo / "hls_configs/mlp_kd.yml", list(sets))


def _shared(calls, wait_for: Path | None = None, started: Path | None = None):
    def a(cfg, ctx, out):
        calls.append("a")
        (out / "x").write_text("first")
        if started is not None:
            started.touch()
        deadline = time.monotonic() + 120
        while wait_for is not None and not wait_for.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        (out / "y").write_text("second")  # written after another run looked at the cache
        return {}

    return Stage("a", ("teacher",), (), a, shared=True)


def _entries(cache: Path) -> list[Path]:
    return sorted(p for p in (cache / "a").iterdir() if p.is_dir() and not p.name.startswith("."))


# ----------------------------------------------------------------------------- references survive `mv`
def test_prune_keeps_what_a_moved_run_links_to(tmp_path, repo, capsys):
    cache = tmp_path / "cache"
    run_pipeline(_cfg(repo, "teacher.epochs=2"), [_shared([])], tmp_path / "run1", progress=False)
    run_pipeline(_cfg(repo, "teacher.epochs=3"), [_shared([])], tmp_path / "run2", progress=False)
    (tmp_path / "elsewhere").mkdir()
    moved = tmp_path / "elsewhere" / "renamed"
    shutil.move(tmp_path / "run1", moved)  # the user's `mv`: the run's link still points at its entry
    assert (moved / "a" / "x").read_text() == "first"
    capsys.readouterr()
    assert cli(["cache", "prune", "--unreferenced"]) == 0
    err = capsys.readouterr().err
    assert len(_entries(cache)) == 2 and (moved / "a" / "x").is_file()  # nothing a run links to was removed
    assert "kept 1" in err and str(tmp_path / "run1") in err and "moved or deleted" in err, err
    assert cli(["cache", "list", "--json"]) == 0
    listed = {Path(e["path"]).name: e for e in json.loads(capsys.readouterr().out)}
    assert sorted(e["links"] for e in listed.values()) == ["moved or deleted?", "yes"]

    calls: list = []
    run_pipeline(_cfg(repo, "teacher.epochs=2"), [_shared(calls)], moved, progress=False)  # seen again: refreshed
    assert calls == []  # up to date, from its new place
    run_pipeline(_cfg(repo, "teacher.epochs=4"), [_shared([])], tmp_path / "run2", progress=False)  # run2 moves on
    capsys.readouterr()
    assert cli(["cache", "prune", "--unreferenced"]) == 0  # epochs=3: its only run links elsewhere now: removed
    out, err = capsys.readouterr()
    assert out.count("removed a/") == 1 and "kept" not in err, (out, err)
    assert {(e / "x").read_text() for e in _entries(cache)} == {"first"} and len(_entries(cache)) == 2
    assert (moved / "a").resolve() in _entries(cache)

    shutil.rmtree(moved)  # deleted (or moved again): unsure, kept, until the user says the runs are gone
    capsys.readouterr()
    assert cli(["cache", "prune", "--unreferenced"]) == 0
    assert len(_entries(cache)) == 2 and "--forget-missing" in capsys.readouterr().err
    assert cli(["cache", "prune", "--unreferenced", "--forget-missing", "--dry-run"]) == 0
    assert len(_entries(cache)) == 2
    assert cli(["cache", "prune", "--unreferenced", "--forget-missing"]) == 0
    assert [e.resolve() for e in _entries(cache)] == [(tmp_path / "run2" / "a").resolve()]
    assert cli(["cache", "prune", "--forget-missing"]) == 2  # only with --unreferenced


def test_a_new_run_at_a_moved_runs_old_path_does_not_release_its_entries(tmp_path, repo, capsys):
    """run A moved away, run B made at A's old path (another run id): A's entry is not B's to release."""
    cache = tmp_path / "cache"
    run_pipeline(_cfg(repo, "teacher.epochs=2"), [_shared([])], tmp_path / "run", progress=False)
    shutil.move(tmp_path / "run", tmp_path / "a_moved")
    run_pipeline(_cfg(repo, "teacher.epochs=3"), [_shared([])], tmp_path / "run", progress=False)
    capsys.readouterr()
    assert cli(["cache", "prune", "--unreferenced"]) == 0
    assert len(_entries(cache)) == 2 and (tmp_path / "a_moved" / "a" / "x").is_file()


# ----------------------------------------------------------------------------- temporary entries of live runs
class _OsWithPid:
    """``os`` as the runner sees it, with another PID (what a process in another PID namespace would name)."""

    def __init__(self, pid: int):
        self._pid = pid

    def getpid(self) -> int:
        return self._pid

    def __getattr__(self, name):
        return getattr(os, name)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_live_entry_whose_pid_is_absent_here_is_kept(tmp_path, repo, capsys, monkeypatch):
    """A run whose PID this process cannot see (another PID namespace or host: faked here by a PID that is dead
    here) makes a cache entry; another run on the same cache keeps its temporary entry, and the first one ends
    well."""
    started, release = tmp_path / "started", tmp_path / "release"
    foreign_pid = _dead_pid()

    def first_run():
        monkeypatch.setattr("trigger_kd.pipeline.os", _OsWithPid(foreign_pid))  # in the child: entries carry it
        run_pipeline(_cfg(repo, "teacher.epochs=2"), [_shared([], release, started)], tmp_path / "run1",
                     progress=False)

    child = forked_until(first_run, started)
    try:
        assert started.exists()
        tmp = tmp_path / "cache" / "a"
        live = [p.name for p in tmp.iterdir() if ".tmp-" in p.name]
        assert live and live[0].endswith(f".tmp-{foreign_pid}")
        capsys.readouterr()
        run_pipeline(_cfg(repo, "teacher.epochs=3"), [_shared([])], tmp_path / "run2", progress=False)
        assert live[0] in [p.name for p in tmp.iterdir()]  # kept: its maker holds the entry's lock
        assert "leftover" not in capsys.readouterr().err
    finally:
        release.touch()
        child.join(60)
    assert child.exitcode == 0
    assert (tmp_path / "run1" / "a" / "y").read_text() == "second"
    assert not [p for p in (tmp_path / "cache" / "a").iterdir() if ".tmp-" in p.name]


def test_leftovers_are_removed_when_their_maker_is_proven_gone(tmp_path, repo, monkeypatch):
    """The same entry once its maker is gone (killed: the kernel drops its lock), whatever PID it carries: the
    PID of a live process here (pid 1) does not keep it."""
    started = tmp_path / "started"

    def killed_run():
        monkeypatch.setattr("trigger_kd.pipeline.os", _OsWithPid(1))
        run_pipeline(_cfg(repo, "teacher.epochs=2"), [_shared([], tmp_path / "never", started)], tmp_path / "run1",
                     progress=False)

    child = forked_until(killed_run, started)
    child.kill()
    child.join(30)
    tmp = tmp_path / "cache" / "a"
    assert [p.name for p in tmp.iterdir() if p.name.endswith(".tmp-1")]
    run_pipeline(_cfg(repo, "teacher.epochs=3"), [_shared([])], tmp_path / "run2", progress=False)
    assert not [p.name for p in tmp.iterdir() if ".tmp-" in p.name]
    calls: list = []
    run_pipeline(_cfg(repo, "teacher.epochs=2"), [_shared(calls)], tmp_path / "run1", progress=False)
    assert calls == ["a"] and (tmp_path / "run1" / "a" / "y").is_file()  # the killed run's rerun repairs it


def test_a_temporary_directory_removed_under_a_stage_is_a_message(tmp_path, repo):
    """Whatever removed it (a user, an older trigger-kd on another host): the stage stops with one message, not a
    FileNotFoundError traceback, and earlier results stay."""
    from trigger_kd.pipeline import StageError

    def removed_under_me(cfg, ctx, out):
        shutil.rmtree(out)
        (out / "x").write_text("lost")
        return {}

    with pytest.raises(StageError, match=r"stage 'a' stopped: its temporary directory .*\.tmp-\d+ disappeared while it "
                                         r"ran \(FileNotFoundError"):
        run_pipeline(_cfg(repo), [Stage("a", ("teacher",), (), removed_under_me, shared=True)], tmp_path / "run",
                     progress=False)
    assert json.loads((tmp_path / "run" / "a.failed" / "FAILED.json").read_text())["error"].startswith("FileNotFound")
    assert not (tmp_path / "run" / "a.attempt.json").exists()


_NS_RUNNER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from trigger_kd.config import load_config
from trigger_kd.pipeline import Stage, run_pipeline

def a(cfg, ctx, out):
    (out / "x").write_text("first")
    Path(sys.argv[4]).touch()
    deadline = time.monotonic() + 120
    while not Path(sys.argv[5]).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    (out / "y").write_text("second")
    return {}

run_pipeline(load_config(sys.argv[2], ["teacher.epochs=2"]), [Stage("a", ("teacher",), (), a, shared=True)],
             sys.argv[3], progress=False)
"""


@pytest.mark.slow  # a run in a second PID namespace (unshare, as root), another on the same cache here
def test_a_run_in_another_pid_namespace_keeps_its_temporary_entry(tmp_path, repo, capsys):
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("a second PID namespace needs root and unshare(1)")
    probe = subprocess.run(["unshare", "--pid", "--fork", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare --pid --fork fails here: {probe.stderr.decode().strip()}")
    target = next(p for p in range(3, 4000) if not Path(f"/proc/{p}").exists())  # its PID there: absent here
    started, release = tmp_path / "started", tmp_path / "release"
    env = {**os.environ, "PYTHONPATH": str(repo), "TRIGGER_KD_CACHE": str(tmp_path / "cache")}
    # in the namespace: sh is pid 1, each /bin/true takes the next pid, so python gets `target`
    shell = textwrap.dedent(f"""
        i=2; while [ $i -lt {target} ]; do /bin/true; i=$((i+1)); done
        "$@"; exit $?
    """)
    other = subprocess.Popen(["unshare", "--pid", "--fork", "sh", "-c", shell, "sh", sys.executable, "-c", _NS_RUNNER,
                              str(tmp_path), str(repo / "hls_configs/mlp_kd.yml"), str(tmp_path / "run1"), str(started),
                              str(release)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not started.exists() and other.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert started.exists(), other.stderr.read() if other.poll() is not None else "not started"
        live = [p.name for p in (tmp_path / "cache" / "a").iterdir() if ".tmp-" in p.name]
        assert live == [live[0]] and not Path(f"/proc/{live[0].rpartition('-')[2]}").exists(), live
        run_pipeline(_cfg(repo, "teacher.epochs=3"), [_shared([])], tmp_path / "run2", progress=False)
        assert live[0] in [p.name for p in (tmp_path / "cache" / "a").iterdir()]
    finally:
        release.touch()
        err = other.communicate(timeout=120)[1]
    assert other.returncode == 0 and "Traceback" not in err, err
    assert (tmp_path / "run1" / "a" / "y").read_text() == "second"
