"""Fixtures shared by the runner tests: a cache of each test's own, a small model config, and a run in a forked
child process."""
from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from trigger_kd.config import load_config


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRIGGER_KD_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def cfg(repo):
    return load_config(repo / "hls_configs/mlp_kd.yml", ["teacher.epochs=2", "student.epochs=3"])


def forked_until(target, started: Path, timeout: float = 60.0):
    """``target`` started in a forked child process, once it has created ``started`` (or died, or ``timeout``
    seconds passed: the caller checks ``started``); the child."""
    child = multiprocessing.get_context("fork").Process(target=target)
    child.start()
    deadline = time.monotonic() + timeout
    while not started.exists() and child.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    return child
