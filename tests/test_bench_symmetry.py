"""benchmarks/symmetry.py: its bookkeeping (overrides per arch, aggregation, verdict against Glowacki's targets) and
a smoke run at tiny size with the transformer teacher: real jets, real teachers, real diagnostics."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("symmetry", REPO / "benchmarks" / "symmetry.py")
symmetry = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(symmetry)


def _run(variant, seed, lam_max, trace, ood_z, ood_top, auc0, auc_last, mse, var=2.0, loss0=0.3):
    eps = [-0.5, -0.25, 0.0, 0.25, 0.5]
    loss = [loss0 + 0.5 * lam_max * e ** 2 for e in eps]  # a pure parabola: rise over quadratic 1
    return {"variant": variant, "seed": seed, "accuracy": 0.9, "auc": auc0, "lambda_max": lam_max, "trace": trace,
            "ood_auc": {"z_vs_gluon": ood_z, "top_vs_gluon": ood_top},
            "smear_auc": {"0.0": auc0, "0.1": (auc0 + auc_last) / 2, "0.2": auc_last},
            "compress_val_mse": [2 * mse, mse], "teacher_logit_variance": var,
            "loss_along_eigenvector": {"eps": eps, "loss": loss, "loss_rise": [x - loss0 for x in loss],
                                       "loss_rise_over_quadratic": [None if e == 0 else 1.0 for e in eps]}}


def test_every_size_preset_gives_a_loadable_config_of_its_arch():
    from trigger_kd.config import load_config

    for size, arch in symmetry.SIZES:
        args = symmetry.parse_args(["--size", size, "--arch", arch])
        for variant in symmetry.VARIANTS:
            t = load_config(symmetry.CONFIG, symmetry.run_overrides(args, variant, 2)).teacher
            assert t.arch == arch and t.seed == 2 and t.seal_lambda == (0.1 if variant == "seal" else 0.0)
    args = symmetry.parse_args(["--seal-generator-lambda", "0.01", "--d-model", "32", "--head-hidden", "8", "4"])
    assert args.arch == "transformer" and args.epochs == 25  # the default: the paper's transformer, cpu size
    t = load_config(symmetry.CONFIG, symmetry.run_overrides(args, "seal", 1)).teacher
    assert (t.d_model, t.head_hidden, t.seal_generator_lambda) == (32, (8, 4), 0.01)
    plain = load_config(symmetry.CONFIG, symmetry.run_overrides(args, "unconstrained", 1)).teacher
    assert plain.seal_generator_lambda == 0
    with pytest.raises(SystemExit):  # a size of the other arch would be silently ignored: refused
        symmetry.parse_args(["--arch", "lorentznet", "--d-model", "32"])
    with pytest.raises(SystemExit):
        symmetry.parse_args(["--hidden", "32"])


def test_verdict_compares_seal_with_unconstrained_against_the_papers_targets():
    runs = [_run("unconstrained", s, 10.0 + s, 20.0, 0.90, 0.60, 0.95, 0.93, 1.0) for s in (1, 2, 3)]
    runs += [_run("seal", s, 5.0 + 0.1 * s, 20.0 + s, 0.91 + 0.001 * s, 0.59, 0.94, 0.935, 0.8, var=1.0)
             for s in (1, 2, 3)]
    agg = symmetry.aggregate(runs, [1, 2, 3])
    v = symmetry.verdict(agg)
    lam = v["lambda_max_ratio"]
    assert lam["measured"] == pytest.approx(5.2 / 12.0) and lam["paper"] == 0.079
    assert lam["below_1_beyond_seed_spread"] is True and lam["at_or_below_paper"] is False
    assert v["trace_ratio"]["below_1"] is False and v["trace_ratio"]["below_1_beyond_seed_spread"] is False
    ood = v["ood_auc_higher_for_seal"]
    assert ood["z_vs_gluon"]["seal_better"] is True and ood["z_vs_gluon"]["beyond_seed_spread"] is True
    assert ood["top_vs_gluon"]["seal_better"] is False and ood["all"] is False
    smear = v["smaller_auc_loss_under_smearing"]  # AUC lost at the largest sigma: 0.005 (SEAL) vs 0.02
    assert smear["seal"] == pytest.approx(0.005) and smear["unconstrained"] == pytest.approx(0.02)
    assert smear["seal_better"] is True
    assert v["lower_final_distillation_mse"]["seal_better"] is True
    # relative to the logit variance the SEAL teacher is harder to distil here (0.8 / 1 vs 1 / 2)
    assert v["lower_final_distillation_mse_over_logit_variance"]["seal_better"] is False
    # Figs. 5-6: the loss along the leading eigenvector summarised per eps; SEAL's parabola is flatter here
    pv = agg["per_variant"]
    assert pv["seal"]["eigvec_loss_rise_eps_0.5"]["mean"] == pytest.approx(0.125 * 5.2)
    assert pv["unconstrained"]["eigvec_loss_eps_-0.25"]["mean"] == pytest.approx(0.3 + 0.03125 * 12.0)
    assert pv["seal"]["eigvec_rise_over_quadratic_eps_0.25"]["mean"] == pytest.approx(1.0)
    assert pv["seal"]["eigvec_rise_over_quadratic_eps_0"]["n"] == 0  # no prediction at eps 0
    assert agg["seal_over_unconstrained"]["eigvec_loss_rise_eps_0.5"]["ratio_of_means"] == pytest.approx(5.2 / 12)
    flat = v["smaller_loss_rise_along_leading_eigenvector"]
    assert flat["eps_-0.5"]["seal_better"] is True and flat["eps_0.5"]["beyond_seed_spread"] is True and flat["both"]
    rows = symmetry.table(agg, 0.1).splitlines()
    assert any(r.startswith("| eigvec_loss_rise_eps_0.5 |") for r in rows)
    assert not any(r.startswith("| eigvec_loss_eps_") for r in rows)  # the raw losses: in the JSON only
    one_seed = symmetry.verdict(symmetry.aggregate([r for r in runs if r["seed"] == 1], [1]))
    assert one_seed["lambda_max_ratio"]["below_1_beyond_seed_spread"] is None
    assert one_seed["in_distribution_auc"]["beyond_seed_spread"] is None


def test_eps_grid_is_symmetric_with_an_exact_zero():
    args = symmetry.parse_args([])
    assert (args.eps_max, args.eps_points) == (0.5, 21)
    grid = symmetry.eps_grid(args)
    assert len(grid) == 21 and grid[0] == -0.5 and grid[-1] == 0.5 and grid[10] == 0.0
    assert [f"{e:g}" for e in grid[8:13]] == ["-0.1", "-0.05", "0", "0.05", "0.1"]
    assert symmetry.eps_grid(symmetry.parse_args(["--eps-max", "0.2", "--eps-points", "5"])) == [-0.2, -0.1, 0.0, 0.1,
                                                                                                   0.2]
    with pytest.raises(SystemExit):
        symmetry.parse_args(["--eps-points", "1"])


@pytest.mark.slow
def test_symmetry_benchmark_tiny(repo, tmp_path):
    out = tmp_path / "symmetry.json"
    cmd = [sys.executable, str(repo / "benchmarks" / "symmetry.py"), "--out", str(out),
           "--work", str(tmp_path / "runs"),
           "--seeds", "1", "--jets-per-class", "150", "--epochs", "1", "--curvature-jets", "16",
           "--power-iterations", "3", "--trace-samples", "3", "--compress-epochs", "2", "--workers", "1",
           "--eps-max", "0.5", "--eps-points", "5",
           # a tiny transformer (the default arch)
           "--particles", "16", "--d-model", "16", "--encoder-layers", "1", "--heads", "2", "--ff-dim", "16",
           "--head-hidden", "16",
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
    assert r["teacher_arch"] == "transformer" and r["sizes"]["d_model"] == 16
    assert r["sizes"]["jets_per_class"] == 150 and r["sizes"]["seal_lambda"] == 0.1
    assert r["jets"]["train"] == 180 and r["jets"]["val"] == 60 and r["jets"]["test"] == 60
    assert r["jets"]["ood_z_vs_gluon"] > 0 and r["jets"]["ood_top_vs_gluon"] > 0
    by = {run["variant"]: run for run in r["runs"]}
    assert set(by) == {"unconstrained", "seal"}
    assert by["seal"]["seal_lambda"] == 0.1 and by["unconstrained"]["seal_lambda"] == 0.0
    assert {run["teacher_arch"] for run in r["runs"]} == {"transformer"}
    # SEAL reached the teacher: same seed and data, a different trained model
    assert by["seal"]["lambda_max"] != by["unconstrained"]["lambda_max"]
    agg = r["aggregate"]
    u, c = (agg["per_variant"][v]["lambda_max"]["mean"] for v in ("unconstrained", "seal"))
    assert agg["seal_over_unconstrained"]["lambda_max"]["ratio_of_means"] == pytest.approx(c / u)
    assert len(by["seal"]["compress_val_mse"]) == 3  # epoch 0 + 2 epochs
    assert set(by["seal"]["smear_auc"]) == {"0.0", "0.05", "0.1", "0.2"}
    assert r["verdict"]["lambda_max_ratio"]["paper"] == 0.079 and r["verdict"]["trace_ratio"]["paper"] == 0.119
    assert "not_measured" not in r and "NOT reproduced" in r["figures_5_6"]["fig6_R_epsilon"]
    for run in r["runs"]:  # Fig. 5: the loss along the leading eigenvector, the same lambda_max as diagnose's
        curve = run["loss_along_eigenvector"]
        assert curve["eps"] == [-0.5, -0.25, 0.0, 0.25, 0.5] and len(curve["loss"]) == 5
        assert curve["loss"][2] == pytest.approx(curve["loss_at_zero"]) and curve["loss_rise"][2] == 0.0
        assert curve["lambda_max"] == pytest.approx(run["lambda_max"], rel=1e-6) and curve["n_jets"] == 16
    assert agg["per_variant"]["seal"]["eigvec_loss_rise_eps_0.5"]["n"] == 1
