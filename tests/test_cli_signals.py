"""The CLI as batch systems and shells use it: SIGTERM like Ctrl-C, a closed pipe is not a traceback."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
REPORT = REPO / "tests" / "fixtures" / "reports" / "vitis_hls_2022.2_myproject_csynth.xml"


def _env(tmp_path):
    return {**os.environ, "PYTHONPATH": str(REPO), "TRIGGER_KD_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}


def test_parse_report_into_a_closed_pipe(tmp_path):
    """`trigger-kd parse-report ... | head`: the reader is gone before we write."""
    p = subprocess.Popen([sys.executable, "-m", "trigger_kd.cli", "parse-report", str(REPORT), "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(tmp_path))
    p.stdout.close()  # like `head` exiting
    err = p.stderr.read().decode()
    p.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert p.returncode == 141


@pytest.mark.slow
def test_sigterm_during_generation_is_handled_like_ctrl_c(tmp_path):
    cmd = [sys.executable, "-m", "trigger_kd.cli", "run", str(REPO / "hls_configs/mlp_kd.yml"), "--to", "data",
           "--run-dir", str(tmp_path / "run"), "--no-progress", "--set", "data.jets_per_class=20000",
           "--set", "data.shard_size=50", "--set", "data.workers=1"]
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=_env(tmp_path))
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(p.stderr), daemon=True)
    reader.start()
    pool = None
    deadline = time.time() + 180
    while time.time() < deadline:  # wait until some shards exist: generation is under way
        shards = list((tmp_path / "cache" / "jets").glob("*/shard_*.h5"))
        if shards:
            pool = shards[0].parent
            break
        time.sleep(0.5)
    assert pool is not None, "".join(lines)
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=120)
    reader.join(timeout=10)
    err = "".join(lines)
    assert p.returncode == 143, err
    assert "terminated (SIGTERM)" in err and "Traceback" not in err
    assert list(pool.glob("shard_*.h5"))  # earlier results kept
    assert not list((tmp_path / "cache" / "data").glob(".*.tmp-*"))  # no half-written stage output
    assert not (tmp_path / "run" / "data").exists()


@pytest.mark.slow
def test_sigkill_during_generation_leaves_a_mark_the_next_run_reads(tmp_path):
    """SIGKILL cannot be handled: the attempt record written before the stage began stays, the tools call the stage
    unfinished, and the next run says so, removes the killed attempt's temporary entry and completes the stage."""
    from trigger_kd.rundir import ATTEMPT_SUFFIX

    run = tmp_path / "run"
    base = [sys.executable, "-m", "trigger_kd.cli", "run", str(REPO / "hls_configs/mlp_kd.yml"), "--to", "data",
            "--run-dir", str(run), "--no-progress", "--set", "data.shard_size=50", "--set", "data.workers=1"]
    p = subprocess.Popen(base + ["--set", "data.jets_per_class=20000"], stderr=subprocess.DEVNULL, env=_env(tmp_path))
    deadline = time.time() + 180
    while time.time() < deadline and not list((tmp_path / "cache" / "jets").glob("*/shard_*.h5")):
        time.sleep(0.5)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=60)
    assert (run / f"data{ATTEMPT_SUFFIX}").is_file()
    killed_tmp = list((tmp_path / "cache" / "data").glob(".*.tmp-*"))
    assert len(killed_tmp) == 1
    check = subprocess.run([sys.executable, "-m", "trigger_kd.cli", "check-parity", str(run)], capture_output=True,
                           text=True, env=_env(tmp_path))
    assert check.returncode == 1 and "parity STALE" in check.stderr and "Traceback" not in check.stderr
    done = subprocess.run(base + ["--set", "data.jets_per_class=50"], capture_output=True, text=True,
                          env=_env(tmp_path), timeout=300)
    assert done.returncode == 0, done.stderr
    assert "[data] the last attempt did not finish (killed" in done.stderr, done.stderr
    assert not killed_tmp[0].exists() and not (run / f"data{ATTEMPT_SUFFIX}").exists()
    assert (run / "data" / "stamp.json").is_file()
