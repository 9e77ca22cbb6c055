"""The kd_gain benchmark's bookkeeping: statistics, verdicts, the validation-chosen best combination."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("kd_gain", Path(__file__).resolve().parent.parent / "benchmarks" / "kd_gain.py")
kd_gain = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kd_gain)


def _runs(auc, val_auc, acc=0.9):
    return [{"accuracy": acc, "auc": a, "rej30": 10.0, "rej50": None, "accuracy_beta0.3": acc - 0.01,
             "accuracy_beta0.5": None, "val_accuracy": acc, "val_auc": v} for a, v in zip(auc, val_auc)]


def test_flatten_reads_test_boost_and_validation_figures():
    metrics = {"student": {"accuracy": 0.9, "auc": 0.95, "rej30": 20.0, "rej50": 10.0},
               "robustness": {"student": {"boost": [{"beta": 0.0, "accuracy": 0.9}, {"beta": 0.3, "accuracy": 0.85},
                                                    {"beta": 0.5, "accuracy": 0.7}]}},
               "validation": {"student": {"accuracy": 0.91, "auc": 0.96}}}
    assert kd_gain.flatten(metrics, "student") == {
        "accuracy": 0.9, "auc": 0.95, "rej30": 20.0, "rej50": 10.0, "accuracy_beta0.3": 0.85,
        "accuracy_beta0.5": 0.7, "val_accuracy": 0.91, "val_auc": 0.96}


def test_verdict_needs_three_spreads_and_half_a_percent():
    scratch = kd_gain.summarise(_runs([0.930, 0.931, 0.932], [0.93, 0.93, 0.93]))
    assert scratch["auc"]["mean"] == pytest.approx(0.931) and scratch["auc"]["std"] == pytest.approx(0.001)
    assert scratch["rej50"] == {"mean": None, "std": None, "n": 0, "values": [None] * 3}
    small = kd_gain.verdict(kd_gain.summarise(_runs([0.934, 0.935, 0.936], [0.94] * 3)), scratch)
    assert small["auc_gain"] == pytest.approx(0.004) and small["threshold"] == pytest.approx(0.005)
    assert small["gain"] is False  # above 3 std but below 0.005
    big = kd_gain.verdict(kd_gain.summarise(_runs([0.940, 0.945, 0.950], [0.94] * 3)), scratch)
    assert big["threshold"] == pytest.approx(0.015) and big["gain"] is False  # 0.014 < 3 * 0.005
    clear = kd_gain.verdict(kd_gain.summarise(_runs([0.950, 0.951, 0.952], [0.94] * 3)), scratch)
    assert clear["gain"] is True and clear["paired_gain_std"] == pytest.approx(0.0, abs=1e-12)


def test_best_combination_is_chosen_on_validation_auc_only():
    summary = {"kd": kd_gain.summarise(_runs([0.95] * 3, [0.940] * 3)),
               "kd_transfer": kd_gain.summarise(_runs([0.90] * 3, [0.945] * 3)),  # worse on test, better on val
               "kd_augment": kd_gain.summarise(_runs([0.99] * 3, [0.935] * 3)),  # better on test, worse on val
               "kd_seal": kd_gain.summarise(_runs([0.95] * 3, [0.941] * 3))}
    assert kd_gain.best_options(summary) == ["transfer", "seal"]


def test_best_by_validation_is_the_single_variant_with_the_highest_validation_auc():
    summary = {"scratch": kd_gain.summarise(_runs([0.93] * 3, [0.999] * 3)),  # not a KD variant
               "kd": kd_gain.summarise(_runs([0.99] * 3, [0.930] * 3)),  # best on test: not chosen
               "kd_transfer": kd_gain.summarise(_runs([0.94] * 3, [0.942] * 3)),
               "kd_best": kd_gain.summarise(_runs([0.95] * 3, [0.939] * 3))}  # the combination can lose
    assert kd_gain.best_by_validation(summary) == "kd_transfer"
    assert kd_gain.best_by_validation({"scratch": summary["scratch"]}) is None


def test_every_variant_sets_every_option_so_profile_defaults_do_not_leak_in():
    sets = {"transfer": ["distill.transfer_jets_per_class=500"], "augment": ["distill.augment_max_beta=0.5"],
            "seal": ["student.seal_lambda=0.1"]}
    assert kd_gain.variant_sets(sets, []) == ["distill.transfer_jets_per_class=0", "distill.augment_max_beta=0",
                                              "student.seal_lambda=0"]
    assert kd_gain.variant_sets(sets, ["seal", "transfer"]) == [
        "distill.transfer_jets_per_class=500", "distill.augment_max_beta=0", "student.seal_lambda=0.1"]
    from trigger_kd.config import load_config  # plain kd on the quick profile (transfer set + SEAL on) is plain
    cfg = load_config(Path(__file__).resolve().parent.parent / "hls_configs/mlp_kd.yml", kd_gain.variant_sets(sets, []))
    assert cfg.distill.transfer_jets_per_class == 0 and cfg.student.seal_lambda == 0
    assert load_config(Path(__file__).resolve().parent.parent / "hls_configs/mlp_kd.yml").student.seal_lambda == 0.1
