"""`trigger-kd front` by principle: the user's files are never replaced; every output in the sweep directory is of
one invocation; a request the machine or the cluster cannot serve is refused in one line before any work; Ctrl-C
stops the sweep with one line. The points are fakes (tests/test_front_fakes.py): what is tested is the sweep's
bookkeeping, not the stages."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_front_fakes import FAIL_ENV, SLOW_ENV, fake_point, fake_shared, write_point
from trigger_kd.cli import main as cli
from trigger_kd.errors import TriggerKDError
from trigger_kd.rundir import RUN_MARKER
from trigger_kd.front import cluster, outputs
from trigger_kd.front.sweep import FrontError

# every `trigger-kd front` writes probe files into the suite's shared cache: the modules that run fronts and
# check those files run on one xdist worker, one after the other (pytest --dist loadgroup)
pytestmark = pytest.mark.xdist_group("front")

REPO = Path(__file__).resolve().parent.parent
CFG = str(REPO / "hls_configs" / "mlp_kd.yml")
POINTS = ["--points", "width=0.5,1", "bits=3"]  # two points: w16-8_b3a6 (LUT 1600) and w32-16_b3a6 (LUT 3200)


def _one_line_refusal(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.is_symlink(), p.is_dir(), None if p.is_dir() or p.is_symlink()
                                         else p.read_bytes()) for p in sorted(folder.rglob("*"))}


# ----------------------------------------------------------------------------- 1. the user's files
def _foreign_kinds(path: Path, elsewhere: Path) -> dict:
    """Ways a file of an output's name can be the user's: each writes one at ``path``."""
    ours_elsewhere = elsewhere / path.name
    return {
        "text": lambda: path.write_text("my own notes\n"),
        "empty": lambda: path.write_bytes(b""),
        "json not ours": lambda: path.write_text(json.dumps({"points": [], "command": "my-tool front"})),
        "png not ours": lambda: path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40),
        "yaml not ours": lambda: path.write_text("# my config\nname: x\n"),
        "folder": lambda: (path.mkdir(), (path / "keep.txt").write_text("mine")),
        "symlink to a file of ours": lambda: (ours_elsewhere.write_text(path.name), path.symlink_to(ours_elsewhere)),
    }


@pytest.mark.parametrize("name", outputs.OUTPUTS)
def test_a_folder_holding_the_users_output_files_is_refused_and_left_as_it_was(name, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for kind in _foreign_kinds(tmp_path / name, elsewhere):
        out = tmp_path / f"out_{kind.replace(' ', '_')}"
        out.mkdir()
        _foreign_kinds(out / name, elsewhere)[kind]()
        before = _snapshot(out)
        assert cli(["front", CFG, *POINTS, "--out", str(out), "--max-lut", "5000"]) == 2, kind
        line = _one_line_refusal(capsys.readouterr().err)
        assert name in line and "did not write" in line and "nothing was replaced" in line, (kind, line)
        assert _snapshot(out) == before, kind  # nothing written, nothing replaced: not even points/


def test_an_existing_file_as_the_sweep_directory_is_refused(tmp_path, capsys):
    out = tmp_path / "sweep"
    out.write_text("mine")
    assert cli(["front", CFG, *POINTS, "--out", str(out)]) == 2
    assert "is an existing file" in _one_line_refusal(capsys.readouterr().err) and out.read_text() == "mine"


def test_a_pipeline_run_directory_as_the_sweep_directory_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "student").mkdir(parents=True)
    (run / RUN_MARKER).write_text("")
    for out in (run, run / "student"):
        before = _snapshot(run)
        assert cli(["front", CFG, *POINTS, "--out", str(out)]) == 2
        assert "belongs to the pipeline run" in _one_line_refusal(capsys.readouterr().err)
        assert _snapshot(run) == before


def test_a_users_folder_where_a_point_run_directory_goes_is_refused_before_any_work(tmp_path, capsys):
    out = tmp_path / "sweep"
    (out / "points" / "w16-8_b3a6").mkdir(parents=True)
    (out / "points" / "w16-8_b3a6" / "student").mkdir()
    (out / "points" / "w16-8_b3a6" / "notes.txt").write_text("mine")
    before = _snapshot(out)
    assert cli(["front", CFG, *POINTS, "--out", str(out)]) == 2
    assert "not a trigger-kd run directory" in _one_line_refusal(capsys.readouterr().err)
    assert _snapshot(out) == before


def test_outputs_of_ours_are_recognised_also_from_before_invocation_ids(tmp_path):
    out = tmp_path / "sweep"
    out.mkdir()
    # a sweep directory written before the outputs carried invocation ids: front.json names the command, the PNG
    # is matplotlib's, picked.yml opens with the old header
    (out / "front.json").write_text(json.dumps({"command": "trigger-kd front x.yml", "points": []}))
    (out / "picked.yml").write_text("# picked by trigger-kd front: best validation auc within the budget\nname: x\n")
    from trigger_kd.front.plot import front_plot

    front_plot([], [], {}, out / "front.png")
    assert outputs.foreign(out) == [] and outputs.invocation_of(out / "front.json") == ""
    outputs.check_out_dir(out)
    # the same PNG with no front.json of ours beside it is not known to be ours
    (out / "front.json").write_text("{}")
    assert outputs.foreign(out) == ["front.json", "front.png"]
    with pytest.raises(TriggerKDError, match="front.json, front.png already exist there"):
        outputs.check_out_dir(out)
    # tagged files: ours with their invocation
    front_plot([], [], {}, out / "front.png", software=f"{outputs.TAG} invocation abc")
    (out / "picked.yml").write_text(outputs.picked_header("abc", "best") + "name: x\n")
    assert outputs.invocation_of(out / "front.png") == "abc" == outputs.invocation_of(out / "picked.yml")


# ----------------------------------------------------------------------------- 2. one invocation's outputs
@pytest.fixture(scope="module")
def in_process_cluster():
    """One in-process Dask cluster for the bookkeeping tests (the fakes run in this process's threads)."""
    from dask.distributed import Client, LocalCluster

    c = LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address="127.0.0.1:0")
    client = Client(c)
    yield client
    client.close()
    c.close()


