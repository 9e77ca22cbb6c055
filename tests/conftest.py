"""Shared test set-up: an isolated artifact cache per test session, quiet TensorFlow."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # QKeras needs tf_keras; set before anything imports TensorFlow
# One OpenMP thread unless asked otherwise (set before torch is imported; subprocesses inherit it): the tests'
# tensors are tiny, and on a loaded 2-core machine OpenMP's spinning threads made small unit tests 10-20x slower
# (test_curvature: 0.7 s with one thread, 14 s with two). Tests of multi-threading set their thread count
# themselves (torch.set_num_threads, teacher/student `threads`).
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory, request):
    """Every test session gets its own content-addressed cache (no stale artifacts from earlier runs; the
    pytest-xdist workers of one session share it).

    Except the compiled edge kernels (<cache>/.kernels): their file names are hashes of the C++ source, the
    compiler flags and version, torch's version and the CPU, so a build from an earlier session is the build
    this one would make. They are kept in pytest's cache directory (.pytest_cache/d/edge-kernels; gone with
    `pytest --cache-clear` or `make clean`, not kept with `-p no:cacheprovider`), which saves a g++ build of
    7-15 s per kernel variant on every run after the first."""
    old = os.environ.get("TRIGGER_KD_CACHE")
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # pytest-xdist (`make test`): the workers of one run share one cache, in the run's base temporary directory
        # (each worker's is a subdirectory of it), so the tiny data, teacher and transfer stages that many
        # end-to-end tests share are made once, not once per worker. The cache is built for concurrent runs
        # (a lock per entry: a second run waits and reuses, trigger_kd/concurrency.py).
        cache = tmp_path_factory.getbasetemp().parent / "cache"
        cache.mkdir(exist_ok=True)
    else:
        cache = tmp_path_factory.mktemp("cache")
    store = getattr(request.config, "cache", None)  # None without pytest's cacheprovider plugin
    if store is not None:
        try:
            (cache / ".kernels").symlink_to(store.mkdir("edge-kernels"), target_is_directory=True)
        except FileExistsError:  # the other worker made it
            pass
    os.environ["TRIGGER_KD_CACHE"] = str(cache)
    yield
    if old is None:
        os.environ.pop("TRIGGER_KD_CACHE", None)
    else:
        os.environ["TRIGGER_KD_CACHE"] = old


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
