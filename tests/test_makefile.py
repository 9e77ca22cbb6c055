"""The Makefile's commands say what the config says: `make synth MODEL=X` runs X at X's own profile."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from trigger_kd.config import load_config

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def dry_run(*args: str) -> str:
    return subprocess.run(["make", "-n", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout


def test_synth_keeps_the_config_files_own_profile():
    """`make synth MODEL=mlp_kd_hgq_35k` (profile: study) once passed --profile quick and trained at quick sizes."""
    study = [p.stem for p in sorted((REPO / "hls_configs").glob("*.yml")) if load_config(p, []).profile == "study"]
    assert study, "a config with profile: study (mlp_kd_hgq_35k) is the case this test is for"
    for model in study:
        assert "--profile" not in dry_run("synth", f"MODEL={model}")
    assert "--profile paper" in dry_run("synth", "MODEL=mlp_kd", "PROFILE=paper")


def test_benchmarks_default_to_the_quick_profile():
    assert "--profile quick" in dry_run("bench-front") and "front_quick.json" in dry_run("bench-front")
    assert "--profile study" in dry_run("bench-front", "PROFILE=study")


def test_docs_build_treats_warnings_as_errors():
    """`make docs` fails on a broken page, an unknown config key or option named in a page (docs/_ext)."""
    assert "sphinx-build -W --keep-going -b html docs docs/_build/html" in dry_run("docs")