@pytest.fixture
def fake_front(in_process_cluster, monkeypatch):
    """`trigger-kd front` with the fake stages on the in-process cluster; returns cli."""
    from trigger_kd import cli as cli_module
    from trigger_kd.front import run

    monkeypatch.setattr(cli_module, "run_front_point", fake_point)
    monkeypatch.setattr(cli_module, "run_shared_stages", fake_shared)
    monkeypatch.setattr(run, "connect", lambda workers, address: cluster.Session(in_process_cluster, own=False))
    return cli


def _outputs_state(out: Path) -> dict:
    return {n: outputs.invocation_of(out / n) for n in outputs.OUTPUTS if (out / n).exists()}


def _interrupting_shared(cfg, run_dir):
    raise KeyboardInterrupt


# each step: (what it does, extra arguments, expected exit code)
STEPS = {
    "fits": (["--max-lut", "5000"], 0),
    "fits none": (["--max-lut", "10"], 2),
    "no budget": ([], 0),
    "a point fails": (["--max-lut", "5000"], 2),
    "interrupted": (["--max-lut", "5000"], 130),
    "refused": (["--max-lut", "5000", "--points", "depth=2"], 2),
}


@pytest.mark.parametrize("first", list(STEPS))
@pytest.mark.parametrize("second", list(STEPS))
def test_every_output_in_the_sweep_directory_is_of_one_invocation(first, second, fake_front, tmp_path, monkeypatch,
                                                                    capsys):
    """Property over pairs of invocations into one folder: afterwards every output present carries the id of the
    last invocation that got past its checks (a refused one changes nothing; an interrupted one leaves none);
    picked.yml is there exactly when that invocation's front.json names a pick."""
    from trigger_kd import cli as cli_module

    out = tmp_path / "sweep"
    for step in (first, second):
        extra, rc = STEPS[step]
        monkeypatch.delenv(FAIL_ENV, raising=False)
        monkeypatch.setattr(cli_module, "run_shared_stages", fake_shared)
        if step == "a point fails":
            monkeypatch.setenv(FAIL_ENV, "w32-16_b3a6")
        if step == "interrupted":  # Ctrl-C once the sweep has begun (in the shared stages)
            monkeypatch.setattr(cli_module, "run_shared_stages", _interrupting_shared)
        before = _outputs_state(out)
        assert fake_front(["front", CFG, *POINTS, "--out", str(out), *extra]) == rc, (step, capsys.readouterr().err)
        state = _outputs_state(out)
        if step == "refused":
            assert state == before
            continue
        if step == "interrupted":
            assert state == {}, state
            continue
        front = json.loads((out / "front.json").read_text())
        assert set(state.values()) == {front["invocation"]}, (step, state)
        assert ("picked.yml" in state) == (front["picked"] is not None), step
        assert front["command"].endswith(" ".join(extra)) if extra else True
    capsys.readouterr()


