"""Shared test set-up: an isolated artifact cache per test session, quiet TensorFlow."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # QKeras needs tf_keras; set before anything imports TensorFlow


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Every test session gets its own content-addressed cache (no stale artifacts from earlier runs)."""
    old = os.environ.get("TRIGGER_KD_CACHE")
    os.environ["TRIGGER_KD_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("TRIGGER_KD_CACHE", None)
    else:
        os.environ["TRIGGER_KD_CACHE"] = old


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
