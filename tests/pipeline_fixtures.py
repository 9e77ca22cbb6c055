"""Fixtures shared by the runner tests: a cache of each test's own and a small model config."""
from __future__ import annotations

import pytest

from trigger_kd.config import load_config


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRIGGER_KD_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def cfg(repo):
    return load_config(repo / "hls_configs/mlp_kd.yml", ["teacher.epochs=2", "student.epochs=3"])