def test_a_sweep_that_picks_nothing_leaves_no_earlier_pick(fake_front, tmp_path, capsys):
    """The issue's case: a sweep that fits its budget, then one that fits none: exit 2 and no picked.yml for
    `trigger-kd run` to build."""
    out = tmp_path / "sweep"
    assert fake_front(["front", CFG, *POINTS, "--out", str(out), "--max-lut", "5000"]) == 0
    assert (out / "picked.yml").is_file()
    assert fake_front(["front", CFG, *POINTS, "--out", str(out), "--max-lut", "10"]) == 2
    assert not (out / "picked.yml").exists()
    front = json.loads((out / "front.json").read_text())
    assert front["picked"] is None and "no point of the sweep fits" in front["no_point_fits"]
    assert outputs.invocation_of(out / "front.png") == front["invocation"]
    assert "no point of the sweep fits the budget" in capsys.readouterr().err


# ----------------------------------------------------------------------------- 3. addresses
@pytest.mark.parametrize("text,address", [
    ("tcp://127.0.0.1:8786", "tcp://127.0.0.1:8786"),
    ("127.0.0.1:8786", "tcp://127.0.0.1:8786"),
    ("node12.cluster:40001", "tcp://node12.cluster:40001"),
    ("tls://10.0.0.5:8786", "tls://10.0.0.5:8786"),
    ("tcp://[::1]:8786", "tcp://[::1]:8786"),
    ("ws://host:8786", "ws://host:8786"),
])
def test_scheduler_addresses_accepted(text, address):
    assert cluster.scheduler_address(text) == address


@pytest.mark.parametrize("text", ["http://127.0.0.1:8786", "https://dask.example.org", "127.0.0.1", "tcp://host",
                                  "tcp://host:port", "tcp://host:0", "tcp://host:70000", "inproc://x", "foo://h:1",
                                  "", "tcp://:8786", "http://127.0.0.1:8787/status"])
def test_scheduler_addresses_refused_saying_which_forms_work(text):
    with pytest.raises(FrontError, match=r"tcp://HOST:PORT.*scheduler-file"):
        cluster.scheduler_address(text)


def test_scheduler_file(tmp_path):
    f = tmp_path / "scheduler.json"
    f.write_text(json.dumps({"type": "Scheduler", "address": "tcp://10.1.2.3:41234"}))
    assert cluster.scheduler_address(str(f)) == "tcp://10.1.2.3:41234"
    f.write_text("not json")
    with pytest.raises(FrontError, match="not a readable scheduler file"):
        cluster.scheduler_address(str(f))


