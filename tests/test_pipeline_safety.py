"""The runner never serves a stale result silently: code, tool and input-file changes rerun stages,
check-parity refuses parity of an older student or a failed firmware run, failures and leftovers are
cleaned up, and a broken environment gives a message, not a traceback."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from trigger_kd import fingerprint
from trigger_kd.config import load_config
from trigger_kd.firmware.check import check_parity
from trigger_kd.pipeline import Stage, StageError, run_pipeline
from pipeline_fixtures import _own_cache, cfg  # noqa: F401 (pytest fixtures used by name)


def _cfg(repo, *sets):
    return load_config(repo / "hls_configs/mlp_kd.yml", list(sets))


# ----------------------------------------------------------------------------- toy student/export/firmware
def _toy(calls, fraction=1.0, fail_firmware=False):
    def student(cfg, ctx, out):
        calls.append("student")
        (out / "seed.txt").write_text(str(cfg.student.seed))
        return {}

    def export(cfg, ctx, out):
        calls.append("export")
        (out / "model.txt").write_text((ctx.dir("student") / "seed.txt").read_text())
        return {}

    def firmware(cfg, ctx, out):
        calls.append("firmware")
        (out / "parity.json").write_text(json.dumps({
            "n_jets": 1000, "bit_exact_fraction": fraction, "n_mismatched": round((1 - fraction) * 1000),
            "required_fraction": cfg.checks.parity_min_fraction}))
        if fail_firmware:
            raise StageError("C-simulation is not bit-exact")
        return {}

    return [Stage("student", ("student",), (), student), Stage("export", ("export",), ("student",), export),
            Stage("firmware", ("hls", "checks"), ("student", "export"), firmware)]


def test_check_parity_refuses_parity_of_an_older_student(tmp_path, repo, capsys):
    calls = []
    run = tmp_path / "run"
    run_pipeline(_cfg(repo), _toy(calls), run)
    assert check_parity(run / "firmware") == 0
    run_pipeline(_cfg(repo, "student.seed=7"), _toy(calls), run, to="export")  # the reproduction
    assert calls[-2:] == ["student", "export"]
    capsys.readouterr()
    assert check_parity(run / "firmware") == 1
    err = capsys.readouterr().err
    assert "STALE" in err and "the student stage was rerun" in err and "trigger-kd run " in err
    run_pipeline(_cfg(repo, "student.seed=7"), _toy(calls), run)
    assert check_parity(run / "firmware") == 0


def test_check_parity_refuses_parity_left_by_a_failed_firmware_run(tmp_path, repo, capsys):
    calls = []
    run = tmp_path / "run"
    run_pipeline(_cfg(repo), _toy(calls), run)
    with pytest.raises(StageError):
        run_pipeline(_cfg(repo, "hls.reuse_factor=2"), _toy(calls, fail_firmware=True), run)
    assert (run / "firmware" / "parity.json").is_file()  # the earlier result is kept ...
    capsys.readouterr()
    assert check_parity(run / "firmware") == 1  # ... but not accepted as current
    assert "latest firmware run did not finish" in capsys.readouterr().err
    run_pipeline(_cfg(repo, "hls.reuse_factor=2"), _toy(calls), run)
    assert not (run / "firmware.failed").exists()  # a later success removes the failed attempt
    assert check_parity(run / "firmware") == 0
    with pytest.raises(StageError):
        run_pipeline(_cfg(repo, "hls.reuse_factor=4"), _toy(calls, fail_firmware=True), run)
    assert check_parity(run / "firmware") == 1
    before = len(calls)
    run_pipeline(_cfg(repo, "hls.reuse_factor=2"), _toy(calls), run)  # back to the settings it was built with
    assert len(calls) == before  # up to date: not rerun ...
    assert check_parity(run / "firmware") == 0  # ... and its parity is current again


def test_check_parity_applies_the_stage_threshold(tmp_path, repo, capsys):
    calls = []
    run = tmp_path / "run"
    run_pipeline(_cfg(repo, "checks.parity_min_fraction=0.99"), _toy(calls, fraction=0.995), run)
    assert check_parity(run / "firmware") == 0
    assert "accepted below 100 %" in capsys.readouterr().err
    (run / "firmware" / "parity.json").write_text(json.dumps(
        {"n_jets": 1000, "bit_exact_fraction": 0.995}))  # no threshold recorded: every jet must be exact
    assert check_parity(run / "firmware") == 1


def test_resolved_config_is_written_per_stage_with_its_outputs(tmp_path, repo):
    calls = []
    run = tmp_path / "run"
    with pytest.raises(StageError):
        run_pipeline(_cfg(repo), _toy(calls, fail_firmware=True), run)
    assert not (run / "config.resolved.yml").exists()  # nothing describes settings whose outputs do not exist
    assert "seed: 1" in (run / "student" / "config.resolved.yml").read_text()
    assert not (run / "firmware").exists()
    run_pipeline(_cfg(repo, "student.seed=7"), _toy(calls), run, to="student")
    assert "seed: 7" in (run / "student" / "config.resolved.yml").read_text()
    assert "seed: 1" in (run / "export" / "config.resolved.yml").read_text()  # export still from the old run


# ----------------------------------------------------------------------------- what stamps depend on
def _counting_stage(calls, name="a", **kw):
    def a(cfg, ctx, out):
        calls.append(name)
        (out / "x").write_text("x")
        return {}

    return Stage(name, ("teacher",), (), a, shared=True, **kw)


def test_input_file_replaced_at_same_path_reruns(tmp_path, cfg):
    calls = []
    data = tmp_path / "jets.bin"
    data.write_bytes(b"first version")
    stage = _counting_stage(calls, inputs=lambda cfg: [data])
    run_pipeline(cfg, [stage], tmp_path / "run1")
    run_pipeline(cfg, [stage], tmp_path / "run2")
    assert calls == ["a"]  # the cache serves the same file
    data.write_bytes(b"other content!")  # same path, new content
    run_pipeline(cfg, [stage], tmp_path / "run3")
    assert calls == ["a", "a"]
    stamp = json.loads((tmp_path / "run3/a/stamp.json").read_text())
    assert stamp["inputs"][0]["size"] == len(b"other content!") and len(stamp["inputs"][0]["sha256"]) == 64
    index = json.loads((tmp_path / "cache" / "file_index.json").read_text())
    assert len(index) == 2  # hashed once per version, remembered


def test_tool_version_change_reruns(tmp_path, cfg, monkeypatch):
    calls = []
    stage = _counting_stage(calls, tools=("numpy",))
    run_pipeline(cfg, [stage], tmp_path / "run")
    run_pipeline(cfg, [stage], tmp_path / "run")
    assert calls == ["a"]
    stamp = json.loads((tmp_path / "run/a/stamp.json").read_text())
    assert stamp["tools"] == {"numpy": fingerprint.tool_version("numpy")}
    monkeypatch.setattr("trigger_kd.pipeline.tool_versions", lambda tools: {t: "99.0-new-pin" for t in tools})
    run_pipeline(cfg, [stage], tmp_path / "run")
    assert calls == ["a", "a"]


def test_code_fingerprint_follows_imports_and_only_python_files(tmp_path, monkeypatch):
    import shutil

    fp = fingerprint.code_fingerprint("trigger_kd.stages.student")
    assert "trigger_kd.data.features" in fp["modules"]
    assert "trigger_kd.config" not in fp["modules"]  # the runner is in no stage's fingerprint (fingerprint.RUNNER)
    assert "trigger_kd.report.build" not in fp["modules"]  # report code does not retrain students
    copy = tmp_path / "trigger_kd"
    shutil.copytree(fingerprint.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(fingerprint, "PACKAGE_DIR", copy)
    fingerprint.code_fingerprint.cache_clear()
    try:
        before = fingerprint.code_fingerprint("trigger_kd.stages.student")["sha256"]
        (copy / "NOTES.md").write_text("a documentation edit")
        fingerprint.code_fingerprint.cache_clear()
        assert fingerprint.code_fingerprint("trigger_kd.stages.student")["sha256"] == before
        with open(copy / "data" / "features.py", "a") as f:
            f.write("\n# a bug fix\n")
        fingerprint.code_fingerprint.cache_clear()
        assert fingerprint.code_fingerprint("trigger_kd.stages.student")["sha256"] != before
    finally:
        fingerprint.code_fingerprint.cache_clear()


def test_stamp_records_code_tools_and_inputs_of_real_stages(repo):
    from trigger_kd.pipeline import stage_dependencies
    from trigger_kd.stages import STAGES

    cfg = _cfg(repo)
    deps = {s.name: stage_dependencies(s, cfg, None) for s in STAGES}
    assert set(deps["data"]["tools"]) >= {"pythia", "fastjet"} and deps["data"]["inputs"] == []
    assert {"torch", "brevitas"} <= set(deps["student"]["tools"])
    assert {"hls4ml", "qonnx", "g++"} <= set(deps["firmware"]["tools"])
    assert {"da4ml", "yosys", "verilator"} <= set(deps["synth"]["tools"])
    assert deps["teacher"]["code"] != deps["report"]["code"]


# ----------------------------------------------------------------------------- failures and leftovers
def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_leftovers_of_dead_runs_are_removed(tmp_path, cfg):
    """Judged by the lock their maker would hold, not by the PID in the name (issue 35): in a run directory whose lock
    this run holds, every temporary entry is a leftover (whatever PID it names, a live one included); in the cache,
    ``.<key>.tmp-PID`` stays while any process holds ``<key>.lock`` (whatever PID it names, a dead one included)."""
    calls = []
    run = tmp_path / "run"
    run.mkdir()
    dead = run / f".firmware.tmp-{_dead_pid()}"
    (dead / "sub").mkdir(parents=True)
    live_pid = run / f".firmware.tmp-{os.getpid()}"  # a live PID, but no run holds the run directory
    live_pid.mkdir()
    stage_cache = tmp_path / "cache" / "a"
    stage_cache.mkdir(parents=True)
    held = stage_cache / f".{'1' * 24}.tmp-{_dead_pid()}"  # its maker holds the entry's lock (another PID namespace)
    held.mkdir()
    free = stage_cache / f".{'2' * 24}.tmp-{os.getpid()}"  # nobody holds its entry's lock
    free.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time\n"
                               "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\nfcntl.flock(fd, fcntl.LOCK_EX)\n"
                               "print('held', flush=True)\ntime.sleep(120)", str(stage_cache / f"{'1' * 24}.lock")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        run_pipeline(cfg, [_counting_stage(calls)], run)
        assert not dead.exists() and not live_pid.exists()
        assert held.exists() and not free.exists()
    finally:
        holder.kill()
        holder.wait()
    run_pipeline(cfg, [_counting_stage(calls)], tmp_path / "run2")  # its maker is gone now: removed
    assert not held.exists()


def test_run_directory_that_is_a_file_or_unwritable(tmp_path, cfg):
    calls = []
    afile = tmp_path / "run"
    afile.write_text("I am a file")
    with pytest.raises(StageError, match="is an existing file, not a directory"):
        run_pipeline(cfg, [_counting_stage(calls)], afile)
    with pytest.raises(StageError, match="cannot write to run directory"):
        run_pipeline(cfg, [_counting_stage(calls)], afile / "below")
    ro = _read_only_dir(tmp_path / "ro")
    with pytest.raises(StageError, match="cannot write to run directory .*choose another --run-dir"):
        run_pipeline(cfg, [_counting_stage(calls)], ro / "run")
    os.environ["TRIGGER_KD_CACHE"] = str(ro / "cache")
    with pytest.raises(StageError, match="cannot write to cache directory .*TRIGGER_KD_CACHE"):
        run_pipeline(cfg, [_counting_stage(calls)], tmp_path / "ok")
    assert calls == []


def _read_only_dir(path):
    """A directory this process cannot write to: a read-only tmpfs as root, else mode 0500."""
    path.mkdir()
    if os.geteuid() == 0:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(path)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"root but cannot mount a read-only tmpfs: {done.stderr.decode().strip()}")
        _MOUNTS.append(path)
    else:
        path.chmod(0o500)
    return path


_MOUNTS: list = []


@pytest.fixture(autouse=True)
def _unmount():
    yield
    while _MOUNTS:
        subprocess.run(["umount", str(_MOUNTS.pop())], check=False)


def test_full_disk_is_a_message_and_keeps_earlier_results(tmp_path, cfg):
    """A real ENOSPC from the kernel: the stage writes into /dev/full."""
    calls = []

    def writes(cfg, ctx, out):
        calls.append("w")
        (out / "big.bin").symlink_to("/dev/full")
        with open(out / "big.bin", "wb") as f:
            f.write(b"x" * 1_000_000)
            f.flush()
        return {}

    run = tmp_path / "run"
    with pytest.raises(StageError, match=r"stage 'w' stopped: the disk is full.*free space there"):
        run_pipeline(cfg, [Stage("w", (), (), writes)], run)
    assert json.loads((run / "w.failed" / "FAILED.json").read_text())["error"].startswith("OSError")


def _toy_module(tmp_path, sleep: float):
    mod = tmp_path / "toystage.py"
    mod.write_text(textwrap.dedent(f"""
        import time
        from pathlib import Path
        def slow(cfg, ctx, out):
            with open(Path(r"{tmp_path}") / "executions.txt", "a") as f:
                f.write("x")
            time.sleep({sleep})
            (out / "done.txt").write_text("ok")
            return {{}}
    """))
    return mod


_RUNNER = """
import sys
sys.path.insert(0, sys.argv[1])
from trigger_kd.config import load_config
from trigger_kd.pipeline import Stage, run_pipeline
import toystage
cfg = load_config(sys.argv[2])
run_pipeline(cfg, [Stage("slow", ("teacher",), (), toystage.slow, shared=True)], sys.argv[3])
"""


@pytest.mark.slow  # two pipeline processes, one waiting for the other
@pytest.mark.parametrize("same_run_dir", [True, False])
def test_concurrent_runs_wait_and_reuse(tmp_path, repo, same_run_dir):
    _toy_module(tmp_path, sleep=3.0)
    env = {**os.environ, "PYTHONPATH": str(repo), "TRIGGER_KD_CACHE": str(tmp_path / "cache")}
    procs = []
    for i in range(2):
        run = tmp_path / ("run" if same_run_dir else f"run{i}")
        procs.append(subprocess.Popen([sys.executable, "-c", _RUNNER, str(tmp_path), str(repo / "hls_configs/mlp_kd.yml"),
                                       str(run)], env=env, stderr=subprocess.PIPE, text=True))
        if i == 0:
            import time

            time.sleep(1.5)  # the first one holds the lock
    errs = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    assert (tmp_path / "executions.txt").read_text() == "x"  # done once, reused by the second run
    assert "waiting for it to finish" in errs[1]
    assert ("up to date" if same_run_dir else "made by the run we waited for") in errs[1]


# ----------------------------------------------------------------------------- cache list | prune
def test_cache_list_and_prune(tmp_path, repo, capsys):
    import shutil

    from trigger_kd.cli import main as cli

    calls = []
    run_pipeline(_cfg(repo, "teacher.epochs=2"), [_counting_stage(calls)], tmp_path / "run1")
    run_pipeline(_cfg(repo, "teacher.epochs=3"), [_counting_stage(calls)], tmp_path / "run2")
    capsys.readouterr()
    assert cli(["cache", "list"]) == 0
    out = capsys.readouterr().out
    assert out.count("\na ") == 2 and "teacher(" in out and "epochs=3" in out and "2 entries" in out
    shutil.rmtree(tmp_path / "run2")  # deleted, or moved: the cache cannot tell (issue 35): kept, and said
    assert cli(["cache", "prune", "--unreferenced", "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert "would remove" not in out and "kept 1 entry" in err and "--forget-missing" in err
    assert cli(["cache", "prune", "--unreferenced", "--forget-missing", "--dry-run"]) == 0
    assert "would remove a/" in capsys.readouterr().out
    assert len(list((tmp_path / "cache" / "a").iterdir())) >= 2
    assert cli(["cache", "prune", "--unreferenced", "--forget-missing"]) == 0
    capsys.readouterr()
    assert cli(["cache", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [e["referenced"] for e in listed] == [True] and listed[0]["size_bytes"] > 0
    entries = [p for p in (tmp_path / "cache" / "a").iterdir() if p.is_dir()]
    assert len(entries) == 1 and (tmp_path / "run1" / "a").resolve() == entries[0].resolve()
    assert cli(["cache", "prune", "--older-than", "0"]) == 0  # unused for more than 0 days: everything
    assert not [p for p in (tmp_path / "cache" / "a").iterdir() if p.is_dir()]
    assert cli(["cache", "prune"]) == 2  # says what to remove


@pytest.mark.slow  # the CLI in a subprocess
def test_full_file_system_during_the_data_stage(tmp_path, repo):
    """ENOSPC from a real, tiny file system (a 256 kB tmpfs holding the cache), through the CLI."""
    import numpy as np

    from trigger_kd.data.formats import write_canonical

    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root; the /dev/full test covers ENOSPC handling")
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(tiny)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    _MOUNTS.append(tiny)
    rng = np.random.default_rng(0)
    p3 = rng.normal(scale=5.0, size=(3000, 40, 3)) + np.array([40.0, 0.0, 0.0])
    c = np.concatenate([np.linalg.norm(p3, axis=-1, keepdims=True), p3], axis=-1)
    src = write_canonical(tmp_path / "jets.h5", c, (np.arange(3000) % 2).astype(np.int8))  # ~1.5 MB
    env = {**os.environ, "TRIGGER_KD_CACHE": str(tiny / "cache"), "PYTHONPATH": str(repo)}
    done = subprocess.run(  # a subprocess: HDF5 hitting ENOSPC itself used to crash the interpreter at exit
        [sys.executable, "-m", "trigger_kd.cli", "run", str(repo / "hls_configs/mlp_kd.yml"), "--to", "data",
         "--run-dir", str(tmp_path / "run"), "--set", "data.source=canonical", "--set", f"data.paths=['{src}']",
         "--set", "data.jets_per_class=0", "--set", "data.max_constituents=40", "--no-progress"],
        env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "the disk is full" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "run" / "data").exists()
