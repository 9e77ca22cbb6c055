"""Smoke run of benchmarks/symmetry.py at tiny size: real jets, real teachers, real diagnostics."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_symmetry_benchmark_tiny(repo, tmp_path):
    out = tmp_path / "symmetry.json"
    cmd = [sys.executable, str(repo / "benchmarks" / "symmetry.py"), "--out", str(out), "--work", str(tmp_path / "runs"),
           "--seeds", "1", "--jets-per-class", "150", "--epochs", "1", "--curvature-jets", "16",
           "--power-iterations", "3", "--trace-samples", "3", "--compress-epochs", "2", "--workers", "1",
           # one shard of 300 jets per class instead of the default 500 (150 are used): the W, gluon and Z shards
           # are then the ones tests/test_generalisation.py uses, generated once per session (shared cache)
           "--set", "data.shard_size=300",
           # the quick profile's student recipe at tiny size, as in tests/test_e2e.py: a transfer set of 100 jets
           # per class (not 5000: about a minute of generation and labelling) and at most 2 student epochs
           "--set", "distill.transfer_jets_per_class=100", "--set", "student.max_epochs=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo)}
    proc = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, cwd=repo)
    assert "| lambda_max |" in proc.stdout and "SEAL (lambda 0.1)" in proc.stdout
    r = json.loads(out.read_text())
    assert r["git_commit"] and r["git_dirty"] in (True, False) and "symmetry.py" in r["command"]
    assert r["sizes"]["jets_per_class"] == 150 and r["sizes"]["seal_lambda"] == 0.1
    assert r["jets"]["train"] == 180 and r["jets"]["val"] == 60 and r["jets"]["test"] == 60
    assert r["jets"]["ood_z_vs_gluon"] > 0 and r["jets"]["ood_top_vs_gluon"] > 0
    by = {run["variant"]: run for run in r["runs"]}
    assert set(by) == {"unconstrained", "seal"}
    assert by["seal"]["seal_lambda"] == 0.1 and by["unconstrained"]["seal_lambda"] == 0.0
    # SEAL reached the teacher: same seed and data, a different trained model
    assert by["seal"]["lambda_max"] != by["unconstrained"]["lambda_max"]
    agg = r["aggregate"]
    u, c = (agg["per_variant"][v]["lambda_max"]["mean"] for v in ("unconstrained", "seal"))
    assert agg["seal_over_unconstrained"]["lambda_max"]["ratio_of_means"] == pytest.approx(c / u)
    assert len(by["seal"]["compress_val_mse"]) == 3  # epoch 0 + 2 epochs
    assert set(by["seal"]["smear_auc"]) == {"0.0", "0.05", "0.1", "0.2"}