def test_cli_http_scheduler_is_one_line_before_any_work(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert cli(["front", CFG, *POINTS, "--out", str(out), "--scheduler", "http://127.0.0.1:8787"]) == 2
    line = _one_line_refusal(capsys.readouterr().err)
    assert "tcp://HOST:PORT" in line and "dashboard" in line
    assert not out.exists()


# ----------------------------------------------------------------------------- 4. what the machine holds
def test_worker_limit_rule():
    gib = 2**30
    assert cluster.worker_limit(cores=2, memory=24 * gib) == 2  # the CI machine: its cores
    assert cluster.worker_limit(cores=64, memory=8 * gib) == 4  # (8 - 1.5) / 1.5
    assert cluster.worker_limit(cores=16, memory=128 * gib) == 16
    assert cluster.worker_limit(cores=1, memory=1 * gib) == 1  # one is always allowed
    assert cluster.worker_limit(cores=4, memory=0) == 4  # memory unknown: the cores


def test_workers_beyond_the_machine_are_refused_in_one_line(tmp_path, capsys, monkeypatch):
    out = tmp_path / "sweep"
    monkeypatch.setattr(cluster, "usable_cores", lambda: 2)
    monkeypatch.setattr(cluster, "usable_memory", lambda: 24 * 2**30)
    t0 = time.time()
    assert cli(["front", CFG, *POINTS, "--out", str(out), "--workers", "1000"]) == 2
    line = _one_line_refusal(capsys.readouterr().err)
    assert "--workers 1000" in line and "(2 cores)" in line and "24.0 GiB memory" in line and "--workers 2 or fewer" in line
    assert not out.exists() and time.time() - t0 < 20  # refused before any process starts
    assert cluster.check_workers(None, 9) == 2 and cluster.check_workers(None, 1) == 1
    assert cluster.check_workers(2, 1) == 1  # never more workers than points
    with pytest.raises(FrontError, match="at least 1"):
        cluster.check_workers(0, 3)


# ----------------------------------------------------------------------------- 5. the probe of every worker
def test_worker_view_names_what_a_worker_lacks(tmp_path, monkeypatch):
    out = tmp_path / "sweep"
    out.mkdir()
    with cluster.probe_files(out) as expect:
        assert cluster.worker_view(expect)["problems"] == []
        assert cluster.refusal({"tcp://a:1": cluster.worker_view(expect)}) is None
        # another filesystem at the same path: the token is not there
        hidden = cluster.Expect(**{**expect.__dict__, "out_probe": str(out / ".front-probe-other")})
        problems = cluster.worker_view(hidden)["problems"]
        assert len(problems) == 1 and "does not see" in problems[0] and "sweep directory" in problems[0]
        # another cache
        monkeypatch.setenv("TRIGGER_KD_CACHE", str(tmp_path / "other_cache"))
        problems = cluster.worker_view(expect)["problems"]
        assert len(problems) == 1 and "its cache is" in problems[0] and "TRIGGER_KD_CACHE" in problems[0]
        monkeypatch.undo()
        # other code
        other = cluster.Expect(**{**expect.__dict__, "software": {**expect.software, "trigger_kd": "0.0.1",
                                                                   "code": "0" * 16}})
        problems = cluster.worker_view(other)["problems"]
        assert any("trigger_kd version" in p for p in problems) and any("source digest" in p for p in problems)
        line = cluster.refusal({"tcp://a:1": cluster.worker_view(other), "tcp://b:2": ModuleNotFoundError("trigger_kd")})
        assert line.startswith("2 of 2 Dask workers cannot run this sweep's points") and "probe failed" in line
        assert "filesystem every worker sees" in line and "same paths" in line and "same venv" in line
    assert not list(out.iterdir())  # the token files are removed


def test_point_task_refuses_on_a_worker_that_cannot_see_the_sweep(tmp_path):
    from trigger_kd.front.run import point_task

    out = tmp_path / "sweep"
    out.mkdir()
    ran = []
    with cluster.probe_files(out) as expect:
        hidden = cluster.Expect(**{**expect.__dict__, "out_probe": str(out / ".front-probe-other")})
        row = point_task(lambda *a: ran.append(a), None, str(out / "p"), hidden)
        assert "cannot run points" in row["error"] and "filesystem every worker sees" in row["error"] and not ran
        write_point(out / "p", 0.9, 100.0)
        row = point_task(lambda *a: ran.append(a), None, str(out / "p"), expect)
        assert not row.get("error") and ran and row["lut"] == 100.0


# ----------------------------------------------------------------------------- 3. Ctrl-C
@pytest.mark.slow
def test_ctrl_c_during_a_sweep_is_one_line_exit_130_and_resumes(tmp_path):
    """A terminal's Ctrl-C (SIGINT to the whole process group) while the LocalCluster's workers run points: exit
    130, one line, no worker's KeyboardInterrupt traceback, no worker left running; the same command resumes."""
    out = tmp_path / "sweep"
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests") + os.pathsep + os.environ.get("PYTHONPATH", ""),
           SLOW_ENV: "60"}
    cmd = [sys.executable, str(REPO / "tests" / "test_front_fakes.py"), "front", CFG, *POINTS, "--out", str(out),
           "--workers", "2", "--max-lut", "5000"]
    # as from a terminal: SIGINT's default disposition (a process that inherits SIGINT ignored, e.g. from a test
    # runner's worker, keeps ignoring it, as POSIX says)
    p = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 120
        while not all((out / "points" / i / "started").is_file() for i in ("w16-8_b3a6", "w32-16_b3a6")):
            assert p.poll() is None and time.time() < deadline, p.communicate()
            time.sleep(0.2)
        workers = [int((out / "points" / i / "started").read_text()) for i in ("w16-8_b3a6", "w32-16_b3a6")]
        os.killpg(p.pid, signal.SIGINT)  # what a terminal sends on Ctrl-C
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "interrupted; completed stages are kept" in err
    for pid in workers:  # the worker processes are gone
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    assert _outputs_state(out) == {}
    env[SLOW_ENV] = "0"
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "front.json").read_text())["picked"]["id"] == "w32-16_b3a6"


# ----------------------------------------------------------------------------- 5. probe files: liveness by lock
def _probe_writer(tmp_path: Path, monkeypatch, body: str):
    """(cache, sweep directory, a process running ``body`` with ``out`` the sweep directory)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("TRIGGER_KD_CACHE", str(cache))
    out = tmp_path / "sweep"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", (
        "import os, sys, time; from pathlib import Path; from trigger_kd.front import cluster\n"
        f"out = Path({str(out)!r})\n{body}")], stdout=subprocess.PIPE, text=True)
    return cache, out, proc


def test_probe_files_of_a_dead_sweep_are_removed_a_live_ones_kept(tmp_path, monkeypatch):
    """A sweep stopped by SIGKILL cannot remove its probe files: the next sweep does, judged by the flock each
    writer holds (not by a PID, which does not travel across hosts); a live sweep's probe is kept, and a probe
    file names its writer."""
    cache, out, holder = _probe_writer(tmp_path, monkeypatch, (
        "with cluster.probe_files(out) as e:\n"
        "    print(e.token, flush=True); time.sleep(120)"))
    try:
        live = holder.stdout.readline().strip()
        (cache / f"{cluster.PROBE_PREFIX}dead").write_text("dead\n")  # what a SIGKILLed sweep leaves
        (out / f"{cluster.PROBE_PREFIX}dead").write_text("dead\n")
        with cluster.probe_files(out) as expect:
            names = {p.name for p in cache.glob(f"{cluster.PROBE_PREFIX}*")}
            assert names == {f"{cluster.PROBE_PREFIX}{live}", f"{cluster.PROBE_PREFIX}{expect.token}"}
            assert not (out / f"{cluster.PROBE_PREFIX}dead").exists()
            assert json.loads(Path(expect.cache_probe).read_text().splitlines()[1])["pid"] == os.getpid()
            assert not [p for p in cluster.worker_view(expect)["problems"] if "does not see" in p]
        assert {p.name for p in cache.glob(f"{cluster.PROBE_PREFIX}*")} == {f"{cluster.PROBE_PREFIX}{live}"}
    finally:
        holder.kill()
        holder.wait()
    # the holder was SIGKILLed: its files are a dead sweep's now
    assert {p.name for p in cluster.remove_stale_probes(cache)} == {f"{cluster.PROBE_PREFIX}{live}"}


def test_probe_whose_lock_a_child_inherited_is_removed_once_its_writer_is_gone(tmp_path, monkeypatch):
    """A sweep that forked a process without exec (the child keeps the flock's file description) and then died
    without removing its probe: the lock alone would call it live for as long as the child lives. The writer is
    proven gone here by its identity on this kernel (boot, PID namespace, PID and start time), so the probe goes;
    a probe of another PID namespace or host is judged by the lock alone (its PID means nothing here)."""
    cache, out, writer = _probe_writer(tmp_path, monkeypatch, (
        "ctx = cluster.probe_files(out); e = ctx.__enter__()\n"
        "child = os.fork()\n"
        "if child == 0:\n"
        "    time.sleep(120); os._exit(0)\n"
        "print(e.token, child, flush=True); os._exit(0)"))
    token, child = writer.stdout.readline().split()
    writer.wait()
    try:
        probe = cache / f"{cluster.PROBE_PREFIX}{token}"
        assert probe.exists() and Path(f"/proc/{child}").exists()
        ident = json.loads(probe.read_text().splitlines()[1])
        # the same writer seen from another PID namespace: judged by the lock, which the child still holds
        other = {**ident, "pidns": "pid:[1]"}
        probe.write_text(f"{token}\n{json.dumps(other)}\n")
        assert cluster.remove_stale_probes(cache) == [] and probe.exists()
        probe.write_text(f"{token}\n{json.dumps(ident)}\n")
        assert {p.name for p in cluster.remove_stale_probes(cache)} == {probe.name}
        assert {p.name for p in cluster.remove_stale_probes(out)} == {probe.name}
    finally:
        os.kill(int(child), signal.SIGKILL)


# ----------------------------------------------------------------------------- 6. the request, checked before any work
def _refused_before_any_work(fake_front, capsys, out: Path, args: list[str], *, must: tuple[str, ...],
                             watch: Path | None = None) -> str:
    """``front`` with ``args`` exits 2 with one line naming each of ``must``; ``watch`` (``out``'s parent) is as
    it was (no folder, lock or point made). The fake stages run if the request is not refused: a failure is quick."""
    parent = watch or out.parent
    before = _snapshot(parent)
    rc = fake_front(["front", CFG, "--out", str(out), *args])
    err = capsys.readouterr().err
    assert rc == 2, (args, err)
    line = _one_line_refusal(err)
    assert all(m in line for m in must), (must, line)
    assert _snapshot(parent) == before, args
    return line


BAD_BUDGETS = ["nan", "inf", "-inf", "-5", "0", "-0", "1e400"]


@pytest.mark.parametrize("option", ["--max-lut", "--max-latency-ns"])
@pytest.mark.parametrize("value", BAD_BUDGETS)
def test_a_budget_that_no_design_can_meet_or_that_is_no_number_is_refused(option, value, fake_front, tmp_path, capsys):
    _refused_before_any_work(fake_front, capsys, tmp_path / "sweep", [*POINTS, f"{option}={value}"],
                             must=(option, "positive"))


@pytest.mark.parametrize("user_set,axis", [
    ("student.weight_bits=5", "bits"), ("student.act_bits=8", "bits"),
    ("student.act_int_bits=8", "bits"),  # only the points whose activations are narrower than 8 bits set it
    (" student.weight_bits =5", "bits"),  # as the config reads it
])
def test_a_set_of_a_key_the_sweep_sets_is_refused_naming_key_set_and_axis(user_set, axis, fake_front, tmp_path,
                                                                         capsys):
    key = user_set.partition("=")[0].strip()
    _refused_before_any_work(fake_front, capsys, tmp_path / "sweep", [*POINTS, "--set", user_set],
                             must=(f"--set {user_set}", key, f"--points {axis}="))


def test_the_default_axes_count_too_and_hgq_has_its_own(fake_front, tmp_path, capsys):
    """No --points: the knobs' default values still set their keys; a framework's own knob (hgq's beta) too."""
    _refused_before_any_work(fake_front, capsys, tmp_path / "a", ["--set", "student.weight_bits=5"],
                             must=("student.weight_bits", "--points bits="))
    hgq = str(REPO / "hls_configs" / "mlp_kd_hgq.yml")
    before = _snapshot(tmp_path)
    assert fake_front(["front", hgq, "--out", str(tmp_path / "b"), "--set", "student.ebops_beta=1.0e-3"]) == 2
    line = _one_line_refusal(capsys.readouterr().err)
    assert "student.ebops_beta" in line and "--points beta=" in line and _snapshot(tmp_path) == before


def test_a_set_of_the_synth_route_the_sweep_needs_is_refused_the_same_value_is_not(fake_front, tmp_path, capsys):
    _refused_before_any_work(fake_front, capsys, tmp_path / "a", [*POINTS, "--set", "synth.tool=vivado"],
                             must=("--set synth.tool=vivado", "open-source"))
    assert fake_front(["front", CFG, *POINTS, "--out", str(tmp_path / "b"), "--set", "synth.tool=open-source",
                       "--set", "student.max_epochs=3", "--max-lut", "5000"]) == 0, capsys.readouterr().err


def test_the_widths_a_set_gives_are_the_base_the_width_axis_scales(fake_front, tmp_path, capsys):
    """width is a scale of the config's widths: a --set of them is honoured (the fakes' LUT is 100 x width)."""
    out = tmp_path / "sweep"
    assert fake_front(["front", CFG, *POINTS, "--out", str(out), "--set", "student.mlp_hidden=[8,4]"]) == 0
    rows = json.loads((out / "front.json").read_text())["points"]
    assert sorted(r["id"] for r in rows) == ["w4-2_b3a6", "w8-4_b3a6"] and sorted(r["lut"] for r in rows) == [400, 800]
    capsys.readouterr()


def _in_the_way(path: Path, kind: str, elsewhere: Path) -> None:
    """Something that is not a usable folder at ``path``."""
    if kind == "file":
        path.write_text("mine\n")
    elif kind == "dangling symlink":
        path.symlink_to(elsewhere / "gone")
    elif kind == "symlink to a file":
        (elsewhere / "a_file").write_text("mine\n")
        path.symlink_to(elsewhere / "a_file")


@pytest.mark.parametrize("where", ["points", "shared", "points/w16-8_b3a6"])
@pytest.mark.parametrize("kind", ["file", "dangling symlink", "symlink to a file"])
def test_something_not_a_folder_where_the_sweep_makes_one_is_refused_and_nothing_left(where, kind, fake_front,
                                                                                       tmp_path, capsys):
    out, elsewhere = tmp_path / "sweep", tmp_path / "elsewhere"
    (out / "points" if "/" in where else out).mkdir(parents=True)
    elsewhere.mkdir()
    _in_the_way(out / where, kind, elsewhere)
    _refused_before_any_work(fake_front, capsys, out, POINTS, must=(str(out / where), "nothing was replaced"))


@pytest.mark.parametrize("kind", ["folder", "dangling symlink", "file of the user's"])
def test_a_lock_file_name_taken_by_something_else_is_refused(kind, fake_front, tmp_path, capsys):
    from trigger_kd.front.run import LOCK_FILE

    out = tmp_path / "sweep"
    out.mkdir()
    lock = out / LOCK_FILE
    if kind == "folder":
        lock.mkdir()
    elif kind == "dangling symlink":
        lock.symlink_to(tmp_path / "gone")
    else:
        lock.write_text("my notes\n")
    _refused_before_any_work(fake_front, capsys, out, POINTS, must=(LOCK_FILE, "nothing was replaced"))


@pytest.mark.parametrize("kind", ["under a file", "under a dangling symlink", "in /proc", "a dangling symlink"])
def test_a_sweep_directory_that_cannot_be_made_is_refused_in_one_line(kind, fake_front, tmp_path, capsys):
    out = {"under a file": tmp_path / "f" / "sweep", "under a dangling symlink": tmp_path / "d" / "sweep",
           "in /proc": Path("/proc") / "trigger-kd-front-test" / "sweep", "a dangling symlink": tmp_path / "sweep"}[kind]
    if kind == "under a file":
        (tmp_path / "f").write_text("mine\n")
    elif kind == "under a dangling symlink":
        (tmp_path / "d").symlink_to(tmp_path / "gone")
    elif kind == "a dangling symlink":
        out.symlink_to(tmp_path / "gone")
    _refused_before_any_work(fake_front, capsys, out, POINTS, must=("front --out",), watch=tmp_path)
    assert not (tmp_path / "gone").exists() and not Path("/proc/trigger-kd-front-test").exists()


def test_the_sweep_after_a_refusal_runs(fake_front, tmp_path, capsys):
    """The refusals leave a folder a corrected command uses at once."""
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "points").write_text("mine\n")
    assert fake_front(["front", CFG, *POINTS, "--out", str(out), "--max-lut", "5000"]) == 2
    (out / "points").unlink()
    assert fake_front(["front", CFG, *POINTS, "--out", str(out), "--max-lut", "5000"]) == 0
    assert json.loads((out / "front.json").read_text())["picked"]["id"] == "w32-16_b3a6"
    capsys.readouterr()


def test_yosys_figures_of_the_front_come_from_a_checked_record(fake_front, tmp_path, capsys):
    """--yosys with a cached front_yosys.json per point: a good one is used; a damaged one (negative LUT, FF not a
    number) is never stored in front.json: Yosys is run again (the fakes have no RTL, so that fails, naming the
    point) and the command exits 2 saying so."""
    from trigger_kd.front.yosys import YOSYS_JSON

    out = tmp_path / "sweep"
    assert fake_front(["front", CFG, *POINTS, "--out", str(out)]) == 0
    good = {"synth_stamp": None, "family": "xcup", "yosys_lut": 1500, "yosys_ff": 20, "yosys_version": "0.33",
            "yosys_cpu_s": 1.0, "log": "x"}
    (out / "points" / "w16-8_b3a6" / YOSYS_JSON).write_text(json.dumps(good))
    (out / "points" / "w32-16_b3a6" / YOSYS_JSON).write_text(json.dumps({**good, "yosys_lut": -7, "yosys_ff": "abc"}))
    capsys.readouterr()
    assert fake_front(["front", CFG, *POINTS, "--out", str(out), "--yosys"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "-7 LUT" not in err and "w32-16_b3a6" in err and "yosys_lut" in err
    rows = {r["id"]: r for r in json.loads((out / "front.json").read_text())["points"]}
    assert rows["w16-8_b3a6"]["yosys_lut"] == 1500 and rows["w32-16_b3a6"].get("yosys_lut") is None
    assert "names no RTL" in rows["w32-16_b3a6"]["yosys_error"]


@pytest.mark.parametrize("points", [["width=1e308"], ["width=nan"], ["width=inf"], ["width=-1"], ["width=0"],
                                    ["width="], ["width=1e6"], ["bits=1"], ["bits=3.5"], ["bits=abc"], ["bits=3/0"],
                                    ["bits=1000"], ["depth=2"], ["width=1", "width=2"], ["bits"]], ids=repr)
def test_every_out_of_range_knob_value_is_refused_in_one_line(points, fake_front, tmp_path, capsys):
    _refused_before_any_work(fake_front, capsys, tmp_path / "sweep", ["--points", *points], must=())
